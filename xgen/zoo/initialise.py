"""Deterministic weights for the zoo's random-weight CNNs that keep activations of order 1.

PyTorch's default initialisation shrinks every layer's output, so after fifty layers the
activations are about 1e-7 and a network's logits are its classifier's bias: a compiler that
computed the convolutions wrongly would still agree with the reference within tolerance. Here
convolutions and linears get Kaiming-normal weights (fan-in, ReLU gain; biases keep PyTorch's
small uniform ones, so that a last layer's bias is not zero), and each
BatchNorm's running statistics are those of a calibration batch (seed 1, not the example input),
so every BatchNorm output has zero mean and unit variance on such inputs.
"""

from __future__ import annotations

import torch
from torch import nn

CALIBRATION_BATCH = 2


def initialise(model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
    """model (in eval mode) with the weights above; input_shape is one sample's (C, H, W)."""
    generator = torch.Generator().manual_seed(0)
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            fan_in = layer.weight[0].numel()
            std = (2.0 / fan_in) ** 0.5
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
    _calibrate_batch_norms(model, input_shape)
    return model.eval()


def _calibrate_batch_norms(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: after one batch, that batch's statistics
    shape = (CALIBRATION_BATCH, *input_shape)
    calibration = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    model.train()
    with torch.no_grad():
        model(calibration)
    for norm in norms:
        norm.momentum = 0.1  # PyTorch's default again

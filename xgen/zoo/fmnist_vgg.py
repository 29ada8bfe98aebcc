"""A VGG-style CNN for Fashion-MNIST (1x28x28 images) built of 3x3 convolutions only.

Six conv3x3 (no bias) + BatchNorm + ReLU blocks, channels 32-64 | 128-128 | 256-256 with a 2x2
max pool between stages (28 -> 14 -> 7), global average pooling and one Linear classifier:
1,128,938 parameters (1,124,640 of them in the 3x3 convolutions) and 101.4M multiply-adds
(about 0.20 GFLOPs) an image. Its size is for pruning studies: patterns plus connectivity can
remove most of the 3x3 weights while keeping accuracy.

``load_pretrained()`` gives the weights trained by ``benchmarks/train_fmnist.py`` (8 epochs, seed 0:
93.71% top-1 on the 10k test images), stored in float16 in ``weights/fmnist_vgg_dense.pt``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from xgen.errors import ModelLoadError

WEIGHTS_DIR = Path(__file__).parent / "weights"


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class FashionVGG(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            *_block(1, 32), *_block(32, 64), nn.MaxPool2d(2),  # 14x14
            *_block(64, 128), *_block(128, 128), nn.MaxPool2d(2),  # 7x7
            *_block(128, 256), *_block(256, 256), nn.AdaptiveAvgPool2d(1),
        )  # fmt: skip
        self.classifier = nn.Linear(256, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def half_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's state_dict with floating tensors in float16 (half the file size)."""
    return {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}


def load_pretrained(kind: str = "dense") -> FashionVGG:
    """The trained FashionVGG from weights/fmnist_vgg_{kind}.pt, in float32 and eval mode."""
    path = WEIGHTS_DIR / f"fmnist_vgg_{kind}.pt"
    if not path.is_file():
        raise ModelLoadError(
            f"{path}: no such checkpoint; train it with "
            f"`python benchmarks/train_fmnist.py --out {path}`"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = FashionVGG()
    # load_state_dict copies into the float32 parameters, so float16 values are upcast.
    model.load_state_dict(state)
    return model.eval()

"""Pattern + connectivity pruning on torch modules: which convs are pruned and at what rate, the
projection of their weights onto a structure, and masks that keep the structure while training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType

import numpy as np
import torch
from torch import Tensor, nn

from xgen.compress.config import PruneConfig
from xgen.errors import CompressError
from xgen.ir.sparsity import PatternStructure, assign_patterns, select_library

Library = tuple[tuple[int, ...], ...]


def prunable_convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The 3x3 Conv2d with groups=1 of the model by module name, in module order. Grouped and
    depthwise convs stay dense: a removed kernel there would be a whole removed channel."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3) and module.groups == 1
    }


def kept_conv3x3_weights(model: nn.Module) -> int:
    """The non-zero weights of the model's prunable convs."""
    return sum(int(torch.count_nonzero(conv.weight)) for conv in prunable_convs(model).values())


def layer_rates(model: nn.Module, config: PruneConfig) -> dict[str, float]:
    """The connectivity rate of every prunable conv: the default, first_conv_rate for the first
    one (in module order), then the per-layer overrides, each checked against the model."""
    convs = prunable_convs(model)
    if not convs:
        raise CompressError(
            f"{type(model).__name__} has no 3x3 Conv2d with groups=1: nothing to prune"
        )
    modules = dict(model.named_modules())
    for name in config.layer_rates:
        if name not in convs:
            what = f"a {type(modules[name]).__name__}" if name in modules else "not a module"
            raise CompressError(
                f"layer rate for {name!r}: it is {what}, and only 3x3 Conv2d with groups=1 are "
                f"pruned; those of {type(model).__name__} are: {', '.join(convs)}"
            )
    rates = dict.fromkeys(convs, config.connectivity_rate)
    if config.first_conv_rate is not None:
        rates[next(iter(convs))] = config.first_conv_rate
    rates.update(config.layer_rates)
    return rates


def choose_library(convs: Mapping[str, nn.Conv2d], config: PruneConfig) -> Library:
    """The pattern library, from the magnitudes of the (trained, dense) weights of all convs."""
    weights = [_numpy(conv.weight) for conv in convs.values()]
    return select_library(weights, config.library_size, config.taps_kept)


def structure_of(weight: Tensor, library: Library, rate: float) -> PatternStructure:
    """The structure nearest to weight: best library pattern per kernel, weakest kernels cut."""
    return PatternStructure(library, assign_patterns(_numpy(weight), library, rate))


def project(
    convs: Mapping[str, nn.Conv2d], library: Library, rates: Mapping[str, float]
) -> dict[str, PatternStructure]:
    """The structure nearest to each conv's current weight (weights are not changed)."""
    return {name: structure_of(conv.weight, library, rates[name]) for name, conv in convs.items()}


def mask_tensor(structure: PatternStructure, like: Tensor) -> Tensor:
    """The structure's mask as 0/1 values of like's dtype, on like's device."""
    return torch.from_numpy(structure.mask()).to(device=like.device, dtype=like.dtype)


class Masks:
    """Holds convs to a structure: zeroes the pruned weights now, masks their gradients (so that
    momentum and Adam state stay zero there) and zeroes them again on enforce(), to be called
    after every optimizer step (weight decay and momentum would otherwise move them).
    Use as a context manager, or call remove() to drop the gradient hooks."""

    def __init__(
        self, convs: Mapping[str, nn.Conv2d], structure: Mapping[str, PatternStructure]
    ) -> None:
        self._masked: list[tuple[Tensor, Tensor]] = [
            (conv.weight, mask_tensor(structure[name], conv.weight)) for name, conv in convs.items()
        ]
        self._hooks = [
            weight.register_hook(mask.mul) for weight, mask in self._masked if weight.requires_grad
        ]
        self.enforce()

    @torch.no_grad()
    def enforce(self) -> None:
        for weight, mask in self._masked:
            weight.mul_(mask)

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def __enter__(self) -> Masks:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()


def structure_violations(
    convs: Mapping[str, nn.Conv2d], structure: Mapping[str, PatternStructure]
) -> Sequence[str]:
    """Names of the convs with a nonzero weight outside their structure's mask."""
    return [
        name
        for name, conv in convs.items()
        if np.any(_numpy(conv.weight)[~structure[name].mask()] != 0)
    ]


def _numpy(weight: Tensor) -> np.ndarray:
    return weight.detach().float().cpu().numpy()

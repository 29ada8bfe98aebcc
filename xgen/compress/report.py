"""What compression did: top-1 accuracy and weight counts before and after, per layer and total."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torch import nn

from xgen.ir.sparsity import PatternStructure


@dataclass(frozen=True)
class LayerReport:
    """One layer with a weight matrix or kernel (Conv, Linear...); biases and norms not counted."""

    name: str
    shape: tuple[int, ...]
    weights_before: int
    weights_after: int
    kernels_before: int | None  # output x input channel pairs of a conv; None for other layers
    kernels_after: int | None
    pruned: bool

    @property
    def compression(self) -> float:
        return self.weights_before / self.weights_after if self.weights_after else float("inf")


@dataclass(frozen=True)
class CompressReport:
    layers: tuple[LayerReport, ...]
    accuracy_before: float  # top-1, in [0, 1]
    accuracy_after: float

    @property
    def pruned_layers(self) -> tuple[LayerReport, ...]:
        return tuple(layer for layer in self.layers if layer.pruned)

    @property
    def weights_before(self) -> int:
        return sum(layer.weights_before for layer in self.layers)

    @property
    def weights_after(self) -> int:
        return sum(layer.weights_after for layer in self.layers)

    def __str__(self) -> str:
        before, after = 100 * self.accuracy_before, 100 * self.accuracy_after
        lines = [
            f"top-1 accuracy: {before:.2f}% dense -> {after:.2f}% pruned "
            f"({after - before:+.2f} points)",
            "",
            "| layer | kernel shape | weights before | weights after | kernels kept "
            "| compression |",
            "|---|---|---:|---:|---:|---:|",
            *(_row(layer.name, [layer], "x".join(map(str, layer.shape))) for layer in self.layers),
            _row("**3x3 convs (pruned)**", self.pruned_layers),
            _row("**all layers**", self.layers),
        ]
        return "\n".join(lines)


def build_report(
    model: nn.Module,
    structure: Mapping[str, PatternStructure],
    accuracy_before: float,
    accuracy_after: float,
) -> CompressReport:
    """The report of a pruned model: its pruned layers counted from their structure, the others
    (left dense) by the size of their weight."""
    layers = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, nn.Parameter) or weight.dim() < 2:
            continue
        shape = tuple(weight.shape)
        kernels = shape[0] * shape[1] if weight.dim() == 4 else None
        s = structure.get(name)
        layers.append(
            LayerReport(
                name=name,
                shape=shape,
                weights_before=weight.numel(),
                weights_after=s.kept_weights if s else weight.numel(),
                kernels_before=kernels,
                kernels_after=s.kept_kernels if s else kernels,
                pruned=s is not None,
            )
        )
    return CompressReport(tuple(layers), accuracy_before, accuracy_after)


def _row(name: str, layers: Iterable[LayerReport], shape: str = "") -> str:
    layers = list(layers)
    before = sum(layer.weights_before for layer in layers)
    after = sum(layer.weights_after for layer in layers)
    convs = [layer for layer in layers if layer.kernels_before is not None]
    kernels = (
        f"{sum(c.kernels_after for c in convs):,}/{sum(c.kernels_before for c in convs):,}"
        if convs
        else "-"
    )
    ratio = f"{before / after:.2f}x" if after else "inf"
    return f"| {name} | {shape} | {before:,} | {after:,} | {kernels} | {ratio} |"

"""Typed configuration of pattern + connectivity pruning and of the training that recovers
accuracy. Every field is checked when the object is built, so a bad value fails before training."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from xgen.errors import CompressError
from xgen.ir.sparsity import TAPS


class Schedule(Enum):
    """How the structure is reached before the masked fine-tune."""

    ADMM = "admm"  # extended ADMM (PatDNN): weights pulled towards their projection, then cut
    GRADUAL = "gradual"  # patterns at once, connectivity rate ramped up, projected every N steps


class OptimizerKind(Enum):
    SGD = "sgd"  # with Nesterov momentum
    ADAMW = "adamw"


@dataclass(frozen=True)
class PruneConfig:
    """What is pruned: every 3x3 Conv2d with groups=1; other layers stay dense."""

    connectivity_rate: float = 0.75  # fraction of kernels removed; with 4-of-9 patterns, 9x fewer
    layer_rates: Mapping[str, float] = field(default_factory=dict)  # module name -> rate
    # The first 3x3 conv usually sees few channels (1 for grey images): a removed kernel there
    # drops an input channel of a filter outright. None = it gets connectivity_rate too.
    first_conv_rate: float | None = 0.0
    library_size: int = 8  # patterns in the library (PatDNN uses 6-8)
    taps_kept: int = 4  # taps of 9 each pattern keeps

    def __post_init__(self) -> None:
        _check_rate(self.connectivity_rate, "connectivity_rate")
        if self.first_conv_rate is not None:
            _check_rate(self.first_conv_rate, "first_conv_rate")
        for name, rate in self.layer_rates.items():
            _check_rate(rate, f"the rate of layer {name!r}")
        object.__setattr__(self, "layer_rates", dict(self.layer_rates))  # the caller's may change
        if not 1 <= self.taps_kept <= TAPS:
            raise CompressError(f"taps_kept must be in 1..{TAPS}, got {self.taps_kept}")
        candidates = math.comb(TAPS, self.taps_kept)
        if not 1 <= self.library_size <= candidates:
            raise CompressError(
                f"library_size must be in 1..{candidates} (patterns keeping {self.taps_kept} "
                f"of 9 taps), got {self.library_size}"
            )


@dataclass(frozen=True)
class OptimizerConfig:
    kind: OptimizerKind = OptimizerKind.SGD
    lr: float = 0.01  # at the start of each phase; decays to 0 by a cosine within the phase
    momentum: float = 0.9  # SGD only
    weight_decay: float = 5e-4

    def __post_init__(self) -> None:
        _check_positive(self.lr, "lr")
        if not 0.0 <= self.momentum < 1.0:
            raise CompressError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise CompressError(f"weight_decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from the dense model: loss = (1 - weight) * cross-entropy
    + weight * T^2 * KL(teacher || student) on logits softened by temperature T."""

    weight: float = 0.5  # 0 turns distillation off (and the teacher's forward passes)
    temperature: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise CompressError(f"distillation weight must be in [0, 1], got {self.weight}")
        _check_positive(self.temperature, "distillation temperature")


@dataclass(frozen=True)
class AdmmConfig:
    """Extended ADMM: loss + rho/2 * ||W - Z + U||^2, with Z = projection of W + U onto the
    structure and U += W - Z after each epoch; rho grows so that W ends close to Z."""

    rho: float = 1e-2
    rho_growth: float = 2.0  # rho multiplier after each Z/U update

    def __post_init__(self) -> None:
        _check_positive(self.rho, "admm rho")
        if self.rho_growth < 1.0:
            raise CompressError(f"admm rho_growth must be >= 1, got {self.rho_growth}")


@dataclass(frozen=True)
class GradualConfig:
    """Gradual projected pruning: the connectivity rate follows a cubic ramp from 0 to the
    target over the pruning epochs (fast early, when the network recovers best)."""

    project_every: int = 50  # optimizer steps between projections

    def __post_init__(self) -> None:
        if self.project_every < 1:
            raise CompressError(f"project_every must be >= 1, got {self.project_every}")


@dataclass(frozen=True)
class CompressConfig:
    prune: PruneConfig = field(default_factory=PruneConfig)
    schedule: Schedule = Schedule.GRADUAL
    epochs: int = 6  # pruning phase: ADMM, or the gradual ramp
    finetune_epochs: int = 4  # masked fine-tune after the hard prune
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    admm: AdmmConfig = field(default_factory=AdmmConfig)
    gradual: GradualConfig = field(default_factory=GradualConfig)
    seed: int = 0
    device: str = "cpu"
    progress: bool = True  # tqdm bars on stderr

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise CompressError(f"schedule must be a Schedule, got {self.schedule!r}")
        if self.epochs < 0 or self.finetune_epochs < 0:
            raise CompressError(
                f"epochs must be >= 0, got epochs={self.epochs}, "
                f"finetune_epochs={self.finetune_epochs}"
            )


def _check_rate(rate: float, what: str) -> None:
    if not 0.0 <= rate < 1.0:
        raise CompressError(f"{what} must be in [0, 1), got {rate}")


def _check_positive(value: float, what: str) -> None:
    if not value > 0:
        raise CompressError(f"{what} must be > 0, got {value}")

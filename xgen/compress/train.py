"""compress(): pattern + connectivity pruning of a trained model, with the training that keeps its
accuracy (ADMM or gradual projected pruning, then a masked fine-tune, distilled from the dense
model throughout)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from xgen.compress.config import (
    AdmmConfig,
    CompressConfig,
    CompressError,
    DistillConfig,
    OptimizerConfig,
    OptimizerKind,
    Schedule,
)
from xgen.compress.prune import (
    Library,
    Masks,
    choose_library,
    layer_rates,
    mask_tensor,
    project,
    prunable_convs,
    structure_of,
    structure_violations,
)
from xgen.compress.report import CompressReport, build_report
from xgen.ir.sparsity import PatternStructure

Batches = Iterable[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class CompressResult:
    model: nn.Module  # pruned, on the CPU, in eval mode, plain weights with zeros, no hooks
    structure: dict[str, PatternStructure]  # module name -> structure of its weight
    report: CompressReport


def compress(
    model: nn.Module,
    train_data: Batches,
    eval_data: Batches,
    config: CompressConfig | None = None,
) -> CompressResult:
    """Prune every 3x3 conv of a trained model to patterns + connectivity, train to recover the
    accuracy on train_data, and measure top-1 accuracy on eval_data before and after.

    The data are iterables of (input, label) batches, such as torch DataLoaders; train_data
    needs a len() (the schedules are laid out in steps). model itself is left as it was.
    Deterministic given config.seed (a DataLoader without its own generator shuffles from
    torch's global generator, which is seeded here)."""
    config = config or CompressConfig()
    torch.manual_seed(config.seed)
    device = _device(config.device)
    dense = copy.deepcopy(model).to(device).eval().requires_grad_(False)
    student = copy.deepcopy(model).to(device)
    convs = prunable_convs(student)
    rates = layer_rates(student, config.prune)
    library = choose_library(convs, config.prune)
    accuracy_before = evaluate(dense, eval_data, device)

    trainer = _Trainer(student, dense, train_data, config, device)
    if config.schedule is Schedule.ADMM:
        admm = _Admm(convs, library, rates, config.admm)
        trainer.run(config.epochs, "ADMM", admm)
    else:
        total = config.epochs * _steps_per_epoch(train_data)
        with _Gradual(convs, library, rates, config.gradual.project_every, total) as gradual:
            trainer.run(config.epochs, "prune", gradual)
    structure = project(convs, library, rates)  # the hard prune
    with Masks(convs, structure) as masks:
        trainer.run(config.finetune_epochs, "fine-tune", _Masked(masks))

    if structure_violations(convs, structure):  # the masks failed: a bug, not a user error
        raise RuntimeError("pruned weights are nonzero outside their structure after training")
    accuracy_after = evaluate(student, eval_data, device)
    student.cpu()
    report = build_report(student, structure, accuracy_before, accuracy_after)
    return CompressResult(student, structure, report)


@torch.no_grad()
def evaluate(model: nn.Module, data: Batches, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy in [0, 1] (the model is put in eval mode)."""
    model.eval()
    correct = total = 0
    for x, y in data:
        predicted = model(x.to(device)).argmax(dim=1)
        correct += int((predicted == y.to(device)).sum())
        total += len(y)
    if total == 0:
        raise CompressError("the evaluation data yielded no samples")
    return correct / total


def distillation_loss(
    logits: Tensor, labels: Tensor, teacher_logits: Tensor | None, config: DistillConfig
) -> Tensor:
    """Cross-entropy, mixed with the KL divergence from the teacher's softened outputs (scaled
    by T^2 so that its gradients keep their size whatever the temperature, as in Hinton et al.)."""
    task = F.cross_entropy(logits, labels)
    if teacher_logits is None or config.weight == 0:
        return task
    t = config.temperature
    soft = F.kl_div(
        F.log_softmax(logits / t, dim=1),
        F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1 - config.weight) * task + config.weight * t * t * soft


class _Phase(Protocol):
    """What a training phase adds to plain training."""

    def penalty(self) -> Tensor | None: ...
    def after_step(self) -> None: ...
    def after_epoch(self) -> None: ...


class _Trainer:
    def __init__(
        self,
        model: nn.Module,
        teacher: nn.Module,
        data: Batches,
        config: CompressConfig,
        device: torch.device,
    ) -> None:
        self.model, self.data, self.config, self.device = model, data, config, device
        self.teacher = teacher if config.distill.weight > 0 else None

    def run(self, epochs: int, name: str, phase: _Phase) -> None:
        """epochs of training under phase, with a fresh optimizer whose learning rate decays
        to 0 by a cosine over the phase."""
        if epochs == 0:
            return
        optimizer = _optimizer(self.model, self.config.optimizer)
        steps = epochs * _steps_per_epoch(self.data)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        for epoch in range(epochs):
            self.model.train()
            bar = tqdm(
                self.data, desc=f"{name} {epoch + 1}/{epochs}", disable=not self.config.progress
            )
            total = 0.0
            for step, (x, y) in enumerate(bar, 1):
                loss = self._loss(x.to(self.device), y.to(self.device), phase)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                phase.after_step()
                total += loss.item()
                bar.set_postfix(mean_loss=f"{total / step:.4f}", refresh=False)
            phase.after_epoch()

    def _loss(self, x: Tensor, y: Tensor, phase: _Phase) -> Tensor:
        teacher_logits = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(x)
        loss = distillation_loss(self.model(x), y, teacher_logits, self.config.distill)
        penalty = phase.penalty()
        return loss if penalty is None else loss + penalty


class _Masked:
    """Fine-tune: the structure is fixed."""

    def __init__(self, masks: Masks) -> None:
        self.masks = masks

    def penalty(self) -> None:
        return None

    def after_step(self) -> None:
        self.masks.enforce()

    def after_epoch(self) -> None:
        pass


class _Admm:
    """Extended ADMM (PatDNN): min loss(W) subject to W in the pattern + connectivity set S,
    split as W = Z with Z in S. Each step trains W on loss + rho/2 ||W - Z + U||^2; after
    each epoch Z = projection of W + U onto S, U += W - Z, and rho grows."""

    def __init__(
        self,
        convs: Mapping[str, nn.Conv2d],
        library: Library,
        rates: Mapping[str, float],
        config: AdmmConfig,
    ) -> None:
        self.convs, self.library, self.rates = convs, library, rates
        self.rho, self.growth = config.rho, config.rho_growth
        self.z = {name: self._project(name, conv.weight.detach()) for name, conv in convs.items()}
        self.u = {name: torch.zeros_like(z) for name, z in self.z.items()}

    def _project(self, name: str, weight: Tensor) -> Tensor:
        structure = structure_of(weight, self.library, self.rates[name])
        return weight * mask_tensor(structure, weight)

    def penalty(self) -> Tensor:
        distance = sum(
            (conv.weight - self.z[name] + self.u[name]).square().sum()
            for name, conv in self.convs.items()
        )
        return self.rho / 2 * distance

    def after_step(self) -> None:
        pass

    @torch.no_grad()
    def after_epoch(self) -> None:
        for name, conv in self.convs.items():
            shifted = conv.weight + self.u[name]
            self.z[name] = self._project(name, shifted)
            self.u[name] = shifted - self.z[name]  # U + W - Z
        self.rho *= self.growth


class _Gradual:
    """Gradual projected pruning: patterns from the first step, the connectivity rate ramped
    from 0 to its target by a cubic (Zhu & Gupta), a new projection every project_every
    steps and masks enforced in between. The ramp reaches the target at the last step."""

    def __init__(
        self,
        convs: Mapping[str, nn.Conv2d],
        library: Library,
        rates: Mapping[str, float],
        project_every: int,
        total_steps: int,
    ) -> None:
        self.convs, self.library, self.rates = convs, library, rates
        self.every, self.total, self.step = project_every, total_steps, 0
        self.masks = self._project()

    def _project(self) -> Masks:
        progress = min(self.step / self.total, 1.0) if self.total else 1.0
        ramp = 1 - (1 - progress) ** 3
        rates = {name: rate * ramp for name, rate in self.rates.items()}
        return Masks(self.convs, project(self.convs, self.library, rates))

    def penalty(self) -> None:
        return None

    def after_step(self) -> None:
        self.step += 1
        if self.step % self.every == 0 or self.step == self.total:
            self.masks.remove()
            self.masks = self._project()
        else:
            self.masks.enforce()

    def after_epoch(self) -> None:
        pass

    def __enter__(self) -> _Gradual:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.masks.remove()


def _optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.kind is OptimizerKind.ADAMW:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.momentum > 0,
    )


def _device(name: str) -> torch.device:
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise CompressError(f"device {name!r}: {e}") from None


def _steps_per_epoch(data: Batches) -> int:
    try:
        steps = len(data)  # type: ignore[arg-type]
    except TypeError:
        raise CompressError(
            "train_data needs a len() (a torch DataLoader has one): the learning-rate and "
            "pruning schedules are laid out in steps"
        ) from None
    if steps == 0:
        raise CompressError("train_data has no batches")
    return steps

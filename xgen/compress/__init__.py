"""Model compression for xgen: pattern + connectivity pruning (PatDNN) with accuracy-recovery
training, and export of the pruned model to ONNX with its structure. Needs torch.

Usage: ``result = xgen.compress(model, train_loader, test_loader, CompressConfig(...))``, then
``export_onnx(result.model, example_input, "pruned.onnx", result.structure)``.
"""

import sys
import types
from typing import Any

from xgen.compress.config import (
    AdmmConfig,
    CompressConfig,
    CompressError,
    DistillConfig,
    GradualConfig,
    OptimizerConfig,
    OptimizerKind,
    PruneConfig,
    Schedule,
)
from xgen.compress.export import export_onnx
from xgen.compress.prune import Masks, prunable_convs
from xgen.compress.report import CompressReport, LayerReport
from xgen.compress.train import CompressResult, compress, evaluate

__all__ = [
    "AdmmConfig",
    "CompressConfig",
    "CompressError",
    "CompressReport",
    "CompressResult",
    "DistillConfig",
    "GradualConfig",
    "LayerReport",
    "Masks",
    "OptimizerConfig",
    "OptimizerKind",
    "PruneConfig",
    "Schedule",
    "compress",
    "evaluate",
    "export_onnx",
    "prunable_convs",
]


class _CallablePackage(types.ModuleType):
    """xgen.compress is this package (Python binds a package's name on its parent when it is
    imported, replacing any function of that name), so the package itself is made callable:
    xgen.compress(model, ...) is compress(model, ...)."""

    def __call__(self, *args: Any, **kwargs: Any) -> CompressResult:
        return compress(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

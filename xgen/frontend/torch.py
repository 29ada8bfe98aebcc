"""PyTorch frontend: a torch.nn.Module and example inputs -> ONNX (in memory) -> IR graph.

torch.onnx.export with dynamo=True (torch.export based) is used: in torch 2.13 it is the default
and maintained path, it exports modules the TorchScript exporter rejects (GPT-2 in transformers 5
uses aten::diff) and its graphs come out already folded (no Shape -> Gather -> Concat chains).
Shapes are those of the example inputs: static, as the rest of xgen wants.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from xgen.errors import InputError, ModelLoadError
from xgen.frontend.onnx import import_onnx
from xgen.ir import Graph

if TYPE_CHECKING:
    import onnx
    import torch

OPSET = 18  # the lowest opset the dynamo exporter implements natively (no version conversion)


def import_torch(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor] | torch.Tensor,
    input_names: Sequence[str] | None = None,
) -> Graph:
    """Import a module traced at the shapes (and dtypes) of example_inputs."""
    return import_onnx(export_onnx(module, example_inputs, input_names))


def export_onnx(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor] | torch.Tensor,
    input_names: Sequence[str] | None = None,
) -> onnx.ModelProto:
    """The module's eval-mode function (dropout off, BatchNorm on its running statistics) as an
    ONNX model with static shapes, never touching disk. The module's own training mode is
    restored afterwards."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InputError(f"import_torch needs a torch.nn.Module, got {type(module).__name__}")
    inputs = _as_tensor_tuple(example_inputs)
    if input_names is not None and len(input_names) != len(inputs):
        raise InputError(f"{len(input_names)} input_names for {len(inputs)} example inputs")
    modes = [(m, m.training) for m in module.modules()]  # submodules may differ (frozen BN)
    module.eval()
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                module,
                inputs,
                dynamo=True,
                opset_version=OPSET,
                input_names=list(input_names) if input_names else None,
                external_data=False,
                verbose=False,
            )
    except Exception as e:  # the exporter raises many types; the user needs the module's name
        raise ModelLoadError(
            f"torch.onnx.export failed for {type(module).__name__}: {type(e).__name__}: {e}"
        ) from e
    finally:
        for m, training in modes:  # the caller's module as it was
            m.training = training
    return program.model_proto


def _as_tensor_tuple(example_inputs: object) -> tuple[torch.Tensor, ...]:
    import torch

    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else example_inputs
    if not isinstance(inputs, (tuple, list)) or not inputs:
        raise InputError(
            "example_inputs must be a tensor or a non-empty tuple of tensors, "
            f"got {type(example_inputs).__name__}"
        )
    for i, x in enumerate(inputs):
        if not isinstance(x, torch.Tensor):
            raise InputError(
                f"example input {i} is a {type(x).__name__}: only tensors are supported "
                "(wrap the module so that its forward takes tensors only)"
            )
    return tuple(inputs)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter reports progress on stdout, its loggers and warnings: keep the user's
    console for errors."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "torch.export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)

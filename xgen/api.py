"""The public entry points: xgen.compile and xgen.load."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from xgen import passes
from xgen.codegen.cc import compile_shared
from xgen.codegen.emit import generate
from xgen.errors import XgenError
from xgen.frontend.onnx import import_onnx
from xgen.ir import Graph
from xgen.ir.verify import debug_enabled, verify
from xgen.runtime import artifact
from xgen.runtime.model import CompiledModel

log = logging.getLogger(__name__)

ModelSource = str | os.PathLike | bytes | onnx.ModelProto | Graph | Any  # Any: torch.nn.Module


def compile(
    model: ModelSource,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    example_inputs: Any = None,
    constant_inputs: Mapping[str, np.ndarray] | None = None,
    threads: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    debug: bool = False,
    optimize: bool = True,
    winograd: bool = True,
    fusion: bool = True,
) -> CompiledModel:
    """Compile a model to C and load it.

    model: an ONNX file path, its bytes, an onnx.ModelProto, an xgen IR Graph, or a
    torch.nn.Module (then example_inputs, a tensor or a tuple of tensors, fixes the input shapes
    and dtypes; `xgen.compile(module, (x,))` passes them in second place). The compiled model
    computes the module's eval-mode function (dropout off, BatchNorm on running statistics); the
    module itself keeps its training mode. Called with torch tensors, it returns torch tensors.
    input_shapes fixes the dynamic dims of an ONNX model's inputs; constant_inputs fixes the
    value of inputs that must be known at compile time (a shape or axes tensor). threads caps
    the threads a run uses (default: OpenMP's).
    cache_dir overrides $XGEN_CACHE_DIR / ~/.cache/xgen; debug verifies the IR between steps.
    optimize=False skips the graph passes (BatchNormalization folding, fused epilogues).
    winograd=False keeps dense 3x3 convolutions off Winograd's F(4x4, 3x3), which is up to 2.6x
    faster on a layer but rounds a few times more (about 1e-5 of the output's magnitude).
    fusion=False runs every node as a kernel of its own (no fused epilogues, attention or
    elementwise blocks): what fusion saves, measured.
    """
    log.info("importing %s", _describe(model))
    graph = _import(model, input_shapes, example_inputs, constant_inputs)
    log.info("imported %d nodes", len(graph.nodes))
    debug = debug or debug_enabled()
    if debug:
        verify(graph, after="import")
    if optimize:
        graph = passes.optimize(graph, debug, winograd, fusion)
        log.info("graph passes done: %d nodes (winograd=%s, fusion=%s)",
                 len(graph.nodes), winograd, fusion)  # fmt: skip
    generated = generate(graph)
    log.info("generated %d lines of C, %d bytes of weights, %d of arena",
             generated.source.count("\n"), len(generated.weights),
             generated.arena_bytes)  # fmt: skip
    library = compile_shared(generated.source, cache_dir)
    return CompiledModel(generated, library, threads)


def load(directory: str | os.PathLike, threads: int | None = None) -> CompiledModel:
    """A model saved with CompiledModel.save; recompiles only if it was built for another CPU.

    threads overrides the threads saved with the model (its `threads` when compiled); 0 is
    OpenMP's default. Every file is checked against the manifest (field types, sha256 of each
    file) and the library against the model's buffer sizes: an XgenError names the file that
    differs."""
    log.info("loading %s", directory)
    generated, library, saved_threads = artifact.load_artifact(Path(directory))
    if library is None:
        log.info("%s was built for another CPU: recompiling", directory)
        library = compile_shared(generated.source)
    return CompiledModel(generated, library, saved_threads if threads is None else threads)


def _import(
    model: ModelSource,
    input_shapes: Mapping[str, Sequence[int]] | None,
    example_inputs: Any,
    constant_inputs: Mapping[str, np.ndarray] | None,
) -> Graph:
    if isinstance(model, Graph):
        return _copy(model)  # the passes rewrite in place; the caller's graph stays as it was
    if isinstance(model, str | os.PathLike | bytes | onnx.ModelProto):
        if example_inputs is not None:
            raise XgenError(
                "example_inputs is for torch modules; give input_shapes for ONNX models"
            )
        return import_onnx(model if isinstance(model, bytes | onnx.ModelProto) else str(model),
                           input_shapes, constant_inputs)  # fmt: skip
    if _is_torch_module(model):
        if (
            example_inputs is None
            and input_shapes is not None
            and not isinstance(input_shapes, Mapping)
        ):
            example_inputs = input_shapes  # xgen.compile(module, (x,)): tensors in second place
        elif input_shapes is not None:
            raise XgenError("input_shapes is for ONNX models; a torch module takes example_inputs")
        if example_inputs is None:
            raise XgenError("compiling a torch.nn.Module needs example_inputs (a tuple of tensors)")
        from xgen.frontend.torch import import_torch  # torch is optional and slow to import

        return import_torch(model, example_inputs)
    raise XgenError(
        f"cannot compile a {type(model).__name__}: give an ONNX path, bytes, an onnx.ModelProto "
        "or a torch.nn.Module"
    )


def _describe(model: ModelSource) -> str:
    """The model, as a log line names it."""
    if isinstance(model, str | os.PathLike):
        return str(model)
    if isinstance(model, bytes):
        return f"an ONNX model of {len(model)} bytes"
    return f"a {type(model).__name__}"


def _copy(graph: Graph) -> Graph:
    """A copy of graph's structure sharing its constants' (read-only) arrays."""
    memo = {id(v.data): v.data for v in graph.constants()}
    return copy.deepcopy(graph, memo)


def _is_torch_module(model: object) -> bool:
    return any(
        cls.__module__.startswith("torch.nn") and cls.__name__ == "Module"
        for cls in type(model).__mro__
    )

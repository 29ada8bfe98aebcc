"""The engines xgen is measured against, each built on one model the way its users would run it.

onnxruntime and OpenVINO run the same ONNX export as xgen; PyTorch eager and torch.compile run
the module it was exported from. Each gets the same thread count.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor, nn

Outputs = list[np.ndarray]
Runner = Callable[[], Outputs]


@dataclass(frozen=True)
class Workload:
    """One model as every engine takes it."""

    onnx_path: Path  # the ONNX export, on disk for the engines that read files
    onnx_bytes: bytes  # the same, serialised
    feeds: dict[str, np.ndarray]  # inputs by ONNX input name
    module: nn.Module  # the torch module the export came from
    inputs: tuple[Tensor, ...]  # its example inputs
    threads: int
    spin: bool  # idle worker threads spin rather than sleep


@dataclass(frozen=True)
class Peer:
    name: str  # the column label
    package: str  # the module it imports: missing means the peer is skipped
    create: Callable[[Workload], Runner]
    owns_weights: bool  # it loads its own copy of the weights: its RSS growth is its memory

    def missing(self) -> str | None:
        """Why the peer cannot run here, or None. Imports its package, so that the memory
        measured on the first model does not include loading the library."""
        try:
            importlib.import_module(self.package)
        except Exception as e:  # a broken install raises more than ImportError
            return f"cannot import {self.package} ({type(e).__name__}: {e}); make install adds it"
        return None


def _onnxruntime(work: Workload) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = work.threads
    options.inter_op_num_threads = 1
    # Idle onnxruntime workers spin by default; interleaved with the other engines on the same
    # cores they would steal their time, so they sleep unless spinning was asked for.
    options.add_session_config_entry("session.intra_op.allow_spinning", str(int(work.spin)))
    providers = ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(work.onnx_bytes, options, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail type
        if REPLACED_TENSOR not in str(e):
            raise
        session = ort.InferenceSession(
            work.onnx_bytes, options, providers=providers, disabled_optimizers=[FAILING_FUSION]
        )
    return lambda: session.run(None, work.feeds)


# onnxruntime 1.32 fails to load some graphs its own transformer optimizer writes (MiniLM's):
# its MatMulAddFusion then stops with this message. Without that one fusion the graph loads,
# every other optimization still on.
REPLACED_TENSOR = "Attempt to replace the existing tensor"
FAILING_FUSION = "MatMulAddFusion"


def _openvino(work: Workload) -> Runner:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    config = {
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        hints.inference_precision: ov.Type.f32,  # no bf16/fp16 downcast on CPUs that have it
        props.inference_num_threads: work.threads,
    }
    compiled = ov.Core().compile_model(str(work.onnx_path), "CPU", config)
    request = compiled.create_infer_request()
    return lambda: list(request.infer(work.feeds).values())


def _torch_outputs(result: Any) -> Outputs:
    items = result if isinstance(result, tuple | list) else (result,)
    return [t.numpy() for t in items]


def _torch_runner(module: Callable[..., Any], work: Workload) -> Runner:
    import torch

    torch.set_num_threads(work.threads)

    def run() -> Outputs:
        with torch.inference_mode():
            return _torch_outputs(module(*work.inputs))

    return run


def _eager(work: Workload) -> Runner:
    return _torch_runner(work.module, work)


def _compiled(work: Workload) -> Runner:
    import torch

    # Default inductor; it compiles on the first call, which the benchmark's first run makes.
    return _torch_runner(torch.compile(work.module), work)


PEERS: dict[str, Peer] = {
    p.name: p
    for p in [
        Peer("ort", "onnxruntime", _onnxruntime, owns_weights=True),
        Peer("openvino", "openvino", _openvino, owns_weights=True),
        Peer("eager", "torch", _eager, owns_weights=False),
        Peer("compile", "torch", _compiled, owns_weights=False),
    ]
}


def rss_bytes() -> int:
    """The process's resident set now (Linux; 0 elsewhere, where memory is not reported). Memory
    that was freed goes back to the OS first, lest a peer reuse it unseen."""
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def available(names: Sequence[str]) -> list[Peer]:
    """The named peers that can run here, saying why for each one that cannot."""
    peers = []
    for name in names:
        why = PEERS[name].missing()
        if why:
            print(f"skipping peer {name}: {why}", flush=True)
        else:
            peers.append(PEERS[name])
    return peers

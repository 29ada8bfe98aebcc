"""Latency of xgen against onnxruntime, OpenVINO, PyTorch eager and torch.compile on zoo models.

The ONNX peers run the same export as xgen, the PyTorch ones the module it came from, all with
the same thread count. Rounds interleave every engine (xgen, ort, openvino, eager, compile,
xgen...) so that a slow phase of the machine hits them alike; the medians are reported, with
each engine's outputs checked against xgen's. Used by `xgen bench` and
benchmarks/bench_latency.py.
"""

from xgen.bench.report import BenchResult, PeerResult, markdown, relative_error
from xgen.bench.runner import DEFAULT_MODELS, bench_model, machine, main

__all__ = ["DEFAULT_MODELS", "BenchResult", "PeerResult", "bench_model", "machine", "main",
           "markdown", "relative_error"]  # fmt: skip

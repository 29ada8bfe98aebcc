"""A 1x1 expansion fused into the depthwise conv that reads it (passes/expand_depthwise.py,
kernels/expand_depthwise.h) against PyTorch, on MobileNet-like blocks of awkward shapes: stride 1
and 2, 3x3 and 5x5 windows, planes that are odd in both dims, expanded channels that end mid
vector, batch 2, a residual, no activation on the expansion; with bands of one output row (the
rows a band shares with the next moved, not recomputed) and of as many as fit; the fused graph
run by the numpy reference too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import run_threads_deterministic

import xgen
from xgen import reference
from xgen.codegen import lower_gemm
from xgen.frontend.onnx import import_onnx
from xgen.frontend.torch import export_onnx
from xgen.ir import Op
from xgen.passes import expand_depthwise, optimize

# name: batch, cin, cexp, window, stride, (h, w), residual, expansion activation
CASES = {
    "stride_2": (1, 16, 96, 3, 2, (23, 29), False, True),
    "residual_batch_2": (2, 24, 144, 3, 1, (17, 15), True, True),
    "window_5": (1, 40, 240, 5, 1, (12, 12), True, True),
    "odd_channels_linear": (1, 20, 52, 3, 1, (13, 11), True, False),
    "window_5_stride_2": (1, 8, 200, 5, 2, (30, 31), False, True),
}


class Block(torch.nn.Module):
    """Expand (1x1 + ReLU6), depthwise (+ ReLU6), project (1x1), maybe + x."""

    def __init__(self, cin: int, cexp: int, window: int, stride: int, residual: bool, act: bool):
        super().__init__()
        self.expand = torch.nn.Conv2d(cin, cexp, 1)
        self.depthwise = torch.nn.Conv2d(cexp, cexp, window, stride, window // 2, groups=cexp)
        self.project = torch.nn.Conv2d(cexp, cin, 1)
        self.residual, self.act = residual, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x)
        h = torch.nn.functional.relu6(h) if self.act else h
        y = self.project(torch.nn.functional.relu6(self.depthwise(h)))
        return y + x if self.residual else y


def case(name: str) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The block's ONNX export, an input, and PyTorch's output."""
    batch, cin, cexp, window, stride, (h, w), residual, act = CASES[name]
    torch.manual_seed(0)
    block = Block(cin, cexp, window, stride, residual, act).eval()
    x = torch.randn(batch, cin, h, w)
    with torch.no_grad():
        expected = block(x).numpy()
    return export_onnx(block, (x,)), x.numpy(), expected


@pytest.fixture(autouse=True)
def _every_size_fuses(monkeypatch):
    monkeypatch.setattr(expand_depthwise, "MIN_EXPANDED_BYTES", 0)


def assert_close(got: np.ndarray, want: np.ndarray, name: str) -> None:
    error = np.abs(got - want).max() / np.abs(want).max()
    assert error < 1e-5, f"{name}: error {error:.2e} of the output's magnitude"


@pytest.mark.parametrize("buffer_floats", [lower_gemm.EXPAND_BUFFER_FLOATS, 1])
@pytest.mark.parametrize("name", CASES)
def test_fused_block_matches_torch(name: str, buffer_floats: int, monkeypatch) -> None:
    monkeypatch.setattr(lower_gemm, "EXPAND_BUFFER_FLOATS", buffer_floats)  # 1: bands of 1 row
    model, x, expected = case(name)
    compiled = xgen.compile(model)
    assert compiled.source.split("xgen_run")[-1].count("xg_expand_depthwise_nhwc(") == 1
    for threads in (1, 2, 3):
        (got,) = run_threads_deterministic(compiled, {compiled.input_names[0]: x}, threads).values()
        assert_close(got, expected, f"{name}, {threads} threads")


@pytest.mark.parametrize("name", CASES)
def test_reference_runs_the_fused_graph(name: str) -> None:
    model, x, expected = case(name)
    graph = optimize(import_onnx(model))
    assert any(n.op is Op.CONV and n.attrs.expand is not None for n in graph.nodes)
    (got,) = reference.run(graph, {graph.inputs[0].name: x}).values()
    assert_close(got, expected, name)


def fused_count(module: torch.nn.Module, x: torch.Tensor) -> int:
    graph = optimize(import_onnx(export_onnx(module, (x,))))
    return sum(n.op is Op.CONV and n.attrs.expand is not None for n in graph.nodes)


class TwoReaders(Block):
    """The expansion read by the depthwise conv and by a second branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x)
        return self.depthwise(h) + h.mean()


def test_fusion_needs_the_expansion_read_by_the_depthwise_conv_only() -> None:
    x = torch.randn(1, 16, 12, 12)
    assert fused_count(Block(16, 64, 3, 1, False, True).eval(), x) == 1
    assert fused_count(TwoReaders(16, 64, 3, 1, False, True).eval(), x) == 0


def test_small_expansions_stay_apart(monkeypatch) -> None:
    monkeypatch.undo()  # the latency rule: only expanded tensors of 1 MiB or more fuse
    block = Block(16, 96, 3, 1, False, True).eval()
    assert fused_count(block, torch.randn(1, 16, 28, 28)) == 0  # 0.3 MB
    assert fused_count(block, torch.randn(1, 16, 56, 56)) == 1  # 1.2 MB

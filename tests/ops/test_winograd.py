"""Winograd's F(4x4, 3x3) convolution (kernels/winograd.h) against onnxruntime on awkward shapes:
planes that are not whole 4x4 tiles, channels that are not multiples of 16, output channels
that end mid-group, padding on some sides only or of 2, more tiles than a GEMM block or a band,
batch 2, and the fused bias, residual and ReLU; then the pass that chooses it
(passes/winograd.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from harness import OPSET, conv_branches_model, run_onnxruntime, run_threads_deterministic
from onnx import helper, numpy_helper

import xgen
from xgen.frontend.onnx import import_onnx
from xgen.ir import Op
from xgen.ir.ops import ConvKernel
from xgen.ir.sparsity import PatternStructure, assign_patterns, candidate_patterns
from xgen.passes import optimize, winograd

RNG = np.random.default_rng(11)
# Winograd's error scales with the output's magnitude, not each element's: the transforms mix
# values up to 8x and 1/24x each other. Against the direct kernel's ~1e-6 of it.
RELATIVE_TO_MAX = 3e-5

# name: batch, cin, cout, (h, w), ONNX pads (top, left, bottom, right)
CASES = {
    "odd_channels": (2, 20, 19, (9, 11), (1, 1, 1, 1)),
    "no_padding": (1, 33, 40, (7, 7), (0, 0, 0, 0)),
    "one_pixel": (1, 16, 16, (1, 1), (1, 1, 1, 1)),
    "asymmetric_pads": (1, 17, 33, (13, 30), (0, 1, 1, 0)),
    "pads_of_2": (1, 24, 20, (6, 5), (2, 2, 2, 2)),
    "deep_7x7": (2, 64, 72, (7, 7), (1, 1, 1, 1)),  # 72 = a group of 64 and one of 8
    "three_groups": (1, 16, 130, (10, 22), (1, 1, 1, 1)),
    "many_tiles": (1, 32, 48, (30, 31), (1, 1, 1, 1)),  # 64 tiles: blocks of 28
    "wide_channels": (1, 200, 24, (8, 8), (1, 1, 1, 1)),
    "two_bands": (1, 250, 16, (52, 50), (1, 1, 1, 1)),  # 169 tiles, 113 a band (BAND_FLOATS)
}


@pytest.fixture(scope="module")
def case_model():
    """Every case on Winograd, whatever the latency model says of such small layers."""
    weights = {
        name: RNG.standard_normal((cout, cin, 3, 3)).astype(np.float32)
        for name, (_, cin, cout, *_) in CASES.items()
    }
    cases = {name: (*geometry, weights[name]) for name, geometry in CASES.items()}
    model, feeds = conv_branches_model(cases, RNG)
    expected = run_onnxruntime(model, feeds)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd, "winograd_pays", lambda node: True)
        compiled = xgen.compile(model)
    return compiled, feeds, dict(zip(CASES, expected, strict=True))


def test_every_case_runs_on_winograd(case_model) -> None:
    compiled, _, _ = case_model
    body = compiled.source.split("xgen_run")[-1]
    assert body.count("xg_winograd_conv_nhwc(") == len(CASES)
    assert "xg_conv_nhwc(" not in body


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_winograd_matches_onnxruntime(case_model, threads: int) -> None:
    compiled, feeds, expected = case_model
    result = run_threads_deterministic(compiled, feeds, threads)
    for name, want in expected.items():
        error = np.abs(result[name] - want).max() / np.abs(want).max()
        assert error < RELATIVE_TO_MAX, f"{name}: error {error:.2e} of the output's magnitude"


# ---- the choice -----------------------------------------------------------------------------


def chosen(
    cin: int, cout: int, size: int, stride: int = 1, weight: np.ndarray | None = None, **kw
) -> ConvKernel | None:
    """The kernel the passes choose for a padded 3x3 conv over a size x size plane."""
    if weight is None:
        weight = RNG.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    conv = helper.make_node(
        "Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4, strides=[stride] * 2
    )
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (1, cin, size, size))
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph([conv], "conv", [x], [y], [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    (node,) = [n for n in optimize(import_onnx(model), **kw).nodes if n.op is Op.CONV]
    return node.attrs.kernel


def test_winograd_chosen_where_it_pays() -> None:
    assert chosen(64, 64, 56) is ConvKernel.WINOGRAD
    assert chosen(256, 256, 14) is ConvKernel.WINOGRAD
    assert chosen(512, 512, 7) is None  # its 4x weight, read from memory, costs more
    assert chosen(3, 64, 56) is None  # too few channels: the transforms cost more
    assert chosen(64, 64, 56, stride=2) is None  # Winograd is stride 1 only
    assert chosen(64, 64, 56, winograd=False) is None


def test_sparse_kernels_come_first() -> None:
    weight = RNG.standard_normal((64, 64, 3, 3)).astype(np.float32)
    weight[:, :, [0, 0, 2, 2], [0, 2, 0, 2]] = 0  # 5 of 9 taps kept: no pattern, but
    weight[:, 8:] = 0  # 7 kernels in 8 removed: CSR beats dense
    assert chosen(64, 64, 56, weight=weight) is ConvKernel.CSR


def test_winograd_against_the_sparse_kernels() -> None:
    """Scattered zeros, 1 weight in 10 kept: CSR costs 0.4 of the direct kernel, Winograd less
    at 56x56x64 (measured: VGG-16 so pruned runs 87 ms on CSR, 77 dense on Winograd)."""
    weight = RNG.standard_normal((64, 64, 3, 3)).astype(np.float32)
    weight[RNG.random(weight.shape) < 0.9] = 0
    assert chosen(64, 64, 56, weight=weight) is ConvKernel.WINOGRAD
    assert chosen(64, 64, 56, weight=weight, winograd=False) is ConvKernel.CSR
    # 4 taps of 9 in 8 patterns, 3 kernels in 4 removed: 1 in 9 kept, the pattern kernel stays
    library = candidate_patterns()[:8]
    weight = RNG.standard_normal((64, 64, 3, 3)).astype(np.float32)
    weight *= PatternStructure(library, assign_patterns(weight, library, 0.75)).mask()
    assert chosen(64, 64, 56, weight=weight) is ConvKernel.PATTERN

"""Channels-last depthwise Conv and pooling (xg_depthwise_nhwc, xg_pool_nhwc) against
onnxruntime running the same op on N x C x spatial tensors.

The nodes are built channels-last by hand (what passes/layout.py makes of a model's convs and
pools), all cases in one graph so that the C compiler runs once; the compiled model then runs on
1, 2 and 3 threads, which must agree to the bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from harness import make_model, run_onnxruntime, run_reference

import xgen
from xgen.ir import DType, Graph, Op
from xgen.ir.ops import Activation, ConvAttrs, Epilogue, PoolAttrs

RNG = np.random.default_rng(7)
TOL = {"rtol": 1e-4, "atol": 1e-5}  # accumulation order differs from onnxruntime's

RELU = Epilogue(activation=Activation.RELU)
CLIP6 = Epilogue(activation=Activation.CLIP, clip_min=0.0, clip_max=6.0)
PLAIN = Epilogue()

# name: x shape (N, C, spatial), kernel, Conv attrs (strides, pads, dilations), bias, epilogue
DEPTHWISE = {
    "c1_3x3": ((1, 1, 5, 5), (3, 3), {"pads": [1, 1, 1, 1]}, True, PLAIN),
    "c3_no_pad": ((1, 3, 7, 7), (3, 3), {}, False, PLAIN),
    "c17_s2_asym": ((1, 17, 13, 9), (3, 3), {"strides": [2, 2], "pads": [0, 1, 1, 0]}, True, RELU),
    "c33_5x5_dil2": (
        (1, 33, 13, 21),
        (5, 5),
        {"pads": [2, 2, 2, 2], "dilations": [2, 2]},
        True,
        PLAIN,
    ),
    "c96_s2": ((1, 96, 14, 14), (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, True, CLIP6),
    "c16_s3_dil_x": (
        (1, 16, 13, 29),
        (3, 3),
        {"strides": [3, 3], "dilations": [1, 2]},
        False,
        RELU,
    ),
    "c3_1x3": ((1, 3, 13, 19), (1, 3), {"pads": [0, 1, 0, 1]}, True, PLAIN),
    "c5_kernel_past_input": ((1, 5, 3, 3), (5, 5), {"pads": [2, 2, 2, 2]}, True, PLAIN),
    "batch2_s2_dil2": (
        (2, 17, 13, 25),
        (3, 3),
        {"strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [2, 2]},
        True,
        PLAIN,
    ),
    "batch2_c64_big": ((2, 64, 20, 24), (3, 3), {"pads": [1, 1, 1, 1]}, True, CLIP6),
    "stride_2x1": ((2, 33, 9, 30), (3, 3), {"strides": [2, 1], "pads": [1, 0, 0, 1]}, True, PLAIN),
    "1d_s2": ((2, 17, 40), (5,), {"strides": [2], "pads": [2, 1]}, True, RELU),
    "1d_c96_s1": ((1, 96, 33), (3,), {"pads": [1, 1]}, False, PLAIN),
    "3d": ((1, 3, 4, 5, 6), (3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}, True, PLAIN),
    "3d_c33_s2": (
        (1, 33, 5, 6, 20),
        (3, 3, 3),
        {"strides": [2, 2, 2], "pads": [1, 0, 1, 0, 1, 1]},
        True,
        CLIP6,
    ),
    "residual_clip6": (
        (1, 17, 9, 21),
        (3, 3),
        {"pads": [1, 1, 1, 1]},
        True,
        Epilogue(activation=Activation.CLIP, clip_min=0.0, clip_max=6.0, residual=True),
    ),
    "residual_relu_c96": (
        (2, 96, 6, 11),
        (3, 3),
        {"pads": [1, 1, 1, 1]},
        False,
        Epilogue(activation=Activation.RELU, residual=True),
    ),
    "residual_only": (
        (1, 35, 7, 12),
        (3, 3),
        {"pads": [1, 1, 1, 1]},
        True,
        Epilogue(residual=True),
    ),
    "gelu": ((1, 20, 5, 11), (3, 3), {"pads": [1, 1, 1, 1]}, True, Epilogue(Activation.GELU)),
}

# name: op, x shape (N, C, spatial), pool attrs (besides kernel_shape), kernel, with NaNs and infs
POOLS = {
    "max_1x1": ("MaxPool", (1, 5, 6, 7), {}, (1, 1), False),
    "max_2x2_s2_batch2": ("MaxPool", (2, 64, 8, 10), {"strides": [2, 2]}, (2, 2), False),
    "max_3x3_s2_big": (
        "MaxPool",
        (2, 64, 24, 30),
        {"strides": [2, 2], "pads": [1, 1, 1, 1]},
        (3, 3),
        False,
    ),
    "max_ceil_c70": (
        "MaxPool",
        (1, 70, 14, 13),
        {"strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1},
        (3, 3),
        False,
    ),
    "max_dil2": (
        "MaxPool",
        (1, 64, 12, 20),
        {"pads": [2, 2, 2, 2], "dilations": [2, 2]},
        (3, 3),
        False,
    ),
    "max_nan": ("MaxPool", (1, 70, 9, 21), {"pads": [1, 1, 1, 1]}, (3, 3), True),
    "max_c1_ceil": (
        "MaxPool",
        (1, 1, 20, 30),
        {"strides": [2, 2], "pads": [1, 1, 0, 0], "ceil_mode": 1},
        (3, 3),
        False,
    ),
    "max_1d_ceil": (
        "MaxPool",
        (2, 5, 30),
        {"strides": [2], "pads": [1, 1], "ceil_mode": 1},
        (3,),
        True,
    ),
    "max_3d": ("MaxPool", (1, 64, 4, 6, 10), {"pads": [1, 1, 1, 1, 1, 1]}, (3, 3, 3), False),
    "max_3d_ceil": (
        "MaxPool",
        (1, 5, 5, 6, 7),
        {"strides": [2, 2, 2], "ceil_mode": 1},
        (2, 2, 2),
        False,
    ),
    "avg_excl_pad_nan": ("AveragePool", (1, 70, 12, 20), {"pads": [1, 1, 1, 1]}, (3, 3), True),
    "avg_incl_pad": (
        "AveragePool",
        (1, 70, 12, 20),
        {"pads": [1, 1, 1, 1], "count_include_pad": 1},
        (3, 3),
        False,
    ),
    "avg_2x2_s2_batch2": ("AveragePool", (2, 64, 8, 10), {"strides": [2, 2]}, (2, 2), False),
    "avg_ceil_incl_pad": (
        "AveragePool",
        (1, 5, 11, 13),
        {"strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 1},
        (3, 3),
        False,
    ),
    "avg_ceil_excl_pad_c1": (
        "AveragePool",
        (1, 1, 11, 14),
        {"strides": [2, 2], "pads": [0, 1, 1, 0], "ceil_mode": 1},
        (3, 3),
        False,
    ),
    "avg_1d_incl_pad": (
        "AveragePool",
        (2, 5, 31),
        {"strides": [2], "pads": [1, 1], "count_include_pad": 1},
        (3,),
        False,
    ),
    "avg_3d": (
        "AveragePool",
        (2, 70, 4, 5, 12),
        {"strides": [1, 2, 2], "pads": [1, 1, 1, 1, 1, 1]},
        (3, 3, 3),
        False,
    ),
}


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def last(a: np.ndarray) -> np.ndarray:
    """N x C x spatial -> N x spatial x C."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def apply_epilogue(y: np.ndarray, epilogue: Epilogue, res: np.ndarray | None) -> np.ndarray:
    if res is not None:
        y = y + res
    if epilogue.activation is Activation.RELU:
        return np.maximum(y, 0)
    if epilogue.activation is Activation.CLIP:
        return np.clip(y, epilogue.clip_min, epilogue.clip_max)
    if epilogue.activation is Activation.GELU:
        erf = np.vectorize(math.erf)
        return (0.5 * y * (1 + erf(y / math.sqrt(2)))).astype(np.float32)
    return y


class Cases:
    """The channels-last graph, its feeds and the outputs onnxruntime expects (channels last)."""

    def __init__(self) -> None:
        self.graph = Graph()
        self.feeds: dict[str, np.ndarray] = {}
        self.expected: dict[str, np.ndarray] = {}

    def input(self, name: str, value: np.ndarray):
        self.feeds[name] = value
        return self.graph.add_input(name, DType.FLOAT32, value.shape)

    def depthwise(self, name: str, x_shape, kernel, attrs, bias: bool, epilogue: Epilogue) -> None:
        g, rank, channels = self.graph, len(kernel), x_shape[1]
        x, w, b = rand(*x_shape), rand(channels, 1, *kernel), rand(channels)
        onnx_attrs = {"group": channels, "kernel_shape": list(kernel), **attrs}
        consts = {"w": w, **({"b": b} if bias else {})}
        (want,) = run_onnxruntime(make_model("Conv", {"x": x}, onnx_attrs, consts), {"x": x})
        res = rand(*want.shape) if epilogue.residual else None
        inputs = [self.input(f"{name}_x", last(x)), g.constant(w, f"{name}_w")]
        inputs += [g.constant(b, f"{name}_b")] if bias else []
        inputs += [self.input(f"{name}_res", last(res))] if res is not None else []
        conv = ConvAttrs(
            strides=tuple(attrs.get("strides", [1] * rank)),
            pads=tuple(attrs.get("pads", [0] * 2 * rank)),
            dilations=tuple(attrs.get("dilations", [1] * rank)),
            group=channels,
            epilogue=epilogue,
            channels_last=True,
        )
        (y,) = g.add_node(Op.CONV, inputs, conv, output_names=[name])
        g.outputs.append(y)
        self.expected[name] = last(apply_epilogue(want, epilogue, res))

    def pool(self, name: str, op: str, x_shape, attrs, kernel, nans: bool) -> None:
        rank = len(kernel)
        x = rand(*x_shape)
        oracle = run_onnxruntime
        if nans:  # and infinities: MaxPool makes a window holding a NaN NaN, as xgen's reference
            specials = np.array([np.nan, np.inf, -np.inf], np.float32)
            spots = RNG.choice(x.size, x.size // 25, replace=False)
            x.flat[spots] = specials[np.arange(spots.size) % 3]
            oracle = run_reference if op == "MaxPool" else run_onnxruntime
        onnx_attrs = {"kernel_shape": list(kernel), **attrs}
        (want,) = oracle(make_model(op, {"x": x}, onnx_attrs), {"x": x})
        assert np.isnan(want).any() == nans, name
        pool = PoolAttrs(
            kernel_shape=tuple(kernel),
            strides=tuple(attrs.get("strides", [1] * rank)),
            pads=tuple(attrs.get("pads", [0] * 2 * rank)),
            dilations=tuple(attrs.get("dilations", [1] * rank)),
            ceil_mode=bool(attrs.get("ceil_mode", 0)),
            count_include_pad=bool(attrs.get("count_include_pad", 0)),
            channels_last=True,
        )
        ir_op = Op.MAX_POOL if op == "MaxPool" else Op.AVERAGE_POOL
        (y,) = self.graph.add_node(
            ir_op, [self.input(f"{name}_x", last(x))], pool, output_names=[name]
        )
        self.graph.outputs.append(y)
        self.expected[name] = last(want)


@pytest.fixture(scope="module")
def cases() -> Cases:
    c = Cases()
    for name, case in DEPTHWISE.items():
        c.depthwise(name, *case)
    for name, case in POOLS.items():
        c.pool(name, *case)
    return c


@pytest.fixture(scope="module")
def compiled(cases: Cases):
    # optimize=False: the nodes reach the kernels as built
    return xgen.compile(cases.graph, optimize=False)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_channels_last_matches_onnxruntime(cases: Cases, compiled, threads: int) -> None:
    compiled.threads = threads
    result = compiled.run(dict(cases.feeds))
    for name, want in cases.expected.items():
        assert result[name].shape == want.shape, name
        np.testing.assert_allclose(result[name], want, **TOL, err_msg=name)
    if threads > 1:  # the team splits whole output rows: every thread count gives the same bits
        compiled.threads = 1
        alone = compiled.run(dict(cases.feeds))
        for name in cases.expected:
            np.testing.assert_array_equal(result[name], alone[name], err_msg=name)


def test_kernels_used(compiled) -> None:
    """The nodes really went to the channels-last kernels (a name followed by "(" is the
    kernel's definition, then its calls)."""
    source = compiled.source
    assert source.count("xg_depthwise_nhwc(") == 1 + len(DEPTHWISE)
    assert source.count("xg_pool_nhwc(") == 1 + len(POOLS)
    assert source.count("xg_conv_depthwise(") == source.count("xg_pool(") == 1

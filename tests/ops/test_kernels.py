"""The compute kernels (gemm, conv, pool, reduce, norm, resize) against numpy / PyTorch /
onnxruntime, through xgen.compile on hand-built IR graphs.

Each test puts many awkward cases into one graph (one node per case, each with its own input)
so that a single C compile covers them all.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from harness import make_model, run_onnxruntime
from onnx import helper, numpy_helper

from xgen.ir import DType, Graph, Op, Value
from xgen.ir import ops as O

RNG = np.random.default_rng(7)
Expect = Callable[[dict[str, np.ndarray]], np.ndarray]


def run_graph(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import xgen

    # The direct kernels, at their tolerance (Winograd's: tests/ops/test_winograd.py).
    compiled = xgen.compile(graph, winograd=False)
    result = compiled.run(feeds)
    return [result[v.name] for v in graph.outputs]


class Cases:
    """A graph collecting one node per case, with the expected result of each."""

    def __init__(self) -> None:
        self.graph = Graph("cases")
        self.feeds: dict[str, np.ndarray] = {}
        self.expected: list[tuple[str, np.ndarray]] = []

    def input(
        self,
        shape: tuple[int, ...],
        low: float = -1.0,
        high: float = 1.0,
        dtype: DType = DType.FLOAT32,
    ) -> Value:
        """A graph input of uniform random data in [low, high] (integers: both included)."""
        value = self.graph.add_input("x", dtype, shape)
        if dtype.is_float:
            data = RNG.uniform(low, high, shape)
        else:
            data = RNG.integers(int(low), int(high), shape, endpoint=True)
        self.feeds[value.name] = data.astype(dtype.numpy)
        return value

    def const(self, shape: tuple[int, ...]) -> Value:
        return self.graph.constant(RNG.uniform(-1, 1, shape).astype(np.float32), "w")

    def data(self, value: Value) -> np.ndarray:
        return value.data if value.data is not None else self.feeds[value.name]

    def add(self, label: str, op: Op, inputs: list[Value], attrs: object, expect: np.ndarray):
        (out,) = self.graph.add_node(op, inputs, attrs)
        self.graph.outputs.append(out)
        self.expected.append((label, expect))

    def check(self, rtol: float = 1e-4, atol: float = 1e-5) -> None:
        results = run_graph(self.graph, self.feeds)
        for (label, expect), got in zip(self.expected, results, strict=True):
            assert got.shape == expect.shape, f"{label}: shape {got.shape} != {expect.shape}"
            assert got.dtype == expect.dtype, f"{label}: dtype {got.dtype} != {expect.dtype}"
            np.testing.assert_allclose(got, expect, rtol=rtol, atol=atol, err_msg=label)


def torch_np(fn: Callable, *arrays: np.ndarray, **kwargs) -> np.ndarray:
    tensors = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in arrays]
    return fn(*tensors, **kwargs).numpy()


# ---- GEMM / MatMul -----------------------------------------------------------------------------

SIZES = (1, 3, 17, 64, 129)


def test_gemm_sizes_and_transposes() -> None:
    cases = Cases()
    shapes = [(m, n, k) for m, n, k in product(SIZES, SIZES, SIZES) if (m + n + k) % 3 == 0]
    for i, (m, n, k) in enumerate(shapes + [(300, 520, 600)]):
        trans_a, trans_b = bool(i & 1), bool(i & 2)
        a = cases.input((k, m) if trans_a else (m, k))
        b_shape = (n, k) if trans_b else (k, n)
        b = cases.const(b_shape) if i % 3 else cases.input(b_shape)
        ea = cases.data(a).T if trans_a else cases.data(a)
        eb = cases.data(b).T if trans_b else cases.data(b)
        attrs = O.GemmAttrs(alpha=1.0, beta=1.0, trans_a=trans_a, trans_b=trans_b)
        cases.add(f"gemm {m}x{n}x{k} tA={trans_a} tB={trans_b}", Op.GEMM, [a, b], attrs, ea @ eb)
    cases.check()


@pytest.mark.parametrize("c_shape", [(), (1,), (7,), (5, 1), (5, 7)])
def test_gemm_alpha_beta_bias(c_shape: tuple[int, ...]) -> None:
    cases = Cases()
    for const_a in (False, True):
        a = cases.const((5, 9)) if const_a else cases.input((5, 9))
        b, c = cases.input((9, 7)), cases.input(c_shape)
        attrs = O.GemmAttrs(alpha=0.5, beta=-2.0, trans_a=False, trans_b=False)
        expect = 0.5 * cases.data(a) @ cases.data(b) - 2.0 * cases.data(c)
        cases.add(f"gemm C{c_shape} const A={const_a}", Op.GEMM, [a, b, c], attrs, expect)
    cases.check()


MATMUL_SHAPES = [
    ((3, 17), (17, 5)),
    ((17,), (17, 64)),
    ((2, 3, 17), (17,)),
    ((17,), (17,)),
    ((2, 3, 4, 17), (17, 6)),
    ((2, 1, 4, 17), (3, 17, 6)),
    ((4, 17), (2, 3, 17, 5)),
    ((2, 3, 1, 9), (1, 3, 9, 129)),
    ((1, 64, 129), (1, 129, 3)),
    ((12, 37, 40), (12, 40, 45)),  # attention-like: every head packed at once
    ((3, 9, 300), (3, 300, 33)),  # K over one block: a loop of full GEMMs
    ((2, 5, 0), (2, 0, 4)),  # empty sums
]


def test_matmul_broadcast() -> None:
    cases = Cases()
    for i, (sa, sb) in enumerate(MATMUL_SHAPES):
        a = cases.input(sa)
        b = cases.const(sb) if i % 2 else cases.input(sb)
        expect = np.matmul(cases.data(a), cases.data(b))
        cases.add(f"matmul {sa} @ {sb}", Op.MATMUL, [a, b], O.MatMulAttrs(), expect)
    cases.check()


# ---- convolution ---------------------------------------------------------------------------

CONV_CASES = [
    # batch, cin, cout, spatial, kernel, strides, pads, dilations, group, bias
    (1, 3, 5, (7, 7), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (2, 17, 33, (9, 11), (3, 3), (2, 2), (0, 1, 2, 0), (1, 1), 1, True),
    (2, 19, 19, (9, 11), (3, 3), (2, 1), (1, 1, 1, 1), (2, 2), 19, True),  # depthwise
    (1, 32, 32, (7, 7), (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 32, False),  # depthwise
    (2, 24, 24, (15, 14), (3, 3), (2, 2), (1, 0, 0, 1), (1, 1), 24, True),  # depthwise
    (1, 6, 6, (2, 3, 9), (1, 2, 3), (1, 1, 2), (0, 1, 1, 0, 0, 1), (1, 1, 2), 6, True),  # 3-D dw
    (2, 5, 5, (17,), (3,), (2,), (1, 1), (1,), 5, True),  # 1-D depthwise
    (1, 2, 2, (260, 250), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),  # dw, big planes
    (1, 12, 18, (8, 8), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3, True),
    (2, 8, 16, (5, 5), (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 8, True),  # channel multiplier 2
    (1, 65, 20, (7, 7), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, False),  # 1x1 as GEMM
    (2, 64, 17, (7, 7), (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, True),  # 1x1 stride 2
    (1, 5, 7, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (2, 20, 64, (7, 7), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),  # 4 whole panels
    (1, 520, 48, (7, 7), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # 3 panels, deep
    (1, 3, 9, (16, 16), (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1, True),
    (2, 5, 7, (13,), (4,), (3,), (2, 1), (2,), 1, True),
    (1, 4, 6, (5, 6, 7), (3, 2, 3), (1, 2, 1), (1, 0, 1, 1, 1, 0), (1, 1, 2), 2, True),
    # few pixels, more channels: output tiles wider than the pixels
    (2, 40, 64, (7, 7), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (1, 48, 96, (7, 7), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # direct 1x1
    (1, 33, 64, (13, 13), (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, False),  # 1x1 stride 2
    (1, 8, 128, (17,), (3,), (1,), (1, 1), (1,), 2, True),  # 1-D, 2 groups
    # an im2col matrix over 4 MiB goes in chunks of pixels: 2 chunks, the last one partial
    (2, 16, 8, (100, 100), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    # a direct 1x1 conv as big: X is packed whole per K block, never chunked
    (1, 300, 8, (60, 60), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
]

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def torch_pads(pads: tuple[int, ...]) -> list[int]:
    """ONNX begins+ends to F.pad's last-dim-first pairs."""
    rank = len(pads) // 2
    return [v for i in reversed(range(rank)) for v in (pads[i], pads[i + rank])]


def test_conv() -> None:
    cases = Cases()
    for n, cin, cout, hw, k, s, p, d, g, with_bias in CONV_CASES:
        x, w = cases.input((n, cin, *hw)), cases.const((cout, cin // g, *k))
        b = cases.const((cout,)) if with_bias else None
        padded = F.pad(torch.from_numpy(cases.data(x)), torch_pads(p))
        expect = torch_np(
            TORCH_CONV[len(hw)], padded, w.data, b.data if b else None, stride=s, dilation=d,
            groups=g,
        )  # fmt: skip
        attrs = O.ConvAttrs(strides=s, pads=p, dilations=d, group=g)
        inputs = [x, w] + ([b] if b else [])
        cases.add(f"conv {n, cin, cout, hw, k, s, p, d, g}", Op.CONV, inputs, attrs, expect)
    cases.check()


CONV_T_CASES = [
    # batch, cin, cout, spatial, kernel, strides, pads, dilations, group, output_padding
    (1, 3, 5, (4, 4), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, (1, 1)),
    (2, 6, 4, (5, 3), (2, 3), (1, 2), (0, 0, 0, 0), (1, 1), 2, (0, 0)),
    (1, 17, 9, (7,), (4,), (3,), (1, 1), (2,), 1, (0,)),
    (1, 4, 4, (3, 3, 2), (3, 3, 3), (2, 1, 2), (1, 1, 1, 1, 1, 1), (1, 1, 1), 4, (1, 0, 1)),
]


def test_conv_transpose() -> None:
    cases = Cases()
    for n, cin, cout, hw, k, s, p, d, g, op in CONV_T_CASES:
        x, w, b = (
            cases.input((n, cin, *hw)),
            cases.const((cin, cout // g, *k)),
            cases.const((cout,)),
        )
        rank = len(hw)
        assert p[:rank] == p[rank:], "torch takes symmetric pads only"
        expect = torch_np(
            TORCH_CONV_T[rank], cases.data(x), w.data, b.data, stride=s, padding=p[:rank],
            output_padding=op, groups=g, dilation=d,
        )  # fmt: skip
        attrs = O.ConvAttrs(strides=s, pads=p, dilations=d, group=g, output_padding=op)
        cases.add(f"conv_transpose {n, cin, cout, hw, k, s, p, g}", Op.CONV_TRANSPOSE,
                  [x, w, b], attrs, expect)  # fmt: skip
    cases.check()


# ---- pooling -------------------------------------------------------------------------------

POOL_CASES = [
    # shape, kernel, strides, pads, dilations, ceil_mode
    ((1, 3, 7, 7), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    ((2, 17, 10, 9), (3, 2), (2, 2), (0, 1, 1, 0), (1, 1), True),
    ((1, 5, 11, 11), (3, 3), (3, 3), (1, 1, 1, 1), (2, 2), True),
    ((2, 4, 15), (4,), (2,), (1, 2), (1,), False),
    ((1, 2, 5, 6, 7), (2, 3, 2), (2, 1, 2), (0, 1, 1, 1, 0, 0), (1, 1, 1), True),
    ((1, 3, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), False),
]


def _pool_attrs(case: tuple, count_include_pad: bool) -> O.PoolAttrs:
    _, kernel, strides, pads, dilations, ceil_mode = case
    return O.PoolAttrs(kernel, strides, pads, dilations, ceil_mode, count_include_pad)


def _onnxruntime_pool(op_type: str, x: np.ndarray, attrs: O.PoolAttrs) -> np.ndarray:

    onnx_attrs = {
        "kernel_shape": list(attrs.kernel_shape),
        "strides": list(attrs.strides),
        "pads": list(attrs.pads),
        "ceil_mode": int(attrs.ceil_mode),
        "dilations": list(attrs.dilations),
    }
    if op_type == "AveragePool":
        onnx_attrs["count_include_pad"] = int(attrs.count_include_pad)
    model = make_model(op_type, {"x": x}, onnx_attrs, opset=19)
    return run_onnxruntime(model, {"x": x})[0]


def test_pool() -> None:
    cases = Cases()
    for case in POOL_CASES:
        for op, op_type, include in [
            (Op.MAX_POOL, "MaxPool", False),
            (Op.AVERAGE_POOL, "AveragePool", False),
            (Op.AVERAGE_POOL, "AveragePool", True),
        ]:
            x = cases.input(case[0])
            attrs = _pool_attrs(case, include)
            expect = _onnxruntime_pool(op_type, cases.data(x), attrs)
            cases.add(f"{op_type} {case} include_pad={include}", op, [x], attrs, expect)
    cases.check(rtol=1e-5, atol=1e-6)


# ---- reductions ----------------------------------------------------------------------------

NUMPY_REDUCE = {
    Op.REDUCE_SUM: np.sum,
    Op.REDUCE_MEAN: np.mean,
    Op.REDUCE_MAX: np.max,
    Op.REDUCE_MIN: np.min,
    Op.REDUCE_PROD: np.prod,
}
REDUCE_CASES = [
    ((3, 17, 5), (1,)),
    ((3, 17, 5), (0, 2)),
    ((3, 17, 5), (0, 1, 2)),
    ((2, 3, 1, 4, 5), (1, 2, 4)),
    ((2, 3, 4, 5), (2, 3)),
    ((130,), (0,)),
    ((4, 1, 6), (1,)),
    ((2, 65, 3, 7), (0, 2)),
]


def test_reduce() -> None:
    cases = Cases()
    for (shape, axes), op in product(REDUCE_CASES, NUMPY_REDUCE):
        for keepdims in (False, True):
            # products stay well scaled with factors near 1
            x = cases.input(shape, 0.8, 1.2) if op is Op.REDUCE_PROD else cases.input(shape)
            expect = NUMPY_REDUCE[op](cases.data(x).astype(np.float64), axis=axes,
                                      keepdims=keepdims).astype(np.float32)  # fmt: skip
            cases.add(f"{op.value} {shape} {axes} keepdims={keepdims}", op, [x],
                      O.ReduceAttrs(axes, keepdims), np.asarray(expect))  # fmt: skip
    cases.check()


def test_reduce_large_sum_accuracy() -> None:
    cases = Cases()
    x = cases.input((1 << 20,), 0.0, 1.0)
    y = cases.input((4096, 300), 0.0, 1.0)
    for v, axes in [(x, (0,)), (y, (0,)), (y, (1,))]:
        data = cases.data(v).astype(np.float64)
        cases.add(f"mean {v.shape} {axes}", Op.REDUCE_MEAN, [v], O.ReduceAttrs(axes, False),
                  np.asarray(data.mean(axis=axes), np.float32))  # fmt: skip
        cases.add(f"sum {v.shape} {axes}", Op.REDUCE_SUM, [v], O.ReduceAttrs(axes, False),
                  np.asarray(data.sum(axis=axes), np.float32))  # fmt: skip
    cases.check(rtol=1e-5, atol=0)


def test_arg_reduce() -> None:
    cases = Cases()
    for shape, axis in [((3, 17, 5), 1), ((3, 17, 5), 2), ((40,), 0), ((2, 3, 4), 0)]:
        for op, last, keepdims in product((Op.ARG_MAX, Op.ARG_MIN), (False, True), (False, True)):
            x = cases.input(shape)
            data = np.round(cases.data(x) * 2) / 2  # ties, so select_last_index matters
            cases.feeds[x.name] = data
            flipped = np.flip(data, axis) if last else data
            idx = (np.argmax if op is Op.ARG_MAX else np.argmin)(flipped, axis=axis)
            idx = shape[axis] - 1 - idx if last else idx
            expect = np.expand_dims(idx, axis) if keepdims else idx
            attrs = O.ArgReduceAttrs(axis, keepdims, last)
            cases.add(f"{op.value} {shape} {axis} last={last}", op, [x], attrs,
                      expect.astype(np.int64))  # fmt: skip
    cases.check(rtol=0, atol=0)


INT_DTYPES = [DType.INT64, DType.INT32, DType.INT8, DType.UINT8]


def _int_reduce(op: Op, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """ONNX integer semantics: sums and products wrap to the dtype, a mean truncates."""
    wide = x.astype(np.int64)
    with np.errstate(over="ignore"):
        if op is Op.REDUCE_MEAN:
            total = wide.sum(axis=axes, keepdims=keepdims)
            count = int(np.prod([x.shape[a] for a in axes]))
            out = np.sign(total) * (np.abs(total) // count)
        else:
            out = NUMPY_REDUCE[op](wide, axis=axes, keepdims=keepdims)
    return np.asarray(out).astype(x.dtype)


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: d.value)
def test_integer_reduce(dtype: DType) -> None:
    cases = Cases()
    info = np.iinfo(dtype.numpy)
    low, high = max(info.min, -100), min(info.max, 100)
    for (shape, axes), op in product(REDUCE_CASES, NUMPY_REDUCE):
        bound = (0 if dtype is DType.UINT8 else -2, 2) if op is Op.REDUCE_PROD else (low, high)
        x = cases.input(shape, *bound, dtype=dtype)
        cases.add(f"{op.value} {shape} {axes}", op, [x], O.ReduceAttrs(axes, False),
                  _int_reduce(op, cases.data(x), axes, False))  # fmt: skip
    # sums and products past the dtype's range wrap around, as C's do
    for op in (Op.REDUCE_SUM, Op.REDUCE_PROD, Op.REDUCE_MEAN):
        x = cases.input((3, 40), info.max // 2, info.max, dtype=dtype)
        cases.add(f"{op.value} wraps", op, [x], O.ReduceAttrs((1,), True),
                  _int_reduce(op, cases.data(x), (1,), True))  # fmt: skip
    cases.check(rtol=0, atol=0)


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: d.value)
def test_integer_arg_reduce_and_resize(dtype: DType) -> None:
    cases = Cases()
    info = np.iinfo(dtype.numpy)
    for shape, axis in [((3, 17, 5), 1), ((40,), 0), ((2, 3, 4), 2)]:
        for op, last in product((Op.ARG_MAX, Op.ARG_MIN), (False, True)):
            x = cases.input(shape, info.max - 2, info.max, dtype=dtype)  # ties near the top
            data = cases.data(x)
            find = np.argmax if op is Op.ARG_MAX else np.argmin
            idx = shape[axis] - 1 - find(np.flip(data, axis), axis) if last else find(data, axis)
            cases.add(f"{op.value} {shape} {axis} last={last}", op, [x],
                      O.ArgReduceAttrs(axis, False, last), idx.astype(np.int64))  # fmt: skip
    x = cases.input((2, 3, 5, 4), info.min, info.max, dtype=dtype)
    sizes = (2, 3, 9, 7)
    attrs = O.ResizeAttrs(
        O.ResizeMode.NEAREST,
        O.CoordinateTransform.ASYMMETRIC,
        O.NearestMode.FLOOR,
        sizes,
        (1.0, 1.0, 9 / 5, 7 / 4),
    )
    rows, cols = np.arange(9) * 5 // 9, np.arange(7) * 4 // 7
    cases.add("resize nearest", Op.RESIZE, [x], attrs, cases.data(x)[:, :, rows][..., cols])
    cases.check(rtol=0, atol=0)


# ---- softmax and normalisations ----------------------------------------------------------------


def test_softmax() -> None:
    cases = Cases()
    for shape, axis in [
        ((3, 17), 1),
        ((2, 5, 7), 1),
        ((2, 5, 7), 0),
        ((1, 130), 1),
        ((4, 3, 70), 1),
    ]:
        for op, fn in [(Op.SOFTMAX, torch.softmax), (Op.LOG_SOFTMAX, torch.log_softmax)]:
            x = cases.input(shape, -30.0, 30.0)  # wide range: the max subtraction matters
            cases.add(f"{op.value} {shape} {axis}", op, [x], O.AxisAttrs(axis),
                      torch_np(fn, cases.data(x), dim=axis))  # fmt: skip
    cases.check(rtol=1e-5, atol=1e-6)


def test_layer_norm() -> None:
    cases = Cases()
    for shape, axis, bias in [((3, 17), 1, True), ((2, 5, 7), 1, False), ((2, 5, 129), 2, True)]:
        norm = shape[axis:]
        x, gamma = cases.input(shape, -3.0, 5.0), cases.const(norm)
        beta = cases.const(norm) if bias else None
        expect = torch_np(F.layer_norm, cases.data(x), norm, gamma.data,
                          beta.data if beta else None, eps=1e-5)  # fmt: skip
        inputs = [x, gamma] + ([beta] if beta else [])
        cases.add(f"layer_norm {shape} {axis}", Op.LAYER_NORM, inputs,
                  O.LayerNormAttrs(axis, 1e-5), expect)  # fmt: skip
    cases.check(rtol=1e-4, atol=1e-5)


def test_instance_and_batch_norm() -> None:
    cases = Cases()
    for shape in [(2, 3, 7, 5), (1, 17, 9), (2, 4)]:
        c = shape[1]
        if len(shape) > 2:
            x, scale, bias = cases.input(shape, -2.0, 4.0), cases.const((c,)), cases.const((c,))
            expect = torch_np(F.instance_norm, cases.data(x), weight=torch.from_numpy(scale.data),
                              bias=torch.from_numpy(bias.data), eps=1e-5)  # fmt: skip
            cases.add(f"instance_norm {shape}", Op.INSTANCE_NORM, [x, scale, bias],
                      O.EpsilonAttrs(1e-5), expect)  # fmt: skip
        x, scale, bias, mean = (cases.input(shape), cases.const((c,)), cases.const((c,)),
                                cases.const((c,)))  # fmt: skip
        var = cases.graph.constant(RNG.uniform(0.5, 2.0, c).astype(np.float32), "var")
        expect = torch_np(F.batch_norm, cases.data(x), mean.data, var.data, scale.data,
                          bias.data, eps=1e-3)  # fmt: skip
        cases.add(f"batch_norm {shape}", Op.BATCH_NORM, [x, scale, bias, mean, var],
                  O.EpsilonAttrs(1e-3), expect)  # fmt: skip
    cases.check(rtol=1e-4, atol=1e-5)


# ---- resize ----------------------------------------------------------------------------------

T, N = O.CoordinateTransform, O.NearestMode
RESIZE_CASES = [
    # mode, transform, nearest mode, input shape, output sizes
    *[("nearest", t, n, (1, 2, 5, 7), (1, 2, 11, 4)) for t in T for n in N],
    *[
        ("linear", t, N.FLOOR, (2, 3, 4, 6), (2, 3, 9, 3))
        for t in T
        if t is not T.TF_HALF_PIXEL_FOR_NN
    ],
    *[
        ("cubic", t, N.FLOOR, (1, 2, 6, 5), (1, 2, 13, 4))
        for t in (T.HALF_PIXEL, T.ALIGN_CORNERS, T.ASYMMETRIC)
    ],
    ("linear", T.HALF_PIXEL, N.FLOOR, (4, 9), (2, 17)),
    (
        "nearest",
        O.CoordinateTransform.ASYMMETRIC,
        O.NearestMode.FLOOR,
        (2, 3, 4, 5, 6),
        (2, 3, 8, 10, 3),
    ),
]


def _onnxruntime_resize(x: np.ndarray, sizes: tuple[int, ...], attrs: dict) -> np.ndarray:
    """Resize(x, roi="", scales="", sizes) in onnxruntime."""
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, sizes)],
        [numpy_helper.from_array(np.array(sizes, np.int64), "sizes")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 8
    return run_onnxruntime(model, {"x": x})[0]


@pytest.mark.parametrize("exclude_outside", [False, True])
def test_resize(exclude_outside: bool) -> None:
    cases = Cases()
    for mode, transform, nearest, shape, sizes in RESIZE_CASES:
        if exclude_outside and mode != "cubic":
            continue
        x = cases.input(shape)
        onnx_attrs = {
            "mode": mode,
            "coordinate_transformation_mode": transform.value,
            "nearest_mode": nearest.value,
            "exclude_outside": int(exclude_outside),
        }
        expect = _onnxruntime_resize(cases.data(x), sizes, onnx_attrs)
        attrs = O.ResizeAttrs(
            mode=O.ResizeMode(mode), coordinate_transform=transform, nearest_mode=nearest,
            sizes=sizes, scales=tuple(o / i for o, i in zip(sizes, shape, strict=True)),
            exclude_outside=exclude_outside,
        )  # fmt: skip
        cases.add(f"resize {mode} {transform.value} {nearest.value} {shape}->{sizes}",
                  Op.RESIZE, [x], attrs, expect)  # fmt: skip
    cases.check(rtol=1e-5, atol=1e-5)


# ---- fused epilogues: Conv / Gemm + residual Add + Relu / Clip --------------------------------

EPILOGUES = [("Add", "Relu"), ("Clip",), ("Add",), ("Relu",), ("Add", "Clip")]


class EpilogueModel:
    """An ONNX model of one op + epilogue chain per case (a residual Add of a fresh input, Relu,
    Clip 0..6), one graph output each.

    constant_residuals: the residuals are initializers. A Conv's output is channels last (see
    passes/layout.py), and a residual read from a graph input would stay channels first, so its
    Add would not fuse; a constant's layout changes at compile time."""

    def __init__(self, constant_residuals: bool = False) -> None:
        self.constant_residuals = constant_residuals
        self.nodes: list[onnx.NodeProto] = []
        self.inits = [numpy_helper.from_array(np.float32(v), n) for n, v in (("lo", 0), ("hi", 6))]
        self.feeds: dict[str, np.ndarray] = {}
        self.outputs: list[str] = []

    def input(self, name: str, shape: tuple[int, ...]) -> str:
        self.feeds[name] = RNG.uniform(-2, 2, shape).astype(np.float32)
        return name

    def const(self, name: str, shape: tuple[int, ...]) -> str:
        self.inits.append(
            numpy_helper.from_array(RNG.uniform(-1, 1, shape).astype(np.float32), name)
        )
        return name

    def chain(
        self,
        op: str,
        inputs: list[str],
        attrs: dict,
        out_shape: tuple[int, ...],
        tail: tuple[str, ...],
    ) -> None:
        i = len(self.outputs)
        out = f"{op.lower()}{i}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        for step in tail:
            operands = ["lo", "hi"] if step == "Clip" else []
            if step == "Add":
                residual = self.const if self.constant_residuals else self.input
                operands = [residual(f"res{i}", out_shape)]
            self.nodes.append(helper.make_node(step, [out, *operands], [f"{step}{i}"]))
            out = f"{step}{i}"
        self.outputs.append(out)

    def model(self) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, a.shape)
                  for n, a in self.feeds.items()]  # fmt: skip
        outputs = [onnx.ValueInfoProto(name=o) for o in self.outputs]
        graph = helper.make_graph(self.nodes, "epilogues", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        inferred = {
            v.name: v.type for v in onnx.shape_inference.infer_shapes(model).graph.value_info
        }
        for out in model.graph.output:
            out.type.CopyFrom(inferred[out.name])
        return model

    def check(self, fused_ops: set[str]) -> None:
        """xgen fused and unfused, and the numpy reference of the fused graph, against
        onnxruntime; fused_ops: the op types left after fusion. The direct conv kernel, as in
        run_graph: Winograd's rounding (about 1e-5 of the output's magnitude, tested in
        test_winograd.py) breaks atol 1e-4 on outputs up to ~15 for some RNG draws, and the
        draws here depend on which tests ran first in the worker."""
        import xgen
        from xgen import passes, reference
        from xgen.frontend.onnx import import_onnx

        model = self.model()
        graph = passes.optimize(import_onnx(model, None, None), debug=True, winograd=False)
        assert set(graph.op_counts()) == fused_ops, graph.op_counts()
        results = {
            "fused": xgen.compile(model, winograd=False).run(self.feeds),
            "unfused": xgen.compile(model, optimize=False).run(self.feeds),
            "reference of fused": reference.run(graph, self.feeds),
        }
        want = run_onnxruntime(model, self.feeds)
        for out, expect in zip(self.outputs, want, strict=True):
            for label, got in results.items():
                np.testing.assert_allclose(
                    got[out], expect, rtol=1e-4, atol=1e-4, err_msg=f"{label} {out}"
                )


def test_conv_fused_epilogue() -> None:
    m = EpilogueModel(constant_residuals=True)
    for i, (n, cin, cout, hw, k, s, p, d, g, with_bias) in enumerate(CONV_CASES):
        x, w = m.input(f"x{i}", (n, cin, *hw)), m.const(f"w{i}", (cout, cin // g, *k))
        inputs = [x, w] + ([m.const(f"b{i}", (cout,))] if with_bias else [])
        out_shape = (n, cout, *[(h + p[j] + p[j + len(hw)] - d[j] * (k[j] - 1) - 1) // s[j] + 1
                               for j, h in enumerate(hw)])  # fmt: skip
        attrs = dict(strides=s, pads=p, dilations=d, group=g, kernel_shape=k)
        m.chain("Conv", inputs, attrs, out_shape, EPILOGUES[i % len(EPILOGUES)])
    # channels last in between (see EpilogueModel); narrow inputs padded along x first
    m.check({"Conv", "Transpose", "Reshape", "Pad"})


def test_gemm_fused_epilogue() -> None:
    """Bias along N or M (the store adds it) or a full C (filled first); K past one K block."""
    m = EpilogueModel()
    cases = [((5, 300), (37, 300), (37,), True), ((17, 20), (20, 33), (17, 1), False),
             ((3, 8), (8, 16), (3, 16), False), ((129, 70), (70, 9), (1, 9), False)]  # fmt: skip
    for i, (a_shape, b_shape, c_shape, trans_b) in enumerate(cases):
        a, b, c = m.input(f"a{i}", a_shape), m.const(f"w{i}", b_shape), m.const(f"c{i}", c_shape)
        out_shape = (a_shape[0], b_shape[0] if trans_b else b_shape[1])
        attrs = dict(transB=int(trans_b), beta=1.0 if i % 2 else 0.5)
        m.chain("Gemm", [a, b, c], attrs, out_shape, EPILOGUES[i % len(EPILOGUES)])
    m.check({"Gemm"})

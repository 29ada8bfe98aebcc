"""Reductions, ArgMax / ArgMin, global pooling, softmax and normalisations against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_op, make_model, run_compiled
from test_elementwise import assert_unsupported, rand

REDUCE = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"]
LOWERED = ["ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]
CASES = [  # shape, axes (None: all)
    ((7,), None),
    ((7,), [0]),
    ((3, 5), [1]),
    ((3, 5), [-2]),
    ((2, 3, 17), [0, 2]),
    ((1, 4, 1, 9), [1, -1]),
    ((2, 1, 3, 2, 5), [1, 2, 4]),
    ((2, 3, 4), None),
]


def check(op_type: str, inputs, attrs=None, constants=None, **kw) -> None:
    check_op(op_type, inputs, attrs, constants, **kw)


def check_reduce(op_type: str, x: np.ndarray, axes, keepdims: int, opset: int, **kw) -> None:
    """axes as an input from opset 18 (ReduceSum: 13), as an attribute before."""
    attrs = {"keepdims": keepdims}
    constants = {}
    if axes is not None:
        if opset >= 18 or (op_type == "ReduceSum" and opset >= 13):
            constants["axes"] = np.array(axes, np.int64)
        else:
            attrs["axes"] = axes
    check(op_type, {"x": x}, attrs, constants, opset=opset, **kw)


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("shape, axes", CASES)
@pytest.mark.parametrize("op_type", REDUCE + LOWERED)
def test_reduce_float(op_type: str, shape, axes, keepdims: int, opset: int) -> None:
    low = 0.1 if op_type == "ReduceLogSum" else -2
    x = rand(shape, low=low, high=2)
    check_reduce(op_type, x, axes, keepdims, opset, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op_type", [*REDUCE, "ReduceL1", "ReduceSumSquare"])
def test_reduce_int(op_type: str, dtype) -> None:
    bound = 3 if op_type == "ReduceProd" else 100
    x = rand((3, 4, 5), dtype, -bound, bound)
    for axes, keepdims in [([1], 1), ([0, 2], 0), (None, 0)]:
        check_reduce(op_type, x, axes, keepdims, 18)


def test_reduce_large_logsumexp_is_stable() -> None:
    x = np.array([[1000.0, 999.0, -1000.0], [-5.0, -6.0, -7.0]], np.float32)
    check_reduce("ReduceLogSumExp", x, [1], 0, 18)


@pytest.mark.parametrize("op_type", ["ReduceSum", "ReduceMax", "ReduceL2", "ReduceLogSumExp"])
def test_reduce_empty_axes(op_type: str) -> None:
    x = rand((3, 4))
    check(op_type, {"x": x}, {"noop_with_empty_axes": 1, "keepdims": 0}, opset=18)
    check(op_type, {"x": x}, {"keepdims": 0}, {"axes": np.zeros((0,), np.int64)}, opset=18)


def test_reduce_unsupported() -> None:
    assert_unsupported("ReduceL2", {"x": rand((3, 4), np.int32)}, {"axes": [1]}, opset=13)
    assert_unsupported("ReduceMax", {"x": rand((3, 4))}, {"axes": [1, -1]}, opset=13)


# ---- ArgMax / ArgMin and global pooling ---------------------------------------------------------


@pytest.mark.parametrize("select_last_index", [0, 1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize(
    "shape, axis", [((7,), 0), ((3, 5), 1), ((2, 3, 17), -2), ((2, 1, 3, 4, 5), 3)]
)
@pytest.mark.parametrize("op_type", ["ArgMax", "ArgMin"])
def test_arg_reduce(op_type: str, shape, axis: int, keepdims: int, select_last_index: int) -> None:
    attrs = {"axis": axis, "keepdims": keepdims, "select_last_index": select_last_index}
    check(op_type, {"x": rand(shape, np.int32, -2, 2)}, attrs)  # small range: many ties
    check(op_type, {"x": rand(shape)}, attrs)


@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 4, 5, 3), (2, 3, 1, 2, 5), (1, 1, 1, 1)])
@pytest.mark.parametrize("op_type", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op_type: str, shape) -> None:
    check(op_type, {"x": rand(shape)})


# ---- softmax and normalisations ----------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize(
    "shape, axis", [((7,), 0), ((3, 5), -1), ((3, 5), 0), ((2, 3, 17), 1), ((2, 1, 3, 2, 5), 2)]
)
@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
def test_softmax(op_type: str, shape, axis: int, opset: int) -> None:
    check(op_type, {"x": rand(shape, low=-8, high=8)}, {"axis": axis}, opset=opset)


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_default_axis_and_large_values(opset: int) -> None:
    check("Softmax", {"x": rand((2, 3, 4))}, opset=opset)
    x = np.array([[1000.0, 0.0, -1000.0], [3.0, 3.0, 3.0]], np.float32)
    check("Softmax", {"x": x}, opset=opset)
    check("LogSoftmax", {"x": x}, opset=opset)


# Contiguous rows take xg_softmax_row's 16-lane path: lengths around 16, 1 and long rows.
@pytest.mark.parametrize("n", [1, 15, 16, 17, 33, 1000])
@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
def test_softmax_row_lengths(op_type: str, n: int) -> None:
    check(op_type, {"x": rand((3, n), low=-30, high=30)}, {"axis": -1})


def test_softmax_rows_with_nan_and_inf() -> None:
    x = rand((4, 21))
    x[0, 18], x[1, 3], x[2, :], x[3, 5:] = np.nan, np.inf, -np.inf, -np.inf
    check("Softmax", {"x": x}, {"axis": -1})
    check("LogSoftmax", {"x": x}, {"axis": -1})
    masked = run_compiled(make_model("Softmax", {"x": x}, {"axis": -1}), {"x": x})[0][3, 5:]
    assert not masked.any()  # an attention mask's -inf gives exactly 0, not e^-87


@pytest.mark.parametrize("n", [1, 17, 768, 1003])
def test_layer_norm_row_lengths(n: int) -> None:
    x = rand((5, n)) + 3  # an offset mean: the variance pass must subtract it first
    check("LayerNormalization", {"x": x}, {"axis": -1}, {"scale": rand((n,)), "bias": rand((n,))})


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "shape, axis", [((7,), 0), ((3, 5), -1), ((2, 3, 17), 1), ((2, 3, 4, 5), -2)]
)
def test_layer_norm(shape, axis: int, bias: bool) -> None:
    normalised = shape[axis:]
    constants = {"scale": rand(normalised, low=0.5, high=2)}
    if bias:
        constants["bias"] = rand(normalised)
    x = rand(shape, low=-4, high=6)
    check("LayerNormalization", {"x": x}, {"axis": axis, "epsilon": 1e-3}, constants, opset=17)


def test_layer_norm_broadcast_scale_and_bad_scale() -> None:
    x = rand((2, 3, 8))
    scale = {"scale": rand((1, 8)), "bias": rand((8,))}
    check("LayerNormalization", {"x": x}, None, scale, opset=17)
    assert_unsupported("LayerNormalization", {"x": x}, None, {"scale": rand((3, 1))}, opset=17)


@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 4, 5, 3), (2, 3, 1, 2, 5)])
def test_instance_norm(shape) -> None:
    c = shape[1]
    constants = {"scale": rand((c,), low=0.5, high=2), "bias": rand((c,))}
    check("InstanceNormalization", {"x": rand(shape, low=-3, high=5)}, {"epsilon": 1e-4}, constants)

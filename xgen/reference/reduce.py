"""Numpy reference of reductions, ArgMax / ArgMin, softmax and the normalisations over dims.

float32 sums, means and normalisations accumulate in float64 (evaluate rounds the result to
float32); integer reductions stay in their dtype, wrapping as C does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xgen.ir import Node, Op
from xgen.reference import kernel
from xgen.reference.elementwise import int_div

Array = np.ndarray


def _wide(x: Array) -> Array:
    return x.astype(np.float64) if x.dtype == np.float32 else x


def _mean(x: Array, axis: tuple[int, ...], keepdims: bool) -> Array:
    """The sum divided by the count: a float mean of no elements is 0 / 0 = NaN (numpy's), an
    integer one 0 (onnxruntime's); integers divide in C's way, truncating toward zero."""
    total = np.sum(x, axis=axis, keepdims=keepdims)
    count = int(np.prod([x.shape[i] for i in axis]))
    if x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            return total / count
    return int_div(total, np.asarray(max(count, 1), total.dtype))


def _bounds(dtype: np.dtype) -> tuple[Any, Any]:
    """The lowest and highest value of dtype: ReduceMax / ReduceMin of an empty set."""
    if dtype.kind == "f":
        return -np.inf, np.inf
    if dtype.kind == "b":
        return False, True
    return np.iinfo(dtype).min, np.iinfo(dtype).max


def _max(x: Array, axis: tuple[int, ...], keepdims: bool) -> Array:
    """numpy's max: NaN wherever an element is NaN (onnxruntime's depends on where it is)."""
    return np.max(x, axis=axis, keepdims=keepdims, initial=_bounds(x.dtype)[0])


def _min(x: Array, axis: tuple[int, ...], keepdims: bool) -> Array:
    return np.min(x, axis=axis, keepdims=keepdims, initial=_bounds(x.dtype)[1])


# Integer sums and products widen to int64; evaluate's cast back wraps them as C would.
_REDUCERS = {
    Op.REDUCE_SUM: np.sum,
    Op.REDUCE_PROD: np.prod,
    Op.REDUCE_MAX: _max,
    Op.REDUCE_MIN: _min,
    Op.REDUCE_MEAN: _mean,
}


@kernel(*_REDUCERS)
def _reduce(node: Node, arrays: list[Array]) -> list[Array]:
    a = node.attrs
    with np.errstate(over="ignore"):
        return [_REDUCERS[node.op](_wide(arrays[0]), axis=a.axes, keepdims=a.keepdims)]


@kernel(Op.ARG_MAX, Op.ARG_MIN)
def _arg_reduce(node: Node, arrays: list[Array]) -> list[Array]:
    x, a = arrays[0], node.attrs
    find = np.argmax if node.op is Op.ARG_MAX else np.argmin
    if a.select_last_index:  # numpy picks the first of ties: search the reversed axis
        index = x.shape[a.axis] - 1 - find(np.flip(x, a.axis), axis=a.axis, keepdims=a.keepdims)
    else:
        index = find(x, axis=a.axis, keepdims=a.keepdims)
    return [index.astype(np.int64)]


@kernel(Op.SOFTMAX, Op.LOG_SOFTMAX)
def _softmax(node: Node, arrays: list[Array]) -> list[Array]:
    x, axis = _wide(arrays[0]), node.attrs.axis
    shifted = x - np.max(x, axis=axis, keepdims=True)  # exp never overflows
    log_sum = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    if node.op is Op.LOG_SOFTMAX:
        return [shifted - log_sum]
    return [np.exp(shifted - log_sum)]


def _normalise(x: Array, axes: tuple[int, ...], epsilon: float) -> Array:
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean(np.square(x - mean), axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon)


@kernel(Op.LAYER_NORM)
def _layer_norm(node: Node, arrays: list[Array]) -> list[Array]:
    x, scale, *bias = (_wide(a) for a in arrays)
    axis = node.attrs.axis
    y = _normalise(x, tuple(range(axis, x.ndim)), node.attrs.epsilon) * scale
    return [y + bias[0] if bias else y]


@kernel(Op.INSTANCE_NORM)
def _instance_norm(node: Node, arrays: list[Array]) -> list[Array]:
    x, scale, bias = (_wide(a) for a in arrays)
    per_channel = (-1,) + (1,) * (x.ndim - 2)
    y = _normalise(x, tuple(range(2, x.ndim)), node.attrs.epsilon)
    return [y * scale.reshape(per_channel) + bias.reshape(per_channel)]

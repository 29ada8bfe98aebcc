"""Numpy reference of the elementwise ops (unary, binary, Where, BatchNormalization).

float32 math runs in float64 and is rounded once to float32 (by evaluate), which is at least as
accurate as onnxruntime. Integer ops stay in their dtype and are defined for every input: +, -,
* and negation wrap modulo 2^bits (as numpy; the C goes through unsigned types), Div truncates
toward zero, the lowest value divided by -1 wraps to itself with remainder 0, and a zero divisor
of Div or Mod is an InputError naming the node (onnxruntime raises too; the compiled model's run
fails with the same message).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from xgen.errors import InputError
from xgen.ir import Node, Op
from xgen.reference import evaluate, kernel

Array = np.ndarray

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: Array) -> Array:
    return np.asarray(_erf(x), np.float64)  # a 0-d x gives a Python float


def _sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # never overflows, unlike 1 / (1 + exp(-x))


def _hard_swish(x: Array) -> Array:
    return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)


_UNARY: dict[Op, Callable[[Array], Array]] = {
    Op.IDENTITY: lambda x: x,
    Op.RELU: lambda x: np.maximum(x, 0),
    Op.SIGMOID: _sigmoid,
    Op.TANH: np.tanh,
    Op.ERF: erf,
    Op.SQRT: np.sqrt,
    Op.EXP: np.exp,
    Op.LOG: np.log,
    Op.NEG: np.negative,
    Op.ABS: np.abs,
    Op.RECIPROCAL: lambda x: 1.0 / x,
    Op.FLOOR: np.floor,
    Op.CEIL: np.ceil,
    Op.ROUND: np.round,  # half to even, as ONNX
    Op.SIGN: np.sign,
    Op.SIN: np.sin,
    Op.COS: np.cos,
    Op.SOFTPLUS: lambda x: np.logaddexp(0.0, x),
    Op.SOFTSIGN: lambda x: x / (1.0 + np.abs(x)),
    Op.HARD_SWISH: _hard_swish,
    Op.NOT: np.logical_not,
    Op.IS_NAN: np.isnan,
}


def _wide(x: Array) -> Array:
    """float32 widened to float64 (the caller's result is rounded back once); others unchanged."""
    return x.astype(np.float64) if x.dtype == np.float32 else x


@kernel(*_UNARY)
def _unary(node: Node, arrays: list[Array]) -> list[Array]:
    with np.errstate(all="ignore"):
        return [_UNARY[node.op](_wide(arrays[0]))]


@kernel(Op.GELU)
def _gelu(node: Node, arrays: list[Array]) -> list[Array]:
    x = _wide(arrays[0])
    if node.attrs.tanh_approximation:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return [0.5 * x * (1.0 + np.tanh(inner))]
    return [0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))]


@kernel(Op.HARD_SIGMOID)
def _hard_sigmoid(node: Node, arrays: list[Array]) -> list[Array]:
    x, a = _wide(arrays[0]), node.attrs
    return [np.clip(a.alpha * x + a.beta, 0.0, 1.0)]


@kernel(Op.LEAKY_RELU)
def _leaky_relu(node: Node, arrays: list[Array]) -> list[Array]:
    x = _wide(arrays[0])
    return [np.where(x >= 0, x, node.attrs.alpha * x)]


@kernel(Op.ELU)
def _elu(node: Node, arrays: list[Array]) -> list[Array]:
    x = _wide(arrays[0])
    return [np.where(x > 0, x, node.attrs.alpha * np.expm1(np.minimum(x, 0.0)))]


@kernel(Op.CLIP)
def _clip(node: Node, arrays: list[Array]) -> list[Array]:
    x, a = arrays[0], node.attrs
    if x.dtype.kind == "f":
        return [np.minimum(np.maximum(x, np.float32(a.min)), np.float32(a.max))]
    # integer bounds: clamp to the dtype first (float(int64 max) rounds up out of range)
    info = np.iinfo(x.dtype)
    low, high = int(max(a.min, info.min)), int(min(a.max, info.max))
    return [np.minimum(np.maximum(x, x.dtype.type(low)), x.dtype.type(high))]


@kernel(Op.CAST)
def _cast(node: Node, arrays: list[Array]) -> list[Array]:
    # float -> int truncates toward zero, anything -> bool is "!= 0", as C and onnxruntime do
    x, to = arrays[0], np.dtype(node.attrs.to.numpy)
    if x.dtype.kind == "f" and to.kind in "iu":
        return [_float_to_int(x, to)]
    return [x.astype(to)]


def _float_to_int(x: Array, to: np.dtype) -> Array:
    """NaN and values out of range give the lowest int32 (for int32) or int64 (int64, and int8
    and uint8, which wrap from it), as x86's conversion does; the C defines the same."""
    via = np.int32 if to == np.int32 else np.int64
    low = np.iinfo(via).min
    inside = (x >= low) & (x < -float(low))
    return np.where(inside, np.where(inside, x, 0).astype(via), low).astype(via).astype(to)


# ---- binary ------------------------------------------------------------------------------------


def int_div(a: Array, b: Array) -> Array:
    """C integer division: truncate toward zero (numpy's // floors)."""
    quotient = np.floor_divide(a, b)
    inexact = (quotient * b != a) & ((a < 0) != (b < 0))
    return quotient + inexact.astype(quotient.dtype)


def _div(a: Array, b: Array) -> Array:
    return np.divide(a, b) if a.dtype.kind == "f" else int_div(a, b)


def _pow(a: Array, b: Array) -> Array:
    """Floats in float64 (onnxruntime uses std::pow; evaluate casts back). Integers by repeated
    multiplication, wrapping as the other integer products (onnxruntime's cast of a double out
    of range is undefined); a negative exponent truncates the real result: 0 unless |a| is 1."""
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return np.power(a.astype(np.float64), b.astype(np.float64))
    b = b.astype(np.int64)
    power = np.power(a, np.maximum(b, 0))
    negative = np.where(a == 1, 1, np.where(a == -1, 1 - 2 * (b & 1), 0))
    return np.where(b < 0, negative, power)


_BINARY: dict[Op, Callable[[Array, Array], Array]] = {
    Op.ADD: np.add,
    Op.SUB: np.subtract,
    Op.MUL: np.multiply,
    Op.DIV: _div,
    Op.POW: _pow,
    Op.MAX: np.maximum,
    Op.MIN: np.minimum,
    Op.PRELU: lambda x, slope: np.where(x < 0, x * slope, x),
    Op.AND: np.logical_and,
    Op.OR: np.logical_or,
    Op.XOR: np.logical_xor,
    Op.EQUAL: np.equal,
    Op.LESS: np.less,
    Op.LESS_OR_EQUAL: np.less_equal,
    Op.GREATER: np.greater,
    Op.GREATER_OR_EQUAL: np.greater_equal,
}


def _check_divisor(node: Node, divisor: Array) -> None:
    if divisor.dtype.kind in "iub" and not np.all(divisor):
        what = "division" if node.op is Op.DIV else "modulo"
        raise InputError(f"node {node.name!r} ({node.op.value}): integer {what} by zero")


@kernel(*_BINARY)
def _binary(node: Node, arrays: list[Array]) -> list[Array]:
    a, b = arrays
    if node.op is Op.DIV:
        _check_divisor(node, b)
    with np.errstate(all="ignore"):  # x/0 gives inf, integer overflow wraps
        return [_BINARY[node.op](a, b)]


@kernel(Op.MOD)
def _mod(node: Node, arrays: list[Array]) -> list[Array]:
    a, b = arrays
    _check_divisor(node, b)
    with np.errstate(all="ignore"):  # fmod: sign of the dividend (C); else of the divisor (Python)
        return [np.fmod(a, b) if node.attrs.fmod else np.mod(a, b)]


@kernel(Op.WHERE)
def _where(node: Node, arrays: list[Array]) -> list[Array]:
    return [np.where(*arrays)]


@kernel(Op.BATCH_NORM)
def _batch_norm(node: Node, arrays: list[Array]) -> list[Array]:
    x, scale, bias, mean, var = (_wide(a) for a in arrays)
    per_channel = (-1,) + (1,) * (x.ndim - 2)  # parameters broadcast along axis 1
    scale, bias, mean, var = (p.reshape(per_channel) for p in (scale, bias, mean, var))
    return [(x - mean) / np.sqrt(var + node.attrs.epsilon) * scale + bias]


@kernel(Op.FUSED_ELEMENTWISE)
def fused_elementwise(node: Node, arrays: list[Array]) -> list[Array]:
    """Each member in turn, its output rounded to its dtype as when it ran alone."""
    values = {id(v): a for v, a in zip(node.inputs, arrays, strict=True)}
    for member in node.attrs.nodes:
        (values[id(member.outputs[0])],) = evaluate(member, [values[id(v)] for v in member.inputs])
    return [values[id(node.attrs.nodes[-1].outputs[0])]]

"""ONNX converters for elementwise ops, normalisations and softmax.

ONNX ops with an IR twin map one to one; the rest (Selu, IsInf, variadic Sum / Mean...) lower to
a few IR nodes. Constants made here take the dtype of the tensor they combine with, since binary IR
nodes need equal input dtypes.
"""

from __future__ import annotations

from math import prod

import numpy as np
import onnx

from xgen.frontend.onnx import ImportContext, OnnxNode, converter
from xgen.ir import DType, Op, Value
from xgen.ir.ops import (
    AlphaBetaAttrs,
    AxisAttrs,
    CastAttrs,
    ClipAttrs,
    EpsilonAttrs,
    GeluAttrs,
    LayerNormAttrs,
    ModAttrs,
    ReduceAttrs,
    ShapeAttrs,
)

_UNARY = {
    op.value: op
    for op in (
        Op.RELU, Op.SIGMOID, Op.TANH, Op.ERF, Op.SQRT, Op.EXP, Op.LOG, Op.NEG, Op.ABS,
        Op.RECIPROCAL, Op.FLOOR, Op.CEIL, Op.ROUND, Op.SIGN, Op.SIN, Op.COS, Op.SOFTPLUS,
        Op.SOFTSIGN, Op.HARD_SWISH, Op.NOT, Op.IS_NAN,
    )
}  # fmt: skip
_BINARY = {
    op.value: op
    for op in (
        Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.PRELU, Op.AND, Op.OR, Op.XOR, Op.EQUAL, Op.LESS,
        Op.LESS_OR_EQUAL, Op.GREATER, Op.GREATER_OR_EQUAL,
    )
}  # fmt: skip
_VARIADIC = {"Max": Op.MAX, "Min": Op.MIN, "Sum": Op.ADD, "Mean": Op.ADD}


def ir_name(node: OnnxNode) -> str:
    """The IR name of the (first) node built for an ONNX node."""
    return node.proto.name or node.proto.output[0] or node.op_type


def scalar(ctx: ImportContext, like: Value, value: float) -> Value:
    """A scalar constant of like's dtype, to combine with like in a binary IR node."""
    return ctx.constant(np.array(value, dtype=like.dtype.numpy), "scalar")


def data_input(node: OnnxNode, i: int = 0) -> Value:
    value = node.input(i)
    if value is None:
        raise node.unsupported(f"input {i} is required")
    return value


def resolve_axis(node: OnnxNode, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise node.unsupported(f"axis {axis} is out of range for a tensor of rank {rank}")
    return axis % max(rank, 1)


# ---- unary -------------------------------------------------------------------------------------


@converter(*_UNARY)
def _unary(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    return ctx.add(_UNARY[node.op_type], [data_input(node)], name=ir_name(node))


@converter("Identity")
def _identity(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    return [data_input(node)]  # no node: the importer copies graph inputs that are outputs


@converter("Dropout")
def _dropout(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = data_input(node)
    training = node.const_input(2, "training_mode")
    if training is not None and bool(training):
        raise node.unsupported("training_mode=True is not supported (inference only)")
    if len(node.proto.output) < 2 or not node.proto.output[1]:
        return [x]
    return [x, ctx.constant(np.ones(x.shape, dtype=bool), "dropout_mask")]


@converter("HardSigmoid", "LeakyRelu", "Elu")
def _alpha_beta(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    defaults = {"HardSigmoid": (0.2, 0.5), "LeakyRelu": (0.01, 0.0), "Elu": (1.0, 0.0)}
    alpha, beta = defaults[node.op_type]
    attrs = AlphaBetaAttrs(float(node.attr("alpha", alpha)), float(node.attr("beta", beta)))
    return ctx.add(Op(node.op_type), [data_input(node)], attrs, ir_name(node))


@converter("Selu")
def _selu(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    # Selu = gamma * Elu(x, alpha)
    x = data_input(node)
    alpha = float(node.attr("alpha", 1.67326319217681884765625))
    gamma = float(node.attr("gamma", 1.05070102214813232421875))
    elu = ctx.add1(Op.ELU, [x], AlphaBetaAttrs(alpha), ir_name(node))
    return ctx.add(Op.MUL, [elu, scalar(ctx, x, gamma)], name=ir_name(node))


@converter("Gelu")
def _gelu(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    approximate = node.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise node.unsupported(f"approximate={approximate!r} (supported: 'none', 'tanh')")
    attrs = GeluAttrs(tanh_approximation=approximate == "tanh")
    return ctx.add(Op.GELU, [data_input(node)], attrs, ir_name(node))


@converter("Clip")
def _clip(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = data_input(node)
    low = _clip_bound(node, 1, "min", -np.inf)
    high = _clip_bound(node, 2, "max", np.inf)
    if not x.dtype.is_float:  # integer kernels need finite bounds
        info = np.iinfo(x.dtype.numpy)
        low, high = max(low, float(info.min)), min(high, float(info.max))
    return ctx.add(Op.CLIP, [x], ClipAttrs(low, high), ir_name(node))


def _clip_bound(node: OnnxNode, i: int, name: str, default: float) -> float:
    """A bound given as a constant input (opset >= 11) or as an attribute (older exporters)."""
    data = node.const_input(i, name)
    if data is None:
        return float(node.attr(name, default))
    if data.size != 1:
        raise node.unsupported(f"{name} must be a scalar, got shape {data.shape}")
    return float(data.reshape(()))


@converter("Cast")
def _cast(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    return _cast_to(ctx, node, data_input(node), _onnx_dtype(node, node.attr("to")))


@converter("CastLike")
def _cast_like(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    return _cast_to(ctx, node, data_input(node), data_input(node, 1).dtype)


def _cast_to(ctx: ImportContext, node: OnnxNode, x: Value, to: DType) -> list[Value]:
    if x.dtype is to:
        return [x]
    return ctx.add(Op.CAST, [x], CastAttrs(to), ir_name(node))


def _onnx_dtype(node: OnnxNode, elem_type: int | None) -> DType:
    if elem_type is None:
        raise node.unsupported("attribute 'to' is required")
    # float64 / float16 compute as float32, as the importer does for such constants
    if elem_type in (onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        return DType.FLOAT32
    try:
        return DType.from_numpy(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (TypeError, KeyError, ValueError):
        known = elem_type in onnx.TensorProto.DataType.values()
        name = onnx.TensorProto.DataType.Name(elem_type) if known else f"unknown type {elem_type}"
        supported = ", ".join(d.value for d in DType)
        raise node.unsupported(f"cast to {name} (supported: {supported})") from None


@converter("IsInf")
def _is_inf(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = data_input(node)
    positive = node.flag("detect_positive", True)
    negative = node.flag("detect_negative", True)
    name = ir_name(node)
    if positive and negative:
        magnitude = ctx.add1(Op.ABS, [x], name=name)
        return ctx.add(Op.EQUAL, [magnitude, scalar(ctx, x, np.inf)], name=name)
    if positive or negative:
        return ctx.add(Op.EQUAL, [x, scalar(ctx, x, np.inf if positive else -np.inf)], name=name)
    return [ctx.constant(np.zeros(x.shape, dtype=bool), "isinf")]


# ---- binary and variadic -----------------------------------------------------------------------


@converter(*_BINARY)
def _binary(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    a, b = data_input(node), data_input(node, 1)
    return ctx.add(_BINARY[node.op_type], [a, b], name=ir_name(node))


@converter("Pow")
def _pow(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    base, exponent = data_input(node), data_input(node, 1)
    if not base.dtype.is_float and exponent.dtype.is_float:
        # An integer to a real power (9 ** 2.5 = 243), as onnxruntime, in float32, then
        # truncated: casting the exponent to the base's type would compute 9 ** 2
        real = ctx.add1(Op.CAST, [base], CastAttrs(exponent.dtype), ir_name(node))
        power = ctx.add1(Op.POW, [real, exponent], name=ir_name(node))
        return ctx.add(Op.CAST, [power], CastAttrs(base.dtype), ir_name(node))
    if exponent.dtype is not base.dtype:  # ONNX lets the exponent type differ; the IR does not
        exponent = ctx.add1(Op.CAST, [exponent], CastAttrs(base.dtype), ir_name(node))
    return ctx.add(Op.POW, [base, exponent], name=ir_name(node))


@converter("Mod")
def _mod(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    a, b = data_input(node), data_input(node, 1)
    fmod = node.flag("fmod", False)
    if a.dtype.is_float and not fmod:
        raise node.unsupported("floating-point Mod needs fmod=1 (as the ONNX spec requires)")
    return ctx.add(Op.MOD, [a, b], ModAttrs(fmod), ir_name(node))


@converter(*_VARIADIC)
def _variadic(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    values = [v for v in node.inputs if v is not None]
    if not values:
        raise node.unsupported("needs at least one input")
    op, name = _VARIADIC[node.op_type], ir_name(node)
    result = values[0]
    for value in values[1:]:
        result = ctx.add1(op, [result, value], name=name)
    if node.op_type == "Mean" and len(values) > 1:
        result = ctx.add1(Op.DIV, [result, scalar(ctx, result, len(values))], name=name)
    return [result]


@converter("Where")
def _where(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    inputs = [data_input(node, i) for i in range(3)]
    return ctx.add(Op.WHERE, inputs, name=ir_name(node))


# ---- normalisations and softmax ----------------------------------------------------------------


@converter("BatchNormalization")
def _batch_norm(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    if node.flag("training_mode", False) or any(node.proto.output[1:]):
        raise node.unsupported("training mode (running mean / var outputs) is not supported")
    x, *params = (data_input(node, i) for i in range(5))
    if len(x.shape) < 2:
        raise node.unsupported(f"input must have rank >= 2, got shape {x.shape}")
    channels = x.shape[1]
    for param in params:
        if param.shape != (channels,):
            raise node.unsupported(f"parameters must have shape ({channels},), got {param.shape}")
    attrs = EpsilonAttrs(float(node.attr("epsilon", 1e-5)))
    return ctx.add(Op.BATCH_NORM, [x, *params], attrs, ir_name(node))


@converter("LayerNormalization")
def _layer_norm(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = data_input(node)
    axis = resolve_axis(node, node.attr("axis", -1), len(x.shape))
    inputs = [x] + [v for v in (data_input(node, 1), node.input(2)) if v is not None]
    for param in inputs[1:]:
        _check_param_shape(node, param, x.shape[axis:])
    attrs = LayerNormAttrs(axis, float(node.attr("epsilon", 1e-5)))
    y = ctx.add(Op.LAYER_NORM, inputs, attrs, ir_name(node))
    if not any(node.proto.output[1:]):
        return y
    return y + _layer_norm_stats(ctx, node, x, attrs)


def _layer_norm_stats(
    ctx: ImportContext, node: OnnxNode, x: Value, attrs: LayerNormAttrs
) -> list[Value]:
    """Mean and InvStdDev = 1 / sqrt(var + epsilon) over the normalised dims, kept as size-1 dims.

    Exporters request them for training only, so they are built from IR reductions and
    arithmetic rather than widening the LayerNorm op (whose kernel yields Y alone).
    """
    if node.attr("stash_type", onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
        raise node.unsupported("Mean / InvStdDev need stash_type=1 (float32)")
    name = ir_name(node)
    over = ReduceAttrs(tuple(range(attrs.axis, len(x.shape))), keepdims=True)
    mean = ctx.add1(Op.REDUCE_MEAN, [x], over, name)
    centred = ctx.add1(Op.SUB, [x, mean], name=name)
    var = ctx.add1(Op.REDUCE_MEAN, [ctx.add1(Op.MUL, [centred, centred], name=name)], over, name)
    shifted = ctx.add1(Op.ADD, [var, scalar(ctx, var, attrs.epsilon)], name=name)
    std = ctx.add1(Op.SQRT, [shifted], name=name)
    return [mean, ctx.add1(Op.RECIPROCAL, [std], name=name)]


def _check_param_shape(node: OnnxNode, param: Value, shape: tuple[int, ...]) -> None:
    """Scale and bias must hold one value per normalised element (leading 1s allowed)."""
    if _strip_leading_ones(param.shape) != _strip_leading_ones(shape):
        raise node.unsupported(f"scale / bias of shape {param.shape} for normalised shape {shape}")


def _strip_leading_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


@converter("InstanceNormalization")
def _instance_norm(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    inputs = [data_input(node, i) for i in range(3)]
    if len(inputs[0].shape) < 3:
        raise node.unsupported(f"input must have rank >= 3, got shape {inputs[0].shape}")
    attrs = EpsilonAttrs(float(node.attr("epsilon", 1e-5)))
    return ctx.add(Op.INSTANCE_NORM, inputs, attrs, ir_name(node))


@converter("Softmax", "LogSoftmax")
def _softmax(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x, op, name = data_input(node), Op(node.op_type), ir_name(node)
    rank = len(x.shape)
    if ctx.opset >= 13:
        axis = resolve_axis(node, node.attr("axis", -1), rank)
        return ctx.add(op, [x], AxisAttrs(axis), name)
    # Before opset 13 the input is seen as 2-D [prod(dims < axis), prod(dims >= axis)].
    axis = resolve_axis(node, node.attr("axis", 1), rank)
    if axis == rank - 1:
        return ctx.add(op, [x], AxisAttrs(axis), name)
    flat = (prod(x.shape[:axis]), prod(x.shape[axis:]))
    x2 = ctx.add1(Op.RESHAPE, [x], ShapeAttrs(flat), name)
    y2 = ctx.add1(op, [x2], AxisAttrs(1), name)
    return ctx.add(Op.RESHAPE, [y2], ShapeAttrs(x.shape), name)

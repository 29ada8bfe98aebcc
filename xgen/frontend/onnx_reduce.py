"""ONNX converters for reductions, ArgMax / ArgMin and global pooling.

The five IR reductions map directly; ReduceL1 / L2 / SumSquare / LogSum / LogSumExp lower to an
elementwise op around a ReduceSum. Axes come from the `axes` input (ReduceSum since opset 13, the
others since 18) or else the attribute, and are resolved here to sorted non-negative dims.
"""

from __future__ import annotations

import numpy as np

from xgen.frontend.onnx import ImportContext, OnnxNode, converter
from xgen.frontend.onnx_elementwise import data_input, ir_name, resolve_axis
from xgen.ir import Op, Value
from xgen.ir.ops import REDUCE_OPS, ArgReduceAttrs, ReduceAttrs, ShapeAttrs

_REDUCE = {op.value: op for op in REDUCE_OPS}
# Reductions lowered to ReduceSum(before(x)), then after(sum)
_LOWERED_SUMS = {
    "ReduceL1": (Op.ABS, None),
    "ReduceL2": (Op.MUL, Op.SQRT),
    "ReduceSumSquare": (Op.MUL, None),
    "ReduceLogSum": (None, Op.LOG),
}
_FLOAT_ONLY = {"ReduceL2", "ReduceLogSum", "ReduceLogSumExp"}


def _reduce_attrs(node: OnnxNode, rank: int) -> ReduceAttrs | None:
    """The resolved attributes, or None when the node is a no-op (empty axes, noop flag set)."""
    data = node.const_input(1, "axes")
    axes = data.reshape(-1).tolist() if data is not None else list(node.attr("axes", []))
    keepdims = node.flag("keepdims", True)
    if not axes:
        if node.flag("noop_with_empty_axes", False) or rank == 0:
            return None
        return ReduceAttrs(tuple(range(rank)), keepdims)
    resolved = {resolve_axis(node, int(a), rank) for a in axes}
    if len(resolved) != len(axes):
        raise node.unsupported(f"axes {axes} name a dim twice")
    return ReduceAttrs(tuple(sorted(resolved)), keepdims)


@converter(*_REDUCE)
def _reduce(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = data_input(node)
    attrs = _reduce_attrs(node, len(x.shape))
    if attrs is None:
        return [x]
    return ctx.add(_REDUCE[node.op_type], [x], attrs, ir_name(node))


@converter(*_LOWERED_SUMS, "ReduceLogSumExp")
def _lowered_reduce(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x, name = data_input(node), ir_name(node)
    if node.op_type in _FLOAT_ONLY and not x.dtype.is_float:
        raise node.unsupported(f"input dtype {x.dtype.value} (supported: float32)")
    attrs = _reduce_attrs(node, len(x.shape))
    if node.op_type == "ReduceLogSumExp":
        return [_log_sum_exp(ctx, x, attrs, name)]
    before, after = _LOWERED_SUMS[node.op_type]
    if before is not None:  # Abs(x) or Mul(x, x)
        x = ctx.add1(before, [x] * (2 if before is Op.MUL else 1), name=name)
    total = x if attrs is None else ctx.add1(Op.REDUCE_SUM, [x], attrs, name)
    return [total if after is None else ctx.add1(after, [total], name=name)]


def _log_sum_exp(ctx: ImportContext, x: Value, attrs: ReduceAttrs | None, name: str) -> Value:
    """max + log(sum(exp(x - max))): stable for large inputs."""
    if attrs is None:  # a sum over no axes: log(exp(x)) = x
        return x
    peak = ctx.add1(Op.REDUCE_MAX, [x], ReduceAttrs(attrs.axes, keepdims=True), name)
    # An infinite max shifts by 0 instead (inf - inf is NaN): [1, inf] gives inf, all -inf -inf.
    infinite = ctx.add1(Op.IS_NAN, [ctx.add1(Op.SUB, [peak, peak], name=name)], name=name)
    zero = ctx.constant(np.zeros((), x.dtype.numpy))
    peak = ctx.add1(Op.WHERE, [infinite, zero, peak], name=name)
    shifted = ctx.add1(Op.EXP, [ctx.add1(Op.SUB, [x, peak], name=name)], name=name)
    log_sum = ctx.add1(Op.LOG, [ctx.add1(Op.REDUCE_SUM, [shifted], attrs, name)], name=name)
    if not attrs.keepdims:
        peak = ctx.add1(Op.RESHAPE, [peak], ShapeAttrs(log_sum.shape), name)
    return ctx.add1(Op.ADD, [log_sum, peak], name=name)


@converter("ArgMax", "ArgMin")
def _arg_reduce(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = data_input(node)
    attrs = ArgReduceAttrs(
        axis=resolve_axis(node, int(node.attr("axis", 0)), len(x.shape)),
        keepdims=node.flag("keepdims", True),
        select_last_index=node.flag("select_last_index", False),
    )
    return ctx.add(Op(node.op_type), [x], attrs, ir_name(node))


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = data_input(node)
    if len(x.shape) < 3:
        raise node.unsupported(f"input must be N x C x spatial dims, got shape {x.shape}")
    op = Op.REDUCE_MEAN if node.op_type == "GlobalAveragePool" else Op.REDUCE_MAX
    attrs = ReduceAttrs(tuple(range(2, len(x.shape))), keepdims=True)
    return ctx.add(op, [x], attrs, ir_name(node))

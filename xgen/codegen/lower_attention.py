"""Lowering of the fused Attention (ops.AttentionAttrs) onto kernels/attention.h."""

from __future__ import annotations

from collections.abc import Sequence

from xgen.codegen.loops import broadcast_strides, contiguous_strides, transposed_view
from xgen.codegen.lower import (
    SCRATCH_THREADS,
    KernelContext,
    c_float,
    c_ints,
    check_dtypes,
    lowering,
    round_up,
    scratch_arrays,
)
from xgen.codegen.lower_gemm import CONV_NHWC_NP
from xgen.ir import Node, Op, Value
from xgen.ir import ops as O
from xgen.ir.infer import broadcast_shapes

ATTENTION_MAX_ROWS = 8  # XG_ATTENTION_MAX_ROWS (kernels/attention.h): query rows in a block


def thread_floats(sk: int, d: int, dv: int) -> int:
    """One thread's scratch slice: K^T and V packed, a block's scores and probabilities, and its
    output rows."""
    skp, dvp = round_up(sk, CONV_NHWC_NP), round_up(dv, CONV_NHWC_NP)
    return round_up(skp * d + dvp * sk + ATTENTION_MAX_ROWS * (2 * skp + dv), CONV_NHWC_NP)


def _batch_heads(shape: Sequence[int], strides: Sequence[int], batch: Sequence[int]) -> list[int]:
    """Strides [batch, head, row, column] of a matrix operand with batch dims `shape[:-2]` read
    broadcast to `batch` (at most two dims): 0 along a dim it lacks or has as 1."""
    lead = len(batch) - (len(shape) - 2)
    own = [0] * lead + [s if n != 1 else 0 for n, s in zip(shape[:-2], strides[:-2], strict=True)]
    return [0] * (2 - len(batch)) + own + list(strides[-2:])


@lowering(Op.ATTENTION, kernels=("attention.h",))
def lower_attention(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node)
    a: O.AttentionAttrs = node.attrs
    q, k_parts, v_parts, mask_value = O.attention_inputs(node)
    y = node.outputs[0]
    q_view = transposed_view(q.shape, a.q_perm)
    k_views = [transposed_view(k.shape, a.k_perm) for k in k_parts]
    v_views = [transposed_view(v.shape, a.v_perm) for v in v_parts]
    (sq, d), dv = q_view[0][-2:], v_views[0][0][-1]
    sk = sum(shape[-2] for shape, _ in k_views)
    batch = broadcast_shapes(q_view[0][:-2], k_views[0][0][:-2], v_views[0][0][:-2])
    q_strides = _batch_heads(*q_view, batch)
    # the result [*batch, sq, dv] is stored transposed: its dim i is y's out_perm.index(i)
    stored = contiguous_strides(y.shape)
    order = list(a.out_perm or range(len(y.shape)))
    result_strides = [stored[order.index(i)] for i in range(len(y.shape))]
    y_strides = _batch_heads((*batch, sq, dv), result_strides, batch)
    mask, mask_strides = "NULL", "NULL"
    if mask_value is not None:
        scores = (*batch, sq, sk)
        mask = ctx.ptr(mask_value)
        mask_strides = c_ints(
            _batch_heads(scores, broadcast_strides(mask_value.shape, scores), batch)
        )
    slice_floats = thread_floats(sk, d, dv)
    (scratch,) = scratch_arrays(ctx, [SCRATCH_THREADS * slice_floats])
    outer, heads = ([1, 1] + list(batch))[-2:]
    return (
        f"xg_attention({outer}, {heads}, {sq}, {sk}, {d}, {dv}, {c_float(a.scale)}, "
        f"{int(a.nan_to_zero)},\n"
        f"    {ctx.ptr(q)}, {c_ints(q_strides)},\n"
        f"    {_parts(ctx, k_parts, k_views, batch)},\n"
        f"    {_parts(ctx, v_parts, v_views, batch)},\n"
        f"    {mask}, {mask_strides},\n"
        f"    {ctx.ptr(y)}, {c_ints(y_strides)}, {scratch}, {slice_floats});"
    )


View = tuple[tuple[int, ...], tuple[int, ...]]  # (shape, strides) of transposed_view


def _parts(ctx: KernelContext, parts: list[Value], views: list[View], batch: Sequence[int]) -> str:
    """The `parts, pointers, strides, rows` arguments of K or V (kernels/attention.h): each part
    read in place through its view."""
    pointers = ", ".join(ctx.ptr(part) for part in parts)
    strides = [s for view in views for s in _batch_heads(*view, batch)]
    rows = [shape[-2] for shape, _ in views]
    return f"{len(parts)}, (const float *const[]){{{pointers}}}, {c_ints(strides)}, {c_ints(rows)}"

"""Lowerings of pooling, reductions, softmax, normalisations and Resize onto the kernels of
pool.h, reduce.h, norm.h and resize.h.

Shapes go to the kernels as literal arguments; a kernel views its operand as [outer][n][inner]
wherever an op works along one axis. Kernels that are not float-only come in one instance per
element type, named after its C type (xg_reduce_sum_int32_t).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np

from xgen.codegen.lower import (
    BETWEEN_PASSES,
    FLOAT32,
    NUMERIC,
    KernelContext,
    axis_view,
    c_float,
    c_ints,
    check_dtypes,
    lowering,
    ping_pong,
    unsupported,
)
from xgen.ir import DType, Node, Op, Value
from xgen.ir import ops as O
from xgen.ir.infer import split_layout

# ---- pooling, reductions, normalisations ------------------------------------------------------


@lowering(Op.MAX_POOL, Op.AVERAGE_POOL, kernels=("pool.h",))
def lower_pool(ctx: KernelContext, node: Node) -> str:
    """xg_pool on N x C x spatial, or xg_pool_nhwc on a channels-last N x spatial x C."""
    check_dtypes(node)
    x, y = node.inputs[0], node.outputs[0]
    a: O.PoolAttrs = node.attrs
    rank = len(a.kernel_shape)
    if rank > 3:
        raise unsupported(node, f"{rank} spatial dims (supported: 1 to 3)")
    lead = 3 - rank

    def dims3(values: Sequence[int], fill: int) -> str:
        return c_ints((fill,) * lead + tuple(values))

    batch, channels, spatial_in = split_layout(x.shape, a.channels_last)
    spatial_out = split_layout(y.shape, a.channels_last)[2]
    pads = c_ints((0,) * lead + a.pads[:rank] + (0,) * lead + a.pads[rank:])
    geometry = ", ".join(
        [
            dims3(spatial_in, 1),
            dims3(spatial_out, 1),
            dims3(a.kernel_shape, 1),
            dims3(a.strides, 1),
            pads,
            dims3(a.dilations, 1),
        ]
    )
    flags = f"{int(node.op is Op.MAX_POOL)}, {int(a.count_include_pad)}"
    if a.channels_last:
        args = f"{ctx.ptr(x)}, {ctx.ptr(y)}, {batch}, {channels}"
        return f"xg_pool_nhwc({flags}, {args}, {geometry});"
    return f"xg_pool({flags}, {ctx.ptr(x)}, {ctx.ptr(y)}, {batch * channels}, {geometry});"


_REDUCE_KERNELS = {
    Op.REDUCE_SUM: "xg_reduce_sum",
    Op.REDUCE_MEAN: "xg_reduce_sum",
    Op.REDUCE_PROD: "xg_reduce_prod",
    Op.REDUCE_MAX: "xg_reduce_max",
    Op.REDUCE_MIN: "xg_reduce_min",
}


def _reduce_kernel(op: Op, src: DType, dst: DType) -> str:
    """The reduce.h instance reading src elements and writing dst elements."""
    name = f"{_REDUCE_KERNELS[op]}_{src.c_type}"
    return name if src is dst else f"{name}_to_{dst.c_type}"


def reduce_passes(shape: Sequence[int], axes: Sequence[int]) -> list[tuple[int, int, int]]:
    """(outer, n, inner) of each pass reducing `axes`: dims of size 1 dropped, adjacent dims of
    the same kind merged, one pass per run of reduced dims (at least one pass)."""
    runs: list[list] = []  # [size, reduced]
    for i, d in enumerate(shape):
        if d == 1:
            continue
        if runs and runs[-1][1] == (i in axes):
            runs[-1][0] *= d
        else:
            runs.append([d, i in axes])
    passes = []
    while any(r for _, r in runs):
        i = max(j for j, (_, r) in enumerate(runs) if r)  # innermost first: contiguous reads
        passes.append((prod(s for s, _ in runs[:i]), runs[i][0], prod(s for s, _ in runs[i + 1 :])))
        del runs[i]
    return passes or [(prod(shape), 1, 1)]


@lowering(*O.REDUCE_OPS, kernels=("reduce.h",))
def lower_reduce(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node, NUMERIC)
    x, y = node.inputs[0], node.outputs[0]
    passes = reduce_passes(x.shape, node.attrs.axes)
    count = prod(x.shape[i] for i in node.attrs.axes)
    # A mean is a sum whose last pass divides by the count (integers truncate toward zero); over
    # no elements, 0 / 0 gives a float NaN as numpy does, and an integer 0 as onnxruntime does.
    divisor = 1
    if node.op is Op.REDUCE_MEAN and (count or x.dtype.is_float):
        divisor = count
    # Integer partial sums stay exact in int64: a mean of wrapped partial sums would be wrong.
    is_sum = node.op in (Op.REDUCE_SUM, Op.REDUCE_MEAN)
    partial = DType.INT64 if is_sum and not x.dtype.is_float else x.dtype
    buffers = ping_pong(ctx, [outer * inner for outer, _, inner in passes[:-1]], partial)
    lines, src, src_dtype = [], ctx.ptr(x), x.dtype
    for i, (outer, n, inner) in enumerate(passes):
        last = i == len(passes) - 1
        dst, dst_dtype = (ctx.ptr(y), y.dtype) if last else (buffers[i % 2], partial)
        kernel = _reduce_kernel(node.op, src_dtype, dst_dtype)
        lines.append(f"{kernel}({src}, {dst}, {outer}, {n}, {inner}, {divisor if last else 1});")
        src, src_dtype = dst, dst_dtype
    return BETWEEN_PASSES.join(lines)


@lowering(Op.ARG_MAX, Op.ARG_MIN, kernels=("reduce.h",))
def lower_arg_reduce(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node, NUMERIC)
    x, y = node.inputs[0], node.outputs[0]
    a: O.ArgReduceAttrs = node.attrs
    outer, n, inner = axis_view(x.shape, a.axis)
    is_max = int(node.op is Op.ARG_MAX)
    return (
        f"xg_arg_reduce_{x.dtype.c_type}({ctx.ptr(x)}, {ctx.ptr(y)}, {outer}, {n}, {inner}, "
        f"{is_max}, {int(a.select_last_index)});"
    )


@lowering(Op.SOFTMAX, Op.LOG_SOFTMAX, kernels=("norm.h",))
def lower_softmax(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node)
    x, y = node.inputs[0], node.outputs[0]
    outer, n, inner = axis_view(x.shape, node.attrs.axis)
    log = int(node.op is Op.LOG_SOFTMAX)
    return f"xg_softmax({ctx.ptr(x)}, {ctx.ptr(y)}, {outer}, {n}, {inner}, {log});"


def _per_element(ctx: KernelContext, node: Node, value: Value, shape: tuple[int, ...]) -> str:
    """Pointer to value broadcast to `shape`: itself if it already has that many elements, else
    its constant data broadcast at compile time."""
    if value.type.size == prod(shape):
        return ctx.ptr(value)
    if value.data is None:
        raise unsupported(node, f"a non-constant {value.shape} parameter broadcast to {shape}")
    full = np.ascontiguousarray(np.broadcast_to(value.data, shape), np.float32)
    return ctx.add_weight(full, f"{node.name} {value.name} broadcast")


@lowering(Op.LAYER_NORM, kernels=("norm.h",))
def lower_layer_norm(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node)
    x, y = node.inputs[0], node.outputs[0]
    a: O.LayerNormAttrs = node.attrs
    norm_shape = x.shape[a.axis :]
    gamma = _per_element(ctx, node, node.inputs[1], norm_shape)
    beta = _per_element(ctx, node, node.inputs[2], norm_shape) if len(node.inputs) == 3 else "NULL"
    rows, n = prod(x.shape[: a.axis]), prod(norm_shape)
    return (
        f"xg_layer_norm({ctx.ptr(x)}, {gamma}, {beta}, {ctx.ptr(y)}, {rows}, {n}, "
        f"{c_float(a.epsilon)});"
    )


@lowering(Op.INSTANCE_NORM, kernels=("norm.h",))
def lower_instance_norm(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node)
    x, scale, bias = node.inputs
    batch, channels = x.shape[:2]
    return (
        f"xg_instance_norm({ctx.ptr(x)}, {ctx.ptr(scale)}, {ctx.ptr(bias)}, "
        f"{ctx.ptr(node.outputs[0])}, {batch}, {channels}, {prod(x.shape[2:])}, "
        f"{c_float(node.attrs.epsilon)});"
    )


@lowering(Op.BATCH_NORM, kernels=("norm.h",))
def lower_batch_norm(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node)
    x = node.inputs[0]
    params = ", ".join(ctx.ptr(v) for v in node.inputs[1:])
    batch, channels = x.shape[:2]
    return (
        f"xg_batch_norm({ctx.ptr(x)}, {params}, {ctx.ptr(node.outputs[0])}, {batch}, "
        f"{channels}, {prod(x.shape[2:])}, {c_float(node.attrs.epsilon)});"
    )


# ---- resize ------------------------------------------------------------------------------------


# onnxruntime rounds a coordinate whose fraction is within this of a half as a tie, so that
# 3.4999998 (2 / float32(4/7)) goes the way of the 3.5 it stands for.
NEAREST_TIE = 1e-6


def _source_coordinates(attrs: O.ResizeAttrs, axis: int, n_in: int) -> np.ndarray:
    """Input coordinate of each output index along one axis, in float32 arithmetic as
    onnxruntime computes it: the rounding of each step decides nearest mode's picks."""
    f = np.float32
    n_out, s = attrs.sizes[axis], f(attrs.scales[axis])
    x = np.arange(n_out, dtype=f)
    transform, T = attrs.coordinate_transform, O.CoordinateTransform
    if transform is T.HALF_PIXEL:
        return (x + f(0.5)) / s - f(0.5)
    if transform is T.HALF_PIXEL_SYMMETRIC:
        adjustment = f(n_out) / (s * f(n_in))
        offset = f(n_in) / f(2) * (f(1) - adjustment)
        # onnxruntime finishes this one in double (its 0.5 literals), then rounds to float
        d = np.float64
        return (d(offset) + (x.astype(d) + 0.5) / d(s) - 0.5).astype(f)
    if transform is T.PYTORCH_HALF_PIXEL:
        return (x + f(0.5)) / s - f(0.5) if n_out > 1 else np.zeros(n_out, f)
    if transform is T.ALIGN_CORNERS:
        return x * f(n_in - 1) / f(n_out - 1) if n_out > 1 else np.zeros(n_out, f)
    if transform is T.ASYMMETRIC:
        return x / s
    return (x + f(0.5)) / s  # TF_HALF_PIXEL_FOR_NN


def nearest_table(attrs: O.ResizeAttrs, axis: int, n_in: int) -> np.ndarray:
    """The input index each output index copies along one axis (int32)."""
    coord = _source_coordinates(attrs, axis, n_in)
    floor = np.floor(coord)
    frac = coord - floor  # exact in float32
    tie = np.abs(frac - np.float32(0.5)) <= np.float32(NEAREST_TIE)
    N = O.NearestMode
    index = {
        N.ROUND_PREFER_FLOOR: floor + ((frac > 0.5) & ~tie),
        N.ROUND_PREFER_CEIL: floor + ((frac > 0.5) | tie),
        N.FLOOR: floor,
        N.CEIL: np.ceil(coord),
    }[attrs.nearest_mode]
    return np.clip(index, 0, n_in - 1).astype(np.int32)


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic convolution weights of the taps at offsets -1, 0, 1, 2 from floor(x)."""
    d = np.stack([t + 1, t, 1 - t, 2 - t], axis=-1).astype(np.float64)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, far)


def interpolation_table(
    attrs: O.ResizeAttrs, axis: int, n_in: int
) -> tuple[np.ndarray, np.ndarray]:
    """Linear or cubic, per output index along one axis: input indices [n_out, taps] (int32) and
    their weights (float32)."""
    coord = _source_coordinates(attrs, axis, n_in).astype(np.float64)
    if attrs.mode is O.ResizeMode.LINEAR:
        coord = np.clip(coord, 0, n_in - 1)
        base = np.floor(coord)
        t = (coord - base)[:, None]
        weights = np.concatenate([1 - t, t], axis=1)
        # A position clamped to the last input reads it twice at 0.5, as onnxruntime does:
        # weights 1 and 0 would turn an infinite input into NaN (0 * inf).
        weights[base == n_in - 1] = 0.5
        idx = np.minimum(base[:, None] + [0, 1], n_in - 1)
        return idx.astype(np.int32), weights.astype(np.float32)
    base = np.floor(coord)
    weights = _cubic_weights(coord - base, attrs.cubic_coeff_a)
    raw = base[:, None] + [-1, 0, 1, 2]
    if attrs.exclude_outside:
        weights = np.where((raw >= 0) & (raw < n_in), weights, 0)
        weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(raw, 0, n_in - 1).astype(np.int32), weights.astype(np.float32)


def _resize_pass(
    ctx: KernelContext, node: Node, axis: int, view: tuple[int, int, int], src: str, dst: str
) -> str:
    """One resize.h call resizing `axis` of src, seen as [outer][n_in][inner], into dst."""
    attrs: O.ResizeAttrs = node.attrs
    outer, n_in, inner = view
    dims = f"{src}, {dst}, {outer}, {n_in}, {attrs.sizes[axis]}, {inner}"
    if attrs.mode is O.ResizeMode.NEAREST:  # a copy of rows: any element type
        table = ctx.add_weight(nearest_table(attrs, axis, n_in), f"{node.name} axis {axis} rows")
        return f"xg_resize_nearest_{node.inputs[0].dtype.c_type}({dims}, {table});"
    idx, weights = interpolation_table(attrs, axis, n_in)
    table = ctx.add_weight(idx, f"{node.name} axis {axis} indices")
    wts = ctx.add_weight(weights, f"{node.name} axis {axis} weights")
    return f"xg_resize_axis({dims}, {idx.shape[1]}, {table}, {wts});"


@lowering(Op.RESIZE, kernels=("resize.h",))
def lower_resize(ctx: KernelContext, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    attrs: O.ResizeAttrs = node.attrs
    if attrs.mode is O.ResizeMode.NEAREST:
        check_dtypes(node, tuple(DType))
    else:
        check_dtypes(node, FLOAT32, by=f" by mode {attrs.mode.value}")
    if x.shape == attrs.sizes:  # onnxruntime copies whatever the scales say
        return f"xg_copy({ctx.ptr(y)}, {ctx.ptr(x)}, {x.type.nbytes});"
    axes = [
        i for i, (d, s) in enumerate(zip(x.shape, attrs.sizes, strict=True))
        if d != s or attrs.scales[i] != 1.0
    ]  # fmt: skip
    shape, sizes = list(x.shape), []
    for axis in axes[:-1]:
        shape[axis] = attrs.sizes[axis]
        sizes.append(prod(shape))
    buffers = ping_pong(ctx, sizes, x.dtype)
    lines, src, shape = [], ctx.ptr(x), list(x.shape)
    for i, axis in enumerate(axes):
        dst = ctx.ptr(y) if i == len(axes) - 1 else buffers[i % 2]
        lines.append(_resize_pass(ctx, node, axis, axis_view(shape, axis), src, dst))
        shape[axis] = attrs.sizes[axis]
        src = dst
    return BETWEEN_PASSES.join(lines)

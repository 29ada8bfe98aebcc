"""Lowerings of the compute-heavy ops onto the kernels of gemm.h, conv.h, pool.h, reduce.h,
norm.h and resize.h.

Constant weights are packed here, at compile time, into the panel layouts xg_sgemm reads
(see kernels/gemm.h), so that inference never re-packs them; weights computed at run time are
packed by xg_sgemm as it goes. Shapes go to the kernels as literal arguments; a kernel views its
operand as [outer][n][inner] wherever an op works along one axis. Kernels that are not float-only
come in one instance per element type, named after its C type (xg_reduce_sum_int32_t).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from math import prod

import numpy as np

from xgen.codegen.lower import KernelContext, c_float, c_ints, lowering
from xgen.errors import UnsupportedOpError
from xgen.ir import DType, Node, Op, Value
from xgen.ir import ops as O
from xgen.ir.infer import broadcast_shapes

# Must match kernels/gemm.h.
GEMM_MR = 8  # XG_GEMM_MR: rows of a packed A panel
GEMM_NP = 16  # XG_GEMM_NP: columns of a packed B panel
GEMM_KC = 256  # XG_GEMM_KC: depth of a K block
GEMM_NR_MAX = 32  # the widest XG_GEMM_NR (AVX-512), which sizes the work memory


def round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _pack(matrix: np.ndarray, panel: int, rows_are_panels: bool) -> np.ndarray:
    """Per K block of GEMM_KC, panels of `panel` rows (A) or columns (B), each k-major, padded."""
    m = matrix.astype(np.float32) if rows_are_panels else matrix.astype(np.float32).T
    rows, depth = m.shape
    padded = np.zeros((round_up(rows, panel), depth), np.float32)
    padded[:rows] = m
    blocks = [
        padded[:, k0 : k0 + GEMM_KC].reshape(-1, panel, min(GEMM_KC, depth - k0)).transpose(0, 2, 1)
        for k0 in range(0, depth, GEMM_KC)
    ]
    return np.concatenate([b.ravel() for b in blocks]) if blocks else padded.ravel()


def pack_gemm_a(a: np.ndarray) -> np.ndarray:
    """A [M, K] in xg_sgemm's packed-A layout: round_up(M, MR) * K floats."""
    return _pack(a, GEMM_MR, rows_are_panels=True)


def pack_gemm_b(b: np.ndarray) -> np.ndarray:
    """B [K, N] in xg_sgemm's packed-B layout: round_up(N, NP) * K floats."""
    return _pack(b, GEMM_NP, rows_are_panels=False)


def gemm_work_floats(m: int, n: int, k: int) -> int:
    """xg_sgemm_work_floats: packing buffers for one K block of both operands."""
    kc = min(k, GEMM_KC)
    return kc * (round_up(n, GEMM_NR_MAX) + round_up(m, GEMM_MR))


FLOAT32 = (DType.FLOAT32,)
NUMERIC = (DType.FLOAT32, DType.INT64, DType.INT32, DType.INT8, DType.UINT8)  # see reduce.h


def _unsupported(node: Node, detail: str) -> UnsupportedOpError:
    return UnsupportedOpError(node.op.value, node.name, detail=detail)


def _check_dtypes(node: Node, allowed: Collection[DType] = FLOAT32, by: str = "") -> None:
    """Inputs of a dtype the kernels have no instance for get a clear error, not wrong C."""
    for v in node.inputs:
        if v.dtype not in allowed:
            names = ", ".join(d.value for d in allowed)
            raise _unsupported(node, f"input {v.name} is {v.dtype.value} (supported{by}: {names})")


def _ptr(ctx: KernelContext, value: Value | None) -> str:
    return ctx.ptr(value) if value is not None else "NULL"


def _scratch(ctx: KernelContext, counts: Sequence[int], dtype: DType = DType.FLOAT32) -> list[str]:
    """Pointers to consecutive 64-byte aligned scratch regions of counts[i] elements of dtype."""
    offsets, total = [], 0
    for n in counts:
        offsets.append(total)
        total += round_up(max(n, 1) * dtype.itemsize, 64)
    base = ctx.scratch(total)
    return [f"({dtype.c_type} *)({base} + {off})" for off in offsets]


def _ping_pong(ctx: KernelContext, sizes: list[int], dtype: DType) -> list[str]:
    """Two scratch buffers for a chain of passes: pass i writes buffer i % 2 (sizes[i] elements)."""
    return _scratch(ctx, [max(sizes[0::2], default=0), max(sizes[1::2], default=0)], dtype)


def _axis_view(shape: Sequence[int], axis: int) -> tuple[int, int, int]:
    """(outer, n, inner) of a dense tensor seen along one axis."""
    return prod(shape[:axis]), shape[axis], prod(shape[axis + 1 :])


# ---- convolution ---------------------------------------------------------------------------


def _geometry3(node: Node, spatial_in: Sequence[int], spatial_out: Sequence[int]) -> str:
    """The in, out, ker, stride, pad (begins), dil arguments of conv.h, padded to 3 dims."""
    a = node.attrs
    rank = len(spatial_in)
    if rank > 3:
        raise _unsupported(node, f"{rank} spatial dims (supported: 1 to 3)")
    lead = 3 - rank
    kernel = node.inputs[1].shape[2:]
    return ", ".join(
        c_ints((fill,) * lead + tuple(v))
        for v, fill in [
            (spatial_in, 1),
            (spatial_out, 1),
            (kernel, 1),
            (a.strides, 1),
            (a.pads[:rank], 0),
            (a.dilations, 1),
        ]
    )


def _weight_args(
    ctx: KernelContext,
    node: Node,
    pack: Callable[[np.ndarray], np.ndarray],
    packed_stride: int,
    plain_stride: int,
) -> str:
    """The `wp, w, wstride` arguments of xg_conv and xg_conv_transpose: a constant weight packed
    now (pack maps one group's slice), any other passed as it is for xg_sgemm to pack at run
    time. The strides are the floats between groups in each layout."""
    w = node.inputs[1]
    if w.data is None:
        return f"NULL, {ctx.ptr(w)}, {plain_stride}"
    packed = np.concatenate([pack(g) for g in np.split(w.data, node.attrs.group)])
    return f"{ctx.add_weight(packed, f'{node.name} packed weight')}, NULL, {packed_stride}"


@lowering(Op.CONV)
def lower_conv(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node)
    x, w = node.inputs[:2]
    bias = _ptr(ctx, node.inputs[2] if len(node.inputs) == 3 else None)
    y = node.outputs[0]
    batch, cin = x.shape[:2]
    cout, group = y.shape[1], node.attrs.group
    geometry = _geometry3(node, x.shape[2:], y.shape[2:])
    if group == cin == cout:
        return (
            f"xg_conv_depthwise({ctx.ptr(x)}, {ctx.ptr(w)}, {bias}, {ctx.ptr(y)}, {batch}, "
            f"{cin}, {geometry});"
        )
    cin_g, cout_g = cin // group, cout // group
    k, npix = cin_g * prod(w.shape[2:]), prod(y.shape[2:])
    weight = _weight_args(
        ctx,
        node,
        pack=lambda g: pack_gemm_a(g.reshape(cout_g, k)),
        packed_stride=round_up(cout_g, GEMM_MR) * k,
        plain_stride=cout_g * k,
    )
    # conv.h multiplies X directly (no im2col) in the 1x1, stride-1, unpadded case
    direct = k == cin_g and npix == prod(x.shape[2:]) and set(node.attrs.strides) == {1}
    col = 0 if direct and not any(node.attrs.pads) else k * round_up(npix, GEMM_NP)
    (work,) = _scratch(ctx, [col + gemm_work_floats(cout_g, npix, k)])
    return (
        f"xg_conv({ctx.ptr(x)}, {weight}, {bias}, {ctx.ptr(y)}, {batch}, {cin}, {cout}, "
        f"{group}, {geometry}, {work});"
    )


@lowering(Op.CONV_TRANSPOSE)
def lower_conv_transpose(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node)
    x, w = node.inputs[:2]
    bias = node.inputs[2] if len(node.inputs) == 3 else None
    y = node.outputs[0]
    batch, cin = x.shape[:2]
    cout, group = y.shape[1], node.attrs.group
    cin_g, cout_g = cin // group, cout // group
    geometry = _geometry3(node, x.shape[2:], y.shape[2:])
    m = cout_g * prod(w.shape[2:])
    npix = prod(x.shape[2:])
    # Group g's GEMM: col [cout_g*k, npix] = W_g^T [cout_g*k, cin_g] @ X_g [cin_g, npix].
    weight = _weight_args(
        ctx,
        node,
        pack=lambda g: pack_gemm_a(g.reshape(cin_g, m).T),
        packed_stride=round_up(m, GEMM_MR) * cin_g,
        plain_stride=cin_g * m,
    )
    (work,) = _scratch(ctx, [m * npix + gemm_work_floats(m, npix, cin_g)])
    return (
        f"xg_conv_transpose({ctx.ptr(x)}, {weight}, {_ptr(ctx, bias)}, {ctx.ptr(y)}, {batch}, "
        f"{cin}, {cout}, {group}, {geometry}, {work});"
    )


# ---- GEMM and MatMul -----------------------------------------------------------------------


def _gemm_call(
    ctx: KernelContext,
    node: Node,
    mnk: tuple[int, int, int],
    a: Value,
    a_strides: tuple[int, int],
    b: Value,
    b_strides: tuple[int, int],
    out: str,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> str:
    """One xg_sgemm call; a constant operand is packed now, at compile time."""
    m, n, k = mnk
    if a.data is not None:
        view = np.lib.stride_tricks.as_strided(
            a.data, (m, k), (a_strides[0] * 4, a_strides[1] * 4)
        ).astype(np.float32)
        a_args = f"{ctx.add_weight(pack_gemm_a(view), f'{node.name} packed A')}, NULL, 0, 0"
    else:
        a_args = f"NULL, {ctx.ptr(a)}, {a_strides[0]}, {a_strides[1]}"
    if b.data is not None:
        view = np.lib.stride_tricks.as_strided(
            b.data, (k, n), (b_strides[0] * 4, b_strides[1] * 4)
        ).astype(np.float32)
        b_args = f"{ctx.add_weight(pack_gemm_b(view), f'{node.name} packed B')}, NULL, 0, 0"
    else:
        b_args = f"NULL, {ctx.ptr(b)}, {b_strides[0]}, {b_strides[1]}"
    (work,) = _scratch(ctx, [gemm_work_floats(m, n, k)])
    return (
        f"xg_sgemm({m}, {n}, {k}, {c_float(alpha)}, {a_args}, {b_args}, {c_float(beta)}, "
        f"{out}, {n}, {work});"
    )


@lowering(Op.GEMM)
def lower_gemm(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node)
    a, b = node.inputs[:2]
    attrs: O.GemmAttrs = node.attrs
    y = node.outputs[0]
    m, n = y.shape
    k = a.shape[0] if attrs.trans_a else a.shape[1]
    # Strides of op(A) [m, k] and op(B) [k, n] over the stored row-major matrices.
    a_strides = (1, m) if attrs.trans_a else (k, 1)
    b_strides = (1, k) if attrs.trans_b else (n, 1)
    code, beta = [], 0.0
    if len(node.inputs) == 3 and attrs.beta != 0.0:
        c = node.inputs[2]
        rows, cols = (1,) * (2 - len(c.shape)) + tuple(c.shape)
        strides = (cols if rows != 1 else 0, 1 if cols != 1 else 0)
        code.append(
            f"xg_gemm_fill({ctx.ptr(y)}, {m}, {n}, {ctx.ptr(c)}, {strides[0]}, {strides[1]}, "
            f"{c_float(attrs.beta)});"
        )
        beta = 1.0
    call = _gemm_call(
        ctx, node, (m, n, k), a, a_strides, b, b_strides, ctx.ptr(y), attrs.alpha, beta
    )
    return "\n".join([*code, call])


def _batch_offsets(shape: tuple[int, ...], batch: tuple[int, ...], matrix: int) -> list[int]:
    """Float offset of each batch entry's matrix in an operand of batch dims `shape`."""
    shape = (1,) * (len(batch) - len(shape)) + shape
    strides = [prod(shape[i + 1 :]) * matrix for i in range(len(shape))]
    index = np.indices(batch).reshape(len(batch), -1).T if batch else np.zeros((1, 0), int)
    return [
        sum(int(i) * s for i, s, d in zip(idx, strides, shape, strict=True) if d != 1)
        for idx in index
    ]


@lowering(Op.MATMUL)
def lower_matmul(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node)
    a, b = node.inputs
    y = node.outputs[0]
    a_shape = (1, *a.shape) if len(a.shape) == 1 else a.shape
    b_shape = (*b.shape, 1) if len(b.shape) == 1 else b.shape
    (m, k), n = a_shape[-2:], b_shape[-1]
    a_batch, b_batch = a_shape[:-2], b_shape[:-2]
    if prod(b_batch) == 1:
        # One GEMM: A's batch dims fold into its rows (the usual x @ W of a linear layer).
        rows = prod(a_batch) * m
        return _gemm_call(ctx, node, (rows, n, k), a, (k, 1), b, (n, 1), ctx.ptr(y))
    batch = broadcast_shapes(a_batch, b_batch)
    a_off = _batch_offsets(a_batch, batch, m * k)
    b_off = _batch_offsets(b_batch, batch, k * n)
    (work,) = _scratch(ctx, [gemm_work_floats(m, n, k)])
    return "\n".join(
        [
            f"const float *a = {ctx.ptr(a)}, *b = {ctx.ptr(b)};",
            f"float *y = {ctx.ptr(y)};",
            f"static const long a_off[] = {{{', '.join(map(str, a_off))}}};",
            f"static const long b_off[] = {{{', '.join(map(str, b_off))}}};",
            f"for (long i = 0; i < {len(a_off)}; i++)",
            f"    xg_sgemm({m}, {n}, {k}, 1.0f, NULL, a + a_off[i], {k}, 1, NULL, b + b_off[i], "
            f"{n}, 1, 0.0f, y + i * {m * n}, {n}, {work});",
        ]
    )


# ---- pooling, reductions, normalisations ------------------------------------------------------


@lowering(Op.MAX_POOL, Op.AVERAGE_POOL)
def lower_pool(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node)
    x, y = node.inputs[0], node.outputs[0]
    a: O.PoolAttrs = node.attrs
    rank = len(a.kernel_shape)
    if rank > 3:
        raise _unsupported(node, f"{rank} spatial dims (supported: 1 to 3)")
    lead = 3 - rank

    def dims3(values: Sequence[int], fill: int) -> str:
        return c_ints((fill,) * lead + tuple(values))

    pads = c_ints((0,) * lead + a.pads[:rank] + (0,) * lead + a.pads[rank:])
    geometry = ", ".join(
        [
            dims3(x.shape[2:], 1),
            dims3(y.shape[2:], 1),
            dims3(a.kernel_shape, 1),
            dims3(a.strides, 1),
            pads,
            dims3(a.dilations, 1),
        ]
    )
    is_max = int(node.op is Op.MAX_POOL)
    planes = x.shape[0] * x.shape[1]
    return (
        f"xg_pool({is_max}, {int(a.count_include_pad)}, {ctx.ptr(x)}, {ctx.ptr(y)}, {planes}, "
        f"{geometry});"
    )


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


@lowering(*O.REDUCE_OPS)
def lower_reduce(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node, NUMERIC)
    x, y = node.inputs[0], node.outputs[0]
    passes = reduce_passes(x.shape, node.attrs.axes)
    count = prod(x.shape[i] for i in node.attrs.axes)
    # A mean is a sum whose last pass divides by the count (integers truncate toward zero).
    divisor = count if node.op is Op.REDUCE_MEAN and count else 1
    # Integer partial sums stay exact in int64: a mean of wrapped partial sums would be wrong.
    is_sum = node.op in (Op.REDUCE_SUM, Op.REDUCE_MEAN)
    partial = DType.INT64 if is_sum and not x.dtype.is_float else x.dtype
    buffers = _ping_pong(ctx, [outer * inner for outer, _, inner in passes[:-1]], partial)
    lines, src, src_dtype = [], ctx.ptr(x), x.dtype
    for i, (outer, n, inner) in enumerate(passes):
        last = i == len(passes) - 1
        dst, dst_dtype = (ctx.ptr(y), y.dtype) if last else (buffers[i % 2], partial)
        kernel = _reduce_kernel(node.op, src_dtype, dst_dtype)
        lines.append(f"{kernel}({src}, {dst}, {outer}, {n}, {inner}, {divisor if last else 1});")
        src, src_dtype = dst, dst_dtype
    return "\n".join(lines)


@lowering(Op.ARG_MAX, Op.ARG_MIN)
def lower_arg_reduce(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node, NUMERIC)
    x, y = node.inputs[0], node.outputs[0]
    a: O.ArgReduceAttrs = node.attrs
    outer, n, inner = _axis_view(x.shape, a.axis)
    is_max = int(node.op is Op.ARG_MAX)
    return (
        f"xg_arg_reduce_{x.dtype.c_type}({ctx.ptr(x)}, {ctx.ptr(y)}, {outer}, {n}, {inner}, "
        f"{is_max}, {int(a.select_last_index)});"
    )


@lowering(Op.SOFTMAX, Op.LOG_SOFTMAX)
def lower_softmax(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node)
    x, y = node.inputs[0], node.outputs[0]
    outer, n, inner = _axis_view(x.shape, node.attrs.axis)
    log = int(node.op is Op.LOG_SOFTMAX)
    return f"xg_softmax({ctx.ptr(x)}, {ctx.ptr(y)}, {outer}, {n}, {inner}, {log});"


def _per_element(ctx: KernelContext, node: Node, value: Value, shape: tuple[int, ...]) -> str:
    """Pointer to value broadcast to `shape`: itself if it already has that many elements, else
    its constant data broadcast at compile time."""
    if value.type.size == prod(shape):
        return ctx.ptr(value)
    if value.data is None:
        raise _unsupported(node, f"a non-constant {value.shape} parameter broadcast to {shape}")
    full = np.ascontiguousarray(np.broadcast_to(value.data, shape), np.float32)
    return ctx.add_weight(full, f"{node.name} {value.name} broadcast")


@lowering(Op.LAYER_NORM)
def lower_layer_norm(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node)
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


@lowering(Op.INSTANCE_NORM)
def lower_instance_norm(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node)
    x, scale, bias = node.inputs
    batch, channels = x.shape[:2]
    return (
        f"xg_instance_norm({ctx.ptr(x)}, {ctx.ptr(scale)}, {ctx.ptr(bias)}, "
        f"{ctx.ptr(node.outputs[0])}, {batch}, {channels}, {prod(x.shape[2:])}, "
        f"{c_float(node.attrs.epsilon)});"
    )


@lowering(Op.BATCH_NORM)
def lower_batch_norm(ctx: KernelContext, node: Node) -> str:
    _check_dtypes(node)
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
        idx = np.minimum(base[:, None] + [0, 1], n_in - 1)
        return idx.astype(np.int32), np.concatenate([1 - t, t], axis=1).astype(np.float32)
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


@lowering(Op.RESIZE)
def lower_resize(ctx: KernelContext, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    attrs: O.ResizeAttrs = node.attrs
    if attrs.mode is O.ResizeMode.NEAREST:
        _check_dtypes(node, tuple(DType))
    else:
        _check_dtypes(node, FLOAT32, by=f" by mode {attrs.mode.value}")
    if x.shape == attrs.sizes:  # onnxruntime copies whatever the scales say
        return f"memcpy({ctx.ptr(y)}, {ctx.ptr(x)}, {x.type.nbytes});"
    axes = [
        i for i, (d, s) in enumerate(zip(x.shape, attrs.sizes, strict=True))
        if d != s or attrs.scales[i] != 1.0
    ]  # fmt: skip
    shape, sizes = list(x.shape), []
    for axis in axes[:-1]:
        shape[axis] = attrs.sizes[axis]
        sizes.append(prod(shape))
    buffers = _ping_pong(ctx, sizes, x.dtype)
    lines, src, shape = [], ctx.ptr(x), list(x.shape)
    for i, axis in enumerate(axes):
        dst = ctx.ptr(y) if i == len(axes) - 1 else buffers[i % 2]
        lines.append(_resize_pass(ctx, node, axis, _axis_view(shape, axis), src, dst))
        shape[axis] = attrs.sizes[axis]
        src = dst
    return "\n".join(lines)

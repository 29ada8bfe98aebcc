"""Lowerings of the compute-heavy ops onto the kernels of gemm.h, conv.h, pool.h, reduce.h,
norm.h and resize.h.

Constant weights are packed here, at compile time, into the panel layouts xg_sgemm reads
(see kernels/gemm.h), so that inference never re-packs them. Shapes go to the kernels as literal
arguments; a kernel views its operand as [outer][n][inner] wherever an op works along one axis.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _unsupported(node: Node, detail: str) -> UnsupportedOpError:
    return UnsupportedOpError(node.op.value, node.name, detail=detail)


def _float_only(node: Node) -> None:
    """These kernels are float32; other dtypes get a clear error, not wrong C."""
    for v in node.inputs:
        if v.dtype is not DType.FLOAT32:
            raise _unsupported(node, f"input {v.name} is {v.dtype.value} (supported: float32)")


def _ptr(ctx: KernelContext, value: Value | None) -> str:
    return ctx.ptr(value) if value is not None else "NULL"


def _float_scratch(ctx: KernelContext, floats: Sequence[int]) -> list[str]:
    """Float pointers to consecutive 64-byte aligned scratch regions of the given sizes."""
    offsets, total = [], 0
    for n in floats:
        offsets.append(total)
        total += round_up(max(n, 1) * 4, 64)
    base = ctx.scratch(total)
    return [f"(float *)({base} + {off})" for off in offsets]


def _ping_pong(ctx: KernelContext, sizes: list[int]) -> list[str]:
    """Two scratch buffers for a chain of passes: pass i writes buffer i % 2 (sizes[i] floats)."""
    return _float_scratch(ctx, [max(sizes[0::2], default=0), max(sizes[1::2], default=0)])


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


def _constant_weight(node: Node) -> np.ndarray:
    w = node.inputs[1]
    if w.data is None:
        raise _unsupported(node, "the weight must be a constant (initializer)")
    return w.data


@lowering(Op.CONV)
def lower_conv(ctx: KernelContext, node: Node) -> str:
    _float_only(node)
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
    weight = _constant_weight(node)
    cin_g, cout_g = cin // group, cout // group
    k, npix = cin_g * prod(w.shape[2:]), prod(y.shape[2:])
    packed = np.concatenate([pack_gemm_a(m.reshape(cout_g, k)) for m in np.split(weight, group)])
    wstride = round_up(cout_g, GEMM_MR) * k
    # conv.h multiplies X directly (no im2col) in the 1x1, stride-1, unpadded case
    direct = k == cin_g and npix == prod(x.shape[2:]) and set(node.attrs.strides) == {1}
    col = 0 if direct and not any(node.attrs.pads) else k * round_up(npix, GEMM_NP)
    (work,) = _float_scratch(ctx, [col + gemm_work_floats(cout_g, npix, k)])
    packed_ptr = ctx.add_weight(packed, f"{node.name} packed weight")
    return (
        f"xg_conv({ctx.ptr(x)}, {packed_ptr}, {wstride}, {bias}, {ctx.ptr(y)}, {batch}, {cin}, "
        f"{cout}, {group}, {geometry}, {work});"
    )


@lowering(Op.CONV_TRANSPOSE)
def lower_conv_transpose(ctx: KernelContext, node: Node) -> str:
    _float_only(node)
    x, w = node.inputs[:2]
    bias = node.inputs[2] if len(node.inputs) == 3 else None
    y = node.outputs[0]
    batch, cin = x.shape[:2]
    cout, group = y.shape[1], node.attrs.group
    cin_g, cout_g = cin // group, cout // group
    geometry = _geometry3(node, x.shape[2:], y.shape[2:])
    m = cout_g * prod(w.shape[2:])
    npix = prod(x.shape[2:])
    weight = _constant_weight(node)
    # Group g's GEMM: col [cout_g*k, npix] = W_g^T [cout_g*k, cin_g] @ X_g [cin_g, npix].
    packed = np.concatenate([pack_gemm_a(g.reshape(cin_g, m).T) for g in np.split(weight, group)])
    wstride = round_up(m, GEMM_MR) * cin_g
    (work,) = _float_scratch(ctx, [m * npix + gemm_work_floats(m, npix, cin_g)])
    packed_ptr = ctx.add_weight(packed, f"{node.name} packed weight")
    return (
        f"xg_conv_transpose({ctx.ptr(x)}, {packed_ptr}, {wstride}, {_ptr(ctx, bias)}, "
        f"{ctx.ptr(y)}, {batch}, {cin}, {cout}, {group}, {geometry}, {work});"
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
    (work,) = _float_scratch(ctx, [gemm_work_floats(m, n, k)])
    return (
        f"xg_sgemm({m}, {n}, {k}, {c_float(alpha)}, {a_args}, {b_args}, {c_float(beta)}, "
        f"{out}, {n}, {work});"
    )


@lowering(Op.GEMM)
def lower_gemm(ctx: KernelContext, node: Node) -> str:
    _float_only(node)
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
    _float_only(node)
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
    (work,) = _float_scratch(ctx, [gemm_work_floats(m, n, k)])
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
    _float_only(node)
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
    _float_only(node)
    x, y = node.inputs[0], node.outputs[0]
    passes = reduce_passes(x.shape, node.attrs.axes)
    count = prod(x.shape[i] for i in node.attrs.axes)
    scale = 1.0 / count if node.op is Op.REDUCE_MEAN and count else 1.0
    buffers = _ping_pong(ctx, [outer * inner for outer, _, inner in passes[:-1]])
    kernel = _REDUCE_KERNELS[node.op]
    lines, src = [], ctx.ptr(x)
    for i, (outer, n, inner) in enumerate(passes):
        last = i == len(passes) - 1
        dst = ctx.ptr(y) if last else buffers[i % 2]
        factor = c_float(scale if last else 1.0)
        lines.append(f"{kernel}({src}, {dst}, {outer}, {n}, {inner}, {factor});")
        src = dst
    return "\n".join(lines)


@lowering(Op.ARG_MAX, Op.ARG_MIN)
def lower_arg_reduce(ctx: KernelContext, node: Node) -> str:
    _float_only(node)
    x, y = node.inputs[0], node.outputs[0]
    a: O.ArgReduceAttrs = node.attrs
    outer, n, inner = _axis_view(x.shape, a.axis)
    is_max = int(node.op is Op.ARG_MAX)
    return (
        f"xg_arg_reduce({ctx.ptr(x)}, {ctx.ptr(y)}, {outer}, {n}, {inner}, {is_max}, "
        f"{int(a.select_last_index)});"
    )


@lowering(Op.SOFTMAX, Op.LOG_SOFTMAX)
def lower_softmax(ctx: KernelContext, node: Node) -> str:
    _float_only(node)
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
    _float_only(node)
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
    _float_only(node)
    x, scale, bias = node.inputs
    batch, channels = x.shape[:2]
    return (
        f"xg_instance_norm({ctx.ptr(x)}, {ctx.ptr(scale)}, {ctx.ptr(bias)}, "
        f"{ctx.ptr(node.outputs[0])}, {batch}, {channels}, {prod(x.shape[2:])}, "
        f"{c_float(node.attrs.epsilon)});"
    )


@lowering(Op.BATCH_NORM)
def lower_batch_norm(ctx: KernelContext, node: Node) -> str:
    _float_only(node)
    x = node.inputs[0]
    params = ", ".join(ctx.ptr(v) for v in node.inputs[1:])
    batch, channels = x.shape[:2]
    return (
        f"xg_batch_norm({ctx.ptr(x)}, {params}, {ctx.ptr(node.outputs[0])}, {batch}, "
        f"{channels}, {prod(x.shape[2:])}, {c_float(node.attrs.epsilon)});"
    )


# ---- resize ------------------------------------------------------------------------------------


def _source_coordinates(
    transform: O.CoordinateTransform, n_in: int, n_out: int, scale: float
) -> np.ndarray:
    """Input coordinate of each output index (in double, matching onnxruntime's halfway cases)."""
    f = np.float64
    x = np.arange(n_out, dtype=f)
    s = f(scale)
    T = O.CoordinateTransform
    if transform is T.HALF_PIXEL:
        return (x + f(0.5)) / s - f(0.5)
    if transform is T.HALF_PIXEL_SYMMETRIC:
        adjustment = f(n_out) / (s * f(n_in))
        offset = f(n_in) / f(2) * (f(1) - adjustment)
        return offset + (x + f(0.5)) / s - f(0.5)
    if transform is T.PYTORCH_HALF_PIXEL:
        return (x + f(0.5)) / s - f(0.5) if n_out > 1 else np.zeros(n_out, f)
    if transform is T.ALIGN_CORNERS:
        return x * f(n_in - 1) / f(n_out - 1) if n_out > 1 else np.zeros(n_out, f)
    if transform is T.ASYMMETRIC:
        return x / s
    return (x + f(0.5)) / s  # TF_HALF_PIXEL_FOR_NN


def _nearest_index(coord: np.ndarray, mode: O.NearestMode) -> np.ndarray:
    N = O.NearestMode
    if mode is N.FLOOR:
        return np.floor(coord)
    if mode is N.CEIL:
        return np.ceil(coord)
    halfway = coord - np.floor(coord) == 0.5
    if mode is N.ROUND_PREFER_FLOOR:
        return np.where(halfway, np.floor(coord), np.round(coord))
    return np.where(halfway, np.ceil(coord), np.round(coord))


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic convolution weights of the taps at offsets -1, 0, 1, 2 from floor(x)."""
    d = np.stack([t + 1, t, 1 - t, 2 - t], axis=-1).astype(np.float64)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, far)


def resize_table(attrs: O.ResizeAttrs, axis: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output index along one axis: input indices [n_out, taps] and their weights."""
    n_out = attrs.sizes[axis]
    coord = _source_coordinates(attrs.coordinate_transform, n_in, n_out, attrs.scales[axis])
    if attrs.mode is O.ResizeMode.NEAREST:
        idx = np.clip(_nearest_index(coord, attrs.nearest_mode), 0, n_in - 1)[:, None]
        return idx.astype(np.int32), np.ones(idx.shape, np.float32)
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


@lowering(Op.RESIZE)
def lower_resize(ctx: KernelContext, node: Node) -> str:
    _float_only(node)
    x, y = node.inputs[0], node.outputs[0]
    attrs: O.ResizeAttrs = node.attrs
    shape = list(x.shape)
    axes = [
        i for i, (d, s) in enumerate(zip(x.shape, attrs.sizes, strict=True))
        if d != s or attrs.scales[i] != 1.0
    ]  # fmt: skip
    if not axes:
        return f"memcpy({ctx.ptr(y)}, {ctx.ptr(x)}, {x.type.nbytes});"
    sizes = []
    for axis in axes[:-1]:
        shape[axis] = attrs.sizes[axis]
        sizes.append(prod(shape))
    buffers = _ping_pong(ctx, sizes)
    lines, src, shape = [], ctx.ptr(x), list(x.shape)
    for i, axis in enumerate(axes):
        idx, weights = resize_table(attrs, axis, shape[axis])
        outer, n_in, inner = _axis_view(shape, axis)
        shape[axis] = attrs.sizes[axis]
        dst = ctx.ptr(y) if i == len(axes) - 1 else buffers[i % 2]
        table = ctx.add_weight(idx, f"{node.name} axis {axis} indices")
        wts = ctx.add_weight(weights, f"{node.name} axis {axis} weights")
        lines.append(
            f"xg_resize_axis({src}, {dst}, {outer}, {n_in}, {shape[axis]}, {inner}, "
            f"{idx.shape[1]}, {table}, {wts});"
        )
        src = dst
    return "\n".join(lines)

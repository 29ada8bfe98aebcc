"""Lowerings of Conv, ConvTranspose, Gemm and MatMul onto the kernels of conv.h and gemm.h.

Constant weights are packed here, at compile time, into the panel layouts xg_sgemm reads
(see kernels/gemm.h), so that inference never re-packs them; weights computed at run time are
packed by xg_sgemm as it goes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod

import numpy as np

from xgen.codegen.loops import transposed_view
from xgen.codegen.lower import (
    BETWEEN_PASSES,
    SCRATCH_THREADS,
    KernelContext,
    c_float,
    c_ints,
    check_dtypes,
    lowering,
    ptr_or_null,
    round_up,
    scratch_arrays,
    unsupported,
)
from xgen.codegen.lower_pattern import pattern_conv_call
from xgen.codegen.lower_winograd import winograd_conv_call
from xgen.ir import Node, Op, Value
from xgen.ir import ops as O
from xgen.ir.infer import Shape, broadcast_shapes
from xgen.ir.ops import ConvKernel

# Must match kernels/gemm.h.
GEMM_MR = 8  # XG_GEMM_MR: rows of a packed A panel
GEMM_NP = 16  # XG_GEMM_NP: columns of a packed B panel
GEMM_KC = 256  # XG_GEMM_KC: depth of a K block
GEMM_NR_MAX = 32  # the widest XG_GEMM_NR (AVX-512), which sizes the work memory
CONV_NHWC_NP = 16  # XG_CONV_NHWC_NP (kernels/conv_nhwc.h): output channels per weight panel


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


def batched_work_floats(batch: int, m: int, n: int, k: int) -> int:
    """xg_sgemm_batched_work_floats: every product's operands packed (k <= GEMM_KC)."""
    return batch * k * (round_up(n, GEMM_NR_MAX) + round_up(m, GEMM_MR))


# ---- the fused epilogue (kernels/epilogue.h) ----------------------------------------------


def epilogue_arg(
    ctx: KernelContext, node: Node, row_bias: str = "NULL", col_bias: str = "NULL"
) -> str:
    """The `const xg_epilogue *` argument: NULL, or a compound literal of the parts present."""
    _, residual = O.split_epilogue_inputs(node.inputs, node.attrs)
    return epilogue_literal(ctx, node.attrs.epilogue, residual, row_bias, col_bias)


def epilogue_literal(
    ctx: KernelContext,
    epilogue: O.Epilogue,
    residual: Value | None,
    row_bias: str = "NULL",
    col_bias: str = "NULL",
) -> str:
    """epilogue_arg of an epilogue and the residual (or None) it adds."""
    fields = {"row_bias": row_bias, "col_bias": col_bias, "res": ptr_or_null(ctx, residual)}
    parts = [f".{name} = {value}" for name, value in fields.items() if value != "NULL"]
    if epilogue.activation is O.Activation.RELU:
        parts.append(".clamp = 1, .lo = 0.0f, .hi = INFINITY")
    elif epilogue.activation is O.Activation.CLIP:
        lo, hi = c_float(epilogue.clip_min), c_float(epilogue.clip_max)
        parts.append(f".clamp = 1, .lo = {lo}, .hi = {hi}")
    elif epilogue.activation is O.Activation.GELU:
        parts.append(".gelu = XG_GELU_ERF")
    elif epilogue.activation is O.Activation.GELU_TANH:
        parts.append(".gelu = XG_GELU_TANH")
    return f"&(xg_epilogue){{{', '.join(parts)}}}" if parts else "NULL"


# ---- convolution ---------------------------------------------------------------------------


def _geometry3(node: Node, spatial_in: Sequence[int], spatial_out: Sequence[int]) -> str:
    """The in, out, ker, stride, pad (begins), dil arguments of conv.h, padded to 3 dims."""
    a = node.attrs
    rank = len(spatial_in)
    if rank > 3:
        raise unsupported(node, f"{rank} spatial dims (supported: 1 to 3)")
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


@lowering(
    Op.CONV,
    kernels=(
        "conv.h",
        "conv_nhwc.h",
        "depthwise.h",
        "pattern.h",
        "winograd.h",
        "expand_depthwise.h",
    ),
)
def lower_conv(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node)
    if node.attrs.channels_last:
        return _lower_conv_channels_last(ctx, node)
    inputs, _ = O.split_epilogue_inputs(node.inputs, node.attrs)
    x, w = inputs[:2]
    bias = ptr_or_null(ctx, inputs[2] if len(inputs) == 3 else None)
    epilogue = epilogue_arg(ctx, node, row_bias=bias)
    y = node.outputs[0]
    batch, cin = x.shape[:2]
    cout, group = y.shape[1], node.attrs.group
    geometry = _geometry3(node, x.shape[2:], y.shape[2:])
    if group == cin == cout:
        return (
            f"xg_conv_depthwise({ctx.ptr(x)}, {ctx.ptr(w)}, {ctx.ptr(y)}, {batch}, {cin}, "
            f"{geometry},\n                  {epilogue});"
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
    # conv.h multiplies X directly (no im2col, all npix columns at once) in the 1x1, stride-1,
    # unpadded case; otherwise the im2col matrix goes in chunks of pixels
    direct = (
        k == cin_g
        and npix == prod(x.shape[2:])
        and set(node.attrs.strides) == {1}
        and not any(node.attrs.pads)
    )
    chunk = _im2col_chunk(k, npix)
    col, columns = (0, npix) if direct else (k * round_up(chunk, GEMM_NP), chunk)
    (work,) = scratch_arrays(ctx, [col + gemm_work_floats(cout_g, columns, k)])
    return (
        f"xg_conv({ctx.ptr(x)}, {weight}, {ctx.ptr(y)}, {batch}, {cin}, {cout}, {group}, "
        f"{geometry},\n        {chunk}, {epilogue}, {work});"
    )


def _lower_conv_channels_last(ctx: KernelContext, node: Node) -> str:
    """A channels-last Conv (see passes/layout.py: its weight is constant and it is dense or
    depthwise): the weight is laid out now for the kernel, the bias goes to the epilogue as the
    per-column (channel) bias of the [pixels, channels] output."""
    inputs, _ = O.split_epilogue_inputs(node.inputs, node.attrs)
    x, w = inputs[:2]
    if w.data is None:
        raise unsupported(node, "channels-last layout with a weight computed at run time")
    y = node.outputs[0]
    geometry = _geometry3(node, x.shape[1:-1], y.shape[1:-1])
    if node.attrs.expand is not None:
        return _expand_depthwise_call(ctx, node, geometry)
    bias = ptr_or_null(ctx, inputs[2] if len(inputs) == 3 else None)
    epilogue = epilogue_arg(ctx, node, col_bias=bias)
    batch, cin, cout = x.shape[0], x.shape[-1], y.shape[-1]
    taps = prod(w.shape[2:])
    if node.attrs.group == cin == cout:
        by_tap = ctx.add_weight(w.data.reshape(cin, taps).T.astype(np.float32), f"{node.name} taps")
        return (
            f"xg_depthwise_nhwc({ctx.ptr(x)}, {by_tap}, {ctx.ptr(y)}, {batch}, {cin}, "
            f"{geometry},\n                  {epilogue});"
        )
    if node.attrs.group != 1:
        raise unsupported(node, f"channels-last layout with group={node.attrs.group}")
    if node.attrs.kernel is ConvKernel.WINOGRAD:
        return winograd_conv_call(ctx, node, x, w.data, y, epilogue)
    if node.attrs.kernel is not None:
        return pattern_conv_call(ctx, node, x, w.data, y, epilogue)
    return _conv_nhwc_call(ctx, node, x, batch, w.data, y, geometry, epilogue)


# A thread's buffer of expanded rows (kernels/expand_depthwise.h): up to 512 KiB, in a 1 MiB
# L2 beside the weights; bands of output rows as tall as it allows.
EXPAND_BUFFER_FLOATS = 128 * 1024


def _expand_depthwise_call(ctx: KernelContext, node: Node, geometry: str) -> str:
    """A depthwise conv that computes its input's 1x1 expansion too (ConvAttrs.expand)."""
    own, residual = O.split_epilogue_inputs(node.inputs, node.attrs)
    x, w, bias, w_expand, bias_expand = own
    y, a = node.outputs[0], node.attrs
    batch, _, width, cin = x.shape  # 2-D only: passes/expand_depthwise.py fuses no other
    cexp, (kh, kw) = w.shape[0], w.shape[2:]
    # the input rows of `band` output rows: (band - 1) * stride + the window's reach
    reach = (kh - 1) * a.dilations[0] + 1
    row_floats = width * cexp
    band = max(1, (EXPAND_BUFFER_FLOATS // row_floats - reach) // a.strides[0] + 1)
    band = min(band, y.shape[1])
    buffer_floats = round_up(((band - 1) * a.strides[0] + reach) * row_floats, 16)
    (scratch,) = scratch_arrays(ctx, [SCRATCH_THREADS * buffer_floats])
    epilogue = epilogue_literal(ctx, a.epilogue, residual, col_bias=ctx.ptr(bias))
    expand_epilogue = epilogue_literal(ctx, a.expand, None, col_bias=ctx.ptr(bias_expand))
    packed = ctx.add_weight(pack_conv_nhwc(w_expand.data), f"{node.name} packed expand weight")
    by_tap = ctx.add_weight(w.data.reshape(cexp, kh * kw).T.astype(np.float32), f"{node.name} taps")
    return (
        f"xg_expand_depthwise_nhwc({ctx.ptr(x)}, {packed}, {expand_epilogue}, {by_tap},\n"
        f"    {ctx.ptr(y)}, {batch}, {cin}, {cexp}, {geometry},\n"
        f"    {epilogue}, {band}, {buffer_floats}, {scratch});"
    )


def _conv_nhwc_call(
    ctx: KernelContext,
    node: Node,
    x: Value,
    batch: int,
    w: np.ndarray,
    y: Value,
    geometry: str,
    epilogue: str,
) -> str:
    """One xg_conv_nhwc call: x [batch, *in, cin] and y [batch, *out, cout] channels last, w the
    constant [cout, cin, *kernel] weight, packed now."""
    cout, cin, width = *w.shape[:2], w.shape[-1]
    weight = ctx.add_weight(pack_conv_nhwc(w), f"{node.name} packed weight")
    return (
        f"static const float zeros[{width * cin}]; /* what a tap reads in the padding */\n"
        f"xg_conv_nhwc({ctx.ptr(x)}, {weight}, {ctx.ptr(y)}, {batch}, {cin}, {cout}, {geometry},"
        f"\n             {epilogue}, zeros);"
    )


def pack_conv_nhwc(w: np.ndarray) -> np.ndarray:
    """A Conv weight [cout, cin, *kernel] in xg_conv_nhwc's layout: panels of NHWC_NP output
    channels (the last zero-padded), each [tap][cin][NHWC_NP]."""
    cout, cin = w.shape[:2]
    taps = prod(w.shape[2:])
    padded = np.zeros((round_up(cout, CONV_NHWC_NP), cin, taps), np.float32)
    padded[:cout] = w.reshape(cout, cin, taps)
    panels = padded.reshape(-1, CONV_NHWC_NP, cin, taps)
    return np.ascontiguousarray(panels.transpose(0, 3, 2, 1)).ravel()


IM2COL_CHUNK_FLOATS = 1 << 20  # 4 MiB: an im2col chunk stays in the caches (L2 + L3) until used


def _im2col_chunk(k: int, npix: int) -> int:
    """Output pixels per im2col chunk: all when the whole matrix is small, else whole GEMM tiles
    of about IM2COL_CHUNK_FLOATS."""
    if k * round_up(npix, GEMM_NP) <= IM2COL_CHUNK_FLOATS:
        return npix
    return max(GEMM_NR_MAX, IM2COL_CHUNK_FLOATS // k // GEMM_NR_MAX * GEMM_NR_MAX)


@lowering(Op.CONV_TRANSPOSE, kernels=("conv.h",))
def lower_conv_transpose(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node)
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
    (work,) = scratch_arrays(ctx, [m * npix + gemm_work_floats(m, npix, cin_g)])
    return (
        f"xg_conv_transpose({ctx.ptr(x)}, {weight}, {ptr_or_null(ctx, bias)}, {ctx.ptr(y)}, "
        f"{batch}, {cin}, {cout}, {group}, {geometry}, {work});"
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
    epilogue: str = "NULL",
) -> str:
    """One xg_sgemm call; a constant operand is packed now, at compile time."""
    m, n, k = mnk
    a_args = _operand_args(ctx, a, (m, k), a_strides, pack_gemm_a, f"{node.name} packed A")
    b_args = _operand_args(ctx, b, (k, n), b_strides, pack_gemm_b, f"{node.name} packed B")
    (work,) = scratch_arrays(ctx, [gemm_work_floats(m, n, k)])
    return (
        f"xg_sgemm({m}, {n}, {k}, {c_float(alpha)}, {a_args}, {b_args}, {c_float(beta)}, "
        f"{out}, {n}, {epilogue}, {work});"
    )


def _operand_args(
    ctx: KernelContext,
    value: Value,
    shape: tuple[int, int],
    strides: tuple[int, int],
    pack: Callable[[np.ndarray], np.ndarray],
    name: str,
) -> str:
    """xg_sgemm's `packed, plain, row stride, column stride` arguments for one operand: the
    matrix of `shape` read from value with element `strides`, packed now if value is constant."""
    if value.data is None:
        return f"NULL, {ctx.ptr(value)}, {strides[0]}, {strides[1]}"
    view = np.lib.stride_tricks.as_strided(value.data, shape, (strides[0] * 4, strides[1] * 4))
    return f"{ctx.add_weight(pack(view.astype(np.float32)), name)}, NULL, 0, 0"


@lowering(Op.GEMM, kernels=("gemm.h", "conv_nhwc.h"))
def lower_gemm(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node)
    a, b = node.inputs[:2]
    attrs: O.GemmAttrs = node.attrs
    y = node.outputs[0]
    m, n = y.shape
    k = a.shape[0] if attrs.trans_a else a.shape[1]
    # Strides of op(A) [m, k] and op(B) [k, n] over the stored row-major matrices.
    a_strides = (1, m) if attrs.trans_a else (k, 1)
    b_strides = (1, k) if attrs.trans_b else (n, 1)
    inputs, _ = O.split_epilogue_inputs(node.inputs, node.attrs)
    c = inputs[2] if len(inputs) == 3 and attrs.beta != 0.0 else None
    bias = _bias_vector(ctx, c, attrs.beta, m, n) if c is not None else None
    # (k = 0, an empty sum, has no rows to tile as a convolution: xg_sgemm handles it)
    if b.data is not None and k and not attrs.trans_a and (c is None or "col_bias" in (bias or {})):
        weight = b.data if attrs.trans_b else b.data.T  # [n, k]
        epilogue = epilogue_arg(ctx, node, **(bias or {}))
        return _linear_call(ctx, node, a, np.float32(attrs.alpha) * weight, y, epilogue)
    code, beta = [], 0.0
    if c is not None and bias is None:
        rows, cols = (1,) * (2 - len(c.shape)) + tuple(c.shape)
        strides = (cols if rows != 1 else 0, 1 if cols != 1 else 0)
        code.append(
            f"xg_gemm_fill({ctx.ptr(y)}, {m}, {n}, {ctx.ptr(c)}, {strides[0]}, {strides[1]}, "
            f"{c_float(attrs.beta)});"
        )
        beta = 1.0
    epilogue = epilogue_arg(ctx, node, **(bias or {}))
    call = _gemm_call(
        ctx, node, (m, n, k), a, a_strides, b, b_strides, ctx.ptr(y), attrs.alpha, beta, epilogue
    )
    return BETWEEN_PASSES.join([*code, call])


def _linear_call(
    ctx: KernelContext,
    node: Node,
    a: Value,
    weight: np.ndarray,
    y: Value,
    epilogue: str,
) -> str:
    """y = epilogue(a @ weight.T) with a constant weight [n, k]: a 1x1 convolution
    whose pixels are a's rows, so that it runs on xg_conv_nhwc's tiles, whose more accumulators
    per loaded value beat xg_sgemm's (about 5-15% at the shapes of transformers)."""
    n, k = weight.shape
    rows = a.type.size // k
    spatial, unit = c_ints((1, 1, rows)), c_ints((1, 1, 1))
    geometry = ", ".join([spatial, spatial, unit, unit, c_ints((0, 0, 0)), unit])
    return _conv_nhwc_call(ctx, node, a, 1, weight.reshape(n, k, 1), y, geometry, epilogue)


def _bias_vector(
    ctx: KernelContext, c: Value, beta: float, m: int, n: int
) -> dict[str, str] | None:
    """beta * C as the epilogue's column (or row) bias when C is a vector along N (or M), so the
    store adds it; None when C must be filled into Y before the product instead."""
    rows, cols = (1,) * (2 - len(c.shape)) + tuple(c.shape)
    if rows == 1 and cols == n:
        field = "col_bias"
    elif cols == 1 and rows == m:
        field = "row_bias"
    else:
        return None
    if beta == 1.0:
        return {field: ctx.ptr(c)}
    if c.data is None:
        return None
    scaled = (np.float32(beta) * c.data.astype(np.float32)).ravel()
    return {field: ctx.add_weight(scaled, "beta * C")}


def _batch_offsets(
    shape: tuple[int, ...], strides: tuple[int, ...], batch: tuple[int, ...]
) -> list[int]:
    """Float offset of each batch entry's matrix in an operand of batch dims `shape` with element
    `strides` (broadcast over the size-1 dims)."""
    lead = len(batch) - len(shape)
    shape, strides = (1,) * lead + shape, (0,) * lead + strides
    index = np.indices(batch).reshape(len(batch), -1).T if batch else np.zeros((1, 0), int)
    return [
        sum(int(i) * s for i, s, d in zip(idx, strides, shape, strict=True) if d != 1)
        for idx in index
    ]


def _matmul_views(node: Node) -> tuple[tuple[Shape, Shape], tuple[Shape, Shape]]:
    """(shape, element strides) of MatMul's A and B as it reads them: through its perms, 1-D
    operands promoted to matrices as numpy does (a new dim of stride 0)."""
    attrs: O.MatMulAttrs = node.attrs
    a, b = node.inputs
    (a_shape, a_strides), (b_shape, b_strides) = (
        transposed_view(a.shape, attrs.a_perm),
        transposed_view(b.shape, attrs.b_perm),
    )
    if len(a_shape) == 1:
        a_shape, a_strides = (1, *a_shape), (0, *a_strides)
    if len(b_shape) == 1:
        b_shape, b_strides = (*b_shape, 1), (*b_strides, 0)
    return (a_shape, a_strides), (b_shape, b_strides)


@lowering(Op.MATMUL, kernels=("gemm.h", "conv_nhwc.h"))
def lower_matmul(ctx: KernelContext, node: Node) -> str:
    check_dtypes(node)
    a, b = node.inputs
    y = node.outputs[0]
    (a_shape, a_strides), (b_shape, b_strides) = _matmul_views(node)
    (m, k), n = a_shape[-2:], b_shape[-1]
    a_batch, b_batch = a_shape[:-2], b_shape[:-2]
    transposed = node.attrs != O.MatMulAttrs()
    if prod(b_batch) == 1 and not transposed:
        # One GEMM: A's batch dims fold into its rows (the usual x @ W of a linear layer).
        rows = prod(a_batch) * m
        if b.data is not None and k:  # (k = 0: see lower_gemm)
            return _linear_call(ctx, node, a, b.data.reshape(k, n).T, y, "NULL")
        return _gemm_call(ctx, node, (rows, n, k), a, (k, 1), b, (n, 1), ctx.ptr(y))
    batch = broadcast_shapes(a_batch, b_batch)
    a_off = _batch_offsets(a_batch, a_strides[:-2], batch)
    b_off = _batch_offsets(b_batch, b_strides[:-2], batch)
    offsets = [
        f"static const long a_off[] = {{{', '.join(map(str, a_off))}}};",
        f"static const long b_off[] = {{{', '.join(map(str, b_off))}}};",
    ]
    a_ptr, b_ptr, y_ptr = ctx.ptr(a), ctx.ptr(b), ctx.ptr(y)
    a_view = f"{a_ptr}, a_off, {a_strides[-2]}, {a_strides[-1]}"
    b_view = f"{b_ptr}, b_off, {b_strides[-2]}, {b_strides[-1]}"
    if 1 <= k <= GEMM_KC:  # one K block: the whole batch packed at once, one wait
        (work,) = scratch_arrays(ctx, [batched_work_floats(len(a_off), m, n, k)])
        call = (
            f"xg_sgemm_batched({len(a_off)}, {m}, {n}, {k}, {a_view}, {b_view}, {y_ptr}, {work});"
        )
        return "\n".join([*offsets, call])
    (work,) = scratch_arrays(ctx, [gemm_work_floats(m, n, k)])
    return "\n".join(
        [
            *offsets,
            f"for (long i = 0; i < {len(a_off)}; i++)",
            f"    xg_sgemm({m}, {n}, {k}, 1.0f, NULL, {a_ptr} + a_off[i], {a_strides[-2]}, "
            f"{a_strides[-1]}, NULL, {b_ptr} + b_off[i], {b_strides[-2]}, {b_strides[-1]}, 0.0f, "
            f"{y_ptr} + i * {m * n}, {n}, NULL, {work});",
        ]
    )

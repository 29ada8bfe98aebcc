"""Reference kernels of the neural-network ops: convolution, matmul, pooling, resize.

Convolution and pooling read windows through one strided view of the padded input, so that a
convolution is an im2col followed by a matmul, as the generated C does it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod

import numpy as np

from xgen.ir import Node, Op
from xgen.ir.infer import split_layout
from xgen.ir.ops import (
    Activation,
    AttentionAttrs,
    CoordinateTransform,
    Epilogue,
    NearestMode,
    ResizeAttrs,
    ResizeMode,
    key_axis,
    split_epilogue_inputs,
)
from xgen.reference import kernel
from xgen.reference.shape import pad_array


def _windows(
    x: np.ndarray,
    pads: Sequence[int],
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    out_spatial: Sequence[int],
    fill: float,
) -> np.ndarray:
    """View (N, C, *kernel, *out) of x padded with fill: [n, c, k, o] = x[n, c, o*s + k*d - pad].

    The end padding grows past pads where ceil_mode lets the last window overhang it.
    """
    rank = len(kernel_shape)
    begins = pads[:rank]
    ends = [
        max(pads[rank + i], (o - 1) * s + (k - 1) * d + 1 - x.shape[2 + i] - begins[i])
        for i, (k, s, d, o) in enumerate(
            zip(kernel_shape, strides, dilations, out_spatial, strict=True)
        )
    ]
    xp = pad_array(x, (0, 0, *begins), (0, 0, *ends), value=fill)
    spatial_strides = xp.strides[2:]
    return np.lib.stride_tricks.as_strided(
        xp,
        (*xp.shape[:2], *kernel_shape, *out_spatial),
        (
            *xp.strides[:2],
            *(st * d for st, d in zip(spatial_strides, dilations, strict=True)),
            *(st * s for st, s in zip(spatial_strides, strides, strict=True)),
        ),
        writeable=False,
    )


def _apply_epilogue(y: np.ndarray, epilogue: Epilogue, residual: np.ndarray | None) -> np.ndarray:
    """The fused form of Conv and Gemm: activation(y + residual)."""
    if residual is not None:
        y = y + residual
    match epilogue.activation:
        case Activation.NONE:
            return y
        case Activation.RELU:
            return np.maximum(y, 0)
        case Activation.CLIP:
            return np.clip(y, epilogue.clip_min, epilogue.clip_max)


def _any_layout(
    compute: Callable[[Node, list[np.ndarray]], list[np.ndarray]],
) -> Callable[[Node, list[np.ndarray]], list[np.ndarray]]:
    """A channels-last node computed channels first: its data input and residual (the last input
    of a Conv whose epilogue has one) are N x spatial x C, and so is the output."""

    def run(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
        if not node.attrs.channels_last:
            return compute(node, arrays)
        arrays = [np.moveaxis(arrays[0], -1, 1), *arrays[1:]]
        if node.op is Op.CONV and node.attrs.epilogue.residual:
            arrays[-1] = np.moveaxis(arrays[-1], -1, 1)
        return [np.moveaxis(y, 1, -1) for y in compute(node, arrays)]

    return run


def _out_spatial(node: Node) -> tuple[int, ...]:
    return split_layout(node.outputs[0].shape, node.attrs.channels_last)[2]


@kernel(Op.CONV)
@_any_layout
def conv(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    (x, w, *bias), residual = split_epilogue_inputs(arrays, a)
    if a.expand is not None:  # x [N, C, ...] first goes through its 1x1 expansion
        w_expand, bias_expand = bias[1:]
        bias = bias[:1]
        expanded = np.einsum("oc,nc...->no...", w_expand.reshape(w_expand.shape[:2]), x)
        x = _apply_epilogue(expanded + bias_expand.reshape(-1, *[1] * (x.ndim - 2)), a.expand, None)
    n, c = x.shape[:2]
    m, g = w.shape[0], a.group
    out_spatial = _out_spatial(node)
    cols = _windows(x, a.pads, w.shape[2:], a.strides, a.dilations, out_spatial, 0.0)
    cols = cols.reshape(n, g, -1, prod(out_spatial))  # (N, G, C/G * K, O): im2col per group
    y = np.matmul(w.reshape(g, m // g, -1), cols).reshape(n, m, *out_spatial)
    if bias:
        y = y + bias[0].reshape(m, *[1] * len(out_spatial))
    return [_apply_epilogue(y, a.epilogue, residual)]


@kernel(Op.CONV_TRANSPOSE)
def conv_transpose(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    x, w, *bias = arrays
    a = node.attrs
    n, c, *in_spatial = x.shape
    g, kernel_shape = a.group, w.shape[2:]
    m, rank = w.shape[1] * g, len(kernel_shape)
    # Every input element times every weight: (N, G, M/G * K, I), then scattered by kernel offset.
    cols = np.matmul(
        w.reshape(g, c // g, -1).transpose(0, 2, 1), x.reshape(n, g, c // g, -1)
    ).reshape(n, m, *kernel_shape, *in_spatial)
    full_spatial = [
        s * (i - 1) + d * (k - 1) + 1
        for s, i, d, k in zip(a.strides, in_spatial, a.dilations, kernel_shape, strict=True)
    ]
    full = np.zeros((n, m, *full_spatial), dtype=cols.dtype)
    for offset in np.ndindex(*kernel_shape):
        window = tuple(
            slice(k * d, k * d + s * (i - 1) + 1, s)
            for k, d, s, i in zip(offset, a.dilations, a.strides, in_spatial, strict=True)
        )
        full[(slice(None), slice(None), *window)] += cols[(slice(None), slice(None), *offset)]
    begins = [-p for p in a.pads[:rank]]
    ends = [op - p for op, p in zip(a.output_padding, a.pads[rank:], strict=True)]
    y = pad_array(full, (0, 0, *begins), (0, 0, *ends))
    if bias:
        y = y + bias[0].reshape(m, *[1] * rank)
    return [y]


@kernel(Op.GEMM)
def gemm(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    (a_, b, *c), residual = split_epilogue_inputs(arrays, a)
    y = a.alpha * np.matmul(a_.T if a.trans_a else a_, b.T if a.trans_b else b)
    if c:
        y = y + a.beta * c[0]
    return [_apply_epilogue(y, a.epilogue, residual)]


@kernel(Op.MATMUL)
def matmul(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    perms = (node.attrs.a_perm, node.attrs.b_perm)
    a, b = (x.transpose(p) if p else x for x, p in zip(arrays, perms, strict=True))
    return [np.matmul(a, b)]


@kernel(Op.ATTENTION)
def attention(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    a: AttentionAttrs = node.attrs
    k_end, v_end = 1 + a.k_parts, 1 + a.k_parts + a.v_parts
    joined = [
        arrays[0],
        np.concatenate(arrays[1:k_end], axis=key_axis(a.k_perm, arrays[1].ndim)),
        np.concatenate(arrays[k_end:v_end], axis=key_axis(a.v_perm, arrays[k_end].ndim)),
    ]
    perms = (a.q_perm, a.k_perm, a.v_perm)
    q, k, v = (
        (x.transpose(p) if p else x).astype(np.float64) for x, p in zip(joined, perms, strict=True)
    )
    scores = a.scale * np.matmul(q, np.swapaxes(k, -1, -2))
    if a.masked:
        scores = scores + arrays[v_end]
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    y = np.matmul(np.where(np.isnan(p), 0.0, p) if a.nan_to_zero else p, v)
    return [y.transpose(a.out_perm) if a.out_perm else y]


@kernel(Op.MAX_POOL)
@_any_layout
def max_pool(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    x = arrays[0]
    out_spatial = _out_spatial(node)
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    view = _windows(x, a.pads, a.kernel_shape, a.strides, a.dilations, out_spatial, fill)
    return [view.max(axis=tuple(range(2, 2 + len(a.kernel_shape))))]


@kernel(Op.AVERAGE_POOL)
@_any_layout
def average_pool(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    x = arrays[0]
    rank = len(a.kernel_shape)
    out_spatial = _out_spatial(node)
    kernel_axes = tuple(range(2, 2 + rank))
    total = _windows(x, a.pads, a.kernel_shape, a.strides, a.dilations, out_spatial, 0.0)
    # The divisor counts the window's cells inside the input (and its explicit pads if
    # count_include_pad), never those past the end padding that ceil_mode adds.
    mask = np.ones((1, 1, *x.shape[2:]), dtype=np.float32)
    mask_pads = a.pads
    if a.count_include_pad:
        mask = pad_array(mask, (0, 0, *a.pads[:rank]), (0, 0, *a.pads[rank:]), value=1.0)
        mask_pads = (0,) * (2 * rank)
    count = _windows(mask, mask_pads, a.kernel_shape, a.strides, a.dilations, out_spatial, 0.0)
    return [total.sum(axis=kernel_axes) / count.sum(axis=kernel_axes)]


# ---- resize: separable, a few weighted taps of the input per output position along each dim --


def _source_coordinates(a: ResizeAttrs, axis: int, size_in: int) -> np.ndarray:
    """Coordinate in the input of every output position of one dim, in float32 as onnxruntime."""
    f32 = np.float32
    size_out, scale = a.sizes[axis], f32(a.scales[axis])
    x = np.arange(size_out, dtype=f32)
    match a.coordinate_transform:
        case CoordinateTransform.HALF_PIXEL:
            return (x + f32(0.5)) / scale - f32(0.5)
        case CoordinateTransform.HALF_PIXEL_SYMMETRIC:
            adjustment = f32(size_out) / (scale * f32(size_in))
            offset = f32(size_in) / f32(2) * (f32(1) - adjustment)
            # onnxruntime computes the rest in double (its 0.5 literals), then rounds to float.
            return (offset + (x + 0.5) / np.float64(scale) - 0.5).astype(f32)
        case CoordinateTransform.PYTORCH_HALF_PIXEL:
            return (x + f32(0.5)) / scale - f32(0.5) if size_out > 1 else np.zeros_like(x)
        case CoordinateTransform.ALIGN_CORNERS:
            if size_out == 1:
                return np.zeros_like(x)
            return x * f32(size_in - 1) / f32(size_out - 1)
        case CoordinateTransform.ASYMMETRIC:
            return x / scale
        case CoordinateTransform.TF_HALF_PIXEL_FOR_NN:
            return (x + f32(0.5)) / scale


def _nearest_indices(a: ResizeAttrs, coords: np.ndarray, size_in: int) -> np.ndarray:
    floor = np.floor(coords)
    frac = coords - floor  # exact in float32
    # onnxruntime counts a fraction within 1e-6 of a half as a tie: float32 error must not
    # turn a coordinate meant as 3.5 (2 / float32(4/7) = 3.4999998) into a plain 3.
    tie = np.abs(frac - np.float32(0.5)) <= np.float32(1e-6)
    match a.nearest_mode:
        case NearestMode.ROUND_PREFER_FLOOR:
            index = floor + ((frac > 0.5) & ~tie)
        case NearestMode.ROUND_PREFER_CEIL:
            index = floor + ((frac > 0.5) | tie)
        case NearestMode.FLOOR:
            index = floor
        case NearestMode.CEIL:
            index = np.ceil(coords)
    return np.clip(index, 0, size_in - 1).astype(np.int64)


def _cubic_weights(t: np.ndarray, coeff_a: float) -> np.ndarray:
    """Keys cubic convolution weights of the 4 neighbours floor-1 .. floor+2 of each coordinate."""
    a = coeff_a

    def near(d: np.ndarray) -> np.ndarray:  # distance in [0, 1]
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d: np.ndarray) -> np.ndarray:  # distance in [1, 2]
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)


def _interpolation_taps(a: ResizeAttrs, axis: int, size_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear or cubic interpolation along one dim: per output position, the input indices it
    reads (edge-clamped) and their float64 weights, both [out, taps]. A linear position clamped
    to the last input reads it twice at weight 0.5, as onnxruntime does: weights 1 and 0 would
    make an infinite input NaN (0 * inf)."""
    coords = _source_coordinates(a, axis, size_in).astype(np.float64)
    if a.mode is ResizeMode.LINEAR:
        coords = np.clip(coords, 0, size_in - 1)
        base = np.floor(coords)
        t = coords - base
        weights = np.stack([1 - t, t], axis=1)
        offsets = np.arange(2)
    else:
        base = np.floor(coords)
        weights = _cubic_weights(coords - base, a.cubic_coeff_a)
        offsets = np.arange(-1, 3)
    neighbours = base.astype(np.int64)[:, None] + offsets
    inside = (neighbours >= 0) & (neighbours < size_in)
    if a.exclude_outside:
        weights = np.where(inside, weights, 0.0)
        weights /= weights.sum(axis=1, keepdims=True)
    if a.mode is ResizeMode.LINEAR:
        weights[~inside[:, 1]] = 0.5
    return np.clip(neighbours, 0, size_in - 1), weights


@kernel(Op.RESIZE)
def resize(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    y = arrays[0]
    if y.shape == a.sizes:  # onnxruntime copies whatever the scales say
        return [y]
    for axis, (size_in, size_out) in enumerate(zip(y.shape, a.sizes, strict=True)):
        if size_in == size_out and a.scales[axis] == 1.0:
            continue
        if a.mode is ResizeMode.NEAREST:
            coords = _source_coordinates(a, axis, size_in)
            y = np.take(y, _nearest_indices(a, coords, size_in), axis=axis)
        else:
            indices, weights = _interpolation_taps(a, axis, size_in)
            view = (1,) * axis + (-1,) + (1,) * (y.ndim - axis - 1)
            with np.errstate(invalid="ignore"):  # 0 * inf is NaN, as in the C
                y = sum(
                    np.take(y, indices[:, t], axis=axis) * weights[:, t].reshape(view)
                    for t in range(indices.shape[1])
                )
    return [y]

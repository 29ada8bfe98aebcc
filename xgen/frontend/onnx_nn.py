"""ONNX converters of the neural-network ops: Conv, ConvTranspose, Gemm, MatMul, pools, Resize.

auto_pad is resolved here into explicit pads, so the IR only knows begins + ends per spatial dim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from math import prod

import numpy as np

from xgen.errors import ShapeError
from xgen.frontend.onnx import ImportContext, OnnxNode, converter
from xgen.ir import Op, Value
from xgen.ir.infer import check_at_least, check_count, pool_shape
from xgen.ir.ops import (
    ConvAttrs,
    CoordinateTransform,
    GemmAttrs,
    MatMulAttrs,
    NearestMode,
    PoolAttrs,
    ResizeAttrs,
    ResizeMode,
)

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _spatial_rank(x: Value) -> int:
    rank = len(x.shape) - 2
    if rank < 1:
        raise ShapeError(f"input {x.name} of shape {x.shape} has no spatial dims")
    return rank


def _check_weight_rank(x: Value, w: Value) -> None:
    if len(w.shape) != len(x.shape):
        raise ShapeError(f"weight {w.shape} and input {x.shape} differ in rank")


def _ints(node: OnnxNode, name: str, default: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in node.attr(name, default))


def _strides_dilations(node: OnnxNode, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """strides and dilations, checked before they compute pads or an output shape here."""
    strides = _ints(node, "strides", [1] * rank)
    dilations = _ints(node, "dilations", [1] * rank)
    for name, values in (("strides", strides), ("dilations", dilations)):
        check_count(name, values, rank)
        check_at_least(name, values, 1)
    return strides, dilations


def _auto_pad(node: OnnxNode) -> str:
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in AUTO_PADS:
        raise node.unsupported(f"auto_pad {auto_pad!r} (supported: {', '.join(AUTO_PADS)})")
    return auto_pad


def _same_pads(total: Sequence[int], upper: bool) -> tuple[int, ...]:
    """Split total padding per dim; the odd cell goes to the end (SAME_UPPER) or the begin."""
    small = [t // 2 for t in total]
    big = [t - s for t, s in zip(total, small, strict=True)]
    return (*small, *big) if upper else (*big, *small)


def _window_pads(
    node: OnnxNode,
    in_spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> tuple[int, ...]:
    """Explicit pads of Conv and the pools: the pads attribute, or what auto_pad implies."""
    auto_pad = _auto_pad(node)
    rank = len(kernel)
    if auto_pad == "NOTSET":
        return _ints(node, "pads", [0] * 2 * rank)
    if auto_pad == "VALID":
        return (0,) * 2 * rank
    total = [
        max(0, (-(-i // s) - 1) * s + (k - 1) * d + 1 - i)  # output ceil(i / s) cells
        for i, k, s, d in zip(in_spatial, kernel, strides, dilations, strict=True)
    ]
    return _same_pads(total, auto_pad == "SAME_UPPER")


@converter("Conv")
def conv(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x, w, bias = node.input(0), node.input(1), node.input(2)
    rank = _spatial_rank(x)
    _check_weight_rank(x, w)
    kernel = w.shape[2:]
    if _ints(node, "kernel_shape", kernel) != kernel:
        raise ShapeError(f"kernel_shape {node.attr('kernel_shape')} differs from weight {w.shape}")
    strides, dilations = _strides_dilations(node, rank)
    pads = _window_pads(node, x.shape[2:], kernel, strides, dilations)
    attrs = ConvAttrs(strides, pads, dilations, int(node.attr("group", 1)))
    inputs = [v for v in (x, w, bias) if v is not None]
    return ctx.add(Op.CONV, inputs, attrs, node.proto.name)


@converter("ConvTranspose")
def conv_transpose(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x, w, bias = node.input(0), node.input(1), node.input(2)
    rank = _spatial_rank(x)
    _check_weight_rank(x, w)
    in_spatial, kernel = x.shape[2:], w.shape[2:]
    strides, dilations = _strides_dilations(node, rank)
    output_padding = _ints(node, "output_padding", [0] * rank)
    check_count("output_padding", output_padding, rank)
    auto_pad = _auto_pad(node)
    output_shape = node.attr("output_shape")
    if output_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        output_shape = [i * s for i, s in zip(in_spatial, strides, strict=True)]
    if output_shape is not None:
        if len(output_shape) not in (rank, rank + 2):
            raise ShapeError(f"output_shape {output_shape} must give the {rank} spatial dims")
        # The pads that make the output exactly output_shape (its spatial dims).
        total = [
            s * (i - 1) + op + (k - 1) * d + 1 - o
            for s, i, op, k, d, o in zip(
                strides,
                in_spatial,
                output_padding,
                kernel,
                dilations,
                output_shape[-rank:],
                strict=True,
            )
        ]
        # An output_shape past the full output (total < 0) makes negative pads, cells that only
        # the bias reaches; onnxruntime allows less than a stride of them.
        if any(t <= -s for t, s in zip(total, strides, strict=True)):
            full = [o + t for o, t in zip(output_shape[-rank:], total, strict=True)]
            raise ShapeError(
                f"output_shape {output_shape} exceeds the full output {full} by a stride "
                f"{strides} or more"
            )
        pads = _same_pads(total, auto_pad == "SAME_UPPER")
    elif auto_pad == "VALID":
        pads = (0,) * 2 * rank
    else:
        pads = _ints(node, "pads", [0] * 2 * rank)
    attrs = ConvAttrs(strides, pads, dilations, int(node.attr("group", 1)), output_padding)
    inputs = [v for v in (x, w, bias) if v is not None]
    return ctx.add(Op.CONV_TRANSPOSE, inputs, attrs, node.proto.name)


@converter("Gemm")
def gemm(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    attrs = GemmAttrs(
        alpha=float(node.attr("alpha", 1.0)),
        beta=float(node.attr("beta", 1.0)),
        trans_a=node.flag("transA", False),
        trans_b=node.flag("transB", False),
    )
    inputs = [v for v in node.inputs if v is not None]
    return ctx.add(Op.GEMM, inputs, attrs, node.proto.name)


@converter("MatMul")
def matmul(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    return ctx.add(Op.MATMUL, node.inputs[:2], MatMulAttrs(), node.proto.name)


def _pool_attrs(node: OnnxNode, x: Value) -> PoolAttrs:
    rank = _spatial_rank(x)
    if node.attr("kernel_shape") is None:
        raise ShapeError("kernel_shape attribute is required")
    kernel = _ints(node, "kernel_shape", ())
    check_count("kernel_shape", kernel, rank)
    strides, dilations = _strides_dilations(node, rank)
    return PoolAttrs(
        kernel_shape=kernel,
        strides=strides,
        pads=_window_pads(node, x.shape[2:], kernel, strides, dilations),
        dilations=dilations,
        ceil_mode=node.flag("ceil_mode", False),
        count_include_pad=node.flag("count_include_pad", False),
    )


@converter("MaxPool", "AveragePool")
def pool(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    if node.op_type == "MaxPool" and len(node.proto.output) > 1 and node.proto.output[1]:
        raise node.unsupported("the Indices output of MaxPool is not supported")
    x = node.input(0)
    op = Op.MAX_POOL if node.op_type == "MaxPool" else Op.AVERAGE_POOL
    return ctx.add(op, [x], _pool_attrs(node, x), node.proto.name)


@converter("LpPool")
def lp_pool(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    """(sum of |x|^p over the window)^(1/p), as an average pool of |x|^p times the window size:
    padding adds zeros to the sum, which count_include_pad matches while no window overhangs
    the padding, i.e. without ceil_mode."""
    x = node.input(0)
    attrs = replace(_pool_attrs(node, x), count_include_pad=True)
    pool_shape(attrs, x.shape)  # checked now, so that an error names this node, not a part
    if attrs.ceil_mode:
        raise node.unsupported("LpPool with ceil_mode=1 is not supported")
    p = float(node.attr("p", 2))
    if not 0 < p < float("inf"):
        raise node.unsupported(f"p={p} (supported: finite p > 0)")

    def scalar(value: float) -> Value:
        return ctx.constant(np.array(value, dtype=np.float32))

    name = node.proto.name
    powered = ctx.add1(Op.POW, [ctx.add1(Op.ABS, [x], name=name), scalar(p)], name=name)
    mean = ctx.add1(Op.AVERAGE_POOL, [powered], attrs, name)
    total = ctx.add1(Op.MUL, [mean, scalar(prod(attrs.kernel_shape))], name=name)
    return [ctx.add1(Op.POW, [total, scalar(1 / p)], name=name)]


# ---- Resize ------------------------------------------------------------------------------------


def enum_attr(node: OnnxNode, enum: type, name: str, default: str):  # -> member of enum
    """Attribute `name` as a member of enum, or an error listing the supported values."""
    value = node.attr(name, default)
    try:
        return enum(value)
    except ValueError:
        supported = ", ".join(m.value for m in enum)
        raise node.unsupported(f"{name}={value!r} (supported: {supported})") from None


def _resize_targets(node: OnnxNode, shape: tuple[int, ...]) -> tuple[list[int], list[float]]:
    """Output sizes and the scales of the coordinate transform, for every dim."""
    rank = len(shape)
    given_axes = [int(a) for a in node.attr("axes", range(rank))]
    axes = [a % rank for a in given_axes if -rank <= a < rank]
    if len(set(axes)) != len(given_axes):
        raise ShapeError(f"axes {given_axes} must be distinct dims of rank {rank}")
    check_at_least("input dims", shape, 1)
    # An empty tensor stands for an omitted input (opsets 11 and 12 require the inputs).
    scales_in = node.const_input(2, "scales")
    sizes_in = node.const_input(3, "sizes")
    sizes, scales = list(shape), [1.0] * rank
    if sizes_in is not None and sizes_in.size:
        check_count("sizes", sizes_in.tolist(), len(axes))
        check_at_least("sizes", sizes_in.tolist(), 1)
        requested = dict(zip(axes, (int(s) for s in sizes_in), strict=True))
        policy = node.attr("keep_aspect_ratio_policy", "stretch")
        if policy == "stretch":
            for axis, size in requested.items():
                sizes[axis], scales[axis] = size, size / shape[axis]
            return sizes, scales
        if policy not in ("not_larger", "not_smaller"):
            raise node.unsupported(f"keep_aspect_ratio_policy={policy!r}")
        ratios = [size / shape[axis] for axis, size in requested.items()]
        scale = min(ratios) if policy == "not_larger" else max(ratios)
        for axis in requested:
            sizes[axis], scales[axis] = int(np.floor(shape[axis] * scale + 0.5)), scale
        return sizes, scales
    if scales_in is None or not scales_in.size:
        raise node.unsupported("one of the scales and sizes inputs must be given")
    check_count("scales", scales_in.tolist(), len(axes))
    if not np.all(np.isfinite(scales_in) & (scales_in > 0)):
        raise ShapeError(f"scales {scales_in.tolist()} must be finite and > 0")
    for axis, scale in zip(axes, (float(s) for s in scales_in), strict=True):
        if shape[axis] * scale >= 2**63:  # the size would not fit int64 (nor float32 below)
            raise ShapeError(f"scale {scale} makes dim {axis} of {shape} too large")
        sizes[axis], scales[axis] = int(np.floor(shape[axis] * np.float32(scale))), scale
    return sizes, scales


@converter("Resize")
def resize(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    if node.flag("antialias", False):
        raise node.unsupported("antialias=1 is not supported")
    mode = enum_attr(node, ResizeMode, "mode", "nearest")
    sizes, scales = _resize_targets(node, x.shape)
    attrs = ResizeAttrs(
        mode=mode,
        coordinate_transform=enum_attr(
            node, CoordinateTransform, "coordinate_transformation_mode", "half_pixel"
        ),
        nearest_mode=enum_attr(node, NearestMode, "nearest_mode", "round_prefer_floor"),
        sizes=tuple(sizes),
        scales=tuple(scales),
        cubic_coeff_a=float(node.attr("cubic_coeff_a", -0.75)),
        exclude_outside=node.flag("exclude_outside", False),
    )
    return ctx.add(Op.RESIZE, [x], attrs, node.proto.name)

"""ONNX converters of the shape and data-movement ops.

Shapes are static, so Shape, Size, ConstantOfShape and Range always fold to constants, and every
input that an output shape depends on (Reshape's shape, Slice's starts...) must be constant by the
time its node is converted. Squeeze, Unsqueeze, Flatten become IR Reshapes, DepthToSpace and
SpaceToDepth Reshape + Transpose + Reshape.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil, prod

import numpy as np

from xgen.errors import ShapeError
from xgen.frontend.onnx import ImportContext, OnnxNode, _to_supported_array, converter
from xgen.frontend.onnx_nn import enum_attr
from xgen.ir import Op, Value
from xgen.ir.infer import broadcast_shapes, check_foldable
from xgen.ir.ops import (
    AxisAttrs,
    GatherNDAttrs,
    PadAttrs,
    PadMode,
    ShapeAttrs,
    SliceAttrs,
    SplitAttrs,
    TileAttrs,
    TransposeAttrs,
)


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def _ints_from(node: OnnxNode, index: int, attr: str, what: str) -> list[int] | None:
    """A list of ints given as constant input `index` (newer opsets) or as attribute `attr`."""
    if node.input(index) is not None:
        return [int(v) for v in np.ravel(node.const_input(index, what))]
    value = node.attr(attr)
    return None if value is None else [int(v) for v in value]


def _reshape(ctx: ImportContext, node: OnnxNode, x: Value, shape: Sequence[int]) -> Value:
    return ctx.add1(Op.RESHAPE, [x], ShapeAttrs(tuple(shape)), node.proto.name)


def _transpose(ctx: ImportContext, node: OnnxNode, x: Value, perm: Sequence[int]) -> Value:
    return ctx.add1(Op.TRANSPOSE, [x], TransposeAttrs(tuple(perm)), node.proto.name)


def _constant(ctx: ImportContext, node: OnnxNode, array: np.ndarray) -> list[Value]:
    array = _to_supported_array(np.asarray(array), f"node {node.label!r}")
    return [ctx.constant(array, node.proto.output[0])]


# ---- ops that always fold ---------------------------------------------------------------------


@converter("Shape")
def shape(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    dims = node.input(0).shape
    # Python slicing clamps and wraps start/end exactly as ONNX specifies.
    selected = dims[node.attr("start", 0) : node.attr("end", len(dims))]
    return _constant(ctx, node, np.array(selected, dtype=np.int64))


@converter("Size")
def size(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    return _constant(ctx, node, np.array(prod(node.input(0).shape), dtype=np.int64))


@converter("Constant")
def constant(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    attrs = node.attrs
    if "value" in attrs:
        array = attrs["value"]
    elif "value_float" in attrs or "value_floats" in attrs:
        array = np.array(attrs.get("value_float", attrs.get("value_floats")), dtype=np.float32)
    elif "value_int" in attrs or "value_ints" in attrs:
        array = np.array(attrs.get("value_int", attrs.get("value_ints")), dtype=np.int64)
    else:
        given = ", ".join(attrs) or "none"
        raise node.unsupported(f"attribute {given}; supported: value, value_float(s), value_int(s)")
    return _constant(ctx, node, array)


@converter("ConstantOfShape")
def constant_of_shape(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    shape = tuple(int(d) for d in np.ravel(node.const_input(0, "shape")))
    value = node.attr("value", np.zeros(1, dtype=np.float32))
    if value.size != 1:
        raise ShapeError(f"value must hold one element, got shape {value.shape}")
    check_foldable(shape, value.dtype.itemsize, "the output")  # before numpy allocates
    return _constant(ctx, node, np.full(shape, value.reshape(-1)[0], dtype=value.dtype))


@converter("Range")
def range_(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    start, limit, delta = (
        node.const_input(i, what) for i, what in enumerate(("start", "limit", "delta"))
    )
    if any(v.size != 1 for v in (start, limit, delta)):
        raise ShapeError("start, limit and delta must be scalars")
    start, limit, delta = (v.reshape(()) for v in (start, limit, delta))
    if not all(np.isfinite(float(v)) for v in (start, limit, delta)) or delta == 0:
        raise ShapeError(f"start {start}, limit {limit}, delta {delta}: need finite, delta != 0")
    if start.dtype.kind in "iu":
        count = -(-(int(limit) - int(start)) // int(delta))  # exact integer ceil
    else:
        count = ceil((float(limit) - float(start)) / float(delta))
    check_foldable((max(count, 0),), start.dtype.itemsize, "the output")
    values = start + delta * np.arange(max(count, 0), dtype=start.dtype)
    return _constant(ctx, node, values.astype(start.dtype))


@converter("Trilu")
def trilu(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.const_input(0, "input (Trilu is only folded)")
    if x.ndim < 2:
        raise ShapeError(f"input must have rank >= 2, got shape {x.shape}")
    k = 0 if node.input(1) is None else int(node.const_input(1, "k"))
    return _constant(ctx, node, np.triu(x, k) if node.flag("upper", True) else np.tril(x, k))


@converter("CumSum")
def cumsum(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.const_input(0, "x (CumSum is only folded)")
    axis = _axis(int(node.const_input(1, "axis")), x.ndim)
    reverse = node.flag("reverse", False)
    if reverse:
        x = np.flip(x, axis)
    total = np.cumsum(x, axis=axis, dtype=x.dtype)
    if node.flag("exclusive", False):
        total = total - x
    return _constant(ctx, node, np.flip(total, axis) if reverse else total)


# ---- reshapes ----------------------------------------------------------------------------------


@converter("Reshape")
def reshape(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    requested = _ints_from(node, 1, "shape", "shape")
    if requested is None:
        raise ShapeError("the shape input is required")
    copy_zeros = not node.flag("allowzero", False)
    shape = [
        x.shape[i] if d == 0 and copy_zeros and i < len(x.shape) else d
        for i, d in enumerate(requested)
    ]
    if shape.count(-1) > 1:
        raise ShapeError(f"shape {requested} has more than one -1")
    if -1 in shape:
        known = prod(d for d in shape if d != -1)
        if known == 0 or prod(x.shape) % known:
            raise ShapeError(f"cannot reshape {x.shape} to {requested}")
        shape[shape.index(-1)] = prod(x.shape) // known
    return [_reshape(ctx, node, x, shape)]


@converter("Flatten")
def flatten(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    rank = len(x.shape)
    axis = node.attr("axis", 1)
    if not -rank <= axis <= rank:  # axis = rank puts everything in the first dim
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    axis += rank if axis < 0 else 0
    return [_reshape(ctx, node, x, (prod(x.shape[:axis]), prod(x.shape[axis:])))]


@converter("Squeeze")
def squeeze(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    axes = _ints_from(node, 1, "axes", "axes")
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = {_axis(a, len(x.shape)) for a in axes}
    if any(x.shape[a] != 1 for a in axes):
        raise ShapeError(f"cannot squeeze axes {sorted(axes)} of shape {x.shape}")
    return [_reshape(ctx, node, x, [d for i, d in enumerate(x.shape) if i not in axes])]


@converter("Unsqueeze")
def unsqueeze(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    given = _ints_from(node, 1, "axes", "axes") or []
    rank = len(x.shape) + len(given)
    axes = {_axis(a, rank) for a in given}
    if len(axes) != len(given):
        raise ShapeError(f"axes {given} name a dim twice")
    dims = iter(x.shape)
    return [_reshape(ctx, node, x, [1 if i in axes else next(dims) for i in range(rank)])]


@converter("DepthToSpace", "SpaceToDepth")
def depth_space(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    if len(x.shape) != 4:
        raise ShapeError(f"{node.op_type} takes a 4-D NCHW input, got {x.shape}")
    n, c, h, w = x.shape
    if node.attr("blocksize") is None:
        raise ShapeError("the blocksize attribute is required")
    b = int(node.attr("blocksize"))
    if b < 1:
        raise ShapeError(f"blocksize {b} must be >= 1")
    if node.op_type == "SpaceToDepth":
        if h % b or w % b:
            raise ShapeError(f"spatial dims of {x.shape} are not multiples of blocksize {b}")
        blocks = _reshape(ctx, node, x, (n, c, h // b, b, w // b, b))
        moved = _transpose(ctx, node, blocks, (0, 3, 5, 1, 2, 4))
        return [_reshape(ctx, node, moved, (n, c * b * b, h // b, w // b))]
    if c % (b * b):
        raise ShapeError(f"channels of {x.shape} are not a multiple of blocksize^2 = {b * b}")
    mode = node.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise node.unsupported(f"mode={mode!r} (supported: DCR, CRD)")
    if mode == "DCR":
        blocks = _reshape(ctx, node, x, (n, b, b, c // (b * b), h, w))
        perm = (0, 3, 4, 1, 5, 2)
    else:  # CRD
        blocks = _reshape(ctx, node, x, (n, c // (b * b), b, b, h, w))
        perm = (0, 1, 4, 2, 5, 3)
    moved = _transpose(ctx, node, blocks, perm)
    return [_reshape(ctx, node, moved, (n, c // (b * b), h * b, w * b))]


# ---- data movement -----------------------------------------------------------------------------


@converter("Transpose")
def transpose(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    perm = node.attr("perm", range(len(x.shape) - 1, -1, -1))
    return [_transpose(ctx, node, x, [_axis(p, len(x.shape)) for p in perm])]


@converter("Concat")
def concat(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    if node.attr("axis") is None:
        raise ShapeError("the axis attribute is required")
    axis = _axis(node.attr("axis"), len(node.inputs[0].shape))
    return ctx.add(Op.CONCAT, node.inputs, AxisAttrs(axis), node.proto.name)


@converter("Split")
def split(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    axis = _axis(node.attr("axis", 0), len(x.shape))
    dim = x.shape[axis]
    sizes = _ints_from(node, 1, "split", "split")
    count = len(node.proto.output)
    if not sizes:
        if node.attr("num_outputs") is not None:  # opset 18: a shorter last chunk if uneven
            chunk = -(-dim // count)
            sizes = [chunk] * (count - 1) + [dim - chunk * (count - 1)]
        elif dim % count == 0:
            sizes = [dim // count] * count
        else:
            raise ShapeError(f"dim {axis} of {x.shape} does not split into {count} equal parts")
        if sizes[-1] < 0:
            raise ShapeError(f"dim {axis} of {x.shape} is too small for {count} outputs")
    elif len(sizes) != count:
        raise ShapeError(f"split {sizes} gives {len(sizes)} parts for {count} outputs")
    return ctx.add(Op.SPLIT, [x], SplitAttrs(axis, tuple(sizes)), node.proto.name)


def _slice_dim(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
    """ONNX start/end/step on a dim of size dim -> (first index read, number read)."""
    if step == 0:
        raise ShapeError("slice step must not be 0")
    start += dim if start < 0 else 0
    end += dim if end < 0 else 0
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    size = max(0, -(-(end - start) // step))
    return (start if size else 0), size


@converter("Slice")
def slice_(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    rank = len(x.shape)
    starts = _ints_from(node, 1, "starts", "starts")
    ends = _ints_from(node, 2, "ends", "ends")
    if starts is None or ends is None:
        raise ShapeError("starts and ends are required")
    axes = _ints_from(node, 3, "axes", "axes") or list(range(len(starts)))
    steps = _ints_from(node, 4, "steps", "steps") or [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps) or len(set(axes)) != len(axes):
        raise ShapeError(
            f"starts {starts}, ends {ends}, axes {axes} and steps {steps} must have one entry "
            "per sliced axis, each axis once"
        )
    first, step_of, size = [0] * rank, [1] * rank, list(x.shape)
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        axis = _axis(axis, rank)
        first[axis], size[axis] = _slice_dim(x.shape[axis], start, end, step)
        step_of[axis] = step
    attrs = SliceAttrs(tuple(first), tuple(step_of), tuple(size))
    return ctx.add(Op.SLICE, [x], attrs, node.proto.name)


def _wrapped_indices(ctx: ImportContext, indices: Value, bounds: np.ndarray, what: str) -> Value:
    """Constant indices checked against bounds (which broadcast to them), negatives wrapped, so
    that a bad index fails at import rather than when the model runs."""
    k = indices.data
    if np.any((k < -bounds) | (k >= bounds)):
        raise ShapeError(f"{what} indices out of range")
    return ctx.constant(np.where(k < 0, k + bounds, k).astype(k.dtype), indices.name)


@converter("Gather")
def gather(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    data, indices = node.input(0), node.input(1)
    axis = _axis(node.attr("axis", 0), len(data.shape))
    if indices.is_constant:
        what = f"Gather on dim {axis} of {data.shape}:"
        indices = _wrapped_indices(ctx, indices, np.int64(data.shape[axis]), what)
    return ctx.add(Op.GATHER, [data, indices], AxisAttrs(axis), node.proto.name)


@converter("GatherND")
def gather_nd(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    data, indices = node.input(0), node.input(1)
    b = int(node.attr("batch_dims", 0))
    m = indices.shape[-1] if indices.shape else 0
    dims = data.shape[b : b + m] if b >= 0 else ()
    if indices.is_constant and 0 < m == len(dims):  # else type inference reports the misfit
        what = f"GatherND on dims {b}..{b + m - 1} of {data.shape}:"
        indices = _wrapped_indices(ctx, indices, np.array(dims, np.int64), what)
    return ctx.add(Op.GATHER_ND, [data, indices], GatherNDAttrs(b), node.proto.name)


@converter("Expand")
def expand(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    requested = tuple(int(d) for d in node.const_input(1, "shape"))
    try:
        shape = broadcast_shapes(x.shape, requested)
    except ValueError as e:
        raise ShapeError(str(e)) from None
    return ctx.add(Op.EXPAND, [x], ShapeAttrs(shape), node.proto.name)


@converter("Tile")
def tile(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    repeats = tuple(int(r) for r in node.const_input(1, "repeats"))
    if len(repeats) != len(x.shape):
        raise ShapeError(f"repeats {repeats} do not match the rank of {x.shape}")
    return ctx.add(Op.TILE, [x], TileAttrs(repeats), node.proto.name)


@converter("Pad")
def pad(ctx: ImportContext, node: OnnxNode) -> list[Value]:
    x = node.input(0)
    rank = len(x.shape)
    given = _ints_from(node, 1, "pads", "pads")
    if given is None:
        raise ShapeError("pads are required")
    value = node.attr("value", 0.0)
    if node.input(2) is not None:
        array = node.const_input(2, "constant_value")
        value = array.reshape(-1)[0] if array.size else 0.0
    axes = [_axis(a, rank) for a in _ints_from(node, 3, "axes", "axes") or range(rank)]
    if len(given) != 2 * len(axes):
        raise ShapeError(
            f"pads {given} do not give a begin and an end for each of {len(axes)} axes"
        )
    pads = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        pads[axis], pads[rank + axis] = given[i], given[len(axes) + i]
    attrs = PadAttrs(tuple(pads), enum_attr(node, PadMode, "mode", "constant"), float(value))
    return ctx.add(Op.PAD, [x], attrs, node.proto.name)

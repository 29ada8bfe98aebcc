"""Type inference: the dtype and static shape of every op's outputs, from input types and attrs.

Raises ShapeError (naming the node) when inputs or attributes do not fit the op (a stride of 0,
a perm that is no permutation, an output dim < 1 where a kernel needs one...) or a tensor could
not fit in this machine's memory, so that a frontend bug or a malformed model fails at import,
never inside numpy or generated code. This is the one place the IR validates a node:
Graph.add_node calls infer_types for every node the frontend builds (constant folding included,
before numpy allocates), and the verifier (xgen.ir.verify) re-infers nodes that passes edit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from math import prod

from xgen.errors import ShapeError
from xgen.ir import ops as O
from xgen.ir.dtypes import DType
from xgen.ir.graph import Node, TensorType, Value
from xgen.ir.ops import Op

Shape = tuple[int, ...]

# Number of inputs each op takes (min, max); absent means exactly one.
ARITY: dict[Op, tuple[int, int]] = {
    **{op: (2, 2) for op in O.BINARY_OPS},
    Op.WHERE: (3, 3),
    Op.BATCH_NORM: (5, 5),
    Op.CONV: (2, 6),  # x, w, bias, [w_expand, bias_expand], then the epilogue's residual
    Op.CONV_TRANSPOSE: (2, 3),
    Op.GEMM: (2, 4),
    Op.MATMUL: (2, 2),
    Op.ATTENTION: (3, 1 << 30),  # q, K's parts, V's parts, [mask]
    Op.FUSED_ELEMENTWISE: (1, 1 << 30),
    Op.LAYER_NORM: (2, 3),
    Op.INSTANCE_NORM: (3, 3),
    Op.CONCAT: (1, 1 << 30),
    Op.GATHER: (2, 2),
    Op.GATHER_ND: (2, 2),
}


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: no limit known
        return 1 << 62


# A tensor, a folded constant or the memory plan's arena larger than this machine's memory could
# never be allocated: it is refused at import (ShapeError), before numpy or C tries.
MEMORY_BYTES = _physical_memory()


def check_fits_memory(nbytes: int, what: str) -> None:
    if nbytes > MEMORY_BYTES:
        raise ShapeError(
            f"{what} needs {nbytes} bytes, more than this machine's memory ({MEMORY_BYTES} bytes)"
        )


def check_tensor(shape: Shape, itemsize: int, what: str) -> None:
    """ShapeError unless every dim is >= 0 and a tensor of that shape fits in memory."""
    if any(d < 0 for d in shape):
        raise ShapeError(f"{what} has a negative dim: {shape}")
    check_fits_memory(prod(shape) * itemsize, f"{what} of shape {shape}")


# Constant folding computes a node in numpy at import. A result larger than this is refused, not
# allocated: no ONNX file holds an initializer over 2 GiB without external data, so a bigger folded
# constant (ConstantOfShape, Range, Expand, Tile... of constants) comes from a broken or hostile
# model, and would take that much memory at import and again in the weight file.
FOLD_LIMIT_BYTES = 1 << 32


def check_foldable(shape: Shape, itemsize: int, what: str) -> None:
    """check_tensor, and the constant is no larger than FOLD_LIMIT_BYTES."""
    check_tensor(shape, itemsize, what)
    if prod(shape) * itemsize > FOLD_LIMIT_BYTES:
        raise ShapeError(
            f"{what} of shape {shape} would be a constant of {prod(shape) * itemsize} bytes, "
            f"more than constant folding makes ({FOLD_LIMIT_BYTES} bytes)"
        )


# ---- attribute checks: each raises ShapeError saying what was given and what is allowed -------


def check_count(name: str, values: Sequence, count: int) -> None:
    if len(values) != count:
        raise ShapeError(f"{name} {tuple(values)} must have {count} entries, got {len(values)}")


def check_at_least(name: str, values: Sequence[int], low: int) -> None:
    if any(v < low for v in values):
        raise ShapeError(f"{name} {tuple(values)} must all be >= {low}")


def check_axis(axis: int, rank: int, name: str = "axis") -> None:
    if not 0 <= axis < rank:
        raise ShapeError(f"{name} {axis} is out of range for rank {rank}")


def check_perm(perm: Sequence[int], rank: int, name: str = "perm") -> None:
    if sorted(perm) != list(range(rank)):
        raise ShapeError(f"{name} {tuple(perm)} is not a permutation of 0..{rank - 1}")


def _check_window(
    a: O.ConvAttrs | O.PoolAttrs, spatial: Shape, kernel: Shape, negative_pads: bool = False
) -> None:
    """Conv, ConvTranspose and pool attributes over len(kernel) spatial dims; the input's spatial
    dims and the kernel must not be empty; pads must be >= 0 unless negative_pads."""
    rank = len(kernel)
    check_count("strides", a.strides, rank)
    check_count("dilations", a.dilations, rank)
    check_count("pads", a.pads, 2 * rank)
    check_at_least("kernel dims", kernel, 1)
    check_at_least("strides", a.strides, 1)
    check_at_least("dilations", a.dilations, 1)
    if not negative_pads:
        check_at_least("pads", a.pads, 0)
    check_at_least("input spatial dims", spatial, 1)


def broadcast_shapes(*shapes: Shape) -> Shape:
    """numpy / ONNX multidirectional broadcasting."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded, strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {' and '.join(map(str, shapes))} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def split_layout(shape: Shape, channels_last: bool) -> tuple[int, int, Shape]:
    """(batch, channels, spatial dims) of an N x C x spatial or, channels last, N x spatial x C
    tensor."""
    if channels_last:
        return shape[0], shape[-1], tuple(shape[1:-1])
    return shape[0], shape[1], tuple(shape[2:])


def join_layout(batch: int, channels: int, spatial: Shape, channels_last: bool) -> Shape:
    """The inverse of split_layout."""
    if channels_last:
        return (batch, *spatial, channels)
    return (batch, channels, *spatial)


def _pool_like(
    a: O.ConvAttrs | O.PoolAttrs, shape: Shape, kernel: Shape, channels_out: int
) -> Shape:
    """The output shape of a Conv or pool of an input of `shape`."""
    batch, _, x = split_layout(shape, a.channels_last)
    rank = len(kernel)
    spatial = []
    for i in range(rank):
        pad = a.pads[i] + a.pads[i + rank]
        ceil_mode = getattr(a, "ceil_mode", False)
        if ceil_mode:
            span = x[i] + pad - a.dilations[i] * (kernel[i] - 1) - 1
            out = -(-span // a.strides[i]) + 1
            if (out - 1) * a.strides[i] >= x[i] + a.pads[i]:
                out -= 1  # last window would start in the right padding only
        else:
            out = (x[i] + pad - a.dilations[i] * (kernel[i] - 1) - 1) // a.strides[i] + 1
        if out < 1:
            raise ShapeError(
                f"kernel {kernel} with dilations {a.dilations} does not fit the input's spatial "
                f"dims {x} padded by {a.pads} (output dims must be >= 1)"
            )
        spatial.append(out)
    return join_layout(batch, channels_out, tuple(spatial), a.channels_last)


def _same(node: Node) -> list[TensorType]:
    return [node.inputs[0].type]


def _instance_norm(node: Node) -> list[TensorType]:
    x, scale, bias = node.inputs
    if len(x.shape) < 3 or scale.shape != (x.shape[1],) or bias.shape != (x.shape[1],):
        raise ShapeError(
            f"input {x.shape} (N x C x spatial) needs a scale and bias of shape (C,), got "
            f"{scale.shape} and {bias.shape}"
        )
    return _same(node)


def _along_axis(node: Node) -> list[TensorType]:
    """Softmax, LogSoftmax and LayerNormalization: the input's type, over a valid axis."""
    check_axis(node.attrs.axis, len(node.inputs[0].shape))
    return _same(node)


def _unary(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    if node.op is Op.CAST:
        return [TensorType(node.attrs.to, x.shape)]
    if node.op is Op.IS_NAN:
        return [TensorType(DType.BOOL, x.shape)]
    return [x]


def _binary(node: Node) -> list[TensorType]:
    a, b = node.inputs
    if a.dtype is not b.dtype:
        raise ShapeError(f"inputs have different dtypes {a.dtype.value} and {b.dtype.value}")
    shape = broadcast_shapes(a.shape, b.shape)
    logical = node.op in O.COMPARISON_OPS or node.op in O.LOGICAL_OPS
    return [TensorType(DType.BOOL if logical else a.dtype, shape)]


def _where(node: Node) -> list[TensorType]:
    cond, x, y = node.inputs
    if cond.dtype is not DType.BOOL or x.dtype is not y.dtype:
        raise ShapeError("Where takes a bool condition and two values of one dtype")
    return [TensorType(x.dtype, broadcast_shapes(cond.shape, x.shape, y.shape))]


def _with_epilogue(node: Node, out: TensorType) -> list[TensorType]:
    """out, after checking the arity without the residual and the residual's type."""
    inputs, residual = O.split_epilogue_inputs(node.inputs, node.attrs)
    arity = 5 if getattr(node.attrs, "expand", None) is not None else 3
    if len(inputs) > arity:
        raise ShapeError(f"{len(inputs)} inputs besides the residual (at most {arity})")
    if residual is not None and residual.type != out:
        raise ShapeError(f"residual {residual.type} differs from the output {out}")
    return [out]


def _check_group(group: int, in_channels: int, out_channels: int, bias: Value | None) -> None:
    """The group and bias of a Conv or ConvTranspose."""
    if group < 1 or in_channels % group or out_channels % group:
        raise ShapeError(
            f"group={group} must be >= 1 and divide the {in_channels} input channels and the "
            f"{out_channels} output channels"
        )
    if bias is not None and bias.shape != (out_channels,):
        raise ShapeError(f"bias {bias.shape} must have shape ({out_channels},)")


def _conv(node: Node) -> list[TensorType]:
    x, w = node.inputs[0].shape, node.inputs[1].shape
    a = node.attrs
    if a.expand is not None:  # x expands to w_expand's output channels first
        w_expand = node.inputs[3].shape
        if not a.channels_last or x[-1] != w_expand[1]:
            raise ShapeError(f"input {x} does not fit the expanding 1x1 weight {w_expand}")
        x = (*x[:-1], w_expand[0])
    if len(x) < 3 or len(x) != len(w) or split_layout(x, a.channels_last)[1] != w[1] * a.group:
        layout = " (channels last)" if a.channels_last else ""
        raise ShapeError(
            f"input {x}{layout} and weight {w} do not fit a convolution with group={a.group}"
        )
    if w[1] < 1:  # a sum over no input channels: the kernels' weight packing needs one
        raise ShapeError(f"weight {w} has no input channels")
    inputs, _ = O.split_epilogue_inputs(node.inputs, a)
    _check_group(a.group, w[1] * a.group, w[0], inputs[2] if len(inputs) > 2 else None)
    _check_window(a, split_layout(x, a.channels_last)[2], w[2:])
    out = _pool_like(a, node.inputs[0].shape, w[2:], w[0])
    return _with_epilogue(node, TensorType(node.inputs[0].dtype, out))


def _conv_transpose(node: Node) -> list[TensorType]:
    x, w = node.inputs[0].shape, node.inputs[1].shape
    a = node.attrs
    if not a.epilogue.is_plain or a.channels_last:
        raise ShapeError("ConvTranspose takes no epilogue and only the N x C x spatial layout")
    if len(x) < 3 or len(w) != len(x) or x[1] != w[0]:
        raise ShapeError(f"input {x} and weight {w} do not fit a transposed convolution")
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    _check_group(a.group, x[1], w[1] * a.group, bias)
    rank = len(x) - 2
    # A negative pad extends the output (an output_shape past the full one); the kernel
    # bounds-checks every write, so only the output's size needs checking.
    _check_window(a, x[2:], w[2:], negative_pads=True)
    check_count("output_padding", a.output_padding, rank)
    for pad, stride, dilation in zip(a.output_padding, a.strides, a.dilations, strict=True):
        if not 0 <= pad < max(stride, dilation):
            raise ShapeError(
                f"output_padding {a.output_padding} must be >= 0 and less than the stride "
                f"or the dilation of its dim ({a.strides}, {a.dilations})"
            )
    spatial = [
        a.strides[i] * (x[2 + i] - 1)
        + a.output_padding[i]
        + (w[2 + i] - 1) * a.dilations[i]
        + 1
        - a.pads[i]
        - a.pads[i + rank]
        for i in range(rank)
    ]
    if min(spatial) < 1:
        raise ShapeError(f"pads {a.pads} leave output spatial dims {tuple(spatial)} (must be >= 1)")
    return [TensorType(node.inputs[0].dtype, (x[0], w[1] * a.group, *spatial))]


def _gemm(node: Node) -> list[TensorType]:
    a, b = node.inputs[0].shape, node.inputs[1].shape
    if len(a) != 2 or len(b) != 2:
        raise ShapeError(f"Gemm takes two 2-D inputs, got {a} and {b}")
    m, k = (a[1], a[0]) if node.attrs.trans_a else a
    k2, n = (b[1], b[0]) if node.attrs.trans_b else b
    if k != k2:
        raise ShapeError(f"Gemm inner dims differ: {a} and {b}")
    inputs, _ = O.split_epilogue_inputs(node.inputs, node.attrs)
    if len(inputs) == 3 and broadcast_shapes(inputs[2].shape, (m, n)) != (m, n):
        raise ShapeError(f"C {inputs[2].shape} does not broadcast to the output {(m, n)}")
    return _with_epilogue(node, TensorType(node.inputs[0].dtype, (m, n)))


def matmul_shape(a: Shape, b: Shape) -> Shape:
    """numpy.matmul's result shape (1-D operands are promoted, then the added dim removed)."""
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"MatMul inner dims differ: {a} and {b}")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    out = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def read_through(shape: Shape, perm: Shape) -> Shape:
    """The shape of transpose(x, perm) for x of `shape`; an empty perm reads x as it is."""
    return tuple(shape[i] for i in perm) if perm else shape


def matmul_operand_shapes(node: Node) -> tuple[Shape, Shape]:
    """The shapes of a MatMul's A and B as it reads them, through its attrs' perms."""
    attrs: O.MatMulAttrs = node.attrs
    a, b = node.inputs
    for name, value, perm in (("A", a, attrs.a_perm), ("B", b, attrs.b_perm)):
        if not value.shape:
            raise ShapeError(f"MatMul operand {name} is a scalar (it needs rank >= 1)")
        if perm:
            check_perm(perm, len(value.shape), f"the perm of {name}")
    return read_through(a.shape, attrs.a_perm), read_through(b.shape, attrs.b_perm)


def _matmul(node: Node) -> list[TensorType]:
    return [TensorType(node.inputs[0].dtype, matmul_shape(*matmul_operand_shapes(node)))]


def attention_operand_shapes(node: Node) -> tuple[Shape, Shape, Shape]:
    """The shapes of an Attention's Q [..., Sq, D], K [..., Sk, D] and V [..., Sk, Dv] as it
    reads them, through its attrs' perms."""
    a: O.AttentionAttrs = node.attrs
    q, k_parts, v_parts, _ = O.attention_inputs(node)
    return (
        read_through(q.shape, a.q_perm),
        read_through(_joined(k_parts, a.k_perm), a.k_perm),
        read_through(_joined(v_parts, a.v_perm), a.v_perm),
    )


def _joined(parts: list[Value], perm: Shape) -> Shape:
    """The shape of the parts of an Attention's K or V joined along the key axis."""
    axis = O.key_axis(perm, len(parts[0].shape))
    return _joined_shape(parts, axis, "Attention key parts")


def _joined_shape(values: list[Value], axis: int, what: str) -> Shape:
    """The shape of values joined along axis, as Concat joins them; ShapeError if their dtypes
    or their dims off the axis differ."""
    first = values[0]
    for v in values:
        if (
            v.dtype is not first.dtype
            or len(v.shape) != len(first.shape)
            or v.shape[:axis] != first.shape[:axis]
            or v.shape[axis + 1 :] != first.shape[axis + 1 :]
        ):
            raise ShapeError(f"{what} {[v.shape for v in values]} differ off axis {axis}")
    total = sum(v.shape[axis] for v in values)
    return (*first.shape[:axis], total, *first.shape[axis + 1 :])


def _attention(node: Node) -> list[TensorType]:
    q, k, v = attention_operand_shapes(node)
    if min(len(q), len(k), len(v)) < 2 or q[-1] != k[-1] or k[-2] != v[-2]:
        raise ShapeError(f"Q {q}, K {k} and V {v} do not chain as Q @ K^T @ V")
    batch = broadcast_shapes(q[:-2], k[:-2], v[:-2])
    result = (*batch, q[-2], v[-1])
    mask = O.attention_inputs(node)[3]
    if mask is not None:
        scores = (*batch, q[-2], k[-2])
        if broadcast_shapes(mask.shape, scores) != scores:
            raise ShapeError(f"mask {mask.shape} does not broadcast to {scores}")
    perm = node.attrs.out_perm or range(len(result))
    return [TensorType(node.inputs[0].dtype, tuple(result[i] for i in perm))]


def _reduce(node: Node) -> list[TensorType]:
    x = node.inputs[0]
    a = node.attrs
    if not a.axes or list(a.axes) != sorted(set(a.axes)):
        raise ShapeError(f"axes {a.axes} must be sorted, distinct and not empty")
    for axis in a.axes:
        check_axis(axis, len(x.shape), "reduced axis")
    shape = tuple(
        1 if i in a.axes else d for i, d in enumerate(x.shape) if a.keepdims or i not in a.axes
    )
    return [TensorType(x.dtype, shape)]


def _arg_reduce(node: Node) -> list[TensorType]:
    x, a = node.inputs[0], node.attrs
    check_axis(a.axis, len(x.shape))
    if x.shape[a.axis] < 1:
        raise ShapeError(f"dim {a.axis} of {x.shape} is empty: it has no largest or smallest")
    shape = tuple(
        1 if i == a.axis else d for i, d in enumerate(x.shape) if a.keepdims or i != a.axis
    )
    return [TensorType(DType.INT64, shape)]


def pool_shape(a: O.PoolAttrs, shape: Shape) -> Shape:
    """The output shape of a MaxPool or AveragePool of an input of `shape`; ShapeError if the
    attributes do not fit it."""
    kernel = a.kernel_shape
    if len(shape) != len(kernel) + 2:
        raise ShapeError(f"kernel_shape {kernel} does not fit the spatial dims of {shape}")
    _check_window(a, split_layout(shape, a.channels_last)[2], kernel)
    for i, (k, d) in enumerate(zip(kernel, a.dilations, strict=True)):
        span = (k - 1) * d + 1
        if max(a.pads[i], a.pads[i + len(kernel)]) >= span:
            # a window wholly in the padding would have no input element
            raise ShapeError(f"pads {a.pads} must be smaller than the (dilated) kernel {kernel}")
    return _pool_like(a, shape, kernel, split_layout(shape, a.channels_last)[1])


def _pool(node: Node) -> list[TensorType]:
    x = node.inputs[0]
    return [TensorType(x.dtype, pool_shape(node.attrs, x.shape))]


def _reshape(node: Node) -> list[TensorType]:
    x = node.inputs[0]
    if prod(node.attrs.shape) != x.type.size:
        raise ShapeError(f"cannot reshape {x.shape} to {node.attrs.shape}")
    return [TensorType(x.dtype, node.attrs.shape)]


def _expand(node: Node) -> list[TensorType]:
    x = node.inputs[0]
    return [TensorType(x.dtype, broadcast_shapes(x.shape, node.attrs.shape))]


def _tile(node: Node) -> list[TensorType]:
    x, repeats = node.inputs[0], node.attrs.repeats
    check_count("repeats", repeats, len(x.shape))
    check_at_least("repeats", repeats, 0)
    return [TensorType(x.dtype, tuple(d * r for d, r in zip(x.shape, repeats, strict=True)))]


def _resize(node: Node) -> list[TensorType]:
    x, a = node.inputs[0], node.attrs
    check_count("sizes", a.sizes, len(x.shape))
    check_count("scales", a.scales, len(x.shape))
    check_at_least("input dims", x.shape, 1)
    check_at_least("sizes", a.sizes, 1)
    if not all(math.isfinite(v) and v > 0 for v in a.scales):
        raise ShapeError(f"scales {a.scales} must be finite and > 0")
    return [TensorType(x.dtype, a.sizes)]


def _concat(node: Node) -> list[TensorType]:
    check_axis(node.attrs.axis, len(node.inputs[0].shape))
    shape = _joined_shape(node.inputs, node.attrs.axis, "Concat inputs")
    return [TensorType(node.inputs[0].dtype, shape)]


def _split(node: Node) -> list[TensorType]:
    x, a = node.inputs[0], node.attrs
    check_axis(a.axis, len(x.shape))
    check_at_least("split sizes", a.sizes, 0)
    if sum(a.sizes) != x.shape[a.axis]:
        raise ShapeError(f"split sizes {a.sizes} do not sum to dim {a.axis} of {x.shape}")
    return [TensorType(x.dtype, (*x.shape[: a.axis], s, *x.shape[a.axis + 1 :])) for s in a.sizes]


def _slice(node: Node) -> list[TensorType]:
    x, a = node.inputs[0], node.attrs
    for name, values in (("starts", a.starts), ("steps", a.steps), ("sizes", a.sizes)):
        check_count(name, values, len(x.shape))
    check_at_least("sizes", a.sizes, 0)
    if 0 in a.steps:
        raise ShapeError(f"steps {a.steps} must not be 0")
    for dim, start, step, size in zip(x.shape, a.starts, a.steps, a.sizes, strict=True):
        last = start + step * (size - 1)
        if size and not (0 <= start < dim and 0 <= last < dim):
            raise ShapeError(f"slice reads outside dim of size {dim}")
    return [TensorType(x.dtype, a.sizes)]


def _pad(node: Node) -> list[TensorType]:
    x, a = node.inputs[0], node.attrs
    rank = len(x.shape)
    check_count("pads", a.pads, 2 * rank)
    for d, begin, end in zip(x.shape, a.pads[:rank], a.pads[rank:], strict=True):
        kept = d - max(-begin, 0) - max(-end, 0)  # negative pads crop
        if kept < 0:
            raise ShapeError(f"pads {a.pads} crop more than the dim of size {d} of {x.shape}")
        if kept == 0 and max(begin, end) > 0 and a.mode is not O.PadMode.CONSTANT:
            raise ShapeError(f"pads {a.pads} pad an empty dim of {x.shape} in mode {a.mode.value}")
    return [
        TensorType(x.dtype, tuple(d + a.pads[i] + a.pads[i + rank] for i, d in enumerate(x.shape)))
    ]


def _gather(node: Node) -> list[TensorType]:
    data, indices = node.inputs
    axis = node.attrs.axis
    check_axis(axis, len(data.shape))
    if indices.dtype not in (DType.INT64, DType.INT32):
        raise ShapeError(f"Gather indices must be int32 or int64, got {indices.dtype.value}")
    return [TensorType(data.dtype, (*data.shape[:axis], *indices.shape, *data.shape[axis + 1 :]))]


def _gather_nd(node: Node) -> list[TensorType]:
    data, indices = node.inputs
    b = node.attrs.batch_dims
    if indices.dtype not in (DType.INT64, DType.INT32):
        raise ShapeError(f"GatherND indices must be int32 or int64, got {indices.dtype.value}")
    rank = min(len(data.shape), len(indices.shape))
    if not 0 <= b < rank or data.shape[:b] != indices.shape[:b]:
        raise ShapeError(f"data {data.shape} and indices {indices.shape} share no {b} batch dims")
    m = indices.shape[-1]
    if not 1 <= m <= len(data.shape) - b:
        raise ShapeError(
            f"the last dim of indices {indices.shape} must be 1..{len(data.shape) - b} "
            f"(the rank of data {data.shape} less batch_dims={b})"
        )
    return [TensorType(data.dtype, (*indices.shape[:-1], *data.shape[b + m :]))]


def _transpose(node: Node) -> list[TensorType]:
    x = node.inputs[0]
    check_perm(node.attrs.perm, len(x.shape))
    return [TensorType(x.dtype, tuple(x.shape[p] for p in node.attrs.perm))]


_RULES: dict[Op, Callable[[Node], list[TensorType]]] = {
    **{op: _unary for op in O.UNARY_OPS},
    **{op: _binary for op in O.BINARY_OPS},
    **{op: _reduce for op in O.REDUCE_OPS},
    **{op: _pool for op in O.POOL_OPS},
    Op.WHERE: _where,
    Op.BATCH_NORM: _same,
    Op.CONV: _conv,
    Op.CONV_TRANSPOSE: _conv_transpose,
    Op.GEMM: _gemm,
    Op.MATMUL: _matmul,
    Op.ATTENTION: _attention,
    Op.FUSED_ELEMENTWISE: lambda node: [node.attrs.nodes[-1].outputs[0].type],
    Op.LAYER_NORM: _along_axis,
    Op.INSTANCE_NORM: _instance_norm,
    Op.SOFTMAX: _along_axis,
    Op.LOG_SOFTMAX: _along_axis,
    Op.ARG_MAX: _arg_reduce,
    Op.ARG_MIN: _arg_reduce,
    Op.EXPAND: _expand,
    Op.TILE: _tile,
    Op.RESIZE: _resize,
    Op.RESHAPE: _reshape,
    Op.CONCAT: _concat,
    Op.SPLIT: _split,
    Op.SLICE: _slice,
    Op.PAD: _pad,
    Op.GATHER: _gather,
    Op.GATHER_ND: _gather_nd,
    Op.TRANSPOSE: _transpose,
}


def infer_types(node: Node) -> list[TensorType]:
    """Output types of node; raises ShapeError naming the node if its inputs do not fit."""
    low, high = ARITY.get(node.op, (1, 1))
    label = f"node {node.name!r} ({node.op.value})"
    if not low <= len(node.inputs) <= high:
        raise ShapeError(f"{label} takes {low}..{high} inputs, got {len(node.inputs)}", node.name)
    expected = node.op.attrs_type
    if expected is not None and not isinstance(node.attrs, expected):
        raise ShapeError(f"{label} needs {expected.__name__} attributes", node.name)
    try:
        # inputs are checked where they are made: graph inputs at import, outputs here
        types = _RULES[node.op](node)
        for i, t in enumerate(types):
            check_tensor(t.shape, t.dtype.itemsize, f"output {i}")
        return types
    except ShapeError as e:
        raise ShapeError(f"{label}: {e}", node.name) from None
    except (ValueError, IndexError) as e:
        inputs = ", ".join(str(v.type) for v in node.inputs)
        raise ShapeError(f"{label} with inputs {inputs}: {e}", node.name) from None

"""Type inference: the dtype and static shape of every op's outputs, from input types and attrs.

Raises ShapeError (naming the node) when inputs do not fit the op, so that a frontend bug or a
malformed model fails at import, never inside generated code.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _pool_like(node: Node, kernel: Shape, channels_out: int) -> Shape:
    a = node.attrs
    batch, _, x = split_layout(node.inputs[0].shape, a.channels_last)
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
        spatial.append(out)
    return join_layout(batch, channels_out, tuple(spatial), a.channels_last)


def _same(node: Node) -> list[TensorType]:
    return [node.inputs[0].type]


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


def _conv(node: Node) -> list[TensorType]:
    x, w = node.inputs[0].shape, node.inputs[1].shape
    a = node.attrs
    if a.expand is not None:  # x expands to w_expand's output channels first
        w_expand = node.inputs[3].shape
        if not a.channels_last or x[-1] != w_expand[1]:
            raise ShapeError(f"input {x} does not fit the expanding 1x1 weight {w_expand}")
        x = (*x[:-1], w_expand[0])
    if len(x) != len(w) or split_layout(x, a.channels_last)[1] != w[1] * a.group:
        layout = " (channels last)" if a.channels_last else ""
        raise ShapeError(
            f"input {x}{layout} and weight {w} do not fit a convolution with group={a.group}"
        )
    return _with_epilogue(node, TensorType(node.inputs[0].dtype, _pool_like(node, w[2:], w[0])))


def _conv_transpose(node: Node) -> list[TensorType]:
    x, w = node.inputs[0].shape, node.inputs[1].shape
    a = node.attrs
    if not a.epilogue.is_plain or a.channels_last:
        raise ShapeError("ConvTranspose takes no epilogue and only the N x C x spatial layout")
    rank = len(x) - 2
    if x[1] != w[0]:
        raise ShapeError(f"input {x} and weight {w} do not fit a transposed convolution")
    spatial = [
        a.strides[i] * (x[2 + i] - 1)
        + a.output_padding[i]
        + (w[2 + i] - 1) * a.dilations[i]
        + 1
        - a.pads[i]
        - a.pads[i + rank]
        for i in range(rank)
    ]
    return [TensorType(node.inputs[0].dtype, (x[0], w[1] * a.group, *spatial))]


def _gemm(node: Node) -> list[TensorType]:
    a, b = node.inputs[0].shape, node.inputs[1].shape
    m, k = (a[1], a[0]) if node.attrs.trans_a else a
    k2, n = (b[1], b[0]) if node.attrs.trans_b else b
    if k != k2:
        raise ShapeError(f"Gemm inner dims differ: {a} and {b}")
    inputs, _ = O.split_epilogue_inputs(node.inputs, node.attrs)
    if len(inputs) == 3:
        broadcast_shapes(inputs[2].shape, (m, n))
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
    shape = tuple(
        1 if i in a.axes else d for i, d in enumerate(x.shape) if a.keepdims or i not in a.axes
    )
    return [TensorType(x.dtype, shape)]


def _arg_reduce(node: Node) -> list[TensorType]:
    x, a = node.inputs[0], node.attrs
    shape = tuple(
        1 if i == a.axis else d for i, d in enumerate(x.shape) if a.keepdims or i != a.axis
    )
    return [TensorType(DType.INT64, shape)]


def _pool(node: Node) -> list[TensorType]:
    x = node.inputs[0]
    channels = split_layout(x.shape, node.attrs.channels_last)[1]
    return [TensorType(x.dtype, _pool_like(node, node.attrs.kernel_shape, channels))]


def _reshape(node: Node) -> list[TensorType]:
    x = node.inputs[0]
    if prod(node.attrs.shape) != x.type.size:
        raise ShapeError(f"cannot reshape {x.shape} to {node.attrs.shape}")
    return [TensorType(x.dtype, node.attrs.shape)]


def _expand(node: Node) -> list[TensorType]:
    x = node.inputs[0]
    return [TensorType(x.dtype, broadcast_shapes(x.shape, node.attrs.shape))]


def _tile(node: Node) -> list[TensorType]:
    x = node.inputs[0]
    return [
        TensorType(x.dtype, tuple(d * r for d, r in zip(x.shape, node.attrs.repeats, strict=True)))
    ]


def _resize(node: Node) -> list[TensorType]:
    return [TensorType(node.inputs[0].dtype, node.attrs.sizes)]


def _concat(node: Node) -> list[TensorType]:
    shape = _joined_shape(node.inputs, node.attrs.axis, "Concat inputs")
    return [TensorType(node.inputs[0].dtype, shape)]


def _split(node: Node) -> list[TensorType]:
    x, a = node.inputs[0], node.attrs
    if sum(a.sizes) != x.shape[a.axis]:
        raise ShapeError(f"split sizes {a.sizes} do not sum to dim {a.axis} of {x.shape}")
    return [TensorType(x.dtype, (*x.shape[: a.axis], s, *x.shape[a.axis + 1 :])) for s in a.sizes]


def _slice(node: Node) -> list[TensorType]:
    x, a = node.inputs[0], node.attrs
    for dim, start, step, size in zip(x.shape, a.starts, a.steps, a.sizes, strict=True):
        last = start + step * (size - 1)
        if size and not (0 <= start < dim and 0 <= last < dim):
            raise ShapeError(f"slice reads outside dim of size {dim}")
    return [TensorType(x.dtype, a.sizes)]


def _pad(node: Node) -> list[TensorType]:
    x, pads = node.inputs[0], node.attrs.pads
    rank = len(x.shape)
    return [TensorType(x.dtype, tuple(d + pads[i] + pads[i + rank] for i, d in enumerate(x.shape)))]


def _gather(node: Node) -> list[TensorType]:
    data, indices = node.inputs
    axis = node.attrs.axis
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
    Op.LAYER_NORM: _same,
    Op.INSTANCE_NORM: _same,
    Op.SOFTMAX: _same,
    Op.LOG_SOFTMAX: _same,
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
    label = f"node {node.name} ({node.op.value})"
    if not low <= len(node.inputs) <= high:
        raise ShapeError(f"{label} takes {low}..{high} inputs, got {len(node.inputs)}", node.name)
    expected = node.op.attrs_type
    if expected is not None and not isinstance(node.attrs, expected):
        raise ShapeError(f"{label} needs {expected.__name__} attributes", node.name)
    try:
        return _RULES[node.op](node)
    except ShapeError as e:
        raise ShapeError(f"{label}: {e}", node.name) from None
    except (ValueError, IndexError) as e:
        inputs = ", ".join(str(v.type) for v in node.inputs)
        raise ShapeError(f"{label} with inputs {inputs}: {e}", node.name) from None

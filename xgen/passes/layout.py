"""One layout for the whole CNN: channels last (N x spatial x C) for convolutions and pooling.

Channels last lets a dense convolution run as an indirect GEMM with no im2col copy, and a
depthwise convolution or a pooling window run vectorised over channels (kernels/conv_nhwc.h,
depthwise.h, pool.h). The pass works in two steps:
  1. every convertible node switches to channels last between two Transposes, so the graph still
     computes exactly what it did;
  2. Transposes sink through the layout-agnostic ops after them (elementwise ops, reductions that
     keep their dims, Concat) and cancel in pairs, until the only ones left are where the layout
     really changes: at the model's input, and where a feature map is flattened. A Transpose that
     moves only size-1 dims becomes a Reshape, which costs nothing.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from xgen.ir import Graph, Node, Op, Value
from xgen.ir import ops as O
from xgen.passes.rewrite import Producers, Users, replace_uses

# Ops whose output element i reads input element i only (after broadcasting), in any layout.
_ELEMENTWISE = O.UNARY_OPS | O.BINARY_OPS | {Op.WHERE}

Perm = tuple[int, ...]


def channels_last(graph: Graph) -> None:
    """Run convolutions and pooling channels last, converting only where the layout changes."""
    for node in list(graph.nodes):
        if _convertible(node):
            _convert(graph, node)
    while _rewrite_one(graph):
        pass
    for node in graph.nodes:
        if node.op is Op.TRANSPOSE and _moves_only_ones(node):
            node.op, node.attrs = Op.RESHAPE, O.ShapeAttrs(node.outputs[0].shape)


def _convertible(node: Node) -> bool:
    """Conv with constant weights, dense or depthwise, and MaxPool / AveragePool, over 1-3
    spatial dims. Other convs (grouped, or weights computed at run time) stay channels first."""
    rank = len(node.inputs[0].shape) if node.inputs else 0
    if not 3 <= rank <= 5 or len(node.outputs) != 1:
        return False
    if node.op in O.POOL_OPS:
        return True
    if node.op is not Op.CONV or not node.attrs.epilogue.is_plain:
        return False
    (x, w), group = node.inputs[:2], node.attrs.group
    dense_or_depthwise = group == 1 or group == x.shape[1] == w.shape[0]
    return dense_or_depthwise and all(v.is_constant for v in node.inputs[1:])


def to_channels_last(rank: int) -> Perm:
    """The Transpose perm taking N x C x spatial to N x spatial x C."""
    return (0, *range(2, rank), 1)


def to_channels_first(rank: int) -> Perm:
    return (0, rank - 1, *range(1, rank - 1))


def _convert(graph: Graph, node: Node) -> None:
    """node runs channels last, between a Transpose of its input and one of its output."""
    rank = len(node.inputs[0].shape)
    node.inputs[0] = _add_transpose(
        graph, graph.nodes.index(node), node.inputs[0], to_channels_last(rank)
    )
    node.attrs = replace(node.attrs, channels_last=True)
    if node.op is Op.CONV and node.inputs[0].shape[-1] < NARROW_CHANNELS:
        _pad_width_explicitly(graph, node)
    _transpose_output(graph, node, to_channels_first(rank))


# Below this many input channels, a conv runs faster on an input padded along x first: its taps
# along a window row are then adjacent in memory and run as one (see kernels/conv_nhwc.h).
NARROW_CHANNELS = 16


def _pad_width_explicitly(graph: Graph, conv: Node) -> None:
    """The zero padding of a channels-last Conv along its last spatial dim, as a Pad before it."""
    x, attrs = conv.inputs[0], conv.attrs
    spatial = len(x.shape) - 2
    begin, end = attrs.pads[spatial - 1], attrs.pads[2 * spatial - 1]
    if begin == end == 0 or begin < 0 or end < 0:
        return
    pads = [0] * (2 * len(x.shape))
    pads[spatial], pads[len(x.shape) + spatial] = begin, end  # x is N x spatial x C
    attrs_pad = O.PadAttrs(tuple(pads), O.PadMode.CONSTANT, 0.0)
    pad = graph.insert_node(graph.nodes.index(conv), Op.PAD, [x], attrs_pad, name="pad_width")
    conv_pads = list(attrs.pads)
    conv_pads[spatial - 1] = conv_pads[2 * spatial - 1] = 0
    conv.inputs[0], conv.attrs = pad.outputs[0], replace(attrs, pads=tuple(conv_pads))


def _add_transpose(
    graph: Graph, index: int, x: Value, perm: Perm, output: Value | None = None
) -> Value:
    """A Transpose of x inserted at graph.nodes[index]; its output is `output` if given (a value
    whose producer is being replaced), else a new value."""
    rank = len(perm)
    names = {
        to_channels_last(rank): "to_channels_last",
        to_channels_first(rank): "to_channels_first",
    }
    name = names.get(perm, "transpose")
    node = graph.insert_node(index, Op.TRANSPOSE, [x], O.TransposeAttrs(perm), name)
    if output is not None:
        node.outputs[0] = output
    return node.outputs[0]


def _transpose_output(graph: Graph, node: Node, perm: Perm) -> None:
    """node's output, permuted by the inverse of perm, becomes a new value, and a Transpose by
    perm after node recomputes the original value from it."""
    original = node.outputs[0]
    shape = tuple(original.shape[i] for i in np.argsort(perm))
    moved = Value(graph.unique_name(original.name), replace(original.type, shape=shape))
    node.outputs = [moved]  # a new list: graph.outputs may be the node's own list
    _add_transpose(graph, graph.nodes.index(node) + 1, moved, perm, original)


# ---- sinking Transposes ------------------------------------------------------------------


def _rewrite_one(graph: Graph) -> bool:
    """Apply the first rewrite that applies; False when none does."""
    producers, users = graph.producers(), graph.consumers()
    for node in graph.nodes:
        if node.op is Op.TRANSPOSE:
            if _simplify_transpose(graph, node, producers, users):
                return True
            continue
        perm = _transposed_inputs_perm(graph, node, producers, users)
        if perm is not None and _sink(graph, node, perm, producers):
            return True
    return False


def _simplify_transpose(graph: Graph, node: Node, producers: Producers, users: Users) -> bool:
    """Fold a Transpose of a Transpose into one and drop an identity; remove a Transpose nothing
    reads."""
    x, y = node.inputs[0], node.outputs[0]
    if not users.get(y) and y not in graph.outputs:
        graph.nodes.remove(node)
        return True
    source = producers.get(x)
    if source is not None and source.op is Op.TRANSPOSE:
        perm = tuple(source.attrs.perm[i] for i in node.attrs.perm)
        node.inputs[0], node.attrs = source.inputs[0], O.TransposeAttrs(perm)
        if perm == tuple(range(len(perm))) and y not in graph.outputs:
            replace_uses(graph, y, node.inputs[0])
            graph.nodes.remove(node)
        return True
    return False


def _moves_only_ones(transpose: Node) -> bool:
    """Whether the Transpose keeps its input's bytes in order (it moves size-1 dims only)."""
    kept = [i for i in transpose.attrs.perm if transpose.inputs[0].shape[i] != 1]
    return kept == sorted(kept)


def _transposed_inputs_perm(
    graph: Graph, node: Node, producers: Producers, users: Users
) -> Perm | None:
    """The perm of the Transposes producing every non-constant input of node, when they all
    have the same one and node is their only reader; else None."""
    perms = set()
    for x in node.inputs:
        if x.is_constant:
            continue
        source = producers.get(x)
        if source is None or source.op is not Op.TRANSPOSE or x in graph.outputs:
            return None
        if any(reader is not node for reader in users[x]):
            return None
        perms.add(source.attrs.perm)
    return perms.pop() if len(perms) == 1 else None


def _sink(graph: Graph, node: Node, perm: Perm, producers: Producers) -> bool:
    """Move the Transposes by perm from node's inputs to its output, if node is agnostic of the
    layout (with its attributes remapped)."""
    if len(node.outputs) != 1 or len(node.outputs[0].shape) != len(perm):
        return False
    if node.op in O.REDUCE_OPS and node.attrs.keepdims:
        node.attrs = replace(node.attrs, axes=tuple(sorted(perm[a] for a in node.attrs.axes)))
    elif node.op is Op.CONCAT:
        node.attrs = O.AxisAttrs(perm[node.attrs.axis])
    elif node.op not in _ELEMENTWISE:
        return False
    inverse = tuple(int(i) for i in np.argsort(perm))
    node.inputs = [
        _permuted_constant(graph, x, inverse) if x.is_constant else producers[x].inputs[0]
        for x in node.inputs
    ]
    _transpose_output(graph, node, perm)
    return True


def _permuted_constant(graph: Graph, value: Value, inverse: Perm) -> Value:
    """A broadcast operand of rank <= len(inverse), padded to that rank and permuted."""
    data = value.data.reshape((1,) * (len(inverse) - value.data.ndim) + value.data.shape)
    return graph.constant(np.ascontiguousarray(data.transpose(inverse)), value.name)

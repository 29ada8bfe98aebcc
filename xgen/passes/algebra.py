"""Algebraic simplification, before any fusion: nodes that compute nothing or whose work folds
into a constant go, so that the fusing passes see the shortest chains.

- (x * a) * b becomes x * (a * b), and (x + a) + b becomes x + (a + b), for constants a and b
  (the product or sum computed now; rounding may differ from the model's order by an ulp);
- an Identity, an Expand to its input's own shape and a Reshape to it go;
- a Reshape of a Reshape reads the first one's input;
- an Expand read only by broadcasting ops, each of which has the expanded shape anyway, goes:
  they read its input and broadcast it themselves.

A value that is a graph output keeps the node computing it.
"""

from __future__ import annotations

import numpy as np

from xgen.ir import Graph, Node, Op, Value
from xgen.ir import ops as O
from xgen.passes.rewrite import Producers, Users, origin, replace_uses, sole_consumer

# Ops with multidirectional (numpy) broadcasting: an operand can be read unexpanded.
_BROADCASTING = (O.BINARY_OPS - {Op.PRELU}) | {Op.WHERE}
_ASSOCIATIVE = frozenset({Op.ADD, Op.MUL})


def simplify_algebra(graph: Graph) -> None:
    """Apply the rewrites above until none applies."""
    while _rewrite_one(graph):
        pass


def _rewrite_one(graph: Graph) -> bool:
    users, producers = graph.consumers(), graph.producers()
    for node in graph.nodes:
        if _drop_no_op(graph, node) or _merge_reshapes(graph, node, users, producers):
            return True
        if _fold_constants(graph, node, users, producers) or _drop_expand(graph, node, users):
            return True
    return False


def _drop_no_op(graph: Graph, node: Node) -> bool:
    """Identity, or an Expand / Reshape that keeps its input's shape."""
    keeps_shape = node.op in (Op.EXPAND, Op.RESHAPE) and node.attrs.shape == node.inputs[0].shape
    if not (node.op is Op.IDENTITY or keeps_shape) or node.outputs[0] in graph.outputs:
        return False
    replace_uses(graph, node.outputs[0], node.inputs[0])
    graph.nodes.remove(node)
    return True


def _merge_reshapes(graph: Graph, node: Node, users: Users, producers: Producers) -> bool:
    """A Reshape reading a Reshape reads that one's input instead (the first goes if unread)."""
    if node.op is not Op.RESHAPE:
        return False
    first = producers.get(node.inputs[0])
    if first is None or first.op is not Op.RESHAPE:
        return False
    if sole_consumer(graph, first.outputs[0], users) is node:
        node.origin = origin(first, node)
        graph.nodes.remove(first)
    node.inputs[0] = first.inputs[0]
    return True


def _fold_constants(graph: Graph, node: Node, users: Users, producers: Producers) -> bool:
    """(x op a) op b -> x op (a op b), op Add or Mul, a and b constants, x op a read only here."""
    if node.op not in _ASSOCIATIVE or len(_constants(node)) != 1:
        return False
    inner = producers.get(_variable(node))
    if inner is None or inner.op is not node.op or len(_constants(inner)) != 1:
        return False
    if sole_consumer(graph, inner.outputs[0], users) is not node:
        return False
    a, b = _constants(inner)[0].data, _constants(node)[0].data
    folded = (a * b if node.op is Op.MUL else a + b).astype(a.dtype)
    node.inputs = [_variable(inner), graph.constant(folded, f"{node.name}_folded")]
    node.origin = origin(inner, node)
    graph.nodes.remove(inner)
    return True


def _drop_expand(graph: Graph, node: Node, users: Users) -> bool:
    """An Expand whose readers all broadcast to their own output shape without it."""
    if node.op is not Op.EXPAND or node.outputs[0] in graph.outputs:
        return False
    expanded, source = node.outputs[0], node.inputs[0]
    readers = users.get(expanded, [])
    if not readers or not all(_broadcasts_without(r, expanded, source) for r in readers):
        return False
    replace_uses(graph, expanded, source)
    graph.nodes.remove(node)
    return True


def _broadcasts_without(reader: Node, expanded: Value, source: Value) -> bool:
    if reader.op not in _BROADCASTING:
        return False
    shapes = [source.shape if x is expanded else x.shape for x in reader.inputs]
    try:
        return np.broadcast_shapes(*shapes) == reader.outputs[0].shape
    except ValueError:
        return False


def _constants(node: Node) -> list[Value]:
    return [x for x in node.inputs if x.is_constant]


def _variable(node: Node) -> Value:
    """The one non-constant input of a two-input node with one constant."""
    return next(x for x in node.inputs if not x.is_constant)

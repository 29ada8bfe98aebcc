"""Helpers the rewriting passes share."""

from __future__ import annotations

from xgen.ir import Graph, Node, Value

Users = dict[Value, list[Node]]  # what graph.consumers() returns: a value's readers
Producers = dict[Value, Node]  # what graph.producers() returns: a value's writer


def sole_consumer(graph: Graph, value: Value, users: Users) -> Node | None:
    """The one node reading value, if exactly one node reads it once and it is no graph output."""
    readers = users.get(value, [])
    if len(readers) != 1 or value in graph.outputs or readers[0].inputs.count(value) != 1:
        return None
    return readers[0]


def absorb(graph: Graph, node: Node, follower: Node) -> None:
    """Remove follower, whose work node now does: node's output becomes follower's output."""
    node.outputs = [follower.outputs[0]]  # a new list: graph.outputs may be node's own list
    node.origin = origin(node, follower)
    graph.nodes.remove(follower)


def read_once_producer(
    graph: Graph, value: Value, users: Users, producers: Producers
) -> Node | None:
    """The node writing value, if one node reads value once (the next of a chain) and it is no
    graph output."""
    node = producers.get(value)
    return node if node is not None and sole_consumer(graph, value, users) is not None else None


def replace_uses(graph: Graph, old: Value, new: Value) -> None:
    """Every node reading old reads new instead."""
    for node in graph.nodes:
        node.inputs = [new if x is old else x for x in node.inputs]


def origin(*nodes: Node) -> tuple[str, ...]:
    """The source model's ops the nodes compute, in order (Node.origin)."""
    return tuple(op for node in nodes for op in (node.origin or (node.op.value,)))

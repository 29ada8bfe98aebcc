"""Fuse a residual Add and an activation into the store of a Conv or Gemm (ops.Epilogue).

conv -> Add(other) -> Relu becomes one Conv whose tiles are finished while still in cache:
y = relu(conv(x) + other). An activation or a residual Add behind a Reshape (a transformer's
Gemm on [tokens, hidden] reshaped back to [batch, seq, hidden]) moves ahead of it first. An Add
is absorbed only before any activation (the order the epilogue computes), when the other operand
has the output's exact type and is computed before the Conv (so the Conv can read it where it
stands), and when the Add is the only reader of the output.
"""

from __future__ import annotations

import dataclasses

from xgen.ir import DType, Graph, Node, Op, Value
from xgen.ir.ops import Activation, ClipAttrs, Epilogue, ShapeAttrs
from xgen.passes.rewrite import Users, absorb, sole_consumer

FUSABLE = (Op.CONV, Op.GEMM)


def fuse_epilogues(graph: Graph) -> None:
    for node in [n for n in graph.nodes if n.op in FUSABLE and n.inputs[0].dtype is DType.FLOAT32]:
        while _fuse_next(graph, node):
            pass


def _fuse_next(graph: Graph, node: Node) -> bool:
    """Absorb the sole reader of node's output if it extends the epilogue; True if it did."""
    epilogue = node.attrs.epilogue
    if epilogue.activation is not Activation.NONE:
        return False
    users = graph.consumers()
    follower = sole_consumer(graph, node.outputs[0], users)
    if follower is not None and follower.op is Op.RESHAPE:
        follower = _ahead_of_reshape(graph, node, follower, users)
    if follower is None:
        return False
    activation = _activation(follower)
    if activation is not None:
        _set_epilogue(node, activation)
    elif follower.op is Op.ADD and not epilogue.residual:
        other = _residual(graph, node, follower)
        if other is None:
            return False
        node.inputs.append(other)
        _set_epilogue(node, dataclasses.replace(epilogue, residual=True))
    else:
        return False
    absorb(graph, node, follower)
    return True


def _activation(follower: Node) -> Epilogue | None:
    """The epilogue activation computing follower (without its residual), if it is one."""
    if follower.op is Op.RELU:
        return Epilogue(Activation.RELU)
    if follower.op is Op.CLIP:
        attrs: ClipAttrs = follower.attrs
        return Epilogue(Activation.CLIP, attrs.min, attrs.max)
    if follower.op is Op.GELU:
        tanh = follower.attrs.tanh_approximation
        return Epilogue(Activation.GELU_TANH if tanh else Activation.GELU)
    return None


def _ahead_of_reshape(graph: Graph, node: Node, reshape: Node, users: Users) -> Node | None:
    """Reshape -> activation, or Reshape -> Add of a value node can read as its residual, becomes
    the same op ahead of the Reshape (elementwise ops commute with a reshape; the residual is
    reshaped too, which costs nothing), so that it follows node directly; returns it, or None."""
    after = sole_consumer(graph, reshape.outputs[0], users)
    if after is None:
        return None
    source, result = reshape.inputs[0], after.outputs[0]
    if _activation(after) is not None:
        inputs = [source]
    elif after.op is Op.ADD:
        other = after.inputs[1] if after.inputs[0] is reshape.outputs[0] else after.inputs[0]
        if other.type != result.type or not _defined_before(graph, other, node):
            return None
        at = graph.nodes.index(node)  # node reads the reshaped residual
        flat = graph.insert_node(at, Op.RESHAPE, [other], ShapeAttrs(source.shape), "residual")
        inputs = [source, flat.outputs[0]]
    else:
        return None
    moved = Value(graph.unique_name(f"{after.name}_out"), source.type)
    after.inputs, after.outputs = inputs, [moved]
    reshape.inputs[0], reshape.outputs[0] = moved, result
    graph.nodes.remove(after)
    graph.nodes.insert(graph.nodes.index(reshape), after)
    return after


def _set_epilogue(node: Node, epilogue: Epilogue) -> None:
    if epilogue.activation is not Activation.NONE:
        epilogue = dataclasses.replace(epilogue, residual=node.attrs.epilogue.residual)
    node.attrs = dataclasses.replace(node.attrs, epilogue=epilogue)


def _residual(graph: Graph, node: Node, add: Node) -> Value | None:
    """Add's other operand, if node can read it: the output's type, and defined before node."""
    out = node.outputs[0]
    other = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    return other if other.type == out.type and _defined_before(graph, other, node) else None


def _defined_before(graph: Graph, value: Value, node: Node) -> bool:
    """Whether value exists when node runs: an input, a constant or an earlier node's output."""
    producer = graph.producers().get(value)
    return producer is None or graph.nodes.index(producer) < graph.nodes.index(node)

"""Fuse chains of elementwise ops into one loop (DNNFusion's one-to-one fusion).

Each elementwise node (unary, binary with broadcasting, Where) left after the other fusions is
one pass over its output: a chain of them (GELU's tanh form written out, a mask built from a
comparison, a Cast and a Where) writes and reads every intermediate tensor once more. Here a
node whose output is read only by the next elementwise node of the same shape joins that node's
block, and a block of two or more nodes becomes one FusedElementwise node: one loop over the
output computing each member in registers, only the block's inputs broadcast. Runs last, after
the fusions into convolutions, linear layers and attention, which take their activations first.
"""

from __future__ import annotations

from xgen.ir import Graph, Node, Op
from xgen.ir import ops as O
from xgen.ir.ops import FusedElementwiseAttrs
from xgen.passes.rewrite import Producers, Users, origin

ELEMENTWISE = (O.UNARY_OPS - {Op.IDENTITY}) | O.BINARY_OPS | {Op.WHERE}


def fuse_elementwise(graph: Graph) -> None:
    users, producers = graph.consumers(), graph.producers()
    block_of: dict[int, list[Node]] = {}  # id of a node -> the block it ends
    for node in graph.nodes:
        if node.op in ELEMENTWISE:
            block_of[id(node)] = _grow(graph, [node], block_of, users, producers)
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    for block in block_of.values():
        if len(block) > 1:
            block.sort(key=lambda n: position[id(n)])  # each member after what it reads
            _replace(graph, block)


def _grow(
    graph: Graph,
    block: list[Node],
    block_of: dict[int, list[Node]],
    users: Users,
    producers: Producers,
) -> list[Node]:
    """The block ending at block[0], grown by the blocks writing its inputs while one can be
    computed inside its loop: every reader of the value is in the block (a value read twice is
    still computed once), it is no graph output, and it has the block's shape (so no member is
    computed more than once per output element)."""
    shape = block[0].outputs[0].shape
    grown = True
    while grown:
        grown = False
        members = {id(m) for m in block}
        for value in dict.fromkeys(v for m in block for v in m.inputs):
            producer = producers.get(value)
            if (
                id(producer) in block_of
                and id(producer) not in members
                and value.shape == shape
                and value not in graph.outputs
                and all(id(r) in members for r in users.get(value, []))
            ):
                block += block_of.pop(id(producer))
                grown = True
                break
    return block


def _replace(graph: Graph, block: list[Node]) -> None:
    """One FusedElementwise node in place of the block's last member, writing its output."""
    inside = {id(m.outputs[0]) for m in block}
    inputs = list(dict.fromkeys(v for m in block for v in m.inputs if id(v) not in inside))
    last = block[-1]
    at = graph.nodes.index(last)
    attrs = FusedElementwiseAttrs(tuple(block))
    fused = graph.insert_node(at, Op.FUSED_ELEMENTWISE, inputs, attrs, last.name)
    fused.outputs[0], fused.origin = last.outputs[0], origin(*block)
    for member in block:
        graph.nodes.remove(member)

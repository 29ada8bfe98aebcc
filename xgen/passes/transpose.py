"""A Transpose between two Reshapes that only add or remove size-1 dims becomes one Transpose.

torch's scaled_dot_product_attention exports K^T as Reshape [1, heads, seq, dim] -> [heads,
seq, dim], Transpose, Reshape back to rank 4: a copy that fold_transposes_into_matmul and the
attention pass cannot see through. Size-1 dims do not move data, so the three are one Transpose
of the rank-4 tensor, which those passes then take into the strides of their MatMul.
"""

from __future__ import annotations

from collections.abc import Sequence

from xgen.ir import Graph, Node, Op
from xgen.ir.ops import TransposeAttrs
from xgen.passes.rewrite import origin, read_once_producer, sole_consumer


def collapse_reshaped_transposes(graph: Graph) -> None:
    for transpose in [n for n in graph.nodes if n.op is Op.TRANSPOSE]:
        users, producers = graph.consumers(), graph.producers()
        before = read_once_producer(graph, transpose.inputs[0], users, producers)
        after = sole_consumer(graph, transpose.outputs[0], users)
        if not (_is_reshape(before) and _is_reshape(after)):
            continue
        x, y = before.inputs[0], after.outputs[0]
        perm = unit_free_perm(x.shape, before.outputs[0].shape, transpose.attrs.perm, y.shape)
        if perm is None:
            continue
        at = graph.nodes.index(after)
        node = graph.insert_node(at, Op.TRANSPOSE, [x], TransposeAttrs(perm), transpose.name)
        node.outputs[0], node.origin = y, origin(before, transpose, after)
        for old in (before, transpose, after):
            graph.nodes.remove(old)


def _is_reshape(node: Node | None) -> bool:
    return node is not None and node.op is Op.RESHAPE


def unit_free_perm(
    x: Sequence[int], reshaped: Sequence[int], perm: Sequence[int], y: Sequence[int]
) -> tuple[int, ...] | None:
    """The perm p with transpose(x, p) == reshape(transpose(reshape(x, reshaped), perm), y),
    if both reshapes only add or remove size-1 dims and y has x's rank; else None."""

    def sizes(shape: Sequence[int]) -> list[int]:
        return [d for d in shape if d != 1]

    moved = [reshaped[j] for j in perm]
    if sizes(x) != sizes(reshaped) or sizes(moved) != sizes(y) or len(x) != len(y):
        return None
    kept = iter(i for i, d in enumerate(x) if d != 1)
    source = [next(kept) if d != 1 else None for d in reshaped]  # x's dim for each of reshaped's
    order = iter(s for s in (source[j] for j in perm) if s is not None)
    units = iter(i for i, d in enumerate(x) if d == 1)
    return tuple(next(order) if d != 1 else next(units) for d in y)

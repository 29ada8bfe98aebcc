"""Transposes feeding a MatMul of two computed operands become the strides it reads them with.

In attention, Q, K and V are split into heads by a Reshape and a Transpose each, (0, 2, 1, 3) or
(0, 2, 3, 1) for K: whole copies of the projections, made only for the batched MatMuls that
follow. The MatMul's kernel packs its operands from any row, column and batch strides, so it can
read them where the projections wrote them (ops.MatMulAttrs holds the perms).
"""

from __future__ import annotations

from xgen.ir import Graph, Op
from xgen.ir.ops import MatMulAttrs
from xgen.passes.rewrite import origin, sole_consumer


def fold_transposes_into_matmul(graph: Graph) -> None:
    users, producers = graph.consumers(), graph.producers()
    for node in [n for n in graph.nodes if n.op is Op.MATMUL]:
        if any(x.is_constant for x in node.inputs):
            continue  # a linear layer: its constant weight is laid out at compile time
        perms = [node.attrs.a_perm, node.attrs.b_perm]
        for i, x in enumerate(node.inputs):
            transpose = producers.get(x)
            if transpose is None or transpose.op is not Op.TRANSPOSE:
                continue
            if sole_consumer(graph, x, users) is not node:
                continue
            read = perms[i] or tuple(range(len(x.shape)))
            perms[i] = tuple(transpose.attrs.perm[j] for j in read)
            node.inputs[i] = transpose.inputs[0]
            node.origin = origin(transpose, node)
            graph.nodes.remove(transpose)
        node.attrs = MatMulAttrs(*perms)

"""Model statistics: parameter counts and FLOPs of an IR graph.

FLOPs count a multiply-add as 2, as papers and peers do: Conv, ConvTranspose, Gemm and MatMul
are 2 x MACs; every other computing op counts its arithmetic per output element (a pool or a
reduction counts the elements it reads); ops that only move data (reshape, concat, transpose...)
count 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from xgen.ir.graph import Graph, Node
from xgen.ir.infer import attention_operand_shapes, matmul_operand_shapes
from xgen.ir.ops import POOL_OPS, REDUCE_OPS, MappingType, Op


@dataclass(frozen=True)
class GraphStats:
    parameters: int  # elements of the float constants the nodes read (weights, biases)
    parameter_bytes: int  # bytes of every constant the nodes read
    flops: int
    op_counts: dict[str, int]


def node_flops(node: Node) -> int:
    out = node.outputs[0]
    if node.op is Op.CONV:
        flops = 2 * out.type.size * prod(node.inputs[1].shape[1:])
        if node.attrs.expand is not None:  # and its 1x1 expansion: input pixels x cin x cexp
            x, w_expand = node.inputs[0].type, node.inputs[3].shape
            flops += 2 * x.size * w_expand[0]
        return flops
    if node.op is Op.CONV_TRANSPOSE:
        return 2 * node.inputs[0].type.size * prod(node.inputs[1].shape[1:])
    if node.op is Op.MATMUL:
        return 2 * out.type.size * matmul_operand_shapes(node)[0][-1]
    if node.op is Op.FUSED_ELEMENTWISE:
        return sum(node_flops(member) for member in node.attrs.nodes)
    if node.op is Op.ATTENTION:  # Q @ K^T and P @ V, then the softmax per score
        q, k, v = attention_operand_shapes(node)
        scores = prod(q[:-1]) * k[-2]
        return 2 * scores * (q[-1] + v[-1]) + scores
    if node.op is Op.GEMM:
        a = node.inputs[0].shape
        return 2 * out.type.size * (a[0] if node.attrs.trans_a else a[1])
    if node.op in POOL_OPS:
        return out.type.size * prod(node.attrs.kernel_shape)
    if node.op in REDUCE_OPS or node.op in (Op.ARG_MAX, Op.ARG_MIN):
        return node.inputs[0].type.size
    if node.op.mapping in (MappingType.ONE_TO_ONE, MappingType.MANY_TO_MANY):
        return sum(v.type.size for v in node.outputs)
    return 0  # data movement


def graph_stats(graph: Graph) -> GraphStats:
    constants = graph.constants()
    return GraphStats(
        parameters=sum(v.type.size for v in constants if v.dtype.is_float),
        parameter_bytes=sum(v.type.nbytes for v in constants),
        flops=sum(node_flops(n) for n in graph.nodes),
        op_counts=graph.op_counts(),
    )

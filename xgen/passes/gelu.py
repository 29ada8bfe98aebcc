"""Recognise GELU written out as elementwise ops and make it one Gelu node.

Exporters spell GELU(x) = 0.5 * x * (1 + erf(x / sqrt(2))) as five nodes (Div or Mul by a
constant, Erf, Add 1, two Muls in either association), each a pass over a [tokens, 4 * hidden]
tensor. As one Gelu node it is one pass, or none once the epilogue pass fuses it into the Gemm
that produces x.
"""

from __future__ import annotations

import math

import numpy as np

from xgen.ir import DType, Graph, Node, Op, Value
from xgen.ir.ops import GeluAttrs
from xgen.passes.rewrite import origin, sole_consumer


def fuse_gelu(graph: Graph) -> None:
    for erf in [n for n in graph.nodes if n.op is Op.ERF]:
        match = _match(graph, erf)
        if match is not None and match[1][-1].outputs[0].type == match[0].type:
            _replace(graph, *match)


def _match(graph: Graph, erf: Node) -> tuple[Value, list[Node]] | None:
    """(x, the nodes from the scaling of x to the one writing GELU(x)), if erf is part of one."""
    producers, users = graph.producers(), graph.consumers()
    scale = producers.get(erf.inputs[0])
    if scale is None or sole_consumer(graph, scale.outputs[0], users) is not erf:
        return None
    x = _scaled_input(scale)
    if x is None or x.dtype is not DType.FLOAT32:
        return None
    add = sole_consumer(graph, erf.outputs[0], users)
    if add is None or add.op is not Op.ADD or not _is_constant(_operand(add, erf.outputs[0]), 1.0):
        return None
    first = sole_consumer(graph, add.outputs[0], users)
    if first is None or first.op is not Op.MUL:
        return None
    factor = _operand(first, add.outputs[0])
    half = producers.get(factor)
    if _is_half_of(half, x) and sole_consumer(graph, factor, users) is first:
        return x, [half, scale, erf, add, first]  # t * (0.5 * x)
    second = sole_consumer(graph, first.outputs[0], users)
    if second is None or second.op is not Op.MUL:
        return None
    other = _operand(second, first.outputs[0])
    if not (factor is x and _is_constant(other, 0.5) or other is x and _is_constant(factor, 0.5)):
        return None
    return x, [scale, erf, add, first, second]  # (t * x) * 0.5 or (t * 0.5) * x


def _scaled_input(scale: Node) -> Value | None:
    """x, if scale computes x / sqrt(2) or x * (1 / sqrt(2))."""
    if scale.op is Op.DIV and _is_constant(scale.inputs[1], math.sqrt(2.0)):
        return scale.inputs[0]
    if scale.op is Op.MUL:
        for i in (0, 1):
            if _is_constant(scale.inputs[1 - i], math.sqrt(0.5)):
                return scale.inputs[i]
    return None


def _operand(node: Node, known: Value) -> Value:
    """The input of a binary node other than `known`."""
    return node.inputs[1] if node.inputs[0] is known else node.inputs[0]


def _is_half_of(node: Node | None, x: Value) -> bool:
    """Whether node computes 0.5 * x."""
    if node is None or node.op is not Op.MUL or x not in node.inputs:
        return False
    return _is_constant(_operand(node, x), 0.5)


def _is_constant(value: Value, target: float) -> bool:
    """A constant holding one value (any broadcast shape) within float32 rounding of target."""
    data = value.data
    if data is None or data.size == 0 or not np.issubdtype(data.dtype, np.floating):
        return False
    return bool(np.all(np.abs(data.astype(np.float64) - target) <= 1e-6 * abs(target)))


def _replace(graph: Graph, x: Value, chain: list[Node]) -> None:
    """One Gelu node where the chain's last node stood, writing that node's output."""
    at = graph.nodes.index(chain[-1])
    attrs = GeluAttrs(tanh_approximation=False)
    gelu = graph.insert_node(at, Op.GELU, [x], attrs, chain[-1].name)
    gelu.outputs[0] = chain[-1].outputs[0]
    gelu.origin = origin(*chain)
    for node in chain:
        graph.nodes.remove(node)

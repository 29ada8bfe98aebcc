"""Recognise GELU written out as elementwise ops and make it one Gelu node.

Exporters spell GELU(x) = 0.5 * x * (1 + erf(x / sqrt(2))) as five nodes (Div or Mul by a
constant, Erf, Add 1, two Muls in either association), and its tanh form (GPT-2's gelu_new)
0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))) as eight, each a pass over a
[tokens, 4 * hidden] tensor. As one Gelu node it is one pass, or none once the epilogue pass
fuses it into the Gemm that produces x.
"""

from __future__ import annotations

import math

import numpy as np

from xgen.ir import DType, Graph, Node, Op, Value
from xgen.ir.ops import GeluAttrs
from xgen.passes.rewrite import Producers, Users, origin, read_once_producer, sole_consumer


def fuse_gelu(graph: Graph) -> None:
    for activation in [n for n in graph.nodes if n.op in (Op.ERF, Op.TANH)]:
        match = _match(graph, activation)
        if match is not None and match[1][-1].outputs[0].type == match[0].type:
            _replace(graph, *match, tanh=activation.op is Op.TANH)


def _match(graph: Graph, activation: Node) -> tuple[Value, list[Node]] | None:
    """(x, the nodes from the scaling of x to the one writing GELU(x)), if the Erf or Tanh is
    part of one."""
    producers, users = graph.producers(), graph.consumers()
    head = _erf_head if activation.op is Op.ERF else _tanh_head
    found = head(graph, activation, producers, users)
    if found is None:
        return None
    x, scaling = found
    if x.dtype is not DType.FLOAT32:
        return None
    out = activation.outputs[0]
    add = sole_consumer(graph, out, users)
    if add is None or add.op is not Op.ADD or not _is_constant(_operand(add, out), 1.0):
        return None
    first = sole_consumer(graph, add.outputs[0], users)
    if first is None or first.op is not Op.MUL:
        return None
    factor = _operand(first, add.outputs[0])
    half = producers.get(factor)
    if _is_half_of(half, x) and sole_consumer(graph, factor, users) is first:
        return x, [half, *scaling, activation, add, first]  # t * (0.5 * x)
    second = sole_consumer(graph, first.outputs[0], users)
    if second is None or second.op is not Op.MUL:
        return None
    other = _operand(second, first.outputs[0])
    if not (factor is x and _is_constant(other, 0.5) or other is x and _is_constant(factor, 0.5)):
        return None
    return x, [*scaling, activation, add, first, second]  # (t * x) * 0.5 or (t * 0.5) * x


def _erf_head(
    graph: Graph, erf: Node, producers: Producers, users: Users
) -> tuple[Value, list[Node]] | None:
    """(x, [the scaling]) if erf's input is x / sqrt(2) or x * (1 / sqrt(2))."""
    scale = read_once_producer(graph, erf.inputs[0], users, producers)
    if scale is None:
        return None
    if scale.op is Op.DIV and _is_constant(scale.inputs[1], math.sqrt(2.0)):
        return scale.inputs[0], [scale]
    x = _times_constant(scale, math.sqrt(0.5))
    return (x, [scale]) if x is not None else None


def _tanh_head(
    graph: Graph, tanh: Node, producers: Producers, users: Users
) -> tuple[Value, list[Node]] | None:
    """(x, the nodes computing tanh's input) if it is sqrt(2 / pi) * (x + 0.044715 * x^3),
    x^3 a Pow by 3; constants on either side of each Mul and Add."""
    scale = read_once_producer(graph, tanh.inputs[0], users, producers)
    inner = _times_constant(scale, math.sqrt(2.0 / math.pi))
    total = read_once_producer(graph, inner, users, producers) if inner is not None else None
    if total is None or total.op is not Op.ADD:
        return None
    for x, term in (total.inputs, total.inputs[::-1]):
        weight = read_once_producer(graph, term, users, producers)
        cube = _times_constant(weight, 0.044715)
        power = read_once_producer(graph, cube, users, producers) if cube is not None else None
        if (
            power is not None
            and power.op is Op.POW
            and power.inputs[0] is x
            and _is_constant(power.inputs[1], 3.0)
        ):
            return x, [power, weight, total, scale]
    return None


def _times_constant(node: Node | None, target: float) -> Value | None:
    """v, if node computes v * target or target * v."""
    if node is None or node.op is not Op.MUL:
        return None
    for i in (0, 1):
        if _is_constant(node.inputs[1 - i], target):
            return node.inputs[i]
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


def _replace(graph: Graph, x: Value, chain: list[Node], tanh: bool) -> None:
    """One Gelu node where the chain's last node stood, writing that node's output."""
    at = graph.nodes.index(chain[-1])
    attrs = GeluAttrs(tanh_approximation=tanh)
    gelu = graph.insert_node(at, Op.GELU, [x], attrs, chain[-1].name)
    gelu.outputs[0] = chain[-1].outputs[0]
    gelu.origin = origin(*chain)
    for node in chain:
        graph.nodes.remove(node)

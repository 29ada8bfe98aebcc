"""Turn x @ W + b (MatMul by a constant matrix, then an Add of a bias vector) into one Gemm.

The Gemm adds the bias in the store of each output tile (kernels/activation.h), saving the Add's
pass over the output; x's leading dims fold into Gemm rows through Reshapes, which are free
aliases. This is the linear layer of every transformer export that keeps MatMul + Add.
"""

from __future__ import annotations

from math import prod

from xgen.ir import DType, Graph, Node, Op, Value
from xgen.ir.ops import GemmAttrs, MatMulAttrs, ShapeAttrs
from xgen.passes.rewrite import origin, sole_consumer


def fuse_linear(graph: Graph) -> None:
    for matmul in [n for n in graph.nodes if _is_linear(n)]:
        add = sole_consumer(graph, matmul.outputs[0], graph.consumers())
        bias = _bias(add, matmul) if add is not None else None
        if bias is not None:
            _replace(graph, matmul, add, bias)


def _is_linear(node: Node) -> bool:
    if node.op is not Op.MATMUL:
        return False
    x, w = node.inputs
    plain = node.attrs == MatMulAttrs()  # no operand read transposed
    return (
        plain
        and w.is_constant
        and len(w.shape) == 2
        and len(x.shape) >= 2
        and x.dtype is DType.FLOAT32
    )


def _bias(add: Node, matmul: Node) -> Value | None:
    """The Add's other operand if it is a constant vector along the output's last dim."""
    if add.op is not Op.ADD:
        return None
    out = matmul.outputs[0]
    other = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    n = out.shape[-1]
    vector = other.shape[-1:] == (n,) and prod(other.shape) == n
    fits = len(other.shape) <= len(out.shape) and add.outputs[0].type == out.type
    return other if other.is_constant and vector and fits else None


def _replace(graph: Graph, matmul: Node, add: Node, bias: Value) -> None:
    """matmul + add become [Reshape] Gemm [Reshape], in matmul's place, writing add's output."""
    x, w = matmul.inputs
    k, n = w.shape
    rows = prod(x.shape[:-1])
    first = len(graph.nodes)
    if len(x.shape) != 2:
        (x,) = graph.add_node(Op.RESHAPE, [x], ShapeAttrs((rows, k)), f"{matmul.name}_rows")
    vector = graph.constant(bias.data.reshape(n), f"{bias.name}_vector")
    attrs = GemmAttrs(alpha=1.0, beta=1.0, trans_a=False, trans_b=False)
    (y,) = graph.add_node(Op.GEMM, [x, w, vector], attrs, matmul.name)
    graph.nodes[-1].origin = origin(matmul, add)
    last = graph.nodes[-1]
    if len(add.outputs[0].shape) != 2:
        graph.add_node(Op.RESHAPE, [y], ShapeAttrs(add.outputs[0].shape), f"{matmul.name}_dims")
        last = graph.nodes[-1]
    last.outputs[0] = add.outputs[0]
    new = graph.nodes[first:]
    del graph.nodes[first:]
    at = graph.nodes.index(matmul)
    graph.nodes[at : at + 1] = new
    graph.nodes.remove(add)

"""Linear layers: x @ W + b (MatMul by a constant matrix, then an Add of a bias vector) becomes
one Gemm, and a Gemm whose output columns a Split divides becomes one Gemm per part.

The Gemm adds the bias in the store of each output tile (kernels/epilogue.h), saving the Add's
pass over the output; x's leading dims fold into Gemm rows through Reshapes, which are free
aliases. This is the linear layer of every transformer export that keeps MatMul + Add.
A Split of the columns (GPT-2's fused Q, K, V projection) is a copy of the whole output; with
W's columns split instead, each part's Gemm writes its own output and nothing is copied.
"""

from __future__ import annotations

from math import prod

from xgen.ir import DType, Graph, Node, Op, Value
from xgen.ir.ops import GemmAttrs, MatMulAttrs, ShapeAttrs
from xgen.passes.rewrite import origin, read_once_producer, sole_consumer


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


def split_linear(graph: Graph) -> None:
    """Split(Gemm(x, W, b)) along the columns, through a Reshape keeping them, becomes a Gemm per
    part, each with its columns of W and b."""
    for split in [n for n in graph.nodes if n.op is Op.SPLIT]:
        chain = _split_gemm(graph, split)
        if chain is not None:
            _split_columns(graph, split, chain)


def _split_gemm(graph: Graph, split: Node) -> list[Node] | None:
    """[Gemm] or [Gemm, Reshape] writing what split divides along the Gemm's columns, each
    read only by the next; None if split is not that."""
    x = split.inputs[0]
    if split.attrs.axis != len(x.shape) - 1 or len(split.inputs) != 1:
        return None
    users, producers = graph.consumers(), graph.producers()
    node = read_once_producer(graph, x, users, producers)
    chain = [node] if node is not None else []
    if node is not None and node.op is Op.RESHAPE:
        gemm = read_once_producer(graph, node.inputs[0], users, producers)
        keeps_columns = node.inputs[0].shape[-1] == x.shape[-1]
        chain = [gemm, node] if gemm is not None and keeps_columns else []
    if not chain or chain[0].op is not Op.GEMM:
        return None
    gemm = chain[0]
    plain = gemm.attrs.epilogue.is_plain and not gemm.attrs.trans_a
    constant = all(v.is_constant for v in gemm.inputs[1:])
    return chain if plain and constant else None


def _split_columns(graph: Graph, split: Node, chain: list[Node]) -> None:
    gemm = chain[0]
    a, w = gemm.inputs[:2]
    n = gemm.outputs[0].shape[-1]
    at = graph.nodes.index(split)
    start = 0
    for i, (size, out) in enumerate(zip(split.attrs.sizes, split.outputs, strict=True)):
        columns = slice(start, start + size)
        start += size
        part_w = w.data[columns] if gemm.attrs.trans_b else w.data[:, columns]
        inputs = [a, graph.constant(part_w, f"{w.name}_part{i}")]
        if len(gemm.inputs) == 3:  # a bias broadcast over columns stays whole
            c = gemm.inputs[2].data
            part_c = c[..., columns] if c.ndim and c.shape[-1] == n else c
            inputs.append(graph.constant(part_c, f"{gemm.inputs[2].name}_part{i}"))
        part = graph.insert_node(at, Op.GEMM, inputs, gemm.attrs, f"{gemm.name}_part{i}")
        part.origin = origin(gemm)
        at += 1
        if len(chain) == 2:
            part = graph.insert_node(at, Op.RESHAPE, part.outputs, ShapeAttrs(out.shape))
            at += 1
        part.outputs[0] = out
    for node in [*chain, split]:
        graph.nodes.remove(node)

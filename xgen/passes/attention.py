"""Fuse scaled dot-product attention into one Attention node.

Exporters spell the attention of every head as MatMul(Q, K^T), a Mul or Div by a constant (the
scale), an Add of the mask, a Softmax over the last axis, MatMul(., V) and a Transpose that puts
the heads back side by side. Unfused, the scores [..., Sq, Sk] are written and read again by
four kernels; the Attention kernel (kernels/attention.h) keeps a few query rows' scores in L1
from the first product through the softmax to the second. Runs after
fold_transposes_into_matmul, so the Transposes that split the heads are already perms of the
MatMuls, and become the Attention's. A Concat along the keys writing K or V (a decoder's KV
cache and the new token's keys) becomes parts that the kernel reads in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from xgen.ir import DType, Graph, Node, Op, Value
from xgen.ir.ops import AttentionAttrs, key_axis
from xgen.passes.rewrite import Producers, Users, origin, read_once_producer, sole_consumer

MAX_RANK = 4  # [batch, heads, sequence, features]: the kernel's two batch dims


@dataclass
class _Scores:
    """The part of the chain before the Softmax: scale * (Q @ K^T) [+ mask]."""

    product: Node  # the MatMul Q @ K^T
    operands: list[Value]  # Q and K^T, before any scaling or Transpose of theirs
    perms: list[tuple[int, ...]]  # what reads Q and K^T from them
    scale: float
    mask: Value | None
    nodes: list[Node]  # the operands' scalings, the product, the scaling and the mask Add


def fuse_attention(graph: Graph) -> None:
    for softmax in [n for n in graph.nodes if n.op is Op.SOFTMAX]:
        _fuse(graph, softmax)


def _fuse(graph: Graph, softmax: Node) -> None:
    users, producers = graph.consumers(), graph.producers()
    x = softmax.inputs[0]
    if softmax.attrs.axis != len(x.shape) - 1 or x.dtype is not DType.FLOAT32:
        return
    guard = _nan_guard(graph, softmax.outputs[0], users)
    probabilities = guard[-1].outputs[0] if guard else softmax.outputs[0]
    weighted = sole_consumer(graph, probabilities, users)
    if weighted is None or weighted.op is not Op.MATMUL or weighted.inputs[0] is not probabilities:
        return
    if weighted.attrs.a_perm not in ((), tuple(range(len(x.shape)))):
        return
    scores = _scores(graph, x, users, producers)
    if scores is None:
        return
    nodes = [*scores.nodes, softmax, *guard, weighted]
    output, out_perm = weighted.outputs[0], ()
    after = sole_consumer(graph, output, users)
    if after is not None and after.op is Op.TRANSPOSE:
        nodes.append(after)
        output, out_perm = after.outputs[0], after.attrs.perm
    q, k = scores.operands
    k_perm = _swap_last(scores.perms[1], len(k.shape))
    v, v_perm = weighted.inputs[1], weighted.attrs.b_perm
    k_parts, k_concat = _key_parts(graph, k, k_perm, users, producers)
    v_parts, v_concat = _key_parts(graph, v, v_perm, users, producers)
    nodes += k_concat + v_concat
    attrs = AttentionAttrs(
        scale=scores.scale,
        q_perm=scores.perms[0],
        k_perm=k_perm,
        v_perm=v_perm,
        out_perm=out_perm,
        masked=scores.mask is not None,
        nan_to_zero=bool(guard),
        k_parts=len(k_parts),
        v_parts=len(v_parts),
    )
    if not _fits_kernel(attrs, q, [*k_parts, *v_parts], output):
        return
    inputs = [q, *k_parts, *v_parts] + ([scores.mask] if scores.mask is not None else [])
    at = graph.nodes.index(weighted)
    fused = graph.insert_node(at, Op.ATTENTION, inputs, attrs, softmax.name)
    fused.outputs[0], fused.origin = output, origin(*nodes)
    for node in nodes:
        graph.nodes.remove(node)


def _nan_guard(graph: Graph, p: Value, users: Users) -> list[Node]:
    """[IsNaN, Where] if p is read only by Where(IsNaN(p), 0, p), else []."""
    readers = users.get(p, [])
    isnan = next((r for r in readers if r.op is Op.IS_NAN), None)
    where = sole_consumer(graph, isnan.outputs[0], users) if isnan is not None else None
    if (
        where is None
        or where.op is not Op.WHERE
        or len(readers) != 2
        or where not in readers
        or p in graph.outputs
        or where.inputs[0] is not isnan.outputs[0]
        or where.inputs[2] is not p
        or _scalar(where.inputs[1]) != 0.0
        or where.outputs[0].shape != p.shape
    ):
        return []
    return [isnan, where]


def _scores(graph: Graph, x: Value, users: Users, producers: Producers) -> _Scores | None:
    """The chain writing the Softmax's input x, if it is scale * (Q @ K^T) [+ mask]."""
    node = read_once_producer(graph, x, users, producers)
    if node is None or node.op is not Op.ADD:
        return _scaled_product(graph, x, users, producers)
    for i in (0, 1):
        mask = node.inputs[1 - i]
        inner = _scaled_product(graph, node.inputs[i], users, producers)
        fits = node.inputs[i].shape == x.shape and len(mask.shape) <= MAX_RANK
        if inner is not None and fits and mask.dtype is DType.FLOAT32:
            inner.mask = mask
            inner.nodes.append(node)
            return inner
    return None


def _scaled_product(graph: Graph, x: Value, users: Users, producers: Producers) -> _Scores | None:
    """The chain writing x, if it is Q @ K^T, maybe times or divided by a scalar constant."""
    node = read_once_producer(graph, x, users, producers)
    if node is None:
        return None
    if node.op is Op.MATMUL:
        return _product(graph, node, 1.0, [], users, producers)
    if node.op not in (Op.MUL, Op.DIV):
        return None
    for i in (0, 1) if node.op is Op.MUL else (0,):
        factor, product = node.inputs[1 - i], node.inputs[i]
        c = _scalar(factor)
        matmul = read_once_producer(graph, product, users, producers)
        is_product = matmul is not None and matmul.op is Op.MATMUL
        if c is not None and is_product and product.shape == x.shape:
            scale = c if node.op is Op.MUL else 1.0 / c
            return _product(graph, matmul, scale, [node], users, producers)
    return None


def _product(
    graph: Graph,
    matmul: Node,
    scale: float,
    after: list[Node],
    users: Users,
    producers: Producers,
) -> _Scores:
    """The scores of Q @ K^T times scale, the scalings after it in `after`: an operand that is
    itself a Mul by a scalar constant read only by the product (scaled_dot_product_attention's
    export scales Q and K^T by sqrt(scale) each) is read unscaled, its factor in the scale, and
    through the Transposes writing it, each read by the next alone."""
    operands, perms, before = [], [], []
    for value, perm in zip(matmul.inputs, (matmul.attrs.a_perm, matmul.attrs.b_perm), strict=True):
        mul = read_once_producer(graph, value, users, producers)
        for i in (0, 1):
            c = _scalar(mul.inputs[1 - i]) if mul is not None and mul.op is Op.MUL else None
            if c is not None and mul.inputs[i].shape == value.shape:
                value, scale = mul.inputs[i], scale * c
                before.append(mul)
                transpose = read_once_producer(graph, value, users, producers)
                while transpose is not None and transpose.op is Op.TRANSPOSE:
                    read = perm or tuple(range(len(value.shape)))
                    value, perm = transpose.inputs[0], tuple(transpose.attrs.perm[j] for j in read)
                    before.append(transpose)
                    transpose = read_once_producer(graph, value, users, producers)
                break
        operands.append(value)
        perms.append(perm)
    return _Scores(matmul, operands, perms, scale, None, [*before, matmul, *after])


def _scalar(value: Value) -> float | None:
    """The value of a constant holding one number."""
    data = value.data
    return float(data.ravel()[0]) if data is not None and data.size == 1 else None


def _swap_last(perm: tuple[int, ...], rank: int) -> tuple[int, ...]:
    """The perm reading K [..., Sk, D] from the one the product read K^T [..., D, Sk] with."""
    order = list(perm or range(rank))
    order[-2], order[-1] = order[-1], order[-2]
    return tuple(order)


def _key_parts(
    graph: Graph,
    x: Value,
    perm: tuple[int, ...],
    users: Users,
    producers: Producers,
) -> tuple[list[Value], list[Node]]:
    """K or V (x, read through perm) as parts: the inputs of the Concat along the keys writing
    it, read by the attention alone (a KV cache and the new token's keys: read in place, not
    copied), with that Concat; else [x] and no node."""
    concat = read_once_producer(graph, x, users, producers)
    if concat is None or concat.op is not Op.CONCAT:
        return [x], []
    if concat.attrs.axis != key_axis(perm, len(x.shape)):
        return [x], []
    return list(concat.inputs), [concat]


def _fits_kernel(
    attrs: AttentionAttrs, q: Value, keys_and_values: list[Value], output: Value
) -> bool:
    """What kernels/attention.h computes: float32 matrices with at most two batch dims, Q's rows
    contiguous (K and V are packed, any strides), no empty dim."""
    q_last = (attrs.q_perm or range(len(q.shape)))[-1]
    operands = [q, *keys_and_values]
    return (
        q_last == len(q.shape) - 1
        and all(2 <= len(x.shape) <= MAX_RANK for x in operands)
        and all(x.dtype is DType.FLOAT32 for x in operands)
        and all(d > 0 for x in [*operands, output] for d in x.shape)
    )

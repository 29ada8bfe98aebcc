"""passes/linear.py's split_linear on hand-built IR graphs: a Split of a Gemm's columns becomes a
Gemm per part, computing what the graph computed (reference before and after, and compiled),
and stays where the Gemm's output is read whole or split along another axis."""

from __future__ import annotations

import numpy as np
import pytest
from rewrite_check import checked_rewrite

from xgen.ir import DType, Graph, Op, Value
from xgen.ir import ops as O
from xgen.passes.linear import split_linear

RNG = np.random.default_rng(5)


def gemm(g: Graph, x: Value, n: int, trans_b: bool = False, bias: tuple[int, ...] = ()) -> Value:
    k = x.shape[1]
    w = RNG.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    inputs = [x, g.constant(w, "w")]
    if bias:
        inputs.append(g.constant(RNG.standard_normal(bias).astype(np.float32), "b"))
    attrs = O.GemmAttrs(alpha=0.5, beta=2.0, trans_a=False, trans_b=trans_b)
    return g.add_node(Op.GEMM, inputs, attrs)[0]


def split(g: Graph, y: Value, axis: int, sizes: tuple[int, ...]) -> list[Value]:
    return g.add_node(Op.SPLIT, [y], O.SplitAttrs(axis, sizes))


def rewritten(g: Graph) -> Graph:
    return checked_rewrite(g, split_linear)


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("bias", [(), (12,), (1,), (5, 12)])
def test_a_split_of_gemm_columns_becomes_a_gemm_per_part(trans_b, bias):
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (5, 8))
    g.outputs = split(g, gemm(g, x, 12, trans_b, bias), 1, (3, 4, 5))
    after = rewritten(g)
    assert [n.op for n in after.nodes] == [Op.GEMM] * 3
    assert [n.outputs[0].shape for n in after.nodes] == [(5, 3), (5, 4), (5, 5)]


def test_the_split_reads_through_a_reshape_that_keeps_the_columns():
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (6, 8))
    y = g.add_node(Op.RESHAPE, [gemm(g, x, 9, bias=(9,))], O.ShapeAttrs((1, 6, 9)))[0]
    g.outputs = [g.add_node(Op.RELU, [part])[0] for part in split(g, y, 2, (3, 3, 3))]
    after = rewritten(g)
    assert [n.op for n in after.nodes] == [Op.GEMM, Op.RESHAPE] * 3 + [Op.RELU] * 3


def test_the_split_stays_where_the_gemm_output_is_read_whole_or_split_otherwise():
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (6, 8))
    y = gemm(g, x, 10)
    read_twice = [*split(g, y, 1, (5, 5)), g.add_node(Op.RELU, [y])[0]]
    by_rows = split(g, gemm(g, x, 10), 0, (2, 4))
    mixed = g.add_node(Op.RESHAPE, [gemm(g, x, 10)], O.ShapeAttrs((6, 2, 5)))[0]
    across = split(g, mixed, 2, (2, 3))  # the Reshape moved the columns
    g.outputs = [*read_twice, *by_rows, *across]
    assert [n.op for n in rewritten(g).nodes] == [n.op for n in g.nodes]

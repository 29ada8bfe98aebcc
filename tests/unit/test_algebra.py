"""passes/algebra.py on hand-built IR graphs: each rewrite computes what the graph computed (the
numpy reference before and after, and the compiled graph against the reference), removes what it
should, and keeps what it must (graph outputs, values read elsewhere, shape-changing nodes)."""

from __future__ import annotations

import numpy as np
import pytest
from rewrite_check import checked_rewrite

from xgen.ir import DType, Graph, Op, Value
from xgen.ir import ops as O
from xgen.passes.algebra import simplify_algebra

RNG = np.random.default_rng(11)


def const(g: Graph, *shape: int) -> Value:
    return g.constant(RNG.uniform(0.5, 1.5, shape).astype(np.float32), "c")


def simplified(g: Graph) -> Graph:
    return checked_rewrite(g, simplify_algebra, tol=1e-6)


def ops(g: Graph) -> list[Op]:
    return [n.op for n in g.nodes]


@pytest.mark.parametrize("op", [Op.MUL, Op.ADD])
def test_a_chain_of_constant_products_or_sums_folds_into_one_node(op):
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 3, 4))
    y = g.add_node(op, [x, const(g, 4)])[0]
    y = g.add_node(op, [const(g, 3, 1), y])[0]  # the constant on either side, broadcasting
    y = g.add_node(op, [y, const(g)])[0]
    g.outputs = [g.add_node(Op.RELU, [y])[0]]
    after = simplified(g)
    assert ops(after) == [op, Op.RELU]
    assert after.nodes[0].origin == (op.value,) * 3


def test_a_fold_keeps_what_others_read_and_mixed_ops_apart():
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (5,))
    shared = g.add_node(Op.MUL, [x, const(g, 5)])[0]
    scaled = g.add_node(Op.MUL, [shared, const(g, 5)])[0]  # shared is read twice: no fold
    mixed = g.add_node(Op.ADD, [scaled, const(g, 5)])[0]  # Mul then Add: no fold
    g.outputs = [g.add_node(Op.ADD, [mixed, shared])[0]]
    assert ops(simplified(g)) == ops(g)


def test_identity_and_shape_keeping_nodes_go_unless_they_write_an_output():
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 6))
    y = g.add_node(Op.IDENTITY, [x])[0]
    y = g.add_node(Op.EXPAND, [y], O.ShapeAttrs((2, 6)))[0]
    y = g.add_node(Op.RESHAPE, [y], O.ShapeAttrs((2, 6)))[0]
    y = g.add_node(Op.SIGMOID, [y])[0]
    kept = g.add_node(Op.IDENTITY, [y])[0]
    g.outputs = [kept]
    assert ops(simplified(g)) == [Op.SIGMOID, Op.IDENTITY]


def test_a_reshape_of_a_reshape_reads_the_first_ones_input():
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 3, 4))
    flat = g.add_node(Op.RESHAPE, [x], O.ShapeAttrs((6, 4)))[0]
    square = g.add_node(Op.RESHAPE, [flat], O.ShapeAttrs((4, 6)))[0]
    g.outputs = [g.add_node(Op.TANH, [square])[0]]
    after = simplified(g)
    assert ops(after) == [Op.RESHAPE, Op.TANH]
    assert after.nodes[0].inputs[0] is after.inputs[0]


def test_an_expand_that_broadcasting_readers_do_not_need_goes():
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (3, 1))
    z = g.add_input("z", DType.FLOAT32, (3, 4))
    wide = g.add_node(Op.EXPAND, [x], O.ShapeAttrs((3, 4)))[0]
    total = g.add_node(Op.ADD, [wide, z])[0]  # (3, 1) + (3, 4) is (3, 4) anyway
    g.outputs = [g.add_node(Op.MUL, [total, wide])[0]]
    assert ops(simplified(g)) == [Op.ADD, Op.MUL]


def test_an_expand_stays_where_a_reader_needs_its_shape():
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (3, 1))
    wide = g.add_node(Op.EXPAND, [x], O.ShapeAttrs((3, 4)))[0]
    summed = g.add_node(Op.ADD, [wide, const(g, 1)])[0]  # (3, 1) without it
    g.outputs = [summed, g.add_node(Op.RELU, [wide])[0]]
    assert ops(simplified(g)) == ops(g)

"""The static memory plan: arena reuse by lifetime, aliases, caller buffers, end-of-run copies."""

from __future__ import annotations

import numpy as np
import pytest

import xgen
from xgen import reference
from xgen.ir import DType, Graph, Op
from xgen.ir import ops as O
from xgen.passes.memory import ALIGNMENT, Storage, plan_memory


def chain(n: int, shape=(4, 100)) -> Graph:
    g = Graph()
    v = g.add_input("x", DType.FLOAT32, shape)
    for _ in range(n):
        (v,) = g.add_node(Op.RELU, [v])
    g.outputs = [v]
    return g


def arena_intervals(graph: Graph):
    """(first write, last read, offset, size) of every arena buffer, recomputed independently."""
    plan = plan_memory(graph)
    spans: dict = {}
    for i, node in enumerate(graph.nodes):
        for v in node.outputs:
            loc = plan[v]
            if loc.storage is Storage.ARENA:
                first, last = spans.get(loc.owner, (i, i))
                spans[loc.owner] = (min(first, i), max(last, i))
        for v in node.inputs:
            loc = plan[v]
            if loc.storage is Storage.ARENA:
                first, last = spans[loc.owner]
                spans[loc.owner] = (first, max(last, i))
    return plan, [(a, b, plan[o].offset, o.type.nbytes) for o, (a, b) in spans.items()]


def test_chain_reuses_two_buffers() -> None:
    graph = chain(6)
    plan = plan_memory(graph)
    nbytes = 4 * 100 * 4
    assert plan.arena_bytes == 2 * nbytes  # ping-pong: each step reads one buffer, writes another
    assert plan.reused_bytes == 3 * nbytes  # 5 intermediates in the space of 2
    assert plan[graph.outputs[0]].storage is Storage.OUTPUT
    assert plan[graph.inputs[0]].storage is Storage.INPUT
    assert plan.copies == []


def test_live_buffers_never_overlap() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        g = Graph()
        values = [g.add_input("x", DType.FLOAT32, (8, 8))]
        for _ in range(15):  # a random DAG of adds, reshapes and slices
            a, b = rng.choice(len(values), 2)
            x, y = values[a], values[b]
            if x.shape == y.shape and rng.random() < 0.7:
                (v,) = g.add_node(Op.ADD, [x, y])
            elif rng.random() < 0.5:
                (v,) = g.add_node(Op.RESHAPE, [x], O.ShapeAttrs((x.type.size,)))
            else:
                half = tuple(max(d // 2, 1) for d in x.shape)  # odd-sized leading corner
                ones = (1,) * len(x.shape)
                (v,) = g.add_node(Op.SLICE, [x], O.SliceAttrs((0,) * len(x.shape), ones, half))
            values.append(v)
        g.outputs = [values[-1], values[len(values) // 2]]
        plan, spans = arena_intervals(g)
        for i, (f1, l1, o1, s1) in enumerate(spans):
            assert o1 % ALIGNMENT == 0 and o1 + s1 <= plan.arena_bytes
            for f2, l2, o2, s2 in spans[i + 1 :]:
                if f1 <= l2 and f2 <= l1:  # both live at some node
                    assert o1 + s1 <= o2 or o2 + s2 <= o1


def test_reshape_is_an_alias_of_its_input() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 6))
    (r,) = g.add_node(Op.RELU, [x])
    (flat,) = g.add_node(Op.RESHAPE, [r], O.ShapeAttrs((12,)))
    (e,) = g.add_node(Op.EXP, [flat])
    g.outputs = [e]
    plan = plan_memory(g)
    assert plan[flat] == plan[r] and plan[flat].owner is r
    assert plan[r].storage is Storage.ARENA


def test_output_alias_computes_into_the_caller_buffer() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 6))
    (r,) = g.add_node(Op.RELU, [x])
    (flat,) = g.add_node(Op.RESHAPE, [r], O.ShapeAttrs((12,)))
    g.outputs = [flat]
    plan = plan_memory(g)
    assert plan[r].storage is Storage.OUTPUT and plan[r].offset == 0
    assert plan.arena_bytes == 0 and plan.copies == []


@pytest.mark.parametrize("kind", ["constant", "input_alias", "twice", "two_aliases"])
def test_outputs_that_need_a_copy(kind: str) -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (3,))
    (r,) = g.add_node(Op.RELU, [x])
    if kind == "constant":
        g.outputs = [r, g.constant(np.ones(3, np.float32))]
    elif kind == "input_alias":
        (ident,) = g.add_node(Op.IDENTITY, [x])
        g.outputs = [r, ident]
    elif kind == "twice":
        g.outputs = [r, r]
    else:
        (alias,) = g.add_node(Op.RESHAPE, [r], O.ShapeAttrs((1, 3)))
        g.outputs = [r, alias]
    plan = plan_memory(g)
    assert [i for i, _ in plan.copies] == [1]
    assert plan[r].storage is Storage.OUTPUT and plan[r].offset == 0


def test_constants_live_in_the_weight_blob() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (3,))
    w = g.constant(np.arange(3, dtype=np.float32))
    (y,) = g.add_node(Op.MUL, [x, w])
    g.outputs = [y]
    plan = plan_memory(g)
    assert plan[w].storage is Storage.WEIGHT and plan.arena_bytes == 0


def stacked_views(source: str) -> tuple[Graph, list]:
    """Gathers of constant indices (one negative) along axis 0 of a [3, 2, 4] input or of an
    intermediate; each view read by a Relu, the last view also a graph output."""
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (3, 2, 4))
    stack = x if source == "input" else g.add_node(Op.NEG, [x])[0]
    views = [
        g.add_node(Op.GATHER, [stack, g.constant(np.array(i, np.int64))], O.AxisAttrs(0))[0]
        for i in (0, 2, -2)
    ]
    (flat,) = g.add_node(Op.RESHAPE, [views[1]], O.ShapeAttrs((8,)))  # a view of a view
    g.outputs = [*(g.add_node(Op.RELU, [v])[0] for v in [*views, flat]), views[2]]
    return g, [*views, flat]


@pytest.mark.parametrize("source", ["input", "arena"])
def test_a_gather_of_one_constant_index_along_axis_0_is_a_view(source: str) -> None:
    g, views = stacked_views(source)
    plan = plan_memory(g)
    row = 2 * 4 * 4
    assert [plan[v].view for v in views] == [0, 2 * row, row, 2 * row]  # last: the Reshape
    assert all(plan[v].owner is plan[views[0]].owner for v in views)
    assert [i for i, _ in plan.copies] == [4]  # a view never hosts its buffer: copied out
    x = np.arange(24, dtype=np.float32).reshape(3, 2, 4) - 11.5
    got = xgen.compile(g).run({"x": x})
    for name, want in reference.run(g, {"x": x}).items():
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def test_a_gather_that_is_no_view_keeps_its_kernel() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (3, 4))
    i = g.add_input("i", DType.INT64, ())
    by_input = g.add_node(Op.GATHER, [x, i], O.AxisAttrs(0))[0]
    by_column = g.add_node(Op.GATHER, [x, g.constant(np.array(1, np.int64))], O.AxisAttrs(1))[0]
    two_rows = g.add_node(Op.GATHER, [x, g.constant(np.array([0, 2], np.int64))], O.AxisAttrs(0))
    g.outputs = [by_input, by_column, two_rows[0]]
    plan = plan_memory(g)
    assert all(plan[v].owner is v for v in g.outputs)

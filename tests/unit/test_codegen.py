"""The C code generator on hand-built graphs: compiled results against the numpy reference.

Several ops share one graph (one output each) so that a test costs one C compile.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from xgen import reference
from xgen.codegen import lower
from xgen.codegen.cc import compile_shared
from xgen.codegen.emit import Footprint, Region, generate
from xgen.codegen.loops import simplify
from xgen.errors import InputError, UnsupportedOpError
from xgen.ir import DType, Graph, Op, Value
from xgen.ir import ops as O
from xgen.passes.memory import Storage
from xgen.runtime.model import CompiledModel

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XGEN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def build(graph: Graph) -> CompiledModel:
    generated = generate(graph)
    return CompiledModel(generated, compile_shared(generated.source))


def check(graph: Graph, feeds: dict[str, np.ndarray], rtol=1e-6, atol=1e-6) -> None:
    """Compiled outputs equal the reference's: same dtype and shape, values within tolerance."""
    actual = build(graph).run(feeds)
    expected = reference.run(graph, feeds)
    for name, want in expected.items():
        got = actual[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)


def rand(shape, dtype=np.float32, low=-3.0, high=3.0) -> np.ndarray:
    if np.dtype(dtype).kind in "iub":
        return RNG.integers(low, high, size=shape, endpoint=True).astype(dtype)
    return RNG.uniform(low, high, size=shape).astype(dtype)


def graph_of(*inputs: tuple[str, DType, tuple[int, ...]]) -> tuple[Graph, list[Value]]:
    g = Graph()
    return g, [g.add_input(name, dtype, shape) for name, dtype, shape in inputs]


# ---- loop nests --------------------------------------------------------------------------------


def test_simplify_merges_contiguous_dims_and_drops_ones() -> None:
    # a[64,56,56] + b[64,1,1]: the two spatial dims merge; b broadcasts along them
    dims, strides = simplify((64, 56, 56), [(3136, 56, 1), (1, 0, 0)])
    assert dims == [64, 3136] and strides == [[3136, 1], [1, 0]]
    dims, strides = simplify((1, 5, 1, 7), [(35, 7, 7, 1), (35, 7, 7, 1)])
    assert dims == [35] and strides == [[1], [1]]


def test_every_team_size_computes_the_same() -> None:
    """Each node's work is split over the thread team (xg_share) and nodes are separated by
    barriers: 1, 2 and 3 threads give the reference's result, identical to each other (every
    element is computed by one thread the same way whatever the split)."""
    g, (x, a, b) = graph_of(
        ("x", DType.FLOAT32, (3, 32, 40, 40)),
        ("a", DType.FLOAT32, (3, 40, 40)),
        ("b", DType.FLOAT32, (3, 40, 24)),
    )
    (relu,) = g.add_node(Op.RELU, [x])  # a loop nest over the first two dims together
    (nhwc,) = g.add_node(Op.TRANSPOSE, [relu], O.TransposeAttrs((0, 2, 3, 1)))  # tiled copy
    (sums,) = g.add_node(Op.REDUCE_SUM, [nhwc], O.ReduceAttrs((1, 3), False))  # two passes
    w = g.constant(rand((16, 32, 3, 3)))
    conv_attrs = O.ConvAttrs((2, 2), (1, 1, 1, 1), (1, 1), 1)
    (conv,) = g.add_node(Op.CONV, [x, w], conv_attrs)  # im2col, then the GEMM
    # batched, both operands packed at run time
    (product,) = g.add_node(Op.MATMUL, [a, b], O.MatMulAttrs())
    g.outputs = [relu, nhwc, sums, conv, product]
    feeds = {v.name: rand(v.shape) for v in (x, a, b)}
    expected = reference.run(g, feeds)
    model = build(g)
    runs = []
    for threads in (1, 2, 3):
        model.threads = threads
        runs.append(model.run(feeds))
    for name, want in expected.items():
        np.testing.assert_allclose(runs[0][name], want, rtol=1e-4, atol=1e-4, err_msg=name)
        for run in runs[1:]:
            np.testing.assert_array_equal(run[name], runs[0][name], err_msg=name)


def node_ends(source: str) -> list[str]:
    """The end of each node with code, in order: END (a barrier) or NO_WAIT."""
    body = source.split("xgen_run")[-1]
    return [line.strip()[8:].split("(")[0] for line in body.splitlines() if "XG_NODE_" in line]


def test_a_node_independent_of_the_ones_before_runs_without_a_barrier() -> None:
    """Threads go on to the next node at once where it reads and writes none of the bytes the
    nodes since the last barrier write or read; results stay the reference's on 1-3 threads."""
    g, (x, y) = graph_of(("x", DType.FLOAT32, (64, 96)), ("y", DType.FLOAT32, (64, 96)))
    (a,) = g.add_node(Op.RELU, [x])
    (b,) = g.add_node(Op.SIGMOID, [y])  # reads neither a nor its bytes: no wait after a
    (c,) = g.add_node(Op.TANH, [x])  # nor b's: no wait after b either
    (d,) = g.add_node(Op.ADD, [a, c])  # reads a and c: a barrier before it
    w = g.constant(rand((8, 1, 3, 3)))
    image = O.ConvAttrs((1, 1), (1, 1, 1, 1), (1, 1), 1)
    (e,) = g.add_node(Op.RESHAPE, [y], O.ShapeAttrs((1, 1, 64, 96)))
    (f,) = g.add_node(Op.CONV, [e, w], image)  # independent of d: no wait after d
    # the second conv uses the scratch area too (its im2col): a barrier before it
    (h,) = g.add_node(Op.CONV, [e, w], image)
    g.outputs = [b, d, f, h]
    model = build(g)
    assert node_ends(model.source) == ["NO_WAIT", "NO_WAIT", "END", "NO_WAIT", "END", "END"]
    feeds = {v.name: rand(v.shape) for v in (x, y)}
    expected = reference.run(g, feeds)
    for threads in (1, 2, 3):
        model.threads = threads
        for name, got in model.run(feeds).items():
            np.testing.assert_allclose(got, expected[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_footprints_see_every_hazard() -> None:
    arena = lambda lo, hi: Region(Storage.ARENA, lo, hi)  # noqa: E731
    output = Region(Storage.OUTPUT, 0, 1)
    first = Footprint(reads=(arena(0, 64),), writes=(arena(64, 128),), scratch=False)
    assert Footprint((arena(128, 192),), (arena(192, 256),), False).independent_of(first)
    assert not Footprint((arena(100, 101),), (), False).independent_of(first)  # reads its result
    assert not Footprint((), (arena(32, 96),), False).independent_of(first)  # overwrites its input
    assert not Footprint((), (arena(120, 130),), False).independent_of(first)  # and its result
    assert not Footprint((), (), True).independent_of(replace(first, scratch=True))
    assert Footprint((), (output,), False).independent_of(first)
    assert not Footprint((), (output,), False).independent_of(Footprint((output,), (), False))


# ---- elementwise -------------------------------------------------------------------------------

FLOAT_UNARY = [
    (Op.RELU, None), (Op.SIGMOID, None), (Op.TANH, None), (Op.ERF, None), (Op.EXP, None),
    (Op.NEG, None), (Op.ABS, None), (Op.FLOOR, None), (Op.CEIL, None), (Op.ROUND, None),
    (Op.SIGN, None), (Op.SIN, None), (Op.COS, None), (Op.SOFTPLUS, None), (Op.SOFTSIGN, None),
    (Op.HARD_SWISH, None), (Op.IS_NAN, None), (Op.GELU, O.GeluAttrs(False)),
    (Op.GELU, O.GeluAttrs(True)), (Op.HARD_SIGMOID, O.AlphaBetaAttrs(0.2, 0.5)),
    (Op.LEAKY_RELU, O.AlphaBetaAttrs(0.1)), (Op.ELU, O.AlphaBetaAttrs(1.5)),
    (Op.CLIP, O.ClipAttrs(-1.0, 2.0)), (Op.CLIP, O.ClipAttrs(float("-inf"), 0.5)),
]  # fmt: skip


def test_float_unary_ops() -> None:
    g, (x, pos) = graph_of(("x", DType.FLOAT32, (3, 37)), ("pos", DType.FLOAT32, (37,)))
    outs = [g.add_node(op, [x], attrs)[0] for op, attrs in FLOAT_UNARY]
    outs += [g.add_node(op, [pos])[0] for op in (Op.SQRT, Op.LOG, Op.RECIPROCAL)]
    g.outputs = outs
    xs = rand((3, 37))
    xs[0, :6] = [np.nan, np.inf, -np.inf, 0.5, -2.5, 1.5]  # specials; Round is half to even
    check(g, {"x": xs, "pos": rand((37,), low=0.1, high=9)}, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8])
def test_int_unary_ops(dtype) -> None:
    d = DType.from_numpy(dtype)
    g, (x,) = graph_of(("x", d, (2, 9)))
    ops = [(Op.RELU, None), (Op.NEG, None), (Op.ABS, None), (Op.SIGN, None),
           (Op.CLIP, O.ClipAttrs(-2.0, 3.0))]  # fmt: skip
    g.outputs = [g.add_node(op, [x], attrs)[0] for op, attrs in ops]
    check(g, {"x": rand((2, 9), dtype, -5, 5)})


BROADCASTS = [
    ((7,), (7,)), ((3, 5), (5,)), ((3, 5), (3, 1)), ((1, 4, 1), (3, 1, 5)),
    ((2, 3, 4, 5), (3, 1, 1)), ((2, 1, 3, 1, 5), (4, 1, 6, 1)), ((), (2, 3)), ((6, 1), ()),
]  # fmt: skip
FLOAT_BINARY = [Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAX, Op.MIN, Op.PRELU, Op.EQUAL,
                Op.LESS, Op.LESS_OR_EQUAL, Op.GREATER, Op.GREATER_OR_EQUAL]  # fmt: skip


@pytest.mark.parametrize("a_shape,b_shape", BROADCASTS)
def test_float_binary_broadcasting(a_shape, b_shape) -> None:
    g, (a, b) = graph_of(("a", DType.FLOAT32, a_shape), ("b", DType.FLOAT32, b_shape))
    g.outputs = [g.add_node(op, [a, b])[0] for op in FLOAT_BINARY]
    g.outputs += [g.add_node(Op.MOD, [a, b], O.ModAttrs(f))[0] for f in (True, False)]
    base = np.abs(rand(a_shape)) + 0.5  # Pow of a positive base
    check(g, {"a": base * np.sign(rand(a_shape)), "b": rand(b_shape)}, rtol=1e-5)


def test_nan_propagates_through_max_and_min() -> None:
    g, (a, b) = graph_of(("a", DType.FLOAT32, (4,)), ("b", DType.FLOAT32, (4,)))
    g.outputs = [g.add_node(op, [a, b])[0] for op in (Op.MAX, Op.MIN)]
    nan = np.float32(np.nan)
    check(
        g,
        {"a": np.array([nan, 1, nan, 2], np.float32), "b": np.array([1, nan, nan, 3], np.float32)},
    )


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint8])
def test_int_binary_ops(dtype) -> None:
    d = DType.from_numpy(dtype)
    g, (a, b) = graph_of(("a", d, (3, 11)), ("b", d, (11,)))
    ops = [Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAX, Op.MIN, Op.EQUAL, Op.LESS, Op.GREATER]
    g.outputs = [g.add_node(op, [a, b])[0] for op in ops]
    g.outputs += [g.add_node(Op.MOD, [a, b], O.ModAttrs(f))[0] for f in (True, False)]
    low = 0 if dtype == np.uint8 else -9
    divisor = rand((11,), dtype, low, 9)
    divisor[divisor == 0] = 3  # division by zero is undefined in ONNX
    check(g, {"a": rand((3, 11), dtype, low, 9), "b": divisor})


def test_int_pow_and_division_truncate() -> None:
    g, (a, b) = graph_of(("a", DType.INT64, (6,)), ("b", DType.INT64, (6,)))
    g.outputs = [g.add_node(op, [a, b])[0] for op in (Op.DIV, Op.POW)]
    a_vals = np.array([7, -7, 7, -7, 3, -2], np.int64)
    b_vals = np.array([2, 2, -2, -2, 4, 3], np.int64)
    result = build(g).run({"a": a_vals, "b": b_vals})
    np.testing.assert_array_equal(result[g.outputs[0].name], [3, -3, -3, 3, 0, 0])
    # a negative exponent truncates like onnxruntime's pow: 7 ** -2 -> 0
    np.testing.assert_array_equal(result[g.outputs[1].name], [49, 49, 0, 0, 81, -8])


def test_logical_ops_and_where() -> None:
    g, (p, q, x, y) = graph_of(
        ("p", DType.BOOL, (2, 5)), ("q", DType.BOOL, (5,)),
        ("x", DType.FLOAT32, (2, 1)), ("y", DType.FLOAT32, (5,)),
    )  # fmt: skip
    g.outputs = [g.add_node(op, [p, q])[0] for op in (Op.AND, Op.OR, Op.XOR, Op.EQUAL)]
    g.outputs += [g.add_node(Op.NOT, [p])[0], g.add_node(Op.WHERE, [p, x, y])[0]]
    check(g, {"p": rand((2, 5), np.bool_, 0, 1), "q": rand((5,), np.bool_, 0, 1),
              "x": rand((2, 1)), "y": rand((5,))})  # fmt: skip


CASTS = [DType.FLOAT32, DType.INT64, DType.INT32, DType.INT8, DType.UINT8, DType.BOOL]


@pytest.mark.parametrize("src", CASTS)
def test_cast_matrix(src: DType) -> None:
    g, (x,) = graph_of(("x", src, (13,)))
    g.outputs = [g.add_node(Op.CAST, [x], O.CastAttrs(to))[0] for to in CASTS]
    if src.is_float:
        data = np.array([-2.7, -1.5, -0.5, 0, 0.4, 0.5, 1.5, 2.9, 100.7, -100.2, 7, 0, 3],
                        np.float32)  # fmt: skip
    else:
        data = rand(
            (13,),
            src.numpy,
            0 if src in (DType.UINT8, DType.BOOL) else -100,
            1 if src is DType.BOOL else 100,
        )
    check(g, {"x": data})


# ---- data movement -----------------------------------------------------------------------------


def test_expand_tile_transpose() -> None:
    g, (x, v) = graph_of(("x", DType.FLOAT32, (2, 3, 1, 5)), ("v", DType.INT32, (3, 1)))
    g.outputs = [
        g.add_node(Op.EXPAND, [x], O.ShapeAttrs((4, 2, 3, 7, 5)))[0],
        g.add_node(Op.EXPAND, [v], O.ShapeAttrs((3, 6)))[0],
        g.add_node(Op.TILE, [x], O.TileAttrs((2, 1, 3, 2)))[0],
        g.add_node(Op.TRANSPOSE, [x], O.TransposeAttrs((3, 0, 2, 1)))[0],
        g.add_node(Op.TRANSPOSE, [v], O.TransposeAttrs((1, 0)))[0],
    ]
    check(g, {"x": rand((2, 3, 1, 5)), "v": rand((3, 1), np.int32, -50, 50)})


def test_slices_with_steps() -> None:
    g, (x,) = graph_of(("x", DType.FLOAT32, (5, 6, 7)))
    g.outputs = [
        g.add_node(Op.SLICE, [x], O.SliceAttrs((1, 0, 6), (2, 1, -1), (2, 6, 7)))[0],
        g.add_node(Op.SLICE, [x], O.SliceAttrs((4, 5, 2), (-3, -2, 3), (2, 3, 2)))[0],
    ]
    check(g, {"x": rand((5, 6, 7))})


def test_concat_and_split() -> None:
    g, (a, b, c) = graph_of(
        ("a", DType.INT64, (2, 3, 4)), ("b", DType.INT64, (2, 1, 4)), ("c", DType.INT64, (2, 5, 4))
    )
    (cat,) = g.add_node(Op.CONCAT, [a, b, c], O.AxisAttrs(1))
    (cat0,) = g.add_node(Op.CONCAT, [a, a], O.AxisAttrs(0))
    parts = g.add_node(Op.SPLIT, [cat], O.SplitAttrs(2, (1, 3)))
    g.outputs = [cat, cat0, *parts]
    check(g, {n: rand(s, np.int64, -9, 9) for n, s in (("a", (2, 3, 4)), ("b", (2, 1, 4)),
                                                       ("c", (2, 5, 4)))})  # fmt: skip


@pytest.mark.parametrize("mode", list(O.PadMode))
def test_pad_modes(mode: O.PadMode) -> None:
    g, (x, y) = graph_of(("x", DType.FLOAT32, (3, 4, 5)), ("y", DType.INT8, (7,)))
    g.outputs = [
        g.add_node(Op.PAD, [x], O.PadAttrs((1, 0, 2, 2, 1, 3), mode, 1.5))[0],
        g.add_node(Op.PAD, [x], O.PadAttrs((0, -1, 2, 1, 2, -1), mode, 0.0))[0],
        g.add_node(Op.PAD, [y], O.PadAttrs((3, 2), mode, -4.0))[0],
    ]
    check(g, {"x": rand((3, 4, 5)), "y": rand((7,), np.int8, -9, 9)})


@pytest.mark.parametrize("idx_dtype", [DType.INT64, DType.INT32])
def test_gather_negative_and_out_of_range_indices(idx_dtype: DType) -> None:
    g, (x, i) = graph_of(("x", DType.FLOAT32, (4, 5, 3)), ("i", idx_dtype, (2, 3)))
    g.outputs = [g.add_node(Op.GATHER, [x, i], O.AxisAttrs(1))[0]]
    indices = np.array([[0, -1, 4], [-5, 2, 2]], idx_dtype.numpy)
    check(g, {"x": rand((4, 5, 3)), "i": indices})
    model = build(g)
    with pytest.raises(InputError, match=r"Gather.*outside \[-5, 5\)"):
        model.run({"x": rand((4, 5, 3)), "i": np.array([[0, 5, 1], [0, 0, 0]], idx_dtype.numpy)})


def test_aliases_and_output_copies() -> None:
    g, (x,) = graph_of(("x", DType.FLOAT32, (2, 6)))
    (r,) = g.add_node(Op.RELU, [x])
    (flat,) = g.add_node(Op.RESHAPE, [r], O.ShapeAttrs((3, 4)))
    (ident,) = g.add_node(Op.IDENTITY, [x])
    g.outputs = [flat, r, ident, g.constant(np.arange(4, dtype=np.int32)), flat]
    source = generate(g).source
    assert "an alias: no code" in source and source.count("xg_copy(outputs[") == 4
    check(g, {"x": rand((2, 6))})


# ---- the generated source ----------------------------------------------------------------------


def test_source_is_deterministic_and_weights_are_not_literals() -> None:
    def make() -> Graph:
        g, (x,) = graph_of(("x", DType.FLOAT32, (64,)))
        w = g.constant(np.linspace(0.123, 9.87, 64, dtype=np.float32), "w")
        (y,) = g.add_node(Op.MUL, [x, w], name="scale")
        g.outputs = [y]
        return g

    first, second = generate(make()), generate(make())
    assert first.source == second.source and first.weights == second.weights
    assert len(first.weights) == 64 * 4 and "0.123" not in first.source
    w = np.frombuffer(first.weights, np.float32)
    np.testing.assert_array_equal(w, np.linspace(0.123, 9.87, 64, dtype=np.float32))
    assert (
        "/* scale: float32[64] scale_out0 <- Mul(float32[64] x, float32[64] w) */" in first.source
    )
    check(make(), {"x": rand((64,))})


def test_equal_constants_are_stored_once_and_aligned() -> None:
    g, (x,) = graph_of(("x", DType.FLOAT32, (5,)))
    a, b = (g.constant(np.full(5, 2.5, np.float32)) for _ in range(2))
    c = g.constant(np.arange(5, dtype=np.float32))
    (y,) = g.add_node(Op.MUL, [x, a])
    (z,) = g.add_node(Op.ADD, [y, b])
    g.outputs = [g.add_node(Op.SUB, [z, c])[0]]
    generated = generate(g)
    assert len(generated.weights) == 64 + 5 * 4  # a and b share a slice; c starts 64 bytes on
    assert "weights + 64" in generated.source
    check(g, {"x": rand((5,))})


def test_op_without_lowering_names_op_and_node(monkeypatch) -> None:
    monkeypatch.delitem(lower.LOWERINGS, Op.TANH)
    g, (x,) = graph_of(("x", DType.FLOAT32, (3,)))
    g.outputs = [g.add_node(Op.TANH, [x], name="act7")[0]]
    with pytest.raises(UnsupportedOpError, match="'Tanh' at node 'act7'.*no lowering"):
        generate(g)


def test_float_only_op_on_ints_is_unsupported() -> None:
    g, (x,) = graph_of(("x", DType.INT32, (3,)))
    g.outputs = [g.add_node(Op.EXP, [x], name="e")[0]]
    with pytest.raises(UnsupportedOpError, match="'Exp' at node 'e'.*int32"):
        generate(g)

"""Graph passes: BatchNormalization folding and fused epilogues, on hand-built IR graphs.

Each rewrite is checked numerically (the numpy reference of the rewritten graph against that of
the original) and structurally (what was absorbed, and what must not be).
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest

import xgen
from xgen import passes, reference
from xgen.errors import ShapeError
from xgen.ir import DType, Graph, Op, Value
from xgen.ir import ops as O
from xgen.ir.verify import VerificationError, verify
from xgen.passes.epilogue import fuse_epilogues
from xgen.passes.fold_batch_norm import fold_batch_norm
from xgen.passes.gelu import fuse_gelu
from xgen.passes.transpose import collapse_reshaped_transposes

RNG = np.random.default_rng(3)
CONV = O.ConvAttrs(strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)


def const(g: Graph, *shape: int, low: float = -1.0) -> Value:
    return g.constant(RNG.uniform(low, 1.0, shape).astype(np.float32), "c")


def conv(g: Graph, x: Value, cout: int = 6, bias: bool = True) -> Value:
    cin = x.shape[1]
    inputs = [x, const(g, cout, cin, 3, 3)] + ([const(g, cout)] if bias else [])
    return g.add_node(Op.CONV, inputs, CONV)[0]


def batch_norm(g: Graph, y: Value) -> Value:
    c = y.shape[1]
    stats = [const(g, c), const(g, c), const(g, c), const(g, c, low=0.1)]  # var > 0
    return g.add_node(Op.BATCH_NORM, [y, *stats], O.EpsilonAttrs(1e-3))[0]


def feeds(g: Graph) -> dict[str, np.ndarray]:
    return {v.name: RNG.uniform(-1, 1, v.shape).astype(np.float32) for v in g.inputs}


def assert_same_function(before: Graph, after: Graph, inputs: dict[str, np.ndarray]) -> None:
    want, got = reference.run(before, inputs), reference.run(after, inputs)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)


def rewritten(g: Graph, run_pass) -> Graph:
    after = copy.deepcopy(g)
    run_pass(after)
    verify(after, after=run_pass.__name__)
    return after


@pytest.mark.parametrize("bias", [True, False])
def test_batch_norm_folds_into_conv(bias: bool) -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 5, 9, 7))
    g.outputs = [g.add_node(Op.RELU, [batch_norm(g, conv(g, x, bias=bias))])[0]]
    after = rewritten(g, fold_batch_norm)
    assert after.op_counts() == {"Conv": 1, "Relu": 1}
    assert_same_function(g, after, feeds(g))


def test_batch_norm_kept_when_conv_output_is_read_elsewhere() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (1, 3, 8, 8))
    y = conv(g, x)
    g.outputs = [batch_norm(g, y), y]
    assert rewritten(g, fold_batch_norm).op_counts() == g.op_counts()


def test_residual_and_relu_fuse_into_conv() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 4, 9, 9))
    skip = conv(g, x)  # computed before the fused conv
    y = conv(g, x)
    (s,) = g.add_node(Op.ADD, [skip, y])
    g.outputs = [g.add_node(Op.RELU, [s])[0]]
    after = rewritten(g, fuse_epilogues)
    assert after.op_counts() == {"Conv": 2}
    fused = after.nodes[-1]
    assert fused.attrs.epilogue == O.Epilogue(O.Activation.RELU, residual=True)
    assert fused.inputs[-1] is after.nodes[0].outputs[0]
    assert_same_function(g, after, feeds(g))


def test_clip_fuses_but_no_add_after_an_activation() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (1, 3, 8, 8))
    r = g.add_input("r", DType.FLOAT32, (1, 6, 4, 4))
    (c,) = g.add_node(Op.CLIP, [conv(g, x)], O.ClipAttrs(0.0, 6.0))
    g.outputs = [g.add_node(Op.ADD, [c, r])[0]]  # add(clip(conv)) is not clip(conv + r)
    after = rewritten(g, fuse_epilogues)
    assert after.op_counts() == {"Conv": 1, "Add": 1}
    assert after.nodes[0].attrs.epilogue == O.Epilogue(O.Activation.CLIP, 0.0, 6.0)
    assert_same_function(g, after, feeds(g))


def test_no_fusion_of_a_residual_computed_later_or_broadcast() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (1, 3, 8, 8))
    y = conv(g, x)
    (later,) = g.add_node(Op.SIGMOID, [conv(g, x)])  # defined after y: y's conv cannot read it
    (a,) = g.add_node(Op.ADD, [y, later])
    z = conv(g, x)
    (b,) = g.add_node(Op.ADD, [z, const(g, 6, 1, 1)])  # broadcast: not a residual
    g.outputs = [a, b]
    assert rewritten(g, fuse_epilogues).op_counts() == g.op_counts()


def test_no_fusion_when_the_output_is_read_twice() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (1, 3, 8, 8))
    y = conv(g, x)
    g.outputs = [g.add_node(Op.RELU, [y])[0], y]
    assert rewritten(g, fuse_epilogues).op_counts() == g.op_counts()


def test_gemm_bias_residual_relu_compiled() -> None:
    g = Graph()
    a = g.add_input("a", DType.FLOAT32, (7, 300))
    r = g.add_input("r", DType.FLOAT32, (7, 19))
    attrs = O.GemmAttrs(alpha=1.0, beta=1.0, trans_a=False, trans_b=True)
    (y,) = g.add_node(Op.GEMM, [a, const(g, 19, 300), const(g, 19)], attrs)
    (s,) = g.add_node(Op.ADD, [r, y])
    g.outputs = [g.add_node(Op.RELU, [s])[0]]
    inputs = feeds(g)
    want = reference.run(g, inputs)
    for optimize in (True, False):
        got = xgen.compile(g, optimize=optimize, debug=True).run(inputs)
        out = g.outputs[0].name
        np.testing.assert_allclose(got[out], want[out], rtol=1e-5, atol=1e-5)
    assert g.op_counts() == {"Gemm": 1, "Add": 1, "Relu": 1}, "compile must not rewrite its input"


def test_residual_behind_a_reshape_fuses_into_the_gemm() -> None:
    """A transformer's Gemm on [tokens, hidden], reshaped to [batch, seq, hidden], then + x:
    the Add moves ahead of the Reshape (its other operand reshaped for free) and fuses."""
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 5, 24))
    (rows,) = g.add_node(Op.RESHAPE, [x], O.ShapeAttrs((10, 24)))
    attrs = O.GemmAttrs(alpha=1.0, beta=1.0, trans_a=False, trans_b=False)
    (y,) = g.add_node(Op.GEMM, [rows, const(g, 24, 24), const(g, 24)], attrs)
    (y,) = g.add_node(Op.RESHAPE, [y], O.ShapeAttrs((2, 5, 24)))
    g.outputs = g.add_node(Op.ADD, [y, x])
    after = rewritten(g, fuse_epilogues)
    assert_same_function(g, after, feeds(g))
    assert after.op_counts() == {"Reshape": 3, "Gemm": 1}
    (gemm,) = [n for n in after.nodes if n.op is Op.GEMM]
    assert gemm.attrs.epilogue.residual and gemm.inputs[-1].shape == (10, 24)


def test_optimize_runs_the_verifier_in_debug_mode(monkeypatch) -> None:
    def broken(graph: Graph) -> None:
        graph.nodes.reverse()

    monkeypatch.setattr(passes, "PIPELINE", (broken,))
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (3,))
    (y,) = g.add_node(Op.RELU, [x])
    g.outputs = [g.add_node(Op.RELU, [y])[0]]
    with pytest.raises(VerificationError, match="after pass broken"):
        passes.optimize(g, debug=True)


def test_verify_rejects_a_residual_of_another_shape() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (1, 3, 8, 8))
    y = conv(g, x)
    node = g.nodes[-1]
    node.inputs.append(g.add_input("r", DType.FLOAT32, (1, 6, 4, 5)))
    node.attrs = dataclasses.replace(CONV, epilogue=O.Epilogue(residual=True))
    g.outputs = [y]
    with pytest.raises(ShapeError, match="residual"):
        verify(g)


@pytest.mark.parametrize("x_shape, bias_shape", [((2, 5, 300), (1, 1, 19)), ((7, 33), (19,))])
def test_matmul_and_bias_become_one_gemm(x_shape, bias_shape) -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, x_shape)
    (y,) = g.add_node(Op.MATMUL, [x, const(g, x_shape[-1], 19)], O.MatMulAttrs())
    (z,) = g.add_node(Op.ADD, [const(g, *bias_shape), y])
    g.outputs = [g.add_node(Op.RELU, [z])[0]]
    after = rewritten(g, passes.optimize)
    # with leading dims, the Relu moves ahead of the Reshape back to them, into the Gemm
    expected = {"Gemm": 1, "Reshape": 2} if len(x_shape) == 3 else {"Gemm": 1}
    assert after.op_counts() == expected
    inputs = feeds(g)
    assert_same_function(g, after, inputs)
    got = xgen.compile(g).run(inputs)[g.outputs[0].name]
    np.testing.assert_allclose(
        got, reference.run(g, inputs)[g.outputs[0].name], rtol=1e-5, atol=1e-5
    )


def test_matmul_keeps_an_add_that_is_no_bias() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (5, 8))
    (y,) = g.add_node(Op.MATMUL, [x, const(g, 8, 3)], O.MatMulAttrs())
    g.outputs = [g.add_node(Op.ADD, [y, const(g, 5, 3)])[0]]  # a full matrix, not a vector
    assert rewritten(g, passes.optimize).op_counts() == {"MatMul": 1, "Add": 1}


# ---- GELU ---------------------------------------------------------------------------------------


def scalar(g: Graph, value: float) -> Value:
    return g.constant(np.float32(value), "s")


def gelu_chain(g: Graph, x: Value, form: str) -> Value:
    """0.5 * x * (1 + erf(x / sqrt(2))) as exporters spell it, in several associations; the
    tanh forms: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))."""
    if form.startswith("tanh"):
        (cube,) = g.add_node(Op.POW, [x, scalar(g, 3.0)])
        if form == "tanh_constants_first":
            (term,) = g.add_node(Op.MUL, [scalar(g, 0.044715), cube])
            (total,) = g.add_node(Op.ADD, [term, x])
            (scaled,) = g.add_node(Op.MUL, [scalar(g, math.sqrt(2 / math.pi)), total])
        else:
            (term,) = g.add_node(Op.MUL, [cube, scalar(g, 0.044715)])
            (total,) = g.add_node(Op.ADD, [x, term])
            (scaled,) = g.add_node(Op.MUL, [total, scalar(g, math.sqrt(2 / math.pi))])
        (erf,) = g.add_node(Op.TANH, [scaled])
    elif form == "mul_inverse_sqrt2":
        (scaled,) = g.add_node(Op.MUL, [scalar(g, 0.7071067811865476), x])
        (erf,) = g.add_node(Op.ERF, [scaled])
    else:
        (scaled,) = g.add_node(Op.DIV, [x, scalar(g, 1.4142135623730951)])
        (erf,) = g.add_node(Op.ERF, [scaled])
    (t,) = g.add_node(Op.ADD, [erf, scalar(g, 1.0)])
    if form == "half_x_first":  # (0.5 * x) * t
        (half,) = g.add_node(Op.MUL, [x, scalar(g, 0.5)])
        return g.add_node(Op.MUL, [half, t])[0]
    if form == "x_first":  # (x * t) * 0.5
        (xt,) = g.add_node(Op.MUL, [x, t])
        return g.add_node(Op.MUL, [xt, scalar(g, 0.5)])[0]
    (half_t,) = g.add_node(Op.MUL, [scalar(g, 0.5), t])  # (0.5 * t) * x, as torch.onnx writes it
    return g.add_node(Op.MUL, [x, half_t])[0]


@pytest.mark.parametrize(
    "form",
    ["half_first", "x_first", "half_x_first", "mul_inverse_sqrt2", "tanh", "tanh_constants_first"],
)
def test_gelu_chain_becomes_one_node_then_fuses_into_the_gemm(form: str) -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, 5, 24))
    (h,) = g.add_node(Op.MATMUL, [x, const(g, 24, 40)], O.MatMulAttrs())
    (h,) = g.add_node(Op.ADD, [h, const(g, 40)])
    g.outputs = [gelu_chain(g, h, form)]
    inputs = feeds(g)
    after = rewritten(g, fuse_gelu)
    assert after.op_counts() == {"MatMul": 1, "Add": 1, "Gelu": 1}
    assert_same_function(g, after, inputs)
    optimized = rewritten(g, passes.optimize)
    assert optimized.op_counts() == {"Reshape": 2, "Gemm": 1}
    (gemm,) = [n for n in optimized.nodes if n.op is Op.GEMM]
    tanh = form.startswith("tanh")
    assert gemm.attrs.epilogue.activation is (O.Activation.GELU_TANH if tanh else O.Activation.GELU)
    name = g.outputs[0].name
    got = xgen.compile(g).run(inputs)[name]
    np.testing.assert_allclose(got, reference.run(g, inputs)[name], rtol=1e-5, atol=1e-5)


def test_gelu_chain_with_a_shared_intermediate_stays() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (4, 8))
    y = gelu_chain(g, x, "half_first")
    erf = next(n for n in g.nodes if n.op is Op.ERF).outputs[0]
    g.outputs = [y, erf]  # the erf is wanted on its own
    assert rewritten(g, fuse_gelu).op_counts() == g.op_counts()


def test_not_quite_gelu_stays() -> None:
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (4, 8))
    (scaled,) = g.add_node(Op.DIV, [x, scalar(g, 1.5)])  # not sqrt(2)
    (erf,) = g.add_node(Op.ERF, [scaled])
    (t,) = g.add_node(Op.ADD, [erf, scalar(g, 1.0)])
    (half_t,) = g.add_node(Op.MUL, [scalar(g, 0.5), t])
    g.outputs = [g.add_node(Op.MUL, [x, half_t])[0]]
    assert rewritten(g, fuse_gelu).op_counts() == g.op_counts()


# ---- channels-last layout --------------------------------------------------------------------


def residual_block_graph(cin: int) -> Graph:
    """conv -> relu -> conv -> + input -> relu -> maxpool -> global mean -> flatten, NCHW."""
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (2, cin, 9, 9))
    stem = g.add_node(Op.RELU, [conv(g, x, cout=16)])[0]
    same = O.ConvAttrs(strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)
    a = g.add_node(Op.RELU, [g.add_node(Op.CONV, [stem, const(g, 16, 16, 3, 3)], same)[0]])[0]
    b = g.add_node(Op.CONV, [a, const(g, 16, 16, 3, 3), const(g, 16)], same)[0]
    y = g.add_node(Op.RELU, [g.add_node(Op.ADD, [b, stem])[0]])[0]
    pool = O.PoolAttrs(
        (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), ceil_mode=False, count_include_pad=False
    )
    pooled = g.add_node(Op.MAX_POOL, [y], pool)[0]
    mean = g.add_node(Op.REDUCE_MEAN, [pooled], O.ReduceAttrs((2, 3), keepdims=True))[0]
    g.outputs = g.add_node(Op.RESHAPE, [mean], O.ShapeAttrs((2, 16)))
    return g


def test_one_layout_across_the_graph() -> None:
    """Convs and the pool run channels last; the Transposes between them cancel, the one after
    the global mean only moves size-1 dims (a Reshape): one Transpose is left, at the input."""
    from xgen.passes.layout import channels_last

    g = residual_block_graph(cin=16)
    after = rewritten(g, channels_last)
    assert_same_function(g, after, feeds(g))
    layouts = [n.attrs.channels_last for n in after.nodes if n.op in (Op.CONV, Op.MAX_POOL)]
    assert layouts == [True] * 4
    transposes = [n for n in after.nodes if n.op is Op.TRANSPOSE]
    assert len(transposes) == 1 and transposes[0].inputs[0] is after.inputs[0]
    mean = next(n for n in after.nodes if n.op is Op.REDUCE_MEAN)
    assert mean.attrs.axes == (1, 2)  # H and W of N x H x W x C


def test_narrow_input_padded_along_x_before_its_conv() -> None:
    """A conv over fewer than 16 channels reads an input padded along x by a Pad node, so that
    its window rows run as one; its own x pads become 0."""
    from xgen.passes.layout import channels_last

    g = residual_block_graph(cin=3)
    after = rewritten(g, channels_last)
    assert_same_function(g, after, feeds(g))
    (pad,) = [n for n in after.nodes if n.op is Op.PAD]
    assert pad.attrs.pads == (0, 0, 1, 0, 0, 0, 1, 0)
    stem = next(n for n in after.nodes if n.op is Op.CONV)
    assert stem.inputs[0] is pad.outputs[0] and stem.attrs.pads == (1, 0, 1, 0)


def test_grouped_conv_and_runtime_weights_stay_channels_first() -> None:
    from xgen.passes.layout import channels_last

    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (1, 6, 5, 5))
    w = g.add_input("w", DType.FLOAT32, (6, 6, 3, 3))
    grouped = dataclasses.replace(CONV, group=3)
    y = g.add_node(Op.CONV, [x, const(g, 6, 2, 3, 3)], grouped)[0]
    g.outputs = g.add_node(Op.CONV, [y, w], CONV)
    after = rewritten(g, channels_last)
    assert not any(n.attrs.channels_last for n in after.nodes if n.op is Op.CONV)
    assert not any(n.op is Op.TRANSPOSE for n in after.nodes)


# ---- Transposes into MatMul strides ----------------------------------------------------------


@pytest.mark.parametrize("depth", [4, 300])  # one K block (batched kernel), several (a loop)
def test_head_transposes_fold_into_the_matmul(depth: int) -> None:
    """Attention's head split: Q by (0, 2, 1, 3), K by (0, 2, 3, 1); the MatMul reads both
    through strides, and the compiled model matches the reference of the original graph."""
    from xgen.passes.matmul import fold_transposes_into_matmul

    g = Graph()
    q = g.add_input("q", DType.FLOAT32, (2, 5, 3, depth))
    k = g.add_input("k", DType.FLOAT32, (2, 6, 3, depth))
    v = g.add_input("v", DType.FLOAT32, (2, 5, 3, 7))
    (qh,) = g.add_node(Op.TRANSPOSE, [q], O.TransposeAttrs((0, 2, 1, 3)))
    (kh,) = g.add_node(Op.TRANSPOSE, [k], O.TransposeAttrs((0, 2, 3, 1)))
    (scores,) = g.add_node(Op.MATMUL, [qh, kh], O.MatMulAttrs())  # [2, 3, 5, 6]
    (back,) = g.add_node(Op.TRANSPOSE, [scores], O.TransposeAttrs((0, 1, 3, 2)))
    (vh,) = g.add_node(Op.TRANSPOSE, [v], O.TransposeAttrs((0, 2, 1, 3)))
    g.outputs = [*g.add_node(Op.MATMUL, [back, vh], O.MatMulAttrs()), vh]  # vh read twice
    after = rewritten(g, fold_transposes_into_matmul)
    first, second = [n for n in after.nodes if n.op is Op.MATMUL]
    assert [x.name for x in first.inputs] == [q.name, k.name]
    assert first.attrs == O.MatMulAttrs((0, 2, 1, 3), (0, 2, 3, 1))
    assert second.attrs == O.MatMulAttrs((0, 1, 3, 2), ())  # vh is also a graph output
    assert [n.op for n in after.nodes].count(Op.TRANSPOSE) == 1
    inputs = feeds(g)
    want = reference.run(g, inputs)[g.outputs[0].name]
    got = xgen.compile(g, debug=True).run(inputs)[g.outputs[0].name]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_transpose_between_reshapes_of_unit_dims_becomes_one() -> None:
    """[1, 4, 6, 8] -> [4, 6, 8] -> transposed (0, 2, 1) -> [1, 4, 8, 6]: one Transpose
    (0, 1, 3, 2); a Reshape that merges real dims keeps the three apart."""
    for merged, kept in (((4, 6, 8), 1), ((24, 8), 3)):
        g = Graph()
        x = g.add_input("x", DType.FLOAT32, (1, 4, 6, 8))
        (r,) = g.add_node(Op.RESHAPE, [x], O.ShapeAttrs(merged))
        perm = (0, 2, 1) if len(merged) == 3 else (1, 0)
        (t,) = g.add_node(Op.TRANSPOSE, [r], O.TransposeAttrs(perm))
        out = (1, 4, 8, 6) if len(merged) == 3 else (1, 8, 24)
        g.outputs = list(g.add_node(Op.RESHAPE, [t], O.ShapeAttrs(out)))
        inputs = feeds(g)
        after = rewritten(g, collapse_reshaped_transposes)
        assert len(after.nodes) == kept
        if kept == 1:
            assert after.nodes[0].attrs == O.TransposeAttrs((0, 1, 3, 2))
        assert_same_function(g, after, inputs)

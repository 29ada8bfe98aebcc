"""Chains of elementwise ops fused into one loop (passes/elementwise.py, FusedElementwise):
random chains of unary, binary and Where ops with broadcast constants, values read twice,
graph outputs in the middle, and the reorganize (Transpose, Reshape) and broadcast (Expand)
ops fusion must stop at, against onnxruntime; the plan leaves no fusable pair apart; and the
cases that must not fuse."""

from __future__ import annotations

import numpy as np
import onnx
from harness import run_onnxruntime, run_threads_deterministic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import xgen
from xgen.frontend.onnx import import_onnx
from xgen.ir import Graph, Op
from xgen.ir.stats import graph_stats
from xgen.passes import optimize
from xgen.passes.elementwise import ELEMENTWISE

SHAPE = (3, 4, 16)
UNARY = ["Relu", "Sigmoid", "Tanh", "Neg", "Abs", "Erf", "Softsign", "Sin"]
BINARY = ["Add", "Sub", "Mul", "Max", "Min"]


def broadcast_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Constant shapes that broadcast to shape: a scalar, the last dim, one dim kept, all."""
    return [(), shape[-1:], (shape[0],) + (1,) * (len(shape) - 1), shape]


@st.composite
def chains(draw: st.DrawFn) -> onnx.ModelProto:
    """A model x -> y of 2-9 ops; most read the last value, some an earlier one of its shape."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    nodes, inits, outputs = [], [], []
    values = {"x": SHAPE}  # name -> shape
    main = "x"

    def constant(shape: tuple[int, ...]) -> str:
        name = f"c{len(inits)}"
        inits.append(numpy_helper.from_array(rng.uniform(-1, 1, shape).astype(np.float32), name))
        return name

    for i in range(draw(st.integers(2, 9))):
        shape, out = values[main], f"v{i}"
        kind = draw(st.sampled_from(["unary", "binary", "binary", "where", "transpose", "expand"]))
        if kind == "unary":
            nodes.append(helper.make_node(draw(st.sampled_from(UNARY)), [main], [out]))
        elif kind in ("binary", "where"):
            same = [v for v, s in values.items() if s == shape]
            other = draw(st.sampled_from(same)) if draw(st.booleans()) else None
            other = other or constant(draw(st.sampled_from(broadcast_shapes(shape))))
            if kind == "binary":
                op = draw(st.sampled_from(BINARY))
                nodes.append(helper.make_node(op, [main, other], [out]))
            else:
                nodes.append(helper.make_node("Greater", [main, constant(())], [f"m{i}"]))
                nodes.append(helper.make_node("Where", [f"m{i}", main, other], [out]))
        elif kind == "transpose":  # reorganize: the last two dims swapped
            perm = list(range(len(shape) - 2)) + [len(shape) - 1, len(shape) - 2]
            nodes.append(helper.make_node("Transpose", [main], [out], perm=perm))
            shape = tuple(shape[p] for p in perm)
        else:  # broadcast: a constant with one dim expanded to the value's shape, then added
            small = constant(draw(st.sampled_from(broadcast_shapes(shape)[1:3])))
            target = constant(()) + "_shape"
            inits.append(numpy_helper.from_array(np.array(shape, np.int64), target))
            nodes.append(helper.make_node("Expand", [small, target], [f"e{i}"]))
            nodes.append(helper.make_node("Add", [main, f"e{i}"], [out]))
        values[out], main = shape, out
        if draw(st.integers(0, 5)) == 0:
            outputs.append(out)  # read by the user too: must be written
    outputs = list(dict.fromkeys([*outputs, main]))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [onnx.ValueInfoProto(name=o) for o in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    inferred = {v.name: v.type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for out in model.graph.output:
        out.type.CopyFrom(inferred[out.name])
    return model


def fusable_pairs_left(graph: Graph) -> list[str]:
    """Elementwise nodes (or blocks) whose output only the next elementwise node reads, at its
    shape, and no user: the fusion rule says they belong in one loop."""
    users, producers = graph.consumers(), graph.producers()
    kinds = ELEMENTWISE | {Op.FUSED_ELEMENTWISE}
    left = []
    for node in graph.nodes:
        for value in node.inputs:
            producer, readers = producers.get(value), users.get(value, [])
            if (
                node.op in kinds
                and producer is not None
                and producer.op in kinds
                and all(r is node for r in readers)
                and value.shape == node.outputs[0].shape
                and value not in graph.outputs
            ):
                left.append(f"{producer.name} -> {node.name}")
    return left


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(chains())
def test_random_chains_fuse_and_match_onnxruntime(model: onnx.ModelProto) -> None:
    graph = optimize(import_onnx(model))
    assert fusable_pairs_left(graph) == []
    x = np.random.default_rng(1).uniform(-2, 2, SHAPE).astype(np.float32)
    expected = run_onnxruntime(model, {"x": x})
    compiled = xgen.compile(model)
    got = run_threads_deterministic(compiled, {"x": x}, 2)
    for name, want in zip(compiled.output_names, expected, strict=True):
        np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-5, err_msg=name)


def chain_model(nodes: list, constants: dict[str, float], outputs: list[str]) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in constants.items()]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, SHAPE) for o in outputs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


GELU_TANH = [
    helper.make_node("Pow", ["x", "three"], ["x3"]),
    helper.make_node("Mul", ["x3", "k"], ["a"]),
    helper.make_node("Add", ["x", "a"], ["b"]),
    helper.make_node("Mul", ["b", "s"], ["d"]),
    helper.make_node("Tanh", ["d"], ["t"]),
    helper.make_node("Add", ["t", "one"], ["u"]),
    helper.make_node("Mul", ["x", "u"], ["v"]),
    helper.make_node("Mul", ["v", "half"], ["y"]),
]
GELU_CONSTANTS = {"three": 3.0, "k": 0.044715, "s": 0.7978845608, "one": 1.0, "half": 0.5}
NEAR_GELU = {**GELU_CONSTANTS, "k": 0.05}  # the same chain, but not GELU: the elementwise pass


def kernels(model: onnx.ModelProto) -> list[str]:
    return [n.op.value for n in optimize(import_onnx(model)).nodes]


def test_gelu_tanh_written_out_is_one_gelu_or_one_loop() -> None:
    """GPT-2's GELU: eight nodes, x read by three of them; one Gelu node (passes/gelu.py, which
    a Gemm before it takes as its epilogue), or with other constants one elementwise loop."""
    x = np.random.default_rng(0).uniform(-4, 4, SHAPE).astype(np.float32)
    for constants, kernel in ((GELU_CONSTANTS, "Gelu"), (NEAR_GELU, "FusedElementwise")):
        model = chain_model(GELU_TANH, constants, ["y"])
        assert kernels(model) == [kernel]
        (want,) = run_onnxruntime(model, {"x": x})
        np.testing.assert_allclose(xgen.compile(model)(x), want, rtol=1e-5, atol=1e-6)


def test_a_value_the_user_reads_ends_a_block() -> None:
    model = chain_model(GELU_TANH, NEAR_GELU, ["y", "t"])  # tanh's output is an output too
    assert kernels(model) == ["FusedElementwise", "FusedElementwise"]


def test_a_value_read_outside_the_block_or_broadcast_stays_apart() -> None:
    """t is read by the chain and by a Softmax (many-to-many); a [1, 4, 16] value broadcast
    into the chain would be computed once per output element it meets: neither fuses."""
    nodes = [
        helper.make_node("Tanh", ["x"], ["t"]),
        helper.make_node("Softmax", ["t"], ["p"], axis=-1),
        helper.make_node("Neg", ["t"], ["n"]),
        helper.make_node("Add", ["n", "p"], ["y"]),
        helper.make_node("Slice", ["x", "start", "end", "axis"], ["row"]),
        helper.make_node("Exp", ["row"], ["er"]),
        helper.make_node("Mul", ["y", "er"], ["z"]),
    ]
    ints = {"start": [0], "end": [1], "axis": [0]}
    model = chain_model(nodes, {}, ["z"])
    model.graph.initializer.extend(
        numpy_helper.from_array(np.array(v, np.int64), n) for n, v in ints.items()
    )
    ops = kernels(model)
    assert ops.count("Tanh") == 1 and ops.count("Exp") == 1 and ops.count("Softmax") == 1
    assert ops.count("FusedElementwise") == 1  # Neg, Add, Mul: one loop


def test_a_block_counts_the_flops_of_its_members() -> None:
    model = chain_model(GELU_TANH, NEAR_GELU, ["y"])
    unfused, fused = import_onnx(model), optimize(import_onnx(model))
    assert graph_stats(fused).flops == graph_stats(unfused).flops == 8 * np.prod(SHAPE)

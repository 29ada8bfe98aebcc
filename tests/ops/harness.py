"""One-op ONNX models run through xgen's reference, xgen's compiled C and onnxruntime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from xgen import reference
from xgen.frontend.onnx import import_onnx

OPSET = 17


def make_model(
    op_type: str,
    inputs: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    constants: Mapping[str, np.ndarray] | None = None,
    n_outputs: int = 1,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """A model of one node: `inputs` become graph inputs, `constants` initializers.

    The node's inputs are the keys of both, in the order inputs then constants unless a key
    names an empty string (an omitted optional input), e.g. constants={"": None, "b": ...}.
    """
    constants = dict(constants or {})
    names = [*inputs, *constants]
    graph_inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in inputs.items()
    ]
    inits = [numpy_helper.from_array(a, n) for n, a in constants.items() if n]
    outputs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, [n if n else "" for n in names], outputs, **(attrs or {}))
    graph = helper.make_graph(
        [node],
        op_type.lower(),
        graph_inputs,
        [onnx.ValueInfoProto(name=o) for o in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    # Output types come from ONNX's own shape inference (onnxruntime needs them declared).
    inferred = {v.name: v.type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for out in model.graph.output:
        out.type.CopyFrom(inferred[out.name])
    return model


def conv_branches_model(
    cases: Mapping[str, tuple], rng: np.random.Generator
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One model, a branch per case (name: batch, cin, cout, (h, w), ONNX pads, a [cout, cin,
    3, 3] weight) so that one compile covers them all: output `name` = relu(conv(x) + b + res)
    with random x, b and res, or a bare conv(x) for the cases without padding."""
    nodes, inputs, outputs, inits, feeds = [], [], [], [], {}

    def graph_input(name: str, shape: tuple[int, ...]) -> None:
        feeds[name] = rng.standard_normal(shape).astype(np.float32)
        inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape))

    for name, (batch, cin, cout, (h, w), pads, weight) in cases.items():
        graph_input(f"{name}_x", (batch, cin, h, w))
        inits.append(numpy_helper.from_array(weight, f"{name}_w"))
        conv_inputs, conv = [f"{name}_x", f"{name}_w"], f"{name}_c"
        fused = any(pads)
        if fused:
            bias = rng.standard_normal(cout).astype(np.float32)
            inits.append(numpy_helper.from_array(bias, f"{name}_b"))
            conv_inputs.append(f"{name}_b")
        nodes.append(helper.make_node("Conv", conv_inputs, [conv], kernel_shape=[3, 3], pads=pads))
        if fused:
            out_h, out_w = h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2
            graph_input(f"{name}_res", (batch, cout, out_h, out_w))
            nodes += [
                helper.make_node("Add", [conv, f"{name}_res"], [f"{name}_sum"]),
                helper.make_node("Relu", [f"{name}_sum"], [name]),
            ]
        else:
            nodes.append(helper.make_node("Identity", [conv], [name]))
        outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "convs", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model, feeds


def run_threads_deterministic(
    compiled: Any, feeds: Mapping[str, np.ndarray], threads: int
) -> dict[str, np.ndarray]:
    """compiled's outputs on `threads` threads, checked bit-identical to one thread's: kernels
    sum every output on one thread in one order, whatever the split."""
    compiled.threads = threads
    result = compiled.run(feeds)
    compiled.threads = 1
    alone = compiled.run(feeds)
    for name, value in result.items():
        np.testing.assert_array_equal(value, alone[name], err_msg=name)
    return result


def run_onnxruntime(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, dict(feeds))


def run_reference(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    graph = import_onnx(model)
    result = reference.run(graph, feeds)
    return [result[v.name] for v in graph.outputs]


def run_compiled(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import xgen

    compiled = xgen.compile(model)
    result = compiled.run(dict(feeds))
    return [result[name] for name in compiled.output_names]


def assert_close(
    actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    rtol: float,
    atol: float,
    what: str,
) -> None:
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs, expected {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.shape == e.shape, f"{what} output {i}: shape {a.shape}, expected {e.shape}"
        assert a.dtype == e.dtype, f"{what} output {i}: dtype {a.dtype}, expected {e.dtype}"
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"{what} output {i}")


def check_op(
    op_type: str,
    inputs: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    constants: Mapping[str, np.ndarray] | None = None,
    n_outputs: int = 1,
    opset: int = OPSET,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    compiled: bool = True,
) -> None:
    """Reference and (unless compiled=False) generated C must both match onnxruntime."""
    model = make_model(op_type, inputs, attrs, constants, n_outputs, opset)
    expected = run_onnxruntime(model, inputs)
    assert_close(run_reference(model, inputs), expected, rtol, atol, f"{op_type} reference")
    if compiled:
        assert_close(run_compiled(model, inputs), expected, rtol, atol, f"{op_type} compiled")

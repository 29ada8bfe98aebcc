"""Graph-level import errors: malformed initializers, outputs, element types, attribute types,
duplicate names, non-UTF-8 names, model paths, and the last line of defence in _convert_node.
Each case is a model onnx.load accepts; xgen must answer with an XgenError naming what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from xgen import reference
from xgen.errors import InputError, ModelLoadError
from xgen.frontend import onnx as frontend
from xgen.frontend.onnx import import_onnx


def model(
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto] = (),
    inputs: list[onnx.ValueInfoProto] | None = None,
    outputs: list[onnx.ValueInfoProto] | None = None,
) -> onnx.ModelProto:
    """x float[2,3] -> nodes -> y float[2,3], unless inputs/outputs say otherwise."""
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def add_b(b: onnx.TensorProto) -> onnx.ModelProto:
    return model([helper.make_node("Add", ["x", "b"], ["y"], name="add")], [b])


def bias(**fields: object) -> onnx.TensorProto:
    """A float[3] initializer 'b' with some fields overwritten."""
    tensor = numpy_helper.from_array(np.ones(3, np.float32), "b")
    for name, value in fields.items():
        if name == "dims":
            tensor.dims[:] = value
        else:
            setattr(tensor, name, value)
    return tensor


def softmax(**attrs: object) -> onnx.ModelProto:
    return model([helper.make_node("Softmax", ["x"], ["y"], name="sm", **attrs)])


def x_input(elem_type: int) -> list[onnx.ValueInfoProto]:
    return [helper.make_tensor_value_info("x", elem_type, [2, 3])]


def relu_to(*outputs: str) -> onnx.NodeProto:
    return helper.make_node("Relu", ["x"], list(outputs), name="relu")


def pool(**attrs: object) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", **attrs)], [], [x], [y])


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
Z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3])
INT_1 = numpy_helper.from_array(np.array(1, np.int64))
SEQUENCE = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [2, 3])

CASES = {
    # initializers whose data, dims and type disagree
    "init-dims": (add_b(bias(dims=[4])), "initializer 'b': its data does not fit FLOAT[4]"),
    "init-bytes": (add_b(bias(raw_data=b"\0" * 5)), "initializer 'b': its data does not fit"),
    "init-elem-0": (add_b(bias(data_type=0)), "initializer 'b' has elem_type 0, not an ONNX"),
    "init-elem-999": (add_b(bias(data_type=999)), "initializer 'b' has elem_type 999"),
    "init-twice": (model([relu_to("y")], [bias(), bias()]), "initializer 'b' is defined twice"),
    # graph inputs and outputs
    "input-elem-0": (model([relu_to("y")], inputs=x_input(0)), "input 'x' has elem_type 0"),
    "input-elem-999": (model([relu_to("y")], inputs=x_input(999)), "input 'x' has elem_type 999"),
    "input-sequence": (model([relu_to("y")], inputs=[SEQUENCE]), "input 'x' is a sequence_type"),
    "input-twice": (model([relu_to("y")], inputs=[X, X]), "graph input 'x' is declared twice"),
    "output-unproduced": (model([relu_to("h")]), "graph output 'y' is produced by no node"),
    "output-twice": (model([relu_to("y")], outputs=[Y, Y]), "output(s) ['y'] listed more than"),
    "output-is-input": (model([relu_to("y")], outputs=[Y, X]), "output 'x' is the graph input"),
    "extra-output": (
        model([relu_to("y", "z")], outputs=[Y, Z]),
        "node 'relu' (Relu) names 2 outputs, Relu has 1 here (extra: 'z')",
    ),
    # inputs the op requires, or more than it takes (converters index them)
    "input-omitted": (
        model([helper.make_node("Gemm", ["x", ""], ["y"], name="fc")]),
        "node 'fc' (Gemm) lacks input 1 (B), which Gemm requires",
    ),
    "variadic-omitted": (
        model([helper.make_node("Concat", ["", "x"], ["y"], name="cat", axis=0)]),
        "node 'cat' (Concat) lacks input 0 (inputs), which Concat requires",
    ),
    "too-few-inputs": (
        model([helper.make_node("Concat", [], ["y"], name="cat", axis=0)]),
        "node 'cat' (Concat) has 0 inputs, Concat takes at least 1",
    ),
    "too-many-inputs": (
        model([helper.make_node("Relu", ["x", "x"], ["y"], name="relu")]),
        "node 'relu' (Relu) has 2 inputs, Relu takes at most 1",
    ),
    # attributes of a type the ONNX schema does not declare
    "axis-ints": (softmax(axis=[1]), "node 'sm' (Softmax): attribute 'axis' is INTS, Softmax "
                  "expects INT"),  # fmt: skip
    "attr-unknown": (softmax(axsi=1), "node 'sm' (Softmax): Softmax has no attribute 'axsi' "
                     "(it takes axis)"),  # fmt: skip
    "axis-string": (softmax(axis="1"), "attribute 'axis' is STRING, Softmax expects INT"),
    "axis-float": (softmax(axis=1.0), "attribute 'axis' is FLOAT, Softmax expects INT"),
    "axis-tensor": (softmax(axis=INT_1), "attribute 'axis' is TENSOR, Softmax expects INT"),
    "kernel-float": (pool(kernel_shape=2.0), "'pool' (MaxPool): attribute 'kernel_shape' is FLOAT"),
    "auto-pad-not-utf8": (
        pool(kernel_shape=[2, 2], auto_pad=b"\xff\xfe"),
        "node 'pool' (MaxPool): attribute 'auto_pad' is not UTF-8 text",
    ),
    "constant-tensor-bytes": (
        model([
            helper.make_node("Constant", [], ["b"], name="k", value=bias(raw_data=b"\0" * 5)),
            helper.make_node("Add", ["x", "b"], ["y"], name="add"),
        ]),
        "node 'k' (Constant): attribute 'value': its data does not fit FLOAT[3]",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_malformed_model_is_a_model_load_error(case: tuple[onnx.ModelProto, str]) -> None:
    onnx_model, fragment = case
    with pytest.raises(ModelLoadError) as info:
        import_onnx(onnx_model.SerializeToString())  # as from a file
    assert fragment in str(info.value)


def test_a_converters_raw_exception_names_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a converter did not anticipate (here a ZeroDivisionError) names node and op,
    with the original exception kept as the cause for whoever debugs it."""

    def divides_by_zero(ctx: frontend.ImportContext, node: frontend.OnnxNode) -> list:
        return [1 // 0]

    frontend._load_converters()
    monkeypatch.setitem(frontend.CONVERTERS, "Relu", divides_by_zero)
    with pytest.raises(ModelLoadError) as info:
        import_onnx(model([relu_to("y")]))
    message = str(info.value)
    assert message.startswith("node 'relu' (Relu): malformed node (ZeroDivisionError")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_xgen_errors_that_are_value_errors_pass_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuses(ctx: frontend.ImportContext, node: frontend.OnnxNode) -> list:
        raise InputError("a message of its own")

    frontend._load_converters()
    monkeypatch.setitem(frontend.CONVERTERS, "Relu", refuses)
    with pytest.raises(InputError, match="^a message of its own$"):
        import_onnx(model([relu_to("y")]))


def test_well_typed_attributes_still_import() -> None:
    """The schema check lets through what the spec declares (here axis INT, kernel INTS)."""
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    graph = import_onnx(softmax(axis=0))
    (y,) = reference.run(graph, {"x": x}).values()
    np.testing.assert_allclose(y, np.exp(x) / np.exp(x).sum(axis=0), rtol=1e-6)
    assert import_onnx(pool(kernel_shape=[2, 2])).outputs[0].shape == (1, 1, 3, 3)


def test_non_utf8_names_import_with_escapes() -> None:
    """Protobuf hands back names that are not UTF-8 as bytes; they become readable str names
    (\\xNN for each bad byte) in the graph, its inputs, outputs, nodes and metadata."""
    onnx_model = model(
        [helper.make_node("Add", ["xIN", "bIN"], ["yOUT"], name="NODE")],
        [numpy_helper.from_array(np.arange(3, dtype=np.float32), "bIN")],
        [helper.make_tensor_value_info("xIN", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("yOUT", TensorProto.FLOAT, [2, 3])],
    )
    helper.set_model_props(onnx_model, {"KEY": "VALUE"})
    data = onnx_model.SerializeToString()
    for name in (b"xIN", b"bIN", b"yOUT", b"NODE", b"KEY", b"VALUE"):
        data = data.replace(name, name[:1] + b"\xff" + name[2:])
    graph = import_onnx(data)
    assert [v.name for v in graph.inputs] == ["x\\xffN"]
    assert [v.name for v in graph.outputs] == ["y\\xffUT"]
    assert [n.name for n in graph.nodes] == ["N\\xffDE"]
    assert graph.metadata == {"K\\xffY": "V\\xffLUE"}
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(reference.run(graph, {"x\\xffN": x})["y\\xffUT"], x + [0, 1, 2])


# ---- model paths -------------------------------------------------------------------------------


def test_directory_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="is a directory, not an ONNX model file"):
        import_onnx(tmp_path)


def test_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    with pytest.raises(ModelLoadError, match="model.onnx: is not a regular file"):
        import_onnx(fifo)


def test_unreadable_file_is_not_called_missing_or_invalid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "locked.onnx"
    onnx.save(model([relu_to("y")]), path)

    def denied(*args: object, **kwargs: object) -> None:  # chmod 000 does not stop root
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(onnx, "load", denied)
    with pytest.raises(ModelLoadError, match="locked.onnx: cannot read the model file: Permission"):
        import_onnx(path)

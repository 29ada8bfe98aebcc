"""Bad input gets a clear xgen error that names what was wrong, never a crash deep inside."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

import xgen
from xgen.errors import (
    CompilerError,
    InputError,
    ModelLoadError,
    NonConstantInputError,
    ShapeError,
    UnsupportedOpError,
    XgenError,
)

OPSET = [helper.make_opsetid("", 17)]


def small_model(op_type: str = "Relu", bias: float | None = None) -> onnx.ModelProto:
    """x[2,3] -> op -> (+ bias, a constant that makes the model's content unique) -> y."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])
    nodes = [helper.make_node(op_type, ["x"], ["h" if bias is not None else "y"], name="op0")]
    inits = []
    if bias is not None:
        inits.append(numpy_helper.from_array(np.full([3], bias, np.float32), "b"))
        nodes.append(helper.make_node("Add", ["h", "b"], ["y"], name="add0"))
    graph = helper.make_graph(nodes, "small", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model file"):
        xgen.compile(tmp_path / "absent.onnx")


def test_malformed_file(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x00\xffthis is not a protobuf\xff" * 10)
    with pytest.raises(ModelLoadError, match="garbage.onnx"):
        xgen.compile(path)


def test_truncated_file(tmp_path):
    data = small_model(bias=1.0).SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated.onnx"):
        xgen.compile(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty.onnx"):
        xgen.compile(path)


def test_unsupported_op_names_op_node_and_supported_set():
    with pytest.raises(UnsupportedOpError) as info:
        xgen.compile(small_model("Det"))
    assert info.value.op == "Det" and info.value.node == "op0"
    message = str(info.value)
    assert "'Det'" in message and "'op0'" in message and "Relu" in message  # supported ops listed


def test_foreign_domain_op_is_unsupported():
    model = small_model()
    model.graph.node[0].domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOpError, match="com.example"):
        xgen.compile(model)


@pytest.fixture(scope="module")
def relu():
    return xgen.compile(small_model())


@pytest.mark.parametrize(
    "feeds, match",
    [
        ({"x": np.zeros((3, 2), np.float32)}, "x"),  # wrong shape
        ({"x": np.zeros((2, 3), np.float64)}, "x"),  # wrong dtype
        ({"x": np.zeros((2, 3), np.int64)}, "x"),
        ({"input": np.zeros((2, 3), np.float32)}, "x"),  # wrong name: the error names the real one
        ({}, "x"),  # missing
    ],
    ids=["shape", "float64", "int64", "name", "missing"],
)
def test_wrong_inputs(relu, feeds, match):
    with pytest.raises(InputError, match=match):
        relu.run(feeds)


def test_big_endian_input_names_its_byte_order(relu):
    """Same dtype name, other byte order: the message must not read 'float32, got float32'."""
    x = np.zeros((2, 3), ">f4")
    with pytest.raises(InputError) as info:
        relu.run({"x": x})
    message = str(info.value)
    assert "got float32[2,3] in big-endian byte order ('>f4')" in message
    assert "convert it with .astype('float32')" in message
    np.testing.assert_array_equal(relu.run({"x": x.astype(np.float32)})["y"], np.maximum(x, 0))


def test_ragged_feed_is_an_input_error(relu):
    with pytest.raises(InputError, match="input 'x' is not an array"):
        relu.run({"x": [[1.0, 2.0, 3.0], [4.0]]})


def test_right_inputs_still_run(relu):
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    np.testing.assert_array_equal(relu.run({"x": x})["y"], np.maximum(x, 0))


def _unique_bias() -> float:
    # A constant no earlier run has compiled, so that no cached build hides the compiler's absence.
    return float(int.from_bytes(os.urandom(3), "little"))


def test_compiler_named_by_cc_missing(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(CompilerError, match="/nonexistent/cc"):
        xgen.compile(small_model(bias=_unique_bias()))


def test_no_compiler_on_path(monkeypatch, tmp_path):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no cc, gcc or clang
    with pytest.raises(CompilerError, match="compiler"):
        xgen.compile(small_model(bias=_unique_bias()))


class _TakesAnInt(torch.nn.Module):
    def forward(self, x, n):
        return x * n


class _DataDependent(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # Python control flow on a tensor's value: torch.export refuses it
            return x
        return -x


def test_torch_needs_example_inputs():
    with pytest.raises(XgenError, match="example_inputs"):
        xgen.compile(torch.nn.ReLU())


def test_torch_non_tensor_input_is_named():
    with pytest.raises(InputError, match="example input 1 is a int"):
        xgen.compile(_TakesAnInt(), example_inputs=(torch.ones(2), 3))


def test_torch_export_failure_names_the_module():
    with pytest.raises(ModelLoadError, match="_DataDependent"):
        xgen.compile(_DataDependent(), example_inputs=(torch.randn(4),))


def reshape_model() -> onnx.ModelProto:
    """x[2,6] reshaped by a shape that is a model input, as some exporters leave it."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 6])
    shape = helper.make_tensor_value_info("shape", onnx.TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape0")
    graph = helper.make_graph([node], "reshape", [x, shape], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shape_from_a_model_input_asks_for_its_value():
    with pytest.raises(NonConstantInputError, match="reshape0.*'shape' is a model input") as e:
        xgen.compile(reshape_model())
    assert e.value.value == "shape"


def test_constant_inputs_fix_a_shape_input():
    model = xgen.compile(reshape_model(), constant_inputs={"shape": np.array([3, -1])})
    assert model.input_names == ["x"]
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(model(x), x.reshape(3, 4))


@pytest.mark.parametrize(
    "constants, match",
    [
        ({"shape": np.array([3, 4], np.int32)}, "int32, the model declares int64"),
        ({"shape": np.array([3, 2, 2])}, r"shape \(3,\), the model declares \[2\]"),
        ({"shap": np.array([3, 4])}, r"constant_inputs \(--const\) names \['shap'\].*\(x, shape\)"),
    ],
)
def test_bad_constant_inputs(constants, match):
    with pytest.raises(ShapeError, match=match):
        xgen.compile(reshape_model(), constant_inputs=constants)


def test_shapes_that_do_not_broadcast_name_the_node_once():
    a = helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [4, 5])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    node = helper.make_node("Add", ["a", "b"], ["y"], name="add")
    model = helper.make_model(helper.make_graph([node], "g", [a, b], [y]), opset_imports=OPSET)
    with pytest.raises(ShapeError, match=r"\(2, 3\) and \(4, 5\) do not broadcast") as e:
        xgen.compile(model)
    assert str(e.value).count("add") == 1 and e.value.node == "add"


def test_value_written_twice_is_named():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "twice", [x], [y]), opset_imports=OPSET)
    with pytest.raises(ModelLoadError, match="'Neg -> y' writes 'y', which is already defined"):
        xgen.compile(model)


def test_model_without_outputs():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    model = helper.make_model(helper.make_graph([], "empty", [x], []), opset_imports=OPSET)
    with pytest.raises(ModelLoadError, match="no outputs"):
        xgen.compile(model)


def test_negative_threads():
    with pytest.raises(ValueError, match="threads must be a non-negative int"):
        xgen.compile(small_model(), threads=-1)

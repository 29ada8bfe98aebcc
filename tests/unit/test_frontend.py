"""ONNX frontend behaviour: constant folding of shape sub-graphs, dynamic dims, and the errors a
user sees for bad files, unsupported ops and wrong input shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from xgen import reference
from xgen.errors import ModelLoadError, ShapeError, UnsupportedOpError
from xgen.frontend.onnx import import_onnx, supported_ops
from xgen.ir import Op

RNG = np.random.default_rng(0)


def model_of(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[str],
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(a, n) for n, a in (initializers or {}).items()]
    graph = helper.make_graph(
        nodes, "g", inputs, [onnx.ValueInfoProto(name=o) for o in outputs], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def float_input(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def run_both(model: onnx.ModelProto, feeds: dict[str, np.ndarray], **import_kw):
    """(xgen reference outputs, onnxruntime outputs) of the model."""
    graph = import_onnx(model, **import_kw)
    ours = reference.run(graph, feeds)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run(None, feeds)
    return [ours[v.name] for v in graph.outputs], theirs


def flatten_by_shape_model(batch: int | str = 2) -> onnx.ModelProto:
    """The exporters' x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    consts = {
        "zero": np.array(0, np.int64),
        "axes0": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
    }
    return model_of(nodes, [float_input("x", [batch, 3, 4, 5])], ["y"], consts)


# ---- constant folding --------------------------------------------------------------------------


def test_shape_subgraph_folds_to_one_reshape() -> None:
    model = flatten_by_shape_model()
    graph = import_onnx(model)
    assert [n.op for n in graph.nodes] == [Op.RESHAPE]
    assert graph.nodes[0].attrs.shape == (2, 60)
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    ours, theirs = run_both(model, {"x": x})
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_constant_nodes_feed_shapes_and_weights() -> None:
    w = RNG.standard_normal((6, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["shape"], value_ints=[-1, 6]),
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
        helper.make_node("Reshape", ["x", "shape"], ["x2"]),
        helper.make_node("MatMul", ["x2", "w"], ["y"]),
    ]
    model = model_of(nodes, [float_input("x", [2, 3, 2])], ["y"])
    graph = import_onnx(model)
    assert [n.op for n in graph.nodes] == [Op.RESHAPE, Op.MATMUL]
    weight = graph.nodes[1].inputs[1]
    assert weight.is_constant and np.array_equal(weight.data, w)
    x = RNG.standard_normal((2, 3, 2)).astype(np.float32)
    ours, theirs = run_both(model, {"x": x})
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)


def test_constant_chain_folds_through_data_ops() -> None:
    """Range -> Unsqueeze -> Expand -> Transpose on constants leaves no node behind."""
    nodes = [
        helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "axes0"], ["r2"]),
        helper.make_node("Expand", ["r2", "target"], ["grid"]),
        helper.make_node("Transpose", ["grid"], ["y"], perm=[1, 0]),
    ]
    consts = {
        "start": np.array(1, np.int64),
        "limit": np.array(7, np.int64),
        "delta": np.array(2, np.int64),
        "axes0": np.array([0], np.int64),
        "target": np.array([4, 3], np.int64),
    }
    model = model_of(nodes, [], ["y"], consts)
    graph = import_onnx(model)
    assert graph.nodes == []
    assert graph.outputs[0].data.tolist() == [[1] * 4, [3] * 4, [5] * 4]


# ---- dynamic dims ------------------------------------------------------------------------------


def test_dynamic_dim_without_input_shapes_is_an_error() -> None:
    with pytest.raises(ShapeError, match="'x'.*dynamic dim 'batch'.*input_shapes"):
        import_onnx(flatten_by_shape_model(batch="batch"))


def test_dynamic_dim_fixed_by_input_shapes_reaches_folded_shapes() -> None:
    model = flatten_by_shape_model(batch="batch")
    graph = import_onnx(model, input_shapes={"x": (3, 3, 4, 5)})
    assert graph.inputs[0].shape == (3, 3, 4, 5)
    assert graph.nodes[0].attrs.shape == (3, 60)
    x = RNG.standard_normal((3, 3, 4, 5)).astype(np.float32)
    ours, theirs = run_both(model, {"x": x}, input_shapes={"x": (3, 3, 4, 5)})
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_input_shapes_of_wrong_rank() -> None:
    with pytest.raises(ShapeError, match="rank 4"):
        import_onnx(flatten_by_shape_model(batch="batch"), input_shapes={"x": (3, 60)})


def test_input_shapes_contradicting_a_fixed_dim() -> None:
    with pytest.raises(ShapeError, match="fixed size 3 at axis 1"):
        import_onnx(flatten_by_shape_model(), input_shapes={"x": (2, 4, 4, 5)})


def test_input_shapes_naming_an_unknown_input() -> None:
    with pytest.raises(ShapeError, match="not model inputs"):
        import_onnx(flatten_by_shape_model(), input_shapes={"y": (1,)})


# ---- malformed files ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model file"):
        import_onnx(tmp_path / "absent.onnx")


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01" * 10)
    with pytest.raises(ModelLoadError, match="garbage.onnx"):
        import_onnx(path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file(tmp_path: Path, keep: float) -> None:
    weights = {"w": RNG.standard_normal((64, 64)).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    data = model_of(nodes, [float_input("x", [1, 64])], ["y"], weights).SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelLoadError, match="truncated.onnx"):
        import_onnx(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty.onnx"):
        import_onnx(path)


def test_opset_out_of_range() -> None:
    model = flatten_by_shape_model()
    model.opset_import[0].version = 7
    with pytest.raises(ModelLoadError, match="opset 7"):
        import_onnx(model)


# ---- unsupported ops ---------------------------------------------------------------------------


def test_unsupported_op_names_op_node_and_supported_ops() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu_1"),
        helper.make_node("NoSuchOp", ["r"], ["y"], name="mystery_node"),
    ]
    model = model_of(nodes, [float_input("x", [2, 3])], ["y"])
    with pytest.raises(UnsupportedOpError) as error:
        import_onnx(model)
    message = str(error.value)
    assert error.value.op == "NoSuchOp" and error.value.node == "mystery_node"
    assert "'NoSuchOp'" in message and "'mystery_node'" in message
    assert "Conv" in message and "Reshape" in message and "Resize" in message


def test_unsupported_domain() -> None:
    node = helper.make_node("FusedConv", ["x"], ["y"], domain="com.microsoft")
    model = model_of([node], [float_input("x", [1, 1, 3, 3])], ["y"])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(UnsupportedOpError, match="com.microsoft.FusedConv.*default ONNX domain"):
        import_onnx(model)


def test_shape_input_computed_at_run_time_is_unsupported() -> None:
    """A Reshape whose target comes from data (not from shapes) cannot be made static."""
    nodes = [
        helper.make_node("Cast", ["s"], ["target"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="data_reshape"),
    ]
    inputs = [float_input("x", [2, 6]), float_input("s", [2])]
    with pytest.raises(UnsupportedOpError, match="data_reshape.*shape.*constant"):
        import_onnx(model_of(nodes, inputs, ["y"]))


def test_supported_ops_lists_the_converters_of_this_module() -> None:
    ops = set(supported_ops())
    expected = {
        "Conv", "ConvTranspose", "Gemm", "MatMul", "MaxPool", "AveragePool", "Resize",
        "Shape", "Size", "Constant", "ConstantOfShape", "Range", "Reshape", "Flatten",
        "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather", "Expand",
        "Tile", "Pad", "DepthToSpace", "SpaceToDepth", "Trilu", "CumSum",
    }  # fmt: skip
    assert expected <= ops

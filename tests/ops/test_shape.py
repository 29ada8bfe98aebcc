"""Shape and data-movement ONNX ops: xgen's reference and the compiled C against
onnxruntime. Ops whose every input is constant fold at import; those are checked here too."""

from __future__ import annotations

import numpy as np
import pytest
from harness import (
    assert_close,
    check_op,
    make_model,
    run_compiled,
    run_onnxruntime,
    run_reference,
)
from onnx import TensorProto, helper, numpy_helper

import xgen
from xgen import reference
from xgen.errors import InputError, ShapeError, UnsupportedOpError
from xgen.frontend.onnx import import_onnx
from xgen.ir import Op

RNG = np.random.default_rng(0)
INT64_MAX = np.iinfo(np.int64).max


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(-50, 50, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def check(op_type: str, inputs, attrs=None, constants=None, **kw) -> None:
    check_op(op_type, inputs, attrs, constants, **kw)


def model_array(model, name: str) -> np.ndarray:
    (init,) = [t for t in model.graph.initializer if t.name == name]
    return numpy_helper.to_array(init)


def import_one(op_type: str, inputs, attrs=None, constants=None, **kw):
    return import_onnx(make_model(op_type, inputs, attrs, constants, **kw))


# ---- Reshape, Flatten, Squeeze, Unsqueeze ------------------------------------------------------


@pytest.mark.parametrize(
    "x_shape,shape",
    [
        ((2, 3, 4), (4, 6)),
        ((2, 3, 4), (0, -1)),
        ((2, 3, 4), (-1,)),
        ((2, 3, 4), (0, 0, 2, 2)),
        ((1, 17), (17, 1, 1)),
        ((6,), (1, 2, 1, 3, 1)),
        ((2, 3, 5, 1, 7), (7, -1, 3)),
    ],
)
def test_reshape(x_shape, shape) -> None:
    check("Reshape", {"x": rand(*x_shape)}, constants={"shape": ints(*shape)})


def test_reshape_allowzero_and_int_data() -> None:
    check("Reshape", {"x": rand(2, 6, dtype=np.int32)}, {"allowzero": 1}, {"s": ints(3, 4)})
    check("Reshape", {"x": rand(2, 6, dtype=np.int64)}, constants={"s": ints(0, 3, -1)}, opset=14)


def test_reshape_lowers_to_ir_reshape() -> None:
    graph = import_one("Reshape", {"x": rand(2, 3, 4)}, constants={"s": ints(0, -1)})
    assert [n.op for n in graph.nodes] == [Op.RESHAPE]
    assert graph.nodes[0].attrs.shape == (2, 12)


def test_reshape_bad_shape() -> None:
    model = make_model("Reshape", {"x": rand(2, 3)}, constants={"s": ints(4, 2)})
    with pytest.raises(ShapeError, match="reshape"):
        import_onnx(model)


def test_reshape_non_constant_shape_unsupported() -> None:
    model = make_model("Reshape", {"x": rand(2, 3), "s": ints(3, 2)})
    with pytest.raises(UnsupportedOpError, match="must be constant"):
        import_onnx(model)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(axis: int) -> None:
    check("Flatten", {"x": rand(2, 3, 5)}, {"axis": axis})


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [None, (0,), (2, -1), (-4,)])
def test_squeeze(axes, opset: int) -> None:
    x = rand(1, 3, 1, 1)
    if axes is None:
        check("Squeeze", {"x": x}, opset=opset)
    elif opset < 13:
        check("Squeeze", {"x": x}, {"axes": list(axes)}, opset=opset)
    else:
        check("Squeeze", {"x": x}, constants={"axes": ints(*axes)}, opset=opset)


def test_squeeze_non_unit_dim() -> None:
    model = make_model("Squeeze", {"x": rand(1, 3)}, opset=11)
    model.graph.node[0].attribute.append(helper.make_attribute("axes", [1]))
    with pytest.raises(ShapeError, match="squeeze"):
        import_onnx(model)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [(0,), (1, 3), (-1,), (0, -1), (4, 0, 2)])
def test_unsqueeze(axes, opset: int) -> None:
    x = rand(3, 5)
    if opset < 13:
        check("Unsqueeze", {"x": x}, {"axes": list(axes)}, opset=opset)
    else:
        check("Unsqueeze", {"x": x}, constants={"axes": ints(*axes)}, opset=opset)


# ---- Transpose, DepthToSpace, SpaceToDepth -----------------------------------------------------


@pytest.mark.parametrize(
    "shape,perm",
    [
        ((7,), None),
        ((3, 5), None),
        ((2, 3, 4), (1, 0, 2)),
        ((2, 3, 4, 5), (0, 2, 3, 1)),
        ((2, 3, 4, 5), None),
        ((1, 2, 3, 1, 5), (4, 1, 3, 0, 2)),
        # tiled copies (loops.copy_nest): full tiles, ragged edge tiles, a batch dim outside
        ((32, 48), None),
        ((17, 33), None),
        ((3, 40, 18), (0, 2, 1)),
        ((2, 19, 5, 37), (0, 2, 3, 1)),
    ],
)
def test_transpose(shape, perm) -> None:
    attrs = {} if perm is None else {"perm": list(perm)}
    check("Transpose", {"x": rand(*shape)}, attrs)


def test_transpose_bool() -> None:
    check("Transpose", {"x": rand(3, 4) > 0}, {"perm": [1, 0]})


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("shape,block", [((1, 8, 3, 5), 2), ((2, 18, 2, 3), 3)])
def test_depth_to_space(shape, block: int, mode: str) -> None:
    check("DepthToSpace", {"x": rand(*shape)}, {"blocksize": block, "mode": mode})


@pytest.mark.parametrize("shape,block", [((1, 3, 4, 6), 2), ((2, 2, 6, 3), 3)])
def test_space_to_depth(shape, block: int) -> None:
    check("SpaceToDepth", {"x": rand(*shape)}, {"blocksize": block})


# ---- Concat, Split -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shapes,axis",
    [
        ([(3,), (5,)], 0),
        ([(2, 3), (2, 5), (2, 1)], 1),
        ([(2, 3, 4), (1, 3, 4)], 0),
        ([(2, 3, 4), (2, 3, 7)], -1),
        ([(1, 2, 3, 4, 5), (1, 2, 1, 4, 5)], 2),
        ([(4, 3)], 0),
    ],
)
def test_concat(shapes, axis: int) -> None:
    check("Concat", {f"x{i}": rand(*s) for i, s in enumerate(shapes)}, {"axis": axis})


def test_concat_with_constant() -> None:
    check("Concat", {"x": rand(2, 3)}, {"axis": 1}, {"c": rand(2, 4)})
    check(
        "Concat", {"x": rand(2, 3, dtype=np.int64)}, {"axis": 0}, {"c": rand(1, 3, dtype=np.int64)}
    )


@pytest.mark.parametrize(
    "shape,axis,split,opset",
    [
        ((6, 4), 0, None, 13),
        ((5, 9), 1, None, 11),
        ((5, 9), -1, (2, 3, 4), 11),
        ((5, 9), 1, (2, 3, 4), 13),
        ((2, 7, 3), 1, (1, 6), 13),
        ((10,), 0, (3, 0, 7), 13),
    ],
)
def test_split(shape, axis: int, split, opset: int) -> None:
    x = rand(*shape)
    n = 3 if split is None else len(split)
    if split is None:
        check("Split", {"x": x}, {"axis": axis}, n_outputs=n, opset=opset)
    elif opset < 13:
        check("Split", {"x": x}, {"axis": axis, "split": list(split)}, n_outputs=n, opset=opset)
    else:
        check("Split", {"x": x}, {"axis": axis}, {"split": ints(*split)}, n_outputs=n, opset=opset)


@pytest.mark.parametrize("dim,n", [(7, 3), (8, 3), (9, 3), (5, 2)])
def test_split_num_outputs(dim: int, n: int) -> None:
    check("Split", {"x": rand(2, dim)}, {"axis": 1, "num_outputs": n}, n_outputs=n, opset=18)


def test_split_uneven_without_sizes() -> None:
    model = make_model("Split", {"x": rand(7)}, {"split": [3, 4]}, n_outputs=2, opset=11)
    del model.graph.node[0].attribute[:]
    with pytest.raises(ShapeError, match="equal parts"):
        import_onnx(model)


# ---- Slice -------------------------------------------------------------------------------------

SLICE_CASES = {
    "basic": ((5, 7), (1, 2), (4, 6), None, None),
    "negative_indices": ((5, 7), (-4, -3), (-1, 7), None, None),
    "int64_max_end": ((5, 7), (2,), (INT64_MAX,), (1,), None),
    "clamped": ((5, 7), (-100, 3), (100, 1000), (0, 1), None),
    "steps": ((9, 8), (1, 0), (9, 8), (0, 1), (2, 3)),
    "negative_step": ((9, 8), (-1, 6), (-INT64_MAX, 1), (0, 1), (-1, -2)),
    "negative_step_clamped": ((9,), (100,), (-100,), (0,), (-3,)),
    "reverse_middle": ((4, 6, 5), (4,), (0,), (-2,), (-1,)),
    "empty": ((5, 7), (3,), (3,), (0,), None),
    "axes_unordered_negative": ((2, 3, 4, 5), (1, 2), (4, 3), (-1, 1), (1, 1)),
    "rank5": ((2, 3, 4, 5, 6), (0, 1, 1), (1, 4, 5), (0, 2, 4), (1, 2, 2)),
}


@pytest.mark.parametrize("case", SLICE_CASES)
def test_slice(case: str) -> None:
    shape, starts, ends, axes, steps = SLICE_CASES[case]
    constants = {"starts": ints(*starts), "ends": ints(*ends)}
    if axes is not None:
        constants["axes"] = ints(*axes)
    if steps is not None:
        if axes is None:
            constants["axes"] = ints(*range(len(starts)))
        constants["steps"] = ints(*steps)
    check("Slice", {"x": rand(*shape)}, constants=constants)


def test_slice_int_data_opset11() -> None:
    constants = {"starts": ints(1), "ends": ints(-1), "axes": ints(1)}
    check("Slice", {"x": rand(3, 6, dtype=np.int32)}, constants=constants, opset=11)


# ---- Gather ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data_shape,indices,axis",
    [
        ((5, 4), [0, 4, 2], 0),
        ((5, 4), [[1, -1], [0, 2]], 1),
        ((5, 4), 3, 0),
        ((5, 4), -2, -1),
        ((2, 3, 7), [6, 0, -7, 3], 2),
        ((3, 2, 4, 2, 5), [[0, 1, 0]], 3),
    ],
)
@pytest.mark.parametrize("constant_indices", [False, True])
def test_gather(data_shape, indices, axis: int, constant_indices: bool) -> None:
    indices = np.array(indices, dtype=np.int64)
    x = rand(*data_shape)
    if constant_indices:
        check("Gather", {"x": x}, {"axis": axis}, {"i": indices})
    else:
        check("Gather", {"x": x, "i": indices}, {"axis": axis})


def test_gather_embedding_int32_indices() -> None:
    """Constant data read at indices known at run time (an embedding lookup), negatives included."""
    indices = np.array([[0, 9, -1], [3, -10, 5]], dtype=np.int32)
    check("Gather", {"table": rand(10, 6), "i": indices}, {"axis": 0})
    model = make_model("Gather", {"table": rand(10, 6), "i": indices}, {"axis": 0})
    table = model.graph.input[0]
    model.graph.initializer.append(numpy_helper.from_array(rand(10, 6), table.name))
    model.graph.input.remove(table)
    graph = import_onnx(model)
    expected = np.take(model_array(model, "table"), indices, axis=0)
    np.testing.assert_array_equal(reference.run(graph, {"i": indices})["out0"], expected)


def test_gather_constant_indices_normalised() -> None:
    graph = import_one("Gather", {"x": rand(5, 4)}, {"axis": 0}, {"i": ints(-1, 1)})
    assert graph.nodes[0].inputs[1].data.tolist() == [4, 1]


def test_gather_constant_indices_out_of_range() -> None:
    model = make_model("Gather", {"x": rand(5, 4)}, {"axis": 1}, {"i": ints(4)})
    with pytest.raises(ShapeError, match="out of range"):
        import_onnx(model)


# ---- GatherND ----------------------------------------------------------------------------------


def nd_indices(
    data_shape: tuple[int, ...], indices_shape: tuple[int, ...], batch_dims: int = 0, dtype=np.int64
) -> np.ndarray:
    """Random in-range indices (negatives included) for GatherND of data_shape."""
    dims = np.array(data_shape[batch_dims : batch_dims + indices_shape[-1]])
    return RNG.integers(-dims, dims, size=indices_shape).astype(dtype)


GATHER_ND_CASES = {
    "elements": ((5, 4), (3, 2), 0),
    "rows": ((5, 4), (2, 1), 0),
    "rank1_data": ((7,), (4, 1), 0),
    "odd_slices": ((3, 5, 7, 2), (2, 3, 2), 0),
    "deep_indices": ((2, 3, 4), (2, 1, 2, 3), 0),
    "batch1_rows": ((2, 3, 4), (2, 1), 1),
    "batch1_odd": ((3, 5, 4, 2), (3, 2, 2), 1),
    "batch2_elements": ((2, 3, 4, 5), (2, 3, 1, 2), 2),
    "batch2_slices": ((2, 3, 7, 2), (2, 3, 4, 1), 2),
    "bert_mask": ((1, 128), (1, 1, 1, 128, 2), 0),
    "large_parallel": ((4, 64, 256), (4, 50, 1), 1),  # enough bytes for the OpenMP loop
}


@pytest.mark.parametrize("constant_indices", [False, True])
@pytest.mark.parametrize("case", GATHER_ND_CASES)
def test_gather_nd(case: str, constant_indices: bool) -> None:
    data_shape, indices_shape, batch_dims = GATHER_ND_CASES[case]
    x, i = rand(*data_shape), nd_indices(data_shape, indices_shape, batch_dims)
    inputs, constants = ({"x": x}, {"i": i}) if constant_indices else ({"x": x, "i": i}, None)
    check("GatherND", inputs, {"batch_dims": batch_dims}, constants, opset=13)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint8, np.bool_])
def test_gather_nd_dtypes(dtype) -> None:
    x = rand(3, 4, 5, dtype=np.int64).astype(dtype)
    check("GatherND", {"x": x, "i": nd_indices((3, 4, 5), (3, 2, 1), 1)}, {"batch_dims": 1})


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gather_nd_int32_indices(batch_dims: int) -> None:
    """ONNX types GatherND's indices int64 only (onnxruntime rejects int32); xgen takes both,
    as for Gather, and must give onnxruntime's result for the same indices as int64."""
    x, i = rand(3, 4, 5), nd_indices((3, 4, 5), (3, 2, 2), batch_dims)
    attrs = {"batch_dims": batch_dims}
    expected = run_onnxruntime(make_model("GatherND", {"x": x, "i": i}, attrs), {"x": x, "i": i})
    feeds = {"x": x, "i": i.astype(np.int32)}
    model = make_model("GatherND", feeds, attrs)
    assert_close(run_reference(model, feeds), expected, 0, 0, "GatherND reference")
    assert_close(run_compiled(model, feeds), expected, 0, 0, "GatherND compiled")


def test_gather_nd_opset11_and_folded() -> None:
    check(
        "GatherND", {"x": rand(4, 3)}, constants={"i": ints(-1, 0, 2, -3).reshape(2, 2)}, opset=11
    )
    constants = {"x": rand(4, 3), "i": ints(3, -1).reshape(2, 1)}
    check_folds("GatherND", {}, constants=constants, opset=12)


def test_gather_nd_constant_indices_normalised() -> None:
    graph = import_one("GatherND", {"x": rand(5, 4)}, constants={"i": ints(-1, -4).reshape(1, 2)})
    assert graph.nodes[0].op is Op.GATHER_ND
    assert graph.nodes[0].inputs[1].data.tolist() == [[4, 0]]


def test_gather_nd_constant_indices_out_of_range() -> None:
    model = make_model("GatherND", {"x": rand(5, 4)}, constants={"i": ints(0, 4).reshape(1, 2)})
    with pytest.raises(ShapeError, match="out of range"):
        import_onnx(model)


@pytest.mark.parametrize("bad", [[0, 4], [-6, 0]])
def test_gather_nd_runtime_index_out_of_range(bad) -> None:
    good, x = np.array([[1, -1], [-5, 3]], np.int32), rand(5, 4)
    compiled = xgen.compile(make_model("GatherND", {"x": x, "i": good}))
    np.testing.assert_array_equal(compiled.run({"x": x, "i": good})["out0"], x[[1, 0], [3, 3]])
    with pytest.raises(InputError, match=r"GatherND.*outside"):
        compiled.run({"x": x, "i": np.array([[1, -1], bad], np.int32)})


def test_gather_nd_batch_dims_mismatch() -> None:
    model = make_model("GatherND", {"x": rand(2, 3), "i": ints(0, 1, 2).reshape(3, 1)})
    model.graph.node[0].attribute.append(helper.make_attribute("batch_dims", 1))
    with pytest.raises(ShapeError, match="batch dims"):
        import_onnx(model)


# ---- Expand, Tile ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x_shape,shape",
    [
        ((3, 1), (3, 4)),
        ((3, 1), (2, 1, 6)),
        ((1,), (5,)),
        ((4, 1, 2), (1, 3, 1)),
        ((2, 3), (1, 1)),
        ((1, 1, 17), (2, 3, 1, 1, 17)),
    ],
)
def test_expand(x_shape, shape) -> None:
    check("Expand", {"x": rand(*x_shape)}, constants={"shape": ints(*shape)})


def test_expand_incompatible() -> None:
    model = make_model("Expand", {"x": rand(3, 2)}, constants={"shape": ints(3, 1)})
    model.graph.output[0].type.tensor_type.ClearField("shape")
    model.graph.node[0].input[1] = "shape"
    model.graph.initializer[0].CopyFrom(helper.make_tensor("shape", TensorProto.INT64, [2], [3, 4]))
    with pytest.raises(ShapeError, match="broadcast"):
        import_onnx(model)


@pytest.mark.parametrize(
    "x_shape,repeats",
    [
        ((3,), (4,)),
        ((2, 3), (1, 1)),
        ((2, 3), (3, 2)),
        ((1, 2, 3), (2, 1, 3)),
        ((1, 2, 1, 3), (1, 1, 5, 1)),
    ],
)
def test_tile(x_shape, repeats) -> None:
    check("Tile", {"x": rand(*x_shape)}, constants={"repeats": ints(*repeats)})


# ---- Pad ---------------------------------------------------------------------------------------

PAD_CASES = {
    "2d": ((3, 4), (1, 2, 0, 3)),
    "4d_spatial": ((1, 2, 3, 5), (0, 0, 1, 2, 0, 0, 2, 1)),
    "1d": ((6,), (2, 3)),
    "negative_crop": ((4, 6), (-1, 2, 1, -2)),
    "5d": ((1, 2, 3, 2, 4), (0, 1, 0, 1, 2, 0, 0, 1, 1, 1)),
    # inner dims left alone (merged into the padded one's rows when constant): a channels-last
    # stem's input padded along x; a crop and a pad before two untouched dims
    "channels_last_x": ((1, 5, 7, 3), (0, 0, 0, 0, 0, 0, 1, 0)),
    "crop_then_inner": ((2, 5, 2, 3), (1, -1, 0, 0, 0, 2, 0, 0)),
}


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("case", PAD_CASES)
def test_pad(case: str, mode: str) -> None:
    shape, pads = PAD_CASES[case]
    check("Pad", {"x": rand(*shape)}, {"mode": mode}, {"pads": ints(*pads)}, opset=19)


def test_pad_constant_value_and_int_data() -> None:
    check(
        "Pad", {"x": rand(2, 3)}, constants={"p": ints(1, 1, 2, 0), "v": np.array(-2.5, np.float32)}
    )
    constants = {"p": ints(0, 2, 1, 1), "v": np.array(7, np.int64)}
    check("Pad", {"x": rand(2, 3, dtype=np.int64)}, constants=constants, opset=11)


def test_pad_axes() -> None:
    constants = {"p": ints(1, 2, 3, 0), "": None, "axes": ints(-1, 1)}
    check("Pad", {"x": rand(2, 3, 4)}, {"mode": "reflect"}, constants, opset=18)


def test_pad_unknown_mode() -> None:
    model = make_model("Pad", {"x": rand(2, 3)}, constants={"p": ints(1, 1, 1, 1)})
    model.graph.node[0].attribute.append(helper.make_attribute("mode", "mirror"))
    with pytest.raises(UnsupportedOpError, match="reflect"):
        import_onnx(model)


# ---- ops folded at import ----------------------------------------------------------------------


def check_folds(op_type: str, inputs, attrs=None, constants=None, **kw) -> None:
    """The op must vanish into a constant at import, with onnxruntime's value."""
    check(op_type, inputs, attrs, constants, **kw)
    assert import_one(op_type, inputs, attrs, constants, **kw).nodes == []


@pytest.mark.parametrize("start,end", [(None, None), (1, None), (-2, None), (0, -1), (-10, 10)])
def test_shape(start, end) -> None:
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    check_folds("Shape", {"x": rand(2, 3, 4, 5)}, attrs, opset=15)


def test_size() -> None:
    check_folds("Size", {"x": rand(2, 3, 7)})


@pytest.mark.parametrize(
    "value", [None, np.array([2.5], np.float32), np.array([3], np.int64), np.array([1], np.int32)]
)
def test_constant_of_shape(value) -> None:
    attrs = (
        {}
        if value is None
        else {
            "value": helper.make_tensor(
                "v", helper.np_dtype_to_tensor_dtype(value.dtype), [1], value
            )
        }
    )
    check_folds("ConstantOfShape", {}, attrs, {"shape": ints(2, 3, 1)})


@pytest.mark.parametrize(
    "start,limit,delta,dtype",
    [
        (0, 5, 1, np.int64),
        (10, 1, -3, np.int64),
        (2, 2, 1, np.int32),
        (0.5, 3.1, 0.7, np.float32),
        (1.0, -2.0, -0.5, np.float32),
    ],
)
def test_range(start, limit, delta, dtype) -> None:
    constants = {n: np.array(v, dtype) for n, v in (("s", start), ("l", limit), ("d", delta))}
    check_folds("Range", {}, constants=constants)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, -1, 2])
def test_trilu_folds(upper: int, k) -> None:
    constants = {"x": rand(4, 5)} if k is None else {"x": rand(2, 4, 5), "k": np.array(k, np.int64)}
    check_folds("Trilu", {}, {"upper": upper}, constants, opset=14)


def test_trilu_of_graph_input_unsupported() -> None:
    with pytest.raises(UnsupportedOpError, match="only folded"):
        import_one("Trilu", {"x": rand(3, 3)}, opset=14)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum_folds(exclusive: int, reverse: int) -> None:
    constants = {"x": rand(3, 4), "axis": np.array(-1, np.int64)}
    check_folds("CumSum", {}, {"exclusive": exclusive, "reverse": reverse}, constants)
    constants = {"x": rand(3, 4, dtype=np.int64), "axis": np.array(0, np.int32)}
    check_folds("CumSum", {}, {"exclusive": exclusive, "reverse": reverse}, constants)


@pytest.mark.parametrize(
    "attrs",
    [
        {"value": helper.make_tensor("v", TensorProto.FLOAT, [2, 2], [1, 2, 3, 4])},
        {"value_float": 1.5},
        {"value_floats": [1.5, -2.0]},
        {"value_int": 7},
        {"value_ints": [3, -1, 4]},
    ],
)
def test_constant(attrs) -> None:
    check_folds("Constant", {}, attrs)


def test_constant_float64_becomes_float32() -> None:
    attrs = {"value": helper.make_tensor("v", TensorProto.DOUBLE, [3], [1, 2, 3.25])}
    graph = import_one("Constant", {}, attrs)
    assert graph.outputs[0].data.dtype == np.float32
    assert graph.outputs[0].data.tolist() == [1, 2, 3.25]


def test_constant_string_unsupported() -> None:
    with pytest.raises(UnsupportedOpError, match="value_int"):
        import_one("Constant", {}, {"value_strings": ["a"]})

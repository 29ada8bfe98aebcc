"""Every op's attributes and inferred shapes are validated at import: a bad value is an XgenError
naming the node, what was given and what is allowed, never a crash, a raw Python exception or
generated code that reads out of bounds. Valid edge cases still compile and match onnxruntime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import xgen
from xgen.errors import ShapeError, UnsupportedOpError
from xgen.frontend.onnx import import_onnx
from xgen.ir import infer

NODE = "suspect"  # every error must name it


def model(
    op_type: str,
    inputs: Mapping[str, tuple[int, ...]],
    attrs: Mapping[str, Any] | None = None,
    constants: Mapping[str, np.ndarray] | None = None,
    n_outputs: int = 1,
    opset: int = 17,
) -> onnx.ModelProto:
    """One node named NODE over float32 graph inputs of the given shapes, then initializers."""
    constants = dict(constants or {})
    graph = helper.make_graph(
        [helper.make_node(op_type, [*inputs, *constants], [f"y{i}" for i in range(n_outputs)],
                          name=NODE, **(attrs or {}))],  # fmt: skip
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_empty_tensor_value_info(f"y{i}") for i in range(n_outputs)],
        [numpy_helper.from_array(a, n) for n, a in constants.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


X = {"x": (1, 3, 8, 8)}
W = {"w": np.ones((2, 3, 3, 3), np.float32)}
WT = {"w": np.ones((3, 2, 3, 3), np.float32)}  # ConvTranspose: C_in x C_out x kH x kW
HUGE = 1 << 62
NO_SCALES = f32()  # Resize's omitted roi / scales

# (op, graph input shapes, attributes, initializers, what the message must say); n_outputs and
# opset where they differ. Each was a crash, a raw exception, an out-of-bounds read, a silently
# wrong shape or result, or an unclear message before import validated it.
BAD: dict[str, tuple] = {
    "conv_dilation_0": ("Conv", X, {"dilations": [0, 0]}, W, "dilations (0, 0) must all be >= 1"),
    "conv_stride_0": ("Conv", X, {"strides": [0, 0]}, W, "strides (0, 0) must all be >= 1"),
    "conv_stride_0_same": (
        "Conv", X, {"strides": [0, 0], "auto_pad": "SAME_UPPER"}, W, "strides (0, 0)"
    ),
    "conv_stride_negative": ("Conv", X, {"strides": [-1, 1]}, W, "strides (-1, 1)"),
    "conv_pads_negative": ("Conv", X, {"pads": [-1, 0, 0, 0]}, W, "must all be >= 0"),
    "conv_strides_short": ("Conv", X, {"strides": [1]}, W, "strides (1,) must have 2 entries"),
    "conv_pads_short": ("Conv", X, {"pads": [1, 1]}, W, "pads (1, 1) must have 4 entries"),
    "conv_kernel_past_input": ("Conv", {"x": (1, 3, 2, 2)}, {}, W, "output dims must be >= 1"),
    "conv_group_not_dividing": (
        "Conv", {"x": (1, 4, 8, 8)}, {"group": 2}, {"w": np.ones((3, 2, 1, 1), np.float32)},
        "group=2 must be >= 1 and divide",
    ),
    "conv_bias_shape": (
        "Conv", X, {}, {**W, "b": np.ones(5, np.float32)}, "bias (5,) must have shape (2,)"
    ),
    "conv_weight_rank": (
        "Conv", X, {}, {"w": np.ones((2, 3, 3), np.float32)}, "differ in rank"
    ),
    "conv_empty_input": (
        "Conv", {}, {"pads": [1] * 4}, {"x": np.ones((1, 3, 0, 8), np.float32), **W},
        "input spatial dims",
    ),
    "conv_no_input_channels": (  # the code generator's weight packing crashed on it
        "Conv", {}, {}, {"x": np.ones((1, 0, 5, 5), np.float32),
                         "w": np.ones((2, 0, 3, 3), np.float32)},
        "weight (2, 0, 3, 3) has no input channels",
    ),
    "conv_transpose_output_padding": (
        "ConvTranspose", X, {"strides": [2, 2], "output_padding": [5, 5]}, WT,
        "output_padding (5, 5) must be >= 0 and less than the stride",
    ),
    "conv_transpose_output_shape_rank": (
        "ConvTranspose", X, {"output_shape": [9]}, WT, "must give the 2 spatial dims"
    ),
    "conv_transpose_output_shape_too_big": (
        "ConvTranspose", X, {"output_shape": [99, 10]}, WT, "exceeds the full output [10, 10]"
    ),
    "conv_transpose_pads_past_output": (
        "ConvTranspose", X, {"pads": [9, 9, 9, 9]}, WT, "output spatial dims"
    ),
    "maxpool_kernel_0": ("MaxPool", X, {"kernel_shape": [0, 0]}, {}, "kernel dims (0, 0)"),
    "maxpool_kernel_short": ("MaxPool", X, {"kernel_shape": [2]}, {}, "kernel_shape (2,)"),
    "maxpool_kernel_past_input": (
        "MaxPool", X, {"kernel_shape": [9, 9]}, {}, "output dims must be >= 1"
    ),
    "maxpool_pads_negative": (
        "MaxPool", X, {"kernel_shape": [2, 2], "pads": [-2] * 4}, {}, "pads (-2, -2, -2, -2)"
    ),
    "maxpool_pads_past_kernel": (
        "MaxPool", X, {"kernel_shape": [2, 2], "pads": [2] * 4}, {}, "smaller than the (dilated)"
    ),
    "avgpool_dilation_0": (
        "AveragePool", X, {"kernel_shape": [2, 2], "dilations": [0, 1]}, {}, "dilations (0, 1)",
        1, 19,  # AveragePool takes dilations from opset 19
    ),
    "lppool_pads_past_kernel": (  # named as the LpPool, not as the AveragePool it becomes
        "LpPool", X, {"kernel_shape": [2, 2], "pads": [2] * 4}, {}, "(LpPool): pads (2, 2, 2, 2)"
    ),
    "lppool_p_0": ("LpPool", X, {"kernel_shape": [2, 2], "p": 0}, {}, "finite p > 0"),
    "transpose_not_permutation": (
        "Transpose", {"x": (2, 3, 4)}, {"perm": [1, 1, 0]}, {}, "not a permutation of 0..2"
    ),
    "transpose_perm_short": (
        "Transpose", {"x": (2, 3, 4)}, {"perm": [1, 0]}, {}, "not a permutation of 0..2"
    ),
    "depth_to_space_blocksize_0": (
        "DepthToSpace", {"x": (1, 4, 2, 2)}, {"blocksize": 0}, {}, "blocksize 0 must be >= 1"
    ),
    "space_to_depth_blocksize_0": (
        "SpaceToDepth", {"x": (1, 4, 2, 2)}, {"blocksize": 0}, {}, "blocksize 0 must be >= 1"
    ),
    "depth_to_space_mode": (
        "DepthToSpace", {"x": (1, 4, 2, 2)}, {"blocksize": 2, "mode": "XYZ"}, {}, "DCR, CRD"
    ),
    "range_delta_0": (
        "Range", {}, {}, {"s": i64(0), "l": i64(5), "d": i64(0)}, "delta != 0"
    ),
    "range_float_delta_0": (
        "Range", {}, {}, {"s": f32(0), "l": f32(5), "d": f32(0)}, "delta != 0"
    ),
    "range_nan": ("Range", {}, {}, {"s": f32(0), "l": f32(np.nan), "d": f32(1)}, "finite"),
    "range_huge": (
        "Range", {}, {}, {"s": i64(0), "l": i64(HUGE), "d": i64(1)}, "more than this machine's"
    ),
    "constant_of_shape_huge": (
        "ConstantOfShape", {}, {}, {"s": i64(1 << 31, 1 << 31)}, "more than this machine's"
    ),
    "constant_of_shape_negative": (
        "ConstantOfShape", {}, {}, {"s": i64(-3)}, "negative dim: (-3,)"
    ),
    "expand_huge": (
        "Expand", {"x": (1,)}, {}, {"s": i64(1 << 20, 1 << 20, 1 << 10)}, "more than this"
    ),
    "expand_huge_folded": (
        "Expand", {}, {}, {"c": f32(1), "s": i64(1 << 20, 1 << 20, 1 << 10)}, "more than this"
    ),
    "resize_nan_scale": (
        "Resize", {"x": (1, 1, 4, 4)}, {}, {"r": NO_SCALES, "s": f32(1, 1, np.nan, 2)},
        "must be finite and > 0",
    ),
    "resize_zero_scale": (
        "Resize", {"x": (1, 1, 4, 4)}, {}, {"r": NO_SCALES, "s": f32(1, 1, 0, 2)}, "finite and > 0"
    ),
    "resize_huge_scale": (
        "Resize", {"x": (1, 1, 4, 4)}, {}, {"r": NO_SCALES, "s": f32(1, 1, 3e38, 1)}, "too large"
    ),
    "resize_scales_short": (
        "Resize", {"x": (1, 1, 4, 4)}, {}, {"r": NO_SCALES, "s": f32(2, 2)}, "must have 4 entries"
    ),
    "resize_size_0": (
        "Resize", {"x": (1, 1, 4, 4)}, {}, {"r": NO_SCALES, "s": NO_SCALES, "z": i64(1, 1, 0, 4)},
        "sizes (1, 1, 0, 4) must all be >= 1",
    ),
    "resize_axis_out_of_range": (
        "Resize", {"x": (1, 1, 4, 4)}, {"axes": [7]}, {"r": NO_SCALES, "s": f32(2)},
        "axes [7] must be distinct dims", 1, 18,
    ),
    "cast_to_unknown": ("Cast", {"x": (2,)}, {"to": 999}, {}, "unknown type 999"),
    "matmul_scalar": ("MatMul", {"x": (3,)}, {}, {"w": f32(2)[0]}, "B is a scalar"),
    "argmax_empty_axis": (
        "ArgMax", {}, {"axis": 1}, {"a": np.ones((2, 0), np.float32)}, "dim 1 of (2, 0) is empty"
    ),
    "gemm_3d": (
        "Gemm", {"x": (3, 4, 2)}, {}, {"w": np.ones((4, 2), np.float32)}, "two 2-D inputs"
    ),
    "gemm_bias_too_big": (
        "Gemm", {"x": (3, 4)}, {}, {"w": np.ones((4, 2), np.float32),
                                     "c": np.ones((5, 3, 2), np.float32)},
        "does not broadcast to the output (3, 2)",
    ),
    "unsqueeze_axis_twice": ("Unsqueeze", {"x": (3,)}, {}, {"a": i64(0, 0)}, "name a dim twice"),
    "pad_crop_past_dim": (
        "Pad", {"x": (3, 4)}, {}, {"p": i64(-5, 0, 5, 0)}, "crop more than the dim of size 3"
    ),
    "pad_wrap_empty_dim": (
        "Pad", {"x": (3, 4)}, {"mode": "wrap"}, {"p": i64(-3, 0, 1, 0)}, "pad an empty dim"
    ),
    "tile_negative": ("Tile", {"x": (3, 4)}, {}, {"r": i64(-1, 1)}, "repeats (-1, 1)"),
    "split_negative": (
        "Split", {"x": (6,)}, {}, {"s": i64(8, -2)}, "split sizes (8, -2)", 2
    ),
    "slice_lengths_differ": (
        "Slice", {"x": (3, 4)}, {}, {"s": i64(0, 0), "e": i64(1)}, "one entry per sliced axis"
    ),
    "split_parts_not_outputs": (
        "Split", {"x": (6,)}, {}, {"s": i64(3, 3)}, "gives 2 parts for 3 outputs", 3
    ),
    "instance_norm_scale_short": (
        "InstanceNormalization", {"x": (1, 3, 4, 4)}, {}, {"s": f32(1, 1), "b": f32(0, 0, 0)},
        "scale and bias of shape (C,)",
    ),
    "keepdims_2": (  # onnxruntime reads it as 0 here, as 1 elsewhere
        "ReduceSum", {"x": (2, 3)}, {"keepdims": -2}, {}, "keepdims=-2 (supported: 0, 1)"
    ),
    "ceil_mode_2": ("MaxPool", X, {"kernel_shape": [2, 2], "ceil_mode": 2}, {}, "ceil_mode=2"),
    "trans_b_2": (
        "Gemm", {"x": (3, 4)}, {"transB": 2}, {"w": np.ones((2, 4), np.float32)}, "transB=2"
    ),
    "reshape_negative": ("Reshape", {"x": (6,)}, {}, {"s": i64(-2, -3)}, "negative dim"),
    "concat_no_axis": ("Concat", {"x": (2,)}, {}, {}, "axis attribute is required"),
    "trilu_rank_1": ("Trilu", {}, {}, {"t": f32(1, 2)}, "rank >= 2"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_attribute_or_shape_is_an_error_naming_the_node(case):
    op_type, inputs, attrs, constants, fragment, *rest = case
    with pytest.raises((ShapeError, UnsupportedOpError)) as error:
        import_onnx(model(op_type, inputs, attrs, constants, *rest))
    assert NODE in str(error.value) and fragment in str(error.value)


def test_input_larger_than_memory_is_refused():
    """Even one no node reads: it is still a buffer the caller must pass."""
    onnx_model = model("Relu", {"x": (2,), "huge": (HUGE, 4)})
    onnx_model.graph.node[0].input.pop()  # the Relu reads x only
    with pytest.raises(ShapeError, match="input 'huge' of shape.*more than this machine's"):
        import_onnx(onnx_model)


FOLDED = {  # each makes a 1200-byte constant at import
    "constant_of_shape": ("ConstantOfShape", {}, {}, {"s": i64(300)}),
    "range": ("Range", {}, {}, {"s": f32(0)[0], "l": f32(300)[0], "d": f32(1)[0]}),
    "expand": ("Expand", {}, {}, {"c": f32(1), "s": i64(300)}),
    "tile": ("Tile", {}, {}, {"c": f32(1), "r": i64(300)}),
}


@pytest.mark.parametrize("case", FOLDED.values(), ids=FOLDED.keys())
def test_folded_constant_over_the_limit_is_refused_before_numpy(monkeypatch, case):
    monkeypatch.setattr(infer, "FOLD_LIMIT_BYTES", 1199)
    with pytest.raises(ShapeError, match=f"{NODE}.*1200 bytes, more than constant folding"):
        import_onnx(model(*case))
    monkeypatch.setattr(infer, "FOLD_LIMIT_BYTES", 1200)
    assert import_onnx(model(*case)).outputs[0].shape == (300,)


def test_arena_larger_than_memory_is_refused(monkeypatch):
    """Two 4 kB intermediates live at once: each fits a 6 kB 'machine', their arena does not."""
    graph = helper.make_graph(
        [
            helper.make_node("Softmax", ["x"], ["a"]),
            helper.make_node("LogSoftmax", ["x"], ["b"]),
            helper.make_node("Add", ["a", "b"], ["y"]),
        ],
        "two_at_once",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1024,))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1024,))],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    monkeypatch.setattr(infer, "MEMORY_BYTES", 6000)
    with pytest.raises(ShapeError, match="arena of graph 'two_at_once'.*8192 bytes.*6000"):
        xgen.compile(onnx_model)


def test_valid_edge_cases_compile_and_match_onnxruntime():
    """Zero pads, a 1x1 kernel, a pool window as large as its input, an identity perm, zero
    pads of Pad, repeats of 1 and MatMul / Gemm sums over no terms (an empty slice times a
    constant weight, once a ZeroDivisionError in the code generator) are all allowed, and
    compute what onnxruntime does."""
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 5)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((4, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["conv"], pads=[0, 0, 0, 0], strides=[1, 1]),
        helper.make_node("MaxPool", ["x"], ["pool"], kernel_shape=[5, 5]),
        helper.make_node("AveragePool", ["x"], ["avg"], kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["x"], ["same"], perm=[0, 1, 2, 3]),
        helper.make_node("Pad", ["x", "zeros"], ["padded"], mode="reflect"),
        helper.make_node("Tile", ["x", "ones"], ["tiled"]),
        helper.make_node("Slice", ["x", "zero", "zero", "three"], ["empty"]),  # [1, 3, 5, 0]
        helper.make_node("MatMul", ["empty", "w_empty"], ["matmul_empty"]),
        helper.make_node("Flatten", ["empty"], ["flat_empty"], axis=3),  # [15, 0]
        helper.make_node("Gemm", ["flat_empty", "w_empty", "bias"], ["gemm_empty"], beta=2.0),
    ]
    outputs = ["conv", "pool", "avg", "same", "padded", "tiled", "matmul_empty", "gemm_empty"]
    graph = helper.make_graph(
        nodes,
        "edges",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.zeros(8, np.int64), "zeros"),
            numpy_helper.from_array(np.ones(4, np.int64), "ones"),
            numpy_helper.from_array(i64(0), "zero"),
            numpy_helper.from_array(i64(3), "three"),
            numpy_helper.from_array(np.ones((0, 2), np.float32), "w_empty"),
            numpy_helper.from_array(f32(1, 2), "bias"),
        ],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    expected = session.run(None, {"x": x})
    actual = xgen.compile(onnx_model).run({"x": x})
    for name, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(actual[name], want, rtol=1e-5, atol=1e-6, err_msg=name)

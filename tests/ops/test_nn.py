"""Neural-network ONNX ops: xgen's reference and the compiled C against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_op, make_model, run_compiled, run_reference

import xgen
from xgen.errors import ShapeError, UnsupportedOpError
from xgen.frontend.onnx import import_onnx

RNG = np.random.default_rng(0)
TOL = {"rtol": 1e-4, "atol": 1e-5}  # accumulation order differs from onnxruntime's


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def check(op_type: str, inputs, attrs=None, constants=None, **kw) -> None:
    check_op(op_type, inputs, attrs, constants, **{**TOL, **kw})


# ---- Conv --------------------------------------------------------------------------------------

CONV_CASES = {
    "1d_stride2_asym_pads": ((2, 3, 17), (4, 3, 5), {"strides": [2], "pads": [2, 1]}),
    "1x1": ((1, 5, 7, 9), (6, 5, 1, 1), {}),
    "7x7_stride2_pad3": ((1, 3, 23, 19), (8, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    "dilation_asym_pads_batch2": (
        (2, 5, 9, 11),
        (7, 5, 3, 3),
        {"strides": [2, 1], "pads": [1, 0, 2, 1], "dilations": [1, 2]},
    ),
    "group3": ((1, 6, 9, 11), (9, 2, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
    "depthwise17": ((1, 17, 10, 10), (17, 1, 3, 3), {"group": 17, "pads": [1, 1, 1, 1]}),
    "depthwise_multiplier2": ((2, 3, 8, 7), (6, 1, 3, 3), {"group": 3, "strides": [2, 2]}),
    "same_upper_even_kernel": ((1, 4, 9, 10), (5, 4, 4, 4), {"auto_pad": "SAME_UPPER"}),
    "same_upper_stride2": (
        (1, 4, 9, 10),
        (5, 4, 3, 2),
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    ),
    "same_lower_stride2": (
        (1, 4, 9, 10),
        (5, 4, 4, 3),
        {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    ),
    "valid_kernel_shape_attr": (
        (1, 3, 8, 8),
        (2, 3, 3, 2),
        {"auto_pad": "VALID", "kernel_shape": [3, 2], "strides": [1, 2]},
    ),
    "3d": ((1, 2, 5, 6, 7), (3, 2, 3, 3, 3), {"pads": [1, 0, 1, 1, 0, 1]}),
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv(case: str, bias: bool) -> None:
    x_shape, w_shape, attrs = CONV_CASES[case]
    constants = {"w": rand(*w_shape)}
    if bias:
        constants["b"] = rand(w_shape[0])
    check("Conv", {"x": rand(*x_shape)}, attrs, constants)


@pytest.mark.parametrize("case", ["7x7_stride2_pad3", "group3", "1x1", "depthwise17", "3d"])
def test_conv_weight_as_graph_input(case: str) -> None:
    """A weight computed at run time: no compile-time packing (xg_sgemm packs it)."""
    x_shape, w_shape, attrs = CONV_CASES[case]
    inputs = {"x": rand(*x_shape), "w": rand(*w_shape), "b": rand(w_shape[0])}
    check("Conv", inputs, attrs)


def test_conv_kernel_shape_mismatch() -> None:
    model = make_model(
        "Conv", {"x": rand(1, 2, 5, 5)}, {"kernel_shape": [2, 2]}, {"w": rand(1, 2, 3, 3)}
    )
    model.graph.output[0].type.tensor_type.ClearField("shape")
    with pytest.raises(ShapeError, match="kernel_shape"):
        import_onnx(model)


# ---- ConvTranspose -----------------------------------------------------------------------------

CONV_TRANSPOSE_CASES = {
    "basic": ((1, 4, 5, 6), (4, 3, 3, 3), {}),
    "stride2_pads": ((2, 4, 5, 6), (4, 3, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "output_padding": (
        (1, 3, 5, 4),
        (3, 5, 3, 3),
        {"strides": [2, 3], "pads": [1, 0, 1, 2], "output_padding": [1, 2]},
    ),
    "group2_dilation": ((1, 4, 5, 5), (4, 3, 3, 2), {"group": 2, "dilations": [2, 1]}),
    "depthwise": (
        (1, 5, 4, 4),
        (5, 1, 4, 4),
        {"group": 5, "strides": [2, 2], "pads": [1, 1, 1, 1]},
    ),
    "output_shape": ((1, 2, 4, 5), (2, 3, 3, 3), {"strides": [2, 2], "output_shape": [8, 10]}),
    "output_shape_same_upper": (
        (1, 2, 4, 5),
        (2, 3, 3, 3),
        {"strides": [2, 2], "output_shape": [9, 10], "auto_pad": "SAME_UPPER"},
    ),
    "same_upper": ((1, 2, 4, 5), (2, 3, 4, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    "same_lower": ((1, 2, 4, 5), (2, 3, 4, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    "valid": ((1, 2, 4, 5), (2, 3, 3, 3), {"strides": [2, 1], "auto_pad": "VALID"}),
    "1d": ((2, 3, 7), (3, 2, 4), {"strides": [3], "pads": [1, 2]}),
    "3d": ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"strides": [2, 1, 2]}),
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV_TRANSPOSE_CASES)
def test_conv_transpose(case: str, bias: bool) -> None:
    x_shape, w_shape, attrs = CONV_TRANSPOSE_CASES[case]
    constants = {"w": rand(*w_shape)}
    if bias:
        constants["b"] = rand(w_shape[1] * attrs.get("group", 1))
    check("ConvTranspose", {"x": rand(*x_shape)}, attrs, constants)


@pytest.mark.parametrize("case", ["stride2_pads", "group2_dilation", "1d", "3d"])
def test_conv_transpose_weight_as_graph_input(case: str) -> None:
    x_shape, w_shape, attrs = CONV_TRANSPOSE_CASES[case]
    check("ConvTranspose", {"x": rand(*x_shape), "w": rand(*w_shape)}, attrs)


# ---- Gemm and MatMul ---------------------------------------------------------------------------


@pytest.mark.parametrize("c_shape", [None, (), (11,), (1, 11), (5, 1), (5, 11)])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm(trans_a: int, trans_b: int, c_shape: tuple[int, ...] | None) -> None:
    m, k, n = 5, 7, 11
    a = rand(k, m) if trans_a else rand(m, k)
    b = rand(n, k) if trans_b else rand(k, n)
    attrs = {"alpha": 0.5, "beta": 2.0, "transA": trans_a, "transB": trans_b}
    constants = {"b": b} if c_shape is None else {"b": b, "c": np.asarray(rand(*c_shape))}
    check("Gemm", {"a": a}, attrs, constants)


def test_gemm_defaults_two_graph_inputs() -> None:
    check("Gemm", {"a": rand(3, 17), "b": rand(17, 33)})


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((1, 17), (17, 33)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((6,), (6,)),
    ((7, 3, 4), (4, 6)),
    ((2, 1, 3, 4), (5, 4, 6)),
    ((3,), (2, 3, 5)),
    ((2, 3, 1, 4, 9), (3, 2, 9, 2)),
]


@pytest.mark.parametrize("a_shape,b_shape", MATMUL_SHAPES)
def test_matmul(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    check("MatMul", {"a": rand(*a_shape), "b": rand(*b_shape)})


def test_matmul_constant_weight() -> None:
    check("MatMul", {"a": rand(2, 5, 19)}, constants={"w": rand(19, 10)})


# ---- pools -------------------------------------------------------------------------------------

POOL_CASES = {
    "k3s2p1": ((1, 3, 11, 12), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "k2s2": ((2, 5, 8, 9), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    "asym_pads": ((1, 2, 7, 9), {"kernel_shape": [3, 2], "pads": [0, 1, 2, 1]}),
    "ceil": ((1, 3, 10, 11), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    "ceil_pads": (
        (1, 2, 9, 10),
        {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    ),
    "same_upper": (
        (1, 3, 9, 10),
        {"kernel_shape": [3, 4], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    ),
    "same_lower": (
        (1, 3, 9, 10),
        {"kernel_shape": [3, 4], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
    ),
    "valid": ((1, 3, 9, 10), {"kernel_shape": [3, 3], "auto_pad": "VALID"}),
    "1d": ((2, 3, 17), {"kernel_shape": [4], "strides": [3], "pads": [2, 1]}),
    "3d": ((1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2]}),
    "global_7x7": ((1, 4, 7, 7), {"kernel_shape": [7, 7]}),
}


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool(case: str) -> None:
    shape, attrs = POOL_CASES[case]
    check("MaxPool", {"x": rand(*shape)}, attrs)


def test_max_pool_dilations() -> None:
    attrs = {"kernel_shape": [3, 3], "dilations": [2, 1], "pads": [2, 1, 1, 0], "ceil_mode": 1}
    check("MaxPool", {"x": rand(1, 3, 11, 9)}, attrs)


def test_max_pool_negative_inputs_padding_excluded() -> None:
    x = -np.abs(rand(1, 2, 5, 5)) - 1
    check("MaxPool", {"x": x}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})


@pytest.mark.parametrize("stride", [1, 2])
def test_max_pool_propagates_nan(stride: int) -> None:
    """onnxruntime's MaxPool keeps a NaN only when it comes first in a window, so the oracle here
    is PyTorch's max_pool2d, which (like numpy) makes every window holding a NaN NaN."""
    import torch

    x = rand(1, 2, 9, 21)
    x[0, 0, 2, 3] = x[0, 1, 8, 20] = x[0, 1, 0, 0] = np.nan
    attrs = {"kernel_shape": [3, 3], "strides": [stride, stride], "pads": [1, 1, 1, 1]}
    model = make_model("MaxPool", {"x": x}, attrs)
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, stride, 1).numpy()
    assert np.isnan(want).sum() > 3
    for got in (run_reference(model, {"x": x})[0], run_compiled(model, {"x": x})[0]):
        np.testing.assert_array_equal(got, want)


# Rows of 17+ outputs run xg_pool_tap's vectorised loops (literal strides 1 and 2, and 3).
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
def test_pool_wide_rows(op_type: str, stride: int) -> None:
    x = rand(1, 3, 9, 70)
    if op_type == "AveragePool":
        x[0, 1, 4, 33] = np.nan  # summed into its windows (MaxPool's NaN rule is xgen's own)
    attrs = {"kernel_shape": [3, 3], "strides": [stride, stride], "pads": [1, 1, 1, 1]}
    check(op_type, {"x": x}, attrs)


def test_max_pool_indices_unsupported() -> None:
    model = make_model("MaxPool", {"x": rand(1, 1, 4, 4)}, {"kernel_shape": [2, 2]}, n_outputs=2)
    with pytest.raises(UnsupportedOpError, match="Indices"):
        import_onnx(model)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("case", POOL_CASES)
def test_average_pool(case: str, count_include_pad: int) -> None:
    shape, attrs = POOL_CASES[case]
    check("AveragePool", {"x": rand(*shape)}, {**attrs, "count_include_pad": count_include_pad})


@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool_dilations(count_include_pad: int) -> None:
    attrs = {"kernel_shape": [3, 2], "dilations": [2, 2], "pads": [1, 1, 1, 1]}
    attrs["count_include_pad"] = count_include_pad
    check("AveragePool", {"x": rand(1, 3, 10, 9)}, attrs, opset=19)


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("case", ["k3s2p1", "asym_pads", "same_upper", "1d", "3d"])
def test_lp_pool(case: str, p: int) -> None:
    shape, attrs = POOL_CASES[case]
    check("LpPool", {"x": rand(*shape)}, {**attrs, "p": p})


def test_lp_pool_ceil_mode_unsupported() -> None:
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}
    model = make_model("LpPool", {"x": rand(1, 1, 5, 5)}, attrs, opset=18)
    with pytest.raises(UnsupportedOpError, match="ceil_mode"):
        import_onnx(model)


# ---- Resize ------------------------------------------------------------------------------------

TRANSFORMS = [
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
SCALES = [(1.0, 1.0, 2.0, 2.0), (1.0, 1.0, 1.5, 0.6), (1.0, 1.0, 0.5, 3.0)]


def check_resize(x: np.ndarray, attrs, scales=None, sizes=None, opset: int = 19, **kw) -> None:
    if scales is not None:  # roi omitted
        constants = {"": None, "scales": np.array(scales, np.float32)}
    else:  # roi and scales as the empty tensors that exporters emit
        empty = np.zeros(0, np.float32)
        constants = {"roi": empty, "scales": empty, "sizes": np.array(sizes, np.int64)}
    check("Resize", {"x": x}, attrs, constants, opset=opset, **kw)


@pytest.mark.parametrize("scales", SCALES)
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("transform", [*TRANSFORMS, "tf_half_pixel_for_nn"])
def test_resize_nearest_scales(transform: str, nearest_mode: str, scales) -> None:
    attrs = {
        "mode": "nearest",
        "coordinate_transformation_mode": transform,
        "nearest_mode": nearest_mode,
    }
    check_resize(rand(1, 3, 6, 5), attrs, scales=scales)


@pytest.mark.parametrize("sizes", [(2, 3, 9, 13), (2, 3, 4, 3), (2, 3, 1, 7)])
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_sizes(mode: str, transform: str, sizes) -> None:
    attrs = {"mode": mode, "coordinate_transformation_mode": transform}
    check_resize(rand(2, 3, 6, 5), attrs, sizes=sizes)


@pytest.mark.parametrize("scales", SCALES)
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_interpolating_scales(mode: str, transform: str, scales) -> None:
    attrs = {"mode": mode, "coordinate_transformation_mode": transform}
    check_resize(rand(1, 2, 7, 6), attrs, scales=scales)


@pytest.mark.parametrize("exclude_outside", [0, 1])
def test_resize_cubic_options(exclude_outside: int) -> None:
    attrs = {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": exclude_outside}
    check_resize(rand(1, 2, 5, 6), attrs, scales=(1.0, 1.0, 2.5, 1.7))


def test_resize_linear_1d_and_3d() -> None:
    check_resize(rand(2, 3, 7), {"mode": "linear"}, scales=(1.0, 1.0, 2.5))
    check_resize(rand(1, 2, 3, 4, 5), {"mode": "linear"}, sizes=(1, 2, 6, 3, 9))


def test_resize_opset11_empty_roi_and_scales() -> None:
    x = rand(1, 2, 4, 5)
    empty = np.zeros(0, np.float32)
    constants = {"roi": empty, "scales": empty, "sizes": np.array([1, 2, 8, 7], np.int64)}
    attrs = {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}
    check("Resize", {"x": x}, attrs, constants, opset=11)
    constants = {"roi": empty, "scales": np.array([1, 1, 2, 2], np.float32)}
    check("Resize", {"x": x}, {"mode": "nearest"}, constants, opset=11)


def test_resize_axes() -> None:
    check_resize(rand(1, 2, 4, 5), {"mode": "linear", "axes": [2, 3]}, scales=(2.0, 1.5))
    check_resize(rand(1, 2, 4, 5), {"mode": "nearest", "axes": [-1]}, sizes=(9,))


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
def test_resize_keep_aspect_ratio(policy: str) -> None:
    attrs = {"mode": "linear", "axes": [2, 3], "keep_aspect_ratio_policy": policy}
    check_resize(rand(1, 2, 4, 6), attrs, sizes=(7, 9))


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.uint8])
def test_resize_integer_nearest(dtype) -> None:
    x = RNG.integers(0, 100, (1, 2, 3, 4)).astype(dtype)
    check_resize(x, {"mode": "nearest"}, scales=(1.0, 1.0, 2.0, 1.5))


def test_resize_interpolating_integer_unsupported() -> None:
    model = make_model(
        "Resize",
        {"x": np.zeros((1, 1, 2, 2), np.int32)},
        {"mode": "linear"},
        {"": None, "scales": np.array([1, 1, 2, 2], np.float32)},
    )
    with pytest.raises(UnsupportedOpError, match="int32 .supported by mode linear: float32"):
        xgen.compile(model)


@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("transform", ["asymmetric", "half_pixel", "tf_half_pixel_for_nn"])
def test_resize_nearest_near_ties(transform: str, nearest_mode: str) -> None:
    """Coordinates a float32 rounding away from a half (2 / float32(4/7) = 3.4999998), which
    onnxruntime still rounds as ties."""
    attrs = {
        "mode": "nearest",
        "coordinate_transformation_mode": transform,
        "nearest_mode": nearest_mode,
    }
    check_resize(rand(1, 1, 7, 20), attrs, sizes=(1, 1, 4, 6))
    check_resize(rand(1, 1, 6, 14), attrs, scales=(1.0, 1.0, 4 / 7, 1 / 7))


def test_resize_same_sizes_is_a_copy() -> None:
    """onnxruntime copies the input when no dim changes size, whatever the scales."""
    check_resize(rand(1, 2, 3, 2), {"mode": "nearest"}, scales=(1.0, 1.0, 1.3, 1.2))


def test_resize_tf_crop_and_resize_unsupported() -> None:
    attrs = {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}
    constants = {
        "roi": np.array([0, 0, 0.1, 0.1, 1, 1, 0.9, 0.9], np.float32),
        "scales": np.array([1, 1, 2, 2], np.float32),
    }
    model = make_model("Resize", {"x": rand(1, 1, 4, 4)}, attrs, constants)
    with pytest.raises(UnsupportedOpError, match="tf_crop_and_resize"):
        import_onnx(model)

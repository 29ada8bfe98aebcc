"""Elementwise ONNX ops: xgen's reference and the compiled C against onnxruntime."""

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
from onnx import TensorProto

from xgen.errors import UnsupportedOpError
from xgen.frontend.onnx import import_onnx

SHAPES = [(7,), (3, 5), (2, 3, 17), (1, 4, 1, 9), (2, 1, 3, 2, 5)]
INT_DTYPES = [np.int8, np.int32, np.int64]
RNG = np.random.default_rng(0)


def rand(shape: tuple[int, ...], dtype=np.float32, low: float = -3, high: float = 3) -> np.ndarray:
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(low, high, size=shape, endpoint=True).astype(dtype)
    return RNG.uniform(low, high, size=shape).astype(dtype)


def check(op_type: str, inputs, attrs=None, constants=None, **kw) -> None:
    inputs = {name: np.asarray(a) for name, a in inputs.items()}  # numpy ops on 0-d give scalars
    check_op(op_type, inputs, attrs, constants, **kw)


def assert_unsupported(op_type: str, inputs, attrs=None, constants=None, **kw) -> None:
    model = make_model(op_type, inputs, attrs, constants, **kw)
    with pytest.raises(UnsupportedOpError) as error:
        import_onnx(model)
    assert error.value.node == f"{op_type} -> {', '.join(o for o in model.graph.node[0].output)}"


# ---- unary -------------------------------------------------------------------------------------

FLOAT_UNARY = [
    "Identity", "Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Neg", "Abs", "Floor", "Ceil", "Sign",
    "Sin", "Cos", "Softplus", "Softsign", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Selu",
]  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op_type", FLOAT_UNARY)
def test_float_unary(op_type: str, shape: tuple[int, ...]) -> None:
    check(op_type, {"x": rand(shape, low=-6, high=6)})


@pytest.mark.parametrize("shape", SHAPES[:3])
@pytest.mark.parametrize("op_type", ["Sqrt", "Log", "Reciprocal"])
def test_positive_unary(op_type: str, shape: tuple[int, ...]) -> None:
    check(op_type, {"x": rand(shape, low=0.05, high=9)})


def test_large_magnitudes() -> None:
    x = np.array([-100, -30, -1e-3, 0, 1e-3, 30, 100], np.float32)
    for op_type in ("Sigmoid", "Tanh", "Softplus", "Erf", "Elu", "Selu"):
        check(op_type, {"x": x})


# The inline polynomial expf / erff / tanhf (kernels/elementwise.h) on a dense grid across their
# branch points, the clamps and the special values.
DENSE = np.concatenate(
    [np.linspace(-12, 12, 24001), [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30, -1e-30, 88.8, -104]]
).astype(np.float32)


@pytest.mark.parametrize("op_type", ["Sigmoid", "Tanh", "Erf"])
def test_polynomial_math_dense(op_type: str) -> None:
    check(op_type, {"x": DENSE})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_dense(approximate: str) -> None:
    check("Gelu", {"x": DENSE}, {"approximate": approximate}, opset=20)


def test_round_half_to_even() -> None:
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -0.51, 3.7], np.float32)
    check("Round", {"x": x})


@pytest.mark.parametrize(
    "op_type, attrs",
    [
        ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
        ("LeakyRelu", {"alpha": 0.2}),
        ("Elu", {"alpha": 0.5}),
        ("Selu", {"alpha": 1.5, "gamma": 2.0}),
    ],
)
def test_unary_attrs(op_type: str, attrs: dict) -> None:
    check(op_type, {"x": rand((3, 11), low=-5, high=5)}, attrs)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op_type", ["Identity", "Relu", "Neg", "Abs", "Sign"])
def test_int_unary(op_type: str, dtype) -> None:
    if op_type == "Relu" and dtype == np.int64:
        pytest.skip("onnxruntime has no int64 Relu")
    check(op_type, {"x": rand((4, 9), dtype, -100, 100)})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_gelu(approximate: str, shape: tuple[int, ...]) -> None:
    check("Gelu", {"x": rand(shape, low=-5, high=5)}, {"approximate": approximate}, opset=20)


def test_not_isnan_isinf() -> None:
    check("Not", {"x": rand((3, 7)) > 0})
    x = np.array([[np.nan, np.inf, -np.inf, 0, -1.5, 3e38]], np.float32)
    check("IsNaN", {"x": x})
    for pos, neg in [(1, 1), (1, 0), (0, 1), (0, 0)]:
        check("IsInf", {"x": x}, {"detect_positive": pos, "detect_negative": neg})


def test_dropout_is_identity_with_true_mask() -> None:
    x = rand((2, 5, 3))
    check("Dropout", {"x": x})
    check("Dropout", {"x": x}, n_outputs=2)
    check(
        "Dropout",
        {"x": x},
        constants={"ratio": np.array(0.5, np.float32), "training_mode": np.array(False)},
        n_outputs=2,
    )


def test_dropout_training_unsupported() -> None:
    constants = {"ratio": np.array(0.5, np.float32), "training_mode": np.array(True)}
    assert_unsupported("Dropout", {"x": rand((2, 3))}, constants=constants)


# ---- Clip --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES[:4])
@pytest.mark.parametrize("bounds", [(-1.0, 2.0), (-1.0, None), (None, 0.5), (None, None)])
def test_clip_float(shape: tuple[int, ...], bounds: tuple) -> None:
    low, high = (None if b is None else np.array(b, np.float32) for b in bounds)
    constants = {"min" if low is not None else "": low}
    if high is not None:
        constants["max"] = high
    if low is None and high is None:
        constants = {}
    check("Clip", {"x": rand(shape)}, constants=constants)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_clip_int(dtype) -> None:
    x = rand((5, 13), dtype, 0 if dtype == np.uint8 else -100, 100)
    check("Clip", {"x": x}, constants={"min": np.array(3, dtype), "max": np.array(50, dtype)})
    check("Clip", {"x": x}, constants={"": None, "max": np.array(7, dtype)})
    check("Clip", {"x": x})


def test_clip_opset11_and_attribute_bounds() -> None:
    x = rand((4, 6))
    check("Clip", {"x": x}, constants={"min": np.array(0, np.float32)}, opset=11)
    # Old exporters put the bounds in attributes; they still import.
    model = make_model("Clip", {"x": x}, {"min": -0.5, "max": 0.25}, opset=11)
    np.testing.assert_array_equal(run_reference(model, {"x": x})[0], np.clip(x, -0.5, 0.25))


def test_clip_dynamic_bound_unsupported() -> None:
    inputs = {"x": rand((3,)), "low": np.zeros((), np.float32)}
    assert_unsupported("Clip", inputs)


# ---- Cast --------------------------------------------------------------------------------------

CASTS = [
    (np.float32, TensorProto.INT32),
    (np.float32, TensorProto.INT64),
    (np.float32, TensorProto.INT8),
    (np.float32, TensorProto.BOOL),
    (np.float32, TensorProto.FLOAT),
    (np.int32, TensorProto.FLOAT),
    (np.int64, TensorProto.INT32),
    (np.int8, TensorProto.INT64),
    (np.uint8, TensorProto.FLOAT),
    (np.bool_, TensorProto.FLOAT),
    (np.bool_, TensorProto.INT64),
]


@pytest.mark.parametrize("dtype, to", CASTS)
def test_cast(dtype, to: int) -> None:
    x = rand((3, 7, 2), np.float32, -100, 100)
    x[0, 0, :] = 0
    if dtype == np.bool_:
        x = x > 0
    elif dtype == np.uint8:
        x = np.abs(x)
    check("Cast", {"x": x.astype(dtype)}, {"to": to})


def test_cast_like() -> None:
    x = rand((2, 9), low=-50, high=50)
    check("CastLike", {"x": x}, constants={"like": np.zeros((1,), np.int32)})
    check("CastLike", {"x": x.astype(np.int64), "like": np.zeros((2,), np.float32)})


def test_cast_unsupported_type() -> None:
    assert_unsupported("Cast", {"x": rand((3,))}, {"to": TensorProto.STRING})


# ---- binary ------------------------------------------------------------------------------------

BROADCASTS = [
    ((7,), (7,)),
    ((3, 5), (5,)),
    ((2, 3, 17), (2, 1, 17)),
    ((1, 4, 1, 9), (3, 1, 6, 1)),
    ((2, 1, 3, 2, 5), ()),
    ((), (4, 3)),
]
ARITHMETIC = ["Add", "Sub", "Mul", "Div", "Max", "Min"]


@pytest.mark.parametrize("shapes", BROADCASTS)
@pytest.mark.parametrize(
    "op_type", [*ARITHMETIC, "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"]
)
def test_binary_float(op_type: str, shapes) -> None:
    a, b = rand(shapes[0]), rand(shapes[1], low=0.5, high=4)
    if op_type == "Equal":
        b = np.round(b)
        a = np.round(a)
    check(op_type, {"a": a, "b": b})


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op_type", [*ARITHMETIC, "Equal", "Less", "Greater"])
def test_binary_int(op_type: str, dtype) -> None:
    a = rand((4, 11), dtype, -20, 20)
    b = rand((11,), dtype, 1, 9) * np.where(np.arange(11) % 2 == 0, 1, -1).astype(dtype)
    check(op_type, {"a": a, "b": b})


def test_binary_with_constant() -> None:
    check("Add", {"a": rand((2, 3))}, constants={"b": np.array([1, 2, 3], np.float32)})
    check("Div", {"a": rand((2, 3))}, constants={"b": np.array(4, np.float32)})


@pytest.mark.parametrize("op_type", ["And", "Or", "Xor"])
@pytest.mark.parametrize("shapes", BROADCASTS[:5])
def test_logical(op_type: str, shapes) -> None:
    check(op_type, {"a": rand(shapes[0]) > 0, "b": rand(shapes[1]) > 0})


@pytest.mark.parametrize("shapes", BROADCASTS[:4])
def test_pow(shapes) -> None:
    base = rand(shapes[0], low=0.1, high=3)
    check("Pow", {"a": base, "b": rand(shapes[1], low=-2, high=2)})
    check("Pow", {"a": base}, constants={"b": np.array(2, np.int64)})  # int exponent
    check("Pow", {"a": -base}, constants={"b": np.array([3.0], np.float32)})


@pytest.mark.parametrize("power", [2.0, 3.0, 2.5])
def test_pow_constant_special_values(power: float) -> None:
    """Exponents 2 and 3 compile to products: NaN, infinities and -0 as powf has them."""
    a = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -1.5, 1e13, -3e-20, 7.0], np.float32)
    check("Pow", {"a": a}, constants={"b": np.array(power, np.float32)})


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_pow_int(dtype) -> None:
    check("Pow", {"a": rand((3, 5), dtype, -5, 5), "b": rand((5,), dtype, 0, 4)})


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_int(dtype, fmod: int) -> None:
    a = rand((3, 10), dtype, -50, 50)
    b = np.array([3, -3, 7, -7, 1, 5, -2, 2, 9, -11], dtype)
    check("Mod", {"a": a, "b": b}, {"fmod": fmod})


def test_mod_float() -> None:
    check("Mod", {"a": rand((4, 6), low=-9, high=9), "b": rand((6,), low=0.5, high=3)}, {"fmod": 1})
    assert_unsupported("Mod", {"a": rand((4,)), "b": rand((4,))}, {"fmod": 0})


@pytest.mark.parametrize(
    "x_shape, slope_shape",
    [((2, 3, 5, 4), (3, 1, 1)), ((7,), (1,)), ((3, 5), (3, 5)), ((2, 6, 3), (3,))],
)
def test_prelu(x_shape, slope_shape) -> None:
    check("PRelu", {"x": rand(x_shape)}, constants={"slope": rand(slope_shape, low=0, high=1)})


@pytest.mark.parametrize("op_type", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("shapes", [[(3, 5)], [(3, 5), (5,)], [(2, 1, 4), (3, 1), (1, 4)]])
def test_variadic(op_type: str, shapes) -> None:
    inputs = {f"x{i}": rand(s, low=-5 - i, high=5 + i) for i, s in enumerate(shapes)}
    check(op_type, inputs)


def test_variadic_int() -> None:
    inputs = {f"x{i}": rand((4, 3), np.int32, -9, 9) for i in range(3)}
    for op_type in ("Max", "Min"):  # ONNX Sum and Mean are float only
        check(op_type, inputs)


@pytest.mark.parametrize(
    "shapes", [((3, 5), (3, 5), (3, 5)), ((4, 1), (1, 6), ()), ((2, 3, 1), (3, 4), (2, 1, 4))]
)
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_where(shapes, dtype) -> None:
    inputs = {"c": rand(shapes[0]) > 0, "x": rand(shapes[1], dtype), "y": rand(shapes[2], dtype)}
    check("Where", inputs)


# ---- BatchNormalization ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (1, 4, 3, 5), (2, 3, 2, 2, 3)])
def test_batch_norm(shape: tuple[int, ...]) -> None:
    c = shape[1]
    params = {
        "scale": rand((c,), low=0.5, high=2),
        "bias": rand((c,)),
        "mean": rand((c,)),
        "var": rand((c,), low=0.1, high=3),
    }
    check("BatchNormalization", {"x": rand(shape)}, {"epsilon": 1e-3}, params)
    check("BatchNormalization", {"x": rand(shape)}, None, params, opset=11)


def test_batch_norm_training_unsupported() -> None:
    params = {n: np.ones((3,), np.float32) for n in ("scale", "bias", "mean", "var")}
    assert_unsupported(
        "BatchNormalization", {"x": rand((2, 3, 4))}, {"training_mode": 1}, params, n_outputs=3
    )


# ---- LayerNormalization's optional outputs (Y alone is tested in test_reduce.py) --------------


@pytest.mark.parametrize("axis", [-1, 1, 0])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm_mean_and_inv_std_dev(axis: int, with_bias: bool) -> None:
    x = rand((2, 3, 5))
    params = {"scale": rand(x.shape[axis:])} | ({"bias": rand(x.shape[axis:])} if with_bias else {})
    check("LayerNormalization", {"x": x}, {"axis": axis, "epsilon": 1e-3}, params, n_outputs=3)


def test_layer_norm_inv_std_dev_alone() -> None:
    """Output 1 (Mean) left unnamed: InvStdDev is still output 2 of the node."""
    model = make_model("LayerNormalization", {"x": rand((4, 7))}, None, {"s": rand((7,))}, 3)
    model.graph.node[0].output[1] = ""
    model.graph.output.remove(model.graph.output[1])
    x = rand((4, 7))
    expected = run_onnxruntime(model, {"x": x})
    assert_close(run_reference(model, {"x": x}), expected, 1e-5, 1e-6, "reference")
    assert_close(run_compiled(model, {"x": x}), expected, 1e-5, 1e-6, "compiled")


def test_layer_norm_stats_need_float32_stash() -> None:
    attrs = {"stash_type": TensorProto.BFLOAT16}
    x, scale = rand((2, 3)), {"s": rand((3,))}
    assert_unsupported("LayerNormalization", {"x": x}, attrs, scale, n_outputs=3)
    check("LayerNormalization", {"x": x}, {"stash_type": 1}, scale, n_outputs=2)


def test_unsupported_names_node() -> None:
    assert_unsupported("Gelu", {"x": rand((3,))}, {"approximate": "fast"}, opset=20)

"""Inputs at the edges of their types: integer overflow, zero divisors, NaN, infinities, empty
dims. Each op has one defined result (README "Semantics of edge values"): the reference and the
compiled C agree on it, and with onnxruntime wherever onnxruntime defines one."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from harness import check_op, make_model, run_compiled, run_onnxruntime, run_reference
from onnx import TensorProto, helper

import xgen
from xgen.errors import InputError

NAN, INF = np.nan, np.inf

# ---- integer arithmetic ------------------------------------------------------------------------

# (node name, op, inputs, attributes) of the integer edge model: every output is one op of a, b
INT_OPS = [
    ("div", "Div", ["a", "b"], {}),
    ("mod", "Mod", ["a", "b"], {}),
    ("fmod", "Mod", ["a", "b"], {"fmod": 1}),
    ("add", "Add", ["a", "b"], {}),
    ("sub", "Sub", ["a", "b"], {}),
    ("mul", "Mul", ["a", "b"], {}),
    ("neg", "Neg", ["a"], {}),
    ("abs", "Abs", ["a"], {}),
]


def int_model(dtype: type, n: int, ops: list = INT_OPS) -> onnx.ModelProto:
    """A graph of the given ops, each on the inputs a and b of n elements of dtype."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes = [helper.make_node(op, ins, [name], name=name, **at) for name, op, ins, at in ops]
    graph = helper.make_graph(
        nodes,
        "int_edges",
        [helper.make_tensor_value_info(v, elem, [n]) for v in "ab"],
        [helper.make_tensor_value_info(name, elem, [n]) for name, *_ in ops],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run_in_child(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Compile and run model in a child process, so that a trap (SIGFPE) fails the test instead
    of killing the test run; the child prints the outputs' repr."""
    folder = Path(tempfile.mkdtemp(prefix="xgen-edge-"))
    onnx.save(model, folder / "m.onnx")
    np.savez(folder / "feeds.npz", **feeds)
    script = (
        "import numpy as np, xgen\n"
        f"m = xgen.compile({str(folder / 'm.onnx')!r})\n"
        f"out = m.run(dict(np.load({str(folder / 'feeds.npz')!r})))\n"
        f"np.savez({str(folder / 'out.npz')!r}, **out)\n"
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert child.returncode == 0, f"child exited with {child.returncode}: {child.stderr[-2000:]}"
    return dict(np.load(folder / "out.npz"))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_int_arithmetic_defined_at_the_lowest_value(dtype) -> None:
    """The lowest value divided by -1 wraps to itself (x86 traps on it in C), its remainder is 0,
    and +, -, *, negation and Abs wrap modulo 2^bits, as numpy gives."""
    low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
    a = np.array([low, low, low, high, high, -7, 7, low, -1], dtype)
    b = np.array([-1, 1, low, -1, high, 2, -2, 2, low], dtype)
    result = run_in_child(int_model(dtype, len(a)), {"a": a, "b": b})
    with np.errstate(all="ignore"):
        expected = {
            "div": np.array([low, low, 1, -high, 1, -3, -3, low // 2, 0], dtype),
            "mod": np.mod(a, b),
            "fmod": np.fmod(a, b),
            "add": a + b,
            "sub": a - b,
            "mul": a * b,
            "neg": -a,
            "abs": np.abs(a),
        }
    assert expected["mod"][0] == expected["fmod"][0] == 0
    reference = run_reference(int_model(dtype, len(a)), {"a": a, "b": b})
    for (name, *_), ref in zip(INT_OPS, reference, strict=True):
        np.testing.assert_array_equal(result[name], expected[name], err_msg=f"{name} compiled")
        np.testing.assert_array_equal(ref, expected[name], err_msg=f"{name} reference")
    # onnxruntime agrees wherever it does not trap (its Div of the lowest value by -1 does)
    ops = INT_OPS[1:]
    ort = run_onnxruntime(int_model(dtype, len(a), ops), {"a": a, "b": b})
    for (name, *_), got in zip(ops, ort, strict=True):
        np.testing.assert_array_equal(result[name], got, err_msg=f"{name} onnxruntime")


@pytest.mark.parametrize("op, attrs, what", [
    ("Div", {}, "division"), ("Mod", {}, "modulo"), ("Mod", {"fmod": 1}, "modulo"),
])  # fmt: skip
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_int_division_by_zero_fails_the_run(op: str, attrs: dict, what: str, dtype) -> None:
    """As onnxruntime raises: the run fails with an InputError naming the node, where the C
    would trap or silently give 0; the reference raises the same."""
    model = int_model(dtype, 5, [("q", op, ["a", "b"], attrs)])
    a, b = np.arange(5, dtype=dtype), np.array([1, 2, 0, -1, 3], dtype)
    message = f"node 'q' ({op}): integer {what} by zero"
    with pytest.raises(Exception, match="by zero"):
        run_onnxruntime(model, {"a": a, "b": b})
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_reference(model, {"a": a, "b": b})
    compiled = xgen.compile(model)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compiled.run({"a": a, "b": b})
    ok = {"a": a, "b": np.array([1, 2, 5, -1, 3], dtype)}  # the next run is fine again
    np.testing.assert_array_equal(compiled.run(ok)["q"], run_onnxruntime(model, ok)[0])


def test_int_division_by_zero_inside_a_fused_loop() -> None:
    """Div fused with its neighbours into one loop still fails the run, naming the Div."""
    ops = [("d", "Div", ["a", "b"], {}), ("s", "Add", ["d", "a"], {}), ("y", "Mul", ["s", "b"], {})]
    model = int_model(np.int32, 6, ops)
    model.graph.output.pop(0)
    model.graph.output.pop(0)  # only y: d and s stay inside the fused loop
    compiled = xgen.compile(model)
    a, b = np.arange(6, dtype=np.int32), np.array([1, 2, 3, 0, 1, 1], np.int32)
    with pytest.raises(InputError, match="integer division by zero in Div 'd'"):
        compiled.run({"a": a, "b": b})


# ---- NaN and infinities ------------------------------------------------------------------------


def nan_rows(n: int) -> np.ndarray:
    """Rows of n floats with NaN first, inside, last, everywhere and nowhere, and +-inf."""
    x = np.linspace(-3, 3, 5 * n, dtype=np.float32).reshape(5, n)
    x[0, 0] = x[1, n // 2] = x[2, -1] = NAN
    x[3] = NAN
    x[4, 1], x[4, -2] = INF, -INF
    return x


def assert_same(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Equal, NaN where expected has NaN (rounding aside)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, what
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=0, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("op_type, select_last", [
    ("ReduceMax", 0), ("ReduceMin", 0), ("ArgMax", 0), ("ArgMin", 0), ("ArgMax", 1), ("ArgMin", 1),
])  # fmt: skip
@pytest.mark.parametrize("axis", [1, 0])  # contiguous rows, then columns (blocked loop)
def test_reductions_propagate_nan(op_type: str, select_last: int, axis: int) -> None:
    """A NaN anywhere in the reduced elements gives NaN, as numpy's max (onnxruntime's depends
    on where the NaN is), and ArgMax / ArgMin point at the first NaN (the last with
    select_last_index), as numpy's argmax."""
    x = nan_rows(37)  # 37: two 16-lane blocks and a tail
    x = x if axis == 1 else np.ascontiguousarray(x.T)
    if op_type.startswith("Reduce"):
        model = make_model(op_type, {"x": x}, {"keepdims": 0}, {"axes": np.array([axis])}, opset=18)
    else:
        attrs = {"axis": axis, "keepdims": 0, "select_last_index": select_last}
        model = make_model(op_type, {"x": x}, attrs)
    (compiled,), (reference,) = run_compiled(model, {"x": x}), run_reference(model, {"x": x})
    if op_type.startswith("Reduce"):
        numpy = (np.max if op_type == "ReduceMax" else np.min)(x, axis=axis)
        assert np.isnan(numpy[:4]).all() and not np.isnan(numpy[4])
    else:
        find = np.argmax if op_type == "ArgMax" else np.argmin
        flipped = np.flip(x, axis)
        numpy = x.shape[axis] - 1 - find(flipped, axis) if select_last else find(x, axis)
        assert list(numpy[:4]) == [0, 37 // 2, 36, 36 if select_last else 0]
    assert_same(reference, numpy.astype(reference.dtype), f"{op_type} reference")
    assert_same(compiled, numpy.astype(compiled.dtype), f"{op_type} compiled")
    expected = run_onnxruntime(model, {"x": x})[0]
    for row in (4,) if select_last else (3, 4):  # none NaN; all NaN (NaN first, too)
        assert_same(compiled[row], expected[row], f"{op_type} row {row} against onnxruntime")


def test_global_max_pool_propagates_nan() -> None:
    """GlobalMaxPool (a ReduceMax) gives NaN for a channel holding one, as MaxPool does."""
    x = nan_rows(20).reshape(1, 5, 4, 5)
    for op_type, attrs in [("GlobalMaxPool", {}), ("MaxPool", {"kernel_shape": [4, 5]})]:
        model = make_model(op_type, {"x": x}, attrs)
        expected = np.max(x, axis=(2, 3), keepdims=True)
        assert_same(run_reference(model, {"x": x})[0], expected, f"{op_type} reference")
        assert_same(run_compiled(model, {"x": x})[0], expected, f"{op_type} compiled")


def test_log_sum_exp_of_infinities() -> None:
    """An infinite max no longer turns into inf - inf = NaN: [1, inf, 0] gives inf, all -inf
    gives -inf, as onnxruntime; NaN stays NaN."""
    x = np.array([[1, INF, 0], [-INF, -INF, -INF], [1, NAN, 2], [1000, 999, -1000]], np.float32)
    check_op("ReduceLogSumExp", {"x": x}, {"keepdims": 0}, {"axes": np.array([1])}, opset=18)
    check_op("ReduceLogSumExp", {"x": x}, {"keepdims": 1}, {"axes": np.array([1])}, opset=18)


@pytest.mark.parametrize("transform", ["half_pixel", "align_corners", "asymmetric"])
def test_linear_resize_next_to_an_infinity(transform: str) -> None:
    """A position clamped to the last input row or column gives that input, inf included,
    where weights 1 and 0 gave 0 * inf = NaN; elsewhere as onnxruntime (a weight 0 next to an
    inf makes NaN there too)."""
    x = np.array([[[[0, 1, 2, INF], [1, 2, 3, 4], [4, -INF, 5, 6]]]], np.float32)
    for scales in ([1, 1, 2, 2], [1, 1, 1.5, 1.5], [1, 1, 0.5, 0.5]):
        check_op(
            "Resize", {"x": x}, {"mode": "linear", "coordinate_transformation_mode": transform},
            {"": None, "scales": np.array(scales, np.float32)}, opset=18,
        )  # fmt: skip


def empty_mean_model(dtype: type) -> onnx.ModelProto:
    """ReduceMean over an axis that a Slice empties: x[3, 4] -> x[:, 0:0] -> mean over axis 1."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    consts = {"s": [0], "e": [0], "ax": [1]}
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["x", "s", "e", "ax"], ["empty"]),
            helper.make_node("ReduceMean", ["empty"], ["y"], axes=[1], keepdims=0),
        ],
        "empty_mean",
        [helper.make_tensor_value_info("x", elem, [3, 4])],
        [helper.make_tensor_value_info("y", elem, [3])],
        [helper.make_tensor(k, TensorProto.INT64, [1], v) for k, v in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("dtype, expected", [(np.float32, NAN), (np.int32, 0)])
def test_mean_of_no_elements(dtype, expected: float) -> None:
    """0 / 0: NaN for floats as numpy's mean (onnxruntime gives 0; ONNX leaves it undefined),
    0 for integers, which have no NaN."""
    model = empty_mean_model(dtype)
    x = {"x": np.ones((3, 4), dtype)}
    want = np.full(3, expected, dtype)
    assert_same(run_reference(model, x)[0], want, "reference")
    assert_same(run_compiled(model, x)[0], want, "compiled")


@pytest.mark.parametrize("op_type", ["Erf", "Gelu"])
def test_erf_of_a_scalar(op_type: str) -> None:
    """A 0-d input (or constant, which import folds with the reference) works: the reference's
    erf once returned a Python float for it."""
    check_op(op_type, {"x": np.array(0.7, np.float32)}, opset=20)


def test_int_mean_of_the_lowest_value() -> None:
    """An integer mean truncates toward zero, also where the sum is the lowest int64 (whose
    absolute value numpy's np.abs cannot hold)."""
    low = np.iinfo(np.int64).min
    x = np.array([[low, 0], [-7, 0], [7, 0]], np.int64)
    check_op("ReduceMean", {"x": x}, {"keepdims": 0}, {"axes": np.array([1])}, opset=18)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_int_to_a_real_power(dtype) -> None:
    """An integer base with a float exponent is raised to the real power, then truncated as
    onnxruntime does (9 ** 2.5 = 243; NaN gives the lowest value): the exponent was once cast to
    the base's type first, computing 9 ** 2."""
    a = np.array([4, 9, 2, -8, 3, 0, 7], dtype)
    b = np.array([0.5, 2.5, -1.0, 1 / 3, 3.0, 0.0, 1.5], np.float32)
    check_op("Pow", {"a": a, "b": b})

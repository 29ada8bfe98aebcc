"""The fuzzer's seed corpus: small valid ONNX models covering many ops, built in code.

Shapes are tiny so that a mutated case compiles in about a second; weights come from a fixed
numpy seed so that the corpus (and so every case) is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as H
from onnx import numpy_helper as NH

OPSET = 17


def _model(
    name: str,
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int, list[int]]],
    outputs: list[str],
    constants: dict[str, np.ndarray],
) -> onnx.ModelProto:
    """A checked opset-17 model; output types come from ONNX's shape inference."""
    graph = H.make_graph(
        nodes,
        name,
        [H.make_tensor_value_info(n, elem, shape) for n, (elem, shape) in inputs.items()],
        [onnx.ValueInfoProto(name=o) for o in outputs],
        [NH.from_array(a, n) for n, a in constants.items()],
    )
    model = H.make_model(graph, opset_imports=[H.make_opsetid("", OPSET)])
    model.ir_version = 8
    inferred = {v.name: v.type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for out in model.graph.output:
        out.type.CopyFrom(inferred[out.name])
    onnx.checker.check_model(model, full_check=True)
    return model


def _weights(seed: int) -> Callable[..., np.ndarray]:
    rng = np.random.default_rng(seed)
    return lambda *shape: rng.standard_normal(shape).astype(np.float32)


def cnn() -> onnx.ModelProto:
    """xgen.zoo's Fashion-MNIST CNN in miniature: Conv, BatchNorm, Relu, MaxPool, Gemm."""
    w = _weights(1)
    nodes = [
        H.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        H.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["n1"]),
        H.make_node("Relu", ["n1"], ["r1"]),
        H.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        H.make_node("Conv", ["p1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        H.make_node("Relu", ["c2"], ["r2"]),
        H.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        H.make_node("Flatten", ["gap"], ["flat"]),
        H.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    constants = {
        "w1": w(4, 1, 3, 3), "b1": w(4), "g": w(4), "beta": w(4), "mean": w(4),
        "var": np.abs(w(4)) + 0.5, "w2": w(4, 4, 3, 3), "fc_w": w(3, 4), "fc_b": w(3),
    }  # fmt: skip
    return _model("cnn", nodes, {"x": (T.FLOAT, [1, 1, 8, 8])}, ["y"], constants)


def pools() -> onnx.ModelProto:
    nodes = [
        H.make_node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                    count_include_pad=1),
        H.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2], strides=[2, 1]),
        H.make_node("AveragePool", ["x"], ["s"], kernel_shape=[2, 2], strides=[2, 2]),
        H.make_node("GlobalMaxPool", ["x"], ["g"]),
    ]  # fmt: skip
    return _model("pools", nodes, {"x": (T.FLOAT, [1, 2, 6, 6])}, ["a", "m", "s", "g"], {})


def matmul() -> onnx.ModelProto:
    w = _weights(2)
    nodes = [
        H.make_node("MatMul", ["x", "w"], ["mm"]),
        H.make_node("Add", ["mm", "b"], ["h"]),
        H.make_node("Softmax", ["h"], ["y"], axis=-1),
        H.make_node("Gemm", ["x2", "w2", "c"], ["z"], alpha=0.5, beta=2.0, transA=1),
    ]
    inputs = {"x": (T.FLOAT, [2, 3, 4]), "x2": (T.FLOAT, [4, 3])}
    constants = {"w": w(4, 5), "b": w(5), "w2": w(4, 2), "c": w(3, 2)}
    return _model("matmul", nodes, inputs, ["y", "z"], constants)


def float_arith() -> onnx.ModelProto:
    w = _weights(3)
    nodes = [
        H.make_node("Add", ["a", "b"], ["s"]),
        H.make_node("Mul", ["s", "k"], ["p"]),
        H.make_node("Sub", ["p", "a"], ["d"]),
        H.make_node("Div", ["d", "den"], ["q"]),
        H.make_node("Sigmoid", ["q"], ["y"]),
        H.make_node("Sqrt", ["b"], ["r"]),
    ]
    inputs = {"a": (T.FLOAT, [2, 3]), "b": (T.FLOAT, [3])}
    constants = {"k": w(2, 3), "den": np.abs(w(3)) + 1}
    return _model("float_arith", nodes, inputs, ["y", "r"], constants)


def int_arith() -> onnx.ModelProto:
    nodes = [
        H.make_node("Add", ["a", "b"], ["s"]),
        H.make_node("Mul", ["s", "k"], ["p"]),
        H.make_node("Sub", ["p", "b"], ["d"]),
        H.make_node("Div", ["d", "den"], ["q"]),
        H.make_node("Mod", ["d", "den"], ["m"]),
        H.make_node("Cast", ["a"], ["a32"], to=T.INT32),
        H.make_node("Div", ["a32", "b32"], ["q32"]),
    ]
    inputs = {"a": (T.INT64, [2, 3]), "b": (T.INT64, [3])}
    constants = {
        "k": np.array([[2, -3, 4], [-5, 6, 7]], np.int64),
        "den": np.array([3, -2, 5], np.int64),
        "b32": np.array([[1, 2, -3], [4, -5, 6]], np.int32),
    }
    return _model("int_arith", nodes, inputs, ["q", "m", "q32"], constants)


def int_division() -> onnx.ModelProto:
    """Integer Div and Mod of extreme numerators by small random divisors (0 and -1 included)."""
    nodes = [
        H.make_node("Div", ["n64", "d64"], ["q64"]),
        H.make_node("Mod", ["n64", "d64"], ["m64"]),
        H.make_node("Div", ["n32", "d32"], ["q32"]),
        H.make_node("Mod", ["n32", "d32"], ["f32"], fmod=1),
    ]
    inputs = {"d64": (T.INT64, [3]), "d32": (T.INT32, [3])}  # small: often free of zeros
    big64, big32 = np.iinfo(np.int64), np.iinfo(np.int32)
    constants = {
        "n64": np.array([[big64.min, big64.max, -7], [7, 0, 5]], np.int64),
        "n32": np.array([[big32.min, big32.max, -7], [7, 0, 5]], np.int32),
    }
    return _model("int_division", nodes, inputs, ["q64", "m64", "q32", "f32"], constants)


def nonfinite() -> onnx.ModelProto:
    """NaN and infinities through max/min reductions, pools, LogSumExp and linear Resize."""
    special = np.array([np.nan, np.inf, -np.inf, 0, 1, -1], np.float32).reshape(1, 1, 2, 3)
    scales = np.array([1, 1, 2, 2], np.float32)
    nodes = [
        H.make_node("Add", ["x", "special"], ["s"]),
        H.make_node("ReduceMax", ["s"], ["rmax"], axes=[3]),
        H.make_node("ReduceMin", ["s"], ["rmin"], axes=[2, 3]),
        H.make_node("GlobalMaxPool", ["s"], ["gmax"]),
        H.make_node("MaxPool", ["s"], ["mp"], kernel_shape=[2, 2]),
        H.make_node("ReduceLogSumExp", ["s"], ["lse"], axes=[3]),
        H.make_node("Resize", ["s", "", "scales"], ["rs"], mode="linear"),
    ]
    outputs = ["rmax", "rmin", "gmax", "mp", "lse", "rs"]
    constants = {"special": special, "scales": scales}
    return _model("nonfinite", nodes, {"x": (T.FLOAT, [2, 1, 2, 3])}, outputs, constants)


def shape_ops() -> onnx.ModelProto:
    w = _weights(4)
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    nodes = [
        H.make_node("Reshape", ["x", "shape"], ["r"]),
        H.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
        H.make_node("Concat", ["t", "c"], ["cat"], axis=1),
        H.make_node("Slice", ["cat", "starts", "ends", "axes", "steps"], ["sl"]),
        H.make_node("Gather", ["sl", "idx"], ["y"], axis=2),
        H.make_node("Unsqueeze", ["y", "uax"], ["u"]),
        H.make_node("Squeeze", ["u", "uax"], ["z"]),
    ]
    constants = {
        "shape": i64(2, 3, 4), "c": w(2, 2, 3), "starts": i64(0, 1), "ends": i64(2, 6),
        "axes": i64(0, 1), "steps": i64(1, 2), "idx": i64(2, 0, -1), "uax": i64(1),
    }  # fmt: skip
    return _model("shape_ops", nodes, {"x": (T.FLOAT, [4, 6])}, ["z"], constants)


def shape_ops2() -> onnx.ModelProto:
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    nodes = [
        H.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
        H.make_node("Split", ["p", "split"], ["s0", "s1"], axis=1),
        H.make_node("Expand", ["s0", "eshape"], ["e"]),
        H.make_node("Tile", ["s1", "reps"], ["t"]),
        H.make_node("Flatten", ["t"], ["y"], axis=1),
    ]
    constants = {
        "pads": i64(0, 1, 1, 0), "split": i64(1, 3), "eshape": i64(2, 3, 3), "reps": i64(1, 2),
    }
    return _model("shape_ops2", nodes, {"x": (T.FLOAT, [2, 3])}, ["e", "y"], constants)


def reduce() -> onnx.ModelProto:
    nodes = [
        H.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1),
        H.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
        H.make_node("ReduceMax", ["x"], ["mx"], axes=[-1], keepdims=0),
        H.make_node("ReduceMin", ["x"], ["mn"], axes=[0]),
        H.make_node("ReduceLogSumExp", ["x"], ["l"], axes=[2]),
        H.make_node("ArgMax", ["x"], ["am"], axis=1, keepdims=0),
    ]
    outputs = ["s", "m", "mx", "mn", "l", "am"]
    constants = {"axes": np.array([1], np.int64)}
    return _model("reduce", nodes, {"x": (T.FLOAT, [2, 3, 4])}, outputs, constants)


def resize() -> onnx.ModelProto:
    scales = np.array([1, 1, 2, 1.5], np.float32)
    nodes = [
        H.make_node("Resize", ["x", "", "scales"], ["n"], mode="nearest"),
        H.make_node("Resize", ["x", "", "scales"], ["l"], mode="linear",
                    coordinate_transformation_mode="half_pixel"),
    ]  # fmt: skip
    return _model("resize", nodes, {"x": (T.FLOAT, [1, 1, 3, 4])}, ["n", "l"], {"scales": scales})


def cast() -> onnx.ModelProto:
    nodes = [
        H.make_node("Mul", ["x", "ten"], ["big"]),
        H.make_node("Cast", ["big"], ["i"], to=T.INT32),
        H.make_node("Cast", ["i"], ["f"], to=T.FLOAT),
        H.make_node("Clip", ["f", "lo", "hi"], ["y"]),
        H.make_node("Cast", ["x"], ["l"], to=T.INT64),
        H.make_node("Cast", ["x"], ["b"], to=T.BOOL),
    ]
    constants = {
        "ten": np.array(10, np.float32), "lo": np.array(-5, np.float32),
        "hi": np.array(5, np.float32),
    }  # fmt: skip
    return _model("cast", nodes, {"x": (T.FLOAT, [2, 5])}, ["y", "l", "b"], constants)


def layernorm() -> onnx.ModelProto:
    w = _weights(5)
    nodes = [
        H.make_node("LayerNormalization", ["x", "scale", "bias"], ["n"], axis=-1, epsilon=1e-5),
        H.make_node("MatMul", ["n", "w"], ["h"]),
        H.make_node("Softmax", ["h"], ["y"], axis=1),
    ]
    constants = {"scale": w(4), "bias": w(4), "w": w(4, 4)}
    return _model("layernorm", nodes, {"x": (T.FLOAT, [2, 3, 4])}, ["y"], constants)


def depthwise() -> onnx.ModelProto:
    """A grouped, strided, dilated Conv and an elementwise chain xgen fuses."""
    w = _weights(6)
    nodes = [
        H.make_node("Conv", ["x", "w"], ["c"], group=2, strides=[2, 2], dilations=[1, 2],
                    pads=[1, 2, 1, 2]),
        H.make_node("Clip", ["c", "lo", "hi"], ["r"]),
        H.make_node("Mul", ["r", "s"], ["y"]),
    ]  # fmt: skip
    constants = {
        "w": w(4, 1, 3, 3), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32),
        "s": w(1, 4, 1, 1),
    }  # fmt: skip
    return _model("depthwise", nodes, {"x": (T.FLOAT, [1, 2, 7, 7])}, ["y"], constants)


def generators() -> onnx.ModelProto:
    """Ops whose output size comes from values: Range, ConstantOfShape, Expand, Constant."""
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    fill = NH.from_array(np.array([1.5], np.float32))
    nodes = [
        H.make_node("Range", ["start", "limit", "delta"], ["r"]),
        H.make_node("Cast", ["r"], ["rc"], to=T.FLOAT),
        H.make_node("Reshape", ["rc", "row"], ["rf"]),  # a known shape for ONNX's inference
        H.make_node("ConstantOfShape", ["shape"], ["ones"], value=fill),
        H.make_node("Constant", [], ["k"], value=NH.from_array(np.full([1, 6], 0.25, np.float32))),
        H.make_node("Expand", ["k", "shape"], ["e"]),
        H.make_node("Add", ["x", "rf"], ["s"]),
        H.make_node("Mul", ["s", "ones"], ["p"]),
        H.make_node("Sub", ["p", "e"], ["y"]),
    ]
    constants = {
        "start": np.array(0, np.int64), "limit": np.array(6, np.int64),
        "delta": np.array(1, np.int64), "shape": i64(2, 6), "row": i64(1, 6),
    }  # fmt: skip
    return _model("generators", nodes, {"x": (T.FLOAT, [2, 6])}, ["y"], constants)


def attention() -> onnx.ModelProto:
    """softmax(q k^T / sqrt(d)) v: the pattern xgen fuses into one attention kernel."""
    w = _weights(7)
    nodes = [
        H.make_node("MatMul", ["x", "wq"], ["q"]),
        H.make_node("MatMul", ["x", "wk"], ["k"]),
        H.make_node("MatMul", ["x", "wv"], ["v"]),
        H.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        H.make_node("MatMul", ["q", "kt"], ["s"]),
        H.make_node("Mul", ["s", "scale"], ["ss"]),
        H.make_node("Softmax", ["ss"], ["p"], axis=-1),
        H.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    constants = {
        "wq": w(8, 8), "wk": w(8, 8), "wv": w(8, 8), "scale": np.array(0.35, np.float32),
    }  # fmt: skip
    return _model("attention", nodes, {"x": (T.FLOAT, [1, 4, 8])}, ["y"], constants)


def misc() -> onnx.ModelProto:
    """Where, Greater, Pow, LogSoftmax, Erf, Softsign; Trilu and CumSum on a constant (folded)."""
    nodes = [
        H.make_node("Trilu", ["alt"], ["tri"], upper=0),
        H.make_node("CumSum", ["tri", "axis"], ["cs"]),
        H.make_node("Greater", ["x", "zero"], ["pos"]),
        H.make_node("Where", ["pos", "x", "cs"], ["w"]),
        H.make_node("Pow", ["w", "two"], ["sq"]),
        H.make_node("LogSoftmax", ["sq"], ["ls"], axis=1),
        H.make_node("Erf", ["ls"], ["er"]),
        H.make_node("Softsign", ["er"], ["y"]),
    ]
    constants = {
        "zero": np.array(0, np.float32), "alt": np.full([4, 4], -0.5, np.float32),
        "two": np.array(2, np.float32), "axis": np.array(1, np.int64),
    }  # fmt: skip
    return _model("misc", nodes, {"x": (T.FLOAT, [4, 4])}, ["y", "pos"], constants)


def upsample() -> onnx.ModelProto:
    """Decoder ops: ConvTranspose, InstanceNormalization, LeakyRelu, DepthToSpace, reflect Pad."""
    w = _weights(8)
    nodes = [
        H.make_node("ConvTranspose", ["x", "w", "b"], ["ct"], strides=[2, 2], pads=[1, 1, 1, 1],
                    output_padding=[1, 1], kernel_shape=[3, 3]),
        H.make_node("InstanceNormalization", ["ct", "g", "beta"], ["n"], epsilon=1e-5),
        H.make_node("LeakyRelu", ["n"], ["r"], alpha=0.1),
        H.make_node("DepthToSpace", ["r"], ["d"], blocksize=2, mode="CRD"),
        H.make_node("Pad", ["d", "pads"], ["y"], mode="reflect"),
    ]  # fmt: skip
    constants = {
        "w": w(2, 4, 3, 3), "b": w(4), "g": w(4), "beta": w(4),
        "pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64),
    }  # fmt: skip
    return _model("upsample", nodes, {"x": (T.FLOAT, [1, 2, 3, 3])}, ["y"], constants)


SEEDS: dict[str, Callable[[], onnx.ModelProto]] = {
    fn.__name__: fn
    for fn in (
        cnn, pools, matmul, float_arith, int_arith, int_division, nonfinite, shape_ops,
        shape_ops2, reduce, resize, cast, layernorm, depthwise, generators, attention, misc,
        upsample,
    )
}  # fmt: skip


def seed_models() -> dict[str, onnx.ModelProto]:
    return {name: build() for name, build in SEEDS.items()}

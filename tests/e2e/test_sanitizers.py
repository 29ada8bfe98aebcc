"""Every kernel family under AddressSanitizer and UBSan: zero reports, and no compiler warning.

Three small ONNX models on odd shapes (convolutions of every kernel; transformer ops; pooling,
reductions, resize, norms, data movement and integer arithmetic at the edges of its type), with
hostile but valid names, each built once with -fsanitize=address,undefined
-fno-sanitize-recover=all into a program of its own (tests/c_program.py) and run on two threads:
an out-of-bounds access or undefined behaviour (signed overflow, a misaligned access, a shift out
of range...) stops it. The outputs must also match the numpy reference.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from c_program import build_and_run, sanitized
from onnx import TensorProto, helper, numpy_helper

from xgen import passes
from xgen.codegen.cc import find_compiler
from xgen.codegen.emit import generate
from xgen.frontend.onnx import import_onnx
from xgen.ir.sparsity import PatternStructure, assign_patterns

RNG = np.random.default_rng(15)
F32 = TensorProto.FLOAT
X = 'x */ #error "x" \\\n??/'  # hostile but valid names reach comments and identifiers
Y = "y \u00e9\u540d"


class Builder:
    """An ONNX graph built node by node: constants become initializers, names are fresh."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, array: np.ndarray) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def rand(self, *shape: int, scale: float = 1.0) -> str:
        return self.const((RNG.standard_normal(shape) * scale).astype(np.float32))

    def __call__(self, op: str, *inputs: str, name: str = "", **attrs) -> str:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name or out, **attrs))
        return out

    def model(self, inputs: dict[str, tuple], outputs: list[str]) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "sanitized",
            [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
            [helper.make_tensor_value_info(o, 0, None) for o in outputs],
            self.inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def conv_model() -> onnx.ModelProto:
    """Direct NCHW (a weight computed at run time), channels last, Winograd, depthwise, pattern
    sparse, 1x1 and strided convolutions with fused epilogues, on 15 x 13 planes."""
    b = Builder()
    w_in = b("Mul", "w", b.const(np.float32(0.2)))
    direct = b("Relu", b("Conv", X, w_in, pads=[1, 1, 1, 1]))
    wide = b("Conv", X, b.rand(20, 6, 3, 3, scale=0.2), b.rand(20), pads=[1, 1, 1, 1])
    wide = b("Clip", wide, b.const(np.float32(0)), b.const(np.float32(6)))
    wino = b("Conv", wide, b.rand(24, 20, 3, 3, scale=0.1), pads=[1, 1, 1, 1])  # 16+ channels
    one = b("Conv", wino, b.rand(12, 24, 1, 1, scale=0.2), name="1x1 */")
    depthwise = b("Conv", one, b.rand(12, 1, 3, 3), group=12, strides=[2, 2], pads=[1, 0, 1, 1])
    library = ((0, 1, 3, 4), (1, 3, 4, 5), (4, 5, 7, 8))
    dense = RNG.standard_normal((16, 12, 3, 3)).astype(np.float32) / 10
    pattern = dense * PatternStructure(library, assign_patterns(dense, library, 0.75)).mask()
    sparse = b("Conv", one, b.const(pattern), pads=[1, 1, 1, 1])
    strided = b("Conv", sparse, b.rand(7, 16, 5, 5, scale=0.1), strides=[2, 3], dilations=[1, 2])
    model = b.model(
        {X: (F32, [2, 6, 15, 13]), "w": (F32, [8, 6, 3, 3])}, [direct, depthwise, strided]
    )
    return model


def transformer_model() -> onnx.ModelProto:
    """Linear layers (MatMul, Gemm), LayerNorm, GELU, fused attention with a mask over 23 keys
    and a head dim of 12, a batched MatMul of two computed operands, Softmax, a row sum and
    fused elementwise chains. 48 features: whole vectors, where gcc once warned."""
    b = Builder()
    h = b("LayerNormalization", X, b.rand(48), b.rand(48), axis=-1, epsilon=1e-5)
    q, k, v = (b("MatMul", h, b.rand(48, 48, scale=0.2)) for _ in range(3))

    def heads(t: str) -> str:  # [2, 23, 48] -> [2, 4, 23, 12]
        shape = b.const(np.array([2, 23, 4, 12]))
        return b("Transpose", b("Reshape", t, shape), perm=[0, 2, 1, 3])

    q, k, v = heads(q), heads(k), heads(v)
    scale = b.const(np.float32(0.3))
    scores = b("Mul", b("MatMul", q, b("Transpose", k, perm=[0, 1, 3, 2])), scale)
    mask = np.where(RNG.random((23, 23)) < 0.3, -1e4, 0).astype(np.float32)
    p = b("Softmax", b("Add", scores, b.const(mask)), axis=-1)
    att = b("Transpose", b("MatMul", p, v), perm=[0, 2, 1, 3])
    att = b("Reshape", att, b.const(np.array([2, 23, 48])))
    ff = b("Gelu", b("Add", b("MatMul", att, b.rand(48, 50, scale=0.2)), b.rand(50)))
    ff = b("Gemm", b("Reshape", ff, b.const(np.array([46, 50]))), b.rand(50, 17), b.rand(17))
    gram = b("Softmax", b("MatMul", h, b("Transpose", h, perm=[0, 2, 1])), axis=1)
    chain = b("Tanh", b("Mul", b("Sigmoid", h), b("Erf", h)), name=Y)
    chain = b("Div", b("Sub", chain, b("Sqrt", b("Abs", h))), b("Exp", b("Neg", h)))
    total = b("ReduceSum", h, b.const(np.array([-1])))
    return b.model({X: (F32, [2, 23, 48])}, [ff, gram, chain, total])


def misc_model() -> onnx.ModelProto:
    """Pooling (ceil mode, padding, dilation), reductions, ArgMax, Resize (linear, cubic,
    nearest), InstanceNorm, BatchNorm, data movement (Pad, Slice, Concat, Split, Gather,
    GatherND, Tile, Expand, Transpose), integer arithmetic at the edges of int32, int64 and
    uint8, and casts of NaN, infinities and huge floats to integers."""
    b = Builder()
    pools = [
        b("MaxPool", X, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=1),
        b("AveragePool", X, kernel_shape=[3, 2], strides=[2, 1], pads=[1, 1, 1, 0],
          count_include_pad=1, ceil_mode=1),
        b("MaxPool", X, kernel_shape=[2, 2], dilations=[2, 2]),
        b("GlobalAveragePool", X), b("GlobalMaxPool", X),
    ]  # fmt: skip
    reductions = [
        b("ReduceMean", X, b.const(np.array([2, 3])), keepdims=0),
        b("ReduceMax", X, b.const(np.array([1])), keepdims=1),
        b("ReduceSum", X, b.const(np.array([0, 2]))),
        b("ReduceLogSumExp", X, b.const(np.array([3]))),
        b("ArgMax", X, axis=2, select_last_index=1),
    ]
    scales = b.const(np.array([1, 1, 1.7, 0.6], np.float32))
    resizes = [
        b("Resize", X, "", scales, mode=mode, coordinate_transformation_mode=transform)
        for mode, transform in (("linear", "half_pixel"), ("cubic", "align_corners"),
                                ("nearest", "asymmetric"))
    ]  # fmt: skip
    variance = b.const(np.full(5, 2, np.float32))
    norms = [
        b("InstanceNormalization", X, b.rand(5), b.rand(5)),
        b("BatchNormalization", X, b.rand(5), b.rand(5), b.rand(5), variance),
    ]
    moved = b("Pad", X, b.const(np.array([0, 0, 2, 1, 0, 1, 1, 3])), mode="reflect")
    moved = b("Slice", moved, b.const(np.array([1, 9])), b.const(np.array([-1, 0])),
              b.const(np.array([2, 3])), b.const(np.array([2, -2])))  # fmt: skip
    split = helper.make_node("Split", [X], ["s0", "s1"], "split", axis=1, num_outputs=2)
    b.nodes.append(split)
    joined = b("Concat", "s1", "s0", axis=1)
    index = b.const(np.array([[2, -1], [0, 3]]))
    gathered = b("Gather", X, index, axis=3)
    gathered_nd = b("GatherND", X, b.const(np.array([[[1, 2], [4, 0]], [[0, 6], [3, 3]]])),
                    batch_dims=1)  # fmt: skip
    tiled = b("Tile", b("Transpose", X, perm=[0, 3, 1, 2]), b.const(np.array([1, 2, 1, 3])))
    mean = b("ReduceMean", X, b.const(np.array([1])))
    expanded = b("Expand", mean, b.const(np.array([2, 4, 1, 1])))
    ints = [b(op, "a", "i", name=f"{op} ??/") for op in ("Div", "Mul", "Add", "Sub")]
    ints += [b("Mod", "a", "i", fmod=f) for f in (0, 1)]
    ints += [b("Neg", "a"), b("Abs", "a"), b("Pow", "a", b.const(np.array([3], np.int32)))]
    ints += [b("ReduceSum", "a", keepdims=0), b("ReduceMean", "a", keepdims=0)]
    longs = [b("Div", "l", b.const(np.array([-1, 3, -1, 2, 7], np.int64))), b("Neg", "l")]
    longs += [b("Mul", "l", "l"), b("Cast", "l", to=TensorProto.INT8)]
    divisors = b.const(np.array([1, 2, 255, 3], np.uint8))
    bytes_ = [b("Abs", "u"), b("Sign", "u"), b("Mod", "u", divisors), b("Div", "u", divisors)]
    casts = [b("Cast", "f", to=to) for to in (TensorProto.INT32, TensorProto.INT64,
                                              TensorProto.INT8, TensorProto.UINT8)]  # fmt: skip
    outputs = [*pools, *reductions, *resizes, *norms, moved, joined, gathered, gathered_nd,
               tiled, expanded, *ints, *longs, *bytes_, *casts]  # fmt: skip
    inputs = {
        X: (F32, [2, 5, 11, 7]),
        "a": (TensorProto.INT32, [6]),
        "i": (TensorProto.INT32, [6]),
        "l": (TensorProto.INT64, [5]),
        "u": (TensorProto.UINT8, [4]),
        "f": (F32, [8]),
    }
    return b.model(inputs, outputs)


def feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Floats in [-1, 1]; integers at the edges (the lowest value by -1, overflowing sums), and
    floats that no integer type holds, to cast."""
    i32, i64 = np.iinfo(np.int32), np.iinfo(np.int64)
    edges = {
        "a": np.array([i32.min, i32.max, i32.min, -7, 7, 3], np.int32),
        "i": np.array([-1, 2, i32.min, 2, -2, i32.max], np.int32),
        "l": np.array([i64.min, i64.max, -5, i64.min + 1, 9], np.int64),
        "u": np.array([0, 255, 7, 200], np.uint8),
        "f": np.array([np.nan, np.inf, -np.inf, 3e9, -1e19, 300.5, -2.5, 255.9], np.float32),
    }
    result = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        result[value.name] = edges.get(value.name, RNG.uniform(-1, 1, shape).astype(np.float32))
    return result


# Each model's kernels, to see that the passes still pick them.
KERNELS = {
    conv_model: ["xg_conv(", "xg_conv_nhwc(", "xg_winograd_conv_nhwc(", "xg_depthwise_nhwc(",
                 "xg_pattern_conv_nhwc("],
    transformer_model: ["xg_attention(", "xg_sgemm_batched(", "xg_layer_norm(", "xg_softmax("],
    misc_model: ["xg_pool_nhwc(", "xg_resize_axis(", "xg_gather_nd(", "xg_div_i64(",
                 "xg_arg_reduce_float(", "xg_instance_norm("],
}  # fmt: skip


# The build's own flags (codegen/cc.py) with every warning an error; unused functions aside:
# a model inlines every kernel of the headers it uses.
WARNINGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-ffp-contract=fast",
            "-Wall", "-Wextra", "-Wno-unused-function", "-Werror"]  # fmt: skip


@pytest.mark.parametrize("build", list(KERNELS))
def test_clean_c(build, tmp_path: Path) -> None:
    """The model's C compiles without a warning, and runs with no sanitizer report."""
    model = build()
    graph = import_onnx(model)
    source = generate(passes.optimize(copy.deepcopy(graph))).source
    assert all(kernel in source.split("int xgen_run")[-1] for kernel in KERNELS[build])
    (tmp_path / "warnings.c").write_text(source)
    compile_only = [find_compiler().path, *WARNINGS, "-c", "warnings.c", "-o", "warnings.o"]
    result = subprocess.run(compile_only, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    build_and_run(tmp_path, sanitized(), [], graph, feeds(model))

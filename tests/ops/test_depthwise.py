"""Depthwise Conv (group == channels, xg_conv_depthwise) against onnxruntime on awkward shapes.

All cases go into one ONNX model, compiled once, to keep the C compiler's time down.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from harness import run_onnxruntime
from onnx import helper, numpy_helper

import xgen
from xgen.frontend.onnx import import_onnx
from xgen.ir import Op
from xgen.ir.ops import Activation
from xgen.passes import optimize

RNG = np.random.default_rng(0)
TOL = {"rtol": 1e-4, "atol": 1e-5}  # accumulation order differs from onnxruntime's

# name: x shape, kernel, Conv attrs (besides group and kernel_shape), bias
CASES = {
    "c1_1x1_plane": ((1, 1, 1, 1), (3, 3), {"pads": [1, 1, 1, 1]}, True),
    "c3_7x7_no_pad": ((1, 3, 7, 7), (3, 3), {}, False),
    "c17_s2_asym": ((1, 17, 13, 9), (3, 3), {"strides": [2, 2], "pads": [0, 1, 1, 0]}, True),
    "c33_5x5_dil2": ((1, 33, 13, 9), (5, 5), {"pads": [2, 2, 2, 2], "dilations": [2, 2]}, True),
    "c33_5x5_s2": ((1, 33, 13, 9), (5, 5), {"strides": [2, 2], "pads": [2, 2, 2, 2]}, True),
    "c3_1x3": ((1, 3, 13, 9), (1, 3), {"pads": [0, 1, 0, 1]}, True),
    "c3_stride3_dil_x": ((1, 3, 13, 9), (3, 3), {"strides": [3, 3], "dilations": [1, 2]}, True),
    "batch2_stride2_dil2": (
        (2, 17, 13, 9),
        (3, 3),
        {"strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [2, 2]},
        True,
    ),
    "stride_2x1": ((2, 3, 13, 9), (3, 3), {"strides": [2, 1], "pads": [1, 0, 0, 1]}, True),
    "1d_stride2": ((2, 17, 40), (5,), {"strides": [2], "pads": [2, 1]}, True),
    "1d_k1_stride2_odd_pad": ((1, 5, 12), (1,), {"strides": [2], "pads": [1, 0]}, True),
    "1d_wide_row": ((1, 1, 70000), (3,), {"pads": [1, 1]}, True),  # past the block buffers
    "3d": ((1, 3, 4, 5, 6), (3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}, True),
    "big_s2_tf_pads": ((1, 3, 112, 112), (3, 3), {"strides": [2, 2], "pads": [0, 0, 1, 1]}, True),
    "big_stride1": ((1, 8, 112, 112), (3, 3), {"pads": [1, 1, 1, 1]}, True),
}

# name: x shape, then the nodes after the Conv: a residual Add and/or an activation
FUSED = {
    "add_clip6": ((1, 17, 13, 9), ("Add", "Clip")),
    "relu_batch2": ((2, 33, 7, 7), ("Relu",)),
    "add_relu_big": ((1, 8, 56, 56), ("Add", "Relu")),
}


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


class Builder:
    """One ONNX graph holding many independent depthwise convs."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.feeds: dict[str, np.ndarray] = {}
        self.outputs: list[str] = []

    def input(self, name: str, value: np.ndarray) -> str:
        self.feeds[name] = value
        self.inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, value.shape))
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def conv(self, name: str, x_shape, kernel, attrs, bias: bool) -> str:
        channels = x_shape[1]
        names = [self.input(f"{name}_x", rand(*x_shape))]
        names.append(self.const(f"{name}_w", rand(channels, 1, *kernel)))
        if bias:
            names.append(self.const(f"{name}_b", rand(channels)))
        attrs = {"group": channels, "kernel_shape": list(kernel), **attrs}
        self.nodes.append(helper.make_node("Conv", names, [f"{name}_conv"], **attrs))
        return f"{name}_conv"

    def model(self) -> onnx.ModelProto:
        outputs = [onnx.ValueInfoProto(name=o) for o in self.outputs]
        graph = helper.make_graph(self.nodes, "depthwise", self.inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
        types = {v.name: v.type for v in inferred}
        for out in model.graph.output:
            out.type.CopyFrom(types[out.name])
        return model


def build() -> Builder:
    b = Builder()
    for name, (x_shape, kernel, attrs, bias) in CASES.items():
        b.outputs.append(b.conv(name, x_shape, kernel, attrs, bias))
    for name, (x_shape, followers) in FUSED.items():
        value = b.conv(name, x_shape, (3, 3), {"pads": [1, 1, 1, 1]}, True)
        for op in followers:
            inputs = [value]
            if op == "Add":  # the conv keeps the shape: stride 1, "same" pads
                # a constant: a graph input would stay channels first and its Add unfused
                inputs.append(b.const(f"{name}_res", rand(*x_shape)))
            if op == "Clip":
                inputs += [
                    b.const(f"{name}_{bound}", np.float32(v)) for bound, v in [("lo", 0), ("hi", 6)]
                ]
            b.nodes.append(helper.make_node(op, inputs, [f"{name}_{op}"]))
            value = f"{name}_{op}"
        b.outputs.append(value)
    return b


@pytest.fixture(scope="module")
def built():
    b = build()
    model = b.model()
    return b, model, run_onnxruntime(model, b.feeds)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_depthwise_matches_onnxruntime(built, threads: int) -> None:
    b, model, expected = built
    compiled = xgen.compile(model, threads=threads)
    result = compiled.run(dict(b.feeds))
    for name, want in zip(b.outputs, expected, strict=True):
        np.testing.assert_allclose(result[name], want, **TOL, err_msg=name)


def test_epilogues_fused_into_depthwise(built) -> None:
    """The fused cases really reach the kernel's epilogue: their Add and activation are gone."""
    _, model, _ = built
    graph = optimize(import_onnx(model))
    assert not [n for n in graph.nodes if n.op in (Op.ADD, Op.RELU, Op.CLIP)]
    producers = graph.producers()

    def epilogue(output: str):
        """The epilogue of the Conv computing a graph output, behind the layout's Transpose."""
        node = producers[next(v for v in graph.outputs if v.name == output)]
        while node.op is not Op.CONV:
            node = producers[node.inputs[0]]
        return node.attrs.epilogue

    clip6 = epilogue("add_clip6_Clip")
    assert clip6.residual and clip6.activation is Activation.CLIP
    assert epilogue("relu_batch2_Relu").activation is Activation.RELU
    assert epilogue("add_relu_big_Relu").residual

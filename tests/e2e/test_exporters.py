"""Models from the legacy TorchScript exporter (torch.onnx.export(dynamo=False)), with dynamic
axes: its graphs differ from the dynamo exporter's (Shape -> Gather -> Unsqueeze -> Concat
chains computing reshape targets, Constant nodes, older opsets), and the dynamic dims are fixed
only at compile time, here to sizes other than the traced ones."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from oracle import assert_close, assert_input_matters, onnxruntime_outputs, zeroed

import xgen
from xgen import zoo

pytestmark = pytest.mark.model


def legacy_export(name: str, opset: int) -> tuple[onnx.ModelProto, list[str]]:
    """The zoo model through the TorchScript exporter, with every dim but the last dynamic."""
    entry = zoo.get(name)
    if not entry.available():
        pytest.skip(f"{name} needs `pip install {entry.requires}`")
    module, inputs = entry.build()
    names = list(entry.input_names)
    dynamic = {n: {0: "batch"} if x.dim() == 4 else {0: "batch", 1: "seq"}
               for n, x in zip(names, inputs, strict=True)}  # fmt: skip
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings
        torch.onnx.export(module, inputs, buffer, input_names=names, opset_version=opset,
                          dynamo=False, dynamic_axes=dynamic)  # fmt: skip
    return onnx.load_from_string(buffer.getvalue()), names


def check_against_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    """xgen's outputs match onnxruntime's, which depend on the input (oracle.py)."""
    compiled = xgen.compile(model, input_shapes={n: x.shape for n, x in feeds.items()})
    want, zero_input = onnxruntime_outputs(model, feeds, zeroed(feeds))
    assert_input_matters(model, want, zero_input)
    got = compiled.run(feeds)
    assert_close([got[name] for name in compiled.output_names], want, "legacy export")


@pytest.mark.parametrize("name, opset", [("resnet18", 11), ("mobilenet_v2", 13)])
def test_legacy_export_cnn_at_batch_2(name: str, opset: int) -> None:
    model, (input_name,) = legacy_export(name, opset)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    check_against_onnxruntime(model, {input_name: x})


def test_legacy_export_transformer_at_another_sequence_length() -> None:
    model, names = legacy_export("minilm", 14)
    assert {"Shape", "Gather", "Concat"} <= {node.op_type for node in model.graph.node}
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30000, (2, 19), dtype=np.int64)
    mask = np.ones((2, 19), np.int64)
    mask[1, 11:] = 0  # a padded second sentence
    check_against_onnxruntime(model, dict(zip(names, [ids, mask], strict=True)))

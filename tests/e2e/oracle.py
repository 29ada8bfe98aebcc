"""The model tests' oracle: xgen's outputs against onnxruntime's, and the proof that it can fail.

A model whose activations fade to nothing outputs its last layer's bias whatever the input, and
then any compiler "agrees" with the reference. So every model test also checks that the
reference's outputs move by far more than the tolerance when the input is zeroed, and that they
are far from the last layer's bias alone: the outputs a compiler that dropped the input, or every
layer but the last, would give ("mutants").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

RTOL = 1e-4  # max|got - want| / max|want|, fp32
SENSITIVITY = 100  # a mutant must miss the reference by this many tolerances at least

Outputs = Sequence[np.ndarray]


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def assert_close(got: Outputs, want: Outputs, what: str) -> None:
    """The comparison every model test makes: same shapes and dtypes, within RTOL."""
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape and g.dtype == w.dtype, f"{what} output {i}"
        assert relative_error(g, w) <= RTOL, f"{what} output {i}: {relative_error(g, w):.3g}"


def onnxruntime_outputs(model: onnx.ModelProto, *feeds: dict[str, np.ndarray]) -> list[Outputs]:
    """The model's outputs for each feed, from one onnxruntime session."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [session.run(None, f) for f in feeds]


def zeroed(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.zeros_like(x) for name, x in feeds.items()}


def final_bias_outputs(model: onnx.ModelProto, want: Outputs) -> Outputs | None:
    """Each output as the last layer's bias alone (broadcast to the output's shape), where a Gemm,
    an Add of a weight or a LayerNormalization computes it; None where one has no such bias."""
    weights = {w.name: numpy_helper.to_array(w) for w in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    outputs = []
    for graph_output, w in zip(model.graph.output, want, strict=True):
        node = producers.get(graph_output.name)
        bias = None
        if node is not None and node.op_type in ("Gemm", "LayerNormalization"):
            bias = weights.get(node.input[2]) if len(node.input) > 2 else None
        elif node is not None and node.op_type == "Add":
            bias = next((weights[i] for i in node.input if i in weights), None)
        if bias is None:
            return None
        outputs.append(np.broadcast_to(bias, w.shape).astype(w.dtype))
    return outputs


def mutants(model: onnx.ModelProto, want: Outputs, zero_input: Outputs) -> dict[str, Outputs]:
    """Wrong outputs that a broken compiler could give: those for a zeroed input, and the last
    layer's bias alone where the model has one. zero_input: the reference's outputs for zeroed
    inputs (from onnxruntime_outputs, in the same session as want)."""
    found = {"zeroed input": zero_input}
    bias_only = final_bias_outputs(model, want)
    if bias_only is not None:
        found["final bias only"] = bias_only
    return found


def assert_input_matters(model: onnx.ModelProto, want: Outputs, zero_input: Outputs) -> None:
    """Every mutant misses the reference by more than SENSITIVITY x RTOL on some output, so that
    assert_close fails on it with a wide margin."""
    for what, wrong in mutants(model, want, zero_input).items():
        error = max(relative_error(m, w) for m, w in zip(wrong, want, strict=True))
        assert error > SENSITIVITY * RTOL, f"the outputs barely move ({what}: {error:.3g})"

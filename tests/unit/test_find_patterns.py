"""passes/sparsity.py: pattern + connectivity structure found in hand-built weights, which convs
the pattern kernel takes, and the model's structure metadata checked against the weights."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from xgen.errors import ModelLoadError
from xgen.frontend.onnx import import_onnx
from xgen.ir import Op
from xgen.ir.ops import ConvKernel
from xgen.ir.sparsity import (
    METADATA_KEY,
    PATTERN_SLOTS,
    REMOVED,
    PatternStructure,
    encode_metadata,
    pattern_structure,
)
from xgen.passes.sparsity import find_patterns

RNG = np.random.default_rng(3)
CROSS = (1, 3, 4, 5)  # .x. xxx ...
CORNER = (0, 1, 3, 4)  # xx. xx. ...


def kernel(taps: tuple[int, ...]) -> np.ndarray:
    k = np.zeros(9, np.float32)
    k[list(taps)] = RNG.uniform(0.5, 1.5, len(taps))
    return k.reshape(3, 3)


def test_structure_of_hand_built_weights() -> None:
    w = np.zeros((2, 3, 3, 3), np.float32)
    w[0, 0], w[0, 2], w[1, 1] = kernel(CROSS), kernel(CORNER), kernel(CROSS)
    s = pattern_structure(w)
    assert s.patterns == (CORNER, CROSS)  # by tap bits: tap 0 is the lowest
    np.testing.assert_array_equal(s.assignment, [[1, REMOVED, 0], [REMOVED, 1, REMOVED]])
    assert s.kept_weights == 12


def test_a_kernel_with_fewer_taps_takes_a_pattern_covering_them() -> None:
    w = np.zeros((1, 3, 3, 3), np.float32)
    w[0, 0], w[0, 1] = kernel(CROSS), kernel((3, 5))  # covered by CROSS
    w[0, 2] = kernel((8,))  # covered by no pattern yet: the first candidate holding tap 8
    s = pattern_structure(w)
    assert s.patterns == (CROSS, (0, 1, 2, 8))  # by tap bits: tap 0 is the lowest
    np.testing.assert_array_equal(s.assignment, [[0, 0, 1]])


@pytest.mark.parametrize(
    "taps, why",
    [((0, 1, 2, 3, 4), "a kernel keeps 5 taps"), ((), "no kernel is kept")],
)
def test_no_structure(taps: tuple[int, ...], why: str) -> None:
    w = np.zeros((2, 2, 3, 3), np.float32)
    w[1, 1] = kernel(taps) if taps else 0.0
    assert pattern_structure(w) is None, why


def test_more_patterns_than_the_kernel_takes() -> None:
    from xgen.ir.sparsity import candidate_patterns

    patterns = candidate_patterns()[: PATTERN_SLOTS + 1]
    w = np.stack([kernel(p) for p in patterns])[:, None]  # one filter per pattern
    assert pattern_structure(w) is None
    assert pattern_structure(w[:PATTERN_SLOTS]) is not None


def pruned(cout: int, cin: int, rate: float) -> tuple[np.ndarray, PatternStructure]:
    """Random weights with 4-tap patterns and `rate` of the kernels removed."""
    w = RNG.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    assignment = RNG.integers(0, 2, (cout, cin)).astype(np.int16)
    assignment[RNG.random((cout, cin)) < rate] = REMOVED
    structure = PatternStructure((CORNER, CROSS), assignment)
    return w * structure.mask(), structure


def conv_model(
    w: np.ndarray, metadata: dict[str, str] | None = None, **attrs: object
) -> onnx.ModelProto:
    attrs = {"kernel_shape": list(w.shape[2:]), "pads": [1, 1, 1, 1], **attrs}
    x_shape = [1, w.shape[1] * attrs.get("group", 1), 12, 12]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], **attrs)],
        "conv",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    return model


def marked(model: onnx.ModelProto) -> ConvKernel | None:
    graph = import_onnx(model)
    find_patterns(graph)
    (conv,) = [n for n in graph.nodes if n.op is Op.CONV]
    return conv.attrs.kernel


def test_each_conv_gets_the_kernel_its_zeros_favour() -> None:
    w, structure = pruned(24, 16, rate=0.75)
    assert pattern_structure(w) == structure
    assert marked(conv_model(w)) is ConvKernel.PATTERN
    dense_enough, _ = pruned(24, 16, rate=0.0)  # 4 of 9 taps everywhere: the dense kernel wins
    assert marked(conv_model(dense_enough)) is None
    unstructured = RNG.standard_normal((24, 16, 3, 3)).astype(np.float32)
    unstructured[RNG.random(unstructured.shape) < 0.9] = 0.0  # 10% left, anywhere
    assert marked(conv_model(unstructured)) is ConvKernel.CSR
    unstructured[RNG.random(unstructured.shape) < 0.5] = 1.0  # half the weights: dense again
    assert marked(conv_model(unstructured)) is None


@pytest.mark.parametrize(
    "attrs",
    [{"strides": [2, 2]}, {"dilations": [2, 2]}, {"group": 2}, {"pads": [2, 2, 2, 2]}],
    ids=["stride", "dilation", "group", "pads"],
)
def test_convs_the_pattern_kernel_does_not_compute(attrs: dict) -> None:
    w, _ = pruned(24, 16, rate=0.75)
    assert marked(conv_model(w, **attrs)) is None


def test_metadata_that_matches_the_weights_is_quiet() -> None:
    w, structure = pruned(24, 16, rate=0.75)
    model = conv_model(w, {METADATA_KEY: encode_metadata({"w": structure})})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert marked(model) is ConvKernel.PATTERN


def test_weights_outside_their_metadata_are_reported_and_win() -> None:
    w, structure = pruned(24, 16, rate=0.75)
    removed = np.argwhere(structure.assignment == REMOVED)[0]
    w[removed[0], removed[1], 1, 1] = 1.0  # a weight in a kernel the metadata says is removed
    model = conv_model(w, {METADATA_KEY: encode_metadata({"w": structure})})
    with pytest.warns(UserWarning, match="'w' has 1 non-zero weights where its"):
        assert marked(model) is ConvKernel.PATTERN  # the extra weight is a kernel of 1 tap
    assert pattern_structure(w).assignment[tuple(removed)] != REMOVED


def test_metadata_of_unknown_or_misshapen_weights_is_reported() -> None:
    w, structure = pruned(24, 16, rate=0.75)
    wrong, _ = pruned(8, 16, rate=0.75)
    _, other = pruned(8, 16, rate=0.75)
    metadata = encode_metadata({"w": other, "nowhere": structure})
    with pytest.warns(UserWarning) as caught:
        marked(conv_model(w, {METADATA_KEY: metadata}))
    messages = " ".join(str(c.message) for c in caught)
    assert "describes 'w' as a [8, 16, 3, 3] weight, but it is [24, 16, 3, 3]" in messages
    assert "describes 'nowhere', which is not the weight of a Conv" in messages


def test_malformed_metadata_is_a_load_error() -> None:
    w, _ = pruned(24, 16, rate=0.75)
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        marked(conv_model(w, {METADATA_KEY: "{oops"}))


@pytest.mark.parametrize(
    "filters, splits, bounds",
    [
        ([0] * 10 + [20] * 90, 2, [0, 16, 32]),  # most entries in the second chunk
        ([0] * 90 + [20] * 10, 2, [0, 16, 32]),
        ([20] * 100, 4, [0, 32]),  # all in one chunk of 16 filters: nothing to split
        (list(range(64)), 4, [0, 16, 32, 48, 64]),
        (list(range(64)), 1, [0, 64]),
    ],
)
def test_filter_ranges_split_the_entries_in_multiples_of_16(filters, splits, bounds) -> None:
    from xgen.codegen.lower_pattern import Kept, split_filters

    n = len(filters)
    kept = Kept(np.array(filters), np.zeros(n, int), np.zeros(n, int), np.zeros((n, 4)),
                np.zeros((1, 4), np.uint8))  # fmt: skip
    np.testing.assert_array_equal(split_filters(kept, 64 if n == 64 else 32, splits), bounds)

"""The pattern + connectivity structure shared by compression and the compiler (numpy only):
library selection, pattern assignment, connectivity pruning, masks and the ONNX metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xgen.errors import ModelLoadError
from xgen.ir.sparsity import (
    REMOVED,
    PatternStructure,
    assign_patterns,
    candidate_patterns,
    decode_metadata,
    encode_metadata,
    select_library,
)

RNG = np.random.default_rng(0)
LIBRARY = ((0, 1, 3, 4), (1, 3, 4, 5), (1, 4, 5, 7), (4, 5, 7, 8))


def kernels_of(patterns: list[tuple[int, ...]], scale: float = 1.0) -> np.ndarray:
    """[len(patterns), 1, 3, 3]: kernel i is large on the taps of patterns[i], small elsewhere."""
    weight = RNG.uniform(-0.01, 0.01, (len(patterns), 9))
    for row, pattern in zip(weight, patterns, strict=True):
        row[list(pattern)] = RNG.choice([-1, 1], len(pattern)) * RNG.uniform(1, 2, len(pattern))
    return scale * weight.reshape(-1, 1, 3, 3)


def test_candidates_are_all_4_of_9_in_a_fixed_order():
    candidates = candidate_patterns()
    assert len(candidates) == len(set(candidates)) == 126
    assert candidates[0] == (0, 1, 2, 3) and candidates[-1] == (5, 6, 7, 8)
    assert list(candidates) == sorted(candidates)
    assert all(len(c) == 4 and list(c) == sorted(c) for c in candidates)
    assert len(candidate_patterns(2)) == 36
    with pytest.raises(ValueError, match="taps_kept"):
        candidate_patterns(10)


def test_mask_and_counts_of_a_hand_built_structure():
    s = PatternStructure(((0, 1, 3, 4), (4, 5, 7, 8)), np.array([[0, REMOVED], [1, 0], [1, 1]]))
    mask = s.mask()
    assert mask.shape == s.shape == (3, 2, 3, 3) and mask.dtype == bool
    assert mask[0, 0].tolist() == [[True, True, False], [True, True, False], [False] * 3]
    assert not mask[0, 1].any()
    assert mask[1, 0].tolist() == [[False] * 3, [False, True, True], [False, True, True]]
    assert s.kept_kernels == 5 and s.kept_weights == 20 == mask.sum()
    assert s.assignment.dtype == np.int16 and not s.assignment.flags.writeable


@pytest.mark.parametrize(
    "patterns, assignment, message",
    [
        (((1, 0, 3, 4),), [[0]], "sorted set of taps"),
        (((0, 1, 3, 9),), [[0]], "sorted set of taps"),
        (((0, 1, 3, 4), (0, 1, 3, 4)), [[0]], "twice"),
        (((0, 1, 3, 4),), [[1]], r"assignment values must be in \[-1, 0\]"),
        (((0, 1, 3, 4),), [[-2]], "assignment values"),
        (((0, 1, 3, 4),), [0, 0], "2-D integer"),
        (((0, 1, 3, 4),), [[0.0]], "2-D integer"),
    ],
)
def test_bad_structures_are_refused(patterns, assignment, message):
    with pytest.raises(ValueError, match=message):
        PatternStructure(patterns, np.array(assignment))


def test_library_is_the_most_frequent_best_fits():
    a, b, c = (0, 1, 3, 4), (4, 5, 7, 8), (1, 3, 4, 5)
    layer1 = kernels_of([a, a, a, b, c])
    layer2 = kernels_of([b, b, a, c], scale=0.001)  # small weights count as much as large ones
    zeros = np.zeros((50, 1, 3, 3))  # all-zero kernels have no best fit: not counted
    assert select_library([layer1, layer2, zeros], size=2) == (a, b)  # a: 4, b: 3, c: 2
    assert select_library([layer1, layer2], size=3) == (a, c, b)  # returned in candidate order


def test_library_ties_go_to_the_first_candidate_and_unused_ones_fill_up():
    a, b = (4, 5, 7, 8), (0, 1, 3, 4)  # b comes first in candidate order
    weights = kernels_of([a, b])
    assert select_library([weights], size=1) == (b,)
    assert select_library([weights], size=3) == ((0, 1, 2, 3), b, a)
    assert select_library([weights], size=3) == select_library([weights.copy()], size=3)


def test_library_arguments_are_checked():
    with pytest.raises(ValueError, match="library size"):
        select_library([kernels_of([(0, 1, 2, 3)])], size=127)
    with pytest.raises(ValueError, match=r"\[cout, cin, 3, 3\]"):
        select_library([np.zeros((2, 2, 5, 5))])
    with pytest.raises(ValueError, match="at least one"):
        select_library([])


def test_assignment_keeps_the_most_magnitude():
    weight = RNG.standard_normal((16, 12, 3, 3)).astype(np.float32)
    assignment = assign_patterns(weight, LIBRARY, connectivity_rate=0.0)
    assert assignment.dtype == np.int16 and assignment.shape == (16, 12)
    squares = weight.reshape(16, 12, 9).astype(np.float64) ** 2
    kept = np.stack([squares[..., list(p)].sum(-1) for p in LIBRARY], axis=-1)  # brute force
    np.testing.assert_array_equal(assignment, kept.argmax(-1))
    projected = weight * PatternStructure(LIBRARY, assignment).mask()
    assert np.allclose((projected.astype(np.float64) ** 2).sum((2, 3)), kept.max(-1))


@pytest.mark.parametrize(
    "rate, removed", [(0.0, 0), (0.29, 29), (0.5, 50), (0.75, 75), (0.999, 99)]
)
def test_connectivity_removes_the_weakest_kernels_at_the_rate(rate, removed):
    weight = RNG.standard_normal((10, 10, 3, 3)) * RNG.uniform(0.1, 3, (10, 10, 1, 1))
    assignment = assign_patterns(weight, LIBRARY, rate)
    assert np.count_nonzero(assignment == REMOVED) == removed
    full = assign_patterns(weight, LIBRARY, 0.0)  # the same patterns, nothing removed
    cut = assignment == REMOVED
    np.testing.assert_array_equal(assignment[~cut], full[~cut])
    norms = ((weight * PatternStructure(LIBRARY, full).mask()) ** 2).sum((2, 3))
    if 0 < removed < 100:
        assert norms[cut].max() < norms[~cut].min()


def test_connectivity_rate_is_checked():
    for rate in (-0.1, 1.0):
        with pytest.raises(ValueError, match="connectivity rate"):
            assign_patterns(np.ones((2, 2, 3, 3)), LIBRARY, rate)


def test_metadata_round_trip():
    layers = {
        "features.0.weight": PatternStructure(
            LIBRARY, assign_patterns(RNG.standard_normal((8, 16, 3, 3)), LIBRARY, 0.5)
        ),
        "onnx::Conv_12": PatternStructure(LIBRARY[:2], np.array([[0, -1, 1], [-1, -1, 0]])),
    }
    text = encode_metadata(layers)
    json.loads(text)  # plain JSON, readable by anything
    decoded = decode_metadata(text)
    assert list(decoded) == list(layers)
    for name, structure in layers.items():
        assert decoded[name] == structure
        assert decoded[name].assignment.dtype == np.int16


def _layer(**entry: object) -> str:
    fields = {"patterns": [[0, 1, 3, 4]], "assignment": [[0, -1]]} | entry
    return json.dumps({"version": 1, "layers": {"conv1.weight": fields}})


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "'layers' object"),
        ('{"version": 1}', "'layers' object"),
        ('{"version": 2, "layers": {}}', "version 2 is not supported"),
        (_layer(patterns=[[0, 1, 3, 4.5]]), "conv1.weight.*list of lists of tap indices"),
        (_layer(patterns=[[0, 1, 3, 12]]), "conv1.weight.*sorted set of taps"),
        (_layer(assignment=[[0, 1]]), "conv1.weight.*assignment values"),
        (_layer(assignment=[[0, -1], [0]]), "conv1.weight"),
        (_layer(assignment=[[0.0, -1.0]]), "conv1.weight.*2-D list .* of integers"),
        (_layer(assignment=[[True, False]]), "conv1.weight.*2-D list .* of integers"),
        (_layer(assignment=[]), "conv1.weight.*2-D list .* of integers"),
        (_layer(assignment=[0, -1]), "conv1.weight.*2-D list .* of integers"),
        (json.dumps({"version": 1, "layers": {"c.weight": {"patterns": []}}}), "c.weight"),
    ],
)
def test_malformed_metadata_is_a_clear_error(text, message):
    with pytest.raises(ModelLoadError, match=message):
        decode_metadata(text)

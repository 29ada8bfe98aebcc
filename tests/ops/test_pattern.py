"""Sparse 3x3 convolutions (kernels/pattern.h: pattern-pruned and CSR) against onnxruntime on
awkward shapes: channels that are not multiples of 16, 1-pixel and 7x7 planes, rows that end
mid-vector, padding on some sides only, batch 2, and the fused bias, residual and ReLU."""

from __future__ import annotations

import numpy as np
import pytest
from harness import conv_branches_model, run_onnxruntime, run_threads_deterministic

import xgen
from xgen.ir.sparsity import PatternStructure, assign_patterns, candidate_patterns

RNG = np.random.default_rng(5)
TOL = {"rtol": 1e-4, "atol": 1e-4}

# name: batch, cin, cout, (h, w), ONNX pads (top, left, bottom, right), patterns, kernels removed
CASES = {
    "odd_channels": (2, 20, 19, (9, 11), (1, 1, 1, 1), 8, 0.7),
    "no_padding_7x7": (2, 33, 40, (7, 7), (0, 0, 0, 0), 6, 0.6),
    "one_pixel": (1, 16, 16, (1, 1), (1, 1, 1, 1), 8, 0.5),
    "one_column": (1, 40, 24, (5, 1), (1, 1, 1, 1), 8, 0.7),
    "rows_padded_only": (1, 17, 33, (13, 30), (1, 0, 1, 0), 4, 0.7),
    "columns_padded_only": (1, 24, 32, (3, 70), (0, 1, 0, 1), 8, 0.8),
    "deep_7x7": (2, 64, 72, (7, 7), (1, 1, 1, 1), 16, 0.75),
    "wide_plane": (1, 16, 48, (20, 56), (1, 1, 1, 1), 8, 0.7),
    "skewed_7x7": (1, 24, 40, (7, 7), (1, 1, 1, 1), 8, 0.5),  # filters 0-15: 1 kernel each
}

# CSR: the same geometry, each weight kept with probability `density`, anywhere
CSR_CASES = {
    "csr_odd_channels": (2, 20, 19, (9, 11), (1, 1, 1, 1), 0.12),
    "csr_no_padding": (1, 33, 40, (7, 7), (0, 0, 0, 0), 0.05),
    "csr_columns_padded_only": (1, 24, 32, (3, 70), (0, 1, 0, 1), 0.2),
}


def pruned_weight(cout: int, cin: int, patterns: int, rate: float) -> np.ndarray:
    """Random weights keeping 4 taps per kernel in `patterns` random patterns, `rate` of the
    kernels removed, and a few kept weights exactly 0 (a kernel of fewer than 4 taps)."""
    w = RNG.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    chosen = RNG.choice(len(candidate_patterns()), patterns, replace=False)
    library = tuple(candidate_patterns()[i] for i in sorted(chosen))
    w *= PatternStructure(library, assign_patterns(w, library, rate)).mask()
    kept = np.flatnonzero(w)
    w.flat[RNG.choice(kept, len(kept) // 50, replace=False)] = 0.0
    return w


def unstructured_weight(cout: int, cin: int, density: float) -> np.ndarray:
    w = RNG.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    return np.where(RNG.random(w.shape) < density, w, np.float32(0))


def all_cases() -> dict[str, tuple]:
    """name: batch, cin, cout, (h, w), pads, weight."""
    cases = {
        name: (*geometry, pruned_weight(geometry[2], geometry[1], patterns, rate))
        for name, (*geometry, patterns, rate) in CASES.items()
    }
    # most kept kernels in the last filters: the filter ranges of a small plane, cut where the
    # kernels divide evenly, are uneven in filters
    cases["skewed_7x7"][-1][:16, 1:] = 0.0
    for name, (*geometry, density) in CSR_CASES.items():
        cases[name] = (*geometry, unstructured_weight(geometry[2], geometry[1], density))
    return cases


@pytest.fixture(scope="module")
def case_model():
    model, feeds = conv_branches_model(all_cases(), RNG)
    expected = run_onnxruntime(model, feeds)
    return xgen.compile(model), feeds, dict(zip([*CASES, *CSR_CASES], expected, strict=True))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pattern_convs_match_onnxruntime(case_model, threads: int) -> None:
    compiled, feeds, expected = case_model
    result = run_threads_deterministic(compiled, feeds, threads)
    for name, want in expected.items():
        np.testing.assert_allclose(result[name], want, **TOL, err_msg=name)


def test_sparse_kernels_run_every_case(case_model) -> None:
    compiled, _, _ = case_model
    body = compiled.source.split("xgen_run")[-1]
    assert body.count(".taps = 4") == len(CASES)  # a pattern per entry
    assert body.count(".taps = 1") == len(CSR_CASES)  # a weight per entry
    assert "xg_conv_nhwc(" not in body

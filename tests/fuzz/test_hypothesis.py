"""Hypothesis drives the fuzzer's mutations: the same seed models and mutation functions as
test_fuzz.py, but the random draws come from hypothesis (derandomized, so every run tries the
same examples), which shrinks a failing case to the fewest and smallest draws that still fail.
Each example runs in a worker process, so a crash fails the test instead of killing pytest."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz_check import check, judge
from fuzz_mutate import mutated_case
from fuzz_pool import Runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = 100
TIMEOUT = 60  # seconds an example


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    cache: Path = tmp_path_factory.mktemp("fuzz-hypothesis-cache")
    runner = Runner(check, TIMEOUT, {"XGEN_FUZZ_CACHE": str(cache)})
    yield runner
    runner.close()


@pytest.mark.xdist_group("fuzz-hypothesis")
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rng=st.randoms(use_true_random=False))
def test_mutated_models_are_errors_or_right(runner: Runner, rng: random.Random) -> None:
    case = mutated_case(rng)
    finished = runner(case.data)
    outcome = judge(finished.messages, finished.death)
    assert not outcome.failed, f"{outcome.category}: {case.label}\n{outcome.message}"

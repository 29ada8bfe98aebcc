"""The fuzz harness itself: crashes, raw exceptions, hangs and wrong numbers are all reported."""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from fuzz_check import (
    CORRECT,
    CRASH,
    RAW,
    REJECTED,
    TIMEOUT,
    UNCHECKED,
    WRONG,
    Arrays,
    Build,
    Outcome,
    check,
    compare,
    compile_and_run,
    judge,
    largest_constant,
)
from fuzz_corpus import float_arith
from fuzz_mutate import make_case
from fuzz_pool import run_cases
from fuzz_run import run

from xgen.errors import ShapeError

MODEL = float_arith().SerializeToString()


# Fake build steps (module level, so that the spawned workers can unpickle them by name).
def _fake_build(data: bytes) -> tuple[Arrays, Arrays]:
    if data == b"segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if data == b"value":
        raise ValueError("a raw ValueError")
    if data == b"shape":
        raise ShapeError("node 'n' (Conv): a clear error")
    if data == b"hang":
        time.sleep(60)
    if data == b"exit":
        os._exit(3)
    return compile_and_run(data)


def _wrong_build(data: bytes) -> tuple[Arrays, Arrays]:
    feeds, outputs = compile_and_run(data)
    return feeds, [(name, value + 1e-2) for name, value in outputs]


def _always_value_error(data: bytes) -> tuple[Arrays, Arrays]:
    raise ValueError("raw")


def _outcomes(
    payloads: list[bytes], build: Build, cache: Path, timeout: float = 30
) -> dict[bytes, Outcome]:
    items = ((p, p) for p in payloads)
    check_with = functools.partial(check, build=build)
    env = {"XGEN_FUZZ_CACHE": str(cache)}
    finished = run_cases(items, check_with, workers=1, timeout=timeout, env=env)
    return {f.key: judge(f.messages, f.death) for f in finished}


def test_crash_raw_exception_hang_and_exit_are_failures_and_the_worker_is_replaced(tmp_path):
    payloads = [b"segv", b"value", b"shape", b"hang", b"exit", MODEL]
    outcomes = _outcomes(payloads, _fake_build, tmp_path, timeout=3)
    assert outcomes[b"segv"].category == CRASH and "SIGSEGV" in outcomes[b"segv"].message
    assert outcomes[b"value"].category == RAW and "a raw ValueError" in outcomes[b"value"].message
    assert outcomes[b"shape"].category == REJECTED
    assert outcomes[b"hang"].category == TIMEOUT
    assert outcomes[b"exit"].category == CRASH and "code 3" in outcomes[b"exit"].message
    assert outcomes[MODEL].category == CORRECT  # after a crash and a hang, a fresh worker ran it
    assert [o.failed for o in outcomes.values()] == [True, True, False, True, True, False]


def test_output_that_differs_from_onnxruntime_is_a_failure(tmp_path):
    outcome = _outcomes([MODEL], _wrong_build, tmp_path)[MODEL]
    assert outcome.category == WRONG and "differ" in outcome.message


def test_onnxruntime_failing_leaves_the_case_unchecked():
    accepted = ("xgen_ok", [], [("y", np.zeros(2, np.float32))])
    assert judge([accepted], "killed by SIGSEGV").category == UNCHECKED
    assert judge([accepted, ("ort_error", "InvalidGraph")], None).category == UNCHECKED
    assert judge([], "killed by SIGSEGV").category == CRASH  # no message yet: xgen's crash


def test_huge_constants_leave_values_unchecked_but_not_shapes():
    xgen_out = [("y", np.array([1.0, 2.0], np.float32))]
    ok = ("xgen_ok", [], xgen_out)
    other_values = ("ort_ok", [("y", np.array([1.0, 5.0], np.float32))])
    other_shape = ("ort_ok", [("y", np.array([1.0], np.float32))])
    assert judge([ok, ("largest_constant", 3.0), other_values], None).category == WRONG
    assert judge([ok, ("largest_constant", 1e24), other_values], None).category == UNCHECKED
    assert judge([ok, ("largest_constant", 1e24), other_shape], None).category == WRONG


def test_largest_constant_reads_initializers_and_constant_nodes():
    model = float_arith()
    assert 1 < largest_constant(model.SerializeToString()) < 10
    value = onnx.numpy_helper.from_array(np.array([-3e20, np.inf], np.float32))
    model.graph.node.append(onnx.helper.make_node("Constant", [], ["c"], value=value))
    assert largest_constant(model.SerializeToString()) == np.float32(3e20)


def test_generated_c_rejected_by_the_compiler_is_a_failure():
    message = "gcc failed (exit 1) on the generated C; this is a bug in xgen, please report it."
    assert judge([("xgen_error", "CompilerError", message)], None).failed
    assert not judge([("xgen_error", "CompilerError", "no C compiler found")], None).failed


def test_run_counts_failures_and_writes_reproducers(tmp_path):
    report = run(7, 2, out=tmp_path, case_check=functools.partial(check, build=_always_value_error))
    assert report.counts[RAW] == 2 and len(report.failures) == 2
    assert "(seed=7, index=1)" in report.summary()
    assert (tmp_path / "seed-7-index-1.onnx").read_bytes() == make_case(7, 1).data


@pytest.mark.parametrize(
    ("actual", "expected", "ok"),
    [
        ([1.0, np.nan, np.inf], [1.0005, np.nan, np.inf], True),
        ([1.0, 2.0, np.nan], [1.0, 2.0, 3.0], False),  # NaN where onnxruntime has a number
        ([1.0, np.inf], [1.0, -np.inf], False),
        ([100.0, 0.05], [100.0, 0.0], True),  # within 1e-3 of the output's magnitude
        ([1.0, 1.1], [1.0, 1.0], False),
    ],
)
def test_compare_floats(actual, expected, ok):
    a, e = np.array(actual, np.float32), np.array(expected, np.float32)
    assert (compare([("y", a)], [("y", e)]) is None) == ok


def test_compare_integers_shapes_dtypes_and_names_exactly():
    a = np.array([1, 2], np.int64)
    assert compare([("y", a)], [("y", a.copy())]) is None
    assert compare([("y", a)], [("y", a + 1)]) is not None
    assert compare([("y", a)], [("y", a.astype(np.int32))]) is not None
    assert compare([("y", a)], [("y", a[:1])]) is not None
    assert compare([("y", a)], [("z", a)]) is not None


def test_cases_are_reproducible_from_seed_and_index():
    assert make_case(3, 11).data == make_case(3, 11).data
    assert make_case(3, 11).label == make_case(3, 11).label
    assert len({make_case(3, i).data for i in range(20)}) > 15


def test_onnxruntime_skipping_nan_passes_only_where_the_reference_has_nan():
    xgen_out = [("y", np.array([np.nan, 1.0], np.float32))]
    onnxruntime = [("y", np.array([3.0, 1.0], np.float32))]
    assert compare(xgen_out, onnxruntime, [("y", np.array([np.nan, 1.0], np.float32))]) is None
    assert compare(xgen_out, onnxruntime, [("y", np.array([3.0, 1.0], np.float32))]) is not None
    assert compare(xgen_out, onnxruntime) is not None

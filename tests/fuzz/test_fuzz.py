"""Fixed-seed fuzzing of xgen with mutated small ONNX models (issue 15): no case may crash the
process, raise anything but an XgenError, or compute other numbers than onnxruntime.

A failing case is rebuilt with fuzz_mutate.make_case(seed, index); its .onnx reproducer (and a
.txt of what was mutated and what failed) is written to $TMPDIR/xgen-fuzz-reproducers, outside
pytest's tmp folders, which later sessions delete. Longer runs: python -m tests.fuzz --cases 5000
--seed S --workers 2 [--out DIR].
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from fuzz_run import run

SEED = 15
CASES = 300
CHUNKS = 4  # one xdist group each, so that the chunks run on both pytest workers
TIMEOUT = 60  # seconds a case
REPRODUCERS = Path(tempfile.gettempdir()) / "xgen-fuzz-reproducers"


@pytest.fixture(scope="session")
def fuzz_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compile cache for the whole pytest session, shared by its xdist workers."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "fuzz-cache"


@pytest.mark.parametrize(
    "chunk", [pytest.param(c, marks=pytest.mark.xdist_group(f"fuzz{c}")) for c in range(CHUNKS)]
)
def test_fuzz(chunk: int, fuzz_cache: Path) -> None:
    size = CASES // CHUNKS
    report = run(SEED, size, chunk * size, timeout=TIMEOUT, out=REPRODUCERS, cache=fuzz_cache)
    assert sum(report.counts.values()) == size
    if report.failures:
        pytest.fail(f"{report.summary()}\nreproducers: {REPRODUCERS}", pytrace=False)

"""A fuzz run: cases (seed, first..first+count) through the worker pool, judged and summed up,
with each failing case written out as a .onnx reproducer."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fuzz_check import CATEGORIES, Outcome, check, judge
from fuzz_mutate import Case, make_case
from fuzz_pool import Check, run_cases


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)
    failures: list[tuple[Case, Outcome]] = field(default_factory=list)
    seconds: float = 0.0

    def totals(self) -> str:
        """How many cases, how long, and how many in each category."""
        lines = [f"{sum(self.counts.values())} cases in {self.seconds:.0f} s"]
        return "\n".join(lines + [f"  {c}: {self.counts[c]}" for c in CATEGORIES])

    def summary(self) -> str:
        """The totals, then each failing case: (seed, index), category, mutations and message."""
        lines = [self.totals()]
        for case, outcome in self.failures:
            first = outcome.message.splitlines()[0] if outcome.message else ""
            lines.append(f"FAIL {outcome.category} {case.label}\n    {first[:300]}")
        return "\n".join(lines)


def run(
    seed: int,
    count: int,
    first: int = 0,
    workers: int = 1,
    timeout: float = 60,
    out: Path | None = None,
    cache: Path | None = None,
    case_check: Check = check,
    on_case: Callable[[Case, Outcome], None] | None = None,
) -> Report:
    """Runs cases first..first+count-1 of `seed`; cache is the compile cache the workers share."""
    env = {"XGEN_FUZZ_CACHE": str(cache)} if cache is not None else {}
    cases = {i: make_case(seed, i) for i in range(first, first + count)}
    report, start = Report(), time.monotonic()
    items = ((i, case.data) for i, case in cases.items())
    for finished in run_cases(items, case_check, workers, timeout, env):
        case = cases[finished.key]
        outcome = judge(finished.messages, finished.death)
        report.counts[outcome.category] += 1
        if outcome.failed:
            report.failures.append((case, outcome))
            if out is not None:
                save_reproducer(case, outcome, out)
        if on_case:
            on_case(case, outcome)
    report.failures.sort(key=lambda f: f[0].index)
    report.seconds = time.monotonic() - start
    return report


def save_reproducer(case: Case, outcome: Outcome, out: Path) -> Path:
    """out/seed-S-index-I.onnx, and beside it a .txt saying what was done and what went wrong."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"seed-{case.seed}-index-{case.index}"
    stem.with_suffix(".onnx").write_bytes(case.data)
    stem.with_suffix(".txt").write_text(f"{outcome.category}: {case.label}\n{outcome.message}\n")
    return stem.with_suffix(".onnx")

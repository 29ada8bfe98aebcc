"""Long fuzz runs: python -m tests.fuzz --cases 5000 --seed S --workers 2 [--out DIR]."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the fuzz modules import each other by name

from fuzz_check import Outcome  # noqa: E402
from fuzz_mutate import Case  # noqa: E402
from fuzz_run import run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="index of the first case")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60, help="seconds per case")
    parser.add_argument("--out", type=Path, help="folder for the failing cases' .onnx files")
    parser.add_argument("--cache", type=Path, help="compile cache (default: a temporary one)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = parser.parse_args()

    def show(case: Case, outcome: Outcome) -> None:
        if args.verbose or outcome.failed:
            first = outcome.message.splitlines()[0][:200] if outcome.message else ""
            print(f"{outcome.category}: {case.label[:300]}\n    {first}", flush=True)

    with tempfile.TemporaryDirectory(prefix="xgen-fuzz-cache-") as tmp:
        report = run(args.seed, args.cases, args.first, args.workers, args.timeout, args.out,
                     args.cache or Path(tmp), on_case=show)  # fmt: skip
    print(report.totals())
    if args.out and report.failures:
        print(f"reproducers in {args.out}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Pass / folded / fail / skip counts of the ONNX backend node tests, per op, as markdown for the
README.

    .venv/bin/python tests/onnx_backend_report.py [--pin] [-n 2]

Runs tests/test_onnx_backend.py under pytest (extra arguments go to pytest), reads its JUnit XML
and groups the cases by the op they test. --pin runs the cases without checking the pinned skips
and rewrites tests/onnx_backend_skips.json from what skipped (review its diff before committing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from test_onnx_backend import PINS_PATH, op_under_test  # noqa: E402

from xgen.frontend.onnx import supported_ops  # noqa: E402

OUTCOMES = ("passed", "folded", "xfailed", "failed", "skipped")


def outcomes(junit: Path) -> tuple[dict[str, str], dict[str, str]]:
    """case name -> outcome, and skipped case name -> skip kind (unsupported, type, opset,
    folded); a folded case's outcome is "folded", not "skipped"."""
    result, skip_kinds = {}, {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        if not name.startswith("test_case["):
            continue
        name = name[len("test_case[") : -1]
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif skipped is not None:
            outcome = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
            if outcome == "skipped":
                reason = skipped.get("message", "").removeprefix("Skipped: ")
                skip_kinds[name] = reason.split(":")[0]
                if skip_kinds[name] == "folded":
                    outcome = "folded"
        else:
            outcome = "passed"
        result[name] = outcome
    return result, skip_kinds


def headline(results: dict[str, str], skip_kinds: dict[str, str]) -> str:
    """The pass rate among the cases of ops xgen imports, at xgen's dtypes and opsets."""
    supported = set(supported_ops())
    cases = [n for n in results if op_under_test(n) in supported]
    in_scope = [n for n in cases if skip_kinds.get(n) not in ("type", "opset")]
    passed = sum(results[n] == "passed" for n in in_scope)
    folded = sum(results[n] == "folded" for n in in_scope)
    return (
        f"Ops xgen imports: {len(cases)} cases, of which {len(cases) - len(in_scope)} use a dtype "
        f"xgen lacks or an opset above 21; of the other {len(in_scope)}, {passed} pass "
        f"({100 * passed / len(in_scope):.1f}%) and {folded} more match but are folded at "
        "import (no node left to compile)."
    )


def table(results: dict[str, str], skip_kinds: dict[str, str]) -> str:
    per_op: dict[str, Counter] = defaultdict(Counter)
    for name, outcome in results.items():
        per_op[op_under_test(name)][outcome] += 1
    total = Counter(results.values())
    lines = [
        "| op | " + " | ".join(OUTCOMES) + " |",
        "|---|" + "---:|" * len(OUTCOMES),
        "| **all** | " + " | ".join(f"**{total[o]}**" for o in OUTCOMES) + " |",
    ]
    for op in sorted(per_op):
        counts = per_op[op]
        if counts["passed"] + counts["folded"] + counts["failed"] + counts["xfailed"]:
            lines.append(f"| {op} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    unsupported = sorted(set(per_op) - set(supported_ops()))
    only_skipped = sorted(
        op for op, c in per_op.items() if c["skipped"] == sum(c.values()) and op not in unsupported
    )
    skips = Counter(kind for kind in skip_kinds.values() if kind != "folded")
    kinds = ", ".join(f"{kind}: {n}" for kind, n in skips.most_common())
    lines += ["", f"Skips by reason: {kinds}.", "",
              "Supported ops whose every case is skipped: "
              + ", ".join(only_skipped), "",
              f"Ops xgen does not import ({len(unsupported)}; an _expanded case of one can still "
              "pass through the ops of its function body): " + ", ".join(unsupported)]  # fmt: skip
    return "\n".join(lines)


def write_pins(skip_kinds: dict[str, str]) -> None:
    by_op: dict[str, dict[str, str]] = defaultdict(dict)
    for name in sorted(skip_kinds):
        by_op[op_under_test(name)][name] = skip_kinds[name]
    PINS_PATH.write_text(json.dumps(dict(sorted(by_op.items())), indent=1) + "\n")


def main() -> int:
    pin = "--pin" in sys.argv[1:]
    pytest_args = [a for a in sys.argv[1:] if a != "--pin"]
    env = {**os.environ, "XGEN_BACKEND_UNPINNED": "1"} if pin else None
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", str(HERE / "test_onnx_backend.py"), "-q",
                   "-p", "no:cacheprovider", f"--junitxml={junit}", *pytest_args]  # fmt: skip
        subprocess.run(command, cwd=HERE.parent, stdout=subprocess.DEVNULL, check=False, env=env)
        results, skip_kinds = outcomes(junit)
        if pin:
            write_pins(skip_kinds)
        print(headline(results, skip_kinds), end="\n\n")
        print(table(results, skip_kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

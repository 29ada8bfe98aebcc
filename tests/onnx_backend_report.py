"""Pass / fail / skip counts of the ONNX backend node tests, per op, as markdown for the README.

    .venv/bin/python tests/onnx_backend_report.py [-n 2]

Runs tests/test_onnx_backend.py under pytest (extra arguments go to pytest), reads its JUnit XML
and groups the cases by the op they test.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from test_onnx_backend import op_under_test  # noqa: E402

OUTCOMES = ("passed", "xfailed", "failed", "skipped")


def outcomes(junit: Path) -> tuple[dict[str, str], Counter]:
    """case name -> outcome, and the skips counted by kind (unsupported op, type, opset)."""
    result, skip_kinds = {}, Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        if not name.startswith("test_case["):
            continue
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif skipped is not None:
            outcome = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
            if outcome == "skipped":
                reason = skipped.get("message", "").removeprefix("Skipped: ")
                skip_kinds[reason.split(":")[0].split(" ")[0]] += 1
        else:
            outcome = "passed"
        result[name[len("test_case[") : -1]] = outcome
    return result, skip_kinds


def table(results: dict[str, str], skip_kinds: Counter) -> str:
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
        if counts["passed"] + counts["failed"] + counts["xfailed"]:  # ops xgen imports at all
            lines.append(f"| {op} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    skipped_ops = sorted(op for op, c in per_op.items() if c["skipped"] == sum(c.values()))
    kinds = ", ".join(f"{kind}: {n}" for kind, n in skip_kinds.most_common())
    lines += ["", f"Skips by reason: {kinds}.", "",
              f"Skipped entirely ({len(skipped_ops)} ops): " + ", ".join(skipped_ops)]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", str(HERE / "test_onnx_backend.py"), "-q",
                   "-p", "no:cacheprovider", f"--junitxml={junit}", *sys.argv[1:]]  # fmt: skip
        subprocess.run(command, cwd=HERE.parent, stdout=subprocess.DEVNULL, check=False)
        print(table(*outcomes(junit)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""xgen vs onnxruntime latency on the model zoo; prints a markdown table (see BENCHMARKS.md).

.venv/bin/python benchmarks/bench_latency.py [--models resnet18 ...] [--rounds 20]
    [--threads 2] [--json results.json]
"""

import sys

from xgen.bench import main

if __name__ == "__main__":
    sys.exit(main())

"""Fusion on and off (issue 4's metrics): ONNX nodes, kernels per inference, onnxruntime's
optimized graph, intermediate bytes written, latency against the peers, and whether unfused xgen
and the peers compute fused xgen's outputs; prints a markdown table (see BENCHMARKS.md; the code
is xgen/bench/fusion.py).

.venv/bin/python benchmarks/bench_fusion.py [--models resnet50 ...] [--rounds 10] [--threads 2]
"""

import sys

from xgen.bench.fusion import main

if __name__ == "__main__":
    sys.exit(main())

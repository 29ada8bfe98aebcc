"""xgen vs onnxruntime, OpenVINO, PyTorch eager and torch.compile latency on the model zoo;
prints a markdown table (see BENCHMARKS.md; the code is xgen/bench/).

.venv/bin/python benchmarks/bench_latency.py [--models resnet18 ...] [--rounds 20]
    [--threads 2] [--peers ort openvino eager compile] [--no-peak] [--json results.json]
"""

import sys

from xgen.bench import main

if __name__ == "__main__":
    sys.exit(main())

"""xgen's pattern kernels on pattern + connectivity pruned models vs the dense models in xgen,
onnxruntime and OpenVINO (and onnxruntime on the pruned file); prints a markdown table (see
BENCHMARKS.md; the code is xgen/bench/pruned.py).

.venv/bin/python benchmarks/bench_pruned.py [--models vgg16 resnet50 fmnist_vgg] [--rounds 10]
    [--threads 2] [--rate 0.75]
"""

import sys

from xgen.bench.pruned import main

if __name__ == "__main__":
    sys.exit(main())

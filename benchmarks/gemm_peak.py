"""GFLOP/s of xg_sgemm (kernels/gemm.h) on square and conv-shaped problems, and of its microkernel
alone on L1-resident panels (the bound any of them can reach).

Compiles the kernel headers with a one-function wrapper (xgen/bench/peak.py), without generating
a model:
    .venv/bin/python benchmarks/gemm_peak.py [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os

from xgen.bench.peak import measure, measure_linear, microkernel_peak, sgemm_library

# (M, N, K): square problems, then ResNet-50 convolutions as GEMMs (Cout, H*W, Cin*k*k).
SHAPES = [
    (256, 256, 256),
    (512, 512, 512),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (64, 12544, 147),
    (64, 3136, 576),
    (256, 784, 1152),
    (512, 196, 2304),
    (2048, 49, 512),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    args = parser.parse_args()
    with sgemm_library() as lib:
        columns = [f"{kernel} {t} thr" for kernel in ("xg_sgemm", "linear") for t in args.threads]
        print(f"{'M':>6} {'N':>6} {'K':>6} " + " ".join(f"{c:>15}" for c in columns))
        for m, n, k in SHAPES:
            results = [
                run(lib, m, n, k, t) for run in (measure, measure_linear) for t in args.threads
            ]
            assert all(err < 1e-4 for _, err in results), f"wrong result at {m}x{n}x{k}"
            print(f"{m:>6} {n:>6} {k:>6} " + " ".join(f"{g:>15.1f}" for g, _ in results))
        bounds = [microkernel_peak(lib, t) for t in args.threads]
        print(f"{'microkernel, L1':>20} " + " ".join(f"{g:>15.1f}" for g in bounds))


if __name__ == "__main__":
    main()

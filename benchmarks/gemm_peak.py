"""GFLOP/s of xg_sgemm (kernels/gemm.h) on square and conv-shaped problems.

Compiles the header alone with a one-function wrapper, so it runs without the rest of xgen:
    .venv/bin/python benchmarks/gemm_peak.py [--threads 1 2]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

KERNELS = Path(__file__).resolve().parents[1] / "xgen" / "codegen" / "kernels"
WRAPPER = """
#include "common.h"
#include "gemm.h"
long work_floats(long m, long n, long k) { return xg_sgemm_work_floats(m, n, k); }
void sgemm(long m, long n, long k, const float *a, const float *b, float *c, float *work,
           int threads) {
    omp_set_num_threads(threads);
    xg_sgemm(m, n, k, 1.0f, NULL, a, k, 1, NULL, b, n, 1, 0.0f, c, n, work);
}
"""
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


def build(directory: str) -> ctypes.CDLL:
    source = Path(directory) / "gemm_bench.c"
    library = Path(directory) / "gemm_bench.so"
    source.write_text(WRAPPER)
    flags = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", f"-I{KERNELS}"]
    subprocess.run(["cc", *flags, str(source), "-o", str(library), "-lm"], check=True)
    lib = ctypes.CDLL(str(library))
    lib.work_floats.restype = ctypes.c_long
    lib.work_floats.argtypes = [ctypes.c_long] * 3
    lib.sgemm.argtypes = [ctypes.c_long] * 3 + [ctypes.c_void_p] * 4 + [ctypes.c_int]
    return lib


def measure(lib: ctypes.CDLL, m: int, n: int, k: int, threads: int) -> tuple[float, float]:
    """(best GFLOP/s over repeats, max relative error against numpy)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    work = np.empty(lib.work_floats(m, n, k) + 16, np.float32)
    ptrs = [x.ctypes.data for x in (a, b, c, work)]
    lib.sgemm(m, n, k, *ptrs, threads)
    error = float(np.abs(c - a @ b).max() / np.abs(a @ b).max())
    repeats = max(3, int(2e9 / (2 * m * n * k)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        lib.sgemm(m, n, k, *ptrs, threads)
        best = min(best, time.perf_counter() - start)
    return 2 * m * n * k / best / 1e9, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        lib = build(directory)
        print(
            f"{'M':>6} {'N':>6} {'K':>6} " + " ".join(f"{t:>2} thr GFLOP/s" for t in args.threads)
        )
        for m, n, k in SHAPES:
            results = [measure(lib, m, n, k, t) for t in args.threads]
            assert all(err < 1e-4 for _, err in results), f"wrong result at {m}x{n}x{k}"
            print(f"{m:>6} {n:>6} {k:>6} " + " ".join(f"{g:>15.1f}" for g, _ in results))


if __name__ == "__main__":
    main()

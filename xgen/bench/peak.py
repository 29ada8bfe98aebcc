"""GFLOP/s of xg_sgemm (codegen/kernels/gemm.h) alone, and the bound of its microkernel: the peak
that achieved GFLOP/s are compared with.

Compiles the kernel headers with two small wrappers, without generating any model. Used by
xgen.bench and benchmarks/gemm_peak.py.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from xgen.codegen.cc import find_compiler
from xgen.codegen.emit import kernel_headers

# The headers go first, in the generator's order (later ones use the earlier ones' types).
WRAPPER = """
long work_floats(long m, long n, long k) { return xg_sgemm_work_floats(m, n, k); }
void sgemm(long m, long n, long k, const float *a, const float *b, float *c, float *work,
           int threads) {
    xg_team team = {0};
#pragma omp parallel num_threads(threads) /* kernels run on a team, as inside a model */
    {
        xg_team_join(&team);
        xg_sgemm(m, n, k, 1.0f, NULL, a, k, 1, NULL, b, n, 1, 0.0f, c, n, NULL, work);
    }
}
"""
UKR_WRAPPER = """
/* The microkernel's own bound: every thread multiplies an L1-resident A and B panel pair over
 * and over (through a volatile pointer, so the compiler cannot fold the repeats). */
double ukr_gflops(int threads, long reps) {
    void (*volatile ukr)(long, const float *, const float *, long, float *) = xg_ukr;
    double start = omp_get_wtime();
#pragma omp parallel num_threads(threads)
    {
        static __thread float a[XG_GEMM_KC * XG_GEMM_MR], b[2 * XG_GEMM_KC * XG_GEMM_NP];
        float tile[XG_GEMM_MR * XG_GEMM_NR];
        for (long i = 0; i < XG_GEMM_KC * XG_GEMM_MR; i++) a[i] = 1e-3f * (float)(i % 7);
        for (long i = 0; i < 2 * XG_GEMM_KC * XG_GEMM_NP; i++) b[i] = 1e-3f * (float)(i % 5);
        for (long r = 0; r < reps; r++) ukr(XG_GEMM_KC, a, b, XG_GEMM_KC * XG_GEMM_NP, tile);
    }
    double flops = 2.0 * XG_GEMM_MR * XG_GEMM_NR * XG_GEMM_KC * (double)reps * threads;
    return flops / (omp_get_wtime() - start) / 1e9;
}
"""
PEAK_SIZE = 2048  # a large square problem, printed beside the peak: packing costs little there


@contextmanager
def sgemm_library() -> Iterator[ctypes.CDLL]:
    """The wrapper compiled into a temporary shared library."""
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "gemm_bench.c"
        library = Path(directory) / "gemm_bench.so"
        includes = "".join(f'#include "{h}"\n' for h in kernel_headers(["gemm.h"]))
        source.write_text(includes + WRAPPER + UKR_WRAPPER)
        flags = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]
        cc = [find_compiler().path, *flags, str(source), "-o", str(library), "-lm"]
        done = subprocess.run(cc, capture_output=True, text=True)
        if done.returncode:
            errors = [line for line in done.stderr.splitlines() if "error" in line]
            raise RuntimeError(f"the sgemm wrapper does not compile: {errors[:1]}")
        lib = ctypes.CDLL(str(library))
        lib.work_floats.restype = ctypes.c_long
        lib.work_floats.argtypes = [ctypes.c_long] * 3
        lib.sgemm.argtypes = [ctypes.c_long] * 3 + [ctypes.c_void_p] * 4 + [ctypes.c_int]
        lib.ukr_gflops.restype = ctypes.c_double
        lib.ukr_gflops.argtypes = [ctypes.c_int, ctypes.c_long]
        yield lib


def measure(
    lib: ctypes.CDLL, m: int, n: int, k: int, threads: int, repeats: int = 3
) -> tuple[float, float]:
    """(best GFLOP/s over repeats, max relative error against numpy)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    work = np.empty(lib.work_floats(m, n, k) + 16, np.float32)
    ptrs = [x.ctypes.data for x in (a, b, c, work)]
    lib.sgemm(m, n, k, *ptrs, threads)
    expected = a @ b
    error = float(np.abs(c - expected).max() / np.abs(expected).max())
    repeats = max(repeats, int(2e9 / (2 * m * n * k)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        lib.sgemm(m, n, k, *ptrs, threads)
        best = min(best, time.perf_counter() - start)
    return 2 * m * n * k / best / 1e9, error


def microkernel_peak(lib: ctypes.CDLL, threads: int, reps: int = 200_000) -> float:
    """Best GFLOP/s of the microkernel alone on L1-resident panels, all threads at once: the
    bound for any GEMM built on it (by default about a second of work, best of 3)."""
    return max(lib.ukr_gflops(threads, reps) for _ in range(3))

"""GFLOP/s of the two GEMM kernels alone, and the bound of xg_sgemm's microkernel: the peak that
achieved GFLOP/s are compared with. xg_sgemm (codegen/kernels/gemm.h) multiplies operands computed
at run time; linear layers (a constant weight, packed at compile time) and convolutions run on
xg_conv_nhwc (codegen/kernels/conv_nhwc.h), measured here as a GEMM: a 1x1 convolution whose
pixels are A's rows.

Compiles the kernel headers with two small wrappers, without generating any model. Used by
xgen.bench and benchmarks/gemm_peak.py.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
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
/* C = A @ B with B packed for xg_conv_nhwc; zeros: k floats (no tap reads them here) */
void linear(long m, long n, long k, const float *a, const float *packed_b, float *c,
            const float *zeros, int threads) {
    xg_team team = {0};
    const long rows[3] = {1, 1, m}, one[3] = {1, 1, 1}, none[3] = {0, 0, 0};
#pragma omp parallel num_threads(threads)
    {
        xg_team_join(&team);
        xg_conv_nhwc(a, packed_b, c, 1, k, n, rows, rows, one, one, none, one, NULL, zeros);
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
        headers = kernel_headers(["gemm.h", "conv_nhwc.h"])
        includes = "".join(f'#include "{h}"\n' for h in headers)
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
        lib.linear.argtypes = [ctypes.c_long] * 3 + [ctypes.c_void_p] * 4 + [ctypes.c_int]
        lib.ukr_gflops.restype = ctypes.c_double
        lib.ukr_gflops.argtypes = [ctypes.c_int, ctypes.c_long]
        yield lib


def measure(
    lib: ctypes.CDLL, m: int, n: int, k: int, threads: int, repeats: int = 3
) -> tuple[float, float]:
    """xg_sgemm: (best GFLOP/s over repeats, max relative error against numpy)."""
    a, b = _operands(m, n, k)
    work = np.empty(lib.work_floats(m, n, k) + 16, np.float32)
    return _timed(lambda c: lib.sgemm(m, n, k, a.ctypes.data, b.ctypes.data, c, work.ctypes.data,
                                      threads), a, b, repeats)  # fmt: skip


def measure_linear(
    lib: ctypes.CDLL, m: int, n: int, k: int, threads: int, repeats: int = 3
) -> tuple[float, float]:
    """xg_conv_nhwc as a linear layer, B packed beforehand as at compile time: (best GFLOP/s
    over repeats, max relative error against numpy)."""
    from xgen.codegen.lower_gemm import pack_conv_nhwc

    a, b = _operands(m, n, k)
    packed, zeros = _aligned(pack_conv_nhwc(b.T.reshape(n, k, 1))), np.zeros(k, np.float32)
    return _timed(lambda c: lib.linear(m, n, k, a.ctypes.data, packed.ctypes.data, c,
                                       zeros.ctypes.data, threads), a, b, repeats)  # fmt: skip


def _operands(m: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    return a, rng.standard_normal((k, n), dtype=np.float32)


def _aligned(array: np.ndarray) -> np.ndarray:
    """A copy starting on 64 bytes, as packed weights do in a model's weight blob."""
    buffer = np.empty(array.size + 16, np.float32)
    start = -buffer.ctypes.data % 64 // 4
    copy = buffer[start : start + array.size]
    copy[:] = array.ravel()
    return copy


def _timed(
    run: Callable[[int], None], a: np.ndarray, b: np.ndarray, repeats: int
) -> tuple[float, float]:
    """(best GFLOP/s of run(c pointer) over repeats, max relative error of c = a @ b)."""
    (m, k), n = a.shape, b.shape[1]
    c = np.empty((m, n), np.float32)
    run(c.ctypes.data)
    expected = a @ b
    error = float(np.abs(c - expected).max() / np.abs(expected).max())
    repeats = max(repeats, int(2e9 / (2 * m * n * k)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(c.ctypes.data)
        best = min(best, time.perf_counter() - start)
    return 2 * m * n * k / best / 1e9, error


def microkernel_peak(lib: ctypes.CDLL, threads: int, reps: int = 200_000) -> float:
    """Best GFLOP/s of the microkernel alone on L1-resident panels, all threads at once: the
    bound for any GEMM built on it (by default about a second of work, best of 3)."""
    return max(lib.ukr_gflops(threads, reps) for _ in range(3))

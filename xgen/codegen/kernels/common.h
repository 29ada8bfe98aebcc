/* xgen kernel prelude: included first in every generated model, before the other kernels/*.h.
 *
 * Conventions for kernel headers: plain C11 (GNU dialect), every function `static` (one model is
 * one translation unit), names prefixed `xg_`, no header includes another kernels/*.h (the emitter
 * inlines them all, in sorted order, after this one). Tensors are dense row-major. Tensors in
 * the arena and the weight blob start 64-byte aligned, but caller buffers (graph inputs and
 * outputs) and slices of a tensor need only be aligned to their element type.
 */
#ifndef XGEN_COMMON_H
#define XGEN_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define XG_RESTRICT restrict
#define XG_ALIGN 64
#define XG_INLINE static inline __attribute__((always_inline))
#define XG_ASSUME_ALIGNED(p) __builtin_assume_aligned((p), XG_ALIGN)
#define XG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define XG_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Loops with at least this much work (elements, or multiply-adds) are worth a parallel region. */
#define XG_PARALLEL_MIN 32768L

/* Number of threads the next parallel region may use (1 without OpenMP). */
static inline int xg_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Index of the calling thread inside a parallel region (0 without OpenMP). */
static inline int xg_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#endif /* XGEN_COMMON_H */

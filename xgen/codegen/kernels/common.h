/* xgen kernel prelude: included first in every generated model, before the other kernel headers.
 *
 * Conventions for kernel headers: plain C11 (GNU dialect), every function `static` (one model is
 * one translation unit), names prefixed `xg_`; a header #includes the kernel headers it uses and
 * the emitter inlines them all, each after its dependencies. Every kernel is called by the whole
 * thread team (see "threads" below). Tensors are dense row-major. Tensors in the arena and the
 * weight blob start 64-byte aligned, but caller buffers (graph inputs and outputs) and slices of
 * a tensor need only be aligned to their element type.
 */
#ifndef XGEN_COMMON_H
#define XGEN_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define XG_RESTRICT restrict
#define XG_ALIGN 64
#define XG_INLINE static inline __attribute__((always_inline))
#define XG_ASSUME_ALIGNED(p) __builtin_assume_aligned((p), XG_ALIGN)
#define XG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define XG_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- threads -------------------------------------------------------------------------------
 * A model runs as one OpenMP parallel region (xgen_run) whose threads first join the run's
 * xg_team (below): the whole team executes every node, each thread taking its share of the
 * node's loops (xg_share), and the nodes are separated by xg_barrier.
 * One region per inference instead of one per loop matters where idle OpenMP workers
 * sleep (OMP_WAIT_POLICY=passive, or an oversubscribed machine): every region and every OpenMP
 * barrier then costs a futex wake-up, 20-40 us on a 2-vCPU VM, while xg_barrier spins briefly.
 * Kernels must therefore be called by every thread of the team, with the same arguments. */

/* Loops with at least this much work (elements, or multiply-adds) are split over the team. */
#define XG_PARALLEL_MIN 32768L
/* Kernels that give each thread a slice of scratch memory (attention, Winograd, the sparse and
 * the fused expansion kernels) reserve this many slices (lower.SCRATCH_THREADS); a thread past
 * them idles in those kernels. */
#define XG_SCRATCH_THREADS 8
/* Pauses xg_barrier spins before it starts yielding the core (a few tens of microseconds). */
#define XG_SPIN_LIMIT 4096

static inline int xg_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

static inline int xg_team_rank(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* A half-open range of loop iterations. */
typedef struct {
    long lo, hi;
} xg_range;

/* The calling thread's share of n iterations: an even split over the team when the loop's work
 * exceeds XG_PARALLEL_MIN, else every iteration on thread 0 (the others get an empty range). */
static inline xg_range xg_share(long n, long work) {
    int team = work > XG_PARALLEL_MIN ? xg_team_size() : 1, rank = xg_team_rank();
    if (rank >= team) return (xg_range){0, 0};
    long base = n / team, extra = n % team;
    long lo = rank * base + (rank < extra ? rank : extra);
    return (xg_range){lo, lo + base + (rank < extra)};
}

/* dst = src over nbytes, split over the team. */
static void xg_copy(void *dst, const void *src, long nbytes) {
    const long chunk = 4096;
    xg_range share = xg_share((nbytes + chunk - 1) / chunk, nbytes / 4);
    for (long c = share.lo; c < share.hi; c++) {
        long begin = c * chunk, size = XG_MIN(chunk, nbytes - begin);
        memcpy((char *)dst + begin, (const char *)src + begin, (size_t)size);
    }
}

static inline void xg_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* What the threads of one run share: the barrier's count and generation, and the first runtime
 * check that failed (1-based, 0 if none). It lives on the stack of the run (xgen_run), and each
 * thread of the team joins it first, so that concurrent runs of one model (each with its own
 * arena) never meet. */
typedef struct {
    unsigned arrived, generation;
    int status;
} xg_team;

static __thread xg_team *xg_my_team;

static inline void xg_team_join(xg_team *team) { xg_my_team = team; }

/* Records a failed runtime check; the first one wins. */
static inline void xg_fail(int check) {
    int none = 0;
    __atomic_compare_exchange_n(&xg_my_team->status, &none, check, 0, __ATOMIC_RELAXED,
                                __ATOMIC_RELAXED);
}

/* Counting barrier with a generation number: the last thread to arrive resets the count and
 * starts the next generation; the others spin on the generation, then yield their core to
 * whatever else runs (an oversubscribed machine) rather than burn it. */
static void xg_barrier(void) {
    unsigned size = (unsigned)xg_team_size();
    if (size == 1) return;
    xg_team *team = xg_my_team;
    unsigned generation = __atomic_load_n(&team->generation, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&team->arrived, 1, __ATOMIC_ACQ_REL) == size) {
        __atomic_store_n(&team->arrived, 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&team->generation, 1, __ATOMIC_RELEASE);
        return;
    }
    for (int spins = 0; __atomic_load_n(&team->generation, __ATOMIC_ACQUIRE) == generation;) {
        if (spins < XG_SPIN_LIMIT) {
            spins++;
            xg_cpu_relax();
        } else {
            sched_yield();
        }
    }
}

#endif /* XGEN_COMMON_H */

/* Reductions of x viewed as [outer][n][inner] to y[outer][inner]; several axes are reduced by
 * chaining passes (the lowering merges adjacent dims). One instance per element type T, named
 * after it (xg_reduce_sum_float, xg_reduce_max_int32_t, ...): the lowering picks it by the C type.
 * Integer sums chained over several passes keep their partial sums in int64_t
 * (xg_reduce_sum_int8_t_to_int64_t, then xg_reduce_sum_int64_t_to_int8_t), so that a mean divides
 * the exact total.
 *
 * Accumulators: float sums and products in double, so that long reductions stay within 1e-4 of
 * numpy; integer sums and products in uint64_t, which wraps without undefined behaviour and
 * leaves T's wrapped result in its low bits. max and min are exact in T and, as numpy's, give NaN
 * where any element is NaN (`v != v`: a select that vectorises, and false for integers). A mean
 * over no elements is 0 / 0: NaN for floats, as numpy's (integer means of none give 0). */
#ifndef XG_REDUCE_H
#define XG_REDUCE_H

#include "common.h"

#define XG_REDUCE_BLOCK 64 /* inner columns reduced together: the accumulators stay in registers */

#define XG_SUM(a, v) ((a) + (v))
#define XG_PROD(a, v) ((a) * (v))
#define XG_TAKE_MAX(a, v) (((v) > (a)) | ((v) != (v)) ? (v) : (a)) /* a NaN accumulator stays */
#define XG_TAKE_MIN(a, v) (((v) < (a)) | ((v) != (v)) ? (v) : (a))

/* y = FINISH(TY, acc, div): div is the element count for a mean's last pass, else 1. Integer
 * means divide the signed total, truncating toward zero as onnxruntime does. */
#define XG_FINISH_FLOAT(T, acc, div) ((T)((acc) / (double)(div)))
#define XG_FINISH_INT(T, acc, div) ((T)((int64_t)(acc) / (div)))

/* Contiguous rows (inner == 1) use 16 interleaved lanes so the compiler vectorises; otherwise a
 * block of inner columns is reduced down the n rows at once. */
#define XG_DEFINE_REDUCE(NAME, T, TY, ACC, INIT, COMBINE, FINISH)                              \
    static void NAME(const T *x, TY *y, long outer, long n, long inner, long div)               \
    {                                                                                           \
        xg_range share = xg_share(outer, outer * n * inner);                                    \
        for (long o = share.lo; o < share.hi; o++) {                                            \
            const T *xo = x + o * n * inner;                                                    \
            if (inner == 1) {                                                                   \
                ACC lanes[16];                                                                  \
                for (int l = 0; l < 16; l++) lanes[l] = INIT;                                   \
                /* The tail starts at a bound of its own: continuing the blocks' index made */  \
                /* gcc warn that "iteration 2^62 - 1 invokes undefined behavior". */            \
                long whole = n - n % 16;                                                        \
                for (long r = 0; r < whole; r += 16)                                            \
                    _Pragma("omp simd") /* else the lanes unroll to scalar max/min */           \
                    for (int l = 0; l < 16; l++) lanes[l] = COMBINE(lanes[l], (ACC)xo[r + l]);  \
                for (long r = whole; r < n; r++) lanes[0] = COMBINE(lanes[0], (ACC)xo[r]);      \
                ACC acc = lanes[0];                                                             \
                for (int l = 1; l < 16; l++) acc = COMBINE(acc, lanes[l]);                      \
                y[o] = FINISH(TY, acc, div);                                                    \
                continue;                                                                       \
            }                                                                                   \
            for (long i0 = 0; i0 < inner; i0 += XG_REDUCE_BLOCK) {                              \
                long w = inner - i0 < XG_REDUCE_BLOCK ? inner - i0 : XG_REDUCE_BLOCK;           \
                ACC acc[XG_REDUCE_BLOCK];                                                       \
                for (long j = 0; j < w; j++) acc[j] = INIT;                                     \
                for (long r = 0; r < n; r++) {                                                  \
                    const T *row = xo + r * inner + i0;                                         \
                    for (long j = 0; j < w; j++) acc[j] = COMBINE(acc[j], (ACC)row[j]);         \
                }                                                                               \
                for (long j = 0; j < w; j++) y[o * inner + i0 + j] = FINISH(TY, acc[j], div);   \
            }                                                                                   \
        }                                                                                       \
    }

/* The four reductions of one element type (ReduceMean is a sum with div = count). */
#define XG_DEFINE_REDUCES(T, WIDE, LOWEST, HIGHEST, FINISH)                                    \
    XG_DEFINE_REDUCE(xg_reduce_sum_##T, T, T, WIDE, 0, XG_SUM, FINISH)                          \
    XG_DEFINE_REDUCE(xg_reduce_prod_##T, T, T, WIDE, 1, XG_PROD, FINISH)                        \
    XG_DEFINE_REDUCE(xg_reduce_max_##T, T, T, T, LOWEST, XG_TAKE_MAX, FINISH)                   \
    XG_DEFINE_REDUCE(xg_reduce_min_##T, T, T, T, HIGHEST, XG_TAKE_MIN, FINISH)

/* The sums into and out of int64_t partial sums, for the integer types narrower than it. */
#define XG_DEFINE_WIDE_SUMS(T)                                                                  \
    XG_DEFINE_REDUCE(xg_reduce_sum_##T##_to_int64_t, T, int64_t, uint64_t, 0, XG_SUM,           \
                     XG_FINISH_INT)                                                             \
    XG_DEFINE_REDUCE(xg_reduce_sum_int64_t_to_##T, int64_t, T, uint64_t, 0, XG_SUM, XG_FINISH_INT)

XG_DEFINE_REDUCES(float, double, -INFINITY, INFINITY, XG_FINISH_FLOAT)
XG_DEFINE_REDUCES(int64_t, uint64_t, INT64_MIN, INT64_MAX, XG_FINISH_INT)
XG_DEFINE_REDUCES(int32_t, uint64_t, INT32_MIN, INT32_MAX, XG_FINISH_INT)
XG_DEFINE_REDUCES(int8_t, uint64_t, INT8_MIN, INT8_MAX, XG_FINISH_INT)
XG_DEFINE_REDUCES(uint8_t, uint64_t, 0, UINT8_MAX, XG_FINISH_INT)
XG_DEFINE_WIDE_SUMS(int32_t)
XG_DEFINE_WIDE_SUMS(int8_t)
XG_DEFINE_WIDE_SUMS(uint8_t)

/* ArgMax / ArgMin along n into int64 indices: the first extreme index, or the last with
 * select_last. NaN counts as the extreme, as in numpy (the index ReduceMax's NaN comes from). */
#define XG_DEFINE_ARG_REDUCE(T)                                                                 \
    static void xg_arg_reduce_##T(const T *x, int64_t *y, long outer, long n, long inner,       \
                                  int is_max, int select_last)                                  \
    {                                                                                           \
        xg_range share = xg_share(outer, outer * n * inner);                                    \
        for (long o = share.lo; o < share.hi; o++) {                                            \
            for (long i = 0; i < inner; i++) {                                                  \
                const T *col = x + o * n * inner + i;                                           \
                T best = col[0];                                                                \
                long at = 0;                                                                    \
                for (long r = 1; r < n; r++) {                                                  \
                    T v = col[r * inner];                                                       \
                    int better = best != best ? select_last && v != v                           \
                                 : v != v || (is_max ? (select_last ? v >= best : v > best)     \
                                                     : (select_last ? v <= best : v < best));   \
                    if (better) best = v, at = r;                                               \
                }                                                                               \
                y[o * inner + i] = at;                                                          \
            }                                                                                   \
        }                                                                                       \
    }

XG_DEFINE_ARG_REDUCE(float)
XG_DEFINE_ARG_REDUCE(int64_t)
XG_DEFINE_ARG_REDUCE(int32_t)
XG_DEFINE_ARG_REDUCE(int8_t)
XG_DEFINE_ARG_REDUCE(uint8_t)

#endif /* XG_REDUCE_H */

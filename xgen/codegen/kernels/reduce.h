/* Reductions of x viewed as [outer][n][inner] to y[outer][inner]; several axes are reduced by
 * chaining passes (the lowering merges adjacent dims). Sums and products accumulate in double so
 * that long reductions stay within 1e-4 of numpy; max and min are exact in float. */
#ifndef XG_REDUCE_H
#define XG_REDUCE_H

#define XG_REDUCE_BLOCK 64 /* inner columns reduced together: the accumulators stay in registers */

#define XG_SUM(a, v) ((a) + (v))
#define XG_PROD(a, v) ((a) * (v))
#define XG_FMAX(a, v) ((v) > (a) ? (v) : (a))
#define XG_FMIN(a, v) ((v) < (a) ? (v) : (a))

/* y = scale * reduce(x): contiguous rows (inner == 1) use 16 interleaved lanes so the compiler
 * vectorises; otherwise a block of inner columns is reduced down the n rows at once. */
#define XG_DEFINE_REDUCE(NAME, T, INIT, COMBINE)                                                 \
    static void xg_reduce_##NAME(const float *x, float *y, long outer, long n, long inner,      \
                                 float scale)                                                   \
    {                                                                                           \
        _Pragma("omp parallel for schedule(static) if (outer * n * inner > XG_PARALLEL_MIN)")   \
        for (long o = 0; o < outer; o++) {                                                      \
            const float *xo = x + o * n * inner;                                                \
            if (inner == 1) {                                                                   \
                T lanes[16];                                                                    \
                for (int l = 0; l < 16; l++) lanes[l] = INIT;                                   \
                long r = 0;                                                                     \
                for (; r + 16 <= n; r += 16)                                                    \
                    for (int l = 0; l < 16; l++) lanes[l] = COMBINE(lanes[l], (T)xo[r + l]);    \
                for (; r < n; r++) lanes[0] = COMBINE(lanes[0], (T)xo[r]);                      \
                T acc = lanes[0];                                                               \
                for (int l = 1; l < 16; l++) acc = COMBINE(acc, lanes[l]);                      \
                y[o] = (float)(acc * scale);                                                    \
                continue;                                                                       \
            }                                                                                   \
            for (long i0 = 0; i0 < inner; i0 += XG_REDUCE_BLOCK) {                              \
                long w = inner - i0 < XG_REDUCE_BLOCK ? inner - i0 : XG_REDUCE_BLOCK;           \
                T acc[XG_REDUCE_BLOCK];                                                         \
                for (long j = 0; j < w; j++) acc[j] = INIT;                                     \
                for (long r = 0; r < n; r++) {                                                  \
                    const float *row = xo + r * inner + i0;                                     \
                    for (long j = 0; j < w; j++) acc[j] = COMBINE(acc[j], (T)row[j]);           \
                }                                                                               \
                for (long j = 0; j < w; j++) y[o * inner + i0 + j] = (float)(acc[j] * scale);   \
            }                                                                                   \
        }                                                                                       \
    }

XG_DEFINE_REDUCE(sum, double, 0.0, XG_SUM)
XG_DEFINE_REDUCE(prod, double, 1.0, XG_PROD)
XG_DEFINE_REDUCE(max, float, -INFINITY, XG_FMAX)
XG_DEFINE_REDUCE(min, float, INFINITY, XG_FMIN)

/* ArgMax / ArgMin along n: the first extreme index, or the last with select_last. */
static void xg_arg_reduce(const float *x, int64_t *y, long outer, long n, long inner, int is_max,
                          int select_last)
{
#pragma omp parallel for schedule(static) if (outer * n * inner > XG_PARALLEL_MIN)
    for (long o = 0; o < outer; o++) {
        for (long i = 0; i < inner; i++) {
            const float *col = x + o * n * inner + i;
            float best = col[0];
            long at = 0;
            for (long r = 1; r < n; r++) {
                float v = col[r * inner];
                int better = is_max ? (select_last ? v >= best : v > best)
                                    : (select_last ? v <= best : v < best);
                if (better) best = v, at = r;
            }
            y[o * inner + i] = at;
        }
    }
}

#endif /* XG_REDUCE_H */

/* The fused epilogue of xg_sgemm and the convolutions (ops.Epilogue in the IR): what happens to
 * a row segment of output values while its tile is still in registers or L1, instead of in a
 * separate pass over the whole output.
 *
 *   v = acc + row_bias + col_bias[j] + res[j], then clamped to [lo, hi] when clamp is set, or
 *   through GELU (erf or tanh form) when gelu is set
 *
 * Clamping with comparisons lets NaN through, as numpy's maximum / clip do.
 */
#ifndef XG_EPILOGUE_H
#define XG_EPILOGUE_H

#include "common.h"
#include "elementwise.h"

typedef struct {
    const float *row_bias; /* one per row of C (a conv's output channel), or NULL */
    const float *col_bias; /* one per column of C (a Gemm's bias vector), or NULL */
    const float *res;      /* a residual laid out like C (same row stride), or NULL */
    int clamp;             /* Relu is [0, inf], Clip (ReLU6) [min, max] */
    float lo, hi;
    int gelu; /* XG_GELU_ERF or XG_GELU_TANH, or 0 */
} xg_epilogue;

enum { XG_GELU_ERF = 1, XG_GELU_TANH = 2 };

/* c[0..n) = GELU(c[0..n)) in the form `gelu` names (0: unchanged). */
static inline void xg_gelu_row(int gelu, float *c, long n)
{
    if (gelu == XG_GELU_ERF)
        for (long j = 0; j < n; j++) c[j] = xg_gelu_erff(c[j]);
    else if (gelu == XG_GELU_TANH)
        for (long j = 0; j < n; j++) c[j] = xg_gelu_tanhf(c[j]);
}

/* The epilogue of the n values c[0..n) of row `row` of C starting at column n0 (a NULL ep
 * does nothing). The residual is read at res + row * ldr + n0. One short loop per step, each
 * vectorisable: the steps present differ per call site but not along a row. */
static inline void xg_epilogue_row(const xg_epilogue *ep, long row, long n0, long n, long ldr,
                                   float *c)
{
    if (!ep) return;
    if (ep->row_bias) {
        float b = ep->row_bias[row];
        for (long j = 0; j < n; j++) c[j] += b;
    }
    if (ep->col_bias)
        for (long j = 0; j < n; j++) c[j] += ep->col_bias[n0 + j];
    if (ep->res) {
        const float *r = ep->res + row * ldr + n0;
        for (long j = 0; j < n; j++) c[j] += r[j];
    }
    if (ep->clamp) {
        float lo = ep->lo, hi = ep->hi;
        for (long j = 0; j < n; j++) { /* one maxps and one minps, NaN kept */
            float v = c[j] < lo ? lo : c[j];
            c[j] = v > hi ? hi : v;
        }
    }
    xg_gelu_row(ep->gelu, c, n);
}

#endif /* XG_EPILOGUE_H */

/* MaxPool and AveragePool, NC + 1 to 3 spatial dims (lower ranks padded to 3 with size-1 dims).
 * in, out, ker, stride, dil: 3 longs; pad: 6 longs (3 begins then 3 ends). Windows that run
 * past the input (padding, or ceil_mode's extra window) skip the missing taps; AveragePool divides
 * by the taps inside the input, or with count_include_pad by those inside the padded input. */
#ifndef XG_POOL_H
#define XG_POOL_H

#include "common.h"

/* The taps of one window along one dim: k in [lo, hi) land inside [0, n), and k in [0, padded)
 * inside the padded input (a window never starts before the begin padding). With the z and y
 * taps computed once per output row and the outputs each x tap reaches (xg_tap_outputs), the
 * loops below carry no bounds tests. */
typedef struct {
    long lo, hi, padded, base; /* base: input coordinate of tap 0 */
} xg_taps;

XG_INLINE long xg_ceil_div(long a, long b) { return a <= 0 ? 0 : (a + b - 1) / b; }

XG_INLINE xg_taps xg_pool_taps(long o, long n, long ker, long stride, long pad_begin,
                               long pad_end, long dil)
{
    xg_taps t;
    t.base = o * stride - pad_begin;
    t.lo = t.base < 0 ? xg_ceil_div(-t.base, dil) : 0;
    t.hi = XG_MIN(ker, xg_ceil_div(n - t.base, dil));
    t.hi = XG_MAX(t.hi, t.lo);
    t.padded = XG_MIN(ker, xg_ceil_div(n + pad_end - t.base, dil));
    return t;
}

/* The outputs o in [*lo, *hi) of a row whose tap k lands inside [0, n): its input coordinate
 * o * stride + off with off = k * dil - pad_begin. */
XG_INLINE void xg_tap_outputs(long k, long n, long n_out, long stride, long pad_begin, long dil,
                              long *lo, long *hi)
{
    long off = k * dil - pad_begin;
    *lo = off < 0 ? xg_ceil_div(-off, stride) : 0;
    *hi = XG_MAX(*lo, XG_MIN(n_out, xg_ceil_div(n - off, stride)));
}

/* One tap over the outputs [lo, hi) of a row: max (a NaN tap makes the output NaN, as
 * numpy and PyTorch do; `v != v` tests for NaN) or sum. Inlined with a literal stride of 1 or 2, the loop vectorises with plain loads and
 * shuffles rather than one load per element. */
XG_INLINE void xg_pool_tap(int is_max, float *restrict yr, const float *restrict src, long lo,
                           long hi, long s)
{
    if (is_max)
        for (long ox = lo; ox < hi; ox++) {
            float v = src[ox * s];
            yr[ox] = v > yr[ox] || v != v ? v : yr[ox];
        }
    else
        for (long ox = lo; ox < hi; ox++) yr[ox] += src[ox * s];
}

/* One output row: yr[ox] accumulates tap after tap, each tap a loop over the outputs it
 * reaches. Taps go in the same z, y, x order for every output as a window-at-a-time loop. */
static void xg_pool_row(int is_max, int count_include_pad, const float *xp, float *yr,
                        const long *in, const long *out, const long *ker, const long *stride,
                        const long *pad, const long *dil, const xg_taps *tz, const xg_taps *ty)
{
    for (long ox = 0; ox < out[2]; ox++) yr[ox] = is_max ? -INFINITY : 0.0f;
    for (long kz = tz->lo; kz < tz->hi; kz++)
        for (long ky = ty->lo; ky < ty->hi; ky++) {
            const float *row =
                xp + ((tz->base + kz * dil[0]) * in[1] + ty->base + ky * dil[1]) * in[2];
            for (long kx = 0; kx < ker[2]; kx++) {
                long lo, hi, s = stride[2];
                xg_tap_outputs(kx, in[2], out[2], s, pad[2], dil[2], &lo, &hi);
                const float *src = row + kx * dil[2] - pad[2];
                if (s == 1)
                    xg_pool_tap(is_max, yr, src, lo, hi, 1);
                else if (s == 2)
                    xg_pool_tap(is_max, yr, src, lo, hi, 2);
                else
                    xg_pool_tap(is_max, yr, src, lo, hi, s);
            }
        }
    if (is_max) return;
    for (long ox = 0; ox < out[2]; ox++) {
        xg_taps tx = xg_pool_taps(ox, in[2], ker[2], stride[2], pad[2], pad[5], dil[2]);
        long count = count_include_pad ? tz->padded * ty->padded * tx.padded
                                       : (tz->hi - tz->lo) * (ty->hi - ty->lo) * (tx.hi - tx.lo);
        yr[ox] /= (float)count;
    }
}

static void xg_pool(int is_max, int count_include_pad, const float *x, float *y, long planes,
                    const long *in, const long *out, const long *ker, const long *stride,
                    const long *pad, const long *dil)
{
    long ipl = in[0] * in[1] * in[2], opl = out[0] * out[1] * out[2];
    xg_range share = xg_share(planes, planes * opl * ker[0] * ker[1] * ker[2]);
    for (long p = share.lo; p < share.hi; p++) {
        for (long oz = 0; oz < out[0]; oz++) {
            xg_taps tz = xg_pool_taps(oz, in[0], ker[0], stride[0], pad[0], pad[3], dil[0]);
            for (long oy = 0; oy < out[1]; oy++) {
                xg_taps ty = xg_pool_taps(oy, in[1], ker[1], stride[1], pad[1], pad[4], dil[1]);
                float *yr = y + p * opl + (oz * out[1] + oy) * out[2];
                xg_pool_row(is_max, count_include_pad, x + p * ipl, yr, in, out, ker, stride,
                            pad, dil, &tz, &ty);
            }
        }
    }
}

#endif /* XG_POOL_H */

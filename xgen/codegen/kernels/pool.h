/* MaxPool and AveragePool, NC + 1 to 3 spatial dims (lower ranks padded to 3 with size-1 dims),
 * and their channels-last form xg_pool_nhwc (N + spatial + C, vectorised over the channels).
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

/* ---- channels last (N x spatial x C) -------------------------------------------------------
 * xg_pool_nhwc and xg_depthwise_nhwc (depthwise.h) vectorise over the channels, which are
 * contiguous: a vector of XG_CL_LANES channels of XG_CL_PIX neighbouring output pixels stays in
 * registers over the whole window. A row's windows that lie whole inside the input along x all
 * read the same taps, listed once per row as offsets (xg_cl_taps); the few windows at the ends
 * get their own shorter list. The channel tail is one masked vector with AVX-512; the portable
 * path (GCC/Clang vector extension) reads and writes it lane by lane. */
#if defined(__AVX512F__)
#include <immintrin.h>

#define XG_CL_LANES 16
#define XG_CL_PIX 8
typedef __m512 xg_cl_vec;
typedef __mmask16 xg_cl_mask;
#define XG_CL_MASK(n) ((n) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n)) - 1))
#define XG_CL_LOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define XG_CL_STORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define XG_CL_SET1(f) _mm512_set1_ps(f)
/* max and min return their second operand where either is NaN: v's NaN is kept */
#define XG_CL_CLAMP(v, lo, hi) _mm512_min_ps(hi, _mm512_max_ps(lo, v))
#else
#define XG_CL_LANES 8
#define XG_CL_PIX 8
typedef float xg_cl_vec __attribute__((vector_size(XG_CL_LANES * sizeof(float))));
typedef int xg_cl_ivec __attribute__((vector_size(XG_CL_LANES * sizeof(float))));
typedef xg_cl_vec xg_cl_vec_unaligned __attribute__((aligned(4), may_alias));
typedef long xg_cl_mask; /* the lanes in use */
#define XG_CL_MASK(n) XG_MIN(n, XG_CL_LANES)
/* Macros, not functions: a function taking or returning a vector wider than the target's makes
 * gcc warn of an ABI change. */
#define XG_CL_LOAD(p, m)                                                                         \
    ({                                                                                           \
        xg_cl_vec v_ = {0.0f};                                                                   \
        if ((m) == XG_CL_LANES)                                                                  \
            v_ = *(const xg_cl_vec_unaligned *)(p);                                              \
        else                                                                                     \
            for (long l_ = 0; l_ < (m); l_++) v_[l_] = (p)[l_];                                  \
        v_;                                                                                      \
    })
#define XG_CL_STORE(p, m, v)                                                                     \
    do {                                                                                         \
        if ((m) == XG_CL_LANES)                                                                  \
            *(xg_cl_vec_unaligned *)(p) = (v);                                                   \
        else                                                                                     \
            for (long l_ = 0; l_ < (m); l_++) (p)[l_] = (v)[l_];                                 \
    } while (0)
#define XG_CL_SET1(f) ((xg_cl_vec){0.0f} + (f))
/* where `take`, b, else a: comparisons give all-ones lanes */
#define XG_CL_SELECT(take, a, b)                                                                 \
    ((xg_cl_vec)(((xg_cl_ivec)(b) & (take)) | ((xg_cl_ivec)(a) & ~(take))))
#define XG_CL_CLAMP(v, lo, hi)                                                                   \
    ({                                                                                           \
        xg_cl_vec c_ = XG_CL_SELECT((v) < (lo), v, lo); /* NaN compares false: kept */         \
        XG_CL_SELECT(c_ > (hi), c_, hi);                                                         \
    })
#endif

/* The offsets in floats from a window's first pixel (its tap (0, 0, 0), maybe in the padding)
 * of the taps [tz->lo, tz->hi) x [ty->lo, ty->hi) x [kx0, kx1) in (kz, ky, kx) order, and
 * (unless tap is NULL) their offsets in a [taps][channels] weight; returns how many. */
static long xg_cl_taps(const xg_taps *tz, const xg_taps *ty, long kx0, long kx1, const long *in,
                       const long *ker, const long *dil, long channels, long *off, long *tap)
{
    long n = 0;
    for (long kz = tz->lo; kz < tz->hi; kz++)
        for (long ky = ty->lo; ky < ty->hi; ky++)
            for (long kx = kx0; kx < kx1; kx++, n++) {
                off[n] = ((kz * dil[0] * in[1] + ky * dil[1]) * in[2] + kx * dil[2]) * channels;
                if (tap) tap[n] = ((kz * ker[1] + ky) * ker[2] + kx) * channels;
            }
    return n;
}

/* The outputs [*lo, *hi) of a row whose windows lie whole inside the input along x (*lo <= *hi;
 * the others are the row's ends). */
static void xg_cl_whole(const long *in, const long *out, const long *ker, const long *stride,
                        const long *pad, const long *dil, long *lo, long *hi)
{
    long lo0, hi0, lo1, hi1; /* the outputs the first and the last x tap reach */
    xg_tap_outputs(0, in[2], out[2], stride[2], pad[2], dil[2], &lo0, &hi0);
    xg_tap_outputs(ker[2] - 1, in[2], out[2], stride[2], pad[2], dil[2], &lo1, &hi1);
    *lo = XG_MAX(lo0, lo1);
    *hi = XG_MAX(XG_MIN(hi0, hi1), *lo);
}

/* P (a literal once inlined) outputs, xs floats apart in x, of the m channels at x and y: the
 * max or the sum over the n taps at x + xo + off of each window, the sum divided by count. Offsets
 * stay integers until they are summed: a window's first pixel may lie before the tensor. */
XG_INLINE void xg_pool_cl_tile(int is_max, const int P, const float *x, long xo, long xs,
                               const long *off, long n, xg_cl_mask m, float count, float *y,
                               long ys)
{
    xg_cl_vec acc[XG_CL_PIX];
#if defined(__AVX512F__)
    __mmask16 nan[XG_CL_PIX]; /* _mm512_max_ps drops a NaN tap: noted apart */
    for (int p = 0; p < P; p++) nan[p] = 0;
#endif
    for (int p = 0; p < P; p++) acc[p] = XG_CL_SET1(is_max ? -INFINITY : 0.0f);
    for (long t = 0; t < n; t++) {
        const float *s = x + (xo + off[t]); /* inside the tensor: the tap is */
        for (int p = 0; p < P; p++) {
            xg_cl_vec v = XG_CL_LOAD(s + p * xs, m);
#if defined(__AVX512F__)
            if (is_max) {
                acc[p] = _mm512_max_ps(v, acc[p]); /* acc[p] if either is NaN: NaN stays */
                nan[p] |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            } else {
                acc[p] = _mm512_add_ps(acc[p], v);
            }
#else
            acc[p] = is_max ? XG_CL_SELECT((v > acc[p]) | (v != v), acc[p], v) : acc[p] + v;
#endif
        }
    }
    for (int p = 0; p < P; p++) {
#if defined(__AVX512F__)
        xg_cl_vec r = is_max ? _mm512_mask_mov_ps(acc[p], nan[p], _mm512_set1_ps(NAN))
                             : _mm512_div_ps(acc[p], XG_CL_SET1(count));
#else
        xg_cl_vec r = is_max ? acc[p] : acc[p] / count;
#endif
        XG_CL_STORE(y + p * ys, m, r);
    }
}

/* Every channel of P outputs of max (is_max a literal once inlined) or sum, the first one's
 * window starting at x + xo. Whole vectors get a tile built for them (literal lanes: plain
 * loads), the tail its own. */
XG_INLINE void xg_pool_cl_op(const int is_max, const int P, const float *x, long xo, float *y,
                             long channels, long xs, const long *off, long n, float count)
{
    long c = 0;
    for (; c + XG_CL_LANES <= channels; c += XG_CL_LANES)
        xg_pool_cl_tile(is_max, P, x + c, xo, xs, off, n, XG_CL_MASK(XG_CL_LANES), count, y + c,
                        channels);
    if (c < channels)
        xg_pool_cl_tile(is_max, P, x + c, xo, xs, off, n, XG_CL_MASK(channels - c), count, y + c,
                        channels);
}

/* xg_pool_cl_op built for max and for sum. */
XG_INLINE void xg_pool_cl_pixels(int is_max, const int P, const float *x, long xo, float *y,
                                 long channels, long xs, const long *off, long n, float count)
{
    if (is_max)
        xg_pool_cl_op(1, P, x, xo, y, channels, xs, off, n, count);
    else
        xg_pool_cl_op(0, P, x, xo, y, channels, xs, off, n, count);
}

/* The output ox at a row's end: its window's own taps, and its own count. */
static void xg_pool_cl_end(int is_max, int count_include_pad, const float *x, long row0, float *y,
                           long channels, long ox, long cyz, const long *in, const long *ker,
                           const long *stride, const long *pad, const long *dil,
                           const xg_taps *tz, const xg_taps *ty, long *off)
{
    xg_taps tx = xg_pool_taps(ox, in[2], ker[2], stride[2], pad[2], pad[5], dil[2]);
    long n = xg_cl_taps(tz, ty, tx.lo, tx.hi, in, ker, dil, channels, off, NULL);
    long cx = count_include_pad ? tx.padded : tx.hi - tx.lo;
    xg_pool_cl_pixels(is_max, 1, x, (row0 + tx.base) * channels, y + ox * channels, channels, 0,
                      off, n, (float)(cyz * cx));
}

/* One output row (oz, oy) of one image: the whole windows XG_CL_PIX at a time, the ends alone.
 * off holds a window's taps. */
static void xg_pool_cl_row(int is_max, int count_include_pad, const float *x, float *y,
                           long channels, const long *in, const long *out, const long *ker,
                           const long *stride, const long *pad, const long *dil,
                           const xg_taps *tz, const xg_taps *ty, long *off)
{
    long row0 = (tz->base * in[1] + ty->base) * in[2], xs = stride[2] * channels, lo, hi;
    long cyz = count_include_pad ? tz->padded * ty->padded : (tz->hi - tz->lo) * (ty->hi - ty->lo);
    xg_cl_whole(in, out, ker, stride, pad, dil, &lo, &hi);
    for (long ox = 0; ox < lo; ox++)
        xg_pool_cl_end(is_max, count_include_pad, x, row0, y, channels, ox, cyz, in, ker, stride,
                       pad, dil, tz, ty, off);
    long n = xg_cl_taps(tz, ty, 0, ker[2], in, ker, dil, channels, off, NULL), ox = lo;
    float count = (float)(cyz * ker[2]);
    for (; ox + XG_CL_PIX <= hi; ox += XG_CL_PIX)
        xg_pool_cl_pixels(is_max, XG_CL_PIX, x, (row0 + ox * stride[2] - pad[2]) * channels,
                          y + ox * channels, channels, xs, off, n, count);
    for (; ox < hi; ox++)
        xg_pool_cl_pixels(is_max, 1, x, (row0 + ox * stride[2] - pad[2]) * channels,
                          y + ox * channels, channels, xs, off, n, count);
    for (ox = hi; ox < out[2]; ox++)
        xg_pool_cl_end(is_max, count_include_pad, x, row0, y, channels, ox, cyz, in, ker, stride,
                       pad, dil, tz, ty, off);
}

/* MaxPool and AveragePool (as xg_pool) on channels-last tensors: x is [batch][in][channels],
 * y [batch][out][channels]. The team splits the output rows. */
static void xg_pool_nhwc(int is_max, int count_include_pad, const float *x, float *y, long batch,
                         long channels, const long *in, const long *out, const long *ker,
                         const long *stride, const long *pad, const long *dil)
{
    long rows = batch * out[0] * out[1], taps = ker[0] * ker[1] * ker[2];
    xg_range share = xg_share(rows, rows * out[2] * channels * taps);
    long off[taps];
    for (long r = share.lo; r < share.hi; r++) {
        long img = r / (out[0] * out[1]), oz = r / out[1] % out[0], oy = r % out[1];
        xg_taps tz = xg_pool_taps(oz, in[0], ker[0], stride[0], pad[0], pad[3], dil[0]);
        xg_taps ty = xg_pool_taps(oy, in[1], ker[1], stride[1], pad[1], pad[4], dil[1]);
        xg_pool_cl_row(is_max, count_include_pad, x + img * in[0] * in[1] * in[2] * channels,
                       y + r * out[2] * channels, channels, in, out, ker, stride, pad, dil, &tz,
                       &ty, off);
    }
}

#endif /* XG_POOL_H */

/* Resize along one axis: x viewed as [outer][nin][inner] -> y [outer][nout][inner]. The lowering
 * computes the per-row tables at compile time for every mode and coordinate transform and chains
 * one pass per resized axis: these modes are separable. */
#ifndef XG_RESIZE_H
#define XG_RESIZE_H

#include "common.h"

/* Interpolation (float32): output row j is the weighted sum of `taps` input rows idx[j*taps + t]
 * with weights w[j*taps + t] (linear: 2 taps, cubic: 4). */
static void xg_resize_axis(const float *x, float *y, long outer, long nin, long nout, long inner,
                           long taps, const int32_t *idx, const float *w)
{
    xg_range share = xg_share(outer * nout, outer * nout * inner * taps);
    for (long oj = share.lo; oj < share.hi; oj++) {
        long o = oj / nout, j = oj % nout;
        float *dst = y + oj * inner;
        const float *src = x + o * nin * inner;
        for (long i = 0; i < inner; i++) dst[i] = 0.0f;
        for (long t = 0; t < taps; t++) {
            const float *row = src + (long)idx[j * taps + t] * inner;
            float wt = w[j * taps + t];
            for (long i = 0; i < inner; i++) dst[i] += wt * row[i];
        }
    }
}

/* Nearest: output row j is a copy of input row idx[j], so any element type works; one instance
 * per C type T (xg_resize_nearest_float, xg_resize_nearest_int64_t, ...). */
#define XG_DEFINE_RESIZE_NEAREST(T)                                                             \
    static void xg_resize_nearest_##T(const T *x, T *y, long outer, long nin, long nout,        \
                                      long inner, const int32_t *idx)                           \
    {                                                                                           \
        xg_range share = xg_share(outer * nout, outer * nout * inner);                          \
        for (long oj = share.lo; oj < share.hi; oj++) {                                         \
            const T *row = x + (oj / nout * nin + idx[oj % nout]) * inner;                      \
            T *dst = y + oj * inner;                                                            \
            for (long i = 0; i < inner; i++) dst[i] = row[i];                                   \
        }                                                                                       \
    }

XG_DEFINE_RESIZE_NEAREST(float)
XG_DEFINE_RESIZE_NEAREST(int64_t)
XG_DEFINE_RESIZE_NEAREST(int32_t)
XG_DEFINE_RESIZE_NEAREST(int8_t)
XG_DEFINE_RESIZE_NEAREST(uint8_t)

#endif /* XG_RESIZE_H */

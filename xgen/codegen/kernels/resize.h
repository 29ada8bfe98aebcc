/* Resize along one axis: x viewed as [outer][nin][inner] -> y [outer][nout][inner], output row j
 * the weighted sum of `taps` input rows idx[j*taps + t] with weights w[j*taps + t]. The lowering
 * computes the tables at compile time for every mode and coordinate transform (nearest: 1 tap,
 * linear: 2, cubic: 4) and chains one pass per resized axis: these modes are separable. */
#ifndef XG_RESIZE_H
#define XG_RESIZE_H

static void xg_resize_axis(const float *x, float *y, long outer, long nin, long nout, long inner,
                           long taps, const int32_t *idx, const float *w)
{
#pragma omp parallel for schedule(static) if (outer * nout * inner * taps > XG_PARALLEL_MIN)
    for (long oj = 0; oj < outer * nout; oj++) {
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

#endif /* XG_RESIZE_H */

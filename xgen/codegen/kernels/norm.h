/* Softmax, LogSoftmax, LayerNorm, InstanceNorm and BatchNorm (inference). */
#ifndef XG_NORM_H
#define XG_NORM_H

#include "common.h"
#include "elementwise.h" /* xg_expf */

#define XG_SOFTMAX_BLOCK 64
#define XG_LANES 16 /* interleaved accumulators: reductions over a contiguous row vectorise */

/* Softmax (or LogSoftmax) of one contiguous row of n: max, then exp and sum in one pass (the
 * exponentials stored in y), then one scaling pass. A NaN anywhere makes the row NaN. */
static void xg_softmax_row(const float *restrict x, float *restrict y, long n, int log_softmax)
{
    float lane[XG_LANES];
    long r = 0, full = n - n % XG_LANES;
    for (int l = 0; l < XG_LANES; l++) lane[l] = -INFINITY;
    for (; r < full; r += XG_LANES)
#pragma omp simd /* else gcc unrolls the lanes and leaves 16 scalar maxss */
        for (int l = 0; l < XG_LANES; l++) lane[l] = x[r + l] > lane[l] ? x[r + l] : lane[l];
    for (int w = XG_LANES / 2; w > 0; w /= 2) /* a halving tree: shuffles, not a 16-step chain */
        for (int l = 0; l < w; l++) lane[l] = lane[l + w] > lane[l] ? lane[l + w] : lane[l];
    float mx = lane[0];
    for (; r < n; r++) mx = x[r] > mx ? x[r] : mx;
    for (int l = 0; l < XG_LANES; l++) lane[l] = 0.0f;
    for (r = 0; r < full; r += XG_LANES)
#pragma omp simd
        for (int l = 0; l < XG_LANES; l++) {
            float e = xg_expf(x[r + l] - mx);
            y[r + l] = e;
            lane[l] += e;
        }
    for (int w = XG_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) lane[l] += lane[l + w];
    float sum = lane[0];
    for (; r < n; r++) {
        y[r] = xg_expf(x[r] - mx);
        sum += y[r];
    }
    if (log_softmax) { /* (x - max) - log(sum): exact near the max, unlike x - (max + log) */
        float log_sum = logf(sum);
        for (r = 0; r < n; r++) y[r] = (x[r] - mx) - log_sum;
    } else {
        float scale = 1.0f / sum;
        for (r = 0; r < n; r++) y[r] *= scale;
    }
}

/* Softmax (or LogSoftmax) of x viewed as [outer][n][inner] along n, max-subtracted so it never
 * overflows. Contiguous rows (inner == 1) go to xg_softmax_row; otherwise rows along n are
 * strided by inner and blocks of inner columns go together. */
static void xg_softmax(const float *x, float *y, long outer, long n, long inner, int log_softmax)
{
    xg_range share = xg_share(outer, outer * n * inner);
    for (long o = share.lo; o < share.hi; o++) {
        if (inner == 1) {
            xg_softmax_row(x + o * n, y + o * n, n, log_softmax);
            continue;
        }
        for (long i0 = 0; i0 < inner; i0 += XG_SOFTMAX_BLOCK) {
            long w = inner - i0 < XG_SOFTMAX_BLOCK ? inner - i0 : XG_SOFTMAX_BLOCK;
            const float *xo = x + o * n * inner + i0;
            float *yo = y + o * n * inner + i0;
            float mx[XG_SOFTMAX_BLOCK], sum[XG_SOFTMAX_BLOCK];
            for (long j = 0; j < w; j++) mx[j] = -INFINITY, sum[j] = 0.0f;
            for (long r = 0; r < n; r++)
                for (long j = 0; j < w; j++) mx[j] = xo[r * inner + j] > mx[j] ? xo[r * inner + j] : mx[j];
            for (long r = 0; r < n; r++) {
                for (long j = 0; j < w; j++) {
                    float e = xg_expf(xo[r * inner + j] - mx[j]);
                    sum[j] += e;
                    if (!log_softmax) yo[r * inner + j] = e;
                }
            }
            for (long j = 0; j < w; j++) sum[j] = log_softmax ? logf(sum[j]) : 1.0f / sum[j];
            for (long r = 0; r < n; r++)
                for (long j = 0; j < w; j++)
                    yo[r * inner + j] = log_softmax ? (xo[r * inner + j] - mx[j]) - sum[j]
                                                    : yo[r * inner + j] * sum[j];
        }
    }
}

/* Sum of (x[i] - shift)^power (power 1 or 2) over n contiguous floats, in double lanes. */
XG_INLINE double xg_sum_dev(const float *x, long n, double shift, int power)
{
    double lane[XG_LANES] = {0};
    /* The tail starts at a bound of its own: continuing the lanes' index made gcc warn that
     * "iteration 2^62 - 1 invokes undefined behavior" where n is a literal multiple of them. */
    long whole = n - n % XG_LANES;
    for (long i = 0; i < whole; i += XG_LANES)
#pragma omp simd
        for (int l = 0; l < XG_LANES; l++) {
            double d = (double)x[i + l] - shift;
            lane[l] += power == 2 ? d * d : d;
        }
    double s = 0.0;
    for (int l = 0; l < XG_LANES; l++) s += lane[l];
    for (long i = whole; i < n; i++) {
        double d = (double)x[i] - shift;
        s += power == 2 ? d * d : d;
    }
    return s;
}

/* Mean and 1/sqrt(variance + eps) of n contiguous floats, two passes in double. */
static void xg_row_moments(const float *x, long n, float eps, float *mean, float *inv_std)
{
    double m = xg_sum_dev(x, n, 0.0, 1) / (double)n;
    double ss = xg_sum_dev(x, n, m, 2);
    *mean = (float)m;
    *inv_std = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
}

/* LayerNorm over rows of n: y = (x - mean) * inv_std * gamma + beta (beta may be NULL). */
static void xg_layer_norm(const float *x, const float *gamma, const float *beta, float *y,
                          long rows, long n, float eps)
{
    xg_range share = xg_share(rows, rows * n);
    for (long r = share.lo; r < share.hi; r++) {
        float mean, inv_std;
        xg_row_moments(x + r * n, n, eps, &mean, &inv_std);
        const float *xr = x + r * n;
        float *yr = y + r * n;
        for (long i = 0; i < n; i++)
            yr[i] = (xr[i] - mean) * inv_std * gamma[i] + (beta ? beta[i] : 0.0f);
    }
}

/* InstanceNorm: each (image, channel) plane of npix normalised, then scale[c] and bias[c]. */
static void xg_instance_norm(const float *x, const float *scale, const float *bias, float *y,
                             long batch, long channels, long npix, float eps)
{
    xg_range share = xg_share(batch * channels, batch * channels * npix);
    for (long p = share.lo; p < share.hi; p++) {
        float mean, inv_std;
        xg_row_moments(x + p * npix, npix, eps, &mean, &inv_std);
        float a = inv_std * scale[p % channels], b = bias[p % channels] - mean * a;
        for (long i = 0; i < npix; i++) y[p * npix + i] = x[p * npix + i] * a + b;
    }
}

/* BatchNorm inference: y = (x - mean[c]) / sqrt(var[c] + eps) * scale[c] + bias[c]. */
static void xg_batch_norm(const float *x, const float *scale, const float *bias,
                          const float *mean, const float *var, float *y, long batch,
                          long channels, long npix, float eps)
{
    xg_range share = xg_share(batch * channels, batch * channels * npix);
    for (long p = share.lo; p < share.hi; p++) {
        long c = p % channels;
        float a = scale[c] / sqrtf(var[c] + eps), b = bias[c] - mean[c] * a;
        for (long i = 0; i < npix; i++) y[p * npix + i] = x[p * npix + i] * a + b;
    }
}

#endif /* XG_NORM_H */

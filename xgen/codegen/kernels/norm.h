/* Softmax, LogSoftmax, LayerNorm, InstanceNorm and BatchNorm (inference). */
#ifndef XG_NORM_H
#define XG_NORM_H

/* expf in plain arithmetic so that loops calling it vectorise (libm's does not without
 * -ffast-math): e^x = 2^k * e^r, k = round(x / ln 2), |r| <= ln2 / 2, e^r by its Taylor
 * polynomial to degree 7 (relative error about 2e-7, like expf's last bit or two). */
static inline float xg_expf(float x)
{
    x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    float k = __builtin_roundf(x * 1.44269504f);
    float r = x - k * 0.693145752f - k * 1.42860677e-6f; /* ln 2 split in two: exact k*hi */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { float f; int32_t i; } scale = {.i = ((int32_t)k + 127) << 23};
    return p * scale.f;
}

#define XG_SOFTMAX_BLOCK 64

/* Softmax (or LogSoftmax) of x viewed as [outer][n][inner] along n, max-subtracted so it never
 * overflows. Rows along n are strided by inner; blocks of inner columns go together. */
static void xg_softmax(const float *x, float *y, long outer, long n, long inner, int log_softmax)
{
#pragma omp parallel for schedule(static) if (outer * n * inner > XG_PARALLEL_MIN / 8)
    for (long o = 0; o < outer; o++) {
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
            for (long j = 0; j < w; j++)
                sum[j] = log_softmax ? mx[j] + logf(sum[j]) : 1.0f / sum[j];
            for (long r = 0; r < n; r++)
                for (long j = 0; j < w; j++)
                    yo[r * inner + j] = log_softmax ? xo[r * inner + j] - sum[j]
                                                    : yo[r * inner + j] * sum[j];
        }
    }
}

/* Mean and 1/sqrt(variance + eps) of n contiguous floats, two passes in double. */
static void xg_row_moments(const float *x, long n, float eps, float *mean, float *inv_std)
{
    double s = 0.0, ss = 0.0;
    for (long i = 0; i < n; i++) s += x[i];
    double m = s / (double)n;
    for (long i = 0; i < n; i++) ss += ((double)x[i] - m) * ((double)x[i] - m);
    *mean = (float)m;
    *inv_std = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
}

/* LayerNorm over rows of n: y = (x - mean) * inv_std * gamma + beta (beta may be NULL). */
static void xg_layer_norm(const float *x, const float *gamma, const float *beta, float *y,
                          long rows, long n, float eps)
{
#pragma omp parallel for schedule(static) if (rows * n > XG_PARALLEL_MIN)
    for (long r = 0; r < rows; r++) {
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
#pragma omp parallel for schedule(static) if (batch * channels * npix > XG_PARALLEL_MIN)
    for (long p = 0; p < batch * channels; p++) {
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
#pragma omp parallel for schedule(static) if (batch * channels * npix > XG_PARALLEL_MIN)
    for (long p = 0; p < batch * channels; p++) {
        long c = p % channels;
        float a = scale[c] / sqrtf(var[c] + eps), b = bias[c] - mean[c] * a;
        for (long i = 0; i < npix; i++) y[p * npix + i] = x[p * npix + i] * a + b;
    }
}

#endif /* XG_NORM_H */

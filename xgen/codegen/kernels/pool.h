/* MaxPool and AveragePool, NC + 1 to 3 spatial dims (lower ranks padded to 3 with size-1 dims).
 * in, out, ker, stride, dil: 3 longs; pad: 6 longs (3 begins then 3 ends). Windows that run
 * past the input (padding, or ceil_mode's extra window) skip the missing taps; AveragePool divides
 * by the taps inside the input, or with count_include_pad by those inside the padded input. */
#ifndef XG_POOL_H
#define XG_POOL_H

static void xg_pool(int is_max, int count_include_pad, const float *x, float *y, long planes,
                    const long *in, const long *out, const long *ker, const long *stride,
                    const long *pad, const long *dil)
{
    long ipl = in[0] * in[1] * in[2], opl = out[0] * out[1] * out[2];
#pragma omp parallel for schedule(static) if (planes * opl * ker[0] * ker[1] * ker[2] > XG_PARALLEL_MIN)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * ipl;
        float *yp = y + p * opl;
        for (long o = 0; o < opl; o++) {
            long oc[3] = {o / (out[1] * out[2]), o / out[2] % out[1], o % out[2]};
            float acc = is_max ? -INFINITY : 0.0f;
            long inside = 0, padded = 0;
            for (long kz = 0; kz < ker[0]; kz++) {
                long iz = oc[0] * stride[0] - pad[0] + kz * dil[0];
                for (long ky = 0; ky < ker[1]; ky++) {
                    long iy = oc[1] * stride[1] - pad[1] + ky * dil[1];
                    for (long kx = 0; kx < ker[2]; kx++) {
                        long ix = oc[2] * stride[2] - pad[2] + kx * dil[2];
                        padded += iz < in[0] + pad[3] && iy < in[1] + pad[4] && ix < in[2] + pad[5];
                        if (iz < 0 || iz >= in[0] || iy < 0 || iy >= in[1] || ix < 0 || ix >= in[2])
                            continue;
                        float v = xp[(iz * in[1] + iy) * in[2] + ix];
                        acc = is_max ? (v > acc ? v : acc) : acc + v;
                        inside++;
                    }
                }
            }
            if (!is_max) acc /= (float)(count_include_pad ? padded : inside);
            yp[o] = acc;
        }
    }
}

#endif /* XG_POOL_H */

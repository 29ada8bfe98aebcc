/* Depthwise convolution (group == cin == cout, NCHW, 1 to 3 spatial dims): a direct kernel, as
 * im2col + GEMM would do one multiply-add per copied element. Geometry arguments as in conv.h
 * (3-D, lower ranks padded with leading size-1 dims); w is the plain [C][kz][ky][kx] weight; the
 * epilogue (bias, residual, clamp) is applied while a plane is in cache. */
#ifndef XG_DEPTHWISE_H
#define XG_DEPTHWISE_H

#include <string.h>

#include "common.h"
#include "conv.h"
#include "epilogue.h"

/* y += a * x over n floats. Not inlined: inside the tap loops gcc jams two taps into one loop
 * that it leaves scalar, at a third of the speed of this vector loop. */
__attribute__((noinline)) static void xg_axpy(long n, float a, const float *XG_RESTRICT x,
                                              float *XG_RESTRICT y)
{
    for (long i = 0; i < n; i++) y[i] += a * x[i];
}

/* Floats of stack xg_conv_depthwise_plane needs (its phases and accumulator grid). */
static inline long xg_conv_depthwise_plane_floats(const long *out, const long *ker,
                                                  const long *stride, const long *dil)
{
    long rh = out[1] + (ker[1] - 1) * dil[1] / stride[1];
    long cw = out[2] + (ker[2] - 1) * dil[2] / stride[2];
    return (stride[1] * stride[2] * rh + 1 + out[1]) * cw + 32;
}
#define XG_DEPTHWISE_PLANE_MAX 65536L /* floats: 256 KiB of a thread's stack */
#define XG_DEPTHWISE_STRIP 2048L      /* floats of sums a strip of taps works on: 8 KiB */

/* One channel of a 1-D or 2-D depthwise conv (ker[0] == 1, in[0] == out[0] == 1), the epilogue
 * applied to the plane while it is in cache (row `c` of the epilogue's [C][npix] matrix).
 * The zero-padded input plane is first split into stride phases: phase (py, px) holds the
 * padded pixels (R * sy + py, j * sx + px) as an rh x cw grid. Tap (ky, kx) then reads, for every
 * output pixel (oy, ox), the grid element (oy + qy, ox + qx) of one phase, so with the output
 * computed on an oh x cw grid (columns past ow are discarded) each tap is one contiguous
 * multiply-add over the whole plane, whatever the stride or dilation. */
static void xg_conv_depthwise_plane(const float *xc, const float *wc, float *yc, long c,
                                    const long *in, const long *out, const long *ker,
                                    const long *stride, const long *pad, const long *dil,
                                    const xg_epilogue *ep)
{
    long sy = stride[1], sx = stride[2], oh = out[1], ow = out[2];
    long rh = oh + (ker[1] - 1) * dil[1] / sy, cw = ow + (ker[2] - 1) * dil[2] / sx;
    /* Taps sweep n, oh * cw rounded up to whole AVX-512 vectors (no scalar remainder loop), and
     * may read up to cw + 16 floats past the last phase. */
    long grid = rh * cw, n = xg_round_up(oh * cw, 16), slack = cw + 16;
    float phases[sy * sx * grid + slack], acc[n];
    for (long py = 0; py < sy; py++) {
        for (long px = 0; px < sx; px++) {
            float *ph = phases + (py * sx + px) * grid;
            long lo, hi;
            xg_valid_range(px - pad[2], sx, in[2], cw, &lo, &hi);
            for (long r = 0; r < rh; r++) {
                float *d = ph + r * cw;
                long iy = r * sy + py - pad[1];
                memset(d, 0, (size_t)cw * sizeof(float));
                if (iy < 0 || iy >= in[1]) continue;
                const float *s = xc + iy * in[2] + px - pad[2];
                for (long j = lo; j < hi; j++) d[j] = s[j * sx];
            }
        }
    }
    memset(phases + sy * sx * grid, 0, (size_t)slack * sizeof(float));
    /* The taps sweep strips of whole grid rows, so that a strip's sums stay in L1 across taps. */
    long strip = XG_MAX(XG_DEPTHWISE_STRIP / cw, 1) * cw;
    for (long s0 = 0; s0 < n; s0 += strip) {
        long len = XG_MIN(strip, n - s0);
        memset(acc + s0, 0, (size_t)len * sizeof(float));
        for (long ky = 0; ky < ker[1]; ky++) {
            for (long kx = 0; kx < ker[2]; kx++) {
                long ty = ky * dil[1], tx = kx * dil[2]; /* the tap's offset in padded pixels */
                const float *src =
                    phases + ((ty % sy) * sx + tx % sx) * grid + ty / sy * cw + tx / sx;
                xg_axpy(len, wc[ky * ker[2] + kx], src + s0, acc + s0);
            }
        }
    }
    for (long oy = 0; oy < oh; oy++)
        memcpy(yc + oy * ow, acc + oy * cw, (size_t)ow * sizeof(float));
    xg_epilogue_row(ep, c, 0, oh * ow, oh * ow, yc); /* the plane as one row: long loops */
}

/* Depthwise conv (group == cin == cout): a direct kernel, one channel plane per task. 1-D and
 * 2-D convs go through xg_conv_depthwise_plane unless a plane is too big for its stack buffers;
 * 3-D ones (and those) run over contiguous output rows, each getting its epilogue as soon as it
 * is summed. w is the plain [C][kz][ky][kx] weight. */
static void xg_conv_depthwise(const float *x, const float *w, float *y, long batch,
                              long channels, const long *in, const long *out, const long *ker,
                              const long *stride, const long *pad, const long *dil,
                              const xg_epilogue *ep)
{
    long taps = xg_prod3(ker), npix = xg_prod3(out), plane = xg_prod3(in);
    int plane_path = ker[0] == 1 && in[0] == 1 && out[0] == 1 &&
                     xg_conv_depthwise_plane_floats(out, ker, stride, dil) <=
                         XG_DEPTHWISE_PLANE_MAX;
    xg_range share = xg_share(batch * channels, batch * channels * npix * taps);
    for (long nc = share.lo; nc < share.hi; nc++) {
        long c = nc % channels;
        const float *xc = x + nc * plane, *wc = w + c * taps;
        float *yc = y + nc * npix;
        /* row c of an [N*C][npix] matrix; the epilogue takes its bias and residual from there */
        xg_epilogue ec = ep ? xg_conv_epilogue(ep, nc / channels, 0, channels, npix)
                            : (xg_epilogue){0};
        if (plane_path) {
            xg_conv_depthwise_plane(xc, wc, yc, c, in, out, ker, stride, pad, dil,
                                    ep ? &ec : NULL);
            continue;
        }
        for (long oz = 0; oz < out[0]; oz++) {
            for (long oy = 0; oy < out[1]; oy++) {
                long row0 = (oz * out[1] + oy) * out[2];
                float *d = yc + row0;
                for (long ox = 0; ox < out[2]; ox++) d[ox] = 0.0f;
                for (long kz = 0; kz < ker[0]; kz++) {
                    long iz = oz * stride[0] - pad[0] + kz * dil[0];
                    if (iz < 0 || iz >= in[0]) continue;
                    for (long ky = 0; ky < ker[1]; ky++) {
                        long iy = oy * stride[1] - pad[1] + ky * dil[1];
                        if (iy < 0 || iy >= in[1]) continue;
                        const float *s = xc + (iz * in[1] + iy) * in[2];
                        for (long kx = 0; kx < ker[2]; kx++) {
                            float wv = wc[(kz * ker[1] + ky) * ker[2] + kx];
                            long lo, hi, off = kx * dil[2] - pad[2];
                            xg_valid_range(off, stride[2], in[2], out[2], &lo, &hi);
                            if (stride[2] == 1)
                                for (long ox = lo; ox < hi; ox++) d[ox] += wv * s[ox + off];
                            else
                                for (long ox = lo; ox < hi; ox++)
                                    d[ox] += wv * s[ox * stride[2] + off];
                        }
                    }
                }
                xg_epilogue_row(ep ? &ec : NULL, c, row0, out[2], npix, d);
            }
        }
    }
}

#endif /* XG_DEPTHWISE_H */

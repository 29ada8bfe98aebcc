/* Convolution (NCHW, 1 to 3 spatial dims) and transposed convolution, built on xg_sgemm.
 *
 * Spatial geometry is always 3-D: lower ranks are padded with leading size-1 dims (kernel 1,
 * stride 1, pad 0, dilation 1), so one code path serves Conv1d/2d/3d. Arrays of 3 longs:
 * in, out (spatial sizes), ker, stride, pad (begin pads; the end pads follow from out), dil.
 * Constant weights arrive packed for xg_sgemm at compile time (wp), one matrix per group, wstride
 * floats apart; a weight computed at run time (e.g. a graph input) comes as the plain ONNX tensor
 * (w, with wp NULL and wstride the floats of one group's slice) and xg_sgemm packs it as it goes.
 * A conv's bias, residual and activation come as its epilogue (epilogue.h; NULL for none),
 * whose row_bias is the per-channel bias and whose residual is laid out like y.
 */
#ifndef XG_CONV_H
#define XG_CONV_H

#include <string.h>

#include "common.h"
#include "epilogue.h"
#include "gemm.h"

static inline long xg_prod3(const long *d) { return d[0] * d[1] * d[2]; }

/* First and one-past-last output index o with 0 <= o*stride + off < n. */
static inline void xg_valid_range(long off, long stride, long n, long n_out, long *lo, long *hi)
{
    long a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    long b = n - off <= 0 ? 0 : (n - off + stride - 1) / stride;
    *lo = a < n_out ? a : n_out;
    *hi = b < n_out ? b : n_out;
    if (*hi < *lo) *hi = *lo;
}

/* Row `row` = (c, kz, ky, kx) of the im2col matrix over the output pixels [p0, p1):
 * line[p - p0] = x[c][oz*s0 - p0 + kz*d0][..][..] for pixel p = (oz, oy, ox), zero outside the
 * input. Walks the output rows the range meets, each one contiguous run of the line. */
static void xg_im2col_line(const float *x, const long *in, const long *out, const long *ker,
                           const long *stride, const long *pad, const long *dil, long row,
                           long p0, long p1, float *line)
{
    long taps = xg_prod3(ker), c = row / taps, t = row % taps, ow = out[2];
    long kz = t / (ker[1] * ker[2]), ky = t / ker[2] % ker[1], kx = t % ker[2];
    const float *xc = x + c * xg_prod3(in);
    long xlo, xhi, xoff = kx * dil[2] - pad[2];
    xg_valid_range(xoff, stride[2], in[2], ow, &xlo, &xhi);
    for (long r = p0 / ow; r * ow < p1; r++) { /* r: output row (oz, oy) */
        long oz = r / out[1], oy = r % out[1];
        long iz = oz * stride[0] - pad[0] + kz * dil[0], iy = oy * stride[1] - pad[1] + ky * dil[1];
        long c0 = XG_MAX(p0 - r * ow, 0), c1 = XG_MIN(p1 - r * ow, ow); /* its columns here */
        float *d = line + r * ow - p0;
        if (iz < 0 || iz >= in[0] || iy < 0 || iy >= in[1]) {
            memset(d + c0, 0, (size_t)(c1 - c0) * sizeof(float));
            continue;
        }
        const float *s = xc + (iz * in[1] + iy) * in[2] + xoff;
        long lo = XG_MIN(XG_MAX(c0, xlo), c1), hi = XG_MAX(XG_MIN(c1, xhi), lo);
        for (long ox = c0; ox < lo; ox++) d[ox] = 0.0f;
        if (stride[2] == 1)
            memcpy(d + lo, s + lo, (size_t)(hi - lo) * sizeof(float));
        else if (stride[2] == 2) /* a literal stride: vector loads and shuffles */
            for (long ox = lo; ox < hi; ox++) d[ox] = s[ox * 2];
        else
            for (long ox = lo; ox < hi; ox++) d[ox] = s[ox * stride[2]];
        for (long ox = hi; ox < c1; ox++) d[ox] = 0.0f;
    }
}

/* The columns [p0, p1) of the im2col matrix ([channels*taps][npix]), packed as xg_sgemm's B of
 * p1 - p0 columns: im2col straight into the packed layout saves the GEMM a packing pass. */
static void xg_im2col_packed(const float *x, long channels, const long *in, const long *out,
                             const long *ker, const long *stride, const long *pad,
                             const long *dil, long p0, long p1, float *packed)
{
    long rows = channels * xg_prod3(ker), npanels = (p1 - p0 + XG_GEMM_NP - 1) / XG_GEMM_NP;
    xg_range share = xg_share(rows, rows * (p1 - p0));
    for (long row = share.lo; row < share.hi; row++) {
        float line[npanels * XG_GEMM_NP]; /* the row, zero-padded to whole panels */
        xg_im2col_line(x, in, out, ker, stride, pad, dil, row, p0, p1, line);
        for (long j = p1 - p0; j < npanels * XG_GEMM_NP; j++) line[j] = 0.0f;
        /* scatter the row into its K block's panels */
        long k0 = row / XG_GEMM_KC * XG_GEMM_KC;
        long kc = rows - k0 < XG_GEMM_KC ? rows - k0 : XG_GEMM_KC;
        float *dst = packed + npanels * XG_GEMM_NP * k0 + (row - k0) * XG_GEMM_NP;
        for (long p = 0; p < npanels; p++)
            xg_copy_panel_row(dst + p * kc * XG_GEMM_NP, line + p * XG_GEMM_NP);
    }
}

/* y[n][k][pix] = bias[k] (or 0), the starting value both convolutions accumulate onto. */
static void xg_fill_channels(float *y, long batch, long channels, long npix, const float *bias)
{
    xg_range share = xg_share(batch * channels, batch * channels * npix);
    for (long i = share.lo; i < share.hi; i++) {
        float v = bias ? bias[i % channels] : 0.0f;
        for (long p = 0; p < npix; p++) y[i * npix + p] = v;
    }
}

/* The epilogue of the output channels from c0 of image n: ep's bias and residual offset. */
static inline xg_epilogue xg_conv_epilogue(const xg_epilogue *ep, long n, long c0, long cout,
                                           long npix)
{
    xg_epilogue e = *ep;
    if (e.row_bias) e.row_bias += c0;
    if (e.res) e.res += (n * cout + c0) * npix;
    return e;
}

/* Conv as GEMM per (image, group): Y_g = W_g @ im2col(X_g); a 1x1, stride-1, unpadded conv
 * multiplies X_g directly. W_g is [cout_g][K] (a plain w is row-major [Cout][Cin/g * taps]).
 * The im2col matrix goes in chunks of `chunk` output pixels (all of them for a small one), each
 * packed then multiplied while it is in cache rather than written to memory whole: VGG's first
 * layer's would take 115 MB. The epilogue is applied by xg_sgemm as it stores each tile.
 * work: the packed im2col chunk (unless direct, round_up(chunk, 16) * K floats) then xg_sgemm's
 * work. */
static void xg_conv(const float *x, const float *wp, const float *w, long wstride, float *y,
                    long batch, long cin, long cout, long group, const long *in, const long *out,
                    const long *ker, const long *stride, const long *pad, const long *dil,
                    long chunk, const xg_epilogue *ep, float *work)
{
    long cin_g = cin / group, cout_g = cout / group, taps = xg_prod3(ker);
    long K = cin_g * taps, npix = xg_prod3(out), plane = xg_prod3(in);
    int direct = taps == 1 && npix == plane && stride[0] * stride[1] * stride[2] == 1 &&
                 pad[0] + pad[1] + pad[2] == 0;
    float *col = work, *gemm_work = direct ? work : work + K * xg_round_up(chunk, XG_GEMM_NP);
    for (long n = 0; n < batch; n++) {
        for (long g = 0; g < group; g++) {
            const float *xg = x + (n * cin + g * cin_g) * plane;
            const float *wg = (wp ? wp : w) + g * wstride;
            float *yg = y + (n * cout + g * cout_g) * npix;
            xg_epilogue eg =
                ep ? xg_conv_epilogue(ep, n, g * cout_g, cout, npix) : (xg_epilogue){0};
            if (direct) {
                xg_sgemm(cout_g, npix, K, 1.0f, wp ? wg : NULL, wp ? NULL : wg, K, 1, NULL, xg,
                         npix, 1, 0.0f, yg, npix, ep ? &eg : NULL, gemm_work);
                continue;
            }
            for (long p0 = 0; p0 < npix; p0 += chunk) {
                long p1 = XG_MIN(p0 + chunk, npix);
                xg_im2col_packed(xg, cin_g, in, out, ker, stride, pad, dil, p0, p1, col);
                xg_barrier();
                xg_epilogue ec = eg; /* the chunk's columns of the residual */
                if (ec.res) ec.res += p0;
                xg_sgemm(cout_g, p1 - p0, K, 1.0f, wp ? wg : NULL, wp ? NULL : wg, K, 1, col,
                         NULL, 0, 0, 0.0f, yg + p0, npix, ep ? &ec : NULL, gemm_work);
                xg_barrier(); /* col is refilled for the next chunk */
            }
        }
    }
}

/* y[c][(oz, oy, ox)] += col[(c, kz, ky, kx)][(iz, iy, ix)] where o = i*stride - pad + k*dil:
 * the adjoint of im2col. Each task owns one output channel, so there are no write races. */
static void xg_col2im(const float *col, long channels, const long *in, const long *out,
                      const long *ker, const long *stride, const long *pad, const long *dil,
                      float *y)
{
    long taps = xg_prod3(ker), npix = xg_prod3(in), oplane = xg_prod3(out);
    xg_range share = xg_share(channels, channels * taps * npix);
    for (long c = share.lo; c < share.hi; c++) {
        float *yc = y + c * oplane;
        for (long t = 0; t < taps; t++) {
            long kz = t / (ker[1] * ker[2]), ky = t / ker[2] % ker[1], kx = t % ker[2];
            const float *src = col + (c * taps + t) * npix;
            for (long iz = 0; iz < in[0]; iz++) {
                long oz = iz * stride[0] - pad[0] + kz * dil[0];
                if (oz < 0 || oz >= out[0]) continue;
                for (long iy = 0; iy < in[1]; iy++) {
                    long oy = iy * stride[1] - pad[1] + ky * dil[1];
                    if (oy < 0 || oy >= out[1]) continue;
                    const float *s = src + (iz * in[1] + iy) * in[2];
                    float *d = yc + (oz * out[1] + oy) * out[2];
                    for (long ix = 0; ix < in[2]; ix++) {
                        long ox = ix * stride[2] - pad[2] + kx * dil[2];
                        if (ox >= 0 && ox < out[2]) d[ox] += s[ix];
                    }
                }
            }
        }
    }
}

/* ConvTranspose per (image, group): col = W_g^T @ X_g, then col2im scatters onto y, which
 * starts as the bias. W_g^T is [cout_g * taps][cin_g] (a plain w is row-major
 * [Cin][Cout/g * taps], read transposed). in/out are the input and output spatial sizes.
 * work: the col buffer then xg_sgemm's work. */
static void xg_conv_transpose(const float *x, const float *wp, const float *w, long wstride,
                              const float *bias, float *y, long batch, long cin, long cout,
                              long group, const long *in, const long *out, const long *ker,
                              const long *stride, const long *pad, const long *dil, float *work)
{
    long cin_g = cin / group, cout_g = cout / group, taps = xg_prod3(ker);
    long M = cout_g * taps, npix = xg_prod3(in), oplane = xg_prod3(out);
    float *col = work;
    xg_fill_channels(y, batch, cout, oplane, bias);
    xg_barrier();
    for (long n = 0; n < batch; n++) {
        for (long g = 0; g < group; g++) {
            const float *wg = (wp ? wp : w) + g * wstride;
            xg_sgemm(M, npix, cin_g, 1.0f, wp ? wg : NULL, wp ? NULL : wg, 1, M, NULL,
                     x + (n * cin + g * cin_g) * npix, npix, 1, 0.0f, col, npix, NULL,
                     work + M * npix);
            xg_barrier();
            xg_col2im(col, cout_g, in, out, ker, stride, pad, dil,
                      y + (n * cout + g * cout_g) * oplane);
            xg_barrier(); /* col is refilled for the next image or group */
        }
    }
}

#endif /* XG_CONV_H */

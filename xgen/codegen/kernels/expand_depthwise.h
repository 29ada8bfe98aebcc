/* A 1x1 convolution that expands channels, fused with the depthwise convolution that reads its
 * output (MobileNet's and EfficientNet's inverted residual blocks), channels last:
 *   e = expand_epilogue(x * w_expand),  y = epilogue(depthwise(e))
 * Unfused, e is the biggest tensor of such a model (112 x 112 x 96 floats is 4.8 MB), written
 * to memory by one kernel and read back by the next. Here each thread computes e a band of rows
 * at a time into its own buffer, which stays in L2, and runs the depthwise rows that read it
 * before computing the next band. Its rows of output go top to bottom, so the rows a band shares
 * with the next (the window's overlap) move to the buffer's top instead of being recomputed;
 * only each thread's first band computes its halo again.
 *
 * The products are conv_nhwc.h's register tiles (the expand weight packed as for xg_conv_nhwc,
 * its bias and activation in expand_ep), the depthwise rows depthwise.h's (xg_dwn_row). 2-D
 * only: the geometry arguments are 3-D as in conv.h, with in[0] = out[0] = ker[0] = 1.
 */
#ifndef XG_EXPAND_DEPTHWISE_H
#define XG_EXPAND_DEPTHWISE_H

#include <string.h>

#include "common.h"
#include "conv_nhwc.h"
#include "depthwise.h"


/* e rows [row0, row1) of image x (pixels [row0 * w, row1 * w)), each cexp floats, into e. */
static void xg_expand_rows(const float *x, long cin, long cexp, long width, long row0, long row1,
                           const float *wp, const xg_epilogue *ep, float *e)
{
    enum { MR = XG_CONV_NHWC_MR, NP = XG_CONV_NHWC_NP, PANELS = XG_CONV_NHWC_PANELS };
    long p0 = row0 * width, p1 = row1 * width, panel_floats = cin * NP;
    long panels = (cexp + NP - 1) / NP, groups = (panels + PANELS - 1) / PANELS;
    const float *rows[MR];
    for (long p = p0; p < p1; p += MR) {
        long nrows = XG_MIN(MR, p1 - p);
        for (long r = 0; r < MR; r++) rows[r] = x + XG_MIN(p + r, p1 - 1) * cin;
        for (long g = 0; g < groups; g++) {
            const float *w = wp + g * PANELS * panel_floats;
            long o0 = g * PANELS * NP;
            xg_conv_nhwc_tile_np(XG_MIN(PANELS, panels - g * PANELS), 1, cin, rows, w,
                                 panel_floats, e, cexp, p - p0, nrows, o0, ep, XG_NOTHING_AHEAD);
        }
    }
}

/* y [batch][out][cexp] = ep(depthwise(expand_ep(x [batch][in][cin] * w_expand))), w_dw
 * [taps][cexp] as xg_depthwise_nhwc takes it; `band` output rows at a time, scratch holding
 * XG_SCRATCH_THREADS buffers of `buffer_floats` (the input rows of a band, cexp floats a
 * pixel). */
static void xg_expand_depthwise_nhwc(const float *x, const float *w_expand,
                                     const xg_epilogue *expand_ep, const float *w_dw, float *y,
                                     long batch, long cin, long cexp, const long *in,
                                     const long *out, const long *ker, const long *stride,
                                     const long *pad, const long *dil, const xg_epilogue *ep,
                                     long band, long buffer_floats, float *scratch)
{
    long rows = batch * out[1], taps = ker[1] * ker[2];
    long team = XG_MIN(xg_team_size(), XG_SCRATCH_THREADS), rank = xg_team_rank();
    if (rows * out[2] * cexp * (cin + taps) < XG_PARALLEL_MIN) team = 1;
    if (rank >= team) return;
    float *e = scratch + rank * buffer_floats;
    long row_floats = in[2] * cexp, off[taps], tap[taps];
    xg_taps tz = xg_pool_taps(0, 1, 1, 1, 0, 0, 1);
    long image = -1, e0 = 0, e1 = 0; /* e holds the input rows [e0, e1) of image */
    for (long r = rows * rank / team, end = rows * (rank + 1) / team; r < end;) {
        long img = r / out[1], oy0 = r % out[1];
        long oy1 = XG_MIN(XG_MIN(oy0 + band, out[1]), oy0 + end - r);
        /* the input rows the band's windows reach inside the image */
        long iy0 = XG_MAX(0, oy0 * stride[1] - pad[1]);
        long iy1 = XG_MIN(in[1], (oy1 - 1) * stride[1] - pad[1] + (ker[1] - 1) * dil[1] + 1);
        long kept = img == image && iy0 >= e0 && iy0 < e1 ? e1 - iy0 : 0;
        if (kept) memmove(e, e + (iy0 - e0) * row_floats, (size_t)(kept * row_floats) * 4);
        xg_expand_rows(x + img * in[1] * in[2] * cin, cin, cexp, in[2], iy0 + kept, iy1, w_expand,
                       expand_ep, e + kept * row_floats);
        image = img, e0 = iy0, e1 = iy1;
        for (long oy = oy0; oy < oy1; oy++) {
            xg_taps ty = xg_pool_taps(oy, in[1], ker[1], stride[1], pad[1], 0, dil[1]);
            ty.base -= iy0; /* rows counted from the buffer's first */
            xg_dwn_row(e, w_dw, y, (img * out[1] + oy) * out[2] * cexp, cexp, in, out, ker,
                       stride, pad, dil, &tz, &ty, ep, off, tap);
        }
        r += oy1 - oy0;
    }
}

#endif /* XG_EXPAND_DEPTHWISE_H */

/* Dense 3x3 stride-1 convolution channels last by Winograd's minimal filtering F(4x4, 3x3).
 *
 * Each 4 x 4 tile of output pixels comes from a 6 x 6 tile d of input pixels (the tiles overlap
 * by 2); per (output, input) channel pair, with u = G g G^T the kernel g transformed at compile
 * time (codegen/lower_winograd.py),
 *   y_tile = A^T [ sum over input channels of u (.) (B^T d B) ] A
 * so for each of the 36 points xi of the 6 x 6 transform domain the sum over input channels is
 * a GEMM, [tiles][cin] x [cin][cout]: 36 * 16 = 576 multiply-adds per tile and channel pair
 * where the direct kernel does 16 * 9 = 144 * 4, i.e. 4x fewer. The price: the transforms
 * (cheap, linear in channels), a weight 4x bigger (36 floats a pair against 9), so layers with
 * few tiles and many channels stay direct (the lowering decides), and some rounding from the
 * transforms' constants (up to 8 and 1/24): errors a few times the direct kernel's.
 *
 * The tiles (all images' in one row space) go in bands of `band` tiles, each in two phases
 * separated by barriers of the team, so that a band's transformed input stays in the caches:
 *  1. every input tile of the band transformed, 16 channels at a time, into
 *     v [36][band][cstride] (cstride = cin rounded up to 16, the rest zeros);
 *  2. threads split (output channel group, tile) pairs, group-major: for a block of up to
 *     XG_WINOGRAD_BLOCK tiles, the 36 GEMMs run on conv_nhwc.h's register tiles into a
 *     per-thread buffer m [36][block][group], which the output transform then reads back,
 *     applies the epilogue to and stores. A thread's weight slice (36 * cin * group floats) is
 *     reread for each block from L2 / L3, so blocks are as long as m allows.
 * Tiles past the output's edge compute padding that is never stored.
 */
#ifndef XG_WINOGRAD_H
#define XG_WINOGRAD_H

#include "common.h"
#include "conv_nhwc.h"
#include "epilogue.h"

#define XG_WINOGRAD_POINTS 36    /* the 6 x 6 transform domain */
#define XG_WINOGRAD_BLOCK 28     /* tiles per GEMM block: 4 row tiles of 7 (AVX-512) */
#define XG_WINOGRAD_GROUP (XG_CONV_NHWC_PANELS * XG_CONV_NHWC_NP) /* output channels a group */

typedef struct {
    long batch, cin, cout;
    long in_h, in_w, out_h, out_w;
    long pad_top, pad_left;
    long tiles_y, tiles_x; /* tiles per image: the output's sides / 4, rounded up */
    long band;             /* tiles per band */
    long cstride;          /* floats per transformed input row: cin rounded up to 16 */
    const float *u;        /* transformed weight [36][cout panels][cin][16], the last padded */
} xg_winograd_layer;

/* B^T applied to 6 vectors s[0], s[stride], ... in place. */
XG_INLINE void xg_winograd_bt(xg_v16 *s, long stride)
{
    xg_v16 d0 = s[0], d1 = s[stride], d2 = s[2 * stride], d3 = s[3 * stride];
    xg_v16 d4 = s[4 * stride], d5 = s[5 * stride];
    xg_v16 p = d4 - 4.0f * d2, q = d3 - 4.0f * d1; /* shared by rows 1 and 2 */
    xg_v16 r = d4 - d2, t = 2.0f * (d3 - d1);      /* shared by rows 3 and 4 */
    s[0] = 4.0f * d0 - 5.0f * d2 + d4;
    s[stride] = p + q;
    s[2 * stride] = p - q;
    s[3 * stride] = r + t;
    s[4 * stride] = r - t;
    s[5 * stride] = 4.0f * d1 - 5.0f * d3 + d5;
}

/* A^T applied to 6 vectors m[0], m[stride], ...: the 4 results in o[0], o[ostride], ... */
XG_INLINE void xg_winograd_at(const xg_v16 *m, long stride, xg_v16 *o, long ostride)
{
    xg_v16 m1 = m[stride], m2 = m[2 * stride], m3 = m[3 * stride], m4 = m[4 * stride];
    xg_v16 sum12 = m1 + m2, dif12 = m1 - m2, sum34 = m3 + m4, dif34 = m3 - m4;
    o[0] = m[0] + sum12 + sum34;
    o[ostride] = dif12 + 2.0f * dif34;
    o[2 * ostride] = sum12 + 4.0f * sum34;
    o[3 * ostride] = dif12 + 8.0f * dif34 + m[5 * stride];
}

/* Phase 1: v[xi][t - b0][c] = (B^T d B)[xi] of the tiles t in [b0, b0 + nb), channels c;
 * zeros past cin. */
static void xg_winograd_input(const float *x, const xg_winograd_layer *L, long b0, long nb,
                              float *v)
{
    long per_image = L->tiles_y * L->tiles_x;
    long cblocks = L->cstride / 16, point_floats = nb * L->cstride;
    xg_range share = xg_share(nb * cblocks, nb * L->cstride * XG_WINOGRAD_POINTS * 4);
    for (long i = share.lo; i < share.hi; i++) {
        long t = b0 + i / cblocks, c0 = i % cblocks * 16, n = XG_MIN(16, L->cin - c0);
        long image = t / per_image, ty = t % per_image / L->tiles_x, tx = t % L->tiles_x;
        long y0 = ty * 4 - L->pad_top, x0 = tx * 4 - L->pad_left;
        const float *xi = x + image * L->in_h * L->in_w * L->cin + c0;
        xg_v16 d[6][6];
        for (long r = 0; r < 6; r++)
            for (long c = 0; c < 6; c++) {
                long iy = y0 + r, ix = x0 + c;
                if (iy >= 0 && iy < L->in_h && ix >= 0 && ix < L->in_w)
                    xg_v16_load(&d[r][c], xi + (iy * L->in_w + ix) * L->cin, n);
                else
                    d[r][c] = (xg_v16){0};
            }
        for (long c = 0; c < 6; c++) xg_winograd_bt(&d[0][c], 6); /* B^T d */
        for (long r = 0; r < 6; r++) xg_winograd_bt(&d[r][0], 1); /* (B^T d) B */
        float *vt = v + (t - b0) * L->cstride + c0;
        for (long p = 0; p < XG_WINOGRAD_POINTS; p++)
            *(xg_v16 *)(vt + p * point_floats) = d[p / 6][p % 6];
    }
}

/* Phase 2's end: the output tiles [t0, t0 + nt) for output channels [o0, o0 + n), n <= GROUP,
 * from m [36][block][GROUP], with the epilogue. */
static void xg_winograd_output(const float *m, long block, long t0, long nt, long o0, long n,
                               const xg_winograd_layer *L, float *y, const xg_epilogue *ep)
{
    enum { GROUP = XG_WINOGRAD_GROUP };
    long per_image = L->tiles_y * L->tiles_x, image_floats = L->out_h * L->out_w * L->cout;
    xg_v16 lo = {0}, hi = {0};
    int clamp = ep && ep->clamp, gelu = ep ? ep->gelu : 0;
    if (clamp) {
        lo += ep->lo;
        hi += ep->hi;
    }
    for (long j = 0; j < n; j += 16) {
        long nj = XG_MIN(16, n - j);
        xg_v16 bias = {0};
        if (ep && ep->col_bias) xg_v16_load(&bias, ep->col_bias + o0 + j, nj);
        for (long tl = 0; tl < nt; tl++) {
            long t = t0 + tl, image = t / per_image;
            long oy0 = t % per_image / L->tiles_x * 4, ox0 = t % L->tiles_x * 4;
            xg_v16 s[4][6], o[4][4];
            const xg_v16 *mt = (const xg_v16 *)(m + tl * GROUP + j);
            long point = block * GROUP / 16; /* vectors between points */
            for (long c = 0; c < 6; c++) xg_winograd_at(mt + c * point, 6 * point, &s[0][c], 6);
            for (long r = 0; r < 4; r++) xg_winograd_at(&s[r][0], 1, &o[r][0], 1);
            for (long r = 0; r < 4 && oy0 + r < L->out_h; r++)
                for (long c = 0; c < 4 && ox0 + c < L->out_w; c++) {
                    long at = image * image_floats + ((oy0 + r) * L->out_w + ox0 + c) * L->cout + o0 + j;
                    xg_v16 out = o[r][c] + bias, residual;
                    if (ep && ep->res) {
                        xg_v16_load(&residual, ep->res + at, nj);
                        out += residual;
                    }
                    if (clamp) xg_v16_clamp(&out, &lo, &hi);
                    xg_v16_store(y + at, &out, nj);
                    if (gelu) xg_gelu_row(gelu, y + at, nj);
                }
        }
    }
}

/* The 36 GEMMs of the band's tiles [t0, t0 + nt) (of nb) for output panels [p0, p0 + np)
 * into m. */
static void xg_winograd_gemms(const float *v, long nb, const xg_winograd_layer *L, long t0,
                              long nt, long p0, long np, float *m)
{
    enum { MR = XG_CONV_NHWC_MR, NP = XG_CONV_NHWC_NP, GROUP = XG_WINOGRAD_GROUP };
    long panels = (L->cout + NP - 1) / NP, panel_floats = L->cin * NP;
    const float *rows[MR];
    for (long p = 0; p < XG_WINOGRAD_POINTS; p++) {
        const float *vp = v + (p * nb + t0) * L->cstride;
        const float *w = L->u + (p * panels + p0) * panel_floats;
        float *mp = m + p * XG_WINOGRAD_BLOCK * GROUP;
        for (long r0 = 0; r0 < nt; r0 += MR) {
            long nrows = XG_MIN(MR, nt - r0);
            for (long r = 0; r < MR; r++) rows[r] = vp + XG_MIN(r0 + r, nt - 1) * L->cstride;
            xg_conv_nhwc_tile_np(np, 1, L->cin, rows, w, panel_floats, mp, GROUP, r0, nrows, 0,
                                 NULL, XG_NOTHING_AHEAD);
        }
    }
}

/* Phase 2: the output tiles [b0, b0 + nb) from v, phase 1's transformed input; m holds
 * 36 * BLOCK * GROUP floats, the thread's own. */
static void xg_winograd_products(const float *v, float *y, const xg_winograd_layer *L,
                                 const xg_epilogue *ep, long b0, long nb, float *m)
{
    enum { NP = XG_CONV_NHWC_NP, PANELS = XG_CONV_NHWC_PANELS, BLOCK = XG_WINOGRAD_BLOCK };
    long panels = (L->cout + NP - 1) / NP, groups = (panels + PANELS - 1) / PANELS;
    long pairs = groups * nb;
    long team = XG_MIN(xg_team_size(), XG_SCRATCH_THREADS), rank = xg_team_rank();
    if (pairs * L->cstride * XG_WINOGRAD_GROUP * XG_WINOGRAD_POINTS < XG_PARALLEL_MIN) team = 1;
    if (rank >= team) return;
    /* The thread's (group, tile) pairs, group-major, in blocks that stay within a group. */
    long at = pairs * rank / team, end = pairs * (rank + 1) / team;
    while (at < end) {
        long group = at / nb, t0 = at % nb;
        long nt = XG_MIN(XG_MIN(BLOCK, nb - t0), end - at);
        long p0 = group * PANELS, np = XG_MIN(PANELS, panels - p0);
        xg_winograd_gemms(v, nb, L, t0, nt, p0, np, m);
        long o0 = p0 * NP, n = XG_MIN(np * NP, L->cout - o0);
        xg_winograd_output(m, BLOCK, b0 + t0, nt, o0, n, L, y, ep);
        at += nt;
    }
}

/* y [batch][out_h][out_w][cout] = epilogue(conv(x)), x [batch][in_h][in_w][cin]; v holds
 * 36 * band * cstride floats, scratch XG_SCRATCH_THREADS buffers of 36 * BLOCK * GROUP.
 * The phases of a band read what the other threads wrote: barriers between them (the team
 * calls this as it calls every kernel, all threads with the same arguments). */
static void xg_winograd_conv_nhwc(const float *x, float *y, const xg_winograd_layer *L,
                                  const xg_epilogue *ep, float *v, float *scratch)
{
    long tiles = L->batch * L->tiles_y * L->tiles_x;
    float *m = scratch + XG_MIN(xg_team_rank(), XG_SCRATCH_THREADS - 1) *
                             (long)XG_WINOGRAD_POINTS * XG_WINOGRAD_BLOCK * XG_WINOGRAD_GROUP;
    for (long b0 = 0; b0 < tiles; b0 += L->band) {
        long nb = XG_MIN(L->band, tiles - b0);
        if (b0 > 0) xg_barrier(); /* every thread is done with the last band's v */
        xg_winograd_input(x, L, b0, nb, v);
        xg_barrier();
        xg_winograd_products(v, y, L, ep, b0, nb, m);
    }
}

#endif /* XG_WINOGRAD_H */

/* Dense convolution (group 1) in the channels-last layout, N x spatial x C, as an indirect GEMM.
 *
 * With channels last, output pixel p over tap t reads one contiguous row of cin input floats, so
 * the convolution is a GEMM whose A rows are found through pointers instead of being copied:
 *   y[p][o] = sum over taps t, channels c of row(p, t)[c] * w[o][c][t]
 * where row(p, t) points into x, or at `zeros` where the tap falls in the padding. No im2col
 * matrix is written and every output is stored once, with its epilogue, after all of K.
 * Linear layers run here too, as 1x1 convolutions whose pixels are the rows of their input.
 *
 * Tiles are XG_CONV_NHWC_MR pixels x XG_CONV_NHWC_PANELS panels of XG_CONV_NHWC_NP output
 * channels, all accumulators in registers; per k, one broadcast per pixel and one vector load per
 * panel feed MR x PANELS vector FMAs. With AVX-512 that is 7 x 4 (28 of the 32 zmm): few rows
 * keep the row pointers in general registers and the rows in distinct L1 ways (14 x 2 measured
 * 10-30% slower), and a 7x7 plane is 7 whole tiles. The weight comes packed at compile time
 * (lower_gemm.pack_conv_nhwc): panels of NP output channels, the last zero-padded, each
 * [tap][cin][NP], 64-byte aligned. Geometry arguments are 3-D as in conv.h.
 *
 * The vectors are GCC vector extensions of 16 floats: one zmm with AVX-512, two ymm with AVX2,
 * four q registers with NEON, so one source serves every target; the tile is sized per target
 * to fill the register file without spilling.
 */
#ifndef XG_CONV_NHWC_H
#define XG_CONV_NHWC_H

#include <string.h>

#include "common.h"
#include "conv.h"
#include "epilogue.h"

#define XG_CONV_NHWC_NP 16 /* output channels per weight panel: one vector */
#define XG_CONV_NHWC_L2_FLOATS (128L * 1024) /* weights up to half of a 1 MiB L2 */
#if defined(__AVX512F__)
#define XG_CONV_NHWC_MR 7 /* 7 x 4 accumulators + 4 weights + 1 broadcast of 32 zmm */
#define XG_CONV_NHWC_PANELS 4
#else
#define XG_CONV_NHWC_MR 6 /* 6 x 2 ymm (AVX2, 16 registers) or 6 x 4 q (NEON, 32) */
#define XG_CONV_NHWC_PANELS 1
#endif

typedef float xg_v16 __attribute__((vector_size(64)));
typedef float xg_v16u __attribute__((vector_size(64), aligned(4))); /* for unaligned access */
typedef int xg_v16i __attribute__((vector_size(64)));

/* Vectors go by pointer: passing one by value to a function makes gcc warn that the ABI
 * changes on targets without AVX-512 (all of these inline anyway). */

/* *v = the first n <= 16 floats at p (the rest zero), without reading past them. */
XG_INLINE void xg_v16_load(xg_v16 *v, const float *p, long n)
{
    if (n >= 16) {
        *v = *(const xg_v16u *)p;
        return;
    }
    *v = (xg_v16){0};
    if (n > 0) memcpy(v, p, (size_t)n * sizeof(float));
}

XG_INLINE void xg_v16_store(float *p, const xg_v16 *v, long n)
{
    if (n >= 16)
        *(xg_v16u *)p = *v;
    else
        memcpy(p, v, (size_t)n * sizeof(float));
}

/* *v clamped to [lo, hi] by comparisons, so that NaN goes through as in epilogue.h. */
XG_INLINE void xg_v16_clamp(xg_v16 *v, const xg_v16 *lo, const xg_v16 *hi)
{
    xg_v16i below = *v < *lo, above = *v > *hi;
    xg_v16i bits = ((xg_v16i)*lo & below) | ((xg_v16i)*hi & above) | ((xg_v16i)*v & ~(below | above));
    *v = (xg_v16)bits;
}

/* The tile's rows stored with their epilogue applied in registers: with few input channels a
 * tile is short, and a pass over the stored rows would cost as much as the products. */
XG_INLINE void xg_conv_nhwc_store(int np, xg_v16 acc[][XG_CONV_NHWC_PANELS], float *y,
                                  long cout, long row0, long nrows, long o0, long n,
                                  const xg_epilogue *ep)
{
    xg_v16 bias[XG_CONV_NHWC_PANELS], lo = {0}, hi = {0};
    enum { NP = XG_CONV_NHWC_NP };
    for (int j = 0; j < np; j++) {
        bias[j] = (xg_v16){0};
        if (ep && ep->col_bias) xg_v16_load(&bias[j], ep->col_bias + o0 + j * NP, n - j * NP);
    }
    int clamp = ep && ep->clamp, gelu = ep ? ep->gelu : 0;
    const float *res = ep ? ep->res : NULL;
    if (clamp) {
        lo += ep->lo;
        hi += ep->hi;
    }
    /* v and residual live across the loops: gcc's AddressSanitizer otherwise reports a
     * use after scope of v (whose address the store takes) when the tile is inlined in a loop
     * of tiles (expand_depthwise.h), a false positive. */
    xg_v16 v, residual;
    for (long r = 0; r < nrows; r++) {
        float *yr = y + (row0 + r) * cout + o0;
        for (int j = 0; j < np; j++) {
            long nj = n - j * NP;
            if (nj <= 0) break;
            v = acc[r][j] + bias[j];
            if (res) {
                xg_v16_load(&residual, res + (row0 + r) * cout + o0 + j * NP, nj);
                v += residual;
            }
            if (clamp) xg_v16_clamp(&v, &lo, &hi);
            xg_v16_store(yr + j * NP, &v, nj);
        }
        xg_gelu_row(gelu, yr, n);
    }
}

/* Memory a tile fetches towards L2 while it computes, a cache line per step of its inner loop:
 * the weights of the tile that comes after it (see xg_conv_nhwc), whose first reads would
 * otherwise wait on memory. */
typedef struct {
    const float *at;
    long lines;
} xg_ahead;
#define XG_NOTHING_AHEAD ((xg_ahead){NULL, 0})

/* One tile of mr <= MR pixels x np panels: output rows [row0, row0 + nrows) of y seen as a
 * [pixels of all images][cout] matrix, nrows <= mr, columns [o0, o0 + np * NP) clipped to cout.
 * For tap t, pixel r's input channels are a[t * MR + r][k], k < cin; w is the tile's first
 * weight panel. mr and np are literals in each instance below, so that acc is all registers. */
XG_INLINE void xg_conv_nhwc_tile(int mr, int np, long taps, long cin, const float *const *a,
                                 const float *w, long panel_floats, float *y, long cout,
                                 long row0, long nrows, long o0, const xg_epilogue *ep,
                                 xg_ahead ahead)
{
    enum { MR = XG_CONV_NHWC_MR, NP = XG_CONV_NHWC_NP, PANELS = XG_CONV_NHWC_PANELS };
    xg_v16 acc[MR][PANELS];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < np; j++) acc[r][j] = (xg_v16){0};
    /* The output and residual rows are fetched while the products run: they are often cold
     * (the arena's last use of these bytes was long ago), and their rows are too far apart for
     * the hardware prefetchers to follow. */
    for (long r = 0; r < nrows; r++)
        for (int j = 0; j < np; j++) {
            __builtin_prefetch(y + (row0 + r) * cout + o0 + j * NP, 1);
            if (ep && ep->res) __builtin_prefetch(ep->res + (row0 + r) * cout + o0 + j * NP, 0);
        }
    for (long t = 0; t < taps; t++) {
        const float *at[MR];
        for (int r = 0; r < mr; r++) at[r] = a[t * MR + r];
        const float *wt = w + t * cin * NP;
        for (long k = 0; k < cin; k++) {
            if (ahead.lines > 0) { /* spread out: a burst of them would stall the loads */
                __builtin_prefetch(ahead.at, 0, 2);
                ahead.at += 64 / sizeof(float);
                ahead.lines--;
            }
            xg_v16 b[PANELS];
            for (int j = 0; j < np; j++) b[j] = *(const xg_v16 *)(wt + j * panel_floats + k * NP);
            for (int r = 0; r < mr; r++) {
                float s = at[r][k]; /* scalar * vector: a broadcast, no add of 0 */
                for (int j = 0; j < np; j++) acc[r][j] += s * b[j];
            }
        }
    }
    long n = XG_MIN((long)np * NP, cout - o0); /* valid columns */
    xg_conv_nhwc_store(np, acc, y, cout, row0, nrows, o0, n, ep);
}

/* The instances: MR rows by all PANELS panels, or the 1 to 3 panels left at the end of cout;
 * and short tiles of all panels for the few rows left at the end of a plane whose pixels are
 * not a multiple of MR (a transformer's 128 tokens are 18 x 7 + 2), which a tile of MR rows
 * would compute at the cost of 7: 7-8% of a 128 x 768 x 768 linear layer. */
typedef void xg_conv_nhwc_tile_fn(long taps, long cin, const float *const *a, const float *w,
                                  long panel_floats, float *y, long cout, long row0, long nrows,
                                  long o0, const xg_epilogue *ep, xg_ahead ahead);
#define XG_CONV_NHWC_TILE(name, mr, np)                                                         \
    static xg_conv_nhwc_tile_fn xg_conv_nhwc_tile_##name;                                       \
    static void xg_conv_nhwc_tile_##name(long taps, long cin, const float *const *a,           \
                                         const float *w, long panel_floats, float *y, long cout, \
                                         long row0, long nrows, long o0, const xg_epilogue *ep, \
                                         xg_ahead ahead)                                        \
    {                                                                                           \
        xg_conv_nhwc_tile(mr, np, taps, cin, a, w, panel_floats, y, cout, row0, nrows, o0, ep,  \
                          ahead);                                                               \
    }
XG_CONV_NHWC_TILE(full_1, XG_CONV_NHWC_MR, 1)
XG_CONV_NHWC_TILE(short_2, 2, XG_CONV_NHWC_PANELS)
XG_CONV_NHWC_TILE(short_4, 4, XG_CONV_NHWC_PANELS)
#if XG_CONV_NHWC_PANELS == 4
XG_CONV_NHWC_TILE(full_2, XG_CONV_NHWC_MR, 2)
XG_CONV_NHWC_TILE(full_3, XG_CONV_NHWC_MR, 3)
XG_CONV_NHWC_TILE(full_4, XG_CONV_NHWC_MR, 4)
#endif
#undef XG_CONV_NHWC_TILE

/* The instance for np (1 to PANELS) panels and nrows (1 to MR) rows. */
XG_INLINE void xg_conv_nhwc_tile_np(int np, long taps, long cin, const float *const *a,
                                    const float *w, long panel_floats, float *y, long cout,
                                    long row0, long nrows, long o0, const xg_epilogue *ep,
                                    xg_ahead ahead)
{
    xg_conv_nhwc_tile_fn *tile = xg_conv_nhwc_tile_full_1;
    if (np == XG_CONV_NHWC_PANELS && nrows <= 4)
        tile = nrows <= 2 ? xg_conv_nhwc_tile_short_2 : xg_conv_nhwc_tile_short_4;
#if XG_CONV_NHWC_PANELS == 4
    else if (np == 4)
        tile = xg_conv_nhwc_tile_full_4;
    else if (np == 3)
        tile = xg_conv_nhwc_tile_full_3;
    else if (np == 2)
        tile = xg_conv_nhwc_tile_full_2;
#endif
    tile(taps, cin, a, w, panel_floats, y, cout, row0, nrows, o0, ep, ahead);
}

/* rows[t * MR + r] for the pixels [p0, p0 + MR) of one image x: the input row each tap reads,
 * zeros where the tap is in the padding or the pixel is past the last one. Bounds are checked
 * per dim, not per tap: for a 7x7 kernel over 3 channels, this is a fair part of the work.
 * With `merged`, every window lies inside the input along x (see xg_conv_nhwc) and a tap is a
 * whole window row (kz, ky): its kx and channels are one run of ker[2] * cin floats. */
static void xg_conv_nhwc_rows(const float *x, long cin, const long *in, const long *out,
                              const long *ker, const long *stride, const long *pad,
                              const long *dil, long p0, int merged, const float *zeros,
                              const float **rows)
{
    enum { MR = XG_CONV_NHWC_MR };
    long kx_taps = merged ? 1 : ker[2], taps = ker[0] * ker[1] * kx_taps, npix = xg_prod3(out);
    if (taps == 1 && xg_prod3(stride) == 1 && !pad[0] && !pad[1] && !pad[2]) {
        /* pointwise (a linear layer among them): pixel p reads input pixel p, nothing else */
        for (long r = 0; r < MR; r++) rows[r] = p0 + r < npix ? x + (p0 + r) * cin : zeros;
        return;
    }
    long xoff[kx_taps]; /* per kx: the float offset of the input column in its row, or -1 */
    long o[3] = {p0 / (out[1] * out[2]), p0 / out[2] % out[1], p0 % out[2]};
    for (long r = 0; r < MR; r++, o[2]++) { /* o: pixel p0 + r, stepped without divisions */
        if (o[2] == out[2]) {
            o[2] = 0;
            if (++o[1] == out[1]) o[1] = 0, o[0]++;
        }
        if (p0 + r >= npix) {
            for (long t = 0; t < taps; t++) rows[t * MR + r] = zeros;
            continue;
        }
        for (long kx = 0; kx < kx_taps; kx++) {
            long ix = o[2] * stride[2] - pad[2] + kx * dil[2];
            xoff[kx] = ix >= 0 && ix < in[2] ? ix * cin : -1;
        }
        const float **rt = rows + r;
        for (long kz = 0; kz < ker[0]; kz++) {
            long iz = o[0] * stride[0] - pad[0] + kz * dil[0];
            for (long ky = 0; ky < ker[1]; ky++, rt += kx_taps * MR) {
                long iy = o[1] * stride[1] - pad[1] + ky * dil[1];
                if (iz < 0 || iz >= in[0] || iy < 0 || iy >= in[1]) {
                    for (long kx = 0; kx < kx_taps; kx++) rt[kx * MR] = zeros;
                    continue;
                }
                const float *line = x + (iz * in[1] + iy) * in[2] * cin;
                for (long kx = 0; kx < kx_taps; kx++)
                    rt[kx * MR] = xoff[kx] >= 0 ? line + xoff[kx] : zeros;
            }
        }
    }
}

/* y = epilogue(conv(x)), x [batch][in][cin] and y [batch][out][cout] channels last; zeros has
 * ker[2] * cin floats. */
static void xg_conv_nhwc(const float *x, const float *wp, float *y, long batch, long cin,
                         long cout, const long *in, const long *out, const long *ker,
                         const long *stride, const long *pad, const long *dil,
                         const xg_epilogue *ep, const float *zeros)
{
    enum { MR = XG_CONV_NHWC_MR, NP = XG_CONV_NHWC_NP, PANELS = XG_CONV_NHWC_PANELS };
    long npix = xg_prod3(out), taps = xg_prod3(ker), panel_floats = taps * cin * NP;
    /* Where no window crosses the input's x edges (no x padding, or the layout pass padded the
     * input explicitly), a window row's kx taps are adjacent in memory and run as one: what
     * makes a stem conv over 3 channels fast (7 runs of 21 instead of 49 of 3). */
    int merged = dil[2] == 1 && pad[2] == 0 && (out[2] - 1) * stride[2] + ker[2] <= in[2];
    long runs = merged ? ker[0] * ker[1] : taps, run = merged ? ker[2] * cin : cin;
    long panels = (cout + NP - 1) / NP, blocks = (npix + MR - 1) / MR;
    long groups = (panels + PANELS - 1) / PANELS, tiles = batch * blocks;
    long input_floats = xg_prod3(in) * cin;
    long group_floats = PANELS * panel_floats, weight_floats = panels * panel_floats;
    const float *rows[runs * MR];
    /* Weights that fit in L2 are swept whole for each block of pixels, whose input rows stay
     * in L1 meanwhile; bigger ones go a panel group at a time (read once from L3 or memory),
     * each swept over all blocks of pixels while it stays in L1 / L2. */
    int pixels_outer = panel_floats * panels <= XG_CONV_NHWC_L2_FLOATS;
    xg_range share = xg_share(tiles * groups, npix * batch * cout * taps * cin);
    long current = -1;
    for (long i = share.lo; i < share.hi; i++) {
        long tile = pixels_outer ? i / groups : i % tiles;
        long group = pixels_outer ? i % groups : i / tiles;
        long image = tile / blocks, p0 = tile % blocks * MR;
        if (tile != current) {
            xg_conv_nhwc_rows(x + image * input_floats, cin, in, out, ker, stride, pad, dil, p0,
                              merged, zeros, rows);
            current = tile;
        }
        long o0 = group * PANELS * NP, nrows = XG_MIN(MR, npix - p0), row0 = image * npix + p0;
        const float *w = wp + group * PANELS * panel_floats;
        /* A group swept over all pixels is read from memory by its first tile when the
         * weights are in no cache (a transformer's, many MB per layer): each tile fetches its
         * slice of the next group meanwhile, so that the group is in L2 when its turn comes
         * (2% of a 128 x 768 x 768 linear layer among others). */
        xg_ahead ahead = XG_NOTHING_AHEAD;
        if (!pixels_outer) {
            long slice = (group_floats + tiles - 1) / tiles;
            long lo = (group + 1) * group_floats + tile * slice;
            long hi = XG_MIN(lo + slice, weight_floats);
            ahead = (xg_ahead){wp + lo, hi > lo ? (hi - lo + 15) / 16 : 0};
        }
        xg_conv_nhwc_tile_np(XG_MIN(PANELS, panels - group * PANELS), runs, run, rows, w,
                             panel_floats, y, cout, row0, nrows, o0, ep, ahead);
    }
}

#endif /* XG_CONV_NHWC_H */

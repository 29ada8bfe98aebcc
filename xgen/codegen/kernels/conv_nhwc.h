/* Dense convolution (group 1) in the channels-last layout, N x spatial x C, as an indirect GEMM.
 *
 * With channels last, output pixel p over tap t reads one contiguous row of cin input floats, so
 * the convolution is a GEMM whose A rows are found through pointers instead of being copied:
 *   y[p][o] = sum over taps t, channels c of row(p, t)[c] * w[o][c][t]
 * where row(p, t) points into x, or at `zeros` where the tap falls in the padding. No im2col
 * matrix is written and every output is stored once, with its epilogue, after all of K.
 *
 * Tiles are XG_CONV_NHWC_MR pixels x XG_CONV_NHWC_PANELS panels of XG_CONV_NHWC_NP output
 * channels, all accumulators in registers; per k, one broadcast per pixel and one vector load per
 * panel feed MR x PANELS vector FMAs. The weight comes packed at compile time
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
#define XG_CONV_NHWC_L1_WAYS 8                /* L1 associativity (x86-64 and arm64 cores) */
#if defined(__AVX512F__)
#define XG_CONV_NHWC_MR 14 /* 14 x 2 accumulators + 2 weights + 1 broadcast of 32 zmm */
#define XG_CONV_NHWC_PANELS 2
#else
#define XG_CONV_NHWC_MR 6 /* 6 x 2 ymm (AVX2, 16 registers) or 6 x 4 q (NEON, 32) */
#define XG_CONV_NHWC_PANELS 1
#endif
#define XG_CONV_NHWC_MAX_PANELS (2 * XG_CONV_NHWC_PANELS) /* of the wide tile, see below */

typedef float xg_v16 __attribute__((vector_size(64)));
typedef float xg_v16u __attribute__((vector_size(64), aligned(4))); /* for unaligned access */
typedef int xg_v16i __attribute__((vector_size(64)));

/* The first n <= 16 floats at p (the rest zero), without reading past them. */
XG_INLINE xg_v16 xg_v16_load(const float *p, long n)
{
    if (n >= 16) return *(const xg_v16u *)p;
    xg_v16 v = {0};
    if (n > 0) memcpy(&v, p, (size_t)n * sizeof(float));
    return v;
}

XG_INLINE void xg_v16_store(float *p, xg_v16 v, long n)
{
    if (n >= 16)
        *(xg_v16u *)p = v;
    else
        memcpy(p, &v, (size_t)n * sizeof(float));
}

/* v clamped to [lo, hi] by comparisons, so that NaN goes through as in epilogue.h. */
XG_INLINE xg_v16 xg_v16_clamp(xg_v16 v, xg_v16 lo, xg_v16 hi)
{
    xg_v16i below = v < lo, above = v > hi;
    xg_v16i bits = ((xg_v16i)lo & below) | ((xg_v16i)hi & above) | ((xg_v16i)v & ~(below | above));
    return (xg_v16)bits;
}

/* The tile's rows stored with their epilogue applied in registers: with few input channels a
 * tile is short, and a pass over the stored rows would cost as much as the products. */
XG_INLINE void xg_conv_nhwc_store(int np, xg_v16 acc[][XG_CONV_NHWC_MAX_PANELS], float *y,
                                  long cout, long row0, long nrows, long o0, long n,
                                  const xg_epilogue *ep)
{
    xg_v16 bias[XG_CONV_NHWC_MAX_PANELS], lo = {0}, hi = {0};
    enum { NP = XG_CONV_NHWC_NP };
    for (int j = 0; j < np; j++) {
        long nj = n - j * NP;
        bias[j] = ep && ep->col_bias ? xg_v16_load(ep->col_bias + o0 + j * NP, nj) : (xg_v16){0};
    }
    int clamp = ep && ep->clamp, gelu = ep ? ep->gelu : 0;
    const float *res = ep ? ep->res : NULL;
    if (clamp) {
        lo += ep->lo;
        hi += ep->hi;
    }
    for (long r = 0; r < nrows; r++) {
        float *yr = y + (row0 + r) * cout + o0;
        for (int j = 0; j < np; j++) {
            long nj = n - j * NP;
            if (nj <= 0) break;
            xg_v16 v = acc[r][j] + bias[j];
            if (res) v += xg_v16_load(res + (row0 + r) * cout + o0 + j * NP, nj);
            if (clamp) v = xg_v16_clamp(v, lo, hi);
            xg_v16_store(yr + j * NP, v, nj);
        }
        xg_gelu_row(gelu, yr, n);
    }
}

/* One tile of mr pixels x np panels: output rows [row0, row0 + nrows) of y seen as a
 * [pixels of all images][cout] matrix, columns [o0, o0 + np * NP) clipped to cout. For tap t,
 * pixel r's input channels are a[t * mr + r][k * astride], k < cin; w is the tile's first
 * weight panel. mr and np are literals in each instance below, so that acc is all registers. */
XG_INLINE void xg_conv_nhwc_tile(int mr, int np, long taps, long cin, const float *const *a,
                                 long astride, const float *w, long panel_floats, float *y,
                                 long cout, long row0, long nrows, long o0, const xg_epilogue *ep)
{
    enum { MR = XG_CONV_NHWC_MR, NP = XG_CONV_NHWC_NP, PANELS = XG_CONV_NHWC_MAX_PANELS };
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
        for (int r = 0; r < mr; r++) at[r] = a[t * mr + r];
        const float *wt = w + t * cin * NP;
        for (long k = 0; k < cin; k++) {
            xg_v16 b[PANELS];
            for (int j = 0; j < np; j++) b[j] = *(const xg_v16 *)(wt + j * panel_floats + k * NP);
            for (int r = 0; r < mr; r++) {
                float s = at[r][k * astride]; /* scalar * vector: a broadcast, no add of 0 */
                for (int j = 0; j < np; j++) acc[r][j] += s * b[j];
            }
        }
    }
    long n = XG_MIN((long)np * NP, cout - o0); /* valid columns */
    xg_conv_nhwc_store(np, acc, y, cout, row0, nrows, o0, n, ep);
}

/* The tile shapes (each a literal instance of the tile):
 *   tall   MR pixels x PANELS panels, the usual one;
 *   narrow MR pixels x 1 panel, for the odd last panel when PANELS is 2;
 *   wide   MR/2 pixels x 2*PANELS panels, where MR-pixel tiles would waste many rows (a 7x7
 *          plane is 49 pixels: 3.5 tiles of 14, 7 of 7). */
#define XG_CONV_NHWC_TILE_PARAMS                                                                \
    long taps, long cin, const float *const *a, long astride, const float *w,                  \
        long panel_floats, float *y, long cout, long row0, long nrows, long o0,                 \
        const xg_epilogue *ep
#define XG_CONV_NHWC_TILE_ARGS taps, cin, a, astride, w, panel_floats, y, cout, row0, nrows, o0, ep
static void xg_conv_nhwc_tile_tall(XG_CONV_NHWC_TILE_PARAMS)
{
    xg_conv_nhwc_tile(XG_CONV_NHWC_MR, XG_CONV_NHWC_PANELS, XG_CONV_NHWC_TILE_ARGS);
}
static void xg_conv_nhwc_tile_narrow(XG_CONV_NHWC_TILE_PARAMS)
{
    xg_conv_nhwc_tile(XG_CONV_NHWC_MR, 1, XG_CONV_NHWC_TILE_ARGS);
}
static void xg_conv_nhwc_tile_wide(XG_CONV_NHWC_TILE_PARAMS)
{
    xg_conv_nhwc_tile(XG_CONV_NHWC_MR / 2, 2 * XG_CONV_NHWC_PANELS, XG_CONV_NHWC_TILE_ARGS);
}
#undef XG_CONV_NHWC_TILE_PARAMS
#undef XG_CONV_NHWC_TILE_ARGS

/* rows[t * mr + r] for the pixels [p0, p0 + mr) of one image x: the input row each tap reads,
 * zeros where the tap is in the padding or the pixel is past the last one. Bounds are checked
 * per dim, not per tap: for a 7x7 kernel over 3 channels, this is a fair part of the work. */
static void xg_conv_nhwc_rows(const float *x, long cin, const long *in, const long *out,
                              const long *ker, const long *stride, const long *pad,
                              const long *dil, long p0, long mr, const float *zeros,
                              const float **rows)
{
    long taps = xg_prod3(ker), npix = xg_prod3(out);
    long xoff[ker[2]]; /* per kx: the float offset of the input column in its row, or -1 */
    long o[3] = {p0 / (out[1] * out[2]), p0 / out[2] % out[1], p0 % out[2]};
    for (long r = 0; r < mr; r++, o[2]++) { /* o: pixel p0 + r, stepped without divisions */
        if (o[2] == out[2]) {
            o[2] = 0;
            if (++o[1] == out[1]) o[1] = 0, o[0]++;
        }
        if (p0 + r >= npix) {
            for (long t = 0; t < taps; t++) rows[t * mr + r] = zeros;
            continue;
        }
        for (long kx = 0; kx < ker[2]; kx++) {
            long ix = o[2] * stride[2] - pad[2] + kx * dil[2];
            xoff[kx] = ix >= 0 && ix < in[2] ? ix * cin : -1;
        }
        const float **rt = rows + r;
        for (long kz = 0; kz < ker[0]; kz++) {
            long iz = o[0] * stride[0] - pad[0] + kz * dil[0];
            for (long ky = 0; ky < ker[1]; ky++, rt += ker[2] * mr) {
                long iy = o[1] * stride[1] - pad[1] + ky * dil[1];
                if (iz < 0 || iz >= in[0] || iy < 0 || iy >= in[1]) {
                    for (long kx = 0; kx < ker[2]; kx++) rt[kx * mr] = zeros;
                    continue;
                }
                const float *line = x + (iz * in[1] + iy) * in[2] * cin;
                for (long kx = 0; kx < ker[2]; kx++)
                    rt[kx * mr] = xoff[kx] >= 0 ? line + xoff[kx] : zeros;
            }
        }
    }
}

/* A tile's input packed k-major: packed[(t * cin + k) * mr + r] = rows[t * mr + r][k]. */
static void xg_conv_nhwc_pack(long taps, long cin, long mr, const float *const *rows,
                              float *packed)
{
    for (long t = 0; t < taps; t++)
        for (long r = 0; r < mr; r++) {
            const float *src = rows[t * mr + r];
            float *dst = packed + t * cin * mr + r;
            for (long k = 0; k < cin; k++) dst[k * mr] = src[k];
        }
}

/* Pixels that a tile of mr rows leaves unused in the last tile of a plane of npix pixels. */
static inline long xg_conv_nhwc_waste(long npix, long mr) { return (mr - npix % mr) % mr; }

/* y = epilogue(conv(x)), x [batch][in][cin] and y [batch][out][cout] channels last.
 * packed: NULL, or room for every tile's input packed first (batch * (npix + MR - 1) * taps *
 * cin floats), which the lowering provides for many input channels: a tile's rows are then a
 * multiple of 2 KiB apart and share a few L1 sets. Tiles of more rows than the L1 has ways
 * would evict their own rows, so they read the packed copy (k-major, all taps one run of K);
 * shorter ones read the input in place, which is faster when it stays in L1. */
static void xg_conv_nhwc(const float *x, const float *wp, float *y, long batch, long cin,
                         long cout, const long *in, const long *out, const long *ker,
                         const long *stride, const long *pad, const long *dil,
                         const xg_epilogue *ep, const float *zeros, float *packed)
{
    enum { MR = XG_CONV_NHWC_MR, NP = XG_CONV_NHWC_NP, PANELS = XG_CONV_NHWC_PANELS };
    long npix = xg_prod3(out), taps = xg_prod3(ker), panel_floats = taps * cin * NP;
    long panels = (cout + NP - 1) / NP;
    int wide = panels % (2 * PANELS) == 0 &&
               xg_conv_nhwc_waste(npix, MR / 2) < xg_conv_nhwc_waste(npix, MR);
    long mr = wide ? MR / 2 : MR, per_group = wide ? 2 * PANELS : PANELS;
    long blocks = (npix + mr - 1) / mr, groups = (panels + per_group - 1) / per_group;
    long tiles = batch * blocks, input_floats = xg_prod3(in) * cin, tile_floats = mr * taps * cin;
    const float *rows[taps * MR];
    if (mr <= XG_CONV_NHWC_L1_WAYS) packed = NULL;
    if (packed) {
        xg_range share = xg_share(tiles, tiles * tile_floats);
        for (long tile = share.lo; tile < share.hi; tile++) {
            long image = tile / blocks, p0 = tile % blocks * mr;
            xg_conv_nhwc_rows(x + image * input_floats, cin, in, out, ker, stride, pad, dil, p0,
                              mr, zeros, rows);
            xg_conv_nhwc_pack(taps, cin, mr, rows, packed + tile * tile_floats);
        }
        xg_barrier();
    }
    /* Weights that fit in L2 are swept whole for each block of pixels, whose input rows stay
     * in L1 meanwhile; bigger ones go a panel group at a time (read once from L3 or memory),
     * each swept over all blocks of pixels while it stays in L1 / L2. */
    int pixels_outer = panel_floats * panels <= XG_CONV_NHWC_L2_FLOATS;
    xg_range share = xg_share(tiles * groups, npix * batch * cout * taps * cin);
    long current = -1;
    for (long i = share.lo; i < share.hi; i++) {
        long tile = pixels_outer ? i / groups : i % tiles;
        long group = pixels_outer ? i % groups : i / tiles;
        long image = tile / blocks, p0 = tile % blocks * mr;
        if (tile != current) {
            if (packed) /* all taps are one run of K = taps * cin, row r read from r, stride mr */
                for (long r = 0; r < mr; r++) rows[r] = packed + tile * tile_floats + r;
            else
                xg_conv_nhwc_rows(x + image * input_floats, cin, in, out, ker, stride, pad, dil,
                                  p0, mr, zeros, rows);
            current = tile;
        }
        long o0 = group * per_group * NP, nrows = XG_MIN(mr, npix - p0), row0 = image * npix + p0;
        long runs = packed ? 1 : taps, run = packed ? taps * cin : cin, astride = packed ? mr : 1;
        const float *w = wp + group * per_group * panel_floats;
        if (wide)
            xg_conv_nhwc_tile_wide(runs, run, rows, astride, w, panel_floats, y, cout, row0,
                                   nrows, o0, ep);
        else if (panels - group * PANELS >= PANELS)
            xg_conv_nhwc_tile_tall(runs, run, rows, astride, w, panel_floats, y, cout, row0,
                                   nrows, o0, ep);
        else
            xg_conv_nhwc_tile_narrow(runs, run, rows, astride, w, panel_floats, y, cout, row0,
                                     nrows, o0, ep);
    }
}

#endif /* XG_CONV_NHWC_H */

/* Sparse 3x3 convolution: pattern-pruned (PatDNN) or generic CSR, in one kernel.
 *
 * Pattern pruning: every kept kernel (output, input channel pair) of a filter keeps 4 of its 9
 * taps, in one of a small library of patterns, and whole kernels are removed (connectivity
 * pruning). CSR, the generic baseline, is the same kernel with 9 one-tap patterns: every
 * non-zero weight an entry of its own.
 *
 * Storage (packed at compile time by codegen/lower_pattern.py; FKW): the kept kernels grouped by
 * (input channel, pattern), each entry its filter and its weights in the pattern's tap order,
 * no index per weight and no pattern id per kernel (the group gives both channel and taps).
 *
 * Computation: vectorised over output positions, not channels, as a kept kernel's weights differ
 * from its neighbours'. A block of output rows is first gathered, channel by channel, into a
 * planar copy with a zero border (per thread scratch), whose rows are wp = out_w + 2 floats:
 * there output position (r, c) is r * wp + c and tap (ky, kx) reads position + ky * wp + kx,
 * one offset per tap for the whole block, so a run of positions that crosses row ends is still
 * one vector (the 2 columns past each row end are computed and dropped). For XG_PATTERN_V
 * vectors of positions, the input vectors of each (channel, pattern) group are loaded once
 * and reused by every filter of the group (PatDNN's load-redundancy elimination: about 8
 * filters share a group in a 256-filter layer with 1 kernel in 4 kept, where a filter at a
 * time would load an input vector per multiply-add), the filters' sums kept in a per-thread
 * buffer that stays in L1/L2. 16 filters' sums are then transposed in registers and stored
 * channels last with the epilogue (bias, residual, clamp or GELU) applied.
 *
 * Threads split (image, row block, vector block, filter range) items. Filter ranges (splits)
 * exist for small planes, so that every thread has work; each has its own groups, and they are
 * cut where the kept kernels, not the filters, divide evenly (filter-kernel reorder's load
 * balance).
 */
#ifndef XG_PATTERN_H
#define XG_PATTERN_H

#include <stdint.h>

#include "common.h"
#include "conv_nhwc.h"
#include "epilogue.h"

#define XG_PATTERN_SLOTS 16   /* patterns a layer's library may hold */
#define XG_PATTERN_V 4        /* accumulator vectors of 16 positions per filter */

typedef struct {
    long cin, cout;
    long in_h, in_w, out_h, out_w;
    long pad_top, pad_left;
    long rows;     /* output rows per block (the scratch holds rows + 2) */
    long patterns; /* in the library (9 one-tap patterns for CSR) */
    int taps;      /* taps a pattern: 4, or 1 for CSR */
    long splits;   /* filter ranges, each with its groups */
    const int32_t *split_start;        /* [splits + 1]: first filter of each range */
    const int32_t *group_start;        /* [splits][cin * patterns + 1]: entries of each group */
    const int32_t *entry_filter;       /* [entries]: its filter, counted from its range's first */
    const float *entry_weights;        /* [entries][taps] */
    const unsigned char *pattern_taps; /* [patterns][taps]: tap = 3 * ky + kx */
} xg_pattern_layer;

#define XG_UNPAREN(...) __VA_ARGS__

/* One butterfly step of a 16 x 16 transpose: rows i and i + d (i & d == 0) swap their
 * off-diagonal d x d blocks; lo and hi are the parenthesised lane lists of the two new rows
 * (lanes 16-31 are row i + d's). After d = 1, 2, 4, 8, m[i][j] holds the old m[j][i]. */
#define XG_TRANSPOSE_STEP(m, d, lo, hi)                                                         \
    for (int i = 0; i < 16; i++)                                                                \
        if (!(i & (d))) {                                                                       \
            xg_v16 a = m[i], b = m[i + (d)];                                                    \
            m[i] = __builtin_shufflevector(a, b, XG_UNPAREN lo);                                \
            m[i + (d)] = __builtin_shufflevector(a, b, XG_UNPAREN hi);                          \
        }

/* m = m transposed, 16 x 16 floats in registers (64 two-vector shuffles). */
XG_INLINE void xg_v16_transpose(xg_v16 m[16])
{
    XG_TRANSPOSE_STEP(m, 1, (0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
                      (1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
    XG_TRANSPOSE_STEP(m, 2, (0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
                      (2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
    XG_TRANSPOSE_STEP(m, 4, (0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
                      (4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
    XG_TRANSPOSE_STEP(m, 8, (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
                      (8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
}

/* Floats of one thread's scratch slice: the filters' sums (XG_PATTERN_V vectors each), the
 * planar block and the vector tail it may read (lower_pattern.py sizes the scratch likewise). */
static inline long xg_pattern_slice_floats(const xg_pattern_layer *L)
{
    long wp = L->out_w + 2, plane = (L->rows + 2) * wp;
    long floats = L->cout * XG_PATTERN_V * 16 + L->cin * plane + 16 * XG_PATTERN_V + 2 * wp + 2;
    return (floats + 15) / 16 * 16; /* the next slice's sums stay 64-byte aligned */
}

/* s[c][i][j] = x[r0 - pad_top + i][j - pad_left][c], zero outside the image: the input of output
 * rows [r0, r0 + rows) of one image, with the border the taps read. Blocks of 16 pixels x 16
 * channels are transposed in registers. */
static void xg_pattern_gather(const float *x, const xg_pattern_layer *L, long r0, float *s)
{
    long wp = L->out_w + 2, plane = (L->rows + 2) * wp, cin = L->cin;
    for (long i = 0; i < L->rows + 2; i++) {
        long iy = r0 - L->pad_top + i;
        if (iy < 0 || iy >= L->in_h) {
            for (long c = 0; c < cin; c++) memset(s + c * plane + i * wp, 0, wp * sizeof(float));
            continue;
        }
        const float *line = x + iy * L->in_w * cin;
        for (long j0 = 0; j0 < wp; j0 += 16)
            for (long c0 = 0; c0 < cin; c0 += 16) {
                long nc = XG_MIN(16, cin - c0);
                xg_v16 m[16];
                for (long p = 0; p < 16; p++) {
                    long ix = j0 + p - L->pad_left;
                    m[p] = (xg_v16){0};
                    if (ix >= 0 && ix < L->in_w) xg_v16_load(&m[p], line + ix * cin + c0, nc);
                }
                xg_v16_transpose(m);
                for (long c = 0; c < nc; c++)
                    xg_v16_store(s + (c0 + c) * plane + i * wp + j0, &m[c], wp - j0);
            }
    }
}

/* sums[f] (f from the range's first filter) += the entries of one filter range over the XG_PATTERN_V vectors of positions at s,
 * group by group: a (channel, pattern) group's input vectors are loaded once, then each of its
 * entries adds its `taps` (a literal: 4 or 1) products to its filter's sums. */
XG_INLINE void xg_pattern_accumulate(const int taps, const xg_pattern_layer *L,
                                     const int32_t *group_start, const float *s, long plane,
                                     const long (*offsets)[4], xg_v16 *sums)
{
    enum { V = XG_PATTERN_V };
    const int32_t *filter = L->entry_filter;
    for (long c = 0; c < L->cin; c++) {
        const float *sc = s + c * plane;
        for (long p = 0; p < L->patterns; p++) {
            long e0 = group_start[c * L->patterns + p], e1 = group_start[c * L->patterns + p + 1];
            if (e0 == e1) continue;
            xg_v16 x[4][V];
            for (int t = 0; t < taps; t++)
                for (int v = 0; v < V; v++)
                    x[t][v] = *(const xg_v16u *)(sc + offsets[p][t] + 16 * v);
            for (long e = e0; e < e1; e++) {
                xg_v16 *sum = sums + filter[e] * V;
                const float *w = L->entry_weights + taps * e;
                for (int v = 0; v < V; v++)
                    sum[v] += taps == 4 ? (w[0] * x[0][v] + w[1] * x[1][v])
                                              + (w[2] * x[2][v] + w[3] * x[3][v])
                                        : w[0] * x[0][v];
            }
        }
    }
}

/* Output positions [o, o + 16 * V) of the block at r0 for the filters [f0, f0 + nf), nf <= 16:
 * sums[j * V + v] is filter f0 + j's vector v of positions; transposed 16 positions at a time
 * and stored channels last with the epilogue. */
static void xg_pattern_store(const xg_pattern_layer *L, const xg_v16 *sums, long f0, long nf,
                             long r0, long o, float *y, const float *res, const xg_epilogue *ep)
{
    long wp = L->out_w + 2, cout = L->cout;
    xg_v16 bias = {0}, lo = {0}, hi = {0};
    if (ep && ep->col_bias) xg_v16_load(&bias, ep->col_bias + f0, nf);
    int clamp = ep && ep->clamp;
    if (clamp) {
        lo += ep->lo;
        hi += ep->hi;
    }
    long r = o / wp, c = o % wp; /* of the position being stored, stepped without division */
    for (int v = 0; v < XG_PATTERN_V; v++) {
        xg_v16 m[16];
        for (int j = 0; j < 16; j++) m[j] = j < nf ? sums[j * XG_PATTERN_V + v] : (xg_v16){0};
        xg_v16_transpose(m);
        for (long p = 0; p < 16; p++, c++) {
            if (c == wp) c = 0, r++;
            if (c >= L->out_w || r >= L->rows || r0 + r >= L->out_h) continue;
            long at = ((r0 + r) * L->out_w + c) * cout + f0;
            xg_v16 out = m[p] + bias;
            if (res) {
                xg_v16 residual;
                xg_v16_load(&residual, res + at, nf);
                out += residual;
            }
            if (clamp) xg_v16_clamp(&out, &lo, &hi);
            xg_v16_store(y + at, &out, nf);
            if (ep) xg_gelu_row(ep->gelu, y + at, nf);
        }
    }
}

/* y = epilogue(conv(x)), x [batch][in_h][in_w][cin] and y [batch][out_h][out_w][cout];
 * scratch holds XG_SCRATCH_THREADS slices of xg_pattern_slice_floats floats. */
static void xg_pattern_conv_nhwc(const float *x, float *y, long batch, const xg_pattern_layer *L,
                                 const xg_epilogue *ep, float *scratch)
{
    enum { V = XG_PATTERN_V, BLOCK = 16 * XG_PATTERN_V };
    long wp = L->out_w + 2, plane = (L->rows + 2) * wp, groups = L->cin * L->patterns;
    long blocks = (L->out_h + L->rows - 1) / L->rows, vblocks = (L->rows * wp + BLOCK - 1) / BLOCK;
    long items = batch * blocks * vblocks * L->splits;
    long entries = L->group_start[L->splits * (groups + 1) - 1];
    long team = XG_MIN(xg_team_size(), XG_SCRATCH_THREADS), rank = xg_team_rank();
    if (entries * L->taps * BLOCK * batch * blocks * vblocks < XG_PARALLEL_MIN) team = 1;
    if (rank >= team) return;
    long lo = items * rank / team, hi = items * (rank + 1) / team;
    float *slice = scratch + rank * xg_pattern_slice_floats(L);
    xg_v16 *sums = (xg_v16 *)slice;
    float *s = slice + L->cout * V * 16;
    long offsets[XG_PATTERN_SLOTS][4];
    for (long p = 0; p < L->patterns; p++)
        for (int t = 0; t < L->taps; t++) {
            int tap = L->pattern_taps[L->taps * p + t];
            offsets[p][t] = tap / 3 * wp + tap % 3;
        }
    long gathered = -1;
    for (long item = lo; item < hi; item++) {
        long split = item % L->splits, spot = item / L->splits;
        long tile = spot / vblocks, o = spot % vblocks * BLOCK;
        long image = tile / blocks, r0 = tile % blocks * L->rows;
        if (tile != gathered) {
            xg_pattern_gather(x + image * L->in_h * L->in_w * L->cin, L, r0, s);
            gathered = tile;
        }
        long f0 = L->split_start[split], f1 = L->split_start[split + 1];
        for (long i = 0; i < (f1 - f0) * V; i++) sums[i] = (xg_v16){0};
        const int32_t *group_start = L->group_start + split * (groups + 1);
        if (L->taps == 4)
            xg_pattern_accumulate(4, L, group_start, s + o, plane, (const long(*)[4])offsets,
                                  sums);
        else
            xg_pattern_accumulate(1, L, group_start, s + o, plane, (const long(*)[4])offsets,
                                  sums);
        long image_floats = L->out_h * L->out_w * L->cout;
        float *yi = y + image * image_floats;
        const float *res = ep && ep->res ? ep->res + image * image_floats : NULL;
        for (long f = f0; f < f1; f += 16)
            xg_pattern_store(L, sums + (f - f0) * V, f, XG_MIN(16, f1 - f), r0, o, yi, res, ep);
    }
}

#endif /* XG_PATTERN_H */

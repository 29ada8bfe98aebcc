/* Sparse 3x3 convolution: pattern-pruned (PatDNN) or generic CSR, in one kernel.
 *
 * Pattern pruning: every kept kernel (output, input channel pair) of a filter keeps 4 of its 9
 * taps, in one of a small library of patterns, and whole kernels are removed (connectivity
 * pruning). Storage (FKW, packed at compile time by codegen/lower_pattern.py): per filter, its
 * kept kernels as one int32 code, input channel * XG_PATTERN_SLOTS + pattern id, and 4 weights
 * in the pattern's tap order. No index per weight: the pattern gives the taps.
 * CSR, the generic baseline: every non-zero weight is an entry of its own, with the same code
 * (input channel, and its tap as the pattern among 9 one-tap patterns): the CSR matrix
 * [cout][cin * 9] with a column index per weight.
 * filter_start[o] .. filter_start[o + 1] are filter o's entries, sorted by input channel.
 *
 * Computation: vectorised over output positions, not channels, as a kept kernel's weights differ
 * from its neighbours'. A block of output rows is first gathered, channel by channel, into a
 * planar copy with a zero border (per thread scratch), whose rows are wp = out_w + 2 floats:
 * there output position (r, c) is r * wp + c and tap (ky, kx) reads position + ky * wp + kx,
 * one offset per tap for the whole block, so a run of positions that crosses row ends is still
 * one vector (the 2 columns past each row end are computed and dropped). Per filter, the
 * XG_PATTERN_V accumulator vectors sum a broadcast-weight FMA per tap of each entry; the
 * pattern id only selects the tap offsets from a table, so the loop over entries has no branch.
 * 16 filters' accumulators are then transposed in registers and stored channels last with the
 * epilogue (bias, residual, clamp or GELU) applied.
 *
 * Threads split (image, row block, filter group) items; filter groups are cut where the kept
 * entries, not the filters, divide evenly (filter-kernel reorder's load balance).
 */
#ifndef XG_PATTERN_H
#define XG_PATTERN_H

#include <stdint.h>

#include "common.h"
#include "conv_nhwc.h"
#include "epilogue.h"

#define XG_PATTERN_SLOTS 16   /* patterns a layer's library may hold */
#define XG_PATTERN_V 4        /* accumulator vectors of 16 positions per filter */
#define XG_PATTERN_THREADS 8 /* threads with a scratch slice; more threads idle in these nodes */

typedef struct {
    long cin, cout;
    long in_h, in_w, out_h, out_w;
    long pad_top, pad_left;
    long rows;                    /* output rows per block (the scratch holds rows + 2) */
    const int32_t *filter_start;  /* [cout + 1] */
    const int32_t *kernel_code;   /* input channel * XG_PATTERN_SLOTS + pattern */
    const float *kernel_weights;  /* [entries][taps] */
    const unsigned char *pattern_taps; /* [patterns][taps]: tap = 3 * ky + kx */
    long patterns;
    int taps;                     /* taps an entry: 4 (patterns) or 1 (CSR) */
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

/* Floats of one thread's scratch slice: the planar block and the vector tail it may read
 * (lower_pattern.py sizes the scratch likewise). */
static inline long xg_pattern_slice_floats(const xg_pattern_layer *L)
{
    long wp = L->out_w + 2, plane = (L->rows + 2) * wp;
    return L->cin * plane + 16 * XG_PATTERN_V + 2 * wp + 2;
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

/* sum += weight * the vectors of positions at sk + offset. */
#define XG_PATTERN_TAP(sum, weight, sk, offset)                                                 \
    for (int v = 0; v < XG_PATTERN_V; v++)                                                      \
        (sum)[v] += (weight) * *(const xg_v16u *)((sk) + (offset) + 16 * v)

/* acc = the entries [k0, k1) of a filter, `taps` each (a literal: 4 or 1), over the
 * XG_PATTERN_V vectors of positions at s. Two sums, alternating by tap (or by entry, with one
 * tap an entry), halve the chain of dependent FMAs. */
XG_INLINE void xg_pattern_filter(const int taps, const float *s, long plane, const int32_t *code,
                                 const float *w, long k0, long k1, const long (*offsets)[4],
                                 xg_v16 acc[XG_PATTERN_V])
{
    enum { V = XG_PATTERN_V, SLOTS = XG_PATTERN_SLOTS };
    xg_v16 odd[V];
    for (int v = 0; v < V; v++) acc[v] = odd[v] = (xg_v16){0};
    long k = k0;
    if (taps == 4) {
        for (; k < k1; k++) {
            const long *off = offsets[code[k] % SLOTS];
            const float *sk = s + code[k] / SLOTS * plane, *wk = w + 4 * k;
            XG_PATTERN_TAP(acc, wk[0], sk, off[0]);
            XG_PATTERN_TAP(odd, wk[1], sk, off[1]);
            XG_PATTERN_TAP(acc, wk[2], sk, off[2]);
            XG_PATTERN_TAP(odd, wk[3], sk, off[3]);
        }
    } else {
        for (; k + 1 < k1; k += 2) {
            XG_PATTERN_TAP(acc, w[k], s + code[k] / SLOTS * plane, offsets[code[k] % SLOTS][0]);
            XG_PATTERN_TAP(odd, w[k + 1], s + code[k + 1] / SLOTS * plane,
                           offsets[code[k + 1] % SLOTS][0]);
        }
        if (k < k1)
            XG_PATTERN_TAP(acc, w[k], s + code[k] / SLOTS * plane, offsets[code[k] % SLOTS][0]);
    }
    for (int v = 0; v < V; v++) acc[v] += odd[v];
}

/* Output positions [o, o + 16 * V) of the block at r0 for the filters [f0, f0 + nf), nf <= 16:
 * stage[j] holds filter f0 + j's vectors by position; transposed 16 positions at a time and
 * stored channels last with the epilogue. */
static void xg_pattern_store(const xg_pattern_layer *L, xg_v16 stage[16][XG_PATTERN_V], long f0,
                             long nf, long r0, long o, float *y, const float *res,
                             const xg_epilogue *ep)
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
        for (int j = 0; j < 16; j++) m[j] = stage[j][v];
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

/* Filter groups: cut points in multiples of 16 filters where the kept kernels split evenly. */
static long xg_pattern_group_start(const xg_pattern_layer *L, long g, long groups)
{
    long chunks = (L->cout + 15) / 16, total = L->filter_start[L->cout];
    if (g >= groups) return L->cout;
    long want = total * g / groups, c = 0;
    while (c < chunks && L->filter_start[c * 16] < want) c++;
    return c * 16;
}

/* y = epilogue(conv(x)), x [batch][in_h][in_w][cin] and y [batch][out_h][out_w][cout];
 * scratch holds XG_PATTERN_THREADS slices of xg_pattern_slice_floats floats. */
static void xg_pattern_conv_nhwc(const float *x, float *y, long batch, const xg_pattern_layer *L,
                                 const xg_epilogue *ep, float *scratch)
{
    enum { V = XG_PATTERN_V, BLOCK = 16 * XG_PATTERN_V };
    long wp = L->out_w + 2, plane = (L->rows + 2) * wp;
    long blocks = (L->out_h + L->rows - 1) / L->rows, positions = L->rows * wp;
    long team = XG_MIN(xg_team_size(), XG_PATTERN_THREADS), rank = xg_team_rank();
    /* enough filter groups that every thread gets about two items */
    long chunks = (L->cout + 15) / 16, spatial = batch * blocks;
    long groups = XG_MIN(chunks, XG_MAX(1, (2 * team + spatial - 1) / spatial));
    long items = spatial * groups;
    if (rank >= team || L->filter_start[L->cout] * L->taps * positions * spatial < XG_PARALLEL_MIN)
        team = 1;
    if (rank >= team) return;
    long lo = items * rank / team, hi = items * (rank + 1) / team;
    float *s = scratch + rank * xg_pattern_slice_floats(L);
    long offsets[XG_PATTERN_SLOTS][4];
    for (long p = 0; p < L->patterns; p++)
        for (int t = 0; t < L->taps; t++) {
            int tap = L->pattern_taps[L->taps * p + t];
            offsets[p][t] = tap / 3 * wp + tap % 3;
        }
    xg_v16 stage[16][V];
    long gathered = -1;
    for (long item = lo; item < hi; item++) {
        long tile = item / groups, g = item % groups;
        long image = tile / blocks, r0 = tile % blocks * L->rows;
        if (tile != gathered) {
            xg_pattern_gather(x + image * L->in_h * L->in_w * L->cin, L, r0, s);
            gathered = tile;
        }
        float *yi = y + image * L->out_h * L->out_w * L->cout;
        const float *res = ep && ep->res ? ep->res + image * L->out_h * L->out_w * L->cout : NULL;
        long f_end = xg_pattern_group_start(L, g + 1, groups);
        for (long o = 0; o < positions; o += BLOCK)
            for (long f0 = xg_pattern_group_start(L, g, groups); f0 < f_end; f0 += 16) {
                long nf = XG_MIN(16, L->cout - f0);
                for (long j = 0; j < nf; j++) {
                    long k0 = L->filter_start[f0 + j], k1 = L->filter_start[f0 + j + 1];
                    if (L->taps == 4)
                        xg_pattern_filter(4, s + o, plane, L->kernel_code, L->kernel_weights,
                                          k0, k1, (const long(*)[4])offsets, stage[j]);
                    else
                        xg_pattern_filter(1, s + o, plane, L->kernel_code, L->kernel_weights,
                                          k0, k1, (const long(*)[4])offsets, stage[j]);
                }
                xg_pattern_store(L, stage, f0, nf, r0, o, yi, res, ep);
            }
    }
}

#endif /* XG_PATTERN_H */

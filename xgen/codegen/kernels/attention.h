/* Scaled dot-product attention, y = softmax(scale * Q K^T + mask) V, fused (ops.AttentionAttrs,
 * passes/attention.py): per (batch, head), Q [sq][d], K [sk][d], V [sk][dv], mask [sq][sk].
 *
 * Unfused, the scores of all heads (heads x sq x sk floats) are written by one kernel and read
 * back by the next three. Here a thread takes a block of XG_CONV_NHWC_MR query rows at a time:
 *   1. its scores [MR][sk], from conv_nhwc.h's register tiles: Q's rows are the tile's pixels,
 *      K^T (times scale) is packed as the tile's weight panels;
 *   2. the mask added and the softmax of each row, while the rows are in L1;
 *   3. the probabilities times V, from the same tiles (V packed as weight panels),
 *      then copied to y.
 * K and V are packed once per (batch, head) a thread visits: the units of work are (batch,
 * head, block of rows) in that order, and each thread takes a contiguous share of them.
 *
 * Every operand is addressed by four strides in floats, [batch][head][row][column], 0 along a
 * dim that broadcasts; Q's columns are contiguous (qs[3] == 1).
 */
#ifndef XG_ATTENTION_H
#define XG_ATTENTION_H

#include "common.h"
#include "conv_nhwc.h"
#include "norm.h"

#define XG_ATTENTION_THREADS 8 /* threads with a scratch slice; more threads idle here */
#define XG_ATTENTION_MAX_ROWS 8 /* lower_attention sizes the slices for blocks this tall */
_Static_assert(XG_CONV_NHWC_MR <= XG_ATTENTION_MAX_ROWS, "attention blocks outgrow their slice");

/* n rounded up to whole panels */
static inline long xg_attention_round_up(long n)
{
    return (n + XG_CONV_NHWC_NP - 1) / XG_CONV_NHWC_NP * XG_CONV_NHWC_NP;
}

/* kt = scale * K^T as weight panels: per NP keys, [d][NP] (keys past sk zero). */
static void xg_attention_pack_keys(const float *k, long row_stride, long col_stride, long sk,
                                   long d, float scale, float *kt)
{
    enum { NP = XG_CONV_NHWC_NP };
    for (long j = 0; j < xg_attention_round_up(sk); j++) {
        float *dst = kt + j / NP * d * NP + j % NP;
        const float *row = k + j * row_stride;
        for (long c = 0; c < d; c++) dst[c * NP] = j < sk ? scale * row[c * col_stride] : 0.0f;
    }
}

/* vp = V as weight panels: per NP columns, [sk][NP] (columns past dv zero). */
static void xg_attention_pack_values(const float *v, long row_stride, long col_stride, long sk,
                                     long dv, float *vp)
{
    enum { NP = XG_CONV_NHWC_NP };
    for (long c0 = 0; c0 < dv; c0 += NP)
        for (long j = 0; j < sk; j++) {
            float *dst = vp + (c0 * sk + j * NP);
            const float *row = v + j * row_stride;
            for (long c = 0; c < NP; c++)
                dst[c] = c0 + c < dv ? row[(c0 + c) * col_stride] : 0.0f;
        }
}

/* out [MR][cols] (row stride cols, nrows valid) = rows x the panels of w, k deep: conv_nhwc.h's
 * tiles over every group of panels. */
static void xg_attention_product(const float *const *rows, const float *w, long k, long cols,
                                 float *out, long nrows)
{
    enum { NP = XG_CONV_NHWC_NP, PANELS = XG_CONV_NHWC_PANELS };
    long panels = xg_attention_round_up(cols) / NP, panel_floats = k * NP;
    for (long g = 0; g * PANELS < panels; g++)
        xg_conv_nhwc_tile_np(XG_MIN(PANELS, panels - g * PANELS), 1, k, rows,
                             w + g * PANELS * panel_floats, panel_floats, out, cols, 0, nrows,
                             g * PANELS * NP, NULL, XG_NOTHING_AHEAD);
}

/* y = softmax(scale * Q K^T + mask) V over batch x heads; mask may be NULL (ms unused). scratch
 * holds XG_ATTENTION_THREADS slices of thread_floats (lower_attention.thread_floats). */
static void xg_attention(long batch, long heads, long sq, long sk, long d, long dv, float scale,
                         const float *q, const long *qs, const float *k, const long *ks,
                         const float *v, const long *vs, const float *mask, const long *ms,
                         float *y, const long *ys, float *scratch, long thread_floats)
{
    enum { MR = XG_CONV_NHWC_MR };
    long skp = xg_attention_round_up(sk), dvp = xg_attention_round_up(dv);
    long blocks = (sq + MR - 1) / MR, units = batch * heads * blocks;
    long team = XG_MIN(xg_team_size(), XG_ATTENTION_THREADS), rank = xg_team_rank();
    if (batch * heads * sq * sk * (d + dv) < XG_PARALLEL_MIN) team = 1;
    if (rank >= team) return;
    float *kt = scratch + rank * thread_floats, *vp = kt + skp * d, *s = vp + dvp * sk;
    float *p = s + MR * skp, *o = p + MR * skp;
    const float *rows[MR];
    long packed = -1; /* the (batch, head) whose K and V are in kt and vp */
    for (long u = units * rank / team, end = units * (rank + 1) / team; u < end; u++) {
        long bh = u / blocks, b = bh / heads, h = bh % heads, i0 = u % blocks * MR;
        long nrows = XG_MIN(MR, sq - i0);
        if (bh != packed) {
            xg_attention_pack_keys(k + b * ks[0] + h * ks[1], ks[2], ks[3], sk, d, scale, kt);
            xg_attention_pack_values(v + b * vs[0] + h * vs[1], vs[2], vs[3], sk, dv, vp);
            packed = bh;
        }
        /* rows past sq repeat the last one: the tile computes MR rows, stores nrows */
        for (long r = 0; r < MR; r++)
            rows[r] = q + b * qs[0] + h * qs[1] + XG_MIN(i0 + r, sq - 1) * qs[2];
        xg_attention_product(rows, kt, d, skp, s, nrows);
        for (long r = 0; r < nrows; r++) {
            float *sr = s + r * skp;
            if (mask) {
                const float *mr = mask + b * ms[0] + h * ms[1] + (i0 + r) * ms[2];
                for (long j = 0; j < sk; j++) sr[j] += mr[j * ms[3]];
            }
            xg_softmax_row(sr, p + r * skp, sk, 0);
        }
        for (long r = 0; r < MR; r++) rows[r] = p + XG_MIN(r, nrows - 1) * skp;
        xg_attention_product(rows, vp, sk, dv, o, nrows);
        for (long r = 0; r < nrows; r++) {
            float *yr = y + b * ys[0] + h * ys[1] + (i0 + r) * ys[2];
            for (long c = 0; c < dv; c++) yr[c * ys[3]] = o[r * dv + c];
        }
    }
}

#endif /* XG_ATTENTION_H */

/* Scaled dot-product attention, y = softmax(scale * Q K^T + mask) V, fused (ops.AttentionAttrs,
 * passes/attention.py): per (batch, head), Q [sq][d], K [sk][d], V [sk][dv], mask [sq][sk].
 *
 * Unfused, the scores of all heads (heads x sq x sk floats) are written by one kernel and read
 * back by the next three. Here a thread takes a block of XG_CONV_NHWC_MR query rows at a time:
 *   1. its scores [MR][sk], from conv_nhwc.h's register tiles: Q's rows are the tile's pixels,
 *      K^T (times scale) is packed as the tile's weight panels;
 *   2. the mask added and the exponentials of each row, while the rows are in L1;
 *   3. those times V, from the same tiles (V packed as weight panels), each row scaled by
 *      1 / its sum of exponentials (dv products per row, not sk) as it is copied to y.
 * K and V are packed once per (batch, head) a thread visits: the units of work are (batch,
 * head, block of rows) in that order, and each thread takes a contiguous share of them.
 *
 * Every operand is addressed by four strides in floats, [batch][head][row][column], 0 along a
 * dim that broadcasts; Q's columns are contiguous (qs[3] == 1). K and V may each come in parts
 * along their rows (the keys), each with its own pointer and strides.
 */
#ifndef XG_ATTENTION_H
#define XG_ATTENTION_H

#include "common.h"
#include "conv_nhwc.h"
#include "elementwise.h" /* xg_expf */

#define XG_ATTENTION_MAX_ROWS 8 /* lower_attention sizes the slices for blocks this tall */
_Static_assert(XG_CONV_NHWC_MR <= XG_ATTENTION_MAX_ROWS, "attention blocks outgrow their slice");

/* n rounded up to whole panels */
static inline long xg_attention_round_up(long n)
{
    return (n + XG_CONV_NHWC_NP - 1) / XG_CONV_NHWC_NP * XG_CONV_NHWC_NP;
}

/* kt = scale * K^T as weight panels of (batch b, head h): per NP keys, [d][NP], keys past sk
 * zero. Each panel row gathers one feature of NP keys, so that its stores are one vector. K
 * comes in `parts` joined along the keys (a KV cache and the new token's keys, read in place):
 * part p at k[p], strides ks[4p..4p+3] as xg_attention's, rows[p] keys. */
static void xg_attention_pack_keys(int parts, const float *const *k, const long *ks,
                                   const long *rows, long b, long h, long sk, long d, float scale,
                                   float *kt)
{
    enum { NP = XG_CONV_NHWC_NP };
    long first = 0; /* the part's first key */
    for (int p = 0; p < parts; first += rows[p], p++) {
        const long *s = ks + 4 * p;
        const float *kp = k[p] + b * s[0] + h * s[1];
        for (long j0 = first / NP * NP; j0 < first + rows[p]; j0 += NP) {
            float *panel = kt + j0 * d;
            long lo = XG_MAX(first, j0), hi = XG_MIN(first + rows[p], j0 + NP);
            for (long c = 0; c < d; c++) {
                const float *column = kp + (lo - first) * s[2] + c * s[3];
                for (long j = lo; j < hi; j++)
                    panel[c * NP + j - j0] = scale * column[(j - lo) * s[2]];
            }
        }
    }
    long tail = sk % NP; /* the last panel's keys past sk */
    for (long c = 0; tail && c < d; c++)
        memset(kt + (sk - tail) * d + c * NP + tail, 0, (size_t)(NP - tail) * sizeof(float));
}

/* vp = V as weight panels of (b, h): per NP columns, [sk][NP] (columns past dv zero); V in
 * parts as K is. */
static void xg_attention_pack_values(int parts, const float *const *v, const long *vs,
                                     const long *rows, long b, long h, long sk, long dv,
                                     float *vp)
{
    enum { NP = XG_CONV_NHWC_NP };
    long first = 0;
    for (int p = 0; p < parts; first += rows[p], p++) {
        const long *s = vs + 4 * p;
        const float *part = v[p] + b * s[0] + h * s[1];
        for (long c0 = 0; c0 < dv; c0 += NP) {
            long cols = XG_MIN(NP, dv - c0);
            for (long j = 0; j < rows[p]; j++) {
                float *dst = vp + c0 * sk + (first + j) * NP;
                const float *row = part + j * s[2] + c0 * s[3];
                if (s[3] == 1 && cols == NP) {
                    xg_v16 x = *(const xg_v16u *)row; /* one vector: the usual, contiguous V */
                    *(xg_v16 *)dst = x;
                    continue;
                }
                for (long c = 0; c < NP; c++) dst[c] = c < cols ? row[c * s[3]] : 0.0f;
            }
        }
    }
}

/* p[0..n) = exp(s[j] - max) for one row of scores s, the mask row (NULL: none, else its
 * entries mask_stride apart) added to s first; returns the sum of p, by which the caller
 * scales the row's output (dv values) rather than p (n). Loops of reductions the compiler
 * keeps in vector registers: a generic softmax row (norm.h) spends more on its horizontal
 * steps than on exp at attention's 128 keys. A NaN score makes the whole row NaN. */
static inline float xg_attention_exp_row(float *s, const float *mask, long mask_stride, long n,
                                         float *p)
{
    float mx = -INFINITY, sum = 0.0f;
    if (mask)
#pragma omp simd
        for (long j = 0; j < n; j++) s[j] += mask[j * mask_stride];
#pragma omp simd reduction(max : mx)
    for (long j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
#pragma omp simd reduction(+ : sum)
    for (long j = 0; j < n; j++) {
        p[j] = xg_expf(s[j] - mx);
        sum += p[j];
    }
    return sum;
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

/* y = softmax(scale * Q K^T + mask) V over batch x heads; K and V in parts (see
 * xg_attention_pack_keys), their rows adding up to sk; mask may be NULL (ms unused). With
 * nan_to_zero a row whose probabilities are NaN (masked by -inf throughout, or a NaN score:
 * either makes the whole row NaN) gives zeros. scratch holds XG_SCRATCH_THREADS slices of
 * thread_floats (lower_attention.thread_floats). */
static void xg_attention(long batch, long heads, long sq, long sk, long d, long dv, float scale,
                         int nan_to_zero, const float *q, const long *qs, int k_parts,
                         const float *const *k, const long *ks, const long *k_rows, int v_parts,
                         const float *const *v, const long *vs, const long *v_rows,
                         const float *mask, const long *ms, float *y, const long *ys,
                         float *scratch, long thread_floats)
{
    enum { MR = XG_CONV_NHWC_MR };
    long skp = xg_attention_round_up(sk), dvp = xg_attention_round_up(dv);
    long blocks = (sq + MR - 1) / MR, units = batch * heads * blocks;
    long team = XG_MIN(xg_team_size(), XG_SCRATCH_THREADS), rank = xg_team_rank();
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
            xg_attention_pack_keys(k_parts, k, ks, k_rows, b, h, sk, d, scale, kt);
            xg_attention_pack_values(v_parts, v, vs, v_rows, b, h, sk, dv, vp);
            packed = bh;
        }
        /* rows past sq repeat the last one: the tile computes MR rows, stores nrows */
        for (long r = 0; r < MR; r++)
            rows[r] = q + b * qs[0] + h * qs[1] + XG_MIN(i0 + r, sq - 1) * qs[2];
        xg_attention_product(rows, kt, d, skp, s, nrows);
        float sum[MR];
        for (long r = 0; r < nrows; r++) {
            const float *mr = mask ? mask + b * ms[0] + h * ms[1] + (i0 + r) * ms[2] : NULL;
            sum[r] = xg_attention_exp_row(s + r * skp, mr, mask ? ms[3] : 0, sk, p + r * skp);
            if (nan_to_zero && sum[r] != sum[r]) {
                memset(p + r * skp, 0, (size_t)sk * sizeof(float));
                sum[r] = 1.0f;
            }
        }
        for (long r = 0; r < MR; r++) rows[r] = p + XG_MIN(r, nrows - 1) * skp;
        xg_attention_product(rows, vp, sk, dv, o, nrows);
        for (long r = 0; r < nrows; r++) {
            float *yr = y + b * ys[0] + h * ys[1] + (i0 + r) * ys[2], scale_r = 1.0f / sum[r];
            for (long c = 0; c < dv; c++) yr[c * ys[3]] = o[r * dv + c] * scale_r;
        }
    }
}

#endif /* XG_ATTENTION_H */

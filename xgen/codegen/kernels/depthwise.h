/* Depthwise convolution (group == cin == cout, NCHW, 1 to 3 spatial dims): a direct kernel, as
 * im2col + GEMM would do one multiply-add per copied element. Geometry arguments as in conv.h
 * (3-D, lower ranks padded with leading size-1 dims); w is the plain [C][kz][ky][kx] weight.
 *
 * 1-D and 2-D convs (the fast path) work on blocks of output rows of one (image, channel) plane,
 * a block being as many rows as keep all it touches in L1:
 *  1. The zero-padded input rows the block reads are copied into stride phases: phase (py, px)
 *     holds padded pixel (R * sy + py, j * sx + px) at (R, j) of an rh x cw grid, R counted from
 *     the block's first output row. Tap (ky, kx) then reads, for output (oy, ox) of the block,
 *     element (oy + qy, ox + qx) of one phase, whatever the stride or dilation.
 *  2. So with the outputs computed on a rows x cw grid (columns past the output width are
 *     discarded), every tap is a fixed offset into the phases and the block is one flat loop:
 *     XG_DW_LANES outputs at a time are summed over all taps in registers and stored once.
 *  3. The block's rows go to y in one pass that applies the epilogue (bias, residual, clamp)
 *     while the sums are in L1.
 * A thread's buffers serve all its blocks: the padding columns of the phases are the same in
 * every block, so they are zeroed once and only the input's columns are copied per block.
 * 3-D convs, and rows too wide for the block buffers, run a plain loop over output rows.
 * The team splits the (image, channel, block) triples, so that few big planes still share out.
 *
 * xg_depthwise_nhwc is the channels-last form (N + spatial + C), vectorised over the channels
 * instead: see its section below. */
#ifndef XG_DEPTHWISE_H
#define XG_DEPTHWISE_H

#include <string.h>

#include "common.h"
#include "conv.h"
#include "epilogue.h"
#include "pool.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define XG_DW_LANES 16          /* outputs summed at once: one AVX-512 vector of floats */
#define XG_DW_L1_FLOATS 6144L   /* a block's buffers aim at 24 KiB, to stay in L1 */
#define XG_DW_MAX_FLOATS 65536L /* and may take up to 256 KiB of a thread's stack */

/* Columns of a phase grid: the output width plus the kernel's reach in phase columns. */
static inline long xg_dw_grid_cols(const long *out, const long *ker, const long *stride,
                                   const long *dil)
{
    return out[2] + (ker[2] - 1) * dil[2] / stride[2];
}

/* Rows of a phase grid for a block of `rows` output rows. */
static inline long xg_dw_grid_rows(long rows, const long *ker, const long *stride,
                                   const long *dil)
{
    return rows + (ker[1] - 1) * dil[1] / stride[1];
}

/* Floats of stack a block of `rows` output rows takes: its phases, the slack the flat loop may
 * read past the last one, and its sums. */
static inline long xg_dw_block_floats(long rows, const long *out, const long *ker,
                                      const long *stride, const long *dil)
{
    long cw = xg_dw_grid_cols(out, ker, stride, dil);
    long phases = stride[1] * stride[2] * xg_dw_grid_rows(rows, ker, stride, dil) * cw;
    return phases + cw + XG_DW_LANES + xg_round_up(rows * cw, XG_DW_LANES);
}

/* Output rows per block for the fast path (at most out[1]), or 0 where it does not apply: 3-D
 * convs, negative pads (not ONNX's) and rows too wide for even a one-row block. Blocks are
 * evened out, so that the last one is not a sliver. */
static long xg_dw_block_rows(const long *in, const long *out, const long *ker, const long *stride,
                             const long *pad, const long *dil)
{
    if (in[0] != 1 || out[0] != 1 || ker[0] != 1 || pad[1] < 0 || pad[2] < 0) return 0;
    if (xg_dw_block_floats(1, out, ker, stride, dil) > XG_DW_MAX_FLOATS) return 0;
    long rows = 1;
    while (rows < out[1] && xg_dw_block_floats(rows + 1, out, ker, stride, dil) <= XG_DW_L1_FLOATS)
        rows++;
    long blocks = (out[1] + rows - 1) / rows;
    return (out[1] + blocks - 1) / blocks;
}

/* GCC/Clang vector extension: the lane loop as one value, which both compilers keep in vector
 * registers across the taps on any target (AVX-512: one zmm; narrower ISAs: split). As a plain
 * loop, gcc instead vectorises over the taps with gathers, at a tenth of the speed. */
typedef float xg_dw_vec __attribute__((vector_size(XG_DW_LANES * sizeof(float))));
/* The vector at p, aligned to a float only. A macro: a function returning a vector wider than the
 * target's makes gcc warn of an ABI change. */
typedef xg_dw_vec xg_dw_vec_unaligned __attribute__((aligned(4), may_alias));
#define XG_DW_AT(p) (*(xg_dw_vec_unaligned *)(p))

#if defined(__AVX512F__)
/* The first n (< 16) lanes: the tail of a row, read and written under a mask. */
static inline __mmask16 xg_dw_tail_mask(long n) { return (__mmask16)((1u << n) - 1); }
#endif

/* d[0..n) = s[0..n). With AVX-512, a short row is one masked move, where memcpy (what gcc makes
 * of a plain copy loop) costs a call: small planes copy many short rows. */
static inline void xg_dw_copy(float *XG_RESTRICT d, const float *XG_RESTRICT s, long n)
{
#if defined(__AVX512F__)
    long j = 0;
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(d + j, _mm512_loadu_ps(s + j));
    __mmask16 m = xg_dw_tail_mask(n - j);
    _mm512_mask_storeu_ps(d + j, m, _mm512_maskz_loadu_ps(m, s + j));
#else
    memcpy(d, s, (size_t)n * sizeof(float));
#endif
}

/* d[j] = padded input column j * sx + px of row s for the j in [0, cw) inside the input (s
 * points at the row's column px - pad); the other columns are left alone (zero from the start).
 * For strides above 2: stride 1 copies the row whole, stride 2 has xg_dw_phase_rows2. */
static void xg_dw_phase_row(const float *s, long sx, long px_pad, long width, long cw,
                            float *XG_RESTRICT d)
{
    long lo, hi;
    xg_valid_range(px_pad, sx, width, cw, &lo, &hi);
    for (long j = lo; j < hi; j++) d[j] = s[j * sx];
}

/* Stride 2: both column phases d0, d1 of input row s with `pad` begin padding, in one pass over
 * the input's column pairs. Input column ix is padded column ix + pad, so phase (ix + pad) % 2,
 * column (ix + pad) / 2; columns past cw are not needed. Copying pairs whole matters: a copy of
 * every other float makes gcc finish each row with a scalar loop (it may not read the last
 * float of the last pair), which costs more than the vector part. */
static inline void xg_dw_phase_rows2(const float *XG_RESTRICT s, long width, long pad, long cw,
                                     float *XG_RESTRICT d0, float *XG_RESTRICT d1)
{
    float *XG_RESTRICT even = (pad % 2 ? d1 : d0) + pad / 2;      /* input columns 2i */
    float *XG_RESTRICT odd = (pad % 2 ? d0 : d1) + (pad + 1) / 2; /* input columns 2i + 1 */
    long pairs = XG_MAX(XG_MIN(width / 2, cw - (pad + 1) / 2), 0);
    for (long i = 0; i < pairs; i++) {
        even[i] = s[2 * i];
        odd[i] = s[2 * i + 1];
    }
    for (long ix = 2 * pairs; ix < width && (ix + pad) / 2 < cw; ix++)
        ((ix + pad) % 2 ? d1 : d0)[(ix + pad) / 2] = s[ix];
}

/* Step 1: grid rows [0, nr) of the block's phases, rh x cw grids one after the other in phase
 * order (py, px). Only the columns inside the input are written: the padding columns are the
 * same for every block, and stay zero from the caller's first memset. The input rows are read
 * in order, which the hardware prefetcher follows best. */
static void xg_dw_fill_phases(const float *xc, long oy0, long nr, long rh, long cw,
                              const long *in, const long *stride, const long *pad,
                              float *phases)
{
    long sy = stride[1], sx = stride[2];
    for (long R = 0; R < nr; R++) {
        for (long py = 0; py < sy; py++) {
            long iy = (oy0 + R) * sy + py - pad[1];
            float *d = phases + (py * sx * rh + R) * cw; /* phase (py, 0); px grids on: (py, px) */
            if (iy < 0 || iy >= in[1]) {
                for (long px = 0; px < sx; px++)
                    memset(d + px * rh * cw, 0, (size_t)cw * sizeof(float));
                continue;
            }
            const float *s = xc + iy * in[2];
            if (sx == 1) {
                long lo, hi; /* the grid columns inside the input */
                xg_valid_range(-pad[2], 1, in[2], cw, &lo, &hi);
                xg_dw_copy(d + lo, s + lo - pad[2], hi - lo);
            } else if (sx == 2) {
                xg_dw_phase_rows2(s, in[2], pad[2], cw, d, d + rh * cw);
            } else {
                for (long px = 0; px < sx; px++)
                    xg_dw_phase_row(s + px - pad[2], sx, px - pad[2], in[2], cw,
                                    d + px * rh * cw);
            }
        }
    }
}

/* Step 2: sums[i] = sum over taps t of wt[t] * phases[off[t] + i], for i in [0, n), n a
 * multiple of XG_DW_LANES. Four vectors at a time where it can: four independent chains of
 * multiply-adds hide their latency, where one chain would wait on each. Not inlined: inlined
 * into its caller, gcc spills the loop's pointers to the stack (a third slower). */
__attribute__((noinline)) static void xg_dw_sum_taps(const float *phases, const long *off,
                                                     const float *wt, long taps, long n,
                                                     float *XG_RESTRICT sums)
{
    long i = 0;
    for (; i + 4 * XG_DW_LANES <= n; i += 4 * XG_DW_LANES) {
        xg_dw_vec a0 = {0.0f}, a1 = {0.0f}, a2 = {0.0f}, a3 = {0.0f};
        for (long t = 0; t < taps; t++) {
            const float *s = phases + off[t] + i;
            float wv = wt[t];
            a0 += wv * XG_DW_AT(s);
            a1 += wv * XG_DW_AT(s + XG_DW_LANES);
            a2 += wv * XG_DW_AT(s + 2 * XG_DW_LANES);
            a3 += wv * XG_DW_AT(s + 3 * XG_DW_LANES);
        }
        XG_DW_AT(sums + i) = a0;
        XG_DW_AT(sums + i + XG_DW_LANES) = a1;
        XG_DW_AT(sums + i + 2 * XG_DW_LANES) = a2;
        XG_DW_AT(sums + i + 3 * XG_DW_LANES) = a3;
    }
    for (; i < n; i += XG_DW_LANES) {
        xg_dw_vec acc = {0.0f};
        for (long t = 0; t < taps; t++) acc += wt[t] * XG_DW_AT(phases + off[t] + i);
        XG_DW_AT(sums + i) = acc;
    }
}

/* Step 3 for one row: d[j] = s[j] + bias + res[j] (res may be NULL), clamped to [lo, hi]
 * (NaN kept), in one pass. The clamp with lo = -inf, hi = inf changes nothing. res may be d
 * (j is read before it is written). With AVX-512, the row's tail is one masked vector: small
 * planes have many short rows. */
static inline void xg_dw_store_row(const float *XG_RESTRICT s, long n, float bias,
                                   const float *res, float lo, float hi, float *d)
{
#if defined(__AVX512F__)
    __m512 vbias = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (long j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : xg_dw_tail_mask(n - j);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, s + j), vbias);
        if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + j));
        /* max and min return their second operand where either is NaN: v's NaN is kept */
        v = _mm512_min_ps(vhi, _mm512_max_ps(vlo, v));
        _mm512_mask_storeu_ps(d + j, m, v);
    }
#else
    for (long j = 0; j < n; j++) {
        float v = s[j] + bias + (res ? res[j] : 0.0f);
        v = v < lo ? lo : v;
        d[j] = v > hi ? hi : v;
    }
#endif
}

/* off[t]: where tap t = (ky, kx) reads the phases, relative to the output's grid position. */
static void xg_dw_tap_offsets(const long *ker, const long *stride, const long *dil, long rh,
                              long cw, long *off)
{
    long sy = stride[1], sx = stride[2];
    for (long ky = 0; ky < ker[1]; ky++) {
        for (long kx = 0; kx < ker[2]; kx++) {
            long ty = ky * dil[1], tx = kx * dil[2]; /* the tap's offset in padded pixels */
            off[ky * ker[2] + kx] = ((ty % sy) * sx + tx % sx) * rh * cw + ty / sy * cw + tx / sx;
        }
    }
}

/* Output rows [oy0, oy0 + rows) of one channel plane (row c of the epilogue's [C][npix] matrix,
 * whose col_bias a conv never has): steps 1 to 3 of the top comment. phases holds rh x cw
 * grids, zero wherever xg_dw_fill_phases does not write; sums holds rows * cw floats rounded up
 * to whole vectors. */
static void xg_dw_block(const float *xc, const float *wc, float *yc, long c, long oy0, long rows,
                        long rh, long cw, const long *off, float *phases, float *sums,
                        const long *in, const long *out, const long *ker, const long *stride,
                        const long *pad, const long *dil, const xg_epilogue *ep)
{
    long ow = out[2], npix = out[1] * ow;
    xg_dw_fill_phases(xc, oy0, xg_dw_grid_rows(rows, ker, stride, dil), rh, cw, in, stride, pad,
                      phases);
    xg_dw_sum_taps(phases, off, wc, ker[1] * ker[2], xg_round_up(rows * cw, XG_DW_LANES), sums);
    float bias = ep && ep->row_bias ? ep->row_bias[c] : 0.0f;
    float lo = ep && ep->clamp ? ep->lo : -INFINITY, hi = ep && ep->clamp ? ep->hi : INFINITY;
    for (long r = 0; r < rows; r++) {
        long p0 = (oy0 + r) * ow; /* the row's first pixel */
        const float *res = ep && ep->res ? ep->res + c * npix + p0 : NULL;
        xg_dw_store_row(sums + r * cw, ow, bias, res, lo, hi, yc + p0);
    }
}

/* The fast path: the team splits the (image, channel, block of `rows` output rows) triples. */
static void xg_dw_blocks(const float *x, const float *w, float *y, long batch, long channels,
                         long rows, const long *in, const long *out, const long *ker,
                         const long *stride, const long *pad, const long *dil,
                         const xg_epilogue *ep)
{
    long taps = ker[1] * ker[2], npix = out[1] * out[2], plane = in[1] * in[2];
    long blocks = (out[1] + rows - 1) / rows, planes = batch * channels;
    xg_range share = xg_share(planes * blocks, planes * npix * taps);
    if (share.lo == share.hi) return;
    long cw = xg_dw_grid_cols(out, ker, stride, dil), rh = xg_dw_grid_rows(rows, ker, stride, dil);
    /* slack: the flat loop of xg_dw_sum_taps reads up to cw + XG_DW_LANES past the last grid */
    long nphases = stride[1] * stride[2] * rh * cw + cw + XG_DW_LANES;
    float phases[nphases], sums[xg_round_up(rows * cw, XG_DW_LANES)];
    long off[taps];
    memset(phases, 0, (size_t)nphases * sizeof(float));
    xg_dw_tap_offsets(ker, stride, dil, rh, cw, off);
    for (long item = share.lo; item < share.hi; item++) {
        long nc = item / blocks, c = nc % channels, oy0 = item % blocks * rows;
        /* row c of an [N*C][npix] matrix; the epilogue takes its bias and residual from there */
        xg_epilogue ec = ep ? xg_conv_epilogue(ep, nc / channels, 0, channels, npix)
                            : (xg_epilogue){0};
        xg_dw_block(x + nc * plane, w + c * taps, y + nc * npix, c, oy0,
                    XG_MIN(rows, out[1] - oy0), rh, cw, off, phases, sums, in, out, ker, stride,
                    pad, dil, ep ? &ec : NULL);
    }
}

/* The generic path: one channel plane, output row by output row, each row getting its epilogue
 * as soon as it is summed. */
static void xg_dw_plane_rows(const float *xc, const float *wc, float *yc, long c, const long *in,
                             const long *out, const long *ker, const long *stride,
                             const long *pad, const long *dil, const xg_epilogue *ep)
{
    long npix = xg_prod3(out);
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
            xg_epilogue_row(ep, c, row0, out[2], npix, d);
        }
    }
}

/* The generic path: the team splits the (image, channel) planes. */
static void xg_dw_planes(const float *x, const float *w, float *y, long batch, long channels,
                         const long *in, const long *out, const long *ker, const long *stride,
                         const long *pad, const long *dil, const xg_epilogue *ep)
{
    long taps = xg_prod3(ker), npix = xg_prod3(out), plane = xg_prod3(in);
    xg_range share = xg_share(batch * channels, batch * channels * npix * taps);
    for (long nc = share.lo; nc < share.hi; nc++) {
        long c = nc % channels;
        xg_epilogue ec = ep ? xg_conv_epilogue(ep, nc / channels, 0, channels, npix)
                            : (xg_epilogue){0};
        xg_dw_plane_rows(x + nc * plane, w + c * taps, y + nc * npix, c, in, out, ker, stride,
                         pad, dil, ep ? &ec : NULL);
    }
}

/* Depthwise conv (group == cin == cout): see the top comment. The epilogue ep may be NULL. */
static void xg_conv_depthwise(const float *x, const float *w, float *y, long batch,
                              long channels, const long *in, const long *out, const long *ker,
                              const long *stride, const long *pad, const long *dil,
                              const xg_epilogue *ep)
{
    long rows = xg_dw_block_rows(in, out, ker, stride, pad, dil);
    if (rows)
        xg_dw_blocks(x, w, y, batch, channels, rows, in, out, ker, stride, pad, dil, ep);
    else
        xg_dw_planes(x, w, y, batch, channels, in, out, ker, stride, pad, dil, ep);
}

/* ---- channels last -------------------------------------------------------------------------
 * xg_depthwise_nhwc: x [batch][in][channels], y [batch][out][channels], w [taps][channels]
 * (tap (kz, ky, kx) row-major), pad the 3 begin pads. Vectorised over the channels like
 * xg_pool_nhwc (pool.h): XG_CL_PIX outputs of a row x XG_CL_LANES channels are summed in
 * registers, so every weight vector read serves XG_CL_PIX multiply-adds, over a tap list that
 * holds only the taps inside the input (no test per tap). The epilogue (col_bias per channel,
 * residual laid out like y, clamp or GELU) is applied before the single store. The team splits
 * the output rows. */

/* P outputs (a literal once inlined), xs floats apart in x, of `lanes` channels at x, w and y:
 * the sum over the n taps, tap t read at x + xo + off[t] and weighted by w + tap[t], then the
 * epilogue. yo: the first output's offset in y (and in the residual). With row3 (a literal),
 * the windows are 3 taps wide at stride 1 and dilation 1 along x (most depthwise convs): the
 * P + 2 input vectors a row of 3 taps reads are loaded once each, not 3 P loads. */
XG_INLINE void xg_dwn_tile(const int P, const int row3, const float *x, long xo, long xs,
                           const long *off, const long *tap, long n, const float *w,
                           long channels, long lanes, const xg_epilogue *ep, long c, float *y,
                           long yo)
{
    xg_cl_mask m = XG_CL_MASK(lanes);
    xg_cl_vec acc[XG_CL_PIX];
    for (int p = 0; p < P; p++) acc[p] = XG_CL_SET1(0.0f);
    for (long t = 0; t < n; t += row3 ? 3 : 1) {
        const float *s = x + (xo + off[t]); /* inside the tensor: the tap is */
        xg_cl_vec w0 = XG_CL_LOAD(w + tap[t], m);
        if (row3) {
            xg_cl_vec w1 = XG_CL_LOAD(w + tap[t] + channels, m);
            xg_cl_vec w2 = XG_CL_LOAD(w + tap[t] + 2 * channels, m);
            xg_cl_vec a = XG_CL_LOAD(s, m), b = XG_CL_LOAD(s + channels, m);
            for (int p = 0; p < P; p++) {
                xg_cl_vec next = XG_CL_LOAD(s + (p + 2) * channels, m);
                acc[p] += w0 * a;
                acc[p] += w1 * b;
                acc[p] += w2 * next;
                a = b;
                b = next;
            }
        } else {
            for (int p = 0; p < P; p++) acc[p] += w0 * XG_CL_LOAD(s + p * xs, m);
        }
    }
    xg_cl_vec bias = ep && ep->col_bias ? XG_CL_LOAD(ep->col_bias + c, m) : XG_CL_SET1(0.0f);
    xg_cl_vec lo = XG_CL_SET1(ep && ep->clamp ? ep->lo : -INFINITY);
    xg_cl_vec hi = XG_CL_SET1(ep && ep->clamp ? ep->hi : INFINITY);
    const float *res = ep && ep->res ? ep->res + c : NULL;
    for (int p = 0; p < P; p++) {
        xg_cl_vec v = acc[p] + bias;
        if (res) v += XG_CL_LOAD(res + yo + p * channels, m);
        XG_CL_STORE(y + yo + p * channels, m, XG_CL_CLAMP(v, lo, hi));
    }
    if (ep && ep->gelu)
        for (int p = 0; p < P; p++) xg_gelu_row(ep->gelu, y + yo + p * channels, lanes);
}

/* Every channel of P outputs: the first one's window starts at x + xo, its output at y + yo.
 * Whole vectors get a tile built for them (literal lanes: plain loads), the tail its own. */
XG_INLINE void xg_dwn_pixels(const int P, const int row3, const float *x, long xo, long xs,
                             const long *off, const long *tap, long n, const float *w,
                             long channels, const xg_epilogue *ep, float *y, long yo)
{
    long c = 0;
    for (; c + XG_CL_LANES <= channels; c += XG_CL_LANES)
        xg_dwn_tile(P, row3, x + c, xo, xs, off, tap, n, w + c, channels, XG_CL_LANES, ep, c,
                    y + c, yo);
    if (c < channels)
        xg_dwn_tile(P, row3, x + c, xo, xs, off, tap, n, w + c, channels, channels - c, ep, c,
                    y + c, yo);
}

/* The outputs [lo, hi) of a row (at offset yo of y) whose windows lie whole inside the input
 * along x, XG_CL_PIX at a time: each reads the n taps at off from its first pixel, the first
 * output's at x + row0 * channels. */
XG_INLINE void xg_dwn_whole(const int row3, const float *x, long row0, const float *w, float *y,
                            long yo, long channels, long lo, long hi, const long *stride,
                            const long *pad, const long *off, const long *tap, long n,
                            const xg_epilogue *ep)
{
    long xs = stride[2] * channels, ox = lo;
    for (; ox + XG_CL_PIX <= hi; ox += XG_CL_PIX)
        xg_dwn_pixels(XG_CL_PIX, row3, x, (row0 + ox * stride[2] - pad[2]) * channels, xs, off,
                      tap, n, w, channels, ep, y, yo + ox * channels);
    for (; ox < hi; ox++)
        xg_dwn_pixels(1, row3, x, (row0 + ox * stride[2] - pad[2]) * channels, xs, off, tap, n, w,
                      channels, ep, y, yo + ox * channels);
}

/* The output ox at a row's end, with its window's own taps. yo: the row's offset in y. */
static void xg_dwn_end(const float *x, long row0, const float *w, float *y, long yo,
                       long channels, long ox, const long *in, const long *ker,
                       const long *stride, const long *pad, const long *dil, const xg_taps *tz,
                       const xg_taps *ty, const xg_epilogue *ep, long *off, long *tap)
{
    xg_taps tx = xg_pool_taps(ox, in[2], ker[2], stride[2], pad[2], 0, dil[2]);
    long n = xg_cl_taps(tz, ty, tx.lo, tx.hi, in, ker, dil, channels, off, tap);
    xg_dwn_pixels(1, 0, x, (row0 + tx.base) * channels, 0, off, tap, n, w, channels, ep, y,
                  yo + ox * channels);
}

/* One output row (oz, oy) of an image (x), at offset yo of y: the outputs whose windows lie
 * whole inside the input along x, the ends alone. off and tap hold a window's taps. */
static void xg_dwn_row(const float *x, const float *w, float *y, long yo, long channels,
                       const long *in, const long *out, const long *ker, const long *stride,
                       const long *pad, const long *dil, const xg_taps *tz, const xg_taps *ty,
                       const xg_epilogue *ep, long *off, long *tap)
{
    long row0 = (tz->base * in[1] + ty->base) * in[2], lo, hi;
    xg_cl_whole(in, out, ker, stride, pad, dil, &lo, &hi);
    for (long ox = 0; ox < lo; ox++)
        xg_dwn_end(x, row0, w, y, yo, channels, ox, in, ker, stride, pad, dil, tz, ty, ep, off,
                   tap);
    long n = xg_cl_taps(tz, ty, 0, ker[2], in, ker, dil, channels, off, tap);
    if (ker[2] == 3 && stride[2] == 1 && dil[2] == 1)
        xg_dwn_whole(1, x, row0, w, y, yo, channels, lo, hi, stride, pad, off, tap, n, ep);
    else
        xg_dwn_whole(0, x, row0, w, y, yo, channels, lo, hi, stride, pad, off, tap, n, ep);
    for (long ox = hi; ox < out[2]; ox++)
        xg_dwn_end(x, row0, w, y, yo, channels, ox, in, ker, stride, pad, dil, tz, ty, ep, off,
                   tap);
}

/* Channels-last depthwise conv: see the comment above. The epilogue ep may be NULL. */
static void xg_depthwise_nhwc(const float *x, const float *w, float *y, long batch,
                              long channels, const long *in, const long *out, const long *ker,
                              const long *stride, const long *pad, const long *dil,
                              const xg_epilogue *ep)
{
    long rows = batch * out[0] * out[1], taps = xg_prod3(ker);
    xg_range share = xg_share(rows, rows * out[2] * channels * taps);
    long off[taps], tap[taps];
    for (long r = share.lo; r < share.hi; r++) {
        long img = r / (out[0] * out[1]), oz = r / out[1] % out[0], oy = r % out[1];
        xg_taps tz = xg_pool_taps(oz, in[0], ker[0], stride[0], pad[0], 0, dil[0]);
        xg_taps ty = xg_pool_taps(oy, in[1], ker[1], stride[1], pad[1], 0, dil[1]);
        xg_dwn_row(x + img * xg_prod3(in) * channels, w, y, r * out[2] * channels, channels, in,
                   out, ker, stride, pad, dil, &tz, &ty, ep, off, tap);
    }
}

#endif /* XG_DEPTHWISE_H */

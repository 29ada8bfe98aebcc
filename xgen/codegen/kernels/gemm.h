/* sgemm: C = alpha * op(A) @ op(B) + beta * C, float32 with float32 accumulation.
 *
 * Structure (BLIS-like, kept in layers so each can be tuned alone):
 *   microkernel  xg_ukr: an XG_GEMM_MR x XG_GEMM_NR tile of A*B over one K block, from packed panels
 *   packing      xg_pack_a / xg_pack_b: strided operands -> contiguous zero-padded panels
 *   blocking     xg_sgemm: K blocks of XG_GEMM_KC; per block B (and A unless packed at compile time)
 *                is packed cooperatively, then threads share the (row block, column panel) tiles.
 *
 * Packed A (also produced at compile time for constant weights, see lower_gemm.pack_gemm_a): for each
 * K block of depth kc, the rows in panels of XG_GEMM_MR, each panel kc x MR floats k-major,
 * rows past M zero. A K block starts at float offset round_up(M, MR) * k0.
 * Packed B (likewise from lower_gemm.pack_gemm_b): per K block, the columns in panels of XG_GEMM_NP,
 * each kc x NP floats k-major; a K block starts at float offset round_up(N, NP) * k0.
 * Operands are addressed with a row and a column stride, so transposes cost nothing extra here.
 */
#ifndef XG_GEMM_H
#define XG_GEMM_H

#include <stddef.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include "common.h"
#include "epilogue.h"

#define XG_GEMM_MR 8   /* rows of a packed A panel: fixed, compile-time packing depends on it */
#define XG_GEMM_NP 16  /* columns of a packed B panel */
#define XG_GEMM_KC 256 /* depth of a K block: an A panel + a B panel stay in L1 */
#define XG_GEMM_MC 128 /* rows of a block of A kept in L2 while threads sweep B panels */
#define XG_GEMM_TILES_PER_THREAD 4 /* fewer (row block, column tile) tiles balance badly */
#if defined(__AVX512F__)
#define XG_GEMM_NR 32 /* microkernel width: two B panels */
#else
#define XG_GEMM_NR 16
#endif

static inline long xg_round_up(long x, long m) { return (x + m - 1) / m * m; }

/* ---- microkernels: tile[MR][NR] = sum over k of a[k][0..MR) x b[k][0..NR) --------------------
 * b points at the first B panel; the second (AVX-512 only) is bps floats further. */
#if defined(__AVX512F__)
static void xg_ukr(long kc, const float *a, const float *b, long bps, float *tile)
{
    __m512 c0[XG_GEMM_MR], c1[XG_GEMM_MR];
    for (int r = 0; r < XG_GEMM_MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    const float *b1 = b + bps;
    for (long k = 0; k < kc; k++) {
        __m512 x0 = _mm512_loadu_ps(b + k * XG_GEMM_NP);
        __m512 x1 = _mm512_loadu_ps(b1 + k * XG_GEMM_NP);
        const float *ak = a + k * XG_GEMM_MR;
        for (int r = 0; r < XG_GEMM_MR; r++) {
            __m512 ar = _mm512_set1_ps(ak[r]);
            c0[r] = _mm512_fmadd_ps(ar, x0, c0[r]);
            c1[r] = _mm512_fmadd_ps(ar, x1, c1[r]);
        }
    }
    for (int r = 0; r < XG_GEMM_MR; r++) {
        _mm512_storeu_ps(tile + r * XG_GEMM_NR, c0[r]);
        _mm512_storeu_ps(tile + r * XG_GEMM_NR + 16, c1[r]);
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
static void xg_ukr(long kc, const float *a, const float *b, long bps, float *tile)
{
    (void)bps;
    /* 16 ymm registers: the 8-row panel is done as two passes of 4 rows (8 accumulators). */
    for (int h = 0; h < XG_GEMM_MR; h += 4) {
        __m256 c[4][2];
        for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = _mm256_setzero_ps();
        for (long k = 0; k < kc; k++) {
            __m256 x0 = _mm256_loadu_ps(b + k * XG_GEMM_NP);
            __m256 x1 = _mm256_loadu_ps(b + k * XG_GEMM_NP + 8);
            const float *ak = a + k * XG_GEMM_MR + h;
            for (int r = 0; r < 4; r++) {
                __m256 ar = _mm256_broadcast_ss(ak + r);
                c[r][0] = _mm256_fmadd_ps(ar, x0, c[r][0]);
                c[r][1] = _mm256_fmadd_ps(ar, x1, c[r][1]);
            }
        }
        for (int r = 0; r < 4; r++) {
            _mm256_storeu_ps(tile + (h + r) * XG_GEMM_NR, c[r][0]);
            _mm256_storeu_ps(tile + (h + r) * XG_GEMM_NR + 8, c[r][1]);
        }
    }
}
#elif defined(__ARM_NEON)
/* Row r of a 4-row half: its four 4-float accumulators += a[r] (lane r of av) x the B row. */
#define XG_NEON_ROW(r)                                                                          \
    c[r][0] = vfmaq_laneq_f32(c[r][0], x0, av, r);                                              \
    c[r][1] = vfmaq_laneq_f32(c[r][1], x1, av, r);                                              \
    c[r][2] = vfmaq_laneq_f32(c[r][2], x2, av, r);                                              \
    c[r][3] = vfmaq_laneq_f32(c[r][3], x3, av, r);
static void xg_ukr(long kc, const float *a, const float *b, long bps, float *tile)
{
    (void)bps;
    /* 32 q registers: the 8-row panel is done as two passes of 4 rows (16 accumulators). */
    for (int h = 0; h < XG_GEMM_MR; h += 4) {
        float32x4_t c[4][4];
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 4; j++) c[r][j] = vdupq_n_f32(0.0f);
        for (long k = 0; k < kc; k++) {
            const float *bk = b + k * XG_GEMM_NP;
            float32x4_t x0 = vld1q_f32(bk), x1 = vld1q_f32(bk + 4);
            float32x4_t x2 = vld1q_f32(bk + 8), x3 = vld1q_f32(bk + 12);
            float32x4_t av = vld1q_f32(a + k * XG_GEMM_MR + h);
            XG_NEON_ROW(0) XG_NEON_ROW(1) XG_NEON_ROW(2) XG_NEON_ROW(3)
        }
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 4; j++) vst1q_f32(tile + (h + r) * XG_GEMM_NR + 4 * j, c[r][j]);
    }
}
#undef XG_NEON_ROW
#else
static void xg_ukr(long kc, const float *a, const float *b, long bps, float *tile)
{
    (void)bps;
    float c[XG_GEMM_MR][XG_GEMM_NR] = {{0}};
    for (long k = 0; k < kc; k++)
        for (int r = 0; r < XG_GEMM_MR; r++)
            for (int j = 0; j < XG_GEMM_NR; j++)
                c[r][j] += a[k * XG_GEMM_MR + r] * b[k * XG_GEMM_NP + j];
    memcpy(tile, c, sizeof c);
}
#endif

/* The narrow variant for the last single B panel when NR spans two panels: one zmm per row. */
static void xg_ukr_narrow(long kc, const float *a, const float *b, float *tile)
{
#if XG_GEMM_NR == XG_GEMM_NP
    xg_ukr(kc, a, b, 0, tile);
#else
    __m512 c[XG_GEMM_MR];
    for (int r = 0; r < XG_GEMM_MR; r++) c[r] = _mm512_setzero_ps();
    for (long k = 0; k < kc; k++) {
        __m512 x = _mm512_loadu_ps(b + k * XG_GEMM_NP);
        for (int r = 0; r < XG_GEMM_MR; r++)
            c[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[k * XG_GEMM_MR + r]), x, c[r]);
    }
    for (int r = 0; r < XG_GEMM_MR; r++) _mm512_storeu_ps(tile + r * XG_GEMM_NR, c[r]);
#endif
}

/* Up to XG_GEMM_FEW_COLS columns of a tile from one B panel (its first ones): per k, one 8-row
 * vector of the A panel times each column's B value. Columns past the last vector-wide tile cost
 * this a few 8-wide multiply-adds per k instead of a whole 16-wide microkernel's eight. Always
 * computes XG_GEMM_FEW_COLS columns (the B panel is zero-padded) and stores `cols` of them. */
#define XG_GEMM_FEW_COLS 4
typedef float xg_panel_column __attribute__((vector_size(XG_GEMM_MR * sizeof(float))));
static void xg_ukr_few_columns(long kc, const float *a, const float *b, int cols, float *tile)
{
    xg_panel_column acc[XG_GEMM_FEW_COLS] = {{0}};
    for (long k = 0; k < kc; k++) {
        xg_panel_column ak;
        memcpy(&ak, a + k * XG_GEMM_MR, sizeof ak); /* packed A is float-aligned only */
        for (int j = 0; j < XG_GEMM_FEW_COLS; j++) acc[j] += ak * b[k * XG_GEMM_NP + j];
    }
    for (int j = 0; j < cols; j++)
        for (int r = 0; r < XG_GEMM_MR; r++) tile[r * XG_GEMM_NR + j] = acc[j][r];
}

/* tile = the product of an A panel and the nr (<= XG_GEMM_NR) columns of B from the panel at b
 * (the next panel bps floats further), over kc: the widest microkernel for the full tiles, and
 * for the last one, whatever covers its columns with the least padding computed. */
static void xg_tile_product(long kc, const float *a, const float *b, long bps, long nr,
                            float *tile)
{
    if (nr > XG_GEMM_NP + XG_GEMM_FEW_COLS || (nr > XG_GEMM_FEW_COLS && XG_GEMM_NR == XG_GEMM_NP)) {
        xg_ukr(kc, a, b, bps, tile);
    } else if (nr > XG_GEMM_NP) {
        xg_ukr_narrow(kc, a, b, tile);
        xg_ukr_few_columns(kc, a, b + bps, (int)(nr - XG_GEMM_NP), tile + XG_GEMM_NP);
    } else if (nr > XG_GEMM_FEW_COLS) {
        xg_ukr_narrow(kc, a, b, tile);
    } else {
        xg_ukr_few_columns(kc, a, b, (int)nr, tile);
    }
}

/* C[m0..m0+mr)[n0..n0+nr) = epilogue(alpha * tile + beta * C), each row finished in one pass while
 * it is in L1; ep is NULL except in the last K block. beta == 0 never reads C (it may be
 * uninitialised). */
static inline void xg_gemm_store(const float *tile, float *C, long ldc, long m0, long n0, long mr,
                                 long nr, float alpha, float beta, const xg_epilogue *ep)
{
    static const float zeros[XG_GEMM_NR]; /* stands in for an absent bias or residual */
    for (long r = 0; r < mr; r++) {
        const float *t = tile + r * XG_GEMM_NR;
        float *cr = C + (m0 + r) * ldc + n0;
        if (!ep) {
            if (beta == 0.0f)
                for (long j = 0; j < nr; j++) cr[j] = alpha * t[j];
            else
                for (long j = 0; j < nr; j++) cr[j] = alpha * t[j] + beta * cr[j];
            continue;
        }
        /* Branch-free: missing parts add zeros, a missing clamp is [-inf, inf] (NaN kept). */
        float rb = ep->row_bias ? ep->row_bias[m0 + r] : 0.0f;
        const float *cb = ep->col_bias ? ep->col_bias + n0 : zeros;
        const float *res = ep->res ? ep->res + (m0 + r) * ldc + n0 : zeros;
        float lo = ep->clamp ? ep->lo : -INFINITY, hi = ep->clamp ? ep->hi : INFINITY;
        for (long j = 0; j < nr; j++) {
            float v = alpha * t[j];
            if (beta != 0.0f) v += beta * cr[j];
            v = v + rb + cb[j] + res[j];
            v = v < lo ? lo : v;
            cr[j] = v > hi ? hi : v;
        }
        xg_gelu_row(ep->gelu, cr, nr);
    }
}

/* ---- packing ------------------------------------------------------------------------------ */

/* Panel p of A (rows p*MR..) over K block [k0, k0+kc): element (m, k) is A[m*rsa + k*csa].
 * Row by row, so that a row-major A is read contiguously; rows past M are zeros. */
static void xg_pack_a_panel(long M, long kc, long k0, const float *A, long rsa, long csa,
                            long p, float *dst)
{
    long m0 = p * XG_GEMM_MR;
    for (long r = 0; r < XG_GEMM_MR; r++) {
        const float *row = A + (m0 + r) * rsa + k0 * csa;
        if (m0 + r >= M)
            for (long k = 0; k < kc; k++) dst[k * XG_GEMM_MR + r] = 0.0f;
        else if (csa == 1)
            for (long k = 0; k < kc; k++) dst[k * XG_GEMM_MR + r] = row[k];
        else
            for (long k = 0; k < kc; k++) dst[k * XG_GEMM_MR + r] = row[k * csa];
    }
}

/* One row of a B panel: a fixed-size loop the compiler turns into vector moves (a memcpy call of
 * 64 bytes costs more than the copy). */
XG_INLINE void xg_copy_panel_row(float *XG_RESTRICT dst, const float *XG_RESTRICT src)
{
    for (int j = 0; j < XG_GEMM_NP; j++) dst[j] = src[j];
}

/* Panel p of B (columns p*NP..) over K block [k0, k0+kc): element (k, n) is B[k*rsb + n*csb]. */
static void xg_pack_b_panel(long N, long kc, long k0, const float *B, long rsb, long csb,
                            long p, float *dst)
{
    long n0 = p * XG_GEMM_NP, w = N - n0 < XG_GEMM_NP ? N - n0 : XG_GEMM_NP;
    if (rsb == 1 && csb != 1) { /* B read transposed (attention's K): each column is one run */
        for (long j = 0; j < w; j++) {
            const float *col = B + k0 + (n0 + j) * csb;
            for (long k = 0; k < kc; k++) dst[k * XG_GEMM_NP + j] = col[k];
        }
        for (long j = w; j < XG_GEMM_NP; j++)
            for (long k = 0; k < kc; k++) dst[k * XG_GEMM_NP + j] = 0.0f;
        return;
    }
    for (long k = 0; k < kc; k++) {
        const float *src = B + (k0 + k) * rsb + n0 * csb;
        float *d = dst + k * XG_GEMM_NP;
        if (csb == 1 && w == XG_GEMM_NP) {
            xg_copy_panel_row(d, src);
            continue;
        }
        if (csb == 1) {
            memcpy(d, src, (size_t)w * sizeof(float));
        } else {
            for (long j = 0; j < w; j++) d[j] = src[j * csb];
        }
        for (long j = w; j < XG_GEMM_NP; j++) d[j] = 0.0f;
    }
}

/* Floats of work memory xg_sgemm needs at most (mirrored by lower_gemm.gemm_work_floats). */
static inline long xg_sgemm_work_floats(long M, long N, long K)
{
    long kc = K < XG_GEMM_KC ? K : XG_GEMM_KC;
    return kc * (xg_round_up(N, XG_GEMM_NR) + xg_round_up(M, XG_GEMM_MR));
}

/* ---- blocking and threads ---------------------------------------------------------------- */

/* C[M][N] (row stride ldc) = epilogue(alpha * A @ B + beta * C); ep may be NULL (none), its
 * residual has row stride ldc too. Each operand is either packed at compile time (Ap / Bp != NULL,
 * layouts above) or strided (A, rsa, csa / B, rsb, csb). work holds xg_sgemm_work_floats(M, N, K)
 * floats. Called by the whole team: the output tiles are split evenly and each thread keeps the
 * same tiles through every K block, so with both operands packed the threads never wait for
 * each other; an operand packed at run time costs two barriers per K block. */
static void xg_sgemm(long M, long N, long K, float alpha, const float *Ap, const float *A,
                     long rsa, long csa, const float *Bp, const float *B, long rsb, long csb,
                     float beta, float *C, long ldc, const xg_epilogue *ep, float *work)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* empty sum */
        xg_range rows = xg_share(M, M * N);
        for (long m = rows.lo; m < rows.hi; m++) {
            float *cm = C + m * ldc;
            for (long n = 0; n < N; n++) cm[n] = beta == 0.0f ? 0.0f : beta * cm[n];
            xg_epilogue_row(ep, m, 0, N, ldc, cm);
        }
        return;
    }
    /* a multiply-add costs less than the streamed element XG_PARALLEL_MIN counts */
    long kcmax = K < XG_GEMM_KC ? K : XG_GEMM_KC, cost = M * N * K / 2;
    long Mp = xg_round_up(M, XG_GEMM_MR), Np = xg_round_up(N, XG_GEMM_NR);
    long a_panels = Mp / XG_GEMM_MR, b_panels = xg_round_up(N, XG_GEMM_NP) / XG_GEMM_NP;
    long n_tiles = Np / XG_GEMM_NR, mc = XG_GEMM_MC;
    /* Row blocks of MC rows, or fewer when that leaves too few tiles to balance the team. */
    long min_tiles = XG_GEMM_TILES_PER_THREAD * xg_team_size();
    while (mc > XG_GEMM_MR && (M + mc - 1) / mc * n_tiles < min_tiles) mc /= 2;
    long m_blocks = (M + mc - 1) / mc;
    float *bpack = work, *apack = work + kcmax * Np;
    /* Tiles in (row block, column tile) order: a thread's contiguous share reuses its MC x kc
     * block of A from L2 across many B tiles. */
    xg_range tiles = xg_share(m_blocks * n_tiles, cost);
    int packing = !Ap || !Bp;

    for (long k0 = 0; k0 < K; k0 += XG_GEMM_KC) {
        long kc = K - k0 < XG_GEMM_KC ? K - k0 : XG_GEMM_KC;
        float beta_k = k0 == 0 ? beta : 1.0f;
        const xg_epilogue *ep_k = k0 + kc == K ? ep : NULL;
        const float *ablock = Ap ? Ap + Mp * k0 : apack;
        const float *bblock = Bp ? Bp + b_panels * XG_GEMM_NP * k0 : bpack;
        if (!Bp) {
            xg_range panels = xg_share(b_panels, cost);
            for (long p = panels.lo; p < panels.hi; p++)
                xg_pack_b_panel(N, kc, k0, B, rsb, csb, p, bpack + p * kc * XG_GEMM_NP);
        }
        if (!Ap) {
            xg_range panels = xg_share(a_panels, cost);
            for (long p = panels.lo; p < panels.hi; p++)
                xg_pack_a_panel(M, kc, k0, A, rsa, csa, p, apack + p * kc * XG_GEMM_MR);
        }
        if (packing) xg_barrier();
        for (long i = tiles.lo; i < tiles.hi; i++) {
            long mb = i / n_tiles, t = i % n_tiles;
            float tile[XG_GEMM_MR * XG_GEMM_NR] __attribute__((aligned(64)));
            long n0 = t * XG_GEMM_NR, nr = N - n0 < XG_GEMM_NR ? N - n0 : XG_GEMM_NR;
            const float *bp = bblock + (n0 / XG_GEMM_NP) * kc * XG_GEMM_NP;
            long m_end = (mb + 1) * mc < M ? (mb + 1) * mc : M;
            for (long m0 = mb * mc; m0 < m_end; m0 += XG_GEMM_MR) {
                const float *ap = ablock + (m0 / XG_GEMM_MR) * kc * XG_GEMM_MR;
                xg_tile_product(kc, ap, bp, kc * XG_GEMM_NP, nr, tile);
                long mr = M - m0 < XG_GEMM_MR ? M - m0 : XG_GEMM_MR;
                xg_gemm_store(tile, C, ldc, m0, n0, mr, nr, alpha, beta_k, ep_k);
            }
        }
        if (packing) xg_barrier(); /* the packed buffers are refilled for the next K block */
    }
}

/* ---- batches of small products ------------------------------------------------------------ */

/* Floats of work memory xg_sgemm_batched needs (mirrored by lower_gemm.batched_work_floats). */
static inline long xg_sgemm_batched_work_floats(long batch, long M, long N, long K)
{
    return batch * K * (xg_round_up(N, XG_GEMM_NR) + xg_round_up(M, XG_GEMM_MR));
}

/* C_i = A_i @ B_i for i < batch, each [M][K] @ [K][N] with K <= XG_GEMM_KC (one K block), C_i
 * dense at C + i*M*N, A_i at A + a_off[i] with strides rsa, csa, B_i at B + b_off[i] with rsb,
 * csb: the products of attention heads. Looping xg_sgemm over them would make the team wait
 * twice per product; here every operand of every product is packed first, then the team waits
 * once and shares all the tiles. work: xg_sgemm_batched_work_floats(batch, M, N, K) floats. */
static void xg_sgemm_batched(long batch, long M, long N, long K, const float *A,
                             const long *a_off, long rsa, long csa, const float *B,
                             const long *b_off, long rsb, long csb, float *C, float *work)
{
    long Mp = xg_round_up(M, XG_GEMM_MR), Np = xg_round_up(N, XG_GEMM_NR);
    long a_panels = Mp / XG_GEMM_MR, b_panels = xg_round_up(N, XG_GEMM_NP) / XG_GEMM_NP;
    long n_tiles = Np / XG_GEMM_NR, per_product = K * (Np + Mp), cost = batch * M * N * K / 2;
    xg_range packs = xg_share(batch * (a_panels + b_panels), cost);
    for (long u = packs.lo; u < packs.hi; u++) {
        long i = u / (a_panels + b_panels), p = u % (a_panels + b_panels);
        float *bpack = work + i * per_product, *apack = bpack + K * Np;
        if (p < b_panels)
            xg_pack_b_panel(N, K, 0, B + b_off[i], rsb, csb, p, bpack + p * K * XG_GEMM_NP);
        else
            xg_pack_a_panel(M, K, 0, A + a_off[i], rsa, csa, p - b_panels,
                            apack + (p - b_panels) * K * XG_GEMM_MR);
    }
    xg_barrier();
    /* units in (product, column tile, row panel) order: consecutive ones share a B panel */
    xg_range units = xg_share(batch * n_tiles * a_panels, cost);
    for (long u = units.lo; u < units.hi; u++) {
        long i = u / (n_tiles * a_panels), t = u / a_panels % n_tiles, p = u % a_panels;
        float tile[XG_GEMM_MR * XG_GEMM_NR] __attribute__((aligned(64)));
        long n0 = t * XG_GEMM_NR, nr = XG_MIN(N - n0, XG_GEMM_NR);
        const float *bp = work + i * per_product + (n0 / XG_GEMM_NP) * K * XG_GEMM_NP;
        const float *ap = work + i * per_product + K * Np + p * K * XG_GEMM_MR;
        long m0 = p * XG_GEMM_MR, mr = XG_MIN(M - m0, XG_GEMM_MR);
        xg_tile_product(K, ap, bp, K * XG_GEMM_NP, nr, tile);
        xg_gemm_store(tile, C + i * M * N, N, m0, n0, mr, nr, 1.0f, 0.0f, NULL);
    }
}

/* C[m][n] = beta * c[m*rs + n*cs] (strides 0 broadcast): Gemm's C input, before C += A @ B.
 * The caller separates it from the product with xg_barrier. */
static void xg_gemm_fill(float *C, long M, long N, const float *c, long rs, long cs, float beta)
{
    xg_range rows = xg_share(M, M * N);
    for (long m = rows.lo; m < rows.hi; m++)
        for (long n = 0; n < N; n++) C[m * N + n] = beta * c[m * rs + n * cs];
}

#endif /* XG_GEMM_H */

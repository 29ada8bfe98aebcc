/* Scalar helpers of the elementwise ops: small inline functions the generated loops call per
 * element, written so that NaN propagates as in numpy (comparisons, not fminf/fmaxf).
 *
 * expf, erff and tanhf come in plain arithmetic (xg_expf, xg_erff, xg_tanhf): libm's calls stop
 * the compiler vectorising a loop (without -ffast-math), these inline into 16-wide AVX-512 code.
 * Each is within a few float ulps of libm (tests/ops/test_elementwise.py checks them against
 * onnxruntime on a dense grid); branches are selects, so a loop over them has no jumps. */
#ifndef XGEN_ELEMENTWISE_H
#define XGEN_ELEMENTWISE_H

#include "common.h"

/* x clamped to [lo, hi]; NaN stays NaN. */
XG_INLINE float xg_clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* numpy.maximum / numpy.minimum: NaN in either operand gives NaN. */
XG_INLINE float xg_maxf(float a, float b) { return (a != a || a > b) ? a : b; }
XG_INLINE float xg_minf(float a, float b) { return (a != a || a < b) ? a : b; }

/* e^x = 2^k * e^r, k = round(x / ln 2), |r| <= ln2 / 2, e^r by its Taylor polynomial to degree 7
 * (relative error about 2e-7). Below -87.3 the result is 0 (flushing denormals, so that a masked
 * -inf logit gets exactly 0 in softmax); above 88.7 it stays at e^88.7, finite, so this suits
 * softmax and sigmoid but not Exp itself (which keeps libm's overflow to inf). */
XG_INLINE float xg_expf(float x)
{
    int underflow = x < -87.3f;
    x = underflow ? -87.3f : (x > 88.7f ? 88.7f : x);
    float k = __builtin_rintf(x * 1.44269504f); /* one instruction; roundf is a libm call */
    float r = x - k * 0.693145752f - k * 1.42860677e-6f; /* ln 2 split in two: exact k*hi */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { float f; int32_t i; } scale = {.i = ((int32_t)k + 127) << 23};
    return underflow ? 0.0f : p * scale.f;
}

/* erf as x * P(x^2) / Q(x^2) (degrees 6 and 4, Q(0) = 1), a least-squares fit of the relative
 * error on [0, 3.925], past which erf rounds to 1.0f: within 4e-7 relative (7 float ulps) after
 * float rounding. One division and no exp: half the work of a polynomial per range plus an exp,
 * which matters where GELU follows every element of a transformer's feed-forward layer. */
XG_INLINE float xg_erff(float x)
{
    x = xg_clampf(x, -3.925f, 3.925f); /* NaN stays NaN */
    float t = x * x;
    float p = 2.0119476e-08f;
    p = p * t - 1.9501983e-06f;
    p = p * t + 1.3825424e-04f;
    p = p * t + 3.5425066e-03f;
    p = p * t + 5.0063241e-02f;
    p = p * t + 1.9613838e-01f;
    p = p * t + 1.1283791f;
    float q = 9.1824093e-04f;
    q = q * t + 1.4027126e-02f;
    q = q * t + 1.1342594e-01f;
    q = q * t + 5.0715530e-01f;
    q = q * t + 1.0f;
    return xg_clampf(x * p / q, -1.0f, 1.0f);
}

/* tanh as the ratio of odd and even polynomials of Eigen's fast tanh: no exp, one division,
 * within 7 float ulps (4e-7 relative) everywhere; x is clamped where the ratio reaches 1.0f. */
XG_INLINE float xg_tanhf(float x)
{
    x = xg_clampf(x, -7.90531110f, 7.90531110f); /* NaN stays NaN */
    float t = x * x;
    float p = -2.76076847742355e-16f;
    p = p * t + 2.00018790482477e-13f;
    p = p * t - 8.60467152213735e-11f;
    p = p * t + 5.12229709037114e-08f;
    p = p * t + 1.48572235717979e-05f;
    p = p * t + 6.37261928875436e-04f;
    p = p * t + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * t + 1.18534705686654e-04f;
    q = q * t + 2.26843463243900e-03f;
    q = q * t + 4.89352518554385e-03f;
    return x * p / q;
}

XG_INLINE float xg_sigmoidf(float x) { return 1.0f / (1.0f + xg_expf(-x)); }

/* log(1 + exp(x)) without overflow for large x. */
XG_INLINE float xg_softplusf(float x) {
    return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
}

XG_INLINE float xg_gelu_erff(float x) { return 0.5f * x * (1.0f + xg_erff(x * 0.70710678118654752f)); }

XG_INLINE float xg_gelu_tanhf(float x) {
    const float k = 0.79788456080286536f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + xg_tanhf(k * (x + 0.044715f * x * x * x)));
}

XG_INLINE float xg_hard_swishf(float x) { return x * xg_clampf(x / 6.0f + 0.5f, 0.0f, 1.0f); }

/* Python's float modulo: the result takes the sign of the divisor (ONNX Mod with fmod=0). */
XG_INLINE float xg_pymodf(float a, float b) {
    float r = fmodf(a, b);
    return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r;
}

/* float -> integer truncates toward zero. C leaves NaN and values out of the type's range
 * undefined: they give its lowest value, as x86's conversion does (and so numpy's and
 * onnxruntime's there). Casts to int8 and uint8 take the low bits of xg_float_to_i64. */
XG_INLINE int32_t xg_float_to_i32(float x) {
    return x >= -2147483648.0f && x < 2147483648.0f ? (int32_t)x : INT32_MIN;
}
XG_INLINE int64_t xg_float_to_i64(float x) {
    return x >= -9223372036854775808.0f && x < 9223372036854775808.0f ? (int64_t)x : INT64_MIN;
}

/* x < 0 for T signed or not: `x < 0` on an unsigned T would warn (-Wtype-limits). */
#define XG_NEGATIVE(T, U, x) ((T)-1 < 0 && ((U)(x) >> (8 * sizeof(T) - 1)))

/* Integer arithmetic, defined for every input as numpy defines it: results wrap modulo 2^bits
 * (signed overflow is undefined in C, so +, -, * and negation go through the unsigned type U);
 * the lowest value divided by -1 wraps to itself and leaves remainder 0 (x86's idiv would trap).
 * A zero divisor gives 0 here; the lowering turns it into an error of the run, as onnxruntime
 * raises "Integer division by zero". Types narrower than int are promoted and never overflow. */
#define XG_DEFINE_INT_HELPERS(T, S, U)                                                         \
    XG_INLINE T xg_add_##S(T a, T b) { return (T)((U)a + (U)b); }                              \
    XG_INLINE T xg_sub_##S(T a, T b) { return (T)((U)a - (U)b); }                              \
    XG_INLINE T xg_mul_##S(T a, T b) { return (T)((U)a * (U)b); }                              \
    XG_INLINE T xg_neg_##S(T a) { return (T)((U)0 - (U)a); }                                   \
    XG_INLINE T xg_div_##S(T a, T b) {                                                         \
        return b == 0 ? 0 : ((T)-1 < 0 && b == (T)-1) ? xg_neg_##S(a) : (T)(a / b);            \
    }                                                                                          \
    XG_INLINE T xg_fmod_##S(T a, T b) {                                                        \
        return (b == 0 || ((T)-1 < 0 && b == (T)-1)) ? 0 : (T)(a % b);                         \
    }                                                                                          \
    XG_INLINE T xg_pymod_##S(T a, T b) {                                                       \
        T r = xg_fmod_##S(a, b);                                                               \
        return (r != 0 && XG_NEGATIVE(T, U, r) != XG_NEGATIVE(T, U, b)) ? (T)(r + b) : r;      \
    }                                                                                          \
    /* a ** b by squaring; negative exponents give 0 (|a| > 1), like integer truncation. */  \
    XG_INLINE T xg_pow_##S(T a, T b) {                                                         \
        if (XG_NEGATIVE(T, U, b))                                                              \
            return a == 1 ? 1 : (a == (T)-1 ? ((b & 1) ? (T)-1 : 1) : 0);                      \
        T r = 1;                                                                               \
        while (b) {                                                                            \
            if (b & 1) r = xg_mul_##S(r, a);                                                   \
            a = xg_mul_##S(a, a);                                                              \
            b >>= 1;                                                                           \
        }                                                                                      \
        return r;                                                                              \
    }

XG_DEFINE_INT_HELPERS(int64_t, i64, uint64_t)
XG_DEFINE_INT_HELPERS(int32_t, i32, uint32_t)
XG_DEFINE_INT_HELPERS(int8_t, i8, uint8_t)
XG_DEFINE_INT_HELPERS(uint8_t, u8, uint8_t)

#endif /* XGEN_ELEMENTWISE_H */

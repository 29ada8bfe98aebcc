/* Scalar helpers of the elementwise ops: small inline functions the generated loops call per
 * element, written so that NaN propagates as in numpy (comparisons, not fminf/fmaxf). */
#ifndef XGEN_ELEMENTWISE_H
#define XGEN_ELEMENTWISE_H

/* x clamped to [lo, hi]; NaN stays NaN. */
XG_INLINE float xg_clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* numpy.maximum / numpy.minimum: NaN in either operand gives NaN. */
XG_INLINE float xg_maxf(float a, float b) { return (a != a || a > b) ? a : b; }
XG_INLINE float xg_minf(float a, float b) { return (a != a || a < b) ? a : b; }

XG_INLINE float xg_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* log(1 + exp(x)) without overflow for large x. */
XG_INLINE float xg_softplusf(float x) {
    return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
}

XG_INLINE float xg_gelu_erff(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

XG_INLINE float xg_gelu_tanhf(float x) {
    const float k = 0.79788456080286536f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

XG_INLINE float xg_hard_swishf(float x) { return x * xg_clampf(x / 6.0f + 0.5f, 0.0f, 1.0f); }

/* Python's float modulo: the result takes the sign of the divisor (ONNX Mod with fmod=0). */
XG_INLINE float xg_pymodf(float a, float b) {
    float r = fmodf(a, b);
    return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r;
}

/* Integer division and modulo by zero are undefined in C (a crash on x86); numpy gives 0. */
#define XG_DEFINE_INT_HELPERS(T, S)                                                            \
    XG_INLINE T xg_div_##S(T a, T b) { return b == 0 ? 0 : (T)(a / b); }                       \
    XG_INLINE T xg_fmod_##S(T a, T b) { return b == 0 ? 0 : (T)(a % b); }                      \
    XG_INLINE T xg_pymod_##S(T a, T b) {                                                       \
        if (b == 0) return 0;                                                                  \
        T r = (T)(a % b);                                                                      \
        return (r != 0 && ((r < 0) != (b < 0))) ? (T)(r + b) : r;                              \
    }                                                                                          \
    /* a ** b by squaring; negative exponents give 0 (|a| > 1), like integer truncation. */  \
    XG_INLINE T xg_pow_##S(T a, T b) {                                                         \
        if (b < 0) return a == 1 ? 1 : (a == (T)-1 ? ((b & 1) ? (T)-1 : 1) : 0);               \
        T r = 1;                                                                               \
        while (b) {                                                                            \
            if (b & 1) r = (T)(r * a);                                                         \
            a = (T)(a * a);                                                                    \
            b >>= 1;                                                                           \
        }                                                                                      \
        return r;                                                                              \
    }

XG_DEFINE_INT_HELPERS(int64_t, i64)
XG_DEFINE_INT_HELPERS(int32_t, i32)
XG_DEFINE_INT_HELPERS(int8_t, i8)
XG_DEFINE_INT_HELPERS(uint8_t, u8)

#endif /* XGEN_ELEMENTWISE_H */

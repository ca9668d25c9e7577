/* vec_math.h — e^x, SiLU and GELU in the vec.h vocabulary, for every CPU plugin (the plugin's isa/vec.h comes from the include path). */
#ifndef APR_SIMD_VEC_MATH_H
#define APR_SIMD_VEC_MATH_H

#include "vec.h"

/* e^x, ~1 ulp on the normal range (Cephes polynomial). Below -87.3 (results that would be
 * subnormal) gives 0, above 88.72 gives +inf, NaN stays NaN; -inf gives 0 as softmax needs. */
static inline vec_t vec_exp(vec_t x) {
    vec_t xc = vec_min(vec_max(x, vec_set1(-87.0f)), vec_set1(88.72f));
    vec_t n = vec_round(vec_mul(xc, vec_set1(1.44269504088896341f)));
    vec_t r = vec_fma(n, vec_set1(-0.693359375f), xc);
    r = vec_fma(n, vec_set1(2.12194440e-4f), r);
    vec_t p = vec_set1(1.9875691500e-4f);
    p = vec_fma(p, r, vec_set1(1.3981999507e-3f));
    p = vec_fma(p, r, vec_set1(8.3334519073e-3f));
    p = vec_fma(p, r, vec_set1(4.1665795894e-2f));
    p = vec_fma(p, r, vec_set1(1.6666665459e-1f));
    p = vec_fma(p, r, vec_set1(5.0000001201e-1f));
    p = vec_fma(p, vec_mul(r, r), vec_add(r, vec_set1(1.0f)));
    /* 2^n split as 2^(n-1) * 2 so n = 128 (x near 88.7) does not overflow the exponent field */
    vec_t y = vec_mul(vec_mul(p, vec_pow2m1(n)), vec_set1(2.0f));
    y = vec_sel_gt(x, vec_set1(88.72f), vec_set1(__builtin_inff()), y);
    y = vec_sel_lt(x, vec_set1(-87.33f), vec_zero(), y);
    return vec_sel_nan(x, x, y);
}

/* x / (1 + e^-x) */
static inline vec_t vec_silu(vec_t x) {
    return vec_div(x, vec_add(vec_set1(1.0f), vec_exp(vec_sub(vec_zero(), x))));
}

/* 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3); 1 + tanh(u) = 2 - 2 / (1 + e^(2u)). */
static inline vec_t vec_gelu(vec_t x) {
    vec_t x3 = vec_mul(vec_mul(x, x), x);
    vec_t u2 = vec_mul(vec_set1(2.0f * 0.7978845608028654f), vec_fma(x3, vec_set1(0.044715f), x));
    vec_t e = vec_exp(u2);
    vec_t t = vec_sub(vec_set1(2.0f), vec_div(vec_set1(2.0f), vec_add(vec_set1(1.0f), e)));
    return vec_mul(vec_mul(vec_set1(0.5f), x), t);
}

#endif

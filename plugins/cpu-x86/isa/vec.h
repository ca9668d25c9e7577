/* vec.h — one vector vocabulary for every kernel: VEC_W floats per register, AVX2 or AVX-512 by APR_X86_LEVEL. */
#ifndef APR_X86_VEC_H
#define APR_X86_VEC_H

/* Only kernel files include this (isa/ and the shared ../../simd/, which finds it on the include
 * path): they are the only ones compiled with ISA flags, and they run only after the probe has
 * checked the CPU and the OS. Level 2 = AVX2+FMA+F16C (ymm, 8 floats), level 3 = AVX-512 F/BW/VL
 * (zmm, 16 floats). Kernels are written once against these names; cpu-neon's isa/vec.h has the
 * same ones, and ../../simd/vec_math.h builds e^x, SiLU and GELU from them. */

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#ifndef APR_X86_LEVEL
#error "APR_X86_LEVEL must be 2 (avx2) or 3 (avx512)"
#endif

#if APR_X86_LEVEL >= 3
/* ---------------------------------------------------------------- AVX-512 */
#define VEC_W 16
typedef __m512 vec_t;
static inline vec_t vec_zero(void) { return _mm512_setzero_ps(); }
static inline vec_t vec_set1(float f) { return _mm512_set1_ps(f); }
static inline vec_t vec_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void vec_store(float *p, vec_t v) { _mm512_storeu_ps(p, v); }
static inline __mmask16 vec_tailmask(int n) { return (__mmask16)((1u << n) - 1u); }
/* n in [0, VEC_W): loads zeros past n, stores nothing past n (no access beyond the row). */
static inline vec_t vec_loadn(const float *p, int n) { return _mm512_maskz_loadu_ps(vec_tailmask(n), p); }
static inline void vec_storen(float *p, vec_t v, int n) { _mm512_mask_storeu_ps(p, vec_tailmask(n), v); }
static inline vec_t vec_add(vec_t a, vec_t b) { return _mm512_add_ps(a, b); }
static inline vec_t vec_sub(vec_t a, vec_t b) { return _mm512_sub_ps(a, b); }
static inline vec_t vec_mul(vec_t a, vec_t b) { return _mm512_mul_ps(a, b); }
static inline vec_t vec_div(vec_t a, vec_t b) { return _mm512_div_ps(a, b); }
static inline vec_t vec_sqrt(vec_t a) { return _mm512_sqrt_ps(a); }
static inline vec_t vec_fma(vec_t a, vec_t b, vec_t c) { return _mm512_fmadd_ps(a, b, c); }
/* max/min return the second operand when either is NaN: pass the accumulator second to skip NaNs. */
static inline vec_t vec_max(vec_t a, vec_t b) { return _mm512_max_ps(a, b); }
static inline vec_t vec_min(vec_t a, vec_t b) { return _mm512_min_ps(a, b); }
static inline float vec_hsum(vec_t v) {
    __m256 s = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}
static inline float vec_hmax(vec_t v) { return _mm512_reduce_max_ps(v); }
/* 16 halves / bf16 values to 16 floats. */
static inline vec_t vec_load_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline vec_t vec_load_bf16(const uint16_t *p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline vec_t vec_loadn_f16(const uint16_t *p, int n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(vec_tailmask(n), p));
}
static inline vec_t vec_loadn_bf16(const uint16_t *p, int n) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(vec_tailmask(n), p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline __m256i vec_to_f16_bits(vec_t v) { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline void vec_storen_f16(uint16_t *p, vec_t v, int n) { _mm256_mask_storeu_epi16(p, vec_tailmask(n), vec_to_f16_bits(v)); }
static inline void vec_store_f16(uint16_t *p, vec_t v) { _mm256_storeu_si256((__m256i *)p, vec_to_f16_bits(v)); }
/* f32 -> bf16 rounding to nearest even; NaN stays a quiet NaN (as apr_f32_to_bf16). */
static inline __m256i vec_to_bf16_bits(vec_t v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    r = _mm512_mask_blend_epi32(nan, r, q);
    return _mm512_cvtepi32_epi16(r);
}
static inline void vec_store_bf16(uint16_t *p, vec_t v) { _mm256_storeu_si256((__m256i *)p, vec_to_bf16_bits(v)); }
static inline void vec_storen_bf16(uint16_t *p, vec_t v, int n) { _mm256_mask_storeu_epi16(p, vec_tailmask(n), vec_to_bf16_bits(v)); }
/* (x0,x1,x2,x3,...) -> (x1,x0,x3,x2,...): the partner of each element in an adjacent pair. */
static inline vec_t vec_swap_pairs(vec_t v) { return _mm512_permute_ps(v, 0xB1); }
static inline vec_t vec_sel_gt(vec_t a, vec_t b, vec_t t, vec_t f) { /* a > b ? t : f */
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), f, t);
}
static inline vec_t vec_sel_lt(vec_t a, vec_t b, vec_t t, vec_t f) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), f, t);
}
static inline vec_t vec_sel_nan(vec_t a, vec_t t, vec_t f) { /* isnan(a) ? t : f */
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), f, t);
}
static inline vec_t vec_round(vec_t v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* 2^(n-1) for integral n in [-125, 128], as a float. */
static inline vec_t vec_pow2m1(vec_t n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(126)), 23));
}

#else
/* ---------------------------------------------------------------- AVX2 + FMA + F16C */
#define VEC_W 8
typedef __m256 vec_t;
static inline vec_t vec_zero(void) { return _mm256_setzero_ps(); }
static inline vec_t vec_set1(float f) { return _mm256_set1_ps(f); }
static inline vec_t vec_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vec_store(float *p, vec_t v) { _mm256_storeu_ps(p, v); }
static inline __m256i vec_tailmask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline vec_t vec_loadn(const float *p, int n) { return _mm256_maskload_ps(p, vec_tailmask(n)); }
static inline void vec_storen(float *p, vec_t v, int n) { _mm256_maskstore_ps(p, vec_tailmask(n), v); }
static inline vec_t vec_add(vec_t a, vec_t b) { return _mm256_add_ps(a, b); }
static inline vec_t vec_sub(vec_t a, vec_t b) { return _mm256_sub_ps(a, b); }
static inline vec_t vec_mul(vec_t a, vec_t b) { return _mm256_mul_ps(a, b); }
static inline vec_t vec_div(vec_t a, vec_t b) { return _mm256_div_ps(a, b); }
static inline vec_t vec_sqrt(vec_t a) { return _mm256_sqrt_ps(a); }
static inline vec_t vec_fma(vec_t a, vec_t b, vec_t c) { return _mm256_fmadd_ps(a, b, c); }
static inline vec_t vec_max(vec_t a, vec_t b) { return _mm256_max_ps(a, b); }
static inline vec_t vec_min(vec_t a, vec_t b) { return _mm256_min_ps(a, b); }
static inline float vec_hsum(vec_t v) {
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}
static inline float vec_hmax(vec_t v) {
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    q = _mm_max_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}
static inline vec_t vec_load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline vec_t vec_load_bf16(const uint16_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline vec_t vec_loadn_f16(const uint16_t *p, int n) {
    uint16_t t[8] = {0};
    memcpy(t, p, (size_t)n * 2);
    return vec_load_f16(t);
}
static inline vec_t vec_loadn_bf16(const uint16_t *p, int n) {
    uint16_t t[8] = {0};
    memcpy(t, p, (size_t)n * 2);
    return vec_load_bf16(t);
}
static inline __m128i vec_to_f16_bits(vec_t v) { return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline void vec_store_f16(uint16_t *p, vec_t v) { _mm_storeu_si128((__m128i *)p, vec_to_f16_bits(v)); }
static inline void vec_storen_f16(uint16_t *p, vec_t v, int n) {
    uint16_t t[8];
    vec_store_f16(t, v);
    memcpy(p, t, (size_t)n * 2);
}
static inline __m128i vec_to_bf16_bits(vec_t v) {
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, q, nan);
    /* values are < 0x10000: packus keeps them; it interleaves 128-bit lanes, so fix the order */
    __m256i p = _mm256_packus_epi32(r, r);
    p = _mm256_permute4x64_epi64(p, 0x08);
    return _mm256_castsi256_si128(p);
}
static inline void vec_store_bf16(uint16_t *p, vec_t v) { _mm_storeu_si128((__m128i *)p, vec_to_bf16_bits(v)); }
static inline void vec_storen_bf16(uint16_t *p, vec_t v, int n) {
    uint16_t t[8];
    vec_store_bf16(t, v);
    memcpy(p, t, (size_t)n * 2);
}
static inline vec_t vec_swap_pairs(vec_t v) { return _mm256_permute_ps(v, 0xB1); }
static inline vec_t vec_sel_gt(vec_t a, vec_t b, vec_t t, vec_t f) { return _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
static inline vec_t vec_sel_lt(vec_t a, vec_t b, vec_t t, vec_t f) { return _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
static inline vec_t vec_sel_nan(vec_t a, vec_t t, vec_t f) { return _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }
static inline vec_t vec_round(vec_t v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vec_t vec_pow2m1(vec_t n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(126)), 23));
}
#endif

#endif /* APR_X86_VEC_H */

/* vec.h — one vector vocabulary for every cpu-neon kernel: VEC_W = 4 floats per 128-bit NEON register. */
#ifndef APR_NEON_VEC_H
#define APR_NEON_VEC_H

/* The same names as cpu-x86's vec.h, so the kernels in ../../simd/ (which find this file on the
 * include path; e^x, SiLU and GELU in ../../simd/vec_math.h) are one source for both. Everything
 * here is base AArch64 Advanced SIMD (armv8-a): f16 <-> f32 conversions (FCVTL/FCVTN) included, so
 * these run on any CPU whose HWCAP says asimd. The dotprod and i8mm kernels live in qdot.c with
 * their own target attributes. */

#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#define VEC_W 4
typedef float32x4_t vec_t;

static inline vec_t vec_zero(void) { return vdupq_n_f32(0.0f); }
static inline vec_t vec_set1(float f) { return vdupq_n_f32(f); }
static inline vec_t vec_load(const float *p) { return vld1q_f32(p); }
static inline void vec_store(float *p, vec_t v) { vst1q_f32(p, v); }
/* n in [0, VEC_W): loads zeros past n, stores nothing past n (no access beyond the row). */
static inline vec_t vec_loadn(const float *p, int n) {
    float t[VEC_W] = {0};
    memcpy(t, p, (size_t)n * 4);
    return vld1q_f32(t);
}
static inline void vec_storen(float *p, vec_t v, int n) {
    float t[VEC_W];
    vst1q_f32(t, v);
    memcpy(p, t, (size_t)n * 4);
}
static inline vec_t vec_add(vec_t a, vec_t b) { return vaddq_f32(a, b); }
static inline vec_t vec_sub(vec_t a, vec_t b) { return vsubq_f32(a, b); }
static inline vec_t vec_mul(vec_t a, vec_t b) { return vmulq_f32(a, b); }
static inline vec_t vec_div(vec_t a, vec_t b) { return vdivq_f32(a, b); }
static inline vec_t vec_sqrt(vec_t a) { return vsqrtq_f32(a); }
static inline vec_t vec_fma(vec_t a, vec_t b, vec_t c) { return vfmaq_f32(c, a, b); }
/* FMAXNM/FMINNM: a quiet NaN operand loses to a number, so passing the accumulator second skips
 * NaNs (the accumulators never hold one), as x86's max/min do. */
static inline vec_t vec_max(vec_t a, vec_t b) { return vmaxnmq_f32(a, b); }
static inline vec_t vec_min(vec_t a, vec_t b) { return vminnmq_f32(a, b); }
static inline float vec_hsum(vec_t v) { return vaddvq_f32(v); }
static inline float vec_hmax(vec_t v) { return vmaxnmvq_f32(v); }

static inline vec_t vec_load_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline vec_t vec_load_bf16(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
static inline vec_t vec_loadn_f16(const uint16_t *p, int n) {
    uint16_t t[VEC_W] = {0};
    memcpy(t, p, (size_t)n * 2);
    return vec_load_f16(t);
}
static inline vec_t vec_loadn_bf16(const uint16_t *p, int n) {
    uint16_t t[VEC_W] = {0};
    memcpy(t, p, (size_t)n * 2);
    return vec_load_bf16(t);
}
/* FCVTN rounds to nearest even (FPCR default) and keeps NaNs quiet with their top payload bits,
 * exactly as apr_f32_to_f16. */
static inline uint16x4_t vec_to_f16_bits(vec_t v) { return vreinterpret_u16_f16(vcvt_f16_f32(v)); }
static inline void vec_store_f16(uint16_t *p, vec_t v) { vst1_u16(p, vec_to_f16_bits(v)); }
static inline void vec_storen_f16(uint16_t *p, vec_t v, int n) {
    uint16_t t[VEC_W];
    vec_store_f16(t, v);
    memcpy(p, t, (size_t)n * 2);
}
/* f32 -> bf16 rounding to nearest even; NaN stays a quiet NaN (as apr_f32_to_bf16). */
static inline uint16x4_t vec_to_bf16_bits(vec_t v) {
    uint32x4_t u = vreinterpretq_u32_f32(v);
    uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff))), 16);
    uint32x4_t q = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40));
    uint32x4_t notnan = vceqq_f32(v, v);
    return vmovn_u32(vbslq_u32(notnan, r, q));
}
static inline void vec_store_bf16(uint16_t *p, vec_t v) { vst1_u16(p, vec_to_bf16_bits(v)); }
static inline void vec_storen_bf16(uint16_t *p, vec_t v, int n) {
    uint16_t t[VEC_W];
    vec_store_bf16(t, v);
    memcpy(p, t, (size_t)n * 2);
}
/* (x0,x1,x2,x3) -> (x1,x0,x3,x2): the partner of each element in an adjacent pair. */
static inline vec_t vec_swap_pairs(vec_t v) { return vrev64q_f32(v); }
static inline vec_t vec_sel_gt(vec_t a, vec_t b, vec_t t, vec_t f) { return vbslq_f32(vcgtq_f32(a, b), t, f); }
static inline vec_t vec_sel_lt(vec_t a, vec_t b, vec_t t, vec_t f) { return vbslq_f32(vcltq_f32(a, b), t, f); }
static inline vec_t vec_sel_nan(vec_t a, vec_t t, vec_t f) { return vbslq_f32(vceqq_f32(a, a), f, t); }
static inline vec_t vec_round(vec_t v) { return vrndnq_f32(v); } /* to nearest, ties to even */
/* 2^(n-1) for integral n in [-125, 128], as a float. */
static inline vec_t vec_pow2m1(vec_t n) {
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(126)), 23));
}

#endif /* APR_NEON_VEC_H */

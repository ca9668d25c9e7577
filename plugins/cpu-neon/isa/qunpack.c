/* qunpack.c — weight blocks to int8 + per-16 scale/offset rows (ggml's dequantization, factored), and GET_ROWS dequantization. */
#include <string.h>

#include "apr/apr_float16.h"
#include "qmatmul.h"
#include "vec.h"

int qunpack_has_min(uint32_t t) { return t == APR_Q4_1 || t == APR_Q5_1 || t == APR_Q4_K || t == APR_Q5_K; }

static inline float qf16(uint16_t h) { return apr_f16_to_f32(h); }

/* Q4_K / Q5_K: 6-bit scale and min of sub-block j (ggml's get_scale_min_k4). */
static inline void qunpack_scale_min_k4(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

void qunpack_row(uint32_t t, const void *src, int64_t K, void *dst) {
    const int64_t Kp = qk_padded(K), G = Kp / QK_GROUP;
    int8_t *q = dst;
    float *d = (float *)((char *)dst + Kp), *m = d + G;
    memset(q + K, 0, (size_t)(Kp - K));
    for (int64_t g = K / QK_GROUP; g < G; g++) d[g] = m[g] = 0.0f;
    switch (t) {
    case APR_Q4_0: case APR_Q4_1: case APR_Q5_0: case APR_Q5_1: case APR_Q8_0: {
        for (int64_t b = 0; b < K / APR_QK; b++) {
            int8_t *qb = q + b * APR_QK;
            float db, mb = 0.0f;
            if (t == APR_Q8_0) {
                const apr_block_q8_0 *x = (const apr_block_q8_0 *)src + b;
                db = qf16(x->d);
                memcpy(qb, x->qs, APR_QK);
            } else if (t == APR_Q4_0 || t == APR_Q4_1) {
                const uint8_t *qs;
                int off;
                if (t == APR_Q4_0) {
                    const apr_block_q4_0 *x = (const apr_block_q4_0 *)src + b;
                    db = qf16(x->d), qs = x->qs, off = 8;
                } else {
                    const apr_block_q4_1 *x = (const apr_block_q4_1 *)src + b;
                    db = qf16(x->d), mb = qf16(x->m), qs = x->qs, off = 0;
                }
                uint8x16_t v = vld1q_u8(qs);
                int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), vdupq_n_s8((int8_t)off));
                int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8((int8_t)off));
                vst1q_s8(qb, lo);
                vst1q_s8(qb + 16, hi);
            } else {
                const uint8_t *qs, *qhp;
                int off;
                if (t == APR_Q5_0) {
                    const apr_block_q5_0 *x = (const apr_block_q5_0 *)src + b;
                    db = qf16(x->d), qs = x->qs, qhp = x->qh, off = 16;
                } else {
                    const apr_block_q5_1 *x = (const apr_block_q5_1 *)src + b;
                    db = qf16(x->d), mb = qf16(x->m), qs = x->qs, qhp = x->qh, off = 0;
                }
                /* bit i of qh is bit 4 of element i: spread each qh byte over 8 lanes and test */
                const uint8x16_t bits = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
                uint8x16_t h0 = vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(qhp[0]), vdup_n_u8(qhp[1])), bits), vdupq_n_u8(0x10));
                uint8x16_t h1 = vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(qhp[2]), vdup_n_u8(qhp[3])), bits), vdupq_n_u8(0x10));
                uint8x16_t v = vld1q_u8(qs);
                uint8x16_t lo = vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), h0), hi = vorrq_u8(vshrq_n_u8(v, 4), h1);
                vst1q_s8(qb, vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8((int8_t)off)));
                vst1q_s8(qb + 16, vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8((int8_t)off)));
            }
            d[2 * b] = d[2 * b + 1] = db;
            m[2 * b] = m[2 * b + 1] = mb;
        }
        break;
    }
    case APR_Q4_K: case APR_Q5_K: {
        for (int64_t b = 0; b < K / APR_QK_K; b++) {
            const uint8_t *scales, *ql, *qh = NULL;
            float dd, dmin;
            if (t == APR_Q4_K) {
                const apr_block_q4_K *x = (const apr_block_q4_K *)src + b;
                dd = qf16(x->d), dmin = qf16(x->dmin), scales = x->scales, ql = x->qs;
            } else {
                const apr_block_q5_K *x = (const apr_block_q5_K *)src + b;
                dd = qf16(x->d), dmin = qf16(x->dmin), scales = x->scales, ql = x->qs, qh = x->qh;
            }
            int8_t *qb = q + b * APR_QK_K;
            for (int p = 0; p < 4; p++) { /* pairs of sub-blocks: 32 bytes of ql each */
                const uint8x16_t u1 = vdupq_n_u8((uint8_t)(1u << (2 * p))), u2 = vdupq_n_u8((uint8_t)(2u << (2 * p)));
                for (int e = 0; e < 32; e += 16) {
                    uint8x16_t v = vld1q_u8(ql + 32 * p + e);
                    uint8x16_t lo = vandq_u8(v, vdupq_n_u8(0x0F)), hi = vshrq_n_u8(v, 4);
                    if (qh) { /* the fifth bits of sub-blocks 2p and 2p + 1 */
                        uint8x16_t h = vld1q_u8(qh + e);
                        lo = vorrq_u8(lo, vandq_u8(vtstq_u8(h, u1), vdupq_n_u8(16)));
                        hi = vorrq_u8(hi, vandq_u8(vtstq_u8(h, u2), vdupq_n_u8(16)));
                    }
                    vst1q_s8(qb + 64 * p + e, vreinterpretq_s8_u8(lo));
                    vst1q_s8(qb + 64 * p + 32 + e, vreinterpretq_s8_u8(hi));
                }
            }
            for (int j = 0; j < 8; j++) {
                uint8_t sc, mn;
                qunpack_scale_min_k4(j, scales, &sc, &mn);
                float d1 = dd * sc, m1 = dmin * mn;
                int64_t g = b * 16 + 2 * j;
                d[g] = d[g + 1] = d1;
                m[g] = m[g + 1] = -m1; /* d1 * q + (-m1) is d1 * q - m1 exactly */
            }
        }
        break;
    }
    case APR_Q6_K: {
        for (int64_t b = 0; b < K / APR_QK_K; b++) {
            const apr_block_q6_K *x = (const apr_block_q6_K *)src + b;
            const float dd = qf16(x->d);
            int8_t *qb = q + b * APR_QK_K;
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
                int8_t *y = qb + 128 * h;
                const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(3);
                const int8x16_t k32 = vdupq_n_s8(32);
                for (int l = 0; l < 32; l += 16) {
                    uint8x16_t a = vld1q_u8(ql + l), b = vld1q_u8(ql + l + 32), h = vld1q_u8(qh + l);
                    uint8x16_t q1 = vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(h, m3), 4));
                    uint8x16_t q2 = vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4));
                    uint8x16_t q3 = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4));
                    uint8x16_t q4 = vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4));
                    vst1q_s8(y + l + 0, vsubq_s8(vreinterpretq_s8_u8(q1), k32));
                    vst1q_s8(y + l + 32, vsubq_s8(vreinterpretq_s8_u8(q2), k32));
                    vst1q_s8(y + l + 64, vsubq_s8(vreinterpretq_s8_u8(q3), k32));
                    vst1q_s8(y + l + 96, vsubq_s8(vreinterpretq_s8_u8(q4), k32));
                }
            }
            /* element e of the block uses scales[e / 16]: the groups are the sub-blocks */
            for (int g = 0; g < 16; g++) {
                d[b * 16 + g] = dd * x->scales[g];
                m[b * 16 + g] = 0.0f;
            }
        }
        break;
    }
    default: break;
    }
    if (!qunpack_has_min(t))
        for (int64_t g = 0; g < K / QK_GROUP; g++) m[g] = 0.0f;
}

void qdequant_row(uint32_t t, const void *src, int64_t K, float *dst, void *tmp) {
    qunpack_row(t, src, K, tmp);
    const int64_t Kp = qk_padded(K), G = Kp / QK_GROUP;
    const int8_t *q = tmp;
    const float *d = (const float *)((const char *)tmp + Kp), *m = d + G;
    const int has_min = qunpack_has_min(t);
    for (int64_t g = 0; g < K / QK_GROUP; g++) {
        int8x16_t v = vld1q_s8(q + g * QK_GROUP);
        int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_s8(vget_high_s8(v));
        float32x4_t f[4] = {vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))),
                            vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)))};
        float32x4_t vd = vdupq_n_f32(d[g]), vm = vdupq_n_f32(m[g]);
        for (int i = 0; i < 4; i++) {
            /* separate multiply and add (no fused rounding), as the reference computes it */
            float32x4_t y = vmulq_f32(vd, f[i]);
            if (has_min) y = vaddq_f32(y, vm);
            vst1q_f32(dst + g * QK_GROUP + 4 * i, y);
        }
    }
}

void qact_row(const float *x, int64_t K, void *dst) {
    const int64_t Kp = qk_padded(K), G = Kp / QK_GROUP;
    int8_t *a = dst;
    float *ad = (float *)((char *)dst + Kp), *am = ad + G;
    memset(a + K, 0, (size_t)(Kp - K));
    for (int64_t g = K / QK_GROUP; g < G; g++) ad[g] = am[g] = 0.0f;
    for (int64_t b = 0; b < K / APR_QK; b++) {
        const float *xb = x + b * APR_QK;
        float32x4_t v[8], mx = vdupq_n_f32(0.0f);
        for (int i = 0; i < 8; i++) {
            v[i] = vld1q_f32(xb + 4 * i);
            mx = vmaxq_f32(mx, vabsq_f32(v[i]));
        }
        const float amax = vmaxvq_f32(mx);
        const float dsc = amax / 127.0f, id = dsc != 0.0f ? 1.0f / dsc : 0.0f;
        int32x4_t s[8];
        for (int i = 0; i < 8; i++) s[i] = vcvtnq_s32_f32(vmulq_f32(v[i], vdupq_n_f32(id))); /* |.| <= 127 */
        int16x8_t h0 = vcombine_s16(vmovn_s32(s[0]), vmovn_s32(s[1])), h1 = vcombine_s16(vmovn_s32(s[2]), vmovn_s32(s[3]));
        int16x8_t h2 = vcombine_s16(vmovn_s32(s[4]), vmovn_s32(s[5])), h3 = vcombine_s16(vmovn_s32(s[6]), vmovn_s32(s[7]));
        vst1q_s8(a + b * APR_QK, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
        vst1q_s8(a + b * APR_QK + 16, vcombine_s8(vmovn_s16(h2), vmovn_s16(h3)));
        ad[2 * b] = ad[2 * b + 1] = dsc;
        am[2 * b] = dsc * (float)(vaddvq_s16(h0) + vaddvq_s16(h1));
        am[2 * b + 1] = dsc * (float)(vaddvq_s16(h2) + vaddvq_s16(h3));
    }
}

/* quant_legacy.c — reference quantize/dequantize of the 32-element formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, byte-identical to ggml. */
#include <math.h>

#include "quant_internal.h"

/*
 * Every quantizer here reproduces ggml's *_ref quantizer bit for bit: the same choice of scale
 * (the signed value of largest magnitude for the symmetric formats, min and max for the offset
 * ones), the same reciprocal, the same truncation after adding a half, and the f16 rounding of
 * the stored scale (ties to even). Keep the order of every float operation as it is.
 */

#define QUANTL_HALF (APR_QK / 2)

/* The value of largest magnitude, with its sign; the first one wins a tie (as in ggml). */
static float quantl_signed_absmax(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < APR_QK; i++) {
        if (amax < fabsf(x[i])) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

static void quantl_min_max(const float *x, float *min_out, float *max_out) {
    float min = x[0], max = x[0];
    for (int i = 1; i < APR_QK; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
    }
    *min_out = min;
    *max_out = max;
}

/* (int)t clamped to 0 .. top, NaN to 0. For the finite, in-range t of ggml's arithmetic this is
 * exactly its truncating cast and MIN; the clamp only keeps inputs ggml leaves undefined (a
 * subnormal block whose reciprocal scale overflows) out of undefined conversions. */
static inline int quantl_level(float t, int top) {
    if (!(t > 0.0f)) return 0;
    if (t >= (float)top) return top;
    return (int)t;
}

/* Packs the fifth bits of 32 levels into a little-endian uint32: element i at bit i. */
static void quantl_pack_high(const int *lv, uint8_t qh[4]) {
    uint32_t bits = 0;
    for (int i = 0; i < APR_QK; i++) bits |= (uint32_t)((lv[i] >> 4) & 1) << i;
    for (int b = 0; b < 4; b++) qh[b] = (uint8_t)(bits >> (8 * b));
}

static uint32_t quantl_load_high(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* Element i (< 16) in the low nibble of qs[i], element i + 16 in the high nibble. */
static void quantl_pack_nibbles(const int *lv, uint8_t qs[QUANTL_HALF]) {
    for (int i = 0; i < QUANTL_HALF; i++) qs[i] = (uint8_t)((lv[i] & 15) | (lv[i + QUANTL_HALF] & 15) << 4);
}

static void quantl_unpack_nibbles(const uint8_t qs[QUANTL_HALF], int *lv) {
    for (int i = 0; i < QUANTL_HALF; i++) {
        lv[i] = qs[i] & 15;
        lv[i + QUANTL_HALF] = qs[i] >> 4;
    }
}

/* ---------------------------------------------------------------- symmetric: Q4_0, Q5_0 */

/* Levels 0 .. 2 * zero - 1 for d = max / -zero: the signed extreme lands on level 0, and the
 * opposite extreme would land on 2 * zero, so it is clamped to the top level. */
static float quantl_symmetric(const float *x, int zero, int *lv) {
    const float max = quantl_signed_absmax(x);
    const float d = max / (float)-zero;
    const float id = d ? 1.0f / d : 0.0f;
    const float bias = (float)zero + 0.5f;
    for (int i = 0; i < APR_QK; i++) {
        const float v = x[i] * id;
        lv[i] = quantl_level(v + bias, 2 * zero - 1);
    }
    return d;
}

void quantl_quant_q4_0(const float *x, void *q, int64_t nb) {
    uint8_t *out = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, out += sizeof(apr_block_q4_0)) {
        apr_block_q4_0 blk;
        int lv[APR_QK];
        blk.d = apr_f32_to_f16(quantl_symmetric(x, 8, lv));
        quantl_pack_nibbles(lv, blk.qs);
        memcpy(out, &blk, sizeof blk);
    }
}

void quantl_quant_q5_0(const float *x, void *q, int64_t nb) {
    uint8_t *out = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, out += sizeof(apr_block_q5_0)) {
        apr_block_q5_0 blk;
        int lv[APR_QK];
        blk.d = apr_f32_to_f16(quantl_symmetric(x, 16, lv));
        quantl_pack_nibbles(lv, blk.qs);
        quantl_pack_high(lv, blk.qh);
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---------------------------------------------------------------- with a minimum: Q4_1, Q5_1 */

/* Levels 0 .. top over [min, max]; returns d and stores min. */
static float quantl_offset(const float *x, int top, int *lv, float *min_out) {
    float min, max;
    quantl_min_max(x, &min, &max);
    const float d = (max - min) / (float)top;
    const float id = d ? 1.0f / d : 0.0f;
    for (int i = 0; i < APR_QK; i++) {
        const float v = (x[i] - min) * id;
        lv[i] = quantl_level(v + 0.5f, top);
    }
    *min_out = min;
    return d;
}

void quantl_quant_q4_1(const float *x, void *q, int64_t nb) {
    uint8_t *out = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, out += sizeof(apr_block_q4_1)) {
        apr_block_q4_1 blk;
        int lv[APR_QK];
        float min;
        blk.d = apr_f32_to_f16(quantl_offset(x, 15, lv, &min));
        blk.m = apr_f32_to_f16(min);
        quantl_pack_nibbles(lv, blk.qs);
        memcpy(out, &blk, sizeof blk);
    }
}

void quantl_quant_q5_1(const float *x, void *q, int64_t nb) {
    uint8_t *out = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, out += sizeof(apr_block_q5_1)) {
        apr_block_q5_1 blk;
        int lv[APR_QK];
        float min;
        blk.d = apr_f32_to_f16(quantl_offset(x, 31, lv, &min));
        blk.m = apr_f32_to_f16(min);
        quantl_pack_nibbles(lv, blk.qs);
        quantl_pack_high(lv, blk.qh);
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---------------------------------------------------------------- Q8_0 */

void quantl_quant_q8_0(const float *x, void *q, int64_t nb) {
    uint8_t *out = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, out += sizeof(apr_block_q8_0)) {
        apr_block_q8_0 blk;
        float amax = 0.0f;
        for (int i = 0; i < APR_QK; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        blk.d = apr_f32_to_f16(d);
        for (int i = 0; i < APR_QK; i++) {
            float v = x[i] * id; /* within +-127 up to rounding, unless id overflowed */
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v == v ? v : 0.0f;
            blk.qs[i] = (int8_t)roundf(v);
        }
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---------------------------------------------------------------- dequantize */

void quantl_dequant_q4_0(const void *q, float *x, int64_t nb) {
    const uint8_t *in = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, in += sizeof(apr_block_q4_0)) {
        apr_block_q4_0 blk;
        int lv[APR_QK];
        memcpy(&blk, in, sizeof blk);
        const float d = apr_f16_to_f32(blk.d);
        quantl_unpack_nibbles(blk.qs, lv);
        for (int i = 0; i < APR_QK; i++) x[i] = (float)(lv[i] - 8) * d;
    }
}

void quantl_dequant_q4_1(const void *q, float *x, int64_t nb) {
    const uint8_t *in = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, in += sizeof(apr_block_q4_1)) {
        apr_block_q4_1 blk;
        int lv[APR_QK];
        memcpy(&blk, in, sizeof blk);
        const float d = apr_f16_to_f32(blk.d), m = apr_f16_to_f32(blk.m);
        quantl_unpack_nibbles(blk.qs, lv);
        for (int i = 0; i < APR_QK; i++) x[i] = (float)lv[i] * d + m;
    }
}

void quantl_dequant_q5_0(const void *q, float *x, int64_t nb) {
    const uint8_t *in = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, in += sizeof(apr_block_q5_0)) {
        apr_block_q5_0 blk;
        int lv[APR_QK];
        memcpy(&blk, in, sizeof blk);
        const float d = apr_f16_to_f32(blk.d);
        const uint32_t high = quantl_load_high(blk.qh);
        quantl_unpack_nibbles(blk.qs, lv);
        for (int i = 0; i < APR_QK; i++) x[i] = (float)((lv[i] | (int)((high >> i) & 1) << 4) - 16) * d;
    }
}

void quantl_dequant_q5_1(const void *q, float *x, int64_t nb) {
    const uint8_t *in = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, in += sizeof(apr_block_q5_1)) {
        apr_block_q5_1 blk;
        int lv[APR_QK];
        memcpy(&blk, in, sizeof blk);
        const float d = apr_f16_to_f32(blk.d), m = apr_f16_to_f32(blk.m);
        const uint32_t high = quantl_load_high(blk.qh);
        quantl_unpack_nibbles(blk.qs, lv);
        for (int i = 0; i < APR_QK; i++) x[i] = (float)(lv[i] | (int)((high >> i) & 1) << 4) * d + m;
    }
}

void quantl_dequant_q8_0(const void *q, float *x, int64_t nb) {
    const uint8_t *in = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK, in += sizeof(apr_block_q8_0)) {
        apr_block_q8_0 blk;
        memcpy(&blk, in, sizeof blk);
        const float d = apr_f16_to_f32(blk.d);
        for (int i = 0; i < APR_QK; i++) x[i] = (float)blk.qs[i] * d;
    }
}

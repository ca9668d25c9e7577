/* quant_k.c — reference quantize/dequantize of the 256-element K-quants Q4_K, Q5_K, Q6_K and Q8_K, following ggml's reference search. */
#include <math.h>

#include "quant_internal.h"

/*
 * The scale searches are those of ggml's quantize_row_q*_K_ref: Q4_K and Q5_K fit x ~ s * l - m
 * per sub-block of 32 by weighted least squares over a small grid of trial scales (nstep + 1
 * steps, the same grid and weights as ggml), Q6_K fits x ~ s * (l - 32) per sub-block of 16 with
 * weights x^2 over 19 trial scales, and all of them then quantize the sub-block scales (and mins)
 * to 6 or 8 bits under an f16 super-block scale and re-derive the levels from the stored scales.
 * The float operations are done in ggml's order, so the blocks come out as ggml's do; each
 * search is O(n * steps) per block. Keep the order of every float operation as it is.
 */

#define QUANTK_SUB 32         /* elements per sub-block of Q4_K and Q5_K */
#define QUANTK_NSUB (APR_QK_K / QUANTK_SUB)
#define QUANTK_SUB6 16        /* elements per sub-block of Q6_K */
#define QUANTK_NSUB6 (APR_QK_K / QUANTK_SUB6)
#define QUANTK_ZERO_EPS 1e-15f /* a group whose largest magnitude is below this is all zero (ggml's GROUP_MAX_EPS) */

static inline int quantk_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---------------------------------------------------------------- Q4_K / Q5_K */

/* The trial grid of the affine search: iscale = (nmax + rmin + rdelta * step) / range. */
typedef struct quantk_grid {
    float rmin, rdelta;
    int nstep;
} quantk_grid;

static const quantk_grid quantk_grid_q4 = {-1.0f, 0.1f, 20};
static const quantk_grid quantk_grid_q5 = {-0.5f, 0.1f, 15};

/* Fits the 32 values x ~ scale * lv - min (lv in 0 .. nmax, min >= 0) minimizing the w-weighted
 * squared error: first the plain min/max grid, then each trial scale of the grid with the scale
 * and offset re-solved by least squares for the levels it gives; the best one wins. Returns
 * scale, stores min. The offset found so far is the origin of the next trials, as in ggml. */
static float quantk_fit_affine(const float *x, const float *w, int nmax, quantk_grid g, uint8_t *lv,
                               float *min_out) {
    float lo = x[0], hi = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < QUANTK_SUB; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) lo = 0; /* the offset only ever moves values down to zero */
    if (hi == lo) {
        memset(lv, 0, QUANTK_SUB);
        *min_out = -lo;
        return 0.0f;
    }
    float iscale = (float)nmax / (hi - lo);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < QUANTK_SUB; i++) {
        lv[i] = (uint8_t)quantk_clamp(quant_round(iscale * (x[i] - lo)), 0, nmax);
        float diff = scale * (float)lv[i] + lo - x[i];
        diff = diff * diff;
        best_err += w[i] * diff;
    }
    uint8_t trial[QUANTK_SUB];
    for (int step = 0; step <= g.nstep; step++) {
        iscale = (g.rmin + g.rdelta * (float)step + (float)nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < QUANTK_SUB; i++) {
            int l = quantk_clamp(quant_round(iscale * (x[i] - lo)), 0, nmax);
            trial[i] = (uint8_t)l;
            const float wl = w[i] * (float)l;
            sum_l += wl;
            sum_l2 += wl * (float)l;
            sum_xl += wl * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0)) continue;
        float s = (sum_w * sum_xl - sum_x * sum_l) / det;
        float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (m > 0) { /* an offset above zero is not representable: refit the scale alone */
            m = 0;
            s = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < QUANTK_SUB; i++) {
            float diff = s * (float)trial[i] + m - x[i];
            diff = diff * diff;
            err += w[i] * diff;
        }
        if (err < best_err) {
            memcpy(lv, trial, QUANTK_SUB);
            best_err = err;
            scale = s;
            lo = m;
        }
    }
    *min_out = -lo;
    return scale;
}

/* Packs the 6-bit scale and min of sub-block j into the 12 bytes of Q4_K / Q5_K (apr_quant.h). */
static void quantk_pack_scale_min(uint8_t packed[APR_K_SCALE_SIZE], int j, uint8_t sc, uint8_t m) {
    if (j < 4) {
        packed[j] = sc;
        packed[j + 4] = m;
    } else {
        packed[j + 4] = (uint8_t)((sc & 15) | (m & 15) << 4);
        packed[j - 4] |= (uint8_t)((sc >> 4) << 6);
        packed[j] |= (uint8_t)((m >> 4) << 6);
    }
}

static void quantk_unpack_scale_min(const uint8_t packed[APR_K_SCALE_SIZE], int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = packed[j] & 63;
        *m = packed[j + 4] & 63;
    } else {
        *sc = (uint8_t)((packed[j + 4] & 15) | (packed[j - 4] >> 6) << 4);
        *m = (uint8_t)((packed[j + 4] >> 4) | (packed[j] >> 6) << 4);
    }
}

/* The common part of Q4_K and Q5_K: fits every sub-block, quantizes the scales and mins to 6 bits
 * under the f16 d and dmin, and re-derives the levels lv (0 .. nmax) from what is stored. */
static void quantk_affine_block(const float *x, int nmax, quantk_grid g, uint8_t *d, uint8_t *dmin,
                                uint8_t packed[APR_K_SCALE_SIZE], uint8_t lv[APR_QK_K]) {
    float scales[QUANTK_NSUB], mins[QUANTK_NSUB], w[QUANTK_SUB];
    float max_scale = 0, max_min = 0; /* with the offset taken out, scales and mins are >= 0 */
    for (int j = 0; j < QUANTK_NSUB; j++) {
        const float *xs = x + QUANTK_SUB * j;
        float sum_x2 = 0;
        for (int i = 0; i < QUANTK_SUB; i++) sum_x2 += xs[i] * xs[i];
        const float av_x = sqrtf(sum_x2 / (float)QUANTK_SUB);
        for (int i = 0; i < QUANTK_SUB; i++) w[i] = av_x + fabsf(xs[i]);
        scales[j] = quantk_fit_affine(xs, w, nmax, g, lv + QUANTK_SUB * j, &mins[j]);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(packed, 0, APR_K_SCALE_SIZE);
    for (int j = 0; j < QUANTK_NSUB; j++) {
        uint8_t ls = (uint8_t)quant_round(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)quant_round(inv_min * mins[j]);
        quantk_pack_scale_min(packed, j, ls < 63 ? ls : 63, lm < 63 ? lm : 63);
    }
    const uint16_t d16 = apr_f32_to_f16(max_scale / 63.f), dmin16 = apr_f32_to_f16(max_min / 63.f);
    memcpy(d, &d16, 2);
    memcpy(dmin, &dmin16, 2);
    const float dv = apr_f16_to_f32(d16), dminv = apr_f16_to_f32(dmin16);
    for (int j = 0; j < QUANTK_NSUB; j++) {
        uint8_t sc, m;
        quantk_unpack_scale_min(packed, j, &sc, &m);
        const float ds = dv * (float)sc;
        if (!ds) continue; /* keep the levels of the fit */
        const float dm = dminv * (float)m;
        for (int i = 0; i < QUANTK_SUB; i++) {
            const int l = quant_round((x[QUANTK_SUB * j + i] + dm) / ds);
            lv[QUANTK_SUB * j + i] = (uint8_t)quantk_clamp(l, 0, nmax);
        }
    }
}

void quantk_quant_q4_K(const float *x, void *q, int64_t nb) {
    uint8_t *out = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK_K, out += sizeof(apr_block_q4_K)) {
        apr_block_q4_K blk;
        uint8_t lv[APR_QK_K];
        memset(&blk, 0, sizeof blk);
        quantk_affine_block(x, 15, quantk_grid_q4, (uint8_t *)&blk.d, (uint8_t *)&blk.dmin, blk.scales, lv);
        for (int p = 0; p < QUANTK_NSUB / 2; p++) /* sub-blocks 2p (low nibbles) and 2p + 1 (high) */
            for (int i = 0; i < QUANTK_SUB; i++)
                blk.qs[QUANTK_SUB * p + i] = (uint8_t)(lv[64 * p + i] | lv[64 * p + QUANTK_SUB + i] << 4);
        memcpy(out, &blk, sizeof blk);
    }
}

void quantk_quant_q5_K(const float *x, void *q, int64_t nb) {
    uint8_t *out = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK_K, out += sizeof(apr_block_q5_K)) {
        apr_block_q5_K blk;
        uint8_t lv[APR_QK_K];
        memset(&blk, 0, sizeof blk);
        quantk_affine_block(x, 31, quantk_grid_q5, (uint8_t *)&blk.d, (uint8_t *)&blk.dmin, blk.scales, lv);
        for (int j = 0; j < QUANTK_NSUB; j++) {
            for (int i = 0; i < QUANTK_SUB; i++) {
                const int l = lv[QUANTK_SUB * j + i];
                blk.qh[i] |= (uint8_t)((l >> 4) << j);
                blk.qs[QUANTK_SUB * (j / 2) + i] |= (uint8_t)((l & 15) << (4 * (j & 1)));
            }
        }
        memcpy(out, &blk, sizeof blk);
    }
}

void quantk_dequant_q4_K(const void *q, float *x, int64_t nb) {
    const uint8_t *in = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK_K, in += sizeof(apr_block_q4_K)) {
        apr_block_q4_K blk;
        memcpy(&blk, in, sizeof blk);
        const float d = apr_f16_to_f32(blk.d), dmin = apr_f16_to_f32(blk.dmin);
        for (int j = 0; j < QUANTK_NSUB; j++) {
            uint8_t sc, m;
            quantk_unpack_scale_min(blk.scales, j, &sc, &m);
            const float ds = d * (float)sc, dm = dmin * (float)m;
            const uint8_t *qs = blk.qs + QUANTK_SUB * (j / 2);
            const int shift = 4 * (j & 1);
            for (int i = 0; i < QUANTK_SUB; i++) x[QUANTK_SUB * j + i] = ds * (float)((qs[i] >> shift) & 15) - dm;
        }
    }
}

void quantk_dequant_q5_K(const void *q, float *x, int64_t nb) {
    const uint8_t *in = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK_K, in += sizeof(apr_block_q5_K)) {
        apr_block_q5_K blk;
        memcpy(&blk, in, sizeof blk);
        const float d = apr_f16_to_f32(blk.d), dmin = apr_f16_to_f32(blk.dmin);
        for (int j = 0; j < QUANTK_NSUB; j++) {
            uint8_t sc, m;
            quantk_unpack_scale_min(blk.scales, j, &sc, &m);
            const float ds = d * (float)sc, dm = dmin * (float)m;
            const uint8_t *qs = blk.qs + QUANTK_SUB * (j / 2);
            const int shift = 4 * (j & 1);
            for (int i = 0; i < QUANTK_SUB; i++) {
                const int l = ((qs[i] >> shift) & 15) | ((blk.qh[i] >> j) & 1) << 4;
                x[QUANTK_SUB * j + i] = ds * (float)l - dm;
            }
        }
    }
}

/* ---------------------------------------------------------------- Q6_K */

/* Fits the 16 values x ~ scale * (lv - 32), lv in 0 .. 63, minimizing the squared error weighted
 * by x^2 over 19 trial scales around -32 / (the signed extreme). Returns the scale (its sign is
 * that which puts the extreme on level 0). */
static float quantk_fit_symmetric(const float *x, int8_t *lv) {
    const int nmax = 32;
    float max = 0, amax = 0;
    for (int i = 0; i < QUANTK_SUB6; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < QUANTK_ZERO_EPS) {
        memset(lv, 0, QUANTK_SUB6);
        return 0.0f;
    }
    float best = 0, scale = 0;
    int8_t trial[QUANTK_SUB6];
    for (int step = 0; step <= 18; step++) {
        /* step 0: the plain grid -nmax / max; then nmax + 0.1 k for k = -9 .. 9 without 0 */
        const int k = step == 0 ? 0 : step <= 9 ? step - 10 : step - 9;
        const float iscale = step == 0 ? (float)-nmax / max : -((float)nmax + 0.1f * (float)k) / max;
        float sum_lx = 0, sum_l2 = 0;
        for (int i = 0; i < QUANTK_SUB6; i++) {
            const int l = quantk_clamp(quant_round(iscale * x[i]), -nmax, nmax - 1);
            trial[i] = (int8_t)(l + nmax);
            const float w = x[i] * x[i];
            sum_lx += w * x[i] * (float)l;
            sum_l2 += w * (float)l * (float)l;
        }
        if (step == 0) {
            memcpy(lv, trial, QUANTK_SUB6);
            scale = sum_l2 ? sum_lx / sum_l2 : 0.0f;
            best = scale * sum_lx;
        } else if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
            memcpy(lv, trial, QUANTK_SUB6);
            scale = sum_lx / sum_l2;
            best = scale * sum_lx;
        }
    }
    return scale;
}

void quantk_quant_q6_K(const float *x, void *q, int64_t nb) {
    uint8_t *out = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK_K, out += sizeof(apr_block_q6_K)) {
        apr_block_q6_K blk;
        int8_t lv[APR_QK_K];
        float scales[QUANTK_NSUB6];
        float max_scale = 0, max_abs_scale = 0;
        memset(&blk, 0, sizeof blk);
        for (int j = 0; j < QUANTK_NSUB6; j++) {
            scales[j] = quantk_fit_symmetric(x + QUANTK_SUB6 * j, lv + QUANTK_SUB6 * j);
            if (fabsf(scales[j]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (max_abs_scale < QUANTK_ZERO_EPS) { /* all zero: an all-zero block */
            memcpy(out, &blk, sizeof blk);
            continue;
        }
        const float iscale = -128.f / max_scale;
        blk.d = apr_f32_to_f16(1 / iscale);
        for (int j = 0; j < QUANTK_NSUB6; j++) {
            const int s = quant_round(iscale * scales[j]); /* -128 .. 128 */
            blk.scales[j] = (int8_t)(s < 127 ? s : 127);
        }
        const float d = apr_f16_to_f32(blk.d);
        for (int j = 0; j < QUANTK_NSUB6; j++) {
            const float ds = d * (float)blk.scales[j];
            if (!ds) continue; /* keep the levels of the fit */
            for (int i = 0; i < QUANTK_SUB6; i++) {
                const int l = quant_round(x[QUANTK_SUB6 * j + i] / ds);
                lv[QUANTK_SUB6 * j + i] = (int8_t)(quantk_clamp(l, -32, 31) + 32);
            }
        }
        /* per half of 128: ql[l] = elements l | l + 64 << 4, ql[l + 32] = l + 32 | l + 96 << 4,
         * qh[l] = the high 2 bits of l, l + 32, l + 64, l + 96 at shifts 0, 2, 4, 6 */
        for (int h = 0; h < 2; h++) {
            const int8_t *L = lv + 128 * h;
            uint8_t *ql = blk.ql + 64 * h, *qh = blk.qh + 32 * h;
            for (int i = 0; i < 32; i++) {
                ql[i] = (uint8_t)((L[i] & 15) | (L[i + 64] & 15) << 4);
                ql[i + 32] = (uint8_t)((L[i + 32] & 15) | (L[i + 96] & 15) << 4);
                qh[i] = (uint8_t)((L[i] >> 4) | (L[i + 32] >> 4) << 2 | (L[i + 64] >> 4) << 4 | (L[i + 96] >> 4) << 6);
            }
        }
        memcpy(out, &blk, sizeof blk);
    }
}

void quantk_dequant_q6_K(const void *q, float *x, int64_t nb) {
    const uint8_t *in = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK_K, in += sizeof(apr_block_q6_K)) {
        apr_block_q6_K blk;
        memcpy(&blk, in, sizeof blk);
        const float d = apr_f16_to_f32(blk.d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = blk.ql + 64 * h, *qh = blk.qh + 32 * h;
            const int8_t *sc = blk.scales + 8 * h;
            float *y = x + 128 * h;
            for (int i = 0; i < 32; i++) {
                const int is = i / 16;
                const int q1 = ((ql[i] & 15) | ((qh[i] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[i + 32] & 15) | ((qh[i] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[i] >> 4) | ((qh[i] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[i + 32] >> 4) | ((qh[i] >> 6) & 3) << 4) - 32;
                y[i] = d * (float)sc[is] * (float)q1;
                y[i + 32] = d * (float)sc[is + 2] * (float)q2;
                y[i + 64] = d * (float)sc[is + 4] * (float)q3;
                y[i + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

/* ---------------------------------------------------------------- Q8_K */

void quantk_quant_q8_K(const float *x, void *q, int64_t nb) {
    uint8_t *out = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK_K, out += sizeof(apr_block_q8_K)) {
        apr_block_q8_K blk;
        float max = 0, amax = 0;
        memset(&blk, 0, sizeof blk);
        for (int i = 0; i < APR_QK_K; i++) {
            if (fabsf(x[i]) > amax) {
                amax = fabsf(x[i]);
                max = x[i];
            }
        }
        if (amax) {
            const float iscale = -127.f / max; /* the signed extreme goes to -127 */
            for (int i = 0; i < APR_QK_K; i++) {
                const int v = quant_round(iscale * x[i]);
                blk.qs[i] = (int8_t)(v < 127 ? v : 127);
            }
            for (int j = 0; j < APR_QK_K / 16; j++) {
                int sum = 0;
                for (int i = 0; i < 16; i++) sum += blk.qs[16 * j + i];
                blk.bsums[j] = (int16_t)sum;
            }
            blk.d = 1 / iscale;
        }
        memcpy(out, &blk, sizeof blk);
    }
}

void quantk_dequant_q8_K(const void *q, float *x, int64_t nb) {
    const uint8_t *in = q;
    for (int64_t b = 0; b < nb; b++, x += APR_QK_K, in += sizeof(apr_block_q8_K)) {
        apr_block_q8_K blk;
        memcpy(&blk, in, sizeof blk);
        for (int i = 0; i < APR_QK_K; i++) x[i] = blk.d * (float)blk.qs[i];
    }
}

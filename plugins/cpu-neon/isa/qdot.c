/* qdot.c — the int8 dot-product kernels of cpu-neon: plain NEON (smull/sadalp), dotprod (sdot) and i8mm (smmla). */
#include "qmatmul.h"
#include "vec.h"

/* The kernels below that use an extension carry its target attribute; qmatmul.c calls them only
 * when the instance's qpath (from HWCAP) allows. */
#define QDOT_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define QDOT_I8MM __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))

/* Pointers into one unpacked row (see qmatmul.h). */
typedef struct qdot_row {
    const int8_t *q;
    const float *d, *m;
} qdot_row;

static inline qdot_row qdot_at(const char *base, int64_t K, int i) {
    const int64_t Kp = qk_padded(K), G = Kp / QK_GROUP;
    const char *r = base + (int64_t)i * qk_row_bytes(K);
    qdot_row row = {(const int8_t *)r, (const float *)(r + Kp), (const float *)(r + Kp) + G};
    return row;
}

/* Four groups' int32 sums s (lanes g..g+3) scaled and accumulated: acc += ad d s (+ m am). The
 * same in every kernel that works one pair at a time. */
static inline __attribute__((always_inline)) float32x4_t qdot_acc(float32x4_t acc, int32x4_t s, const qdot_row *w,
                                                                const qdot_row *a, int64_t g, int has_min) {
    float32x4_t sc = vmulq_f32(vld1q_f32(a->d + g), vld1q_f32(w->d + g));
    acc = vfmaq_f32(acc, sc, vcvtq_f32_s32(s));
    if (has_min) acc = vfmaq_f32(acc, vld1q_f32(w->m + g), vld1q_f32(a->m + g));
    return acc;
}

/* ---------------------------------------------------------------- plain NEON: every AArch64 CPU */

static inline int32x4_t qdot_group_plain(const int8_t *w, const int8_t *a) {
    int8x16_t x = vld1q_s8(w), y = vld1q_s8(a);
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(x), vget_low_s8(y)));
    return vpadalq_s16(s, vmull_high_s8(x, y));
}

static float qdot_pair_plain(int64_t K, const qdot_row *w, const qdot_row *a, int has_min) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t k = 0, g = 0; k < qk_padded(K); k += QK_PAD, g += 4) {
        int32x4_t s0 = qdot_group_plain(w->q + k, a->q + k), s1 = qdot_group_plain(w->q + k + 16, a->q + k + 16);
        int32x4_t s2 = qdot_group_plain(w->q + k + 32, a->q + k + 32), s3 = qdot_group_plain(w->q + k + 48, a->q + k + 48);
        acc = qdot_acc(acc, vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3)), w, a, g, has_min);
    }
    return vaddvq_f32(acc);
}

void qdot_plain(int64_t K, const char *w, int nw, const char *a, int na, int has_min, float *out, int64_t ostride) {
    for (int j = 0; j < na; j++) {
        qdot_row ar = qdot_at(a, K, j);
        for (int i = 0; i < nw; i++) {
            qdot_row wr = qdot_at(w, K, i);
            out[j * ostride + i] = qdot_pair_plain(K, &wr, &ar, has_min);
        }
    }
}

/* ---------------------------------------------------------------- dotprod: sdot */

QDOT_DOTPROD static float qdot_pair_dotprod(int64_t K, const qdot_row *w, const qdot_row *a, int has_min) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    const int32x4_t z = vdupq_n_s32(0);
    for (int64_t k = 0, g = 0; k < qk_padded(K); k += QK_PAD, g += 4) {
        int32x4_t s0 = vdotq_s32(z, vld1q_s8(w->q + k), vld1q_s8(a->q + k));
        int32x4_t s1 = vdotq_s32(z, vld1q_s8(w->q + k + 16), vld1q_s8(a->q + k + 16));
        int32x4_t s2 = vdotq_s32(z, vld1q_s8(w->q + k + 32), vld1q_s8(a->q + k + 32));
        int32x4_t s3 = vdotq_s32(z, vld1q_s8(w->q + k + 48), vld1q_s8(a->q + k + 48));
        acc = qdot_acc(acc, vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3)), w, a, g, has_min);
    }
    return vaddvq_f32(acc);
}

QDOT_DOTPROD void qdot_dotprod(int64_t K, const char *w, int nw, const char *a, int na, int has_min, float *out,
                               int64_t ostride) {
    for (int j = 0; j < na; j++) {
        qdot_row ar = qdot_at(a, K, j);
        for (int i = 0; i < nw; i++) {
            qdot_row wr = qdot_at(w, K, i);
            out[j * ostride + i] = qdot_pair_dotprod(K, &wr, &ar, has_min);
        }
    }
}

/* ---------------------------------------------------------------- i8mm: smmla, 2 x 2 per instruction */

/* Weight rows w0, w1 against activation rows a0, a1: one smmla per 8 elements gives the 2 x 2
 * int32 block [w0.a0, w0.a1, w1.a0, w1.a1]; two of them cover a group of 16. Four groups are
 * then scaled lane-wise in the order of qdot_acc (group by group into per-pair lanes). */
QDOT_I8MM static void qdot_quad_i8mm(int64_t K, const qdot_row *w0, const qdot_row *w1, const qdot_row *a0,
                                     const qdot_row *a1, int has_min, float r[4]) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t k = 0, g = 0; k < qk_padded(K); k += QK_GROUP, g++) {
        int8x16_t wl = vcombine_s8(vld1_s8(w0->q + k), vld1_s8(w1->q + k));
        int8x16_t wh = vcombine_s8(vld1_s8(w0->q + k + 8), vld1_s8(w1->q + k + 8));
        int8x16_t al = vcombine_s8(vld1_s8(a0->q + k), vld1_s8(a1->q + k));
        int8x16_t ah = vcombine_s8(vld1_s8(a0->q + k + 8), vld1_s8(a1->q + k + 8));
        int32x4_t s = vmmlaq_s32(vmmlaq_s32(vdupq_n_s32(0), wl, al), wh, ah);
        /* lane (i, j) = 2 i + j: scale d_i ad_j, offset m_i am_j */
        float32x4_t wd = {w0->d[g], w0->d[g], w1->d[g], w1->d[g]}, ad = {a0->d[g], a1->d[g], a0->d[g], a1->d[g]};
        acc = vfmaq_f32(acc, vmulq_f32(ad, wd), vcvtq_f32_s32(s));
        if (has_min) {
            float32x4_t wm = {w0->m[g], w0->m[g], w1->m[g], w1->m[g]}, am = {a0->m[g], a1->m[g], a0->m[g], a1->m[g]};
            acc = vfmaq_f32(acc, wm, am);
        }
    }
    vst1q_f32(r, acc);
}

QDOT_I8MM void qdot_i8mm(int64_t K, const char *w, int nw, const char *a, int na, int has_min, float *out,
                         int64_t ostride) {
    int j = 0;
    for (; j + 2 <= na; j += 2) {
        qdot_row a0 = qdot_at(a, K, j), a1 = qdot_at(a, K, j + 1);
        int i = 0;
        for (; i + 2 <= nw; i += 2) {
            qdot_row w0 = qdot_at(w, K, i), w1 = qdot_at(w, K, i + 1);
            float r[4];
            qdot_quad_i8mm(K, &w0, &w1, &a0, &a1, has_min, r);
            out[j * ostride + i] = r[0];
            out[(j + 1) * ostride + i] = r[1];
            out[j * ostride + i + 1] = r[2];
            out[(j + 1) * ostride + i + 1] = r[3];
        }
        if (i < nw) qdot_dotprod(K, w + (int64_t)i * qk_row_bytes(K), nw - i, a + (int64_t)j * qk_row_bytes(K), 2, has_min,
                                 out + j * ostride + i, ostride);
    }
    /* a single activation row (decode) gains nothing from smmla: sdot */
    if (j < na) qdot_dotprod(K, w, nw, a + (int64_t)j * qk_row_bytes(K), na - j, has_min, out + j * ostride, ostride);
}

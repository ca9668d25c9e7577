/* gemv.c — matmul for decode shapes (M <= 4): stream each W row once, dot it with every X row. */
#include "matmul.h"

#include "apr/apr_abi.h"
#include "rows.h"

#define GEMV_NW 1 /* W rows per tile: one row at a time reads W as a single sequential stream, which the
                     * prefetchers follow better than several interleaved rows */

/* One vector of W row elements at k as f32 (dtype is a literal at every call, so this folds). */
static inline __attribute__((always_inline)) vec_t gemv_wload(const char *row, int64_t k, uint32_t wtype) {
    if (wtype == APR_F32) return vec_load((const float *)row + k);
    if (wtype == APR_F16) return vec_load_f16((const uint16_t *)row + k);
    return vec_load_bf16((const uint16_t *)row + k);
}
static inline __attribute__((always_inline)) vec_t gemv_wloadn(const char *row, int64_t k, int n, uint32_t wtype) {
    if (wtype == APR_F32) return vec_loadn((const float *)row + k, n);
    if (wtype == APR_F16) return vec_loadn_f16((const uint16_t *)row + k, n);
    return vec_loadn_bf16((const uint16_t *)row + k, n);
}

/* One vector of X row elements at k: f32, or the f16 copy (xh is a literal at every call). */
static inline __attribute__((always_inline)) vec_t gemv_xload(const float *x, const uint16_t *xh16, int64_t k, int xh) {
    return xh ? vec_load_f16(xh16 + k) : vec_load(x + k);
}

/* nw W rows (1 or GEMV_NW) against nm X rows. Every W row's sum is formed the same way whatever
 * nw is (k ascending, the same chains), so results do not depend on the tiling or thread count. */
static inline __attribute__((always_inline)) void gemv_tile(const mm_slice *s, int64_t n, int nw, int nm,
                                                            uint32_t wtype, int xh) {
    const char *w[GEMV_NW];
    const float *x[GEMV_MAX_M];
    for (int i = 0; i < nw; i++) w[i] = s->w + (n + i) * s->wnb1;
    const uint16_t *x16[GEMV_MAX_M];
    for (int j = 0; j < nm; j++) {
        x[j] = (const float *)(s->x + (s->m0 + j) * s->xnb1);
        x16[j] = xh ? s->x16 + j * s->K : NULL;
    }
    vec_t acc0[GEMV_NW][GEMV_MAX_M], acc1[GEMV_NW][GEMV_MAX_M];
    for (int i = 0; i < nw; i++)
        for (int j = 0; j < nm; j++) acc0[i][j] = acc1[i][j] = vec_zero();
    const int64_t K = s->K;
    int64_t k = 0;
    for (; k + 2 * VEC_W <= K; k += 2 * VEC_W) {
        vec_t xa[GEMV_MAX_M], xb[GEMV_MAX_M];
        for (int j = 0; j < nm; j++) {
            xa[j] = gemv_xload(x[j], x16[j], k, xh);
            xb[j] = gemv_xload(x[j], x16[j], k + VEC_W, xh);
        }
        for (int i = 0; i < nw; i++) {
            vec_t wa = gemv_wload(w[i], k, wtype), wb = gemv_wload(w[i], k + VEC_W, wtype);
            for (int j = 0; j < nm; j++) {
                acc0[i][j] = vec_fma(wa, xa[j], acc0[i][j]);
                /* one row of X needs a second chain to hide FMA latency; more rows already have
                 * nw * nm chains, and a second set would not fit in the registers */
                if (nm == 1) acc1[i][j] = vec_fma(wb, xb[j], acc1[i][j]);
                else acc0[i][j] = vec_fma(wb, xb[j], acc0[i][j]);
            }
        }
    }
    for (; k < K; k += VEC_W) {
        int r = K - k < VEC_W ? (int)(K - k) : VEC_W;
        for (int i = 0; i < nw; i++) {
            vec_t wa = r == VEC_W ? gemv_wload(w[i], k, wtype) : gemv_wloadn(w[i], k, r, wtype);
            for (int j = 0; j < nm; j++) {
                vec_t xa = r == VEC_W ? gemv_xload(x[j], x16[j], k, xh)
                           : xh       ? vec_loadn_f16(x16[j] + k, r)
                                      : vec_loadn(x[j] + k, r);
                acc0[i][j] = vec_fma(wa, xa, acc0[i][j]);
            }
        }
    }
    for (int i = 0; i < nw; i++)
        for (int j = 0; j < nm; j++) {
            float v = vec_hsum(vec_add(acc0[i][j], acc1[i][j]));
            *(float *)(s->d + (s->m0 + j) * s->dnb1 + (n + i) * s->dnb0) = v;
        }
}

static inline __attribute__((always_inline)) void gemv_rows(const mm_slice *s, int nm, uint32_t wtype, int xh) {
    int64_t n = s->n0;
    for (; n + GEMV_NW <= s->n1; n += GEMV_NW) gemv_tile(s, n, GEMV_NW, nm, wtype, xh);
    for (; n < s->n1; n++) gemv_tile(s, n, 1, nm, wtype, xh);
}

/* One specialisation per (dtype, X form, row count): the tile's arrays then live in registers. */
#define GEMV_CASES(T, XH)                              \
    switch (nm) {                                      \
    case 1: gemv_rows(&t, 1, T, XH); break;            \
    case 2: gemv_rows(&t, 2, T, XH); break;            \
    case 3: gemv_rows(&t, 3, T, XH); break;            \
    default: gemv_rows(&t, 4, T, XH); break;           \
    }

void gemv_slice(const mm_slice *s) {
    mm_slice t = *s;
    for (t.m0 = s->m0; t.m0 < s->m1; t.m0 += GEMV_MAX_M) {
        int nm = s->m1 - t.m0 < GEMV_MAX_M ? (int)(s->m1 - t.m0) : GEMV_MAX_M;
        if (s->x16) t.x16 = s->x16 + (t.m0 - s->m0) * s->K;
        if (s->wtype == APR_F32) { GEMV_CASES(APR_F32, 0) }
        else if (s->wtype == APR_F16 && s->x16) { GEMV_CASES(APR_F16, 1) }
        else if (s->wtype == APR_F16) { GEMV_CASES(APR_F16, 0) }
        else { GEMV_CASES(APR_BF16, 0) }
    }
}

/* Largest finite f16 (65504) plus half its last step: values below round to finite f16. */
#define GEMV_F16_LIMIT 65520.0f

int gemv_round_x16(const mm_slice *s, uint16_t *x16) {
    for (int64_t m = s->m0; m < s->m1; m++) {
        const float *x = (const float *)(s->x + m * s->xnb1);
        vec_t hi = vec_zero(), lo = vec_zero();
        int64_t k = 0;
        for (; k + VEC_W <= s->K; k += VEC_W) {
            hi = vec_max(hi, vec_load(x + k));
            lo = vec_min(lo, vec_load(x + k));
        }
        if (k < s->K) {
            hi = vec_max(hi, vec_loadn(x + k, (int)(s->K - k)));
            lo = vec_min(lo, vec_loadn(x + k, (int)(s->K - k)));
        }
        /* NaN and inf already round to themselves; only finite values past the range would not */
        if (vec_hmax(hi) >= GEMV_F16_LIMIT || vec_hmax(vec_sub(vec_zero(), lo)) >= GEMV_F16_LIMIT) return 0;
        rows_store_f32((char *)(x16 + (m - s->m0) * s->K), x, s->K, 2, APR_F16);
    }
    return 1;
}

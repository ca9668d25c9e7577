/* gemm.c — matmul for prefill shapes: packed panels, L1/L2 cache blocking, a register-tiled vector FMA micro-kernel (GEMM_* from gemm_tile.h). */
#include "matmul.h"

#include <string.h>

#include "apr/apr_abi.h"
#include "rows.h"

static inline int64_t gemm_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* W columns [n, n + nc) x k in [k0, k0 + kc) into panels of GEMM_NR columns, each k-major
 * (panel p, step k at bp + p * GEMM_NR * kc + k * GEMM_NR), zero past nc so the kernel never
 * needs an edge case along n. Rows that are not contiguous f32 are converted into tmp first
 * (tmp holds GEMM_NR + 1 rows of kc floats); the transpose itself runs GEMM_TILE_T x GEMM_TILE_T in registers. */
static void gemm_pack_w(const mm_slice *s, int64_t n, int64_t nc, int64_t k0, int64_t kc, float *bp, float *tmp) {
    float *zero = tmp + (int64_t)GEMM_NR * kc;
    memset(zero, 0, (size_t)kc * sizeof(float));
    for (int64_t jr = 0; jr < nc; jr += GEMM_NR) {
        float *panel = bp + jr * kc;
        const float *rp[GEMM_NR];
        for (int j = 0; j < GEMM_NR; j++) {
            if (jr + j >= nc) { rp[j] = zero; continue; }
            const char *row = s->w + (n + jr + j) * s->wnb1 + k0 * s->wnb0;
            rp[j] = rows_f32(row, kc, s->wnb0, s->wtype, tmp + (int64_t)j * kc);
        }
        int64_t k = 0;
        for (; k + GEMM_TILE_T <= kc; k += GEMM_TILE_T)
            for (int g = 0; g < GEMM_NR; g += GEMM_TILE_T) gemm_tile_transpose(rp + g, k, panel + k * GEMM_NR + g, GEMM_NR);
        for (; k < kc; k++)
            for (int j = 0; j < GEMM_NR; j++) panel[k * GEMM_NR + j] = rp[j][k];
    }
}

/* X rows [m, m + mc) x k in [k0, k0 + kc) into panels of GEMM_MR rows, k-major, zero past mc. */
static void gemm_pack_x(const mm_slice *s, int64_t m, int64_t mc, int64_t k0, int64_t kc, float *ap) {
    for (int64_t ir = 0; ir < mc; ir += GEMM_MR) {
        float *panel = ap + ir * kc;
        const char *row[GEMM_MR];
        int nr = mc - ir < GEMM_MR ? (int)(mc - ir) : GEMM_MR;
        for (int r = 0; r < nr; r++) row[r] = s->x + (m + ir + r) * s->xnb1 + k0 * s->xnb0;
        if (s->xnb0 == 4 && nr == GEMM_MR) {
            /* k outer: contiguous stores, GEMM_MR read streams that stay in L1 */
            for (int64_t k = 0; k < kc; k++)
#pragma GCC unroll 16
                for (int r = 0; r < GEMM_MR; r++) panel[k * GEMM_MR + r] = ((const float *)row[r])[k];
            continue;
        }
        for (int64_t k = 0; k < kc; k++)
            for (int r = 0; r < GEMM_MR; r++) {
                if (r < nr) memcpy(&panel[k * GEMM_MR + r], row[r] + k * s->xnb0, 4);
                else panel[k * GEMM_MR + r] = 0.0f;
            }
    }
}

/* The micro-kernel: a GEMM_MR x GEMM_NR block of dst from one X panel and one W panel. Each k
 * step loads GEMM_NV vectors of W and broadcasts GEMM_MR values of X (folded into the FMAs). */
static inline __attribute__((always_inline)) void gemm_micro(int64_t kc, const float *restrict a,
                                                             const float *restrict b,
                                                             vec_t acc[GEMM_MR][GEMM_NV]) {
#pragma GCC unroll 16
    for (int r = 0; r < GEMM_MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vec_zero();
    for (int64_t k = 0; k < kc; k++) {
        vec_t bv[GEMM_NV];
#pragma GCC unroll 4
        for (int v = 0; v < GEMM_NV; v++) bv[v] = vec_load(b + k * GEMM_NR + v * VEC_W);
#pragma GCC unroll 16
        for (int r = 0; r < GEMM_MR; r++) {
            vec_t av = vec_set1(a[k * GEMM_MR + r]);
#pragma GCC unroll 4
            for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vec_fma(av, bv[v], acc[r][v]);
        }
    }
}

/* dst rows [m, m + mr) x columns [n, n + nr) = (first ? 0 : dst) + a . b over one k block. */
static void gemm_tile(const mm_slice *s, const float *a, const float *b, int64_t kc, int64_t m, int64_t n, int mr,
                      int nr, int first) {
    vec_t acc[GEMM_MR][GEMM_NV];
    gemm_micro(kc, a, b, acc);
    if (mr == GEMM_MR && nr == GEMM_NR && s->dnb0 == 4) {
#pragma GCC unroll 16
        for (int r = 0; r < GEMM_MR; r++) {
            float *c = (float *)(s->d + (m + r) * s->dnb1 + n * 4);
#pragma GCC unroll 4
            for (int v = 0; v < GEMM_NV; v++) {
                vec_t y = first ? acc[r][v] : vec_add(vec_load(c + v * VEC_W), acc[r][v]);
                vec_store(c + v * VEC_W, y);
            }
        }
        return;
    }
    float t[GEMM_MR][GEMM_NR];
    for (int r = 0; r < GEMM_MR; r++)
        for (int v = 0; v < GEMM_NV; v++) vec_store(&t[r][v * VEC_W], acc[r][v]);
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) {
            float *c = (float *)(s->d + (m + r) * s->dnb1 + (n + j) * s->dnb0);
            *c = first ? t[r][j] : *c + t[r][j];
        }
}

void gemm_slice(const mm_slice *s, float *scratch) {
    float *bp = scratch;                                     /* [GEMM_NC x GEMM_KC] packed W block */
    float *ap = bp + (int64_t)GEMM_NC * GEMM_KC;             /* [(GEMM_MC + GEMM_MR) x GEMM_KC] packed X block */
    float *tmp = ap + (int64_t)(GEMM_MC + GEMM_MR) * GEMM_KC; /* GEMM_NR converted W rows + a zero row */
    for (int64_t jc = s->n0; jc < s->n1; jc += GEMM_NC) {
        int64_t nc = gemm_min(GEMM_NC, s->n1 - jc);
        for (int64_t pc = 0; pc < s->K; pc += GEMM_KC) {
            int64_t kc = gemm_min(GEMM_KC, s->K - pc);
            gemm_pack_w(s, jc, nc, pc, kc, bp, tmp);
            for (int64_t ic = s->m0; ic < s->m1; ic += GEMM_MC) {
                int64_t mc = gemm_min(GEMM_MC, s->m1 - ic);
                gemm_pack_x(s, ic, mc, pc, kc, ap);
                for (int64_t jr = 0; jr < nc; jr += GEMM_NR) {
                    int nr = (int)gemm_min(GEMM_NR, nc - jr);
                    for (int64_t ir = 0; ir < mc; ir += GEMM_MR) {
                        int mr = (int)gemm_min(GEMM_MR, mc - ir);
                        gemm_tile(s, ap + ir * kc, bp + jr * kc, kc, ic + ir, jc + jr, mr, nr, pc == 0);
                    }
                }
            }
        }
    }
}

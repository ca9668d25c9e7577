/* matmul.h — what matmul.c hands its two engines (gemv.c for few rows, gemm.c for many): one 2-D slice. */
#ifndef APR_NEON_MATMUL_H
#define APR_NEON_MATMUL_H

#include <stdint.h>

#include "vec.h"

/* Register tile of the GEMM micro-kernel: GEMM_MR rows of X (m) by GEMM_NV vectors of W columns (n).
 * 8 x 12 = 24 of the 32 NEON q registers as accumulators, 3 for W, the rest for X broadcasts. */
#ifndef GEMM_NV
#define GEMM_NV 3
#endif
#define GEMM_NR (GEMM_NV * VEC_W)
#ifndef GEMM_MR
#define GEMM_MR 8
#endif
/* Cache blocking: a packed W panel (GEMM_KC x GEMM_NR floats) stays in L1 while the ir loop
 * streams X panels from a packed X block (GEMM_MC x GEMM_KC) that stays in L2; the W block
 * (GEMM_NC x GEMM_KC) packed per (n, k) block is reused for every m block. */
#ifndef GEMM_KC /* (overridable with -D for tuning runs) */
#define GEMM_KC 256 /* W panel 256 x 12 floats = 12 KiB of a 32-64 KiB L1 */
#endif
#ifndef GEMM_MC
#define GEMM_MC (GEMM_MR * 16)
#endif
#ifndef GEMM_NC
#define GEMM_NC 516 /* a multiple of GEMM_NR */
#endif

/* One (batch) slice: dst[n, m] = sum_k W[k, n] X[k, m] for n in [n0, n1), m in [m0, m1). */
typedef struct mm_slice {
    const char *w;         /* W element [k, n] at w + n * wnb1 + k * wnb0 */
    int64_t wnb0, wnb1;    /* bytes */
    uint32_t wtype;        /* APR_F32 / APR_F16 / APR_BF16 */
    const char *x;         /* X element [k, m] (f32) at x + m * xnb1 + k * xnb0 */
    int64_t xnb0, xnb1;
    char *d;               /* dst element [n, m] (f32) at d + m * dnb1 + n * dnb0 */
    int64_t dnb0, dnb1;
    int64_t K;             /* reduction length */
    int64_t n0, n1, m0, m1;
} mm_slice;

/* Scratch floats gemm_slice needs per worker. */
#define GEMM_SCRATCH_FLOATS ((int64_t)GEMM_NC * GEMM_KC + (int64_t)(GEMM_MC + GEMM_MR) * GEMM_KC + (GEMM_NR + 1) * GEMM_KC)

/* Packed, cache-blocked GEMM for any strides; scratch holds GEMM_SCRATCH_FLOATS. */
void gemm_slice(const mm_slice *s, float *scratch);
/* Streams W once for up to GEMV_MAX_M rows of X; W and X rows contiguous along k. */
#define GEMV_MAX_M 4
void gemv_slice(const mm_slice *s);

#endif

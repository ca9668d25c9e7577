/* matmul.h — what matmul.c hands its two engines (gemv.c for few rows, gemm.c for many): one 2-D slice. */
#ifndef APR_SIMD_MATMUL_H
#define APR_SIMD_MATMUL_H

#include <stdint.h>

#include "gemm_tile.h" /* this micro-architecture's GEMM_* register tile and cache blocking */
#include "vec.h"

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
    const uint16_t *x16;   /* gemv with f16 W: X rows m0.. rounded to f16, row j at x16 + j * K; or NULL */
    int64_t n0, n1, m0, m1;
} mm_slice;

/* Scratch floats gemm_slice needs per worker. */
#define GEMM_SCRATCH_FLOATS ((int64_t)GEMM_NC * GEMM_KC + (int64_t)(GEMM_MC + GEMM_MR) * GEMM_KC + (GEMM_NR + 1) * GEMM_KC)

/* Packed, cache-blocked GEMM for any strides; scratch holds GEMM_SCRATCH_FLOATS. */
void gemm_slice(const mm_slice *s, float *scratch);
/* Streams W once for up to GEMV_MAX_M rows of X; W and X rows contiguous along k. */
#define GEMV_MAX_M 4
void gemv_slice(const mm_slice *s);
/* For f16 W: rounds X rows [m0, m1) of the slice to f16 into x16 (row j at x16 + j * K) and
 * returns 1, or returns 0 when some |x| is past f16's range (the slice then keeps f32 X). */
int gemv_round_x16(const mm_slice *s, uint16_t *x16);

#endif

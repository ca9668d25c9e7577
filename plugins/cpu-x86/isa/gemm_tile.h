/* gemm_tile.h — the GEMM register tile, cache blocking and panel transpose of cpu-avx2 / cpu-avx512 (for ../../simd/gemm.c). */
#ifndef APR_X86_GEMM_TILE_H
#define APR_X86_GEMM_TILE_H

#include <stdint.h>

#include "vec.h"

/* Register tile of the GEMM micro-kernel: GEMM_MR rows of X (m) by GEMM_NV vectors of W columns (n).
 * AVX-512: 12 x 32 = 24 zmm accumulators; AVX2: 6 x 16 = 12 of its 16 ymm registers. */
#ifndef GEMM_NV
#define GEMM_NV 2
#endif
#define GEMM_NR (GEMM_NV * VEC_W)
#ifndef GEMM_MR
#if APR_X86_LEVEL >= 3
#define GEMM_MR 12
#else
#define GEMM_MR 6
#endif
#endif
/* Cache blocking: a packed W panel (GEMM_KC x GEMM_NR floats) stays in L1 while the ir loop
 * streams X panels from a packed X block (GEMM_MC x GEMM_KC) that stays in L2; the W block
 * (GEMM_NC x GEMM_KC) packed per (n, k) block is reused for every m block. */
#ifndef GEMM_KC /* (overridable with -D for tuning runs) */
#if APR_X86_LEVEL >= 3
#define GEMM_KC 192 /* W panel 192 x 32 floats = 24 KiB of the 32 KiB L1 */
#else
#define GEMM_KC 256 /* W panel 256 x 16 floats = 16 KiB */
#endif
#endif
#ifndef GEMM_MC
#define GEMM_MC (GEMM_MR * 16)
#endif
#ifndef GEMM_NC
#define GEMM_NC 512
#endif

/* gemm.c packs W panels GEMM_TILE_T columns by GEMM_TILE_T steps of k at a time with gemm_tile_transpose. */
#define GEMM_TILE_T 8
/* Rows r[0..7] at k..k+7 transposed into dst[t * ld + i] = r[i][k + t] (AVX, both levels). */
static inline void gemm_tile_transpose(const float *const *r, int64_t k, float *dst, int64_t ld) {
    __m256 a0 = _mm256_loadu_ps(r[0] + k), a1 = _mm256_loadu_ps(r[1] + k), a2 = _mm256_loadu_ps(r[2] + k),
           a3 = _mm256_loadu_ps(r[3] + k), a4 = _mm256_loadu_ps(r[4] + k), a5 = _mm256_loadu_ps(r[5] + k),
           a6 = _mm256_loadu_ps(r[6] + k), a7 = _mm256_loadu_ps(r[7] + k);
    __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1), t2 = _mm256_unpacklo_ps(a2, a3),
           t3 = _mm256_unpackhi_ps(a2, a3), t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5),
           t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ld, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dst + 1 * ld, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(s3, s7, 0x31));
}

#endif

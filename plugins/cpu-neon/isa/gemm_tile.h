/* gemm_tile.h — the GEMM register tile, cache blocking and panel transpose of cpu-neon (for ../../simd/gemm.c). */
#ifndef APR_NEON_GEMM_TILE_H
#define APR_NEON_GEMM_TILE_H

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

/* gemm.c packs W panels GEMM_TILE_T columns by GEMM_TILE_T steps of k at a time with gemm_tile_transpose. */
#define GEMM_TILE_T 4
/* Rows r[0..3] at k..k+3 transposed into dst[t * ld + i] = r[i][k + t]. */
static inline void gemm_tile_transpose(const float *const *r, int64_t k, float *dst, int64_t ld) {
    float32x4_t a0 = vld1q_f32(r[0] + k), a1 = vld1q_f32(r[1] + k), a2 = vld1q_f32(r[2] + k), a3 = vld1q_f32(r[3] + k);
    float32x4_t t0 = vtrn1q_f32(a0, a1), t1 = vtrn2q_f32(a0, a1), t2 = vtrn1q_f32(a2, a3), t3 = vtrn2q_f32(a2, a3);
    vst1q_f32(dst + 0 * ld, vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2))));
    vst1q_f32(dst + 1 * ld, vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3))));
    vst1q_f32(dst + 2 * ld, vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2))));
    vst1q_f32(dst + 3 * ld, vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3))));
}

#endif

/* qmatmul.h — quantized MATMUL and GET_ROWS on cpu-neon: weight rows unpacked to int8 + per-16 scales, activations rounded to int8 per 32, integer dot products. */
#ifndef APR_NEON_QMATMUL_H
#define APR_NEON_QMATMUL_H

/*
 * Every weight block format is unpacked the same way: a row of K elements becomes K int8 values
 * q and, per group of 16 elements, a scale d[g] and an offset m[g] such that the element is
 * exactly what ggml's dequantize_row computes,
 *     x = d[g] * q            (Q4_0, Q5_0, Q8_0: q = stored - 8 / - 16 / as is; Q6_K: q = stored - 32)
 *     x = d[g] * q + m[g]     (Q4_1, Q5_1: m = the block min; Q4_K, Q5_K: m = -(dmin * min[j]))
 * (K-quant sub-blocks of 32 are two groups with the same d and m; Q6_K's 16 scales are its groups.)
 * GET_ROWS of a block table is that formula in f32, bit for bit the reference's.
 *
 * MATMUL rounds each activation row to int8 per block of 32 (Q8_0-style, f32 scale ad, and the
 * scaled sum am = ad * sum(a) of every group of 16), so that
 *     W[n] . X[m] ~= sum_g ad[g] d[g] (q . a over g) + m[g] am[g]
 * with q . a an exact int32 dot product: vmull_s8 + vpadalq_s16 on every AArch64 CPU, vdotq_s32
 * with the dot-product extension (HWCAP asimddp), vmmlaq_s32 (2 weight rows x 2 activation rows
 * per instruction) with i8mm (HWCAP2 i8mm). The path is chosen once per instance from HWCAP
 * (cpu_backend.qpath, NEON_QDOT_*); the kernels that need an extension are compiled for it with a target
 * attribute and only called after that check.
 *
 * Rows are padded to QK_PAD elements with zero q, d, m, ad and am, so kernels never handle a tail.
 */

#include <stdint.h>

#include "apr/apr_abi.h"
#include "apr/apr_quant.h"
#include "../../common/cpu_backend.h"
#include "../probe.h"

#define QK_GROUP 16 /* elements per scale group */
#define QK_PAD 64   /* rows are padded to a multiple of this (4 groups per kernel step) */

static inline int64_t qk_padded(int64_t K) { return (K + QK_PAD - 1) / QK_PAD * QK_PAD; }

/* One unpacked row of Kp = qk_padded(K) elements: q[Kp], then d[Kp/16] and m[Kp/16] floats. */
static inline int64_t qk_row_bytes(int64_t K) { int64_t Kp = qk_padded(K); return Kp + 2 * (Kp / QK_GROUP) * 4; }

/* 1 when the format has an offset term (m != 0 in general). */
int qunpack_has_min(uint32_t wtype);
/* Unpacks K elements (a multiple of the format's block) of blocks at src into the row at dst. */
void qunpack_row(uint32_t wtype, const void *src, int64_t K, void *dst);
/* dst[0..K) = the f32 values of the blocks at src (tmp holds qk_row_bytes(K)). */
void qdequant_row(uint32_t wtype, const void *src, int64_t K, float *dst, void *tmp);
/* Rounds x[0..K) (K a multiple of 32) to the activation row at dst (qk_row_bytes(K), d = ad, m = am). */
void qact_row(const float *x, int64_t K, void *dst);

/* out[j * ostride + i] = the dot product of unpacked weight row i (< nw) with activation row j
 * (< na); rows are qk_row_bytes(K) apart in w and a. has_min: add the m * am terms. */
typedef void qdot_fn(int64_t K, const char *w, int nw, const char *a, int na, int has_min, float *out, int64_t ostride);
qdot_fn qdot_plain, qdot_dotprod, qdot_i8mm;

apr_status qmatmul_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);

/* GET_ROWS of a block table (../../simd/convert.c): the bytes of tmp qmatmul_dequant_row needs past
 * the f32 row, and y[0..K) = the f32 values of the blocks at src. */
static inline int64_t qmatmul_dequant_scratch(int64_t K) { return qk_row_bytes(K); }
static inline void qmatmul_dequant_row(uint32_t wtype, const void *src, int64_t K, float *y, void *tmp) {
    qdequant_row(wtype, src, K, y, tmp);
}

#endif

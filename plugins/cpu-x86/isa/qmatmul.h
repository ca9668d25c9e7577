/* qmatmul.h — quantized MATMUL on cpu-x86: activation rows rounded to 8-bit blocks, integer dot-product kernels per weight format. */
#ifndef APR_X86_QMATMUL_H
#define APR_X86_QMATMUL_H

/*
 * A block-type weight W [K, N] times f32 activations X [K, M]:
 *   1. each row of X is quantized once per node into an "activation row" (qact_quantize_row):
 *      Q8_0-style blocks of 32 (f32 scales) in groups of 128 laid out as the kernels unpack the
 *      weights, for the 32-element weight formats; apr_block_q8_K blocks for the K-quants
 *      (qdotk_act_q8_K);
 *   2. a qdot kernel of the weight's format forms dot products of up to QDOT_MAX_NW weight rows
 *      with up to QDOT_MAX_NA activation rows, in integer SIMD (vpmaddubsw, or vpdpbusd where
 *      the CPU has AVX512-VNNI), scaling by the block scales in f32.
 * The result for one (weight row, activation row) pair must not depend on nw, na or the thread
 * count: every kernel forms each pair's sum in the same order whatever the tile.
 *
 * Variants: in the cpu-avx512 build qact.c and qdot*.c are compiled twice, once as they are and once
 * with -mavx512vnni -DQDOT_VNNI=1, every external name passing through QDOT_NAME so the second
 * copy's names end in _vnni. qmatmul.c picks the copy from the backend's qpath (X86_QDOT_VNNI) at run time.
 */

#include <stdint.h>

#include "apr/apr_abi.h"
#include "apr/apr_quant.h"
#include "../../common/cpu_backend.h"
#include "../probe.h"

#if defined(QDOT_VNNI) && QDOT_VNNI == 2
#define QDOT_NAME(x) x##_avxvnni
#elif defined(QDOT_VNNI) && QDOT_VNNI
#define QDOT_NAME(x) x##_vnni
#else
#define QDOT_NAME(x) x
#endif

/* vpdpbusd on 256-bit registers, in the encoding the copy is built for: VEX (AVX-VNNI) in the
 * _avxvnni copy, EVEX (AVX512-VNNI + VL) in the _vnni copies. acc + the sums of the four products
 * of unsigned bytes of u with the signed bytes of s in each int32 lane, without saturation;
 * vpdpwssd likewise for pairs of int16. */
#if defined(QDOT_VNNI) && QDOT_VNNI == 2
#define qdot_dpbusd256(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#define qdot_dpwssd256(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
#elif defined(QDOT_VNNI) && QDOT_VNNI
#define qdot_dpbusd256(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define qdot_dpwssd256(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#endif

#define QDOT_MAX_NW 4 /* weight rows per kernel call */
#define QDOT_MAX_NA 4 /* activation rows per kernel call */

/* out[j * out_stride + i] = sum_k deq(W row i)[k] * deq(A row j)[k] for i < nw, j < na.
 * w: nw weight rows of K elements in the weight's block format, w_stride bytes apart;
 * a: na activation rows (the layout qact_quantize_row wrote for this weight format),
 * a_stride bytes apart. K is a multiple of the weight's block size; out_stride in floats. */
typedef void qdot_fn(int64_t K, const char *w, int64_t w_stride, int nw, const char *a, int64_t a_stride, int na,
                     float *out, int64_t out_stride);

/* Activation groups of the 32-element formats (qact.c describes the layout): 128 values each. */
#define QACT_GROUP 128
#define QACT_GROUP_BYTES 256
#define QACT_C 128     /* int32 c[16] (Q4_0, Q5_0, Q8_0) */
#define QACT_SA 128    /* f32 sa[16] (Q4_1, Q5_1) */
#define QACT_DA 192    /* f32 da[16] */

/* ---- qact.c (activation rows, kernel lookup) and qdot_legacy.c (the 32-element formats) */

/* Bytes of one activation row of K elements for weight format wtype (a multiple of 64). */
int64_t QDOT_NAME(qact_row_bytes)(uint32_t wtype, int64_t K);
/* Quantizes x[0..K) into the activation row for weight format wtype. */
void QDOT_NAME(qact_quantize_row)(uint32_t wtype, const float *x, int64_t K, void *dst);
/* The kernel for weight format wtype; NULL when there is none. */
qdot_fn *QDOT_NAME(qdot_lookup)(uint32_t wtype);

qdot_fn QDOT_NAME(qdot_q4_0), QDOT_NAME(qdot_q4_1), QDOT_NAME(qdot_q5_0), QDOT_NAME(qdot_q5_1),
    QDOT_NAME(qdot_q8_0);

/* The decode path: out[j * out_stride + i] for i < nrows (any number), j < na, weight rows taken
 * one at a time (each pair exactly as qdot_fn with nw = 1 forms it), so each worker streams its
 * rows as one sequence with no call per row. */
typedef void qdot_rows_fn(int64_t K, const char *w, int64_t w_stride, int64_t nrows, const char *a, int64_t a_stride,
                          int na, float *out, int64_t out_stride);
/* The row-run kernel of a 32-element format; NULL for the others (call qdot_fn with nw = 1). */
qdot_rows_fn *QDOT_NAME(qdot_rows_lookup)(uint32_t wtype);

/* ---- qdot_k.c (K-quants): activation rows are arrays of apr_block_q8_K */

/* x[0..K) (K a multiple of 256) as apr_block_q8_K blocks at dst, the way ggml's quantize_row_q8_K
 * rounds them (bsums included). */
void QDOT_NAME(qdotk_act_q8_K)(const float *x, int64_t K, void *dst);
qdot_fn QDOT_NAME(qdotk_q4_K), QDOT_NAME(qdotk_q5_K), QDOT_NAME(qdotk_q6_K);

#if !(defined(QDOT_VNNI) && QDOT_VNNI)
/* the VNNI copies, for qmatmul.c: _vnni in both variants, _avxvnni in cpu-avx2 only */
int64_t qact_row_bytes_vnni(uint32_t wtype, int64_t K);
void qact_quantize_row_vnni(uint32_t wtype, const float *x, int64_t K, void *dst);
qdot_fn *qdot_lookup_vnni(uint32_t wtype);
qdot_rows_fn *qdot_rows_lookup_vnni(uint32_t wtype);
#if APR_X86_LEVEL == 2
int64_t qact_row_bytes_avxvnni(uint32_t wtype, int64_t K);
void qact_quantize_row_avxvnni(uint32_t wtype, const float *x, int64_t K, void *dst);
qdot_fn *qdot_lookup_avxvnni(uint32_t wtype);
qdot_rows_fn *qdot_rows_lookup_avxvnni(uint32_t wtype);
#endif
#endif

/* Runs a MATMUL node whose W is a block type (called by matmul_run). */
apr_status qmatmul_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
/* Runs consecutive MATMUL nodes that read the same X, each W a block type (called by
 * matmul_run_group): decode matmuls over packed weights of one format run fused (qpack.h), the
 * others one by one. */
#define QMATMUL_HAS_GROUP 1
apr_status qmatmul_run_group(cpu_backend *be, const apr_node_desc *const *nodes, int n, char *err, size_t err_size);
/* matmul_prefetch_plan: qpack_prefetch_plan (a plan for packed decode weights, none for others). */
void qmatmul_prefetch_plan(cpu_backend *be, const apr_node_desc *const *nodes, int n);

/* GET_ROWS of a block table (../../simd/convert.c): y[0..K) = the reference's dequantized row;
 * needs no scratch past the f32 row. */
static inline int64_t qmatmul_dequant_scratch(int64_t K) { (void)K; return 0; }
static inline void qmatmul_dequant_row(uint32_t wtype, const void *src, int64_t K, float *y, void *tmp) {
    (void)tmp;
    apr_dequant_row((apr_dtype)wtype, src, y, K);
}

#endif

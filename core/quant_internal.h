/* quant_internal.h — what core/quant*.c share: the per-format block kernels and the rounding helper. */
#ifndef APR_QUANT_INTERNAL_H
#define APR_QUANT_INTERNAL_H

/*
 * The kernels below work on nb whole blocks. Block memory is reached only through memcpy into a
 * local block, so src and dst need no alignment (a GGUF mapping or a byte buffer at any offset).
 * The arithmetic mirrors ggml's reference quantizers operation for operation, so it must be
 * compiled without floating-point contraction (a * b + c fused into one rounding would change
 * blocks and dequantized values): gcc in an ISO mode (-std=c11, as apr builds) does not contract;
 * the pragmas below also switch it off for clang and for gcc in a GNU mode, where it is on by
 * default (armv8-a has fused multiply-add even at baseline).
 * Block fields are stored little-endian; like the rest of apr, this assumes a little-endian host.
 */

#include <stdint.h>
#include <string.h>

#include "apr/apr_float16.h"
#include "apr/apr_quant.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Round to the nearest integer, ties to even, by ggml's trick: adding 1.5 * 2^23 leaves the
 * rounded integer in the low mantissa bits. Exact for |v| < 2^22; larger magnitudes (which ggml
 * asserts never happen) are clamped first, so the result stays in range instead of wrapping. */
#define QUANT_ROUND_LIMIT 4194303.0f
static inline int quant_round(float v) {
    if (v > QUANT_ROUND_LIMIT) v = QUANT_ROUND_LIMIT;
    if (v < -QUANT_ROUND_LIMIT) v = -QUANT_ROUND_LIMIT;
    float shifted = v + 12582912.0f;
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return (int)(bits & 0x007fffffu) - 0x00400000;
}

/* Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (core/quant_legacy.c): x is nb * 32 values, q is nb blocks. */
void quantl_quant_q4_0(const float *x, void *q, int64_t nb);
void quantl_quant_q4_1(const float *x, void *q, int64_t nb);
void quantl_quant_q5_0(const float *x, void *q, int64_t nb);
void quantl_quant_q5_1(const float *x, void *q, int64_t nb);
void quantl_quant_q8_0(const float *x, void *q, int64_t nb);
void quantl_dequant_q4_0(const void *q, float *x, int64_t nb);
void quantl_dequant_q4_1(const void *q, float *x, int64_t nb);
void quantl_dequant_q5_0(const void *q, float *x, int64_t nb);
void quantl_dequant_q5_1(const void *q, float *x, int64_t nb);
void quantl_dequant_q8_0(const void *q, float *x, int64_t nb);

/* Q4_K, Q5_K, Q6_K, Q8_K (core/quant_k.c): x is nb * 256 values, q is nb blocks. */
void quantk_quant_q4_K(const float *x, void *q, int64_t nb);
void quantk_quant_q5_K(const float *x, void *q, int64_t nb);
void quantk_quant_q6_K(const float *x, void *q, int64_t nb);
void quantk_quant_q8_K(const float *x, void *q, int64_t nb);
void quantk_dequant_q4_K(const void *q, float *x, int64_t nb);
void quantk_dequant_q5_K(const void *q, float *x, int64_t nb);
void quantk_dequant_q6_K(const void *q, float *x, int64_t nb);
void quantk_dequant_q8_K(const void *q, float *x, int64_t nb);

#endif

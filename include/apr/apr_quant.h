/* apr_quant.h — the quantized block formats (ggml-compatible layouts) and their reference quantize and dequantize. */
#ifndef APR_QUANT_H
#define APR_QUANT_H

/*
 * OVERVIEW
 *
 * A row of ne[0] elements of a block dtype is ne[0] / APR_QK_* consecutive blocks. The layouts
 * below are byte for byte those of ggml (ggml-common.h), so GGUF tensors quantized by llama.cpp
 * load as they are and files apr writes load in llama.cpp. Scales stored as "f16" are IEEE
 * binary16 bit patterns (apr_float16.h converts them). All multi-byte fields are little-endian.
 *
 * apr_quant_row and apr_dequant_row are the reference definitions every backend is checked
 * against: the reference plugin and apr-quantize call them, and a SIMD kernel must reproduce
 * apr_dequant_row exactly for the weights it reads. The quantizers follow ggml's reference
 * quantizers: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 give byte-identical blocks; the K-quants search
 * scales the same way and reconstruct with an RMSE no worse than ggml's.
 *
 *     float x[4096]; uint8_t q[4096 / 32 * sizeof(apr_block_q4_0)];
 *     apr_quant_row(APR_Q4_0, x, q, 4096);      // returns 2304 (bytes written)
 *     apr_dequant_row(APR_Q4_0, q, x, 4096);    // x now holds the values q stands for
 *
 * These functions are plain C, thread-safe and allocation-free; libapr exports them, and a plugin
 * may compile core/quant*.c into itself instead of linking libapr.
 */

#include <stdbool.h>
#include <stdint.h>

#include "apr_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define APR_QK 32    /* elements per block of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 */
#define APR_QK_K 256 /* elements per block (super-block) of the K-quants */
#define APR_K_SCALE_SIZE 12 /* bytes of packed 6-bit scales and mins in Q4_K / Q5_K */

/* x[i] = d * (q[i] - 8); q[i] (i < 16) is the low nibble of qs[i], q[i + 16] its high nibble. */
typedef struct apr_block_q4_0 {
    uint16_t d;                /* f16 scale */
    uint8_t qs[APR_QK / 2];    /* 32 nibbles */
} apr_block_q4_0;

/* x[i] = d * q[i] + m, nibbles as in Q4_0. */
typedef struct apr_block_q4_1 {
    uint16_t d;                /* f16 scale */
    uint16_t m;                /* f16 minimum */
    uint8_t qs[APR_QK / 2];
} apr_block_q4_1;

/* x[i] = d * (q[i] - 16); the low 4 bits of q as in Q4_0, bit 4 of q[i] is bit i of qh (a
 * little-endian uint32). */
typedef struct apr_block_q5_0 {
    uint16_t d;                /* f16 scale */
    uint8_t qh[4];             /* fifth bits, element i at bit i */
    uint8_t qs[APR_QK / 2];    /* low nibbles */
} apr_block_q5_0;

/* x[i] = d * q[i] + m, bits as in Q5_0. */
typedef struct apr_block_q5_1 {
    uint16_t d;                /* f16 scale */
    uint16_t m;                /* f16 minimum */
    uint8_t qh[4];
    uint8_t qs[APR_QK / 2];
} apr_block_q5_1;

/* x[i] = d * qs[i]. */
typedef struct apr_block_q8_0 {
    uint16_t d;                /* f16 scale */
    int8_t qs[APR_QK];
} apr_block_q8_0;

/* 8 sub-blocks j of 32: x = d * sc[j] * q - dmin * m[j], q in 0..15, sc and m 6-bit.
 * scales[12] packs (sc, m) for j < 4 in the low 6 bits of scales[j] / scales[j + 4]; for
 * j >= 4 scales[j + 4] holds the low 4 bits of sc (low nibble) and of m (high nibble), and the top
 * 2 bits of scales[j - 4] / scales[j] hold the high 2 bits of sc / m. qs: 32 bytes per pair p of
 * sub-blocks; their low nibbles are sub-block 2p, their high nibbles sub-block 2p + 1. */
typedef struct apr_block_q4_K {
    uint16_t d;                        /* f16 super-block scale for the 6-bit scales */
    uint16_t dmin;                     /* f16 super-block scale for the 6-bit mins */
    uint8_t scales[APR_K_SCALE_SIZE];  /* packed 6-bit scales and mins */
    uint8_t qs[APR_QK_K / 2];          /* 4-bit quants */
} apr_block_q4_K;

/* As Q4_K with q in 0..31: bit 4 of element l of sub-block j is bit j of qh[l % 32]. */
typedef struct apr_block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[APR_K_SCALE_SIZE];
    uint8_t qh[APR_QK_K / 8];          /* fifth bits */
    uint8_t qs[APR_QK_K / 2];          /* low 4 bits */
} apr_block_q5_K;

/* 16 sub-blocks of 16: x = d * scales[j] * (q - 32), q 6-bit: the low 4 bits in ql and the high
 * 2 in qh, in ggml's interleaved order (two halves of 128; within a half, ql[l] and ql[l + 32]
 * hold elements l, l + 32 (low nibbles) and l + 64, l + 96 (high nibbles), qh[l] their high bits
 * at shifts 0, 2, 4, 6). */
typedef struct apr_block_q6_K {
    uint8_t ql[APR_QK_K / 2];          /* low 4 bits */
    uint8_t qh[APR_QK_K / 4];          /* high 2 bits */
    int8_t scales[APR_QK_K / 16];      /* 8-bit sub-block scales */
    uint16_t d;                        /* f16 super-block scale */
} apr_block_q6_K;

/* The activation format of the K-quant dot products: x = d * qs[i]; bsums[j] = sum of qs over
 * elements 16 j .. 16 j + 15. */
typedef struct apr_block_q8_K {
    float d;                           /* f32 scale */
    int8_t qs[APR_QK_K];
    int16_t bsums[APR_QK_K / 16];
} apr_block_q8_K;

_Static_assert(sizeof(apr_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(apr_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(apr_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(apr_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(apr_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(apr_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(apr_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(apr_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(apr_block_q8_K) == 292, "q8_K block");

/* True for the block dtypes above (the ones apr_quant_row and apr_dequant_row take). */
bool apr_quant_is_block(apr_dtype t);

/* Quantizes n f32 values (n a multiple of the block size of t) into blocks of t at dst and
 * returns the bytes written; 0 when t is not a block type or n does not fit its block. src must
 * be finite. */
int64_t apr_quant_row(apr_dtype t, const float *src, void *dst, int64_t n);

/* Writes the n values the blocks at src stand for; false when t is not a block type or n does
 * not fit its block. */
bool apr_dequant_row(apr_dtype t, const void *src, float *dst, int64_t n);

#ifdef __cplusplus
}
#endif

#endif

/* quant.c — the public quantize/dequantize entry points: argument checks and dispatch to the per-format kernels. */
#include "internal.h"
#include "quant_internal.h"

/* One block format: its size and its two kernels (nb whole blocks each). */
typedef struct quant_format {
    int64_t block_elems;
    int64_t block_bytes;
    void (*quant)(const float *x, void *q, int64_t nb);
    void (*dequant)(const void *q, float *x, int64_t nb);
} quant_format;

/* The format of t; NULL when t is not a block dtype. A constant table, so it is thread-safe and
 * needs nothing from libapr (plugins compile this file in). */
static const quant_format *quant_lookup(apr_dtype t) {
    static const quant_format table[APR_DTYPE_LIMIT] = {
        [APR_Q4_0] = {APR_QK, sizeof(apr_block_q4_0), quantl_quant_q4_0, quantl_dequant_q4_0},
        [APR_Q4_1] = {APR_QK, sizeof(apr_block_q4_1), quantl_quant_q4_1, quantl_dequant_q4_1},
        [APR_Q5_0] = {APR_QK, sizeof(apr_block_q5_0), quantl_quant_q5_0, quantl_dequant_q5_0},
        [APR_Q5_1] = {APR_QK, sizeof(apr_block_q5_1), quantl_quant_q5_1, quantl_dequant_q5_1},
        [APR_Q8_0] = {APR_QK, sizeof(apr_block_q8_0), quantl_quant_q8_0, quantl_dequant_q8_0},
        [APR_Q4_K] = {APR_QK_K, sizeof(apr_block_q4_K), quantk_quant_q4_K, quantk_dequant_q4_K},
        [APR_Q5_K] = {APR_QK_K, sizeof(apr_block_q5_K), quantk_quant_q5_K, quantk_dequant_q5_K},
        [APR_Q6_K] = {APR_QK_K, sizeof(apr_block_q6_K), quantk_quant_q6_K, quantk_dequant_q6_K},
        [APR_Q8_K] = {APR_QK_K, sizeof(apr_block_q8_K), quantk_quant_q8_K, quantk_dequant_q8_K},
    };
    if ((unsigned)t >= APR_DTYPE_LIMIT || !table[t].quant) return NULL;
    return &table[t];
}

/* The format of t when n values (n >= 0, a whole number of its blocks) can be converted. */
static const quant_format *quant_check(apr_dtype t, int64_t n) {
    const quant_format *f = quant_lookup(t);
    if (!f || n < 0 || n % f->block_elems != 0) return NULL;
    return f;
}

APR_API bool apr_quant_is_block(apr_dtype t) { return quant_lookup(t) != NULL; }

APR_API int64_t apr_quant_row(apr_dtype t, const float *src, void *dst, int64_t n) {
    const quant_format *f = quant_check(t, n);
    if (!f || (n > 0 && (!src || !dst))) return 0;
    const int64_t nb = n / f->block_elems;
    f->quant(src, dst, nb);
    return nb * f->block_bytes;
}

APR_API bool apr_dequant_row(apr_dtype t, const void *src, float *dst, int64_t n) {
    const quant_format *f = quant_check(t, n);
    if (!f || (n > 0 && (!src || !dst))) return false;
    f->dequant(src, dst, n / f->block_elems);
    return true;
}

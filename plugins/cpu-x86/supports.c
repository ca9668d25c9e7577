/* supports.c — the block formats cpu-x86 has quantized kernels for (the hook ../common/cpu_supports.c asks); baseline code. */
#include <stdint.h>

#include "apr/apr_quant.h"

#include "../common/cpu_supports.h"
#include "../common/opcheck.h"

/* The K-quant dot products (isa/qdot_k.c) may not be built in: then their names are 0. */
extern void qdotk_act_q8_K(const float *x, int64_t K, void *dst) __attribute__((weak, visibility("hidden")));

int supports_block_kernels(uint32_t dtype, int matmul) {
    return !(matmul && opcheck_dtype_block(dtype) == APR_QK_K && !qdotk_act_q8_K);
}

/* supports.c — the block formats cpu-neon has quantized kernels for (the hook ../common/cpu_supports.c asks). */
#include <stdint.h>

#include "../common/cpu_supports.h"

/* isa/qunpack.c unpacks every weight block format (all but the activation format Q8_K, which
 * cpu_supports.c refuses before asking) for MATMUL and GET_ROWS alike. */
int supports_block_kernels(uint32_t dtype, int matmul) {
    (void)dtype;
    (void)matmul;
    return 1;
}

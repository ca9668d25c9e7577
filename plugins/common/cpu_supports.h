/* cpu_supports.h — which nodes a CPU plugin's kernels run: structural check, then dtypes and shapes. */
#ifndef APR_CPU_SUPPORTS_H
#define APR_CPU_SUPPORTS_H

#include <stddef.h>
#include <stdint.h>

#include "apr/apr_abi.h"

/* The supports slot: APR_OK, or APR_ERR_UNSUPPORTED and a reason (structural faults found by
 * opcheck_node included). Baseline code. */
apr_status cpu_supports_node(void *backend, const apr_node_desc *n, char *why, size_t why_size);
/* 1 when source i is present (opcheck's rule: an optional one needs a buffer). */
int cpu_supports_has_src(const apr_node_desc *n, int i);

/* Defined by each CPU plugin (its supports.c): 1 when it has kernels for a weight (matmul = 1) or
 * a GET_ROWS table (matmul = 0) of block type dtype (any block type but Q8_K), else 0. */
int supports_block_kernels(uint32_t dtype, int matmul);

#endif

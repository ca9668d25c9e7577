/* supports.h — which nodes the cpu-neon kernels run: structural check, then dtypes and shapes. */
#ifndef APR_NEON_SUPPORTS_H
#define APR_NEON_SUPPORTS_H

#include <stddef.h>

#include "apr/apr_abi.h"

/* The supports slot: APR_OK, or APR_ERR_UNSUPPORTED and a reason (structural faults found by
 * opcheck_node included). */
apr_status supports_node(void *backend, const apr_node_desc *n, char *why, size_t why_size);
/* 1 when source i is present (opcheck's rule: an optional one needs a buffer). */
int supports_has_src(const apr_node_desc *n, int i);

#endif

/* neon_ops.h — the op kernels the baseline dispatcher calls; each lives in isa/ and runs one node on the pool. */
#ifndef APR_NEON_OPS_H
#define APR_NEON_OPS_H

#include "apr/apr_abi.h"
#include "neon_backend.h"

/* Each runs one node whose shape supports() accepted, with host-visible data, and returns
 * APR_OK or a status with a one-line message (bad ids, out of memory). They are compiled with
 * the variant's ISA flags: call them only once the probe has passed. */
apr_status matmul_run(neon_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status eltwise_run(neon_backend *be, const apr_node_desc *n, char *err, size_t err_size);     /* ADD MUL SCALE SILU GELU SWIGLU */
apr_status rmsnorm_run(neon_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status rope_run(neon_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status softmax_run(neon_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status attention_run(neon_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status convert_run(neon_backend *be, const apr_node_desc *n, char *err, size_t err_size);     /* CPY GET_ROWS CONCAT */
apr_status argmax_run(neon_backend *be, const apr_node_desc *n, char *err, size_t err_size);

#endif

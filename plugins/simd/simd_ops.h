/* simd_ops.h — the op kernels of plugins/simd/ that cpu_backend_compute dispatches to; each runs one node on the pool. */
#ifndef APR_SIMD_OPS_H
#define APR_SIMD_OPS_H

#include "apr/apr_abi.h"
#include "../common/cpu_backend.h"

/* One source, compiled once per CPU plugin against that plugin's isa/vec.h and with its ISA flags.
 * Each runs one node whose shape supports() accepted, with host-visible data, and returns
 * APR_OK or a status with a one-line message (bad ids, out of memory). They are compiled with
 * the variant's ISA flags: call them only once the probe has passed. */
apr_status matmul_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
/* n consecutive MATMUL nodes that read the same X (cpu_backend_compute finds them): where the ISA
 * can, decode matmuls over packed weights run as one pass; otherwise each runs as matmul_run. */
apr_status matmul_run_group(cpu_backend *be, const apr_node_desc *const *nodes, int n, char *err, size_t err_size);
/* Fills be->ahead for the matmul run nodes[0..n) that comes next: what each helper's share of it
 * reads first, where the ISA knows (decode over packed weights); else leaves it empty. */
void matmul_prefetch_plan(cpu_backend *be, const apr_node_desc *const *nodes, int n);
apr_status eltwise_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);     /* ADD MUL SCALE SILU GELU SWIGLU */
apr_status rmsnorm_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status rope_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status softmax_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status attention_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status convert_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);     /* CPY GET_ROWS CONCAT */
apr_status set_rows_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);    /* SET_ROWS, in place */
apr_status argmax_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status adamw_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);      /* ADAMW, in place */

/* ABI 5: gradients and training. */
apr_status matmul_grad_x_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size); /* grad_matmul.c */
apr_status matmul_grad_w_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status grad_eltwise_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);  /* SILU_GRAD GELU_GRAD */
apr_status acc_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);           /* ACC, in place */
apr_status sum_repeats_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status grad_row_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);      /* RMS_NORM_GRAD SOFTMAX_GRAD */
apr_status rope_grad_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status get_rows_grad_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);
apr_status attention_grad_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size); /* grad_attn.c */
apr_status cross_entropy_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);  /* loss.c: CROSS_ENTROPY(_GRAD) */
apr_status sgd_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);            /* SGD, in place (optim.c) */

#endif

/* ref_ops.h — the reference op kernels; each function's prefix names the ref_*.c file that holds it. */
#ifndef APR_REF_OPS_H
#define APR_REF_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "apr/apr_abi.h"

/* Every kernel takes a node that has passed opcheck_node and opcheck_bounds and whose tensors all
 * have host addresses; it implements the definition in apr_abi.h and nothing more. Kernels that
 * can still fail (bad data, no memory) return a status and write err. */

/* ref_copy.c: ops that move elements without arithmetic. */
apr_status refcopy_get_rows(const apr_node_desc *n, char *err, size_t err_size);
/* Writes rows into dst (= src0, the table) in place, in index order: of repeated ids the last row lands. */
apr_status refcopy_set_rows(const apr_node_desc *n, char *err, size_t err_size);
void refcopy_cpy(const apr_node_desc *n);
void refcopy_concat(const apr_node_desc *n);

/* ref_matmul.c */
apr_status refmatmul_run(const apr_node_desc *n, char *err, size_t err_size);

/* ref_elem.c: element-wise arithmetic. */
void refelem_add(const apr_node_desc *n);
void refelem_mul(const apr_node_desc *n);
void refelem_scale(const apr_node_desc *n);
void refelem_silu(const apr_node_desc *n);
void refelem_gelu(const apr_node_desc *n);
void refelem_swiglu(const apr_node_desc *n);

/* ref_row.c: ops that reduce along dim 0. */
void refrow_rms_norm(const apr_node_desc *n);
void refrow_softmax(const apr_node_desc *n);
void refrow_argmax(const apr_node_desc *n);

/* ref_rope.c */
void refrope_run(const apr_node_desc *n);
/* ROPE's rotation of src0 (x, or ROPE_GRAD's dY) into dst, by the angles of the positions in src1
 * and the optional frequency factors in src2; transposed: by minus each angle, which is ROPE_GRAD
 * (the transpose of a rotation is its inverse). */
void refrope_rotate(const apr_node_desc *n, bool transposed);

/* ref_optim.c: ADAMW, written in place into src0 (= dst), src2 and src3; SGD into src0 (= dst) and src2;
 * ACC into src0 (= dst). */
void refoptim_adamw(const apr_node_desc *n);
void refoptim_sgd(const apr_node_desc *n);
void refoptim_acc(const apr_node_desc *n);

/* ref_grad.c: the gradients of the forward ops (ABI 5). */
apr_status refgrad_matmul_x(const apr_node_desc *n, char *err, size_t err_size);
void refgrad_matmul_w(const apr_node_desc *n);
apr_status refgrad_get_rows(const apr_node_desc *n, char *err, size_t err_size);
void refgrad_sum_repeats(const apr_node_desc *n);
void refgrad_rms_norm(const apr_node_desc *n);
void refgrad_rope(const apr_node_desc *n);
void refgrad_softmax(const apr_node_desc *n);
void refgrad_silu(const apr_node_desc *n);
void refgrad_gelu(const apr_node_desc *n);

/* ref_grad_attn.c: ATTENTION_GRAD (dQ, dK and dV packed into dst). */
apr_status refgradattn_run(const apr_node_desc *n, char *err, size_t err_size);

/* ref_loss.c: CROSS_ENTROPY and its gradient; a target outside [0, V) other than -1 is APR_ERR_INVALID. */
apr_status refloss_cross_entropy(const apr_node_desc *n, char *err, size_t err_size);
apr_status refloss_cross_entropy_grad(const apr_node_desc *n, char *err, size_t err_size);

/* ref_kernel.c: runs the kernel of n's op; n has passed opcheck_node and opcheck_bounds, and its
 * tensors have host addresses. */
apr_status refkernel_run(const apr_node_desc *n, char *err, size_t err_size);

/* ref_attn.c */
apr_status refattn_run(const apr_node_desc *n, char *err, size_t err_size);

#endif

/* ref_kernel.c — the reference kernel of each op, picked by op number (the reference plugin and the
 * test plugins that reuse its kernels call this after their own checks). */
#include "../common/msg.h"
#include "ref_ops.h"

apr_status refkernel_run(const apr_node_desc *n, char *err, size_t err_size) {
    switch ((apr_op)n->op) {
    case APR_OP_GET_ROWS: return refcopy_get_rows(n, err, err_size);
    case APR_OP_MATMUL: return refmatmul_run(n, err, err_size);
    case APR_OP_ADD: refelem_add(n); return APR_OK;
    case APR_OP_MUL: refelem_mul(n); return APR_OK;
    case APR_OP_SCALE: refelem_scale(n); return APR_OK;
    case APR_OP_RMS_NORM: refrow_rms_norm(n); return APR_OK;
    case APR_OP_ROPE: refrope_run(n); return APR_OK;
    case APR_OP_SOFTMAX: refrow_softmax(n); return APR_OK;
    case APR_OP_SILU: refelem_silu(n); return APR_OK;
    case APR_OP_GELU: refelem_gelu(n); return APR_OK;
    case APR_OP_SWIGLU: refelem_swiglu(n); return APR_OK;
    case APR_OP_ATTENTION: return refattn_run(n, err, err_size);
    case APR_OP_CPY: refcopy_cpy(n); return APR_OK;
    case APR_OP_CONCAT: refcopy_concat(n); return APR_OK;
    case APR_OP_ARGMAX: refrow_argmax(n); return APR_OK;
    case APR_OP_SET_ROWS: return refcopy_set_rows(n, err, err_size); /* = APR_OP_COUNT_V1 */
    case APR_OP_ADAMW: refoptim_adamw(n); return APR_OK;
    case APR_OP_MATMUL_GRAD_X: return refgrad_matmul_x(n, err, err_size); /* = APR_OP_COUNT_V4 */
    case APR_OP_MATMUL_GRAD_W: refgrad_matmul_w(n); return APR_OK;
    case APR_OP_GET_ROWS_GRAD: return refgrad_get_rows(n, err, err_size);
    case APR_OP_SUM_REPEATS: refgrad_sum_repeats(n); return APR_OK;
    case APR_OP_RMS_NORM_GRAD: refgrad_rms_norm(n); return APR_OK;
    case APR_OP_ROPE_GRAD: refgrad_rope(n); return APR_OK;
    case APR_OP_SOFTMAX_GRAD: refgrad_softmax(n); return APR_OK;
    case APR_OP_SILU_GRAD: refgrad_silu(n); return APR_OK;
    case APR_OP_GELU_GRAD: refgrad_gelu(n); return APR_OK;
    case APR_OP_ATTENTION_GRAD: return refgradattn_run(n, err, err_size);
    case APR_OP_CROSS_ENTROPY: return refloss_cross_entropy(n, err, err_size);
    case APR_OP_CROSS_ENTROPY_GRAD: return refloss_cross_entropy_grad(n, err, err_size);
    case APR_OP_SGD: refoptim_sgd(n); return APR_OK;
    case APR_OP_ACC: refoptim_acc(n); return APR_OK;
    case APR_OP_NONE:
    case APR_OP_COUNT_V5: break;
    }
    /* opcheck_node knows exactly the ops above, so this is a bug in one of the two lists. */
    return msg_set(err, err_size, APR_ERR_INTERNAL, "reference: op %u passed opcheck but has no kernel", (unsigned)n->op);
}


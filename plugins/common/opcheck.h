/* opcheck.h — validates an op node against the definitions in apr_abi.h, for any backend's supports() and compute(). */
#ifndef APR_PLUGIN_OPCHECK_H
#define APR_PLUGIN_OPCHECK_H

/*
 * Everything here is backend-independent: it says whether a node means something under the ABI,
 * never whether a particular backend can run it. A backend's supports() is typically
 *
 *     if (opcheck_node(node, why, size) != APR_OK) return APR_ERR_UNSUPPORTED;
 *     ...then its own dtype, shape and stride coverage...
 *
 * and its compute() repeats opcheck_node and adds opcheck_bounds, because buffers are bound only
 * by then. Messages are one line that starts with the op name, e.g.
 * "matmul: src1 ne[0]=63 != src0 ne[0]=64".
 *
 * Presence of sources: src[i] with i >= n_src is absent. Below n_src, a required source is always
 * taken as present (supports() may be asked before buffers exist), and an optional one (rope's
 * freq factors, softmax's and attention's mask, attention_grad's mask, src3 of 5) is present exactly
 * when its buffer is not NULL;
 * an all-zero slot (struct_size 0, as the core leaves an absent one) is absent too.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apr/apr_abi.h"

/* Structural validity: struct sizes, op number, source count, dtypes, shapes and parameters as
 * apr_abi.h defines them for each op. Strides are not judged (any view is meaningful), except for
 * an op that writes in place: SET_ROWS's and ADAMW's dst must be their src0 (same dtype, ne, nb,
 * buffer, offset and data; in supports() the same placeholder), and the elements of every tensor they
 * write must not overlap (each |nb| at least the extent of the dims of smaller stride). Data is not read. APR_ERR_UNSUPPORTED
 * for an op or dtype this ABI version does not know, otherwise APR_ERR_INVALID for anything that
 * breaks a definition. */
apr_status opcheck_node(const apr_node_desc *n, char *why, size_t why_size);

/* Every element of dst and of each present source lies inside its buffer (offset, ne, nb against
 * buffer->size); a tensor with elements must have a buffer. Call after opcheck_node succeeded.
 * APR_ERR_INVALID otherwise. */
apr_status opcheck_bounds(const apr_node_desc *n, char *why, size_t why_size);

/* True when source i is present under the rule above; call after opcheck_node succeeded. */
bool opcheck_src_present(const apr_node_desc *n, uint32_t i);

/* Source i: src[i] for the first APR_MAX_SRC, src_ext beyond (ABI 4; opcheck_node has checked that
 * struct_size covers every source below n_src). */
static inline const apr_tensor_desc *opcheck_src(const apr_node_desc *n, uint32_t i) {
    return i < APR_MAX_SRC ? &n->src[i] : &n->src_ext[i - APR_MAX_SRC];
}

/* "matmul", ...; NULL for a number this ABI version does not know (APR_OP_NONE included). */
const char *opcheck_op_name(uint32_t op);

/* "f32", "f16", "bf16", "i32", "q4_0", ...; NULL for an unknown number. */
const char *opcheck_dtype_name(uint32_t dtype);

/* Bytes per element, or per block for the block types; 0 for an unknown dtype. */
size_t opcheck_dtype_size(uint32_t dtype);

/* Elements per block: 32 or 256 for the block types, 1 for the others, 0 for an unknown dtype. Along
 * dim 0 a block tensor has ne[0] / block units nb[0] apart. */
int64_t opcheck_dtype_block(uint32_t dtype);

/* f32, f16 or bf16: the dtypes an "F" in apr_abi.h admits. */
bool opcheck_dtype_is_float(uint32_t dtype);

/* Product of ne[0..3]: 0 when any dimension is 0, INT64_MAX when it overflows. Assumes
 * opcheck_node succeeded (no ne < 0). */
int64_t opcheck_nelements(const apr_tensor_desc *t);

/* The elements fill one dense range in index order: nb[i] = element size * ne[0] * ... * ne[i-1] for
 * every dimension with ne[i] > 1 (strides of size-1 dimensions do not matter). Empty is contiguous. */
bool opcheck_is_contiguous(const apr_tensor_desc *t);

#endif

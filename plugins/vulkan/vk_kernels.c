/* vk_kernels.c — the compute shaders (SPIR-V compiled from shaders/ at build time) and, per node,
 * which one runs it and over how many workgroups. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/msg.h"
#include "../common/opcheck.h"
#include "vk_internal.h"

static const uint32_t spv_eltwise[] =
#include "eltwise.spv.h"
    ;
static const uint32_t spv_rms_norm[] =
#include "rms_norm.spv.h"
    ;
static const uint32_t spv_rope[] =
#include "rope.spv.h"
    ;
static const uint32_t spv_get_rows[] =
#include "get_rows.spv.h"
    ;
static const uint32_t spv_cpy[] =
#include "cpy.spv.h"
    ;
static const uint32_t spv_set_rows[] =
#include "set_rows.spv.h"
    ;
static const uint32_t spv_matmul[] =
#include "matmul.spv.h"
    ;
static const uint32_t spv_attention[] =
#include "attention.spv.h"
    ;
static const uint32_t spv_ids_check[] =
#include "ids_check.spv.h"
    ;
static const uint32_t spv_softmax[] =
#include "softmax.spv.h"
    ;
static const uint32_t spv_argmax[] =
#include "argmax.spv.h"
    ;
static const uint32_t spv_concat[] =
#include "concat.spv.h"
    ;
static const uint32_t spv_adamw[] =
#include "adamw.spv.h"
    ;

enum {
    K_ELTWISE, K_RMS_NORM, K_ROPE, K_GET_ROWS, K_CPY, K_SET_ROWS, K_MATMUL, K_ATTENTION, K_IDS_CHECK,
    K_SOFTMAX, K_ARGMAX, K_CONCAT, K_ADAMW, K_COUNT
};

#define KERNEL(k, name) [k] = {#name, spv_##name, sizeof spv_##name}
const vk_kernel_info vk_kernels[K_COUNT] = {
    KERNEL(K_ELTWISE, eltwise),   KERNEL(K_RMS_NORM, rms_norm), KERNEL(K_ROPE, rope),
    KERNEL(K_GET_ROWS, get_rows), KERNEL(K_CPY, cpy),           KERNEL(K_SET_ROWS, set_rows),
    KERNEL(K_MATMUL, matmul),     KERNEL(K_ATTENTION, attention), KERNEL(K_IDS_CHECK, ids_check),
    KERNEL(K_SOFTMAX, softmax),   KERNEL(K_ARGMAX, argmax),     KERNEL(K_CONCAT, concat),
    KERNEL(K_ADAMW, adamw),
};
const int vk_kernel_count = K_COUNT;
const int vk_kernel_ids_check = K_IDS_CHECK;

int vkkernel_dtype(uint32_t dtype) {
    switch (dtype) {
    case APR_F32: return 0;
    case APR_F16: return 1;
    case APR_BF16: return 2;
    case APR_I32: return 3;
    case APR_Q4_0: return 4;
    case APR_Q4_1: return 5;
    case APR_Q5_0: return 6;
    case APR_Q5_1: return 7;
    case APR_Q8_0: return 8;
    case APR_Q4_K: return 9;
    case APR_Q5_K: return 10;
    case APR_Q6_K: return 11;
    default: return -1;
    }
}

static bool is_float(uint32_t t) { return t == APR_F32 || t == APR_F16 || t == APR_BF16; }
static bool is_block(uint32_t t) { return vkkernel_dtype(t) >= 4; }

static uint32_t ceil_div(uint64_t a, uint64_t b) { return (uint32_t)((a + b - 1) / b); }

/* Strides the shaders can follow: non-negative whole elements (every index is a uint32 byte address). */
static bool strides_ok(const apr_tensor_desc *t) {
    int64_t es = (int64_t)opcheck_dtype_size(t->dtype);
    for (int d = 0; d < APR_MAX_DIMS; d++)
        if (t->nb[d] < 0 || (es && t->nb[d] % es)) return false;
    return true;
}

#define NO(...) return (msg_set(why, why_size, APR_ERR_UNSUPPORTED, __VA_ARGS__), (vk_launch){.kernel = -1})

vk_launch vkkernel_plan(const apr_node_desc *n, char *why, size_t why_size) {
    const apr_tensor_desc *d = &n->dst, *a = &n->src[0], *b = &n->src[1];
    const char *op = opcheck_op_name(n->op);
    if (!strides_ok(d)) NO("vulkan: %s: dst strides are negative or not whole elements", op);
    for (uint32_t i = 0; i < n->n_src; i++) {
        if (!opcheck_src_present(n, i)) continue;
        const apr_tensor_desc *s = opcheck_src(n, i);
        if (vkkernel_dtype(s->dtype) < 0 || (is_block(s->dtype) && !(i == 0 && (n->op == APR_OP_GET_ROWS || n->op == APR_OP_MATMUL))))
            NO("vulkan: %s: src%u dtype %s not supported", op, i, opcheck_dtype_name(s->dtype));
        if (!strides_ok(s)) NO("vulkan: %s: src%u strides are negative or not whole elements", op, i);
    }
    if (vkkernel_dtype(d->dtype) < 0 || is_block(d->dtype)) NO("vulkan: %s: dst dtype %s not supported", op, opcheck_dtype_name(d->dtype));
    const uint64_t ne = (uint64_t)opcheck_nelements(d);
    if (ne >= UINT32_MAX / 2) NO("vulkan: %s: %llu elements, more than one launch covers", op, (unsigned long long)ne);
    const uint64_t rows = (uint64_t)(d->ne[1] * d->ne[2] * d->ne[3]);
    vk_launch l = {.kernel = -1};
    switch (n->op) {
    case APR_OP_ADD:
    case APR_OP_MUL:
    case APR_OP_SCALE:
    case APR_OP_SILU:
    case APR_OP_GELU:
    case APR_OP_SWIGLU: {
        static const uint32_t modes[] = {[APR_OP_ADD] = 0, [APR_OP_MUL] = 1, [APR_OP_SCALE] = 2,
                                         [APR_OP_SILU] = 3, [APR_OP_GELU] = 4, [APR_OP_SWIGLU] = 5};
        for (uint32_t i = 0; i < n->n_src; i++)
            if (n->src[i].dtype != APR_F32) NO("vulkan: %s: src%u must be f32", op, i);
        if (d->dtype != APR_F32) NO("vulkan: %s: dst must be f32", op);
        l = (vk_launch){.kernel = K_ELTWISE, .mode = modes[n->op], .count = (uint32_t)ne, .groups = ceil_div(ne, 256)};
        break;
    }
    case APR_OP_RMS_NORM:
        if (a->dtype != APR_F32 || d->dtype != APR_F32) NO("vulkan: rms_norm: f32 only");
        l = (vk_launch){.kernel = K_RMS_NORM, .count = (uint32_t)rows, .groups = (uint32_t)rows};
        break;
    case APR_OP_ROPE: {
        if (a->dtype != APR_F32 || d->dtype != APR_F32) NO("vulkan: rope: f32 only");
        const uint64_t n_rot = (uint64_t)n->iparams[0], per_row = n_rot / 2 + ((uint64_t)a->ne[0] - n_rot);
        const uint64_t c = per_row * (uint64_t)(a->ne[1] * a->ne[2]);
        l = (vk_launch){.kernel = K_ROPE, .mode = opcheck_src_present(n, 2) ? 1u : 0u, .count = (uint32_t)c,
                        .groups = ceil_div(c, 256), .n_extra = (uint32_t)(n_rot / 2)};
        break;
    }
    case APR_OP_GET_ROWS:
        if (!is_float(a->dtype) && !is_block(a->dtype)) NO("vulkan: get_rows: %s tables not supported", opcheck_dtype_name(a->dtype));
        l = (vk_launch){.kernel = K_GET_ROWS, .count = (uint32_t)ne, .groups = ceil_div(ne, 256), .check_ids = true,
                        .ids_tensor = 2};
        break;
    case APR_OP_CPY:
        if (!((is_float(a->dtype) && is_float(d->dtype)) || (a->dtype == APR_I32 && d->dtype == APR_I32)))
            NO("vulkan: cpy: %s to %s not supported", opcheck_dtype_name(a->dtype), opcheck_dtype_name(d->dtype));
        l = (vk_launch){.kernel = K_CPY, .count = (uint32_t)ne, .groups = ceil_div(ne, 256)};
        break;
    case APR_OP_SET_ROWS: {
        const uint32_t rows_in = (uint32_t)n->src[2].ne[0];
        l = (vk_launch){.kernel = K_SET_ROWS, .count = rows_in, .groups = rows_in, .check_ids = true, .ids_tensor = 3};
        break;
    }
    case APR_OP_MATMUL:
        if (!is_float(a->dtype) && !is_block(a->dtype)) NO("vulkan: matmul: %s weights not supported", opcheck_dtype_name(a->dtype));
        if (b->dtype != APR_F32) NO("vulkan: matmul: activations must be f32");
        l = (vk_launch){.kernel = K_MATMUL, .count = (uint32_t)ne, .groups = ceil_div(ne, 8)};
        break;
    case APR_OP_ATTENTION: {
        if (a->ne[0] > 256) NO("vulkan: attention: head size %lld > 256 not supported", (long long)a->ne[0]);
        if (n->src[2].ne[0] > 1024) NO("vulkan: attention: value size %lld > 1024 not supported", (long long)n->src[2].ne[0]);
        const uint64_t c = (uint64_t)(a->ne[1] * a->ne[2]);
        l = (vk_launch){.kernel = K_ATTENTION, .mode = opcheck_src_present(n, 3) ? 1u : 0u, .count = (uint32_t)c,
                        .groups = (uint32_t)c};
        break;
    }
    case APR_OP_SOFTMAX:
        if (a->dtype != APR_F32) NO("vulkan: softmax: f32 only");
        l = (vk_launch){.kernel = K_SOFTMAX, .mode = opcheck_src_present(n, 1) ? 1u : 0u, .count = (uint32_t)rows,
                        .groups = (uint32_t)rows};
        break;
    case APR_OP_ARGMAX: {
        const uint32_t r = (uint32_t)(a->ne[1] * a->ne[2] * a->ne[3]);
        l = (vk_launch){.kernel = K_ARGMAX, .count = r, .groups = r};
        break;
    }
    case APR_OP_CONCAT:
        l = (vk_launch){.kernel = K_CONCAT, .count = (uint32_t)ne, .groups = ceil_div(ne, 256)};
        break;
    case APR_OP_ADAMW: {
        const uint64_t c = (uint64_t)opcheck_nelements(a);
        l = (vk_launch){.kernel = K_ADAMW, .count = (uint32_t)c, .groups = ceil_div(c, 256)};
        break;
    }
    default:
        if (n->op >= APR_OP_COUNT_V4) NO("vulkan: %s: the gradient and training ops (ABI 5) have no shader yet; they run on a CPU backend", op);
        NO("vulkan: %s not implemented yet", op);
    }
    return l;
}

void vkkernel_extra(const apr_node_desc *n, const vk_launch *l, uint32_t *extra) {
    if (n->op != APR_OP_ROPE) return;
    const double base = n->fparams[0], scale = n->fparams[1], n_rot = n->iparams[0];
    for (uint32_t i = 0; i < l->n_extra; i++) {
        float f = (float)(scale * pow(base, -2.0 * i / n_rot));
        memcpy(&extra[i], &f, 4);
    }
}

/* partial.c — a test backend with device-like memory (not host visible, no import) that runs only
 * a few elementwise ops, so the executor must split graphs and copy between backends. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "testplug.h"

static apr_status partial_alloc(void *b, uint64_t size, apr_buffer *out, char *err, size_t n) {
    (void)b;
    void *p = calloc(1, size ? size : 1);
    if (!p) return msg_set(err, n, APR_ERR_NOMEM, "partial: out of memory");
    out->flags = 0; /* the core must go through buffer_read/buffer_write */
    out->size = size;
    out->host_ptr = NULL;
    out->handle = p;
    return APR_OK;
}

static void partial_free(void *b, apr_buffer *buf) {
    (void)b;
    free(buf->handle);
    buf->handle = NULL;
}

static apr_status partial_write(void *b, apr_buffer *buf, uint64_t off, const void *src, uint64_t size, char *err,
                                size_t n) {
    (void)b;
    if (off > buf->size || size > buf->size - off) return msg_set(err, n, APR_ERR_INVALID, "partial: write out of range");
    memcpy((char *)buf->handle + off, src, size);
    return APR_OK;
}

static apr_status partial_read(void *b, const apr_buffer *buf, uint64_t off, void *dst, uint64_t size, char *err,
                               size_t n) {
    (void)b;
    if (off > buf->size || size > buf->size - off) return msg_set(err, n, APR_ERR_INVALID, "partial: read out of range");
    memcpy(dst, (const char *)buf->handle + off, size);
    return APR_OK;
}

static bool partial_contiguous_f32(const apr_tensor_desc *t) {
    return t->dtype == APR_F32 && t->nb[0] == 4 && t->nb[1] == 4 * t->ne[0] && t->nb[2] == t->nb[1] * t->ne[1] &&
           t->nb[3] == t->nb[2] * t->ne[2];
}

static int64_t partial_count(const apr_tensor_desc *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

static apr_status partial_supports(void *b, const apr_node_desc *node, char *why, size_t n) {
    (void)b;
    if (node->op != APR_OP_ADD && node->op != APR_OP_MUL && node->op != APR_OP_SCALE && node->op != APR_OP_SILU)
        return msg_set(why, n, APR_ERR_UNSUPPORTED, "partial runs only add, mul, scale and silu");
    unsigned n_src = node->op == APR_OP_ADD || node->op == APR_OP_MUL ? 2 : 1;
    if (!partial_contiguous_f32(&node->dst)) return msg_set(why, n, APR_ERR_UNSUPPORTED, "partial: dst not contiguous f32");
    for (unsigned i = 0; i < n_src; i++)
        if (!partial_contiguous_f32(&node->src[i]) || partial_count(&node->src[i]) != partial_count(&node->dst))
            return msg_set(why, n, APR_ERR_UNSUPPORTED, "partial: sources must be contiguous f32 of dst's size");
    return APR_OK;
}

static float *partial_ptr(const apr_tensor_desc *t) { return (float *)((char *)t->buffer->handle + t->offset); }

static apr_status partial_compute(void *b, const apr_subgraph *g, char *err, size_t n) {
    for (uint32_t k = 0; k < g->n_nodes; k++) {
        const apr_node_desc *node = (const apr_node_desc *)((const char *)g->nodes + (size_t)k * g->node_stride);
        char why[128];
        if (partial_supports(b, node, why, sizeof why) != APR_OK) return msg_set(err, n, APR_ERR_UNSUPPORTED, "%s", why);
        float *d = partial_ptr(&node->dst);
        const float *x = partial_ptr(&node->src[0]);
        const float *y = node->op == APR_OP_ADD || node->op == APR_OP_MUL ? partial_ptr(&node->src[1]) : NULL;
        int64_t cnt = partial_count(&node->dst);
        for (int64_t i = 0; i < cnt; i++) {
            switch (node->op) {
            case APR_OP_ADD: d[i] = x[i] + y[i]; break;
            case APR_OP_MUL: d[i] = x[i] * y[i]; break;
            case APR_OP_SCALE: d[i] = x[i] * node->fparams[0]; break;
            default: d[i] = x[i] / (1.0f + expf(-x[i])); break;
            }
        }
    }
    return APR_OK;
}

static const apr_plugin partial_table = {
    .struct_size = sizeof(apr_plugin), .abi_version = APR_ABI_VERSION, .name = "partial",
    .description = "executor test backend: add, mul, scale, silu in non-host memory", .buffer_alignment = 256,
    .probe = testplug_probe, .create = testplug_create, .destroy = testplug_destroy, .supports = partial_supports,
    .buffer_alloc = partial_alloc, .buffer_import = NULL, .buffer_free = partial_free, .buffer_write = partial_write,
    .buffer_read = partial_read, .compute = partial_compute};

TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n);
apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n) {
    if (core_abi < 1) return msg_set(err, n, APR_ERR_ABI, "partial needs core ABI >= 1");
    *out = &partial_table;
    return APR_OK;
}

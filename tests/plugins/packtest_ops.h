/* packtest_ops.h — the body of the weight-packing test plugins: f32 MATMUL (reading W in either
 * layout) and GET_ROWS on host memory, and a weight_pack that writes the layout of packtest.h. */
#ifndef APR_PACKTEST_OPS_H
#define APR_PACKTEST_OPS_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/common/opcheck.h"
#include "packtest.h"
#include "testplug.h"

static packtest_counters packtest_state = {.magic = PACKTEST_MAGIC};

/* What a packed buffer's handle points to. */
typedef struct packtest_copy {
    uint32_t magic;  /* PACKTEST_MAGIC while alive */
    int64_t K, N;    /* the weight's ne[0], ne[1] */
    float v[];       /* [K * N] in the packed layout; the buffer's host_ptr */
} packtest_copy;

static apr_status packtest_create(const apr_backend_config *c, void **b, char *err, size_t n) {
    (void)c; (void)err; (void)n;
    *b = &packtest_state;
    return APR_OK;
}

static bool packtest_dense_f32(const apr_tensor_desc *t) {
    return t->dtype == APR_F32 && t->ne[2] == 1 && t->ne[3] == 1 && t->nb[0] == 4 && t->nb[1] == 4 * t->ne[0];
}

static apr_status packtest_supports(void *b, const apr_node_desc *node, char *why, size_t n) {
    (void)b;
    if (opcheck_node(node, why, n) != APR_OK) return APR_ERR_UNSUPPORTED;
    if (node->op == APR_OP_MATMUL) {
        if (!packtest_dense_f32(&node->src[0]) || !packtest_dense_f32(&node->src[1]) || !packtest_dense_f32(&node->dst))
            return msg_set(why, n, APR_ERR_UNSUPPORTED, "packtest: matmul of dense 2-D f32 only");
        return APR_OK;
    }
    if (node->op == APR_OP_GET_ROWS) {
        if (!packtest_dense_f32(&node->src[0]) || !packtest_dense_f32(&node->dst) || node->src[1].nb[0] != 4)
            return msg_set(why, n, APR_ERR_UNSUPPORTED, "packtest: get_rows of a dense 2-D f32 table only");
        return APR_OK;
    }
    return msg_set(why, n, APR_ERR_UNSUPPORTED, "packtest runs only matmul and get_rows");
}

static apr_status packtest_get_rows(packtest_counters *c, const apr_node_desc *node, char *err, size_t n) {
    const apr_tensor_desc *t = &node->src[0];
    if (t->buffer->flags & APR_BUFFER_PACKED)
        return msg_set(err, n, APR_ERR_INTERNAL, "packtest: get_rows was handed a packed table");
    const int32_t *ids = node->src[1].data;
    for (int64_t i = 0; i < node->src[1].ne[0]; i++) {
        if (ids[i] < 0 || ids[i] >= t->ne[1]) return msg_set(err, n, APR_ERR_INVALID, "packtest: id %d out of range", ids[i]);
        memcpy((char *)node->dst.data + i * node->dst.nb[1], (const char *)t->data + ids[i] * t->nb[1], (size_t)(4 * t->ne[0]));
    }
    c->get_rows++;
    return APR_OK;
}

static apr_status packtest_matmul(packtest_counters *c, const apr_node_desc *node, char *err, size_t n) {
    const apr_tensor_desc *w = &node->src[0];
    const int64_t K = w->ne[0], N = w->ne[1], M = node->src[1].ne[1];
    const float *x = node->src[1].data;
    float *d = node->dst.data;
    const packtest_copy *cp = NULL;
    if (w->buffer->flags & APR_BUFFER_PACKED) {
        cp = w->buffer->handle;
        if (!cp || cp->magic != PACKTEST_MAGIC || cp->K != K || cp->N != N || w->offset != 0 || w->data != cp->v)
            return msg_set(err, n, APR_ERR_INTERNAL, "packtest: %s: the packed W is not the copy of a [%lld, %lld] weight",
                           node->name ? node->name : "matmul", (long long)K, (long long)N);
    }
    const float *W = w->data;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t r = 0; r < N; r++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (cp ? -(double)cp->v[packtest_index(K, r, k)] : (double)W[r * K + k]) * x[m * K + k];
            d[m * N + r] = (float)acc;
        }
    }
    if (cp) c->packed_matmuls++;
    else c->plain_matmuls++;
    return APR_OK;
}

static apr_status packtest_compute(void *b, const apr_subgraph *g, char *err, size_t n) {
    for (uint32_t k = 0; k < g->n_nodes; k++) {
        const apr_node_desc *node = (const apr_node_desc *)((const char *)g->nodes + (size_t)k * g->node_stride);
        if (packtest_supports(b, node, err, n) != APR_OK) return APR_ERR_UNSUPPORTED;
        if (opcheck_bounds(node, err, n) != APR_OK) return APR_ERR_INVALID;
        apr_status s = node->op == APR_OP_MATMUL ? packtest_matmul(b, node, err, n) : packtest_get_rows(b, node, err, n);
        if (s != APR_OK) return s;
    }
    return APR_OK;
}

static void packtest_free(void *b, apr_buffer *buf) {
    packtest_counters *c = b;
    if (!buf || !(buf->flags & APR_BUFFER_PACKED)) {
        hostmem_free(b, buf);
        return;
    }
    packtest_copy *cp = buf->handle;
    if (cp && cp->magic == PACKTEST_MAGIC) {
        cp->magic = 0;
        free(cp);
        c->packed_frees++;
    }
    buf->handle = buf->host_ptr = NULL;
    buf->size = 0;
}

static apr_status packtest_pack(void *b, const apr_tensor_desc *w, apr_buffer *out, char *err, size_t n) {
    packtest_counters *c = b;
    c->pack_calls++;
    if (w->dtype != APR_F32) return msg_set(err, n, APR_ERR_UNSUPPORTED, "packtest packs only f32 weights");
    const int64_t K = w->ne[0], N = w->ne[1];
    /* what the core promises: a contiguous 2-D weight, readable at data, inside its buffer */
    const apr_buffer *src = w->buffer;
    if (w->struct_size < sizeof *w || !w->data || !src || w->offset != 0 || w->ne[2] != 1 || w->ne[3] != 1 ||
        w->nb[0] != 4 || w->nb[1] != 4 * K || w->nb[2] != 4 * K * N || w->nb[3] != 4 * K * N ||
        !(src->flags & APR_BUFFER_HOST_VISIBLE) || src->host_ptr != w->data || src->size < (uint64_t)(4 * K * N))
        return msg_set(err, n, APR_ERR_INVALID, "packtest: the weight is not described as a contiguous 2-D host tensor");
    if (N % PACKTEST_ROWS)
        return msg_set(err, n, APR_ERR_UNSUPPORTED, "packtest: %lld rows do not group by %d", (long long)N, PACKTEST_ROWS);
    const float *W = w->data;
    uint32_t first;
    memcpy(&first, W, sizeof first);
    if (first == PACKTEST_FAIL_BITS)
        return msg_set(err, n, APR_ERR_DEVICE, "packtest: the weight asks to fail (first element 0x%08x)", first);
    packtest_copy *cp = malloc(sizeof *cp + (size_t)(K * N) * sizeof(float));
    if (!cp) return msg_set(err, n, APR_ERR_NOMEM, "packtest: out of memory");
    cp->magic = PACKTEST_MAGIC;
    cp->K = K;
    cp->N = N;
    for (int64_t r = 0; r < N; r++)
        for (int64_t k = 0; k < K; k++) cp->v[packtest_index(K, r, k)] = -W[r * K + k];
    out->flags = APR_BUFFER_HOST_VISIBLE | APR_BUFFER_PACKED;
    out->size = (uint64_t)(K * N) * sizeof(float);
    out->host_ptr = cp->v;
    out->handle = cp;
    c->packs++;
    return APR_OK;
}

/* A table of these functions: struct_size says how much of it the core may read. */
#define PACKTEST_TABLE(var, plugin_name, version, size)                                                                \
    static const apr_plugin var = {                                                                                  \
        .struct_size = (size), .abi_version = (version), .name = (plugin_name),                                      \
        .description = "weight packing test backend: f32 matmul and get_rows", .buffer_alignment = HOSTMEM_ALIGNMENT, \
        .probe = testplug_probe, .create = packtest_create, .destroy = testplug_destroy,                            \
        .supports = packtest_supports, .buffer_alloc = hostmem_alloc, .buffer_import = hostmem_import,               \
        .buffer_free = packtest_free, .buffer_write = hostmem_write, .buffer_read = hostmem_read,                    \
        .compute = packtest_compute, .weight_pack = packtest_pack}

#endif

/* llama_kv.c — per-layer key and value tables of every sequence, in memory on a backend (apr_mem). */
#include "llama_kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

apr_status apr_llama_kv_new(apr_backend *be, apr_dtype dtype, int n_layer, int head_dim, int n_head_kv, int n_ctx, int n_seq,
                            llama_kv **out, apr_error *err) {
    *out = NULL;
    if (dtype != APR_F16 && dtype != APR_F32)
        return apr_error_set(err, APR_ERR_INVALID, "KV cache dtype %s is not supported (f16 and f32 are)",
                             apr_dtype_name(dtype) ? apr_dtype_name(dtype) : "unknown");
    if (n_ctx < 1 || n_seq < 1 || n_layer < 1 || head_dim < 1 || n_head_kv < 1)
        return apr_error_set(err, APR_ERR_INVALID, "KV cache of %d positions x %d sequences: both must be positive", n_ctx, n_seq);
    llama_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    kv->be = be;
    kv->dtype = dtype;
    kv->n_layer = n_layer;
    kv->head_dim = head_dim;
    kv->n_head_kv = n_head_kv;
    kv->n_slots = (int64_t)n_ctx * n_seq;
    kv->n_ctx = n_ctx;
    kv->n_seq = n_seq;
    kv->k = calloc((size_t)n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)n_layer, sizeof *kv->v);
    kv->len = calloc((size_t)n_seq, sizeof *kv->len);
    if (!kv->k || !kv->v || !kv->len) {
        apr_llama_kv_free(kv);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    const uint64_t bytes = (uint64_t)head_dim * (uint64_t)n_head_kv * (uint64_t)kv->n_slots * (dtype == APR_F32 ? 4u : 2u);
    for (int l = 0; l < n_layer; l++) {
        char name[32];
        apr_status s;
        snprintf(name, sizeof name, "k_cache.%d", l);
        s = apr_mem_new(be, bytes, APR_USAGE_STATE, name, &kv->k[l], err);
        if (s == APR_OK) {
            snprintf(name, sizeof name, "v_cache.%d", l);
            s = apr_mem_new(be, bytes, APR_USAGE_STATE, name, &kv->v[l], err);
        }
        if (s != APR_OK) {
            apr_error e = *err;
            apr_llama_kv_free(kv);
            return apr_error_set(err, s, "cannot allocate the KV cache (%llu MiB for %d positions x %d sequences): %s",
                                 (unsigned long long)(2 * bytes * (uint64_t)n_layer >> 20), n_ctx, n_seq, e.msg);
        }
    }
    *out = kv;
    return APR_OK;
}

void apr_llama_kv_free(llama_kv *kv) {
    if (!kv) return;
    for (int l = 0; l < kv->n_layer; l++) {
        if (kv->k) apr_mem_free(kv->k[l]);
        if (kv->v) apr_mem_free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv->len);
    free(kv);
}

int64_t apr_llama_kv_bytes(const llama_kv *kv) {
    return 2 * (int64_t)kv->n_layer * (int64_t)apr_mem_size(kv->k[0]);
}

void apr_llama_kv_truncate(llama_kv *kv, int seq, int pos) {
    if (seq >= 0 && seq < kv->n_seq && pos >= 0 && pos < kv->len[seq]) kv->len[seq] = pos;
}

apr_status apr_llama_kv_copy_seq(llama_kv *kv, int dst, int src, int n, apr_error *err) {
    if (dst < 0 || dst >= kv->n_seq || src < 0 || src >= kv->n_seq || n < 0 || n > kv->len[src])
        return apr_error_set(err, APR_ERR_INVALID, "copy of %d positions from sequence %d to %d: out of range", n, src, dst);
    const uint64_t esz = kv->dtype == APR_F32 ? 4 : 2, rb = (uint64_t)kv->head_dim * esz;
    for (int l = 0; l < kv->n_layer && dst != src; l++)
        for (int h = 0; h < kv->n_head_kv; h++) {
            const uint64_t to = (uint64_t)(h * kv->n_slots + llama_kv_slot(kv, dst, 0)) * rb;
            const uint64_t from = (uint64_t)(h * kv->n_slots + llama_kv_slot(kv, src, 0)) * rb;
            apr_status s = apr_mem_copy(kv->k[l], to, kv->k[l], from, (uint64_t)n * rb, err);
            if (s == APR_OK) s = apr_mem_copy(kv->v[l], to, kv->v[l], from, (uint64_t)n * rb, err);
            if (s != APR_OK) return s;
        }
    kv->len[dst] = n;
    return APR_OK;
}

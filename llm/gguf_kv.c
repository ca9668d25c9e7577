/* gguf_kv.c — metadata lookups: the sorted key index (which also rejects duplicate keys) and the
 * entries by index; the typed getters by key are in gguf_get.c. */
#include <inttypes.h>
#include <stdlib.h>

#include "gguf_internal.h"

static int kv_cmp(const void *a, const void *b, void *ctx) {
    const gguf_kv *kv = ctx;
    return strcmp(kv[*(const int64_t *)a].key, kv[*(const int64_t *)b].key);
}

apr_status gguf_kv_index(gguf_file *f, apr_error *err) {
    char q[GGUF_QUOTE_MAX];
    int64_t *idx = f->kv_sorted;
    for (int64_t i = 0; i < f->n_kv; i++) idx[i] = i;
    qsort_r(idx, (size_t)f->n_kv, sizeof *idx, kv_cmp, f->kv);
    for (int64_t k = 1; k < f->n_kv; k++) {
        const gguf_kv *a = &f->kv[idx[k - 1]], *b = &f->kv[idx[k]];
        if (strcmp(a->key, b->key) == 0)
            return apr_error_set(err, APR_ERR_FORMAT, "%s: key '%s': duplicate key (entries #%" PRId64 " and #%" PRId64 ")",
                                  f->path, gguf_error_quote(q, sizeof q, a->key, a->key_len),
                                  idx[k - 1] < idx[k] ? idx[k - 1] : idx[k], idx[k - 1] < idx[k] ? idx[k] : idx[k - 1]);
    }
    return APR_OK;
}

LLM_API int64_t apr_gguf_kv_count(const gguf_file *f) { return f->n_kv; }

LLM_API int64_t apr_gguf_kv_find(const gguf_file *f, const char *key) {
    int64_t lo = 0, hi = f->n_kv;
    if (!key) return -1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->kv[f->kv_sorted[mid]].key, key);
        if (c == 0) return f->kv_sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

LLM_API const char *apr_gguf_kv_key(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? f->kv[i].key : NULL;
}

LLM_API gguf_type apr_gguf_kv_type(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? f->kv[i].value.type : (gguf_type)-1;
}

LLM_API const gguf_value *apr_gguf_kv_value(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? &f->kv[i].value : NULL;
}

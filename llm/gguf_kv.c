/* gguf_kv.c — metadata lookups: the sorted key index (which also rejects duplicate keys) and the
 * typed getters with their integer conversions. */
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

LLM_API int64_t gguf_kv_count(const gguf_file *f) { return f->n_kv; }

LLM_API int64_t gguf_kv_find(const gguf_file *f, const char *key) {
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

LLM_API const char *gguf_kv_key(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? f->kv[i].key : NULL;
}

LLM_API gguf_type gguf_kv_type(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? f->kv[i].value.type : (gguf_type)-1;
}

LLM_API const gguf_value *gguf_kv_value(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? &f->kv[i].value : NULL;
}

static const gguf_value *kv_get(const gguf_file *f, const char *key) {
    int64_t i = gguf_kv_find(f, key);
    return i < 0 ? NULL : &f->kv[i].value;
}

static bool kv_is_unsigned(gguf_type t) {
    return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64;
}

static bool kv_is_signed(gguf_type t) {
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

LLM_API bool gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_value *v = kv_get(f, key);
    if (!v) return false;
    if (kv_is_unsigned(v->type) && v->u <= UINT32_MAX) *out = (uint32_t)v->u;
    else if (kv_is_signed(v->type) && v->i >= 0 && v->i <= (int64_t)UINT32_MAX) *out = (uint32_t)v->i;
    else return false;
    return true;
}

LLM_API bool gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_value *v = kv_get(f, key);
    if (!v) return false;
    if (kv_is_unsigned(v->type) && v->u <= INT64_MAX) *out = (int64_t)v->u;
    else if (kv_is_signed(v->type)) *out = v->i;
    else return false;
    return true;
}

LLM_API bool gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_value *v = kv_get(f, key);
    if (!v || (v->type != GGUF_FLOAT32 && v->type != GGUF_FLOAT64)) return false;
    *out = (float)v->f;
    return true;
}

LLM_API bool gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_value *v = kv_get(f, key);
    if (!v || v->type != GGUF_BOOL) return false;
    *out = v->b;
    return true;
}

LLM_API const char *gguf_get_str(const gguf_file *f, const char *key) {
    const gguf_value *v = kv_get(f, key);
    return v && v->type == GGUF_STRING ? v->str.ptr : NULL;
}

LLM_API bool gguf_get_arr(const gguf_file *f, const char *key, gguf_type *elem_type, uint64_t *len) {
    const gguf_value *v = kv_get(f, key);
    if (!v || v->type != GGUF_ARRAY) return false;
    if (elem_type) *elem_type = v->arr.type;
    if (len) *len = v->arr.n;
    return true;
}

LLM_API const void *gguf_get_arr_data(const gguf_file *f, const char *key) {
    const gguf_value *v = kv_get(f, key);
    return v && v->type == GGUF_ARRAY ? v->arr.data : NULL;
}

LLM_API const char *gguf_get_arr_str(const gguf_file *f, const char *key, uint64_t i) {
    const gguf_value *v = kv_get(f, key);
    if (!v || v->type != GGUF_ARRAY || v->arr.type != GGUF_STRING || i >= v->arr.n) return NULL;
    return v->arr.items[i].str.ptr;
}

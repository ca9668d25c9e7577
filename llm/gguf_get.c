/* gguf_get.c — the typed metadata getters by key, with their integer conversions. */
#include <stdint.h>

#include "gguf_internal.h"

static const gguf_value *kv_get(const gguf_file *f, const char *key) {
    int64_t i = apr_gguf_kv_find(f, key);
    return i < 0 ? NULL : &f->kv[i].value;
}

static bool kv_is_unsigned(gguf_type t) {
    return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64;
}

static bool kv_is_signed(gguf_type t) {
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

LLM_API bool apr_gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_value *v = kv_get(f, key);
    if (!v) return false;
    if (kv_is_unsigned(v->type) && v->u <= UINT32_MAX) *out = (uint32_t)v->u;
    else if (kv_is_signed(v->type) && v->i >= 0 && v->i <= (int64_t)UINT32_MAX) *out = (uint32_t)v->i;
    else return false;
    return true;
}

LLM_API bool apr_gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_value *v = kv_get(f, key);
    if (!v) return false;
    if (kv_is_unsigned(v->type) && v->u <= INT64_MAX) *out = (int64_t)v->u;
    else if (kv_is_signed(v->type)) *out = v->i;
    else return false;
    return true;
}

LLM_API bool apr_gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_value *v = kv_get(f, key);
    if (!v || (v->type != GGUF_FLOAT32 && v->type != GGUF_FLOAT64)) return false;
    *out = (float)v->f;
    return true;
}

LLM_API bool apr_gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_value *v = kv_get(f, key);
    if (!v || v->type != GGUF_BOOL) return false;
    *out = v->b;
    return true;
}

LLM_API const char *apr_gguf_get_str(const gguf_file *f, const char *key) {
    const gguf_value *v = kv_get(f, key);
    return v && v->type == GGUF_STRING ? v->str.ptr : NULL;
}

LLM_API bool apr_gguf_get_arr(const gguf_file *f, const char *key, gguf_type *elem_type, uint64_t *len) {
    const gguf_value *v = kv_get(f, key);
    if (!v || v->type != GGUF_ARRAY) return false;
    if (elem_type) *elem_type = v->arr.type;
    if (len) *len = v->arr.n;
    return true;
}

LLM_API const void *apr_gguf_get_arr_data(const gguf_file *f, const char *key) {
    const gguf_value *v = kv_get(f, key);
    return v && v->type == GGUF_ARRAY ? v->arr.data : NULL;
}

LLM_API const char *apr_gguf_get_arr_str(const gguf_file *f, const char *key, uint64_t i) {
    const gguf_value *v = kv_get(f, key);
    if (!v || v->type != GGUF_ARRAY || v->arr.type != GGUF_STRING || i >= v->arr.n) return NULL;
    return v->arr.items[i].str.ptr;
}

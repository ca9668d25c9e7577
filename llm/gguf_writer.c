/* gguf_writer.c — collecting what a GGUF file will hold: deep copies of metadata values and the
 * tensor list, each call checked, the first problem kept for apr_gguf_writer_write to report. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "gguf_internal.h"

static void writer_fail(gguf_writer *w, apr_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void writer_fail(gguf_writer *w, apr_status s, const char *fmt, ...) {
    if (w->bad) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->bad_msg, sizeof w->bad_msg, fmt, ap);
    va_end(ap);
    w->bad = s;
}

static void writer_value_free(gguf_value *v) {
    if (v->type == GGUF_STRING) {
        free((void *)v->str.ptr);
    } else if (v->type == GGUF_ARRAY) {
        free((void *)v->arr.data);
        if (v->arr.items) {
            for (uint64_t i = 0; i < v->arr.n; i++) writer_value_free((gguf_value *)&v->arr.items[i]);
            free((void *)v->arr.items);
        }
    }
    memset(v, 0, sizeof *v);
}

/* Whether a scalar's widened value fits its type (so that writing it narrowed loses nothing). */
static bool writer_scalar_fits(const gguf_value *v) {
    switch (v->type) {
    case GGUF_UINT8: return v->u <= UINT8_MAX;
    case GGUF_UINT16: return v->u <= UINT16_MAX;
    case GGUF_UINT32: return v->u <= UINT32_MAX;
    case GGUF_INT8: return v->i >= INT8_MIN && v->i <= INT8_MAX;
    case GGUF_INT16: return v->i >= INT16_MIN && v->i <= INT16_MAX;
    case GGUF_INT32: return v->i >= INT32_MIN && v->i <= INT32_MAX;
    default: return true;
    }
}

/* Deep-copies src into dst (zeroed on entry). Returns APR_OK, or a status with why filled. */
static apr_status writer_value_copy(gguf_value *dst, const gguf_value *src, int depth, char *why, size_t n_why) {
    dst->type = src->type;
    if (!writer_scalar_fits(src))
        return snprintf(why, n_why, "%s value out of range", apr_gguf_type_name(src->type)), APR_ERR_INVALID;
    switch (src->type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64: dst->u = src->u; return APR_OK;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64: dst->i = src->i; return APR_OK;
    case GGUF_FLOAT32: case GGUF_FLOAT64: dst->f = src->f; return APR_OK;
    case GGUF_BOOL: dst->b = src->b; return APR_OK;
    case GGUF_STRING: {
        if (!src->str.ptr && src->str.len) return snprintf(why, n_why, "string value with no data"), APR_ERR_INVALID;
        if (src->str.len > GGUF_MAX_STR_LEN)
            return snprintf(why, n_why, "string of %" PRIu64 " bytes is over the limit", src->str.len), APR_ERR_INVALID;
        char *s = malloc(src->str.len + 1);
        if (!s) return snprintf(why, n_why, "out of memory"), APR_ERR_NOMEM;
        if (src->str.len) memcpy(s, src->str.ptr, src->str.len);
        s[src->str.len] = '\0';
        dst->str.ptr = s;
        dst->str.len = src->str.len;
        return APR_OK;
    }
    case GGUF_ARRAY: break;
    default: return snprintf(why, n_why, "unknown value type %d", (int)src->type), APR_ERR_INVALID;
    }
    gguf_type et = src->arr.type;
    uint64_t n = src->arr.n, bytes;
    if (depth >= GGUF_MAX_DEPTH)
        return snprintf(why, n_why, "arrays nested deeper than %d levels", GGUF_MAX_DEPTH), APR_ERR_INVALID;
    if (!apr_gguf_type_name(et)) return snprintf(why, n_why, "unknown array element type %d", (int)et), APR_ERR_INVALID;
    dst->arr.type = et;
    if (et != GGUF_STRING && et != GGUF_ARRAY) {
        if (n && !src->arr.data) return snprintf(why, n_why, "array with no data"), APR_ERR_INVALID;
        if (__builtin_mul_overflow(n, gguf_value_scalar_size(et), &bytes) || bytes > SIZE_MAX - 1)
            return snprintf(why, n_why, "array of %" PRIu64 " elements is too large", n), APR_ERR_INVALID;
        void *d = malloc(bytes + 1);
        if (!d) return snprintf(why, n_why, "out of memory"), APR_ERR_NOMEM;
        if (bytes) memcpy(d, src->arr.data, bytes);
        if (et == GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++) ((uint8_t *)d)[i] = ((const uint8_t *)d)[i] != 0;
        dst->arr.data = d;
        dst->arr.n = n;
        return APR_OK;
    }
    if (n && !src->arr.items) return snprintf(why, n_why, "array with no items"), APR_ERR_INVALID;
    if (__builtin_mul_overflow(n, (uint64_t)sizeof(gguf_value), &bytes) || bytes > SIZE_MAX - 1)
        return snprintf(why, n_why, "array of %" PRIu64 " elements is too large", n), APR_ERR_INVALID;
    gguf_value *items = calloc(1, bytes + 1);
    if (!items) return snprintf(why, n_why, "out of memory"), APR_ERR_NOMEM;
    dst->arr.items = items;
    for (uint64_t i = 0; i < n; i++) {
        if (src->arr.items[i].type != et) {
            dst->arr.n = i;
            return snprintf(why, n_why, "array of %s holds a %s at index %" PRIu64, apr_gguf_type_name(et),
                            apr_gguf_type_name(src->arr.items[i].type) ? apr_gguf_type_name(src->arr.items[i].type) : "?", i),
                   APR_ERR_INVALID;
        }
        apr_status s = writer_value_copy(&items[i], &src->arr.items[i], depth + 1, why, n_why);
        if (s != APR_OK) {
            dst->arr.n = i + 1; /* items[i] may be partly filled; free takes care of it */
            return s;
        }
    }
    dst->arr.n = n;
    return APR_OK;
}

LLM_API gguf_writer *apr_gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

LLM_API void apr_gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        writer_value_free(&w->kv[i].value);
    }
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kv);
    free(w->tensors);
    free(w);
}

/* Grows an array of elements of size sz to hold one more. */
static bool writer_grow(void **arr, size_t *cap, size_t n, size_t sz) {
    if (n < *cap) return true;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = reallocarray(*arr, c, sz);
    if (!p) return false;
    *arr = p;
    *cap = c;
    return true;
}

LLM_API void apr_gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v) {
    char why[300];
    if (!w || w->bad) return;
    if (!key || !key[0] || strlen(key) > GGUF_MAX_KEY_LEN || !v) {
        writer_fail(w, APR_ERR_INVALID, "invalid key-value (empty or over-long key, or no value)");
        return;
    }
    gguf_value copy = {0};
    apr_status s = writer_value_copy(&copy, v, 0, why, sizeof why);
    if (s != APR_OK) {
        writer_value_free(&copy);
        writer_fail(w, s, "key '%.200s': %s", key, why);
        return;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            writer_value_free(&w->kv[i].value);
            w->kv[i].value = copy;
            return;
        }
    char *k = strdup(key);
    if (!k || !writer_grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        free(k);
        writer_value_free(&copy);
        writer_fail(w, APR_ERR_NOMEM, "key '%.200s': out of memory", key);
        return;
    }
    w->kv[w->n_kv].key = k;
    w->kv[w->n_kv].value = copy;
    w->n_kv++;
}

LLM_API void apr_gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    apr_gguf_writer_set_value(w, key, &(gguf_value){.type = GGUF_UINT32, .u = v});
}

LLM_API void apr_gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    apr_gguf_writer_set_value(w, key, &(gguf_value){.type = GGUF_INT32, .i = v});
}

LLM_API void apr_gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    apr_gguf_writer_set_value(w, key, &(gguf_value){.type = GGUF_FLOAT32, .f = v});
}

LLM_API void apr_gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    apr_gguf_writer_set_value(w, key, &(gguf_value){.type = GGUF_BOOL, .b = v});
}

LLM_API void apr_gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    apr_gguf_writer_set_value(w, key, &(gguf_value){.type = GGUF_STRING, .str = {v, v ? strlen(v) : 0}});
}

LLM_API void apr_gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data, uint64_t n) {
    if (!w || w->bad) return;
    if (elem_type == GGUF_STRING || elem_type == GGUF_ARRAY) {
        writer_fail(w, APR_ERR_INVALID, "key '%.200s': apr_gguf_writer_set_arr takes scalar elements only", key ? key : "");
        return;
    }
    apr_gguf_writer_set_value(w, key, &(gguf_value){.type = GGUF_ARRAY, .arr = {elem_type, n, data, NULL}});
}

LLM_API void apr_gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    if (!w || w->bad) return;
    if (n && !strs) {
        writer_fail(w, APR_ERR_INVALID, "key '%.200s': string array with no strings", key ? key : "");
        return;
    }
    gguf_value *items = n ? calloc(n, sizeof *items) : NULL;
    if (n && !items) {
        writer_fail(w, APR_ERR_NOMEM, "key '%.200s': out of memory", key ? key : "");
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        items[i].type = GGUF_STRING;
        items[i].str.ptr = strs[i];
        items[i].str.len = strs[i] ? strlen(strs[i]) : 0;
    }
    apr_gguf_writer_set_value(w, key, &(gguf_value){.type = GGUF_ARRAY, .arr = {GGUF_STRING, n, NULL, items}});
    free(items);
}

LLM_API void apr_gguf_writer_copy_kv(gguf_writer *w, const gguf_file *f) {
    for (int64_t i = 0; i < apr_gguf_kv_count(f); i++) apr_gguf_writer_set_value(w, apr_gguf_kv_key(f, i), apr_gguf_kv_value(f, i));
}

/* Both add calls: data, or a fill callback producing it at write time. */
static void writer_add(gguf_writer *w, const char *name, uint32_t dtype, int n_dims, const int64_t *ne, const void *data,
                       uint64_t size, gguf_writer_fill_fn fill, void *fill_ctx) {
    int64_t be, bb;
    uint64_t elems = 1, expect;
    if (!w || w->bad) return;
    if (!name || !name[0] || strlen(name) > GGUF_MAX_KEY_LEN) {
        writer_fail(w, APR_ERR_INVALID, "tensor with an empty or over-long name");
        return;
    }
    if (!apr_gguf_dtype_block(dtype, &be, &bb)) {
        writer_fail(w, APR_ERR_INVALID, "tensor '%.200s': unknown GGML type %" PRIu32, name, dtype);
        return;
    }
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne) {
        writer_fail(w, APR_ERR_INVALID, "tensor '%.200s': n_dims %d is outside 1..%d", name, n_dims, GGUF_MAX_DIMS);
        return;
    }
    for (int d = 0; d < n_dims; d++)
        if (ne[d] < 0 || __builtin_mul_overflow(elems, (uint64_t)ne[d], &elems) || elems > INT64_MAX) {
            writer_fail(w, APR_ERR_INVALID, "tensor '%.200s': negative or overflowing dimensions", name);
            return;
        }
    if (ne[0] % be || __builtin_mul_overflow(elems / (uint64_t)be, (uint64_t)bb, &expect) || expect != size ||
        (size && !data && !fill)) {
        writer_fail(w, APR_ERR_INVALID, "tensor '%.200s': %" PRIu64 " bytes of data do not match %" PRIu64 " %s elements",
                    name, size, elems, apr_gguf_dtype_name(dtype));
        return;
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) {
            writer_fail(w, APR_ERR_INVALID, "tensor '%.200s': added twice", name);
            return;
        }
    char *nm = strdup(name);
    if (!nm || !writer_grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors)) {
        free(nm);
        writer_fail(w, APR_ERR_NOMEM, "tensor '%.200s': out of memory", name);
        return;
    }
    gguf_writer_tensor *t = &w->tensors[w->n_tensors++];
    *t = (gguf_writer_tensor){.name = nm, .dtype = dtype, .n_dims = n_dims, .data = data, .size = size,
                              .fill = fill, .fill_ctx = fill_ctx};
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
}

LLM_API void apr_gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t dtype, int n_dims, const int64_t *ne,
                                        const void *data, uint64_t size) {
    writer_add(w, name, dtype, n_dims, ne, data, size, NULL, NULL);
}

LLM_API void apr_gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, uint32_t dtype, int n_dims, const int64_t *ne,
                                           uint64_t size, gguf_writer_fill_fn fill, void *ctx) {
    if (w && !w->bad && !fill) {
        writer_fail(w, APR_ERR_INVALID, "tensor '%.200s': no fill callback", name ? name : "");
        return;
    }
    writer_add(w, name, dtype, n_dims, ne, NULL, size, fill, ctx);
}

/* gguf_value.c — metadata values: type names and sizes, and reading one value (scalars,
 * strings, arrays of any depth) from the file into the reader's arena. */
#include <inttypes.h>
#include <stdio.h>

#include "gguf_internal.h"

LLM_API const char *apr_gguf_type_name(gguf_type t) {
    switch (t) {
    case GGUF_UINT8: return "uint8";
    case GGUF_INT8: return "int8";
    case GGUF_UINT16: return "uint16";
    case GGUF_INT16: return "int16";
    case GGUF_UINT32: return "uint32";
    case GGUF_INT32: return "int32";
    case GGUF_FLOAT32: return "float32";
    case GGUF_BOOL: return "bool";
    case GGUF_STRING: return "string";
    case GGUF_ARRAY: return "array";
    case GGUF_UINT64: return "uint64";
    case GGUF_INT64: return "int64";
    case GGUF_FLOAT64: return "float64";
    }
    return NULL;
}

uint64_t gguf_value_scalar_size(gguf_type t) {
    switch (t) {
    case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: return 1;
    case GGUF_UINT16: case GGUF_INT16: return 2;
    case GGUF_UINT32: case GGUF_INT32: case GGUF_FLOAT32: return 4;
    case GGUF_UINT64: case GGUF_INT64: case GGUF_FLOAT64: return 8;
    case GGUF_STRING: case GGUF_ARRAY: return 0;
    }
    return 0;
}

/* Widens one little-endian scalar at p into v. */
static void value_widen(gguf_type t, const uint8_t *p, gguf_value *v) {
    v->type = t;
    switch (t) {
    case GGUF_UINT8: v->u = p[0]; break;
    case GGUF_INT8: v->i = (int8_t)p[0]; break;
    case GGUF_BOOL: v->b = p[0] != 0; break;
    case GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); v->u = x; break; }
    case GGUF_INT16: { int16_t x; memcpy(&x, p, 2); v->i = x; break; }
    case GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); v->u = x; break; }
    case GGUF_INT32: { int32_t x; memcpy(&x, p, 4); v->i = x; break; }
    case GGUF_FLOAT32: { float x; memcpy(&x, p, 4); v->f = x; break; }
    case GGUF_UINT64: memcpy(&v->u, p, 8); break;
    case GGUF_INT64: memcpy(&v->i, p, 8); break;
    case GGUF_FLOAT64: memcpy(&v->f, p, 8); break;
    case GGUF_STRING: case GGUF_ARRAY: break;
    }
}

static bool value_bools_ok(gguf_parse *ps, const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1) return gguf_parse_fail(ps, "bool value %u at offset %" PRIu64 " is neither 0 nor 1",
                                             p[i], ps->c.pos - n + i);
    return true;
}

static bool value_read_array(gguf_parse *ps, gguf_value *out, int depth) {
    uint32_t et;
    uint64_t n, min;
    if (depth >= GGUF_MAX_DEPTH) return gguf_parse_fail(ps, "arrays nested deeper than %d levels", GGUF_MAX_DEPTH);
    if (!gguf_parse_u32(ps, "the array element type", &et) || !gguf_parse_u64(ps, "the array length", &n))
        return false;
    const char *tn = apr_gguf_type_name((gguf_type)et);
    if (!tn) return gguf_parse_fail(ps, "unknown array element type %" PRIu32, et);
    /* The fewest bytes one element can take bounds the length before anything is allocated. */
    min = et == GGUF_STRING ? 8 : et == GGUF_ARRAY ? 12 : gguf_value_scalar_size((gguf_type)et);
    if (n > gguf_cursor_left(&ps->c) / min)
        return gguf_parse_fail(ps, "array of %" PRIu64 " %s elements (at least %" PRIu64 " bytes each) runs past"
                               " the end of the file (%" PRIu64 " bytes left at offset %" PRIu64 ")",
                               n, tn, min, gguf_cursor_left(&ps->c), ps->c.pos);
    out->type = GGUF_ARRAY;
    out->arr.type = (gguf_type)et;
    out->arr.n = n;
    out->arr.data = NULL;
    out->arr.items = NULL;
    if (et != GGUF_STRING && et != GGUF_ARRAY) {
        const uint8_t *src = NULL;
        void *dst;
        gguf_cursor_bytes(&ps->c, n * min, &src); /* checked above */
        if (et == GGUF_BOOL && !value_bools_ok(ps, src, n)) return false;
        if (!gguf_parse_take(ps, n * min, 8, &dst)) return false;
        if (dst) memcpy(dst, src, n * min);
        out->arr.data = dst;
        return true;
    }
    void *items;
    uint64_t bytes;
    if (__builtin_mul_overflow(n, (uint64_t)sizeof(gguf_value), &bytes))
        return gguf_parse_fail(ps, "array of %" PRIu64 " elements needs more memory than can be addressed", n);
    if (!gguf_parse_take(ps, bytes, _Alignof(gguf_value), &items)) return false;
    out->arr.items = items;
    for (uint64_t i = 0; i < n; i++) {
        gguf_value scratch, *dst = items ? (gguf_value *)items + i : &scratch;
        if (!gguf_value_read(ps, et, dst, depth + 1)) return false;
    }
    return true;
}

bool gguf_value_read(gguf_parse *ps, uint32_t type, gguf_value *out, int depth) {
    memset(out, 0, sizeof *out);
    if (type == GGUF_STRING) {
        out->type = GGUF_STRING;
        return gguf_parse_str(ps, "string value", GGUF_MAX_STR_LEN, false, &out->str.ptr, &out->str.len);
    }
    if (type == GGUF_ARRAY) return value_read_array(ps, out, depth);
    uint64_t size = gguf_value_scalar_size((gguf_type)type);
    if (!apr_gguf_type_name((gguf_type)type) || size == 0)
        return gguf_parse_fail(ps, "unknown value type %" PRIu32, type);
    const uint8_t *p;
    char what[32];
    snprintf(what, sizeof what, "a %s value", apr_gguf_type_name((gguf_type)type));
    if (!gguf_cursor_bytes(&ps->c, size, &p)) return gguf_parse_truncated(ps, what, size);
    if (type == GGUF_BOOL && !value_bools_ok(ps, p, 1)) return false;
    value_widen((gguf_type)type, p, out);
    return true;
}

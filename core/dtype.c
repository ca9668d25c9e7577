/* dtype.c — names and storage sizes of the element types. */
#include <string.h>

#include "internal.h"

typedef struct dtype_info {
    const char *name;
    int64_t block_elems;   /* elements per block */
    int64_t block_bytes;   /* bytes per block */
} dtype_info;

static const dtype_info *dtype_lookup(apr_dtype t) {
    static const dtype_info f32 = {"f32", 1, 4}, f16 = {"f16", 1, 2}, bf16 = {"bf16", 1, 2}, i32 = {"i32", 1, 4};
    switch (t) {
    case APR_F32: return &f32;
    case APR_F16: return &f16;
    case APR_BF16: return &bf16;
    case APR_I32: return &i32;
    default: return NULL;
    }
}

APR_API const char *apr_dtype_name(apr_dtype t) {
    const dtype_info *d = dtype_lookup(t);
    return d ? d->name : NULL;
}

APR_API bool apr_dtype_parse(const char *name, apr_dtype *out) {
    for (int t = 0; t < APR_DTYPE_LIMIT; t++) {
        const dtype_info *d = dtype_lookup((apr_dtype)t);
        if (d && strcmp(d->name, name) == 0) {
            *out = (apr_dtype)t;
            return true;
        }
    }
    return false;
}

APR_API int64_t apr_dtype_block_elems(apr_dtype t) {
    const dtype_info *d = dtype_lookup(t);
    return d ? d->block_elems : 0;
}

APR_API int64_t apr_dtype_block_bytes(apr_dtype t) {
    const dtype_info *d = dtype_lookup(t);
    return d ? d->block_bytes : 0;
}

APR_API int64_t apr_dtype_row_bytes(apr_dtype t, int64_t n) {
    const dtype_info *d = dtype_lookup(t);
    if (!d || n < 0 || n % d->block_elems) return -1;
    return n / d->block_elems * d->block_bytes;
}

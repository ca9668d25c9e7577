/* dtype.c — names and storage sizes of the element types. */
#include <string.h>

#include "internal.h"

typedef struct dtype_info {
    const char *name;
    int64_t block_elems;   /* elements per block */
    int64_t block_bytes;   /* bytes per block */
} dtype_info;

static const dtype_info *dtype_lookup(apr_dtype t) {
    static const dtype_info table[APR_DTYPE_LIMIT] = {
        [APR_F32] = {"f32", 1, 4},       [APR_F16] = {"f16", 1, 2},       [APR_BF16] = {"bf16", 1, 2},
        [APR_I32] = {"i32", 1, 4},       [APR_Q4_0] = {"q4_0", 32, 18},   [APR_Q4_1] = {"q4_1", 32, 20},
        [APR_Q5_0] = {"q5_0", 32, 22},   [APR_Q5_1] = {"q5_1", 32, 24},   [APR_Q8_0] = {"q8_0", 32, 34},
        [APR_Q4_K] = {"q4_K", 256, 144}, [APR_Q5_K] = {"q5_K", 256, 176}, [APR_Q6_K] = {"q6_K", 256, 210},
        [APR_Q8_K] = {"q8_K", 256, 292},
    };
    if ((unsigned)t >= APR_DTYPE_LIMIT || !table[t].name) return NULL;
    return &table[t];
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

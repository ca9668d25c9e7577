/* rows.h — walking tensors row by row: row addresses, strided/typed rows to and from contiguous f32, and one f32 row added into another. */
#ifndef APR_SIMD_ROWS_H
#define APR_SIMD_ROWS_H

#include <stdint.h>
#include <string.h>

#include "apr/apr_abi.h"
#include "vec.h"

/* Rows are the ne[1]*ne[2]*ne[3] lines along dim 0; row r is (i1, i2, i3) with i1 fastest. */
static inline int64_t rows_count(const apr_tensor_desc *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

static inline void rows_index(const apr_tensor_desc *t, int64_t r, int64_t *i1, int64_t *i2, int64_t *i3) {
    *i1 = r % t->ne[1];
    r /= t->ne[1];
    *i2 = r % t->ne[2];
    *i3 = r / t->ne[2];
}

static inline char *rows_at(const apr_tensor_desc *t, int64_t i1, int64_t i2, int64_t i3) {
    return (char *)t->data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
}

static inline char *rows_ptr(const apr_tensor_desc *t, int64_t r) {
    int64_t i1, i2, i3;
    rows_index(t, r, &i1, &i2, &i3);
    return rows_at(t, i1, i2, i3);
}

static inline int rows_esize(uint32_t dtype) { return dtype == APR_F16 || dtype == APR_BF16 ? 2 : 4; }

/* n elements of dtype (f32/f16/bf16) at src, nb0 bytes apart, into contiguous f32 dst. */
void rows_load_f32(float *dst, const char *src, int64_t n, int64_t nb0, uint32_t dtype);
/* n contiguous f32 into dtype (f32/f16/bf16) elements nb0 bytes apart, rounding to nearest even. */
void rows_store_f32(char *dst, const float *src, int64_t n, int64_t nb0, uint32_t dtype);

/* A source row as contiguous f32: the row itself when it already is, else a copy in tmp. */
static inline const float *rows_f32(const char *src, int64_t n, int64_t nb0, uint32_t dtype, float *tmp) {
    if (dtype == APR_F32 && nb0 == 4) return (const float *)src;
    rows_load_f32(tmp, src, n, nb0, dtype);
    return tmp;
}

/* dst[i] += src[i] for i < n, in place: f32 elements nb_dst and nb_src bytes apart (vectors when both
 * rows are dense). Each sum is one f32 addition, so the result does not depend on the path. */
static inline void rows_add_f32(char *dst, int64_t nb_dst, const char *src, int64_t nb_src, int64_t n) {
    int64_t i = 0;
    if (nb_dst == 4 && nb_src == 4) {
        float *o = (float *)dst;
        const float *s = (const float *)src;
        for (; i + VEC_W <= n; i += VEC_W) vec_store(o + i, vec_add(vec_load(o + i), vec_load(s + i)));
        if (i < n) vec_storen(o + i, vec_add(vec_loadn(o + i, (int)(n - i)), vec_loadn(s + i, (int)(n - i))), (int)(n - i));
        return;
    }
    for (; i < n; i++) {
        float x, y;
        memcpy(&x, dst + i * nb_dst, 4);
        memcpy(&y, src + i * nb_src, 4);
        x += y;
        memcpy(dst + i * nb_dst, &x, 4);
    }
}

#endif

/* tu_tensor.c — host-side test tensors: a strided view inside its own storage, with poisoned gaps. */
#include "tu_tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr.h"
#include "apr/apr_float16.h"
#include "apr/apr_quant.h"

size_t tu_dtype_size(uint32_t dtype) {
    switch (dtype) {
    case APR_F32: case APR_I32: return 4;
    case APR_F16: case APR_BF16: return 2;
    default: return apr_quant_is_block((apr_dtype)dtype) ? (size_t)apr_dtype_block_bytes((apr_dtype)dtype) : 0;
    }
}

const char *tu_dtype_name(uint32_t dtype) {
    switch (dtype) {
    case APR_F32: return "f32";
    case APR_F16: return "f16";
    case APR_BF16: return "bf16";
    case APR_I32: return "i32";
    default: return apr_dtype_name((apr_dtype)dtype) ? apr_dtype_name((apr_dtype)dtype) : "?";
    }
}

bool tu_dtype_is_float(uint32_t dtype) { return dtype == APR_F32 || dtype == APR_F16 || dtype == APR_BF16; }

bool tu_dtype_is_block(uint32_t dtype) { return apr_quant_is_block((apr_dtype)dtype); }

float tu_load_f(uint32_t dtype, const void *p) {
    uint16_t h;
    float f;
    switch (dtype) {
    case APR_F16: memcpy(&h, p, 2); return apr_f16_to_f32(h);
    case APR_BF16: memcpy(&h, p, 2); return apr_bf16_to_f32(h);
    default: memcpy(&f, p, 4); return f;
    }
}

void tu_store_f(uint32_t dtype, void *p, float v) {
    uint16_t h;
    switch (dtype) {
    case APR_F16: h = apr_f32_to_f16(v); memcpy(p, &h, 2); return;
    case APR_BF16: h = apr_f32_to_bf16(v); memcpy(p, &h, 2); return;
    default: memcpy(p, &v, 4); return;
    }
}

static void *tu_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "tu_tensor: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void tu_tensor_poison(const tu_tensor *t, unsigned char *storage) {
    if (tu_dtype_is_block(t->dtype)) { /* 0x7f7f is an f16 NaN: a scale read from a gap poisons the result */
        memset(storage, TU_POISON_BLOCK_BYTE, t->size);
        return;
    }
    size_t es = tu_dtype_size(t->dtype);
    uint32_t pat = t->dtype == APR_F16 ? TU_POISON_F16 : t->dtype == APR_BF16 ? TU_POISON_BF16
                 : t->dtype == APR_I32 ? TU_POISON_I32 : TU_POISON_F32;
    for (uint64_t b = 0; b + es <= t->size; b += es) memcpy(storage + b, &pat, es); /* little-endian: low bytes */
}

void tu_tensor_init(tu_tensor *t, uint32_t dtype, const int64_t ne[APR_MAX_DIMS], tu_layout lay) {
    memset(t, 0, sizeof *t);
    t->present = true;
    t->dtype = dtype;
    int64_t es = (int64_t)tu_dtype_size(dtype);
    int order[APR_MAX_DIMS] = {0, 1, 2, 3};
    if (lay.order[0] || lay.order[1] || lay.order[2] || lay.order[3]) memcpy(order, lay.order, sizeof order);
    /* A block type counts dim 0 in blocks (its rows are dense, so layouts keep dim 0 innermost). */
    int64_t blk = tu_dtype_is_block(dtype) ? apr_dtype_block_elems((apr_dtype)dtype) : 1;
    int64_t stride = es * (lay.step > 1 ? lay.step : 1);
    for (int j = 0; j < APR_MAX_DIMS; j++) {
        int d = order[j];
        t->ne[d] = ne[d];
        t->nb[d] = stride;
        stride *= (d == 0 ? ne[0] / blk : ne[d]) + lay.pad[j];
    }
    /* The last stride is the size of the whole block; the offset is added in front. */
    t->offset = (uint64_t)(lay.off * es);
    t->size = t->offset + (uint64_t)stride;
    t->data = tu_xmalloc(t->size);
    tu_tensor_poison(t, t->data);
}

void tu_tensor_init_like(tu_tensor *t, const tu_tensor *like) {
    *t = *like;
    t->data = tu_xmalloc(t->size);
    tu_tensor_poison(t, t->data);
}

void tu_tensor_free(tu_tensor *t) {
    free(t->data);
    memset(t, 0, sizeof *t);
}

int64_t tu_tensor_nelements(const tu_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

uint64_t tu_tensor_byte(const tu_tensor *t, const int64_t i[APR_MAX_DIMS]) {
    return t->offset + (uint64_t)(i[0] * t->nb[0] + i[1] * t->nb[1] + i[2] * t->nb[2] + i[3] * t->nb[3]);
}

void tu_tensor_index(const tu_tensor *t, int64_t k, int64_t i[APR_MAX_DIMS]) {
    for (int d = 0; d < APR_MAX_DIMS; d++) {
        i[d] = k % t->ne[d];
        k /= t->ne[d];
    }
}

void tu_tensor_element_mask(const tu_tensor *t, unsigned char *mask) {
    int64_t n = tu_tensor_nelements(t), i[APR_MAX_DIMS];
    size_t es = tu_dtype_size(t->dtype);
    for (int64_t k = 0; k < n; k++) {
        tu_tensor_index(t, k, i);
        memset(mask + tu_tensor_byte(t, i), 1, es);
    }
}

static void *tu_at(const tu_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    const int64_t i[APR_MAX_DIMS] = {i0, i1, i2, i3};
    return t->data + tu_tensor_byte(t, i);
}

float tu_getf(const tu_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return tu_load_f(t->dtype, tu_at(t, i0, i1, i2, i3));
}

void tu_setf(tu_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float v) {
    tu_store_f(t->dtype, tu_at(t, i0, i1, i2, i3), v);
}

int32_t tu_geti(const tu_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    int32_t v;
    memcpy(&v, tu_at(t, i0, i1, i2, i3), 4);
    return v;
}

void tu_seti(tu_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, int32_t v) {
    memcpy(tu_at(t, i0, i1, i2, i3), &v, 4);
}

void tu_fill_uniform(tu_tensor *t, tu_rng *r, double lo, double hi) {
    int64_t n = tu_tensor_nelements(t), i[APR_MAX_DIMS];
    for (int64_t k = 0; k < n; k++) {
        tu_tensor_index(t, k, i);
        tu_store_f(t->dtype, t->data + tu_tensor_byte(t, i), (float)tu_rng_uniform(r, lo, hi));
    }
}

void tu_fill_int(tu_tensor *t, tu_rng *r, int64_t lo, int64_t hi) {
    int64_t n = tu_tensor_nelements(t), i[APR_MAX_DIMS];
    for (int64_t k = 0; k < n; k++) {
        tu_tensor_index(t, k, i);
        int32_t v;
        do v = (int32_t)tu_rng_int(r, lo, hi);
        while ((uint32_t)v == TU_POISON_I32);
        memcpy(t->data + tu_tensor_byte(t, i), &v, 4);
    }
}

/* One value chosen to stress f32 -> f16/bf16 rounding and the edges of their ranges. */
static float tu_special_value(tu_rng *r) {
    float sign = tu_rng_int(r, 0, 1) ? -1.0f : 1.0f;
    switch (tu_rng_int(r, 0, 9)) {
    case 0: case 1: return (float)tu_rng_uniform(r, -1.0, 1.0);
    case 2: case 3: /* magnitudes from below the f16 subnormals to beyond the f16 range */
        return sign * (float)exp2(tu_rng_uniform(r, -30.0, 20.0));
    case 4: { /* exactly halfway between two adjacent f16 values (normal or subnormal) */
        uint16_t h = (uint16_t)tu_rng_int(r, 0, 0x7bfe);
        double a = apr_f16_to_f32(h), b = apr_f16_to_f32((uint16_t)(h + 1));
        return sign * (float)((a + b) / 2.0); /* exact: f32 has 13 more mantissa bits */
    }
    case 5: { /* exactly halfway between two adjacent bf16 values */
        uint32_t u = ((uint32_t)tu_rng_int(r, 0, 0x7f7e) << 16) | 0x8000u;
        return sign * apr_bits_f32(u);
    }
    case 6: /* around the largest f16 (65504) and the rounding threshold to inf (65520) */
        return sign * (float)tu_rng_uniform(r, 65000.0, 66000.0);
    case 7: { /* one ulp of f32 either side of an f16 tie: must round away from the tie */
        uint16_t h = (uint16_t)tu_rng_int(r, 0x0400, 0x7bfe);
        float mid = (float)(((double)apr_f16_to_f32(h) + apr_f16_to_f32((uint16_t)(h + 1))) / 2.0);
        return sign * apr_bits_f32(apr_f32_bits(mid) + (tu_rng_int(r, 0, 1) ? 1u : (uint32_t)-1));
    }
    case 8: return tu_rng_int(r, 0, 1) ? sign * 0.0f : sign * INFINITY;
    default: return tu_rng_int(r, 0, 3) ? sign * (float)tu_rng_uniform(r, 0.0, 4.0) : NAN;
    }
}

void tu_fill_special(tu_tensor *t, tu_rng *r) {
    int64_t n = tu_tensor_nelements(t), i[APR_MAX_DIMS];
    for (int64_t k = 0; k < n; k++) {
        tu_tensor_index(t, k, i);
        tu_store_f(t->dtype, t->data + tu_tensor_byte(t, i), tu_special_value(r));
    }
}

void tu_fill_mask(tu_tensor *m, tu_rng *r) {
    tu_fill_uniform(m, r, -2, 0);
    for (int64_t row = 0; row < m->ne[1]; row++) {
        int64_t keep = row >= 2 && row % 3 == 2 ? tu_rng_int(r, 0, m->ne[0] - 1) : -1;
        for (int64_t j = 0; j < m->ne[0]; j++)
            if (row == 1 || (keep >= 0 && j != keep) || (keep < 0 && tu_rng_int(r, 0, 9) == 0))
                tu_setf(m, j, row, 0, 0, -INFINITY);
    }
}

void tu_tensor_describe(const tu_tensor *t, char *out, size_t size) {
    /* Trailing 1s are dropped; a strided layout shows its nb in elements. */
    int nd = APR_MAX_DIMS;
    while (nd > 1 && t->ne[nd - 1] == 1) nd--;
    int len = snprintf(out, size, "%s[", tu_dtype_name(t->dtype));
    for (int d = 0; d < nd && len >= 0 && (size_t)len < size; d++)
        len += snprintf(out + len, size - (size_t)len, "%s%lld", d ? "," : "", (long long)t->ne[d]);
    if (len < 0 || (size_t)len >= size) return;
    len += snprintf(out + len, size - (size_t)len, "]");
    int64_t es = (int64_t)tu_dtype_size(t->dtype), expect = es;
    bool contiguous = t->offset == 0;
    for (int d = 0; d < APR_MAX_DIMS; d++) {
        if (t->ne[d] != 1 && t->nb[d] != expect) contiguous = false;
        expect *= d == 0 && tu_dtype_is_block(t->dtype) ? t->ne[0] / apr_dtype_block_elems((apr_dtype)t->dtype) : t->ne[d];
    }
    if (contiguous || len < 0 || (size_t)len >= size) return;
    len += snprintf(out + len, size - (size_t)len, "/nb=");
    for (int d = 0; d < nd && len >= 0 && (size_t)len < size; d++)
        len += snprintf(out + len, size - (size_t)len, "%s%lld", d ? "," : "", (long long)(t->nb[d] / es));
    if (t->offset && len >= 0 && (size_t)len < size)
        snprintf(out + len, size - (size_t)len, "+%llu", (unsigned long long)(t->offset / (uint64_t)es));
}

void tu_fill_quant(tu_tensor *t, tu_rng *r, double lo, double hi, bool outliers) {
    int64_t K = t->ne[0];
    float *row = tu_xmalloc((size_t)(K ? K : 1) * sizeof(float));
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++) {
                for (int64_t k = 0; k < K; k++) {
                    row[k] = (float)tu_rng_uniform(r, lo, hi);
                    if (outliers && tu_rng_u64(r) % 64 == 0) row[k] *= 8.0f;
                }
                const int64_t i[APR_MAX_DIMS] = {0, i1, i2, i3};
                if (apr_quant_row((apr_dtype)t->dtype, row, t->data + tu_tensor_byte(t, i), K) <= 0) {
                    fprintf(stderr, "tu_fill_quant: %s cannot quantize a row of %lld\n", tu_dtype_name(t->dtype), (long long)K);
                    abort();
                }
            }
    free(row);
}

/* ref_tensor.h — element access for the reference ops: one element at a time, any dtype, any byte stride. */
#ifndef APR_REF_TENSOR_H
#define APR_REF_TENSOR_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "apr/apr_abi.h"
#include "apr/apr_float16.h"
#include "apr/apr_quant.h"

/* Element [i0,i1,i2,i3] is at data + sum(i * nb) exactly as apr_abi.h defines it. Loads and
 * stores go through memcpy because nb need not be a multiple of the element size. */
static inline void *reftensor_at(const apr_tensor_desc *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return (char *)t->data + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
}

static inline float reftensor_load_f(uint32_t dtype, const void *p) {
    float f;
    uint16_t h;
    switch (dtype) {
    case APR_F32: memcpy(&f, p, 4); return f;
    case APR_F16: memcpy(&h, p, 2); return apr_f16_to_f32(h);
    case APR_BF16: memcpy(&h, p, 2); return apr_bf16_to_f32(h);
    default: assert(!"not a float dtype"); return 0.0f;
    }
}

static inline void reftensor_store_f(uint32_t dtype, void *p, float f) {
    uint16_t h;
    switch (dtype) {
    case APR_F32: memcpy(p, &f, 4); return;
    case APR_F16: h = apr_f32_to_f16(f); memcpy(p, &h, 2); return;
    case APR_BF16: h = apr_f32_to_bf16(f); memcpy(p, &h, 2); return;
    default: assert(!"not a float dtype"); return;
    }
}

static inline float reftensor_getf(const apr_tensor_desc *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return reftensor_load_f(t->dtype, reftensor_at(t, i0, i1, i2, i3));
}

static inline void reftensor_setf(const apr_tensor_desc *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float f) {
    reftensor_store_f(t->dtype, reftensor_at(t, i0, i1, i2, i3), f);
}

/* True for the block dtypes: those are read a whole row at a time (reftensor_dequant_row). */
static inline bool reftensor_is_block(const apr_tensor_desc *t) { return apr_quant_is_block((apr_dtype)t->dtype); }

/* Row (i1, i2, i3) of a block-type tensor as ne[0] floats (opcheck made its blocks dense). */
static inline void reftensor_dequant_row(const apr_tensor_desc *t, int64_t i1, int64_t i2, int64_t i3, float *out) {
    bool ok = apr_dequant_row((apr_dtype)t->dtype, reftensor_at(t, 0, i1, i2, i3), out, t->ne[0]);
    assert(ok);
    (void)ok;
}

static inline int32_t reftensor_geti(const apr_tensor_desc *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    assert(t->dtype == APR_I32);
    int32_t v;
    memcpy(&v, reftensor_at(t, i0, i1, i2, i3), 4);
    return v;
}

static inline void reftensor_seti(const apr_tensor_desc *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, int32_t v) {
    assert(t->dtype == APR_I32);
    memcpy(reftensor_at(t, i0, i1, i2, i3), &v, 4);
}

#endif

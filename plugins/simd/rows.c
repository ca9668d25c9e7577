/* rows.c — strided/typed rows to and from contiguous f32, vectorised when the row is contiguous. */
#include "rows.h"

#include <string.h>

#include "apr/apr_float16.h"
#include "vec.h"

void rows_load_f32(float *dst, const char *src, int64_t n, int64_t nb0, uint32_t dtype) {
    int64_t i = 0;
    if (dtype == APR_F32) {
        if (nb0 == 4) { memcpy(dst, src, (size_t)n * 4); return; }
        for (; i < n; i++) memcpy(&dst[i], src + i * nb0, 4);
    } else if (dtype == APR_F16) {
        if (nb0 == 2) {
            const uint16_t *s = (const uint16_t *)src;
            for (; i + VEC_W <= n; i += VEC_W) vec_store(dst + i, vec_load_f16(s + i));
            if (i < n) vec_storen(dst + i, vec_loadn_f16(s + i, (int)(n - i)), (int)(n - i));
            return;
        }
        for (; i < n; i++) { uint16_t h; memcpy(&h, src + i * nb0, 2); dst[i] = apr_f16_to_f32(h); }
    } else {
        if (nb0 == 2) {
            const uint16_t *s = (const uint16_t *)src;
            for (; i + VEC_W <= n; i += VEC_W) vec_store(dst + i, vec_load_bf16(s + i));
            if (i < n) vec_storen(dst + i, vec_loadn_bf16(s + i, (int)(n - i)), (int)(n - i));
            return;
        }
        for (; i < n; i++) { uint16_t h; memcpy(&h, src + i * nb0, 2); dst[i] = apr_bf16_to_f32(h); }
    }
}

void rows_store_f32(char *dst, const float *src, int64_t n, int64_t nb0, uint32_t dtype) {
    int64_t i = 0;
    if (dtype == APR_F32) {
        if (nb0 == 4) { memmove(dst, src, (size_t)n * 4); return; }
        for (; i < n; i++) memcpy(dst + i * nb0, &src[i], 4);
    } else if (dtype == APR_F16) {
        if (nb0 == 2) {
            uint16_t *d = (uint16_t *)dst;
            for (; i + VEC_W <= n; i += VEC_W) vec_store_f16(d + i, vec_load(src + i));
            if (i < n) vec_storen_f16(d + i, vec_loadn(src + i, (int)(n - i)), (int)(n - i));
            return;
        }
        for (; i < n; i++) { uint16_t h = apr_f32_to_f16(src[i]); memcpy(dst + i * nb0, &h, 2); }
    } else {
        if (nb0 == 2) {
            uint16_t *d = (uint16_t *)dst;
            for (; i + VEC_W <= n; i += VEC_W) vec_store_bf16(d + i, vec_load(src + i));
            if (i < n) vec_storen_bf16(d + i, vec_loadn(src + i, (int)(n - i)), (int)(n - i));
            return;
        }
        for (; i < n; i++) { uint16_t h = apr_f32_to_bf16(src[i]); memcpy(dst + i * nb0, &h, 2); }
    }
}

/* apr_float16.h — portable conversions between f32 and the 16-bit float formats f16 and bf16. */
#ifndef APR_FLOAT16_H
#define APR_FLOAT16_H

#include <stdint.h>
#include <string.h>

/* Both conversions from f32 round to nearest, ties to even; NaN stays NaN (quiet), inf stays inf.
 * They are plain C so that code compiled for baseline x86-64 or armv8-a can use them anywhere. */

static inline uint32_t apr_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float apr_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float apr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return apr_bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / NaN */
    if (exp == 0) {
        if (man == 0) return apr_bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return apr_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t apr_f32_to_f16(float f) {
    uint32_t u = apr_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((absu >> 13) & 0x3ffu)); /* NaN */
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (absu < 0x38800000u) { /* below the smallest normal f16 (2^-14): subnormal or zero */
        if (absu < 0x33000000u) return (uint16_t)sign; /* below half the smallest subnormal */
        uint32_t e = absu >> 23;
        uint32_t m = (absu & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24: bits dropped to reach units of 2^-24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u); /* round to nearest even at bit 13 */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static inline float apr_bf16_to_f32(uint16_t b) { return apr_bits_f32((uint32_t)b << 16); }

static inline uint16_t apr_f32_to_bf16(float f) {
    uint32_t u = apr_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#endif /* APR_FLOAT16_H */

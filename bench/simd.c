/* simd.c — the ceiling kernels (streaming sum, independent FMA chains) in the widest ISA the CPU has.
 *
 * apr-bench is built for baseline x86-64, so the AVX-512 and AVX2 bodies are compiled per function
 * through __attribute__((target)) and only called after __builtin_cpu_supports has said yes (which
 * also checks that the OS saves the wide registers). The SSE2 bodies are the fallback. */
#include "simd.h"

#include <immintrin.h>

typedef enum simd_level { SIMD_SSE2 = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 } simd_level;

static simd_level simd_detect(void) {
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) level = SIMD_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = SIMD_AVX2;
        else level = SIMD_SSE2;
    }
    return (simd_level)level;
}

const char *simd_isa(void) {
    static const char *const names[] = {"sse2", "avx2+fma", "avx512f"};
    return names[simd_detect()];
}

/* Sixteen named accumulators (an array would live in memory): X(i) expands once per chain. */
#define SIMD_EACH16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define SIMD_EACH8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* ---------------------------------------------------------------- streaming sum
 * Eight independent accumulators over 64 floats (256 bytes) per step. */

__attribute__((target("avx512f"))) static float simd_sum_avx512(const float *p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target("avx2"))) static float simd_sum_avx2(const float *p, size_t n) {
#define SIMD_DECL(j) __m256 a##j = _mm256_setzero_ps();
#define SIMD_STEP(j) a##j = _mm256_add_ps(a##j, _mm256_load_ps(p + i + 8 * j));
    SIMD_EACH8(SIMD_DECL)
    for (size_t i = 0; i < n; i += 64) { SIMD_EACH8(SIMD_STEP) }
#undef SIMD_DECL
#undef SIMD_STEP
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    float t[8];
    _mm256_storeu_ps(t, a0);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

static float simd_sum_sse2(const float *p, size_t n) {
#define SIMD_DECL(j) __m128 a##j = _mm_setzero_ps();
#define SIMD_STEP(j) a##j = _mm_add_ps(a##j, _mm_add_ps(_mm_load_ps(p + i + 4 * j), _mm_load_ps(p + i + 32 + 4 * j)));
    SIMD_EACH8(SIMD_DECL)
    for (size_t i = 0; i < n; i += 64) { SIMD_EACH8(SIMD_STEP) }
#undef SIMD_DECL
#undef SIMD_STEP
    a0 = _mm_add_ps(_mm_add_ps(_mm_add_ps(a0, a1), _mm_add_ps(a2, a3)), _mm_add_ps(_mm_add_ps(a4, a5), _mm_add_ps(a6, a7)));
    float t[4];
    _mm_storeu_ps(t, a0);
    return t[0] + t[1] + t[2] + t[3];
}

float simd_sum_f32(const float *p, size_t n) {
    switch (simd_detect()) {
    case SIMD_AVX512: return simd_sum_avx512(p, n);
    case SIMD_AVX2: return simd_sum_avx2(p, n);
    default: return simd_sum_sse2(p, n);
    }
}

/* ---------------------------------------------------------------- FMA chains
 * Sixteen accumulators, each updated acc = acc * a + b once per round: enough independent chains
 * to cover FMA latency times the FMA ports of any current core. The multiplier is just below one
 * so the values converge instead of overflowing. */
#define SIMD_CHAINS 16

__attribute__((target("avx512f"))) static float simd_fma_avx512(uint64_t iters) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
#define SIMD_DECL(j) __m512 c##j = _mm512_set1_ps((float)j);
#define SIMD_STEP(j) c##j = _mm512_fmadd_ps(c##j, a, b);
    SIMD_EACH16(SIMD_DECL)
    for (uint64_t i = 0; i < iters; i++) { SIMD_EACH16(SIMD_STEP) }
#undef SIMD_DECL
#undef SIMD_STEP
    c0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                       _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    c8 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)),
                       _mm512_add_ps(_mm512_add_ps(c12, c13), _mm512_add_ps(c14, c15)));
    return _mm512_reduce_add_ps(_mm512_add_ps(c0, c8));
}

__attribute__((target("avx2,fma"))) static float simd_fma_avx2(uint64_t iters) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
#define SIMD_DECL(j) __m256 c##j = _mm256_set1_ps((float)j);
#define SIMD_STEP(j) c##j = _mm256_fmadd_ps(c##j, a, b);
    SIMD_EACH16(SIMD_DECL)
    for (uint64_t i = 0; i < iters; i++) { SIMD_EACH16(SIMD_STEP) }
#undef SIMD_DECL
#undef SIMD_STEP
    c0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                       _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    c8 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)),
                       _mm256_add_ps(_mm256_add_ps(c12, c13), _mm256_add_ps(c14, c15)));
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(c0, c8));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

/* Without FMA a multiply and an add per lane: counted as the same two flops. */
static float simd_fma_sse2(uint64_t iters) {
    const __m128 a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-6f);
#define SIMD_DECL(j) __m128 c##j = _mm_set1_ps((float)j);
#define SIMD_STEP(j) c##j = _mm_add_ps(_mm_mul_ps(c##j, a), b);
    SIMD_EACH16(SIMD_DECL)
    for (uint64_t i = 0; i < iters; i++) { SIMD_EACH16(SIMD_STEP) }
#undef SIMD_DECL
#undef SIMD_STEP
    c0 = _mm_add_ps(_mm_add_ps(_mm_add_ps(c0, c1), _mm_add_ps(c2, c3)), _mm_add_ps(_mm_add_ps(c4, c5), _mm_add_ps(c6, c7)));
    c8 = _mm_add_ps(_mm_add_ps(_mm_add_ps(c8, c9), _mm_add_ps(c10, c11)), _mm_add_ps(_mm_add_ps(c12, c13), _mm_add_ps(c14, c15)));
    float t[4];
    _mm_storeu_ps(t, _mm_add_ps(c0, c8));
    return t[0] + t[1] + t[2] + t[3];
}

float simd_fma_chains(uint64_t iters, double *flops) {
    static const int lanes[] = {4, 8, 16};
    simd_level l = simd_detect();
    *flops = 2.0 * lanes[l] * SIMD_CHAINS * (double)iters;
    switch (l) {
    case SIMD_AVX512: return simd_fma_avx512(iters);
    case SIMD_AVX2: return simd_fma_avx2(iters);
    default: return simd_fma_sse2(iters);
    }
}

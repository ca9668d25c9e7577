/* hostbuf.c — large aligned host buffers for operands, filled with reproducible random values. */
#include "hostbuf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "apr/apr_float16.h"

#define HOSTBUF_ALIGN ((size_t)2 << 20)

static size_t hostbuf_round(size_t bytes) { return (bytes + HOSTBUF_ALIGN - 1) / HOSTBUF_ALIGN * HOSTBUF_ALIGN; }

void *hostbuf_alloc(size_t bytes) {
    void *p = NULL;
    size_t n = hostbuf_round(bytes ? bytes : 1);
    if (posix_memalign(&p, HOSTBUF_ALIGN, n)) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
}

void hostbuf_free(void *p, size_t bytes) {
    (void)bytes;
    free(p);
}

/* splitmix64: one 64-bit state, good enough spread for test operands. */
static uint64_t hostbuf_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void hostbuf_fill(void *p, apr_dtype t, int64_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed;
    float span = hi - lo;
    for (int64_t i = 0; i < n; i++) {
        float v = lo + span * (float)(hostbuf_next(&s) >> 40) * (1.0f / 16777216.0f);
        if (t == APR_F32) ((float *)p)[i] = v;
        else if (t == APR_F16) ((uint16_t *)p)[i] = apr_f32_to_f16(v);
        else if (t == APR_BF16) ((uint16_t *)p)[i] = apr_f32_to_bf16(v);
    }
}

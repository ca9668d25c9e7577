/* qdot_packk.c — dot products of packed (16 rows interleaved) Q4_K / Q6_K weights with q8_K activation rows; qpack.h gives the layouts. */
#include <immintrin.h>
#include <string.h>

#include "qpack.h"

#if APR_X86_LEVEL >= 3

#define QK_INLINE static inline __attribute__((always_inline))
#define QK_UNROLL _Pragma("GCC unroll 8")

/* bytes ahead of the block being read that each of its lines is fetched: one block position of
 * 16 rows is 2.3-3.4 KB, so this is about two ahead (one ahead leaves too little in flight). */
#ifndef QPACKK_PF_AHEAD
#define QPACKK_PF_AHEAD 6144
#endif

/* As qp_dot in qdot_pack.c: vpdpbusd, or vpmaddubsw + vpmaddwd (|w| <= 63, |a| <= 127: no
 * saturation of the int16 pair sums). */
QK_INLINE __m512i qk_dot(__m512i acc, __m512i w, __m512i a) {
#if defined(QDOT_VNNI) && QDOT_VNNI
    return _mm512_dpbusd_epi32(acc, w, a);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(w, a), _mm512_set1_epi16(1)));
#endif
}

QK_INLINE __m512i qk_bcast(const int8_t *q) {
    int32_t v;
    memcpy(&v, q, 4);
    return _mm512_set1_epi32(v);
}

QK_INLINE __m512i qk_u8(const char *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
QK_INLINE __m512i qk_s8(const char *p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)); }

QK_INLINE void qk_prefetch(const char *p, int64_t bb) {
    for (int64_t o = 0; o < bb; o += 64) _mm_prefetch(p + QPACKK_PF_AHEAD + o, _MM_HINT_T0);
}

/* One Q4_K block position of 16 rows against NA activation blocks a[j]. */
QK_INLINE void qk4_block(int NA, const char *p, const apr_block_q8_K *const *a, __m512 *acc) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512i isum[4];
    QK_UNROLL
    for (int j = 0; j < NA; j++) isum[j] = _mm512_setzero_si512();
    QK_UNROLL
    for (int pp = 0; pp < 4; pp++) {
        __m512i lo[8], hi[8];
        QK_UNROLL
        for (int t = 0; t < 8; t++) {
            const __m512i v = _mm512_loadu_si512(p + QPACK_Q4K_QS + 512 * pp + 64 * t);
            lo[t] = _mm512_and_si512(v, m4);
            hi[t] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        const __m512i sc0 = qk_u8(p + QPACK_Q4K_SC + 16 * (2 * pp)), sc1 = qk_u8(p + QPACK_Q4K_SC + 16 * (2 * pp + 1));
        QK_UNROLL
        for (int j = 0; j < NA; j++) {
            const int8_t *q = a[j]->qs + 64 * pp;
            /* four chains of 4 (not two of 8): the latency of a chain, not the count, bound it */
            __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
            QK_UNROLL
            for (int t = 0; t < 4; t++) {
                s0 = qk_dot(s0, lo[t], qk_bcast(q + 4 * t));
                s1 = qk_dot(s1, hi[t], qk_bcast(q + 32 + 4 * t));
                s2 = qk_dot(s2, lo[t + 4], qk_bcast(q + 16 + 4 * t));
                s3 = qk_dot(s3, hi[t + 4], qk_bcast(q + 48 + 4 * t));
            }
            s0 = _mm512_add_epi32(s0, s2);
            s1 = _mm512_add_epi32(s1, s3);
            isum[j] = _mm512_add_epi32(isum[j], _mm512_add_epi32(_mm512_mullo_epi32(s0, sc0), _mm512_mullo_epi32(s1, sc1)));
        }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32)));
    QK_UNROLL
    for (int j = 0; j < NA; j++) {
        __m512i msum = _mm512_setzero_si512();
        QK_UNROLL
        for (int sb = 0; sb < 8; sb++) {
            const int32_t asum = a[j]->bsums[2 * sb] + a[j]->bsums[2 * sb + 1];
            msum = _mm512_add_epi32(msum, _mm512_mullo_epi32(qk_u8(p + QPACK_Q4K_M + 16 * sb), _mm512_set1_epi32(asum)));
        }
        const __m512 da = _mm512_set1_ps(a[j]->d);
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(dw, da), acc[j]);
        acc[j] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dm, da), acc[j]);
    }
}

/* One Q6_K block position of 16 rows against NA activation blocks a[j]. */
QK_INLINE void qk6_block(int NA, const char *p, const apr_block_q8_K *const *a, __m512 *acc) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    __m512i isum[4];
    QK_UNROLL
    for (int j = 0; j < NA; j++) isum[j] = _mm512_setzero_si512();
    QK_UNROLL
    for (int G = 0; G < 4; G++) {
        const char *g = p + QPACK_Q6K_Q + QPACK_Q6K_GROUP * G;
        __m512i lo[8], hi[8];
        QK_UNROLL
        for (int u = 0; u < 4; u++) {
            const __m512i h = _mm512_loadu_si512(g + 512 + 64 * u);
            const __m512i v0 = _mm512_loadu_si512(g + 64 * (2 * u)), v1 = _mm512_loadu_si512(g + 64 * (2 * u + 1));
            lo[2 * u] = _mm512_or_si512(_mm512_and_si512(v0, m4), _mm512_and_si512(_mm512_slli_epi16(h, 4), m30));
            hi[2 * u] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v0, 4), m4),
                                        _mm512_and_si512(_mm512_slli_epi16(h, 2), m30));
            lo[2 * u + 1] = _mm512_or_si512(_mm512_and_si512(v1, m4), _mm512_and_si512(h, m30));
            hi[2 * u + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v1, 4), m4),
                                            _mm512_and_si512(_mm512_srli_epi16(h, 2), m30));
        }
        QK_UNROLL
        for (int j = 0; j < NA; j++) {
            const int8_t *q = a[j]->qs + 64 * G;
            const int16_t *bs = a[j]->bsums + 4 * G;
            /* each 16-element sub-block's dot starts at -32 * its activation sum: q - 32 */
            __m512i d0 = _mm512_set1_epi32(-32 * bs[0]), d1 = _mm512_set1_epi32(-32 * bs[1]);
            __m512i d2 = _mm512_set1_epi32(-32 * bs[2]), d3 = _mm512_set1_epi32(-32 * bs[3]);
            QK_UNROLL
            for (int t = 0; t < 4; t++) {
                d0 = qk_dot(d0, lo[t], qk_bcast(q + 4 * t));
                d1 = qk_dot(d1, lo[t + 4], qk_bcast(q + 16 + 4 * t));
                d2 = qk_dot(d2, hi[t], qk_bcast(q + 32 + 4 * t));
                d3 = qk_dot(d3, hi[t + 4], qk_bcast(q + 48 + 4 * t));
            }
            const char *sc = p + QPACK_Q6K_SC + 16 * 4 * G;
            const __m512i s01 = _mm512_add_epi32(_mm512_mullo_epi32(d0, qk_s8(sc)), _mm512_mullo_epi32(d1, qk_s8(sc + 16)));
            const __m512i s23 = _mm512_add_epi32(_mm512_mullo_epi32(d2, qk_s8(sc + 32)), _mm512_mullo_epi32(d3, qk_s8(sc + 48)));
            isum[j] = _mm512_add_epi32(isum[j], _mm512_add_epi32(s01, s23));
        }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    QK_UNROLL
    for (int j = 0; j < NA; j++)
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(dw, _mm512_set1_ps(a[j]->d)), acc[j]);
}

/* f: 0 Q4_K, 1 Q6_K; as qpack_dot_fn with NA fixed. */
QK_INLINE void qk_groups(int f, int NA, int64_t K, const char *w, int64_t ng, int nr, const char *a, int64_t as,
                         float *out, int64_t os) {
    const int64_t nb = K / APR_QK_K, bb = qpack_block_bytes(f == 0 ? APR_Q4_K : APR_Q6_K);
    const __mmask16 keep = (__mmask16)((1u << nr) - 1u);
    for (int64_t g = 0; g < ng; g++) {
        __m512 acc[4];
        QK_UNROLL
        for (int j = 0; j < NA; j++) acc[j] = _mm512_setzero_ps();
        const char *p = w + g * nb * bb;
        for (int64_t b = 0; b < nb; b++, p += bb) {
            const apr_block_q8_K *ab[4];
            QK_UNROLL
            for (int j = 0; j < NA; j++) ab[j] = (const apr_block_q8_K *)(a + j * as) + b;
            qk_prefetch(p, bb);
            if (f == 0) qk4_block(NA, p, ab, acc);
            else qk6_block(NA, p, ab, acc);
        }
        const __mmask16 m = g + 1 == ng ? keep : (__mmask16)0xFFFF;
        QK_UNROLL
        for (int j = 0; j < NA; j++) _mm512_mask_storeu_ps(out + j * os + 16 * g, m, acc[j]);
    }
}

#define QK_FN(F, NA) \
    static void qk_##F##_##NA(int64_t K, const char *w, int64_t ng, int nr, const char *a, int64_t as, float *out, \
                              int64_t os) { \
        qk_groups(F, NA, K, w, ng, nr, a, as, out, os); \
    }
#define QK_FNS(F, name) \
    QK_FN(F, 1) QK_FN(F, 2) QK_FN(F, 3) QK_FN(F, 4) \
    void QDOT_NAME(name)(int64_t K, const char *w, int64_t ng, int nr, const char *a, int64_t as, int na, float *out, \
                         int64_t os) { \
        typedef void tile_fn(int64_t, const char *, int64_t, int, const char *, int64_t, float *, int64_t); \
        static tile_fn *const tab[4] = {qk_##F##_1, qk_##F##_2, qk_##F##_3, qk_##F##_4}; \
        for (int j = 0; j < na; j += 4) \
            tab[(na - j < 4 ? na - j : 4) - 1](K, w, ng, nr, a + j * as, as, out + j * os, os); \
    }

QK_FNS(0, qpack_dot_q4_K)
QK_FNS(1, qpack_dot_q6_K)

#endif

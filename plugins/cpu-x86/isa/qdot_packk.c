/* qdot_packk.c — dot products of packed (16 rows interleaved) Q4_K / Q6_K weights with q8_K activation rows; qpack.h gives the layouts. */
#include <immintrin.h>
#include <string.h>

#include "qpack.h"

#define QK_INLINE static inline __attribute__((always_inline))
#define QK_UNROLL _Pragma("GCC unroll 8")

/* bytes ahead of the block being read that each of its lines is fetched: one block position of
 * 16 rows is 2.3-3.4 KB, so this is about two ahead (one ahead leaves too little in flight). */
#ifndef QPACKK_PF_AHEAD
#define QPACKK_PF_AHEAD 6144
#endif

QK_INLINE void qk_prefetch(const char *p, int64_t bb) {
    for (int64_t o = 0; o < bb; o += 64) _mm_prefetch(p + QPACKK_PF_AHEAD + o, _MM_HINT_T0);
}

/* The tile entry points of each level's kernels: one function per activation-row count, and the
 * qpack_dot_fn that walks na rows 4 at a time (the groups function is the level's own). */
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

#if APR_X86_LEVEL >= 3

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

QK_FNS(0, qpack_dot_q4_K)
QK_FNS(1, qpack_dot_q6_K)

#elif APR_X86_LEVEL == 2

/*
 * AVX2: a word of 16 rows is two ymm, rows 0..7 (its first 32 bytes) and rows 8..15. With several
 * activation rows each block position is read as those two halves in turn, so that only one
 * half's integer sums are live (16 registers) and the second half finds the block's lines in L1;
 * with one row (decode) both halves go together. A sub-block's products are summed where they
 * cannot overflow, in int16 lanes after vpmaddubsw or int32 lanes below 2^15 after vpdpbusd, and
 * then scaled by vpmaddwd / vpdpwssd against the rows' scales as int16 pairs, not vpmulld (slow):
 * the integer sums, and so the results, are exactly the AVX-512 code's.
 */

/* The lines of the block position about to be read, all requested at its start: reading them on
 * demand, or fetching a block or more ahead, left a single stream much slower. */
QK_INLINE void qk2_prefetch(const char *p, int64_t bb) {
    for (int64_t o = 0; o < bb; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

/* x as it stands, in a register: keeps the compiler from rebalancing a chain of integer adds into
 * a tree whose partial sums spill */
#define QK2_KEEP(x) __asm__("" : "+v"(x))

QK_INLINE __m256i qk2_bcast(const int8_t *q) {
    int32_t v;
    memcpy(&v, q, 4);
    return _mm256_set1_epi32(v);
}

/* int32 lane i = the int16 pair (s, s), s the unsigned byte 8 h + i of sc (Q4_K's 6-bit scales) */
QK_INLINE __m256i qk2_pair_u8(const char *sc, int h) {
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)sc));
    const char o = (char)(8 * h);
    return _mm256_shuffle_epi8(b, _mm256_setr_epi8(o, -1, o, -1, o + 1, -1, o + 1, -1, o + 2, -1, o + 2, -1, o + 3, -1, o + 3, -1,
                                                   o + 4, -1, o + 4, -1, o + 5, -1, o + 5, -1, o + 6, -1, o + 6, -1, o + 7, -1, o + 7, -1));
}

/* int32 lane i = the int16 pair (s, s), s the signed byte 8 h + i of sc (Q6_K's scales) */
QK_INLINE __m256i qk2_pair_s8(const char *sc, int h) {
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)sc));
    const char o = (char)(8 * h);
    const __m256i c = _mm256_setr_epi8(-1, o, -1, o, -1, o + 1, -1, o + 1, -1, o + 2, -1, o + 2, -1, o + 3, -1, o + 3,
                                       -1, o + 4, -1, o + 4, -1, o + 5, -1, o + 5, -1, o + 6, -1, o + 6, -1, o + 7, -1, o + 7);
    return _mm256_srai_epi16(_mm256_shuffle_epi8(b, c), 8);
}

/* int32 lane i = the int16 pair (x[8 h + i], y[8 h + i]) of bytes x, y, zero- or sign-extended */
QK_INLINE __m256i qk2_pair_xy(const char *x, const char *y, int h, int sgn) {
    const __m128i v = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(x + 8 * h)),
                                        _mm_loadl_epi64((const __m128i *)(y + 8 * h)));
    return sgn ? _mm256_cvtepi8_epi16(v) : _mm256_cvtepu8_epi16(v);
}

/* isum + the int16 pairs of c times those of s, summed per int32 lane */
QK_INLINE __m256i qk2_scale(__m256i isum, __m256i c, __m256i s) {
#if defined(QDOT_VNNI) && QDOT_VNNI
    return qdot_dpwssd256(isum, c, s);
#else
    return _mm256_add_epi32(isum, _mm256_madd_epi16(c, s));
#endif
}

/* The mins of Q4_K rows 8 h .. 8 h + 7: sum over sub-block pairs k of the int16 pairs
 * (m[2k], m[2k+1]) times those of the activation sums ap (qk2_q4_ap). */
QK_INLINE __m256i qk2_q4_msum(const char *p, int h, __m256i ap) {
    __m256i msum = _mm256_setzero_si256();
    QK_UNROLL
    for (int k = 0; k < 4; k++) {
        const __m256i m = qk2_pair_xy(p + QPACK_Q4K_M + 32 * k, p + QPACK_Q4K_M + 32 * k + 16, h, 0);
        msum = _mm256_add_epi32(msum, _mm256_madd_epi16(m, _mm256_permutevar8x32_epi32(ap, _mm256_set1_epi32((k & 1) + 4 * (k >> 1)))));
    }
    return msum;
}

/* int32 k of lane L: the int16 pair of the activation sums of sub-blocks 4 L + 2 k and + 1 */
QK_INLINE __m256i qk2_q4_ap(const apr_block_q8_K *a) {
    const __m256i s = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a->bsums), _mm256_set1_epi16(1));
    return _mm256_packs_epi32(s, s);
}

/* -32 * sum over the Q6_K sub-blocks of sc * (their activation sums), rows 8 h .. 8 h + 7 */
QK_INLINE __m256i qk2_q6_bias(const char *p, int h, const apr_block_q8_K *a) {
    const char *sc = p + QPACK_Q6K_SC;
    __m256i b = _mm256_setzero_si256();
    QK_UNROLL
    for (int k = 0; k < 8; k++)
        b = qk2_scale(b, qk2_pair_xy(sc + 32 * k, sc + 32 * k + 16, h, 1), qk2_bcast((const int8_t *)(a->bsums + 2 * k)));
    return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(b, 5));
}

/* Q4_K, rows 8 h .. 8 h + 7 of one block position against NA activation blocks a[j]: the sums of
 * qk4_block into acc + 8 j. */
QK_INLINE void qk2_q4_half(int NA, const char *p, int h, const apr_block_q8_K *const *a, float *acc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i isum[4];
    QK_UNROLL
    for (int j = 0; j < NA; j++) isum[j] = _mm256_setzero_si256();
#pragma GCC unroll 1
    for (int pp = 0; pp < 4; pp++) {
        const char *qs = p + QPACK_Q4K_QS + 512 * pp + 32 * h;
        QK_UNROLL
        for (int n = 0; n < 2; n++) { /* sub-block 2 pp + n: the low, then the high nibbles */
            const char *sc = p + QPACK_Q4K_SC + 16 * (2 * pp + n);
#if defined(QDOT_VNNI) && QDOT_VNNI
            /* (sc, 0) pairs: c below 2^15 is its own low half */
            const __m256i s = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sc + 8 * h)));
            QK_UNROLL
            for (int t4 = 0; t4 < 8; t4 += 4) {
                /* 16 products of at most 15 * 127 each per lane: below 2^15 */
                __m256i c[4];
                QK_UNROLL
                for (int j = 0; j < NA; j++) c[j] = _mm256_setzero_si256();
                QK_UNROLL
                for (int t = t4; t < t4 + 4; t++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 64 * t));
                    const __m256i x = _mm256_and_si256(n ? _mm256_srli_epi16(v, 4) : v, m4);
                    QK_UNROLL
                    for (int j = 0; j < NA; j++) c[j] = qdot_dpbusd256(c[j], x, qk2_bcast(a[j]->qs + 64 * pp + 32 * n + 4 * t));
                }
                QK_UNROLL
                for (int j = 0; j < NA; j++) isum[j] = qk2_scale(isum[j], c[j], s);
            }
#else
            const __m256i s = qk2_pair_u8(sc, h);
            /* each int16 lane sums 16 products of at most 15 * 127: no overflow */
            __m256i c[4];
            QK_UNROLL
            for (int j = 0; j < NA; j++) c[j] = _mm256_setzero_si256();
            QK_UNROLL
            for (int t = 0; t < 8; t++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 64 * t));
                const __m256i x = _mm256_and_si256(n ? _mm256_srli_epi16(v, 4) : v, m4);
                QK_UNROLL
                for (int j = 0; j < NA; j++) {
                    c[j] = _mm256_add_epi16(c[j], _mm256_maddubs_epi16(x, qk2_bcast(a[j]->qs + 64 * pp + 32 * n + 4 * t)));
                    QK2_KEEP(c[j]);
                }
            }
            QK_UNROLL
            for (int j = 0; j < NA; j++) {
                isum[j] = qk2_scale(isum[j], c[j], s);
                QK2_KEEP(isum[j]);
            }
#endif
        }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * h)));
    const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 32 + 16 * h)));
    QK_UNROLL
    for (int j = 0; j < NA; j++) {
        const __m256 da = _mm256_set1_ps(a[j]->d);
        __m256 r = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_mul_ps(dw, da), _mm256_load_ps(acc + 8 * j));
        r = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(qk2_q4_msum(p, h, qk2_q4_ap(a[j]))), _mm256_mul_ps(dm, da), r);
        _mm256_store_ps(acc + 8 * j, r);
    }
}

/* Q6_K, rows 8 h .. 8 h + 7 of one block position against NA activation blocks a[j]: the sums of
 * qk6_block into acc + 8 j. */
QK_INLINE void qk2_q6_half(int NA, const char *p, int h, const apr_block_q8_K *const *a, float *acc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const char *sc = p + QPACK_Q6K_SC;
    __m256i isum[4];
    QK_UNROLL
    for (int j = 0; j < NA; j++) isum[j] = qk2_q6_bias(p, h, a[j]);
#pragma GCC unroll 1
    for (int G = 0; G < 4; G++) {
        const char *g = p + QPACK_Q6K_Q + QPACK_Q6K_GROUP * G + 32 * h;
        QK_UNROLL
        for (int k = 0; k < 4; k++) { /* sub-block 4 G + k: lo words 0..3, 4..7, then hi words */
            const __m256i s = qk2_pair_s8(sc + 16 * (4 * G + k), h);
            QK_UNROLL
            for (int e = 0; e < 2; e++) {
                const int u = 2 * (k & 1) + e;
                const __m256i hb = _mm256_loadu_si256((const __m256i *)(g + 512 + 64 * u));
                const __m256i v0 = _mm256_loadu_si256((const __m256i *)(g + 64 * (2 * u)));
                const __m256i v1 = _mm256_loadu_si256((const __m256i *)(g + 64 * (2 * u + 1)));
                __m256i x0, x1;
                if (k < 2) {
                    x0 = _mm256_or_si256(_mm256_and_si256(v0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
                    x1 = _mm256_or_si256(_mm256_and_si256(v1, m4), _mm256_and_si256(hb, m30));
                } else {
                    x0 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v0, 4), m4),
                                         _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
                    x1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
                }
                /* each int16 lane sums 4 products of at most 63 * 127: no overflow */
                QK_UNROLL
                for (int j = 0; j < NA; j++) {
                    const int8_t *q = a[j]->qs + 64 * G + 16 * k + 8 * e;
                    const __m256i c = _mm256_add_epi16(_mm256_maddubs_epi16(x0, qk2_bcast(q)),
                                                       _mm256_maddubs_epi16(x1, qk2_bcast(q + 4)));
                    isum[j] = qk2_scale(isum[j], c, s);
                    QK2_KEEP(isum[j]);
                }
            }
        }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * h)));
    QK_UNROLL
    for (int j = 0; j < NA; j++)
        _mm256_store_ps(acc + 8 * j, _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_mul_ps(dw, _mm256_set1_ps(a[j]->d)),
                                                    _mm256_load_ps(acc + 8 * j)));
}

/* Q4_K, the 16 rows of one block position against one activation block (decode): both halves
 * and both nibbles of each word at once, so a word is loaded once and each activation broadcast
 * serves four dots. acc[h]: rows 8 h .. 8 h + 7. */
QK_INLINE void qk2_q4_one(const char *p, const apr_block_q8_K *a, __m256 *acc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i isum0 = _mm256_setzero_si256(), isum1 = _mm256_setzero_si256();
#pragma GCC unroll 1
    for (int pp = 0; pp < 4; pp++) {
        const char *qs = p + QPACK_Q4K_QS + 512 * pp, *sc = p + QPACK_Q4K_SC + 32 * pp;
        const int8_t *q = a->qs + 64 * pp;
#if defined(QDOT_VNNI) && QDOT_VNNI
        QK_UNROLL
        for (int t4 = 0; t4 < 8; t4 += 4) {
            /* c0 / c1: low nibbles of rows 0..7 / 8..15, c2 / c3 the high ones; below 2^15 as in qk2_q4_half */
            __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
            QK_UNROLL
            for (int t = t4; t < t4 + 4; t++) {
                const __m256i v0 = _mm256_loadu_si256((const __m256i *)(qs + 64 * t));
                const __m256i v1 = _mm256_loadu_si256((const __m256i *)(qs + 64 * t + 32));
                const __m256i bl = qk2_bcast(q + 4 * t), bh = qk2_bcast(q + 32 + 4 * t);
                c0 = qdot_dpbusd256(c0, _mm256_and_si256(v0, m4), bl);
                c1 = qdot_dpbusd256(c1, _mm256_and_si256(v1, m4), bl);
                c2 = qdot_dpbusd256(c2, _mm256_and_si256(_mm256_srli_epi16(v0, 4), m4), bh);
                c3 = qdot_dpbusd256(c3, _mm256_and_si256(_mm256_srli_epi16(v1, 4), m4), bh);
            }
            isum0 = qk2_scale(isum0, c0, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)sc)));
            isum1 = qk2_scale(isum1, c1, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sc + 8))));
            isum0 = qk2_scale(isum0, c2, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sc + 16))));
            isum1 = qk2_scale(isum1, c3, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sc + 24))));
        }
#else
        __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
        QK_UNROLL
        for (int t = 0; t < 8; t++) {
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(qs + 64 * t));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(qs + 64 * t + 32));
            const __m256i bl = qk2_bcast(q + 4 * t), bh = qk2_bcast(q + 32 + 4 * t);
            c0 = _mm256_add_epi16(c0, _mm256_maddubs_epi16(_mm256_and_si256(v0, m4), bl));
            c1 = _mm256_add_epi16(c1, _mm256_maddubs_epi16(_mm256_and_si256(v1, m4), bl));
            c2 = _mm256_add_epi16(c2, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), m4), bh));
            c3 = _mm256_add_epi16(c3, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), m4), bh));
            QK2_KEEP(c0);
            QK2_KEEP(c1);
            QK2_KEEP(c2);
            QK2_KEEP(c3);
        }
        isum0 = qk2_scale(isum0, c0, qk2_pair_u8(sc, 0));
        isum1 = qk2_scale(isum1, c1, qk2_pair_u8(sc, 1));
        isum0 = qk2_scale(isum0, c2, qk2_pair_u8(sc + 16, 0));
        isum1 = qk2_scale(isum1, c3, qk2_pair_u8(sc + 16, 1));
#endif
        QK2_KEEP(isum0);
        QK2_KEEP(isum1);
    }
    const __m256i ap = qk2_q4_ap(a);
    const __m256 da = _mm256_set1_ps(a->d);
    QK_UNROLL
    for (int h = 0; h < 2; h++) {
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * h)));
        const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 32 + 16 * h)));
        acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h ? isum1 : isum0), _mm256_mul_ps(dw, da), acc[h]);
        acc[h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(qk2_q4_msum(p, h, ap)), _mm256_mul_ps(dm, da), acc[h]);
    }
}

/* Q6_K, the 16 rows of one block position against one activation block (decode): both halves of
 * each word at once, sharing the activation's broadcasts. acc[h]: rows 8 h .. 8 h + 7. */
QK_INLINE void qk2_q6_one(const char *p, const apr_block_q8_K *a, __m256 *acc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256i isum[2] = {qk2_q6_bias(p, 0, a), qk2_q6_bias(p, 1, a)};
#pragma GCC unroll 1
    for (int G = 0; G < 4; G++) {
        const char *g = p + QPACK_Q6K_Q + QPACK_Q6K_GROUP * G;
        QK_UNROLL
        for (int k = 0; k < 4; k++) {
            QK_UNROLL
            for (int e = 0; e < 2; e++) {
                const int u = 2 * (k & 1) + e;
                const int8_t *q = a->qs + 64 * G + 16 * k + 8 * e;
                const __m256i b0 = qk2_bcast(q), b1 = qk2_bcast(q + 4);
                QK_UNROLL
                for (int h = 0; h < 2; h++) {
                    const __m256i hb = _mm256_loadu_si256((const __m256i *)(g + 512 + 64 * u + 32 * h));
                    const __m256i v0 = _mm256_loadu_si256((const __m256i *)(g + 64 * (2 * u) + 32 * h));
                    const __m256i v1 = _mm256_loadu_si256((const __m256i *)(g + 64 * (2 * u + 1) + 32 * h));
                    __m256i x0, x1;
                    if (k < 2) {
                        x0 = _mm256_or_si256(_mm256_and_si256(v0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
                        x1 = _mm256_or_si256(_mm256_and_si256(v1, m4), _mm256_and_si256(hb, m30));
                    } else {
                        x0 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v0, 4), m4),
                                             _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
                        x1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v1, 4), m4),
                                             _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
                    }
                    const __m256i c = _mm256_add_epi16(_mm256_maddubs_epi16(x0, b0), _mm256_maddubs_epi16(x1, b1));
                    isum[h] = qk2_scale(isum[h], c, qk2_pair_s8(p + QPACK_Q6K_SC + 16 * (4 * G + k), h));
                    QK2_KEEP(isum[h]);
                }
            }
        }
    }
    const __m256 da = _mm256_set1_ps(a->d);
    QK_UNROLL
    for (int h = 0; h < 2; h++)
        acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[h]),
                                 _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * h))), da), acc[h]);
}

/* f: 0 Q4_K, 1 Q6_K; as qpack_dot_fn with NA fixed. */
QK_INLINE void qk_groups(int f, int NA, int64_t K, const char *w, int64_t ng, int nr, const char *a, int64_t as,
                          float *out, int64_t os) {
    const int64_t nb = K / APR_QK_K, bb = qpack_block_bytes(f == 0 ? APR_Q4_K : APR_Q6_K);
    for (int64_t g = 0; g < ng; g++) {
        const char *p = w + g * nb * bb;
        /* acc[h][8 j ..]: rows 8 h .. 8 h + 7 against activation row j; with several rows these f32
         * sums stay in memory, touched once per block half, and the registers hold the integer sums */
        float acc[2][4 * 8] __attribute__((aligned(32))) = {{0}};
        if (NA == 1) {
            __m256 r[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int64_t b = 0; b < nb; b++, p += bb) {
                qk2_prefetch(p, bb);
                if (f == 0) qk2_q4_one(p, (const apr_block_q8_K *)a + b, r);
                else qk2_q6_one(p, (const apr_block_q8_K *)a + b, r);
            }
            _mm256_store_ps(acc[0], r[0]);
            _mm256_store_ps(acc[1], r[1]);
        } else {
            for (int64_t b = 0; b < nb; b++, p += bb) {
                const apr_block_q8_K *ab[4];
                QK_UNROLL
                for (int j = 0; j < NA; j++) ab[j] = (const apr_block_q8_K *)(a + j * as) + b;
                qk2_prefetch(p, bb);
                QK_UNROLL
                for (int h = 0; h < 2; h++) {
                    if (f == 0) qk2_q4_half(NA, p, h, ab, acc[h]);
                    else qk2_q6_half(NA, p, h, ab, acc[h]);
                }
            }
        }
        /* only the last group of a weight has fewer than 16 rows */
        const int rows = g + 1 == ng ? nr : QPACK_ROWS;
        QK_UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows - 8 * h), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            QK_UNROLL
            for (int j = 0; j < NA; j++) _mm256_maskstore_ps(out + j * os + 16 * g + 8 * h, keep, _mm256_load_ps(acc[h] + 8 * j));
        }
    }
}

QK_FNS(0, qpack_dot_q4_K)
QK_FNS(1, qpack_dot_q6_K)

#endif

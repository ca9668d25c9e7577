/* qdot_pack.c — dot products of packed (16 rows interleaved) Q4_0 / Q5_0 / Q8_0 weights with 8-bit activation rows; qpack.h gives the layouts. */
#include <immintrin.h>
#include <string.h>

#include "qpack.h"

#if APR_X86_LEVEL >= 3

#define QP_INLINE static inline __attribute__((always_inline))
#define QP_UNROLL _Pragma("GCC unroll 8")

/* The packed stream is one sequence; each block position's lines are fetched this far ahead (the
 * hardware prefetcher alone leaves a single stream latency-bound). */
#ifndef QPACK_PF_AHEAD
#define QPACK_PF_AHEAD 256
#endif

/* How far ahead each stream of a decode round prefetches (qp_round); 0 = not at all. */
#ifndef QPACK_RPF
#define QPACK_RPF 1024
#endif

/* int32 lanes: acc + sum over the 4 byte pairs of w (unsigned) times a (signed). The VNNI copy
 * is one vpdpbusd; the other pairs vpmaddubsw (no saturation: |w| <= 15 for the nibbles it gets)
 * with vpmaddwd. */
QP_INLINE __m512i qp_dot(__m512i acc, __m512i w, __m512i a) {
#if defined(QDOT_VNNI) && QDOT_VNNI
    return _mm512_dpbusd_epi32(acc, w, a);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(w, a), _mm512_set1_epi16(1)));
#endif
}

QP_INLINE __m512i qp_bcast(const int8_t *q) {
    int32_t v;
    memcpy(&v, q, 4);
    return _mm512_set1_epi32(v);
}

/* The weight dtype of kernel format f. */
#define QP_DTYPE(f) ((f) == 0 ? APR_Q4_0 : (f) == 1 ? APR_Q8_0 : APR_Q5_0)

/* The words of a Q4_0 (f 0) or Q5_0 (f 2) block position as unsigned bytes: w[t] holds elements
 * 4 t .. 4 t + 3 of each row, w[4 + t] elements 16 + 4 t ... Q5_0's fifth bits are stored as one
 * 64-bit mask per word (qpack.h), so adding 16 is one masked add, not a spread of ggml's per-row
 * qh words in the kernel, which would make Q5_0 decode much slower than Q4_0's. */
QP_INLINE void qp_nibbles(int f, const char *p, __m512i *w) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const char *qs = p + (f == 2 ? 96 : 32);
    QP_UNROLL
    for (int t = 0; t < 4; t++) {
        const __m512i v = _mm512_loadu_si512(qs + 64 * t);
        w[t] = _mm512_and_si512(v, m4);
        w[4 + t] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    if (f == 2) {
        const __m512i sixteen = _mm512_set1_epi8(16);
        QP_UNROLL
        for (int t = 0; t < 8; t++) {
            uint64_t m;
            memcpy(&m, p + 32 + 8 * t, 8);
            w[t] = _mm512_mask_add_epi8(w[t], _cvtu64_mask64(m), w[t], sixteen);
        }
    }
}

/* The 8 weight words of a block position, w[t] against activation bytes 4 t .. 4 t + 3. */
QP_INLINE void qp_words(int f, const char *p, __m512i *w) {
    if (f != 1) {
        qp_nibbles(f, p, w);
        return;
    }
    QP_UNROLL
    for (int t = 0; t < 8; t++) w[t] = _mm512_loadu_si512(p + 32 + 64 * t);
}

/* One block position's integer dots of 16 rows with one activation block: c plus the sum over t of
 * dot(w[t], x[t]), x[t] the broadcast activation bytes 4 t .. 4 t + 3. Every path forms each row's
 * sum here, in this order, so a row's result does not depend on the path. */
QP_INLINE __m512i qp_sum(int f, const __m512i *w, const __m512i *x, int32_t c) {
    /* two chains, so the adds of one overlap the other's latency */
    __m512i s0 = _mm512_set1_epi32(c), s1 = _mm512_setzero_si512();
    QP_UNROLL
    for (int t = 0; t < 4; t++) {
        /* Q4_0 / Q5_0: words t and 4 + t (an element's low and high nibble halves); Q8_0: 2 t, 2 t + 1 */
        const int a = f != 1 ? t : 2 * t, b = f != 1 ? 4 + t : 2 * t + 1;
        s0 = qp_dot(s0, w[a], x[a]);
        s1 = qp_dot(s1, w[b], x[b]);
    }
    return _mm512_add_epi32(s0, s1);
}

/* One block position of 16 rows against NA activation rows. f: 0 Q4_0, 1 Q8_0, 2 Q5_0. */
QP_INLINE void qp_block(int f, int NA, const char *p, const int8_t *const *aq, const float *const *ad,
                        const int32_t *const *ac, int64_t b, __m512 *acc) {
    __m512i w[8];
    qp_words(f, p, w);
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    QP_UNROLL
    for (int j = 0; j < NA; j++) {
        const int8_t *q = aq[j] + 32 * b;
        __m512i x[8];
        QP_UNROLL
        for (int t = 0; t < 8; t++) x[t] = qp_bcast(q + 4 * t);
        const __m512 s = _mm512_cvtepi32_ps(qp_sum(f, w, x, ac[j][b]));
        acc[j] = _mm512_fmadd_ps(s, _mm512_mul_ps(dw, _mm512_set1_ps(ad[j][b])), acc[j]);
    }
}

QP_INLINE void qp_groups(int f, int NA, int64_t K, const char *w, int64_t ng, int nr, const char *a, int64_t as,
                         float *out, int64_t os) {
    const int64_t nb = K / APR_QK, bb = qpack_block_bytes(QP_DTYPE(f));
    const int64_t qbytes = (K + 63) / 64 * 64, dbytes = (nb * 4 + 63) / 64 * 64;
    const int8_t *aq[4];
    const float *ad[4];
    const int32_t *ac[4];
    QP_UNROLL
    for (int j = 0; j < NA; j++) {
        aq[j] = (const int8_t *)(a + j * as);
        ad[j] = (const float *)(a + j * as + qbytes);
        ac[j] = (const int32_t *)(a + j * as + qbytes + dbytes);
    }
    const __mmask16 keep = (__mmask16)((1u << nr) - 1u);
    for (int64_t g = 0; g < ng; g++) {
        __m512 acc[4];
        QP_UNROLL
        for (int j = 0; j < NA; j++) acc[j] = _mm512_setzero_ps();
        const char *p = w + g * nb * bb;
        for (int64_t b = 0; b < nb; b++, p += bb) {
            for (int64_t o = 0; o < bb; o += 64) _mm_prefetch(p + (f == 1 ? 1088 : QPACK_PF_AHEAD) + o, _MM_HINT_T0);
            qp_block(f, NA, p, aq, ad, ac, b, acc);
        }
        /* only the last group of a weight has fewer than 16 rows */
        const __mmask16 m = g + 1 == ng ? keep : (__mmask16)0xFFFF;
        QP_UNROLL
        for (int j = 0; j < NA; j++) _mm512_mask_storeu_ps(out + j * os + 16 * g, m, acc[j]);
    }
}

/* One round of decode (one activation row): one group of each of the QPACK_STREAMS streams, all
 * advancing one block position at a time and sharing the activation's broadcasts, each stream
 * prefetching QPACK_RPF bytes ahead. Why: one core reading one sequence with this much work per
 * line keeps too few lines in flight, and a few prefetching streams read steadily where more
 * streams without prefetch swing with the memory's state. A stream without a group (w[s] NULL)
 * reads stream 0's again and stores nothing. */
QP_INLINE void qp_round(int f, int64_t K, const char *const *w, float *const *out, const uint16_t *keep, const char *a) {
    enum { S = QPACK_STREAMS };
    const int64_t nb = K / APR_QK, bb = qpack_block_bytes(QP_DTYPE(f));
    const int64_t qbytes = (K + 63) / 64 * 64, dbytes = (nb * 4 + 63) / 64 * 64;
    const int8_t *aq = (const int8_t *)a;
    const float *ad = (const float *)(a + qbytes);
    const int32_t *ac = (const int32_t *)(a + qbytes + dbytes);
    __m512 acc[S];
    const char *p[S];
    QP_UNROLL
    for (int s = 0; s < S; s++) {
        acc[s] = _mm512_setzero_ps();
        p[s] = w[s] ? w[s] : w[0];
    }
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *q = aq + 32 * b;
        __m512i x[8];
        QP_UNROLL
        for (int t = 0; t < 8; t++) x[t] = qp_bcast(q + 4 * t);
        const __m512 da = _mm512_set1_ps(ad[b]);
        QP_UNROLL
        for (int s = 0; s < S; s++) {
            __m512i wq[8];
            if (QPACK_RPF)
                for (int64_t o = 0; o < bb; o += 64) _mm_prefetch(p[s] + QPACK_RPF + o, _MM_HINT_T0);
            qp_words(f, p[s], wq);
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p[s]));
            acc[s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(qp_sum(f, wq, x, ac[b])), _mm512_mul_ps(dw, da), acc[s]);
            p[s] += bb;
        }
    }
    QP_UNROLL
    for (int s = 0; s < S; s++)
        if (w[s]) _mm512_mask_storeu_ps(out[s], (__mmask16)keep[s], acc[s]);
}

static void qp_round_q4_0(int64_t K, const char *const *w, float *const *out, const uint16_t *keep, const char *a) {
    qp_round(0, K, w, out, keep, a);
}
static void qp_round_q5_0(int64_t K, const char *const *w, float *const *out, const uint16_t *keep, const char *a) {
    qp_round(2, K, w, out, keep, a);
}
#if defined(QDOT_VNNI) && QDOT_VNNI
static void qp_round_q8_0(int64_t K, const char *const *w, float *const *out, const uint16_t *keep, const char *a) {
    qp_round(1, K, w, out, keep, a);
}
#endif

#define QP_FN(F, NA) \
    static void qp_##F##_##NA(int64_t K, const char *w, int64_t ng, int nr, const char *a, int64_t as, float *out, \
                              int64_t os) { \
        qp_groups(F, NA, K, w, ng, nr, a, as, out, os); \
    }
#define QP_FNS(F, name) \
    QP_FN(F, 1) QP_FN(F, 2) QP_FN(F, 3) QP_FN(F, 4) \
    static void name(int64_t K, const char *w, int64_t ng, int nr, const char *a, int64_t as, int na, float *out, \
                     int64_t os) { \
        typedef void tile_fn(int64_t, const char *, int64_t, int, const char *, int64_t, float *, int64_t); \
        static tile_fn *const tab[4] = {qp_##F##_1, qp_##F##_2, qp_##F##_3, qp_##F##_4}; \
        for (int j = 0; j < na; j += 4) \
            tab[(na - j < 4 ? na - j : 4) - 1](K, w, ng, nr, a + j * as, as, out + j * os, os); \
    }

QP_FNS(0, qp_q4_0)
QP_FNS(2, qp_q5_0)
#if defined(QDOT_VNNI) && QDOT_VNNI
QP_FNS(1, qp_q8_0)
#endif

qpack_round_fn *QDOT_NAME(qpack_round_lookup)(uint32_t wtype) {
    switch (wtype) {
    case APR_Q4_0: return qp_round_q4_0;
    case APR_Q5_0: return qp_round_q5_0;
#if defined(QDOT_VNNI) && QDOT_VNNI
    case APR_Q8_0: return qp_round_q8_0;
#endif
    default: return NULL;
    }
}

qpack_dot_fn *QDOT_NAME(qpack_dot_lookup)(uint32_t wtype) {
    switch (wtype) {
    case APR_Q4_0: return qp_q4_0;
    case APR_Q5_0: return qp_q5_0;
#if defined(QDOT_VNNI) && QDOT_VNNI
    /* Q8_0's biased bytes reach 255: vpmaddubsw would saturate its int16 pair sums */
    case APR_Q8_0: return qp_q8_0;
#endif
    case APR_Q4_K: return QDOT_NAME(qpack_dot_q4_K);
    case APR_Q6_K: return QDOT_NAME(qpack_dot_q6_K);
    default: return NULL;
    }
}

#else

qpack_round_fn *QDOT_NAME(qpack_round_lookup)(uint32_t wtype) {
    (void)wtype;
    return NULL;
}

qpack_dot_fn *QDOT_NAME(qpack_dot_lookup)(uint32_t wtype) {
    (void)wtype;
    return NULL;
}

#endif

/* qdot_pack.c — dot products of packed (16 rows interleaved) Q4_0 / Q5_0 / Q8_0 weights with 8-bit activation rows; qpack.h gives the layouts. */
#include <immintrin.h>
#include <string.h>

#include "qpack.h"

/* The tile entry points of each level's kernels: one function per activation-row count, and the
 * qpack_dot_fn that walks na rows 4 at a time (the groups function is the level's own). */
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

#elif APR_X86_LEVEL == 2

/* AVX2: 16 ymm registers, so a 64-byte word is read as two 32-byte halves (rows 0..7, rows 8..15),
 * each an 8-lane f32 accumulator. */

#define QP_INLINE static inline __attribute__((always_inline))
#define QP_UNROLL _Pragma("GCC unroll 8")

/* prefetch distances as in the AVX-512 build above */
#ifndef QPACK_PF_AHEAD
#define QPACK_PF_AHEAD 256
#endif
#ifndef QPACK_RPF
#define QPACK_RPF 1024
#endif

#define QP_DTYPE(f) ((f) == 0 ? APR_Q4_0 : (f) == 1 ? APR_Q8_0 : APR_Q5_0)
#if defined(QDOT_VNNI) && QDOT_VNNI
#define QP_VNNI 1
#else
#define QP_VNNI 0
#endif

QP_INLINE __m256i qp_bcast(const int8_t *q) {
    int32_t v;
    memcpy(&v, q, 4);
    return _mm256_set1_epi32(v);
}

/* Q5_0's fifth bits for one half: bits 32 h .. 32 h + 31 of mask t (at m) as 16 in the bytes they mark. */
QP_INLINE __m256i qp_fifth(const char *m) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    int32_t v;
    memcpy(&v, m, 4);
    const __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(v), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(b, bit), _mm256_set1_epi8(16));
}

/* Words t and u of half h of the block position at p, as unsigned bytes (the plain copy's Q8_0:
 * signed, the bias undone) against activation bytes 4 t.. and 4 u..: Q4_0 / Q5_0 t < 4, u = 4 + t
 * (an element's low and high nibble halves); Q8_0 2 t' and 2 t' + 1 for pair t'. */
QP_INLINE void qp_pair(int f, int vn, const char *p, int h, int t, __m256i *w0, __m256i *w1) {
    if (f == 1) {
        *w0 = _mm256_loadu_si256((const __m256i *)(p + 32 + 64 * (2 * t) + 32 * h));
        *w1 = _mm256_loadu_si256((const __m256i *)(p + 32 + 64 * (2 * t + 1) + 32 * h));
        if (!vn) {
            *w0 = _mm256_xor_si256(*w0, _mm256_set1_epi8((char)0x80));
            *w1 = _mm256_xor_si256(*w1, _mm256_set1_epi8((char)0x80));
        }
        return;
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i v = _mm256_loadu_si256((const __m256i *)(p + (f == 2 ? 96 : 32) + 64 * t + 32 * h));
    *w0 = _mm256_and_si256(v, m4);
    *w1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (f == 2) {
        *w0 = _mm256_or_si256(*w0, qp_fifth(p + 32 + 8 * t + 4 * h));
        *w1 = _mm256_or_si256(*w1, qp_fifth(p + 32 + 8 * (4 + t) + 4 * h));
    }
}

/* Pins a running sum: without it the compiler reassociates the int16 adds of the plain copy into
 * a tree over all the products of a block at once, whose partial sums then spill. */
QP_INLINE __m256i qp_keep(__m256i v) {
    __asm__("" : "+x"(v));
    return v;
}

/* Running integer dot of one (half, activation row): s plus the dots of words w0, w1 with the
 * broadcast activation bytes x0, x1. The VNNI copies keep int32 lanes (vpdpbusd). The plain
 * copy pairs vpmaddubsw with vpmaddwd, except Q4_0, whose 8 words add up in int16 lanes (each
 * pair of products at most 15 * 127 * 2, eight of them below 32767) and widen once in qp_end;
 * Q8_0's signed words go through the sign trick (|w| <= 128 times |x| <= 127: no saturation). */
QP_INLINE __m256i qp_step(int f, int vn, __m256i s, __m256i w0, __m256i w1, __m256i x0, __m256i x1) {
#if QP_VNNI
    if (vn) return qdot_dpbusd256(qdot_dpbusd256(s, w0, x0), w1, x1);
#else
    (void)vn;
#endif
    const __m256i ones = _mm256_set1_epi16(1);
    if (f == 0)
        return qp_keep(_mm256_add_epi16(s, _mm256_add_epi16(_mm256_maddubs_epi16(w0, x0), _mm256_maddubs_epi16(w1, x1))));
    if (f == 2)
        return qp_keep(_mm256_add_epi32(
            s, _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(w0, x0), _mm256_maddubs_epi16(w1, x1)), ones)));
    const __m256i p0 = _mm256_maddubs_epi16(_mm256_abs_epi8(w0), _mm256_sign_epi8(x0, w0));
    const __m256i p1 = _mm256_maddubs_epi16(_mm256_abs_epi8(w1), _mm256_sign_epi8(x1, w1));
    return qp_keep(_mm256_add_epi32(s, _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones))));
}

/* The start of a running dot (c, or 0 where qp_end adds it) and its int32 end, c + sum_t dot.
 * The plain copy's Q8_0 dots the signed weights, which is c + the dot with the biased ones. */
QP_INLINE __m256i qp_begin(int f, int vn, int32_t c) {
    if (!vn && (f == 0 || f == 1)) return _mm256_setzero_si256();
    return _mm256_set1_epi32(c);
}
QP_INLINE __m256i qp_end(int f, int vn, __m256i s, int32_t c) {
    if (!vn && f == 0) return _mm256_add_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), _mm256_set1_epi32(c));
    return s;
}

/* Activation bytes of word t of pair index t (qp_pair's order). */
#define QP_X0(f, t) ((f) == 1 ? 8 * (t) : 4 * (t))
#define QP_X1(f, t) ((f) == 1 ? 8 * (t) + 4 : 16 + 4 * (t))

/* The scaled sum of one block into acc, the same in every path: acc + float(sum) * (d_w * d_a). */
QP_INLINE __m256 qp_acc(__m256 acc, __m256i s, __m256 dw, float da) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc);
}

QP_INLINE __m256 qp_scales(const char *p, int h) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * h)));
}

/* Stores the first n (<= 8) lanes of v at o. */
QP_INLINE void qp_store(float *o, __m256 v, int n) {
    if (n >= 8) {
        _mm256_storeu_ps(o, v);
        return;
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(o, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane), v);
}

/* Half h of one group (rows 8 h .. 8 h + 7) against NA activation rows, all nb block positions
 * from p. Why halves in turn: both halves' accumulators for 4 rows, the words and the running
 * sums would need more than 16 registers; the second pass finds the group in L1 / L2. */
QP_INLINE void qp_half(int f, int NA, int64_t nb, int64_t bb, const char *p, int h, const int8_t *const *aq,
                       const float *const *ad, const int32_t *const *ac, __m256 *acc) {
    for (int64_t b = 0; b < nb; b++, p += bb) {
        if (h == 0)
            for (int64_t o = 0; o < bb; o += 64) _mm_prefetch(p + (f == 1 ? 1088 : QPACK_PF_AHEAD) + o, _MM_HINT_T0);
        __m256i s[4];
        QP_UNROLL
        for (int j = 0; j < NA; j++) s[j] = qp_begin(f, QP_VNNI, ac[j][b]);
        QP_UNROLL
        for (int t = 0; t < 4; t++) {
            __m256i w0, w1;
            qp_pair(f, QP_VNNI, p, h, t, &w0, &w1);
            QP_UNROLL
            for (int j = 0; j < NA; j++) {
                const int8_t *q = aq[j] + 32 * b;
                s[j] = qp_step(f, QP_VNNI, s[j], w0, w1, qp_bcast(q + QP_X0(f, t)), qp_bcast(q + QP_X1(f, t)));
            }
        }
        const __m256 dw = qp_scales(p, h);
        QP_UNROLL
        for (int j = 0; j < NA; j++) acc[j] = qp_acc(acc[j], qp_end(f, QP_VNNI, s[j], ac[j][b]), dw, ad[j][b]);
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
    for (int64_t g = 0; g < ng; g++) {
        /* only the last group of a weight has fewer than 16 rows */
        const int rows = g + 1 == ng ? nr : QPACK_ROWS;
        for (int h = 0; h < 2 && 8 * h < rows; h++) {
            __m256 acc[4];
            QP_UNROLL
            for (int j = 0; j < NA; j++) acc[j] = _mm256_setzero_ps();
            qp_half(f, NA, nb, bb, w + g * nb * bb, h, aq, ad, ac, acc);
            QP_UNROLL
            for (int j = 0; j < NA; j++) qp_store(out + j * os + 16 * g + 8 * h, acc[j], rows - 8 * h);
        }
    }
}

/* Blocks whose activation broadcasts a decode round writes out at a time (qp_round). */
#define QP_XB 8

/* Keeps the compiler from holding values read from memory in registers across it. */
#define QP_FENCE() __asm__ volatile("" ::: "memory")

/* The integer dots (c + sum_t dot) of both halves of one stream's block position at p with one
 * activation block whose bytes 4 t .. 4 t + 3 lie broadcast in x[t], read from memory at each use
 * (vpdpbusd / vpmaddubsw take them as operands). The halves interleave so their chains overlap. */
QP_INLINE void qp_rsum(int f, const char *p, const __m256i *x, int32_t c, __m256i *sum) {
#if QP_VNNI
    if (f == 0) {
        /* the high nibbles masked in place (16 times their value; exact after >> 4): no shift per word */
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        __m256i lo[2] = {_mm256_set1_epi32(c), _mm256_set1_epi32(c)}, hi[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        QP_UNROLL
        for (int t = 0; t < 4; t++)
            QP_UNROLL
            for (int h = 0; h < 2; h++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(p + 32 + 64 * t + 32 * h));
                lo[h] = qdot_dpbusd256(lo[h], _mm256_and_si256(v, m4), _mm256_load_si256(x + t));
                hi[h] = qdot_dpbusd256(hi[h], _mm256_andnot_si256(m4, v), _mm256_load_si256(x + 4 + t));
            }
        QP_UNROLL
        for (int h = 0; h < 2; h++) sum[h] = _mm256_add_epi32(lo[h], _mm256_srai_epi32(hi[h], 4));
        return;
    }
    if (f == 2) {
        __m256i s0[2] = {_mm256_set1_epi32(c), _mm256_set1_epi32(c)}, s1[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        QP_UNROLL
        for (int t = 0; t < 4; t++)
            QP_UNROLL
            for (int h = 0; h < 2; h++) {
                __m256i w0, w1;
                qp_pair(f, 1, p, h, t, &w0, &w1);
                s0[h] = qdot_dpbusd256(s0[h], w0, _mm256_load_si256(x + QP_X0(f, t) / 4));
                s1[h] = qdot_dpbusd256(s1[h], w1, _mm256_load_si256(x + QP_X1(f, t) / 4));
            }
        QP_UNROLL
        for (int h = 0; h < 2; h++) sum[h] = _mm256_add_epi32(s0[h], s1[h]);
        return;
    }
#endif
    /* vpmaddubsw: every format in the plain copy, and Q8_0 in the VNNI copies too, whose decode
     * streams faster this way (vpdpbusd on the biased bytes read at 0.70 of the floor, this 0.85) */
    __m256i s[2] = {qp_begin(f, 0, c), qp_begin(f, 0, c)};
    QP_UNROLL
    for (int t = 0; t < 4; t++)
        QP_UNROLL
        for (int h = 0; h < 2; h++) {
            __m256i w0, w1;
            qp_pair(f, 0, p, h, t, &w0, &w1);
            s[h] = qp_step(f, 0, s[h], w0, w1, _mm256_load_si256(x + QP_X0(f, t) / 4), _mm256_load_si256(x + QP_X1(f, t) / 4));
        }
    QP_UNROLL
    for (int h = 0; h < 2; h++) sum[h] = qp_end(f, 0, s[h], c);
}

/* One round of decode (one activation row): one group of each of the QPACK_STREAMS streams, all
 * advancing one block position at a time, each stream prefetching QPACK_RPF bytes ahead (see the
 * AVX-512 qp_round above for why). Both halves of each stream in the same pass, so the weight is
 * read once, in order. The activation's broadcasts are written out QP_XB blocks at a time and
 * read as memory operands: in registers they would take half of the 16. A stream without a group
 * (w[s] NULL) reads stream 0's again and stores nothing. */
QP_INLINE void qp_round(int f, int64_t K, const char *const *w, float *const *out, const uint16_t *keep, const char *a) {
    enum { S = QPACK_STREAMS };
    const int64_t nb = K / APR_QK, bb = qpack_block_bytes(QP_DTYPE(f));
    const int64_t qbytes = (K + 63) / 64 * 64, dbytes = (nb * 4 + 63) / 64 * 64;
    const int8_t *aq = (const int8_t *)a;
    const float *ad = (const float *)(a + qbytes);
    const int32_t *ac = (const int32_t *)(a + qbytes + dbytes);
    __m256i xb[QP_XB][8];
    __m256 acc[S][2];
    const char *p[S];
    QP_UNROLL
    for (int s = 0; s < S; s++) {
        acc[s][0] = acc[s][1] = _mm256_setzero_ps();
        p[s] = w[s] ? w[s] : w[0];
    }
    for (int64_t b0 = 0; b0 < nb; b0 += QP_XB) {
        const int n = nb - b0 < QP_XB ? (int)(nb - b0) : QP_XB;
        for (int i = 0; i < n; i++)
            QP_UNROLL
            for (int t = 0; t < 8; t++) _mm256_store_si256(&xb[i][t], qp_bcast(aq + 32 * (b0 + i) + 4 * t));
        for (int i = 0; i < n; i++) {
            const int64_t b = b0 + i;
            const __m256 da = _mm256_set1_ps(ad[b]);
            QP_UNROLL
            for (int s = 0; s < S; s++) {
                QP_FENCE();
                if (QPACK_RPF)
                    for (int64_t o = 0; o < bb; o += 64) _mm_prefetch(p[s] + QPACK_RPF + o, _MM_HINT_T0);
                __m256i sum[2];
                qp_rsum(f, p[s], xb[i], ac[b], sum);
                QP_UNROLL
                for (int h = 0; h < 2; h++)
                    acc[s][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[h]), _mm256_mul_ps(qp_scales(p[s], h), da), acc[s][h]);
                p[s] += bb;
            }
        }
    }
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    QP_UNROLL
    for (int s = 0; s < S; s++)
        if (w[s])
            for (int h = 0; h < 2; h++) {
                const __m256i k = _mm256_and_si256(_mm256_set1_epi32(keep[s] >> 8 * h), bit);
                _mm256_maskstore_ps(out[s] + 8 * h, _mm256_cmpeq_epi32(k, bit), acc[s][h]);
            }
}

static void qp_round_q4_0(int64_t K, const char *const *w, float *const *out, const uint16_t *keep, const char *a) {
    qp_round(0, K, w, out, keep, a);
}
static void qp_round_q5_0(int64_t K, const char *const *w, float *const *out, const uint16_t *keep, const char *a) {
    qp_round(2, K, w, out, keep, a);
}
static void qp_round_q8_0(int64_t K, const char *const *w, float *const *out, const uint16_t *keep, const char *a) {
    qp_round(1, K, w, out, keep, a);
}

QP_FNS(0, qp_q4_0)
QP_FNS(2, qp_q5_0)
QP_FNS(1, qp_q8_0)

/* Weak: a build whose qdot_packk.c lacks the AVX2 K-quant kernels links with them NULL, and the
 * lookup then declines the format (weight_pack keeps such weights as they are). */
extern qpack_dot_fn QDOT_NAME(qpack_dot_q4_K) __attribute__((weak, visibility("hidden")));
extern qpack_dot_fn QDOT_NAME(qpack_dot_q6_K) __attribute__((weak, visibility("hidden")));

qpack_round_fn *QDOT_NAME(qpack_round_lookup)(uint32_t wtype) {
    switch (wtype) {
    case APR_Q4_0: return qp_round_q4_0;
    case APR_Q5_0: return qp_round_q5_0;
    case APR_Q8_0: return qp_round_q8_0;
    default: return NULL;
    }
}

qpack_dot_fn *QDOT_NAME(qpack_dot_lookup)(uint32_t wtype) {
    switch (wtype) {
    case APR_Q4_0: return qp_q4_0;
    case APR_Q5_0: return qp_q5_0;
    case APR_Q8_0: return qp_q8_0;
    case APR_Q4_K: return QDOT_NAME(qpack_dot_q4_K) ? QDOT_NAME(qpack_dot_q4_K) : NULL;
    case APR_Q6_K: return QDOT_NAME(qpack_dot_q6_K) ? QDOT_NAME(qpack_dot_q6_K) : NULL;
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

/* qdot_legacy.c — integer dot products of the 32-element weight formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with 8-bit activation rows. */
#include <immintrin.h>
#include <string.h>

#include "qmatmul.h"

/*
 * Every kernel walks the row in groups of 4 weight blocks (128 values; qact.c lays the activation
 * groups out to match) and keeps one f32 vector accumulator per (weight row, activation row) pair:
 * per group, the integer dot of each int32 lane is converted to f32 and multiplied by the lane's
 * d_w * d_a; the lanes are summed only at the end of the row. Each pair's arithmetic is the same
 * whatever the tile (nw x na), so results do not depend on tiling or threads.
 *
 * AVX-512: one group is unpacked with two loads (Q8_0: four) and vpermw / vpermt2w (word shuffles
 * gather the quants and the f16 scales of 4 blocks, all of which sit at even offsets), then
 * vpdpbusd (VNNI) or vpmaddubsw + vpmaddwd. Weights are the unsigned operand: nibbles as they are (the -8 / -16
 * offsets are folded into the activation's c lanes, which start the integer sum), Q8_0 biased by
 * +128 (c = -128 * sums) for vpdpbusd, or made |w| with the sign moved onto the activation for
 * vpmaddubsw; Q8_0 is split into the first and last 16 bytes of each block like the nibbles, so
 * every format has one int32 vector per pair and group. AVX2: two blocks per ymm, the scales
 * converted one by one.
 */

#define QDOT_INLINE static inline __attribute__((always_inline))
/* the tile loops run over compile-time NW / NA: unrolled, so accumulators stay in registers */
#define QDOT_UNROLL _Pragma("GCC unroll 4")

/* Weight rows are streamed once. A single row (nw = 1, the decode tiles) is one sequential stream
 * that the hardware prefetcher alone leaves latency-bound: every line is prefetched QDOT_PF_AHEAD
 * bytes ahead, far enough to hide memory latency, near enough not to cost compute when the row
 * is in L2. Tiles of several rows prefetch the same place of the next tile's rows: rows next to
 * each other make that one sequential stream again. */
#ifndef QDOT_PF_AHEAD /* (overridable with -D for tuning runs) */
#define QDOT_PF_AHEAD 160
#endif
QDOT_INLINE void qdot_prefetch(int NW, const char *w, int64_t ws, int64_t gw) {
    const char *p = NW > 1 ? w + NW * ws : w + QDOT_PF_AHEAD;
    for (int64_t o = 0; o < gw; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

/* A partial last group: the valid blocks copied into a zeroed buffer (zero scales, zero quants). */
#define QDOT_TAIL_MAX 192
static const char *qdot_tail(char *buf, const char *src, int nbv, int bsize) {
    memset(buf, 0, QDOT_TAIL_MAX);
    memcpy(buf, src, (size_t)nbv * (size_t)bsize);
    return buf;
}

#if APR_X86_LEVEL >= 3
/* ================================================================ AVX-512 */

typedef struct qd_w {
    __m512i lo, hi;   /* quants: low / high halves of 4 blocks (unsigned; Q8_0 signed without VNNI) */
    __m512 dw;        /* d of each lane's block */
    __m512 mw;        /* m of each lane's block (Q4_1, Q5_1) */
} qd_w;

/* word-shuffle tables (source words 0..31 from the first load, 32.. from the second) */
typedef struct qd_idx {
    __m512i q, s, h;
} qd_idx;

/* Per format (0 Q4_0: 9 words a block, 1 Q4_1: 10, 2 Q5_0: 11, 3 Q5_1: 12, 4 Q8_0: 17):
 * [0] the quants' words (Q8_0: the first 16 bytes of each block); [1] words 0..15 the d of
 * lane-block p / 4, words 16..31 the m (Q4_1, Q5_1) or, Q5_0, words 16..19 / 20..23 the low / high
 * halves of qh; [2] Q5_1's qh, or Q8_0's last 16 bytes of each block (from loads 8 bytes on). */
#define QI8(W, O, B) (W) * (B) + (O), (W) * (B) + (O) + 1, (W) * (B) + (O) + 2, (W) * (B) + (O) + 3, \
                     (W) * (B) + (O) + 4, (W) * (B) + (O) + 5, (W) * (B) + (O) + 6, (W) * (B) + (O) + 7
#define QQ(W, O) {QI8(W, O, 0), QI8(W, O, 1), QI8(W, O, 2), QI8(W, O, 3)}
#define R4(x) (x), (x), (x), (x)
#define R8(x) R4(x), R4(x)
#define QD(W) R4(0), R4(W), R4(2 * (W)), R4(3 * (W))
#define QM(W) R4(1), R4((W) + 1), R4(2 * (W) + 1), R4(3 * (W) + 1)
#define Z8 R8(0)
static const int16_t qdot_idx_tab[5][3][32] __attribute__((aligned(64))) = {
    {QQ(9, 1), {QD(9), Z8, Z8}, {0}},
    {QQ(10, 2), {QD(10), QM(10)}, {0}},
    {QQ(11, 3), {QD(11), 1, 12, 23, 34, 2, 13, 24, 35, Z8}, {0}},
    {QQ(12, 4), {QD(12), QM(12)}, {2, 14, 26, 38, 3, 15, 27, 39}},
    {QQ(17, 1), {QD(17), Z8, Z8}, QQ(17, 5)},
};

static qd_idx qdot_idx(int f) {
    qd_idx x = {_mm512_load_si512(qdot_idx_tab[f][0]), _mm512_load_si512(qdot_idx_tab[f][1]),
                _mm512_load_si512(qdot_idx_tab[f][2])};
    return x;
}

QDOT_INLINE __m512 qd_h2f(__m256i h) { return _mm512_cvtph_ps(h); }

QDOT_INLINE void qd_nibbles(__m512i q, qd_w *o) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    o->lo = _mm512_and_si512(q, m4);
    o->hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
}

/* f: 0 Q4_0, 1 Q4_1, 2 Q5_0, 3 Q5_1. p: a group of 4 blocks. */
QDOT_INLINE void qd_unpack(int f, const char *p, const qd_idx *ix, qd_w *o) {
    const __m512i v0 = _mm512_loadu_si512(p);
    __m512i v1;
    if (f == 0) v1 = _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(p + 64)));
    else if (f == 1) v1 = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + 64)));
    else if (f == 2) v1 = _mm512_castsi256_si512(_mm256_maskz_loadu_epi16(0x0FFF, p + 64));
    else v1 = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 64)));
    const __m512i q = _mm512_permutex2var_epi16(v0, ix->q, v1);
    /* Q4_0 / Q4_1 keep their scales in the first 64 bytes: the one-source vpermw is cheaper */
    const __m512i s = f < 2 ? _mm512_permutexvar_epi16(ix->s, v0) : _mm512_permutex2var_epi16(v0, ix->s, v1);
    qd_nibbles(q, o);
    o->dw = qd_h2f(_mm512_castsi512_si256(s));
    if (f == 1 || f == 3) o->mw = qd_h2f(_mm512_extracti64x4_epi64(s, 1));
    if (f == 2 || f == 3) {
        const __m128i h = f == 2 ? _mm256_castsi256_si128(_mm512_extracti64x4_epi64(s, 1))
                                 : _mm512_castsi512_si128(_mm512_permutex2var_epi16(v0, ix->h, v1));
        const __mmask64 klo = _cvtu64_mask64((unsigned long long)_mm_cvtsi128_si64(h));
        const __mmask64 khi = _cvtu64_mask64((unsigned long long)_mm_extract_epi64(h, 1));
        const __m512i b4 = _mm512_set1_epi8(0x10);
        o->lo = _mm512_mask_add_epi8(o->lo, klo, o->lo, b4);
        o->hi = _mm512_mask_add_epi8(o->hi, khi, o->hi, b4);
    }
}

/* Q8_0: the first / last 16 bytes of the 4 blocks (136 bytes) into lo / hi. VNNI: biased by +128
 * to be unsigned (c holds -128 * the activation sums); else signed (qd_dot8 moves the signs). */
QDOT_INLINE void qd_unpack8(const char *p, const qd_idx *ix, qd_w *o) {
    const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 64);
    const __m512i v2 = _mm512_loadu_si512(p + 8), v3 = _mm512_loadu_si512(p + 72);
    o->lo = _mm512_permutex2var_epi16(v0, ix->q, v1);
    o->hi = _mm512_permutex2var_epi16(v2, ix->h, v3);
    o->dw = qd_h2f(_mm512_castsi512_si256(_mm512_permutex2var_epi16(v0, ix->s, v1)));
#if defined(QDOT_VNNI) && QDOT_VNNI
    const __m512i b = _mm512_set1_epi8((char)0x80);
    o->lo = _mm512_xor_si512(o->lo, b);
    o->hi = _mm512_xor_si512(o->hi, b);
#endif
}

/* int32 lanes: c + lo . alo + hi . ahi (lo, hi unsigned; a signed; |lo|, |hi| < 32). */
QDOT_INLINE __m512i qd_dot2(__m512i c, __m512i lo, __m512i alo, __m512i hi, __m512i ahi) {
#if defined(QDOT_VNNI) && QDOT_VNNI
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c, lo, alo), hi, ahi);
#else
    const __m512i t = _mm512_add_epi16(_mm512_maddubs_epi16(lo, alo), _mm512_maddubs_epi16(hi, ahi));
    return _mm512_add_epi32(c, _mm512_madd_epi16(t, _mm512_set1_epi16(1)));
#endif
}

/* Q8_0's int32 lanes: VNNI, c + lo . alo + hi . ahi with lo, hi biased; else the signed dot
 * (c unused), |w| against a with w's signs. */
QDOT_INLINE __m512i qd_dot8(__m512i c, __m512i lo, __m512i alo, __m512i hi, __m512i ahi) {
#if defined(QDOT_VNNI) && QDOT_VNNI
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c, lo, alo), hi, ahi);
#else
    (void)c;
    const __m512i z = _mm512_setzero_si512(), one = _mm512_set1_epi16(1);
    const __m512i sl = _mm512_mask_sub_epi8(alo, _mm512_movepi8_mask(lo), z, alo);
    const __m512i sh = _mm512_mask_sub_epi8(ahi, _mm512_movepi8_mask(hi), z, ahi);
    return _mm512_add_epi32(_mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(lo), sl), one),
                            _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(hi), sh), one));
#endif
}

/* One group for an NW x NA tile; wp[i], ap[j]: the group's weight blocks and activation group. */
QDOT_INLINE void qd_group(int f, int NW, int NA, const char *const *wp, const char *const *ap, const qd_idx *ix,
                          __m512 acc[4][4]) {
    qd_w w[4];
    QDOT_UNROLL
    for (int i = 0; i < NW; i++) {
        if (f == 4) qd_unpack8(wp[i], ix, &w[i]);
        else qd_unpack(f, wp[i], ix, &w[i]);
    }
    QDOT_UNROLL
    for (int j = 0; j < NA; j++) {
        const char *g = ap[j];
        const __m512i alo = _mm512_load_si512(g), ahi = _mm512_load_si512(g + 64);
        const __m512 da = _mm512_load_ps(g + QACT_DA);
        const int has_m = f == 1 || f == 3;
        const __m512i c = has_m ? _mm512_setzero_si512() : _mm512_load_si512(g + QACT_C);
        QDOT_UNROLL
        for (int i = 0; i < NW; i++) {
            const __m512i s = f == 4 ? qd_dot8(c, w[i].lo, alo, w[i].hi, ahi) : qd_dot2(c, w[i].lo, alo, w[i].hi, ahi);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(w[i].dw, da), acc[i][j]);
            if (has_m) acc[i][j] = _mm512_fmadd_ps(w[i].mw, _mm512_load_ps(g + QACT_SA), acc[i][j]);
        }
    }
}

QDOT_INLINE void qd_tile(int f, int NW, int NA, int64_t K, const char *w, int64_t ws, const char *a, int64_t as,
                         float *out, int64_t os) {
    static const int bsize[5] = {18, 20, 22, 24, 34};
    const int bs = bsize[f];
    const int64_t gw = 4 * bs, ga = QACT_GROUP_BYTES;
    const int64_t nb = K / APR_QK, ng = nb / 4;
    const int rem = (int)(nb % 4);
    const qd_idx ix = qdot_idx(f);
    __m512 acc[4][4];
    QDOT_UNROLL
    for (int i = 0; i < NW; i++)
        QDOT_UNROLL
        for (int j = 0; j < NA; j++) acc[i][j] = _mm512_setzero_ps();
    const char *wp[4], *ap[4];
    for (int64_t g = 0; g < ng; g++) {
        QDOT_UNROLL
        for (int i = 0; i < NW; i++) {
            wp[i] = w + i * ws + g * gw;
            qdot_prefetch(NW, wp[i], ws, gw);
        }
        QDOT_UNROLL
        for (int j = 0; j < NA; j++) ap[j] = a + j * as + g * ga;
        qd_group(f, NW, NA, wp, ap, &ix, acc);
    }
    if (rem) {
        char tail[4][QDOT_TAIL_MAX];
        QDOT_UNROLL
        for (int i = 0; i < NW; i++) wp[i] = qdot_tail(tail[i], w + i * ws + ng * gw, rem, bs);
        QDOT_UNROLL
        for (int j = 0; j < NA; j++) ap[j] = a + j * as + ng * ga;
        qd_group(f, NW, NA, wp, ap, &ix, acc);
    }
    QDOT_UNROLL
    for (int i = 0; i < NW; i++)
        QDOT_UNROLL
        for (int j = 0; j < NA; j++) out[j * os + i] = _mm512_reduce_add_ps(acc[i][j]);
}

#define QD_MAX_NA 4

#else
/* ================================================================ AVX2 */

QDOT_INLINE float qd_f16(const char *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

QDOT_INLINE uint32_t qd_u32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* bit i of m -> byte i = 0x10 */
QDOT_INLINE __m256i qd_bits16(uint32_t m) {
    const __m256i v = _mm256_set1_epi32((int)m);
    const __m256i sel = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i x = _mm256_and_si256(_mm256_shuffle_epi8(v, sel), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(x, bit), _mm256_set1_epi8(0x10));
}

typedef struct qd_w {
    __m256i lo, hi; /* low / high halves of blocks 2h, 2h + 1 (Q8_0: signed) */
    __m256 dw, mw;
} qd_w;

/* Blocks 2h, 2h + 1 of the group at p. f: 0 Q4_0, 1 Q4_1, 2 Q5_0, 3 Q5_1, 4 Q8_0. */
QDOT_INLINE void qd_unpack(int f, const char *p, int h, qd_w *o) {
    static const int bsize[5] = {18, 20, 22, 24, 34}, qoff[5] = {2, 4, 6, 8, 2};
    const char *b0 = p + 2 * h * bsize[f], *b1 = b0 + bsize[f];
    o->dw = _mm256_set_m128(_mm_set1_ps(qd_f16(b1)), _mm_set1_ps(qd_f16(b0)));
    if (f == 4) {
        o->lo = _mm256_loadu2_m128i((const __m128i *)(b1 + 2), (const __m128i *)(b0 + 2));
        o->hi = _mm256_loadu2_m128i((const __m128i *)(b1 + 18), (const __m128i *)(b0 + 18));
        return;
    }
    const __m256i v = _mm256_loadu2_m128i((const __m128i *)(b1 + qoff[f]), (const __m128i *)(b0 + qoff[f]));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    o->lo = _mm256_and_si256(v, m4);
    o->hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (f == 1 || f == 3) o->mw = _mm256_set_m128(_mm_set1_ps(qd_f16(b1 + 2)), _mm_set1_ps(qd_f16(b0 + 2)));
    if (f == 2 || f == 3) {
        const uint32_t h0 = qd_u32(b0 + (f == 2 ? 2 : 4)), h1 = qd_u32(b1 + (f == 2 ? 2 : 4));
        o->lo = _mm256_or_si256(o->lo, qd_bits16((h0 & 0xFFFFu) | (h1 << 16)));
        o->hi = _mm256_or_si256(o->hi, qd_bits16((h0 >> 16) | (h1 & 0xFFFF0000u)));
    }
}

/* Q8_0: the signed dot, |w| against a with w's signs */
QDOT_INLINE __m256i qd_dot8(__m256i lo, __m256i alo, __m256i hi, __m256i ahi) {
    const __m256i one = _mm256_set1_epi16(1);
    return _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(lo, lo), _mm256_sign_epi8(alo, lo)), one),
                            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(hi, hi), _mm256_sign_epi8(ahi, hi)), one));
}

QDOT_INLINE void qd_group(int f, int NW, int NA, const char *const *wp, const char *const *ap, __m256 acc[4][4]) {
    QDOT_UNROLL
    for (int h = 0; h < 2; h++) {
        qd_w w[4];
        QDOT_UNROLL
        for (int i = 0; i < NW; i++) qd_unpack(f, wp[i], h, &w[i]);
        QDOT_UNROLL
        for (int j = 0; j < NA; j++) {
            const char *g = ap[j];
            const __m256i alo = _mm256_load_si256((const __m256i *)(g + 32 * h));
            const __m256i ahi = _mm256_load_si256((const __m256i *)(g + 64 + 32 * h));
            const __m256 da = _mm256_load_ps((const float *)(g + QACT_DA + 32 * h));
            const int has_m = f == 1 || f == 3;
            QDOT_UNROLL
            for (int i = 0; i < NW; i++) {
                __m256i s;
                if (f == 4) s = qd_dot8(w[i].lo, alo, w[i].hi, ahi);
                else {
                    const __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(w[i].lo, alo), _mm256_maddubs_epi16(w[i].hi, ahi));
                    s = _mm256_madd_epi16(t, _mm256_set1_epi16(1));
                    if (!has_m) s = _mm256_add_epi32(s, _mm256_load_si256((const __m256i *)(g + QACT_C + 32 * h)));
                }
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(w[i].dw, da), acc[i][j]);
                if (has_m)
                    acc[i][j] = _mm256_fmadd_ps(w[i].mw, _mm256_load_ps((const float *)(g + QACT_SA + 32 * h)), acc[i][j]);
            }
        }
    }
}

QDOT_INLINE float qd_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

QDOT_INLINE void qd_tile(int f, int NW, int NA, int64_t K, const char *w, int64_t ws, const char *a, int64_t as,
                         float *out, int64_t os) {
    static const int bsize[5] = {18, 20, 22, 24, 34};
    const int bs = bsize[f];
    const int64_t gw = 4 * bs, ga = QACT_GROUP_BYTES;
    const int64_t nb = K / APR_QK, ng = nb / 4;
    const int rem = (int)(nb % 4);
    __m256 acc[4][4];
    QDOT_UNROLL
    for (int i = 0; i < NW; i++)
        QDOT_UNROLL
        for (int j = 0; j < NA; j++) acc[i][j] = _mm256_setzero_ps();
    const char *wp[4], *ap[4];
    for (int64_t g = 0; g < ng; g++) {
        QDOT_UNROLL
        for (int i = 0; i < NW; i++) {
            wp[i] = w + i * ws + g * gw;
            qdot_prefetch(NW, wp[i], ws, gw);
        }
        QDOT_UNROLL
        for (int j = 0; j < NA; j++) ap[j] = a + j * as + g * ga;
        qd_group(f, NW, NA, wp, ap, acc);
    }
    if (rem) {
        char tail[4][QDOT_TAIL_MAX];
        QDOT_UNROLL
        for (int i = 0; i < NW; i++) wp[i] = qdot_tail(tail[i], w + i * ws + ng * gw, rem, bs);
        QDOT_UNROLL
        for (int j = 0; j < NA; j++) ap[j] = a + j * as + ng * ga;
        qd_group(f, NW, NA, wp, ap, acc);
    }
    QDOT_UNROLL
    for (int i = 0; i < NW; i++)
        QDOT_UNROLL
        for (int j = 0; j < NA; j++) out[j * os + i] = qd_hsum(acc[i][j]);
}

/* 16 ymm registers: at most 2 activation rows per pass */
#define QD_MAX_NA 2

#endif

/* ================================================================ entry points */

#define QD_TILE(F, NW, NA) \
    static void qd_tile_##F##_##NW##_##NA(int64_t K, const char *w, int64_t ws, const char *a, int64_t as, float *out, int64_t os) { \
        qd_tile(F, NW, NA, K, w, ws, a, as, out, os); \
    }
#define QD_TILES_NA(F, NW) QD_TILE(F, NW, 1) QD_TILE(F, NW, 2) QD_TILE(F, NW, 3) QD_TILE(F, NW, 4)
#define QD_TILES(F) QD_TILES_NA(F, 1) QD_TILES_NA(F, 2) QD_TILES_NA(F, 3) QD_TILES_NA(F, 4)

typedef void qd_tile_fn(int64_t K, const char *w, int64_t ws, const char *a, int64_t as, float *out, int64_t os);

#define QD_ROW(F, NW) {qd_tile_##F##_##NW##_1, qd_tile_##F##_##NW##_2, qd_tile_##F##_##NW##_3, qd_tile_##F##_##NW##_4}
#define QD_FN(F, name)                                                                                              \
    QD_TILES(F)                                                                                                     \
    void QDOT_NAME(name)(int64_t K, const char *w, int64_t w_stride, int nw, const char *a, int64_t a_stride, int na, \
                         float *out, int64_t out_stride) {                                                          \
        static qd_tile_fn *const tab[4][4] = {QD_ROW(F, 1), QD_ROW(F, 2), QD_ROW(F, 3), QD_ROW(F, 4)};             \
        for (int j = 0; j < na; j += QD_MAX_NA) {                                                                   \
            const int nj = na - j < QD_MAX_NA ? na - j : QD_MAX_NA;                                                 \
            tab[nw - 1][nj - 1](K, w, w_stride, a + j * a_stride, a_stride, out + j * out_stride, out_stride);      \
        }                                                                                                           \
    }

/* Row runs: rows one at a time (the nw = 1 tiles, inlined into one loop so the shuffle tables and
 * the call stay out of the per-row cost); each pair computed exactly as by the tile kernels. */
#define QD_RUN(F, NA) \
    static void qd_run_##F##_##NA(int64_t K, const char *w, int64_t ws, int64_t nrows, const char *a, int64_t as, \
                                  float *out, int64_t os) { \
        for (int64_t r = 0; r < nrows; r++) qd_tile(F, 1, NA, K, w + r * ws, ws, a, as, out + r, os); \
    }
typedef void qd_run_fn(int64_t K, const char *w, int64_t ws, int64_t nrows, const char *a, int64_t as, float *out,
                       int64_t os);
#define QD_RUNS_FN(F, name)                                                                                          \
    QD_RUN(F, 1) QD_RUN(F, 2) QD_RUN(F, 3) QD_RUN(F, 4)                                                              \
    static void name(int64_t K, const char *w, int64_t w_stride, int64_t nrows, const char *a, int64_t a_stride,    \
                     int na, float *out, int64_t out_stride) {                                                       \
        static qd_run_fn *const tab[4] = {qd_run_##F##_1, qd_run_##F##_2, qd_run_##F##_3, qd_run_##F##_4};           \
        for (int j = 0; j < na; j += QD_MAX_NA) {                                                                    \
            const int nj = na - j < QD_MAX_NA ? na - j : QD_MAX_NA;                                                  \
            tab[nj - 1](K, w, w_stride, nrows, a + j * a_stride, a_stride, out + j * out_stride, out_stride);        \
        }                                                                                                            \
    }

QD_FN(0, qdot_q4_0)
QD_FN(1, qdot_q4_1)
QD_FN(2, qdot_q5_0)
QD_FN(3, qdot_q5_1)
QD_FN(4, qdot_q8_0)
QD_RUNS_FN(0, qd_rows_q4_0)
QD_RUNS_FN(1, qd_rows_q4_1)
QD_RUNS_FN(2, qd_rows_q5_0)
QD_RUNS_FN(3, qd_rows_q5_1)
QD_RUNS_FN(4, qd_rows_q8_0)

qdot_rows_fn *QDOT_NAME(qdot_rows_lookup)(uint32_t wtype) {
    switch (wtype) {
    case APR_Q4_0: return qd_rows_q4_0;
    case APR_Q4_1: return qd_rows_q4_1;
    case APR_Q5_0: return qd_rows_q5_0;
    case APR_Q5_1: return qd_rows_q5_1;
    case APR_Q8_0: return qd_rows_q8_0;
    default: return NULL;
    }
}

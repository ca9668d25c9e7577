/* qdot_k.c — K-quant (Q4_K, Q5_K, Q6_K) weight rows dotted with Q8_K activation rows in integer SIMD. */
#include "qmatmul.h"

#include <immintrin.h>
#include <string.h>

/*
 * One super-block of 256 weights against one Q8_K activation block:
 *   Q4_K / Q5_K: da * (d * sum_j sc[j] * (q . qa)_j  -  dmin * sum_j m[j] * (bsums[2j] + bsums[2j+1]))
 *   Q6_K:        da * d * sum_j sc[j] * ((u . qa)_j - 32 * bsums[j])      (u = q + 32, 0..63)
 * A weight super-block is unpacked once per row into 8 registers of 32 unsigned bytes (u.q, each
 * lined up with 32 consecutive activation bytes) and int16 sub-block scales (u.s). qdotk_isum
 * (in the AVX2 build the same products, taken register by register across the activation rows)
 * forms sum_j sc[j] * (q . qa)_j as exact int32 in 8 lanes:
 *   AVX2 / AVX-512:  vpmaddubsw (pairs of byte products, int16) then vpmaddwd by the scales;
 *   AVX-512 VNNI:    vpdpbusd (quads of byte products, int32, |.| <= 4 * 63 * 127 < 2^15), two
 *                    registers packed to int16 (vpackssdw, exact), then vpmaddwd / vpdpwssd by
 *                    the scales: 12 multiplies per super-block instead of 16.
 * Each (weight row, activation row) pair then folds its super-block into one f32 accumulator of 8
 * lanes by the same instructions (cvt, * d, - mins * dmin, fma da), reduced horizontally once at
 * the end, so a pair's result does not depend on nw or na.
 *
 * All builds work on 256-bit registers. The AVX-512 builds get 32 of them, ternary logic and
 * VNNI, but not 512-bit vectors: the 512-bit layout needs a shift or broadcast per register to
 * pair the two nibbles of 32 bytes with 64 consecutive activation bytes, and some cores (Zen 4)
 * run 512-bit ops at half rate.
 */

/* int16 pshufb control word picking byte e and zeroing the byte above (a byte scale as int16) */
#define QDOTK_W(e) (0xff00ull | (unsigned long long)(e))
/* int16 pshufb control word picking int16 element e (bytes 2e, 2e + 1) */
#define QDOTK_E(e) ((unsigned long long)(2 * (e)) | (unsigned long long)(2 * (e) + 1) << 8)
/* four copies of a control word: one 64-bit lane */
#define QDOTK_X4(w) ((long long)((w) * 0x0001000100010001ull))

/* pshufb control spreading bytes m[0..7] (bytes 8..15 of each lane) as int16 m0 m0 m1 m1 .. m3 m3
 * (lane 0) and m4 m4 .. m7 m7 (lane 1), to pair with bsums[0..15]. */
static inline __m256i qdotk_mdup(void) {
    return _mm256_setr_epi8(8, -1, 8, -1, 9, -1, 9, -1, 10, -1, 10, -1, 11, -1, 11, -1, 12, -1, 12, -1, 13, -1, 13, -1,
                            14, -1, 14, -1, 15, -1, 15, -1);
}

/* Bit j of each byte of h moved to bit 4 (j a literal). */
static inline __m256i qdotk_bit4(__m256i h, int j) {
    const __m256i m = _mm256_set1_epi8(0x10);
    if (j < 4) return _mm256_and_si256(_mm256_slli_epi16(h, 4 - j), m);
    if (j == 4) return _mm256_and_si256(h, m);
    return _mm256_and_si256(_mm256_srli_epi16(h, j - 4), m);
}

#if defined(QDOT_VNNI) && QDOT_VNNI
#define QDOTK_VNNI 1
#else
#define QDOTK_VNNI 0
#endif

/* ---------------------------------------------------------------- weight unpacking */

/* One weight super-block: q[v] are the unsigned weights of activation bytes 32v .. 32v + 31,
 * s[] the int16 scales qdotk_isum multiplies by (8 with vpmaddubsw, one per register; 4 with
 * VNNI, in the lane order vpackssdw leaves), m16 the int16 mins of Q4_K/Q5_K (m[j] twice, to pair
 * with bsums 2j and 2j + 1) or the 16 scales of Q6_K. */
typedef struct qdotk_unp {
    __m256i q[8];
    __m256i s[8];
    __m256i m16;
    float d, dmin;
} qdotk_unp;

/* The 12 packed scale bytes of Q4_K/Q5_K (p[0..16) readable) as bytes sc[0..7], m[0..7]:
 * low 6 bits of p[0..7] for j < 4; for j >= 4 the nibbles of p[8..11] and the top 2 bits of
 * p[0..7] above them. */
static inline __m128i qdotk_scales12(const uint8_t *p) {
    const __m128i x = _mm_loadu_si128((const __m128i *)p);
    const __m128i a = _mm_shuffle_epi8(x, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i lo = _mm_and_si128(_mm_blend_epi16(a, _mm_srli_epi16(a, 4), 0xc0),
                                     _mm_setr_epi8(0x3f, 0x3f, 0x3f, 0x3f, 0x0f, 0x0f, 0x0f, 0x0f, 0x3f, 0x3f, 0x3f,
                                                   0x3f, 0x0f, 0x0f, 0x0f, 0x0f));
    const __m128i b = _mm_shuffle_epi8(x, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    return _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
}

/* Q4_K (hbits NULL) and Q5_K (hbits = qh): nibbles, fifth bits, scales and mins. Register v is
 * sub-block v: the low (v even) or high (v odd) nibbles of qs[32 (v / 2) ..]. */
static inline __attribute__((always_inline)) void qdotk_unpack_q45(const uint8_t *dm, const uint8_t *scales,
                                                                   const uint8_t *hbits, const uint8_t *qs,
                                                                   qdotk_unp *u) {
    uint16_t d, dmin;
    memcpy(&d, dm, 2);
    memcpy(&dmin, dm + 2, 2);
    u->d = _cvtsh_ss(d);
    u->dmin = _cvtsh_ss(dmin);
    const __m256i S = _mm256_broadcastsi128_si256(qdotk_scales12(scales));
    u->m16 = _mm256_shuffle_epi8(S, qdotk_mdup());
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    __m256i hb = _mm256_setzero_si256();
    if (hbits) hb = _mm256_loadu_si256((const __m256i *)hbits);
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        const __m256i x = _mm256_loadu_si256((const __m256i *)(qs + 32 * p));
        __m256i l = _mm256_and_si256(x, lo4), h = _mm256_and_si256(_mm256_srli_epi16(x, 4), lo4);
        if (hbits) {
            l = _mm256_or_si256(l, qdotk_bit4(hb, 2 * p));
            h = _mm256_or_si256(h, qdotk_bit4(hb, 2 * p + 1));
        }
        u->q[2 * p] = l;
        u->q[2 * p + 1] = h;
#if QDOTK_VNNI
        /* vpackssdw of registers 2p, 2p + 1: each lane [sub-block 2p x4, 2p + 1 x4] */
        u->s[p] = _mm256_shuffle_epi8(S, _mm256_set_epi64x(QDOTK_X4(QDOTK_W(2 * p + 1)), QDOTK_X4(QDOTK_W(2 * p)),
                                                           QDOTK_X4(QDOTK_W(2 * p + 1)), QDOTK_X4(QDOTK_W(2 * p))));
#else
        u->s[2 * p] = _mm256_shuffle_epi8(S, _mm256_set1_epi64x(QDOTK_X4(QDOTK_W(2 * p))));
        u->s[2 * p + 1] = _mm256_shuffle_epi8(S, _mm256_set1_epi64x(QDOTK_X4(QDOTK_W(2 * p + 1))));
#endif
    }
}

/* Q6_K: q + 32 (0..63) as unsigned bytes, the 16 scales as int16 (m16). Register 4h + k holds
 * elements 128h + 32k ..: sub-blocks 8h + 2k (lane 0) and 8h + 2k + 1 (lane 1). */
static inline __attribute__((always_inline)) void qdotk_unpack_q6(const apr_block_q6_K *b, qdotk_unp *u) {
    uint16_t d;
    memcpy(&d, &b->d, 2);
    u->d = _cvtsh_ss(d);
    u->dmin = 0.0f;
    u->m16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    const __m256i lo4 = _mm256_set1_epi8(0x0f), hi2 = _mm256_set1_epi8(0x30);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        /* ql[l], ql[l + 32]: elements l, l + 32 (low nibbles), l + 64, l + 96 (high nibbles);
         * qh[l]: their top 2 bits at shifts 0, 2, 4, 6 */
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        const __m256i H = _mm256_loadu_si256((const __m256i *)qh);
        u->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, lo4), _mm256_and_si256(_mm256_slli_epi16(H, 4), hi2));
        u->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, lo4), _mm256_and_si256(_mm256_slli_epi16(H, 2), hi2));
        u->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), lo4), _mm256_and_si256(H, hi2));
        u->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), lo4),
                                          _mm256_and_si256(_mm256_srli_epi16(H, 2), hi2));
        /* the 8 scales of this half as int16 in both lanes */
        const __m256i S = _mm256_broadcastsi128_si256(h ? _mm256_extracti128_si256(u->m16, 1)
                                                         : _mm256_castsi256_si128(u->m16));
#if QDOTK_VNNI
        /* vpackssdw of registers 4h + 2m, 4h + 2m + 1: lane 0 [4m x4, 4m + 2 x4], lane 1 [4m + 1 x4, 4m + 3 x4] */
#pragma GCC unroll 2
        for (int m = 0; m < 2; m++)
            u->s[2 * h + m] =
                _mm256_shuffle_epi8(S, _mm256_set_epi64x(QDOTK_X4(QDOTK_E(4 * m + 3)), QDOTK_X4(QDOTK_E(4 * m + 1)),
                                                         QDOTK_X4(QDOTK_E(4 * m + 2)), QDOTK_X4(QDOTK_E(4 * m))));
#else
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            u->s[4 * h + k] =
                _mm256_shuffle_epi8(S, _mm256_set_epi64x(QDOTK_X4(QDOTK_E(2 * k + 1)), QDOTK_X4(QDOTK_E(2 * k + 1)),
                                                         QDOTK_X4(QDOTK_E(2 * k)), QDOTK_X4(QDOTK_E(2 * k))));
#endif
    }
}

/* ---------------------------------------------------------------- dot products */

enum { QDOTK_Q4 = 4, QDOTK_Q5 = 5, QDOTK_Q6 = 6 };

static inline __attribute__((always_inline)) void qdotk_unpack(int fmt, const char *blk, qdotk_unp *u) {
    if (fmt == QDOTK_Q4) {
        const apr_block_q4_K *b = (const apr_block_q4_K *)blk;
        qdotk_unpack_q45((const uint8_t *)&b->d, b->scales, NULL, b->qs, u);
    } else if (fmt == QDOTK_Q5) {
        const apr_block_q5_K *b = (const apr_block_q5_K *)blk;
        qdotk_unpack_q45((const uint8_t *)&b->d, b->scales, b->qh, b->qs, u);
    } else {
        qdotk_unpack_q6((const apr_block_q6_K *)blk, u);
    }
}

/* ymm code: AVX-512 builds, and the VNNI copies of cpu-avx2 (whose unpacked scales are the VNNI
 * layout, so they take this path too) */
#define QDOTK_ISUM (APR_X86_LEVEL >= 3 || QDOTK_VNNI)

#if QDOTK_ISUM
/* sum over sub-blocks j of sc_j * (q . qa)_j for one unpacked super-block and the 256 activation
 * bytes qa, as exact int32 in 8 lanes (two independent chains). */
static inline __attribute__((always_inline)) __m256i qdotk_isum(const qdotk_unp *u, const int8_t *qa) {
    __m256i i0, i1;
#if QDOTK_VNNI
    __m256i r[8];
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++)
        r[v] = qdot_dpbusd256(_mm256_setzero_si256(), u->q[v], _mm256_loadu_si256((const __m256i *)(qa + 32 * v)));
    i0 = _mm256_madd_epi16(_mm256_packs_epi32(r[0], r[1]), u->s[0]);
    i1 = _mm256_madd_epi16(_mm256_packs_epi32(r[2], r[3]), u->s[1]);
    i0 = qdot_dpwssd256(i0, _mm256_packs_epi32(r[4], r[5]), u->s[2]);
    i1 = qdot_dpwssd256(i1, _mm256_packs_epi32(r[6], r[7]), u->s[3]);
#else
    i0 = i1 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int v = 0; v < 8; v += 2) {
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)(qa + 32 * v));
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)(qa + 32 * v + 32));
        i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(_mm256_maddubs_epi16(u->q[v], a0), u->s[v]));
        i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(_mm256_maddubs_epi16(u->q[v + 1], a1), u->s[v + 1]));
    }
#endif
    return _mm256_add_epi32(i0, i1);
}
#endif

#ifndef QDOTK_PF_BLOCKS
#define QDOTK_PF_BLOCKS 16 /* with several activation rows, prefetch this many weight blocks ahead
                            * (into the next rows); with one, none (see qdotk_tile) */
#endif

/* The nb super-blocks of one weight row against NA activation rows (a literal), folded into
 * acc[0 .. NA): every pair's super-blocks go through the same instructions in k order. */
static inline __attribute__((always_inline)) void qdotk_row(int fmt, const char *w, const char *a, int64_t a_stride,
                                                            int64_t nb, __m256 *acc, const int NA) {
    const int64_t bsz = fmt == QDOTK_Q4 ? (int64_t)sizeof(apr_block_q4_K)
                        : fmt == QDOTK_Q5 ? (int64_t)sizeof(apr_block_q5_K)
                                          : (int64_t)sizeof(apr_block_q6_K);
    for (int64_t ib = 0; ib < nb; ib++) {
        const char *blk = w + ib * bsz;
        if (NA > 1) {
            const char *pf = blk + QDOTK_PF_BLOCKS * bsz;
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
            _mm_prefetch(pf + 128, _MM_HINT_T0);
            if (fmt == QDOTK_Q6) _mm_prefetch(pf + 192, _MM_HINT_T0);
        }
        qdotk_unp u;
        qdotk_unpack(fmt, blk, &u);
        const __m256 vd = _mm256_set1_ps(u.d), vdmin = _mm256_set1_ps(u.dmin);
        __m256i isums[QDOT_MAX_NA];
#if QDOTK_ISUM
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++)
            isums[j] = qdotk_isum(&u, ((const apr_block_q8_K *)(a + j * a_stride) + ib)->qs);
#else
        /* 16 registers do not hold an unpacked super-block and 4 accumulators: take one weight
         * register at a time across the activation rows (the int32 sums are exact in any order) */
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) isums[j] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++)
#pragma GCC unroll 4
            for (int j = 0; j < NA; j++) {
                const int8_t *qa = ((const apr_block_q8_K *)(a + j * a_stride) + ib)->qs + 32 * v;
                const __m256i p = _mm256_maddubs_epi16(u.q[v], _mm256_loadu_si256((const __m256i *)qa));
                isums[j] = _mm256_add_epi32(isums[j], _mm256_madd_epi16(p, u.s[v]));
            }
#endif
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            const apr_block_q8_K *ab = (const apr_block_q8_K *)(a + j * a_stride) + ib;
            __m256i is = isums[j];
            const __m256i bm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ab->bsums), u.m16);
            __m256 t;
            if (fmt == QDOTK_Q6) {
                /* q = u - 32: take 32 * sc[j] * bsums[j] off */
                is = _mm256_sub_epi32(is, _mm256_slli_epi32(bm, 5));
                t = _mm256_mul_ps(_mm256_cvtepi32_ps(is), vd);
            } else {
                t = _mm256_fmsub_ps(_mm256_cvtepi32_ps(is), vd, _mm256_mul_ps(_mm256_cvtepi32_ps(bm), vdmin));
            }
            acc[j] = _mm256_fmadd_ps(t, _mm256_set1_ps(ab->d), acc[j]);
        }
    }
}

/* nw weight rows against NA activation rows, each weight row whole, in turn. With one activation
 * row the kernel is bound by memory: one sequential stream, which the hardware prefetchers follow
 * best (interleaved rows and far software prefetch only slow it). With several it is bound by
 * arithmetic, and prefetching QDOTK_PF_BLOCKS ahead hides the weight loads behind the arithmetic. */
static inline __attribute__((always_inline)) void qdotk_tile(int fmt, int64_t K, const char *w, int64_t w_stride,
                                                             int nw, const char *a, int64_t a_stride, float *out,
                                                             int64_t out_stride, const int NA) {
    for (int i = 0; i < nw; i++, w += w_stride, out++) {
        __m256 acc[QDOT_MAX_NA];
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) acc[j] = _mm256_setzero_ps();
        qdotk_row(fmt, w, a, a_stride, K / APR_QK_K, acc, NA);
#pragma GCC unroll 4
        for (int j = 0; j < NA; j++) {
            __m128 q = _mm_add_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1));
            q = _mm_add_ps(q, _mm_movehl_ps(q, q));
            q = _mm_add_ss(q, _mm_movehdup_ps(q));
            out[j * out_stride] = _mm_cvtss_f32(q);
        }
    }
}

#define QDOTK_KERNEL(name, fmt)                                                                    \
    void QDOT_NAME(name)(int64_t K, const char *w, int64_t w_stride, int nw, const char *a,        \
                         int64_t a_stride, int na, float *out, int64_t out_stride) {               \
        switch (na) {                                                                              \
        case 1: qdotk_tile(fmt, K, w, w_stride, nw, a, a_stride, out, out_stride, 1); break;       \
        case 2: qdotk_tile(fmt, K, w, w_stride, nw, a, a_stride, out, out_stride, 2); break;       \
        case 3: qdotk_tile(fmt, K, w, w_stride, nw, a, a_stride, out, out_stride, 3); break;       \
        default: qdotk_tile(fmt, K, w, w_stride, nw, a, a_stride, out, out_stride, 4); break;      \
        }                                                                                          \
    }

QDOTK_KERNEL(qdotk_q4_K, QDOTK_Q4)
QDOTK_KERNEL(qdotk_q5_K, QDOTK_Q5)
QDOTK_KERNEL(qdotk_q6_K, QDOTK_Q6)

/* ---------------------------------------------------------------- activation rows */

void QDOT_NAME(qdotk_act_q8_K)(const float *x, int64_t K, void *dst) {
    apr_block_q8_K *y = (apr_block_q8_K *)dst;
    for (int64_t ib = 0; ib < K / APR_QK_K; ib++, x += APR_QK_K, y++) {
        /* the element of largest magnitude, the first of them on ties, sign kept */
#if APR_X86_LEVEL >= 3
        __m512 mx = _mm512_setzero_ps();
        for (int k = 0; k < APR_QK_K; k += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + k)));
        const float amax = _mm512_reduce_max_ps(mx);
#else
        __m256 mx = _mm256_setzero_ps();
        const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        for (int k = 0; k < APR_QK_K; k += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(absm, _mm256_loadu_ps(x + k)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
#endif
        if (amax == 0.0f) {
            memset(y, 0, sizeof *y);
            continue;
        }
        float max = 0.0f;
        for (int k = 0; k < APR_QK_K; k++)
            if (x[k] == amax || x[k] == -amax) {
                max = x[k];
                break;
            }
        const float iscale = -127.f / max;
        /* round to nearest, ties to even (the MXCSR default), as ggml's nearest_int does */
        for (int g = 0; g < APR_QK_K / 16; g++) {
#if APR_X86_LEVEL >= 3
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), _mm512_set1_ps(iscale)));
            q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(y->qs + 16 * g), _mm512_cvtepi32_epi8(q));
            y->bsums[g] = (int16_t)_mm512_reduce_add_epi32(q);
#else
            const __m256 vs = _mm256_set1_ps(iscale);
            __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16 * g), vs));
            __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16 * g + 8), vs));
            q0 = _mm256_min_epi32(q0, _mm256_set1_epi32(127));
            q1 = _mm256_min_epi32(q1, _mm256_set1_epi32(127));
            const __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xd8);
            _mm_storeu_si128((__m128i *)(y->qs + 16 * g),
                             _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1)));
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(q0), _mm256_extracti128_si256(q0, 1));
            s = _mm_add_epi32(s, _mm_add_epi32(_mm256_castsi256_si128(q1), _mm256_extracti128_si256(q1, 1)));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
            y->bsums[g] = (int16_t)_mm_cvtsi128_si32(s);
#endif
        }
        y->d = 1.0f / iscale;
    }
}

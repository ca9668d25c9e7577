/* qact.c — activation rows for the quantized dot products (8-bit blocks in the layout each kernel wants) and the kernel lookup. */
#include <immintrin.h>
#include <string.h>

#include "qmatmul.h"
#include "qpack.h"

/*
 * The 32-element formats share one activation layout: a row of K values is cut into groups of
 * 128 (4 blocks of 32; the last group zero-padded), each quantized per block of 32 as Q8_0 does
 * (d = amax / 127, q = round(x / d)), d kept in f32. A group is QACT_GROUP_BYTES (256) bytes, in
 * the order the kernels unpack weights (low / high nibbles; Q8_0's first / last 16 bytes):
 *
 *     lo[64]  int8: lo[16 b + e] = q of element e      of block b (e < 16)
 *     hi[64]  int8: hi[16 b + e] = q of element 16 + e of block b
 *     c[16]   int32 (Q4_0, Q5_0, Q8_0): -off * (sum of the 8 q an int32 lane of the dot covers),
 *             off = 8, 16 or 128 (Q8_0's weights are biased by +128 for vpdpbusd)
 *     sa[16]  f32   (Q4_1, Q5_1): d * (that sum), so the block's 4 lanes add up to d * sum(q): the
 *             rounded sum, whose error cancels most of the rounding error of the d_w * q_w part
 *             (q_w >= 0 is far from zero-mean; the exact sum of x doubles the error)
 *     da[16]  f32:  d of the lane's block
 *
 * Lane l (0..15) of a dot over (lo, hi) covers block l / 4, elements 4 (l % 4) .. +3 and
 * 16 + 4 (l % 4) .. +3. A ymm half h (AVX2) covers blocks 2h, 2h + 1: bytes 32h.. of lo and
 * hi, lanes 8h.. of c / sa / da.
 *
 * The K-quants take arrays of apr_block_q8_K (qdotk_act_q8_K in qdot_k.c).
 */

int64_t QDOT_NAME(qact_row_bytes)(uint32_t wtype, int64_t K) {
    switch (wtype) {
    case APR_Q4_0: case APR_Q4_1: case APR_Q5_0: case APR_Q5_1: case APR_Q8_0:
        return (K + QACT_GROUP - 1) / QACT_GROUP * QACT_GROUP_BYTES;
    case APR_Q4_K: case APR_Q5_K: case APR_Q6_K:
        return ((K / APR_QK_K) * (int64_t)sizeof(apr_block_q8_K) + 63) / 64 * 64;
    default: return 0;
    }
}

/* One block of 32: q = round-to-nearest-even(x * 127 / amax) with elements 0..15 to lo and
 * 16..31 to hi, sum[r] = the sum of q over elements 4r..4r+3 and 16+4r..16+4r+3 (the int32 lane r
 * of the dot); returns the scale amax / 127 (0 for an all-zero block). */
static float qact_block(const float *x, int8_t *lo, int8_t *hi, int32_t *sum) {
#if APR_X86_LEVEL >= 3
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
    _mm_storeu_si128((__m128i *)lo, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)hi, _mm512_cvtepi32_epi8(q1));
    __m512i t = _mm512_add_epi32(q0, q1); /* 128-bit lane r: the 4 pairs of lane r */
    t = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, _MM_PERM_CDAB));
    t = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, _MM_PERM_BADC));
    _mm_storeu_si128((__m128i *)sum, _mm512_castsi512_si128(_mm512_maskz_compress_epi32(0x1111, t)));
#else
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], m = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], id)), b = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], id));
    const __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], id)), d = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], id));
    /* packs work within 128-bit lanes: a0 b0 a1 b1 -> a0 b0 c0 d0 a1 b1 c1 d1 (4 dwords each), then fix the order */
    const __m256i p = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d)),
                                                  _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm_storeu_si128((__m128i *)lo, _mm256_castsi256_si128(p));
    _mm_storeu_si128((__m128i *)hi, _mm256_extracti128_si256(p, 1));
    /* a + c: lanes 0, 1 (elements 0..7 and 16..23); b + d: lanes 2, 3 */
    const __m256i s2 = _mm256_hadd_epi32(_mm256_add_epi32(a, c), _mm256_add_epi32(b, d));
    const __m256i s4 = _mm256_hadd_epi32(s2, s2); /* low half: lane 0, lane 2; high half: lane 1, lane 3 */
    sum[0] = _mm256_extract_epi32(s4, 0);
    sum[1] = _mm256_extract_epi32(s4, 4);
    sum[2] = _mm256_extract_epi32(s4, 1);
    sum[3] = _mm256_extract_epi32(s4, 5);
#endif
    return amax / 127.0f;
}

static void qact_group(uint32_t wtype, const float *x, int nbv, char *g) {
    int32_t sum[16] = {0};
    float d[4] = {0};
    int8_t *lo = (int8_t *)g, *hi = lo + 64;
    if (nbv < 4) memset(g, 0, 128);
    for (int b = 0; b < nbv; b++) d[b] = qact_block(x + b * APR_QK, lo + 16 * b, hi + 16 * b, sum + 4 * b);
    const int off = wtype == APR_Q4_0 ? 8 : wtype == APR_Q5_0 ? 16 : wtype == APR_Q8_0 ? 128 : 0;
    int32_t *c = (int32_t *)(g + QACT_C);
    float *sa = (float *)(g + QACT_SA), *da = (float *)(g + QACT_DA);
    for (int l = 0; l < 16; l++) {
        if (off) c[l] = -off * sum[l];
        else sa[l] = d[l / 4] * (float)sum[l];
        da[l] = d[l / 4];
    }
}

void QDOT_NAME(qact_quantize_row)(uint32_t wtype, const float *x, int64_t K, void *dst) {
    switch (wtype) {
    case APR_Q4_K: case APR_Q5_K: case APR_Q6_K:
        QDOT_NAME(qdotk_act_q8_K)(x, K, dst);
        return;
    default: break;
    }
    const int64_t nb = K / APR_QK, gb = QACT_GROUP_BYTES;
    char *g = dst;
    for (int64_t b = 0; b < nb; b += 4, g += gb) {
        const int nbv = nb - b < 4 ? (int)(nb - b) : 4;
        qact_group(wtype, x + b * APR_QK, nbv, g);
    }
}

/* The activation row of the packed kernels (qpack.h): q in natural order, then the block scales,
 * then -off times each block's sum of q; rounded exactly as qact_quantize_row rounds. */
int64_t QDOT_NAME(qact_packed_row_bytes)(int64_t K) {
    const int64_t nb = K / APR_QK;
    return (K + 63) / 64 * 64 + 2 * ((nb * 4 + 63) / 64 * 64);
}

void QDOT_NAME(qact_quantize_row_packed)(uint32_t wtype, const float *x, int64_t K, void *dst) {
    const int64_t nb = K / APR_QK, qbytes = (K + 63) / 64 * 64, dbytes = (nb * 4 + 63) / 64 * 64;
    int8_t *q = dst;
    float *d = (float *)((char *)dst + qbytes);
    int32_t *c = (int32_t *)((char *)dst + qbytes + dbytes);
    const int32_t off = wtype == APR_Q8_0 ? 128 : wtype == APR_Q5_0 ? 16 : 8;
    for (int64_t b = 0; b < nb; b++) {
        int32_t sum[4];
        d[b] = qact_block(x + b * APR_QK, q + 32 * b, q + 32 * b + 16, sum);
        c[b] = -off * (sum[0] + sum[1] + sum[2] + sum[3]);
    }
}

/* The K-quant kernels live in qdot_k.c; until that file is built in, their names resolve to NULL
 * and MATMUL with K-quant weights is refused by qdot_lookup's callers. */
extern qdot_fn QDOT_NAME(qdotk_q4_K) __attribute__((weak, visibility("hidden")));
extern qdot_fn QDOT_NAME(qdotk_q5_K) __attribute__((weak, visibility("hidden")));
extern qdot_fn QDOT_NAME(qdotk_q6_K) __attribute__((weak, visibility("hidden")));
extern void QDOT_NAME(qdotk_act_q8_K)(const float *x, int64_t K, void *dst) __attribute__((weak, visibility("hidden")));

qdot_fn *QDOT_NAME(qdot_lookup)(uint32_t wtype) {
    switch (wtype) {
    case APR_Q4_0: return QDOT_NAME(qdot_q4_0);
    case APR_Q4_1: return QDOT_NAME(qdot_q4_1);
    case APR_Q5_0: return QDOT_NAME(qdot_q5_0);
    case APR_Q5_1: return QDOT_NAME(qdot_q5_1);
    case APR_Q8_0: return QDOT_NAME(qdot_q8_0);
    case APR_Q4_K: return QDOT_NAME(qdotk_act_q8_K) ? QDOT_NAME(qdotk_q4_K) : NULL;
    case APR_Q5_K: return QDOT_NAME(qdotk_act_q8_K) ? QDOT_NAME(qdotk_q5_K) : NULL;
    case APR_Q6_K: return QDOT_NAME(qdotk_act_q8_K) ? QDOT_NAME(qdotk_q6_K) : NULL;
    default: return NULL;
    }
}

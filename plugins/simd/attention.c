/* attention.c — fused ATTENTION: online softmax over key blocks (flash style), GQA, causal, f32/f16 K/V. */
#include <math.h>
#include <string.h>

#include "../common/msg.h"
#include "../common/cpu_supports.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec_math.h"

#define ATTENTION_BLOCK 64 /* keys scored before one rescale of the running output */

typedef struct attention_job {
    const apr_node_desc *n;
    cpu_backend *be;
} attention_job;

#define ATTENTION_GMAX 8 /* query heads of one work unit: each key and value row is read once for them */

/* A value or key row chunk of r <= VEC_W elements at element i, f32 or f16. */
static inline __attribute__((always_inline)) vec_t attention_load(const char *row, int64_t i, int r, uint32_t t) {
    if (r == VEC_W) return t == APR_F16 ? vec_load_f16((const uint16_t *)row + i) : vec_load((const float *)row + i);
    return t == APR_F16 ? vec_loadn_f16((const uint16_t *)row + i, r) : vec_loadn((const float *)row + i, r);
}

/* acc[g][0..Dv) += p[g] * v for one value row (contiguous, f32 or f16), loaded once for every head
 * whose p is non-zero. acc rows are Dvp floats apart, padded to whole vectors, so no masking is
 * needed except on a strided tail read of v. */
static inline void attention_axpys(float *acc, int64_t Dvp, const float *p, int ng, const char *v, int64_t Dv,
                                   uint32_t vt) {
    for (int64_t i = 0; i < Dv; i += VEC_W) {
        int r = Dv - i < VEC_W ? (int)(Dv - i) : VEC_W;
        vec_t x = attention_load(v, i, r, vt);
        for (int g = 0; g < ng; g++) {
            if (p[g] == 0.0f) continue;
            float *a = acc + g * Dvp + i;
            vec_store(a, vec_fma(vec_set1(p[g]), x, vec_load(a)));
        }
    }
}

/* The dot of a query row (f32) with one contiguous key row over D. */
static inline float attention_dot(const float *q, const char *k, int64_t D, uint32_t kt) {
    vec_t s = vec_zero();
    int64_t i = 0;
    for (; i + VEC_W <= D; i += VEC_W) s = vec_fma(vec_load(q + i), attention_load(k, i, VEC_W, kt), s);
    if (i < D) s = vec_fma(vec_loadn(q + i, (int)(D - i)), attention_load(k, i, (int)(D - i), kt), s);
    return vec_hsum(s);
}

/* acc[i0 .. i0 + NV vectors) += sum over the keys b < nb, in key order, of p[b] * (value row b);
 * the last vector has r elements. NV is a constant where this is called: the NV vectors of acc
 * stay in registers over all the keys, one FMA chain each. */
static inline __attribute__((always_inline)) void attention_vtile(int NV, float *acc, const float *p, const char *const *vrow,
                                                                  int nb, int64_t i0, int r, uint32_t vt) {
    vec_t x[8];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < NV; t++) x[t] = vec_load(acc + i0 + t * VEC_W);
    for (int b = 0; b < nb; b++) {
        if (p[b] == 0.0f) continue;
        const vec_t pb = vec_set1(p[b]);
        _Pragma("GCC unroll 8")
        for (int t = 0; t + 1 < NV; t++) x[t] = vec_fma(pb, attention_load(vrow[b], i0 + t * VEC_W, VEC_W, vt), x[t]);
        x[NV - 1] = vec_fma(pb, attention_load(vrow[b], i0 + (NV - 1) * VEC_W, r, vt), x[NV - 1]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < NV; t++) vec_store(acc + i0 + t * VEC_W, x[t]);
}

/* acc[0..Dv) += sum over the block's keys b, in key order, of p[b] * (value row b), for one head,
 * up to 8 vectors of acc at a time. Why: with acc in memory, or with one vector's chain run over
 * every key before the next vector's, each FMA would wait for the last. Each element still adds
 * its keys in key order. */
static void attention_values(float *acc, const float *p, const char *const *vrow, int nb, int64_t Dv, uint32_t vt) {
    for (int64_t i0 = 0; i0 < Dv; i0 += 8 * VEC_W) {
        const int64_t left = Dv - i0;
        const int nv = left >= 8 * VEC_W ? 8 : (int)((left + VEC_W - 1) / VEC_W);
        const int64_t last = left - (int64_t)(nv - 1) * VEC_W; /* elements of the tile's last vector */
        const int r = last < VEC_W ? (int)last : VEC_W;
        switch (nv) {
        case 1: attention_vtile(1, acc, p, vrow, nb, i0, r, vt); break;
        case 2: attention_vtile(2, acc, p, vrow, nb, i0, r, vt); break;
        case 3: attention_vtile(3, acc, p, vrow, nb, i0, r, vt); break;
        case 4: attention_vtile(4, acc, p, vrow, nb, i0, r, vt); break;
        case 5: attention_vtile(5, acc, p, vrow, nb, i0, r, vt); break;
        case 6: attention_vtile(6, acc, p, vrow, nb, i0, r, vt); break;
        case 7: attention_vtile(7, acc, p, vrow, nb, i0, r, vt); break;
        default: attention_vtile(8, acc, p, vrow, nb, i0, r, vt); break;
        }
    }
}

/* Scratch of one worker, all in floats: q rows, accumulators and scores of up to ATTENTION_GMAX
 * heads, then one gathered k row and one gathered v row. */
static size_t attention_scratch_floats(int64_t D, int64_t Dv) {
    int64_t Dp = (D + VEC_W - 1) / VEC_W * VEC_W, Dvp = (Dv + VEC_W - 1) / VEC_W * VEC_W;
    return (size_t)(ATTENTION_GMAX * (Dp + Dvp + ATTENTION_BLOCK) + Dp + Dvp + 4 * VEC_W);
}

/* One query token t against one kv head hk, for query heads h0 .. h0+ng-1 (all reading hk). */
static void attention_group(const apr_node_desc *n, float *scratch, int64_t t, int64_t hk, int64_t h0, int ng) {
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2], *mk = &n->src[3], *d = &n->dst;
    const int64_t D = q->ne[0], T = q->ne[1], S = k->ne[1], Dv = v->ne[0];
    const int64_t Dp = (D + VEC_W - 1) / VEC_W * VEC_W, Dvp = (Dv + VEC_W - 1) / VEC_W * VEC_W;
    const uint32_t kt = k->dtype;
    const int esz = rows_esize(kt), has_mask = cpu_supports_has_src(n, 3), causal = n->iparams[0] != 0;
    const float scale = n->fparams[0];
    float *qb = scratch, *acc = qb + ATTENTION_GMAX * Dp, *sc = acc + ATTENTION_GMAX * Dvp;
    char *kb = (char *)(sc + ATTENTION_GMAX * ATTENTION_BLOCK), *vb = kb + Dp * 4;
    const float *qr[ATTENTION_GMAX];
    float mrun[ATTENTION_GMAX], p[ATTENTION_GMAX], bmax[ATTENTION_GMAX];
    double lsum[ATTENTION_GMAX];
    for (int g = 0; g < ng; g++) {
        qr[g] = rows_f32(rows_at(q, t, h0 + g, 0), D, q->nb[0], APR_F32, qb + g * Dp);
        mrun[g] = -INFINITY; /* running max of the scores */
        lsum[g] = 0.0;       /* running sum of exp(score - mrun) */
    }
    memset(acc, 0, (size_t)(ng * Dvp) * 4);
    int64_t L = S;
    if (causal) {
        int64_t lim = t + (S - T) + 1;
        L = lim < 0 ? 0 : lim < S ? lim : S;
    }
    for (int64_t s0 = 0; s0 < L; s0 += ATTENTION_BLOCK) {
        const int nb = L - s0 < ATTENTION_BLOCK ? (int)(L - s0) : ATTENTION_BLOCK;
        for (int g = 0; g < ng; g++) bmax[g] = -INFINITY;
        if (k->nb[0] == esz) {
            /* head by head, key by key: one head's dot stays in a register (over the heads at once,
             * ng partial sums went through memory for every chunk of every key) */
            const char *krow[ATTENTION_BLOCK];
            float mvs[ATTENTION_BLOCK];
            for (int b = 0; b < nb; b++) {
                mvs[b] = 0.0f;
                if (has_mask) memcpy(&mvs[b], (const char *)mk->data + t * mk->nb[1] + (s0 + b) * mk->nb[0], 4);
                /* a masked key is not read at all (decode masks the unfilled cache slots) */
                krow[b] = mvs[b] == -INFINITY ? NULL : rows_at(k, s0 + b, hk, 0);
            }
            for (int g = 0; g < ng; g++) {
                float *sg = sc + g * ATTENTION_BLOCK, bm = -INFINITY;
                for (int b = 0; b < nb; b++) {
                    const float sv = krow[b] ? attention_dot(qr[g], krow[b], D, kt) * scale + mvs[b] : -INFINITY;
                    sg[b] = sv;
                    if (sv > bm) bm = sv;
                }
                bmax[g] = bm;
            }
        } else {
            for (int b = 0; b < nb; b++) {
                float mv = 0.0f;
                if (has_mask) memcpy(&mv, (const char *)mk->data + t * mk->nb[1] + (s0 + b) * mk->nb[0], 4);
                if (mv == -INFINITY) { /* a masked key is not read at all (decode masks the unfilled cache slots) */
                    for (int g = 0; g < ng; g++) sc[g * ATTENTION_BLOCK + b] = -INFINITY;
                    continue;
                }
                /* a strided key row is gathered once for all the heads */
                const char *kr = rows_at(k, s0 + b, hk, 0);
                for (int64_t i = 0; i < D; i++) memcpy(kb + i * esz, kr + i * k->nb[0], (size_t)esz);
                for (int g = 0; g < ng; g++) {
                    float sv = attention_dot(qr[g], kb, D, kt) * scale + mv;
                    sc[g * ATTENTION_BLOCK + b] = sv;
                    if (sv > bmax[g]) bmax[g] = sv;
                }
            }
        }
        int live = 0;
        for (int g = 0; g < ng; g++) {
            float *sg = sc + g * ATTENTION_BLOCK;
            if (bmax[g] == -INFINITY) { /* every key of the block masked for this head */
                memset(sg, 0, (size_t)nb * 4);
                continue;
            }
            live = 1;
            if (bmax[g] > mrun[g]) {
                /* new max: rescale what was accumulated under the old one */
                vec_t vc = vec_set1(expf(mrun[g] - bmax[g]));
                for (int64_t i = 0; i < Dvp; i += VEC_W) vec_store(acc + g * Dvp + i, vec_mul(vec_load(acc + g * Dvp + i), vc));
                lsum[g] *= expf(mrun[g] - bmax[g]);
                mrun[g] = bmax[g];
            }
            vec_t vm = vec_set1(mrun[g]);
            for (int b = 0; b < nb; b += VEC_W) {
                int r = nb - b < VEC_W ? nb - b : VEC_W;
                vec_storen(sg + b, vec_exp(vec_sub(vec_loadn(sg + b, r), vm)), r);
            }
            for (int b = 0; b < nb; b++) lsum[g] += sg[b];
        }
        if (!live) continue;
        if (v->nb[0] == esz) {
            const char *vrow[ATTENTION_BLOCK];
            for (int b = 0; b < nb; b++) vrow[b] = rows_at(v, s0 + b, hk, 0);
            for (int g = 0; g < ng; g++) attention_values(acc + g * Dvp, sc + g * ATTENTION_BLOCK, vrow, nb, Dv, kt);
            continue;
        }
        for (int b = 0; b < nb; b++) {
            int any = 0;
            for (int g = 0; g < ng; g++) any |= (p[g] = sc[g * ATTENTION_BLOCK + b]) != 0.0f;
            if (!any) continue;
            const char *vr = rows_at(v, s0 + b, hk, 0);
            if (v->nb[0] != esz) {
                for (int64_t i = 0; i < Dv; i++) memcpy(vb + i * esz, vr + i * v->nb[0], (size_t)esz);
                vr = vb;
            }
            attention_axpys(acc, Dvp, p, ng, vr, Dv, kt);
        }
    }
    for (int g = 0; g < ng; g++) {
        /* dst [Dv, H, T]: element (i, h, t) */
        char *drow = (char *)d->data + (h0 + g) * d->nb[1] + t * d->nb[2];
        float inv = lsum[g] > 0.0 ? (float)(1.0 / lsum[g]) : 0.0f;
        for (int64_t i = 0; i < Dv; i++) {
            float o = acc[g * Dvp + i] * inv;
            memcpy(drow + i * d->nb[0], &o, 4);
        }
    }
}

/* Work units are (token, kv head, slice of at most ATTENTION_GMAX of its query heads), so each
 * key and value row is read once per slice rather than once per query head. */
static void attention_worker(void *ctx, int ith, int nth) {
    const attention_job *j = ctx;
    const apr_node_desc *n = j->n;
    const int64_t T = n->src[0].ne[1], H = n->src[0].ne[2], Hkv = n->src[1].ne[2];
    const int64_t group = H / Hkv, slices = (group + ATTENTION_GMAX - 1) / ATTENTION_GMAX;
    long long u0, u1;
    tpool_split(T * Hkv * slices, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t sl = u % slices, hk = (u / slices) % Hkv, t = u / (slices * Hkv);
        const int64_t g0 = sl * ATTENTION_GMAX;
        const int ng = (int)(group - g0 < ATTENTION_GMAX ? group - g0 : ATTENTION_GMAX);
        attention_group(n, (float *)j->be->scratch[ith], t, hk, hk * group + g0, ng);
    }
}

apr_status attention_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *q = &n->src[0], *v = &n->src[2];
    const int64_t D = q->ne[0], Dv = v->ne[0];
    if (q->ne[1] == 0 || q->ne[2] == 0 || Dv == 0) return APR_OK;
    size_t need = attention_scratch_floats(D, Dv) * sizeof(float);
    if (cpu_backend_reserve(be, need) != 0) return msg_set(err, err_size, APR_ERR_NOMEM, "attention: cannot allocate scratch");
    attention_job j = {n, be};
    cpu_backend_run(be, attention_worker, &j, q->ne[1] * q->ne[2] * n->src[1].ne[1] * (D + Dv));
    return APR_OK;
}

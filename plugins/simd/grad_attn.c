/* grad_attn.c — ATTENTION_GRAD, flash style: per query its softmax statistics and dQ, then per block of keys dK and dV with p recomputed from q.k; never an [S, T] score matrix. GQA, masks, causal. */
#include <math.h>
#include <string.h>

#include "../common/msg.h"
#include "../common/cpu_supports.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec_math.h"

/*
 * Two passes, each a dispatch over independent units, so no two workers add into one element:
 *   A. unit = (query t, kv head hk, up to AG_GMAX of its query heads): the scores s and dp = dO.v of
 *      every key the query sees (one row of S per head), then m = max s, l = sum exp(s - m),
 *      p = exp(s - m) / l, dd = sum p dp, ds = p (dp - dd) and dQ = scale sum ds k. (m, 1/l, dd) of
 *      every query go to shared scratch.
 *   B. unit = (block of AG_KB keys, kv head hk): for every query and every query head of hk, in
 *      order, p and dp recomputed from q.k and dO.v with that query's (m, 1/l, dd), then
 *      dV += p dO and dK += scale ds q for the block's keys, kept in scratch and written once.
 * A key whose mask is -inf for a query (or that causality hides) is skipped for that query: never
 * read, no share of the gradient. A query that sees no key has 1/l = 0 and gets dQ = 0.
 */
#define AG_GMAX 8 /* query heads of one pass-A unit: each key and value row is converted once for them */
#define AG_KB 32  /* keys of one pass-B unit */

typedef struct ag_job {
    const apr_node_desc *n;
    cpu_backend *be;
    float *stats; /* [T][H][3]: m, 1/l (0 = sees no key), dd */
    int64_t D, Dv, T, S, H, Hkv, group, slices;
    int64_t Dp, Dvp, Sp; /* D, Dv, S rounded up to whole vectors */
} ag_job;

static inline int64_t ag_up(int64_t x) { return (x + VEC_W - 1) / VEC_W * VEC_W; }

static inline float ag_dot(const float *a, const float *b, int64_t n) {
    vec_t s0 = vec_zero(), s1 = vec_zero();
    int64_t i = 0;
    for (; i + 2 * VEC_W <= n; i += 2 * VEC_W) {
        s0 = vec_fma(vec_load(a + i), vec_load(b + i), s0);
        s1 = vec_fma(vec_load(a + i + VEC_W), vec_load(b + i + VEC_W), s1);
    }
    for (; i < n; i += VEC_W) {
        int r = n - i < VEC_W ? (int)(n - i) : VEC_W;
        s0 = vec_fma(vec_loadn(a + i, r), vec_loadn(b + i, r), s0);
    }
    return vec_hsum(vec_add(s0, s1));
}

/* out[i] = a . x[i] for i < 4, the same sums ag_dot forms, a loaded once for the four. */
static inline void ag_dot4(const float *a, const float *const *x, int64_t n, float out[4]) {
    vec_t s[4][2];
    for (int i = 0; i < 4; i++) s[i][0] = s[i][1] = vec_zero();
    int64_t k = 0;
    for (; k + 2 * VEC_W <= n; k += 2 * VEC_W) {
        const vec_t a0 = vec_load(a + k), a1 = vec_load(a + k + VEC_W);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            s[i][0] = vec_fma(a0, vec_load(x[i] + k), s[i][0]);
            s[i][1] = vec_fma(a1, vec_load(x[i] + k + VEC_W), s[i][1]);
        }
    }
    for (; k < n; k += VEC_W) {
        const int r = n - k < VEC_W ? (int)(n - k) : VEC_W;
        const vec_t a0 = vec_loadn(a + k, r);
        for (int i = 0; i < 4; i++) s[i][0] = vec_fma(a0, vec_loadn(x[i] + k, r), s[i][0]);
    }
    for (int i = 0; i < 4; i++) out[i] = vec_hsum(vec_add(s[i][0], s[i][1]));
}

/* out[i] = a . x[i] for i < cnt, four at a time (each as ag_dot forms it). */
static void ag_dots(const float *a, const float *const *x, int cnt, int64_t n, float *out) {
    int i = 0;
    for (; i + 4 <= cnt; i += 4) ag_dot4(a, x + i, n, out + i);
    for (; i < cnt; i++) out[i] = ag_dot(a, x[i], n);
}

/* acc[0..n) += sum over g < ng, in order, of c[g] * x[g][0..n): up to 8 vectors of acc stay in
 * registers over all the rows (with acc in memory each row's FMAs would wait on a store and a load);
 * rows with c[g] == 0 are skipped (their x[g] may be NULL). */
static inline __attribute__((always_inline)) void ag_multi_tile(int NV, float *acc, const float *c, const float *const *x, int ng,
                                                                int64_t i0, int r) {
    vec_t a[8];
    _Pragma("GCC unroll 8")
    for (int t = 0; t + 1 < NV; t++) a[t] = vec_load(acc + i0 + t * VEC_W);
    a[NV - 1] = vec_loadn(acc + i0 + (NV - 1) * VEC_W, r);
    for (int g = 0; g < ng; g++) {
        if (c[g] == 0.0f) continue;
        const vec_t vc = vec_set1(c[g]);
        _Pragma("GCC unroll 8")
        for (int t = 0; t + 1 < NV; t++) a[t] = vec_fma(vc, vec_load(x[g] + i0 + t * VEC_W), a[t]);
        a[NV - 1] = vec_fma(vc, vec_loadn(x[g] + i0 + (NV - 1) * VEC_W, r), a[NV - 1]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t + 1 < NV; t++) vec_store(acc + i0 + t * VEC_W, a[t]);
    vec_storen(acc + i0 + (NV - 1) * VEC_W, a[NV - 1], r);
}

static void ag_axpy_multi(float *acc, const float *c, const float *const *x, int ng, int64_t n) {
    for (int64_t i0 = 0; i0 < n; i0 += 8 * VEC_W) {
        const int64_t left = n - i0;
        const int nv = left >= 8 * VEC_W ? 8 : (int)((left + VEC_W - 1) / VEC_W);
        const int64_t last = left - (int64_t)(nv - 1) * VEC_W;
        const int r = last < VEC_W ? (int)last : VEC_W;
        switch (nv) {
        case 1: ag_multi_tile(1, acc, c, x, ng, i0, r); break;
        case 2: ag_multi_tile(2, acc, c, x, ng, i0, r); break;
        case 3: ag_multi_tile(3, acc, c, x, ng, i0, r); break;
        case 4: ag_multi_tile(4, acc, c, x, ng, i0, r); break;
        case 5: ag_multi_tile(5, acc, c, x, ng, i0, r); break;
        case 6: ag_multi_tile(6, acc, c, x, ng, i0, r); break;
        case 7: ag_multi_tile(7, acc, c, x, ng, i0, r); break;
        default: ag_multi_tile(8, acc, c, x, ng, i0, r); break;
        }
    }
}

/* dst elements [at, at + cnt) = x. */
static void ag_store(const apr_tensor_desc *d, int64_t at, const float *x, int64_t cnt) {
    rows_store_f32((char *)d->data + at * d->nb[0], x, cnt, d->nb[0], APR_F32);
}

/* The mask of (key s, query t): 0 without one. */
static inline float ag_mask(const apr_node_desc *n, int has_mask, int64_t s, int64_t t) {
    float mv = 0.0f;
    if (has_mask) memcpy(&mv, (const char *)n->src[3].data + t * n->src[3].nb[1] + s * n->src[3].nb[0], 4);
    return mv;
}

/* The keys query t sees under the causal rule: [0, limit). */
static inline int64_t ag_limit(const apr_node_desc *n, int64_t t, int64_t S, int64_t T) {
    if (!n->iparams[0]) return S;
    const int64_t lim = t + (S - T) + 1;
    return lim < 0 ? 0 : lim < S ? lim : S;
}

/* ---------------------------------------------------------------- pass A: statistics and dQ */

static size_t ag_scratch_a(const ag_job *j) {
    return (size_t)(AG_GMAX * (2 * j->Dp + j->Dvp + 2 * j->Sp) + AG_KB * j->Dp + j->Dvp + 4 * VEC_W);
}

static void ag_pass_a(void *ctx, int ith, int nth) {
    const ag_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2], *dO = &n->src_ext[0], *d = &n->dst;
    const int has_mask = cpu_supports_has_src(n, 3);
    const float scale = n->fparams[0];
    float *qb = (float *)j->be->scratch[ith], *ob = qb + AG_GMAX * j->Dp, *acc = ob + AG_GMAX * j->Dvp;
    float *sc = acc + AG_GMAX * j->Dp, *dp = sc + AG_GMAX * j->Sp, *kt = dp + AG_GMAX * j->Sp, *vt = kt + AG_KB * j->Dp;
    long long u0, u1;
    tpool_split(j->T * j->Hkv * j->slices, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t sl = u % j->slices, hk = (u / j->slices) % j->Hkv, t = u / (j->slices * j->Hkv);
        const int64_t h0 = hk * j->group + sl * AG_GMAX;
        const int ng = (int)(j->group - sl * AG_GMAX < AG_GMAX ? j->group - sl * AG_GMAX : AG_GMAX);
        const float *qr[AG_GMAX], *orow[AG_GMAX];
        for (int g = 0; g < ng; g++) {
            qr[g] = rows_f32(rows_at(q, t, h0 + g, 0), j->D, q->nb[0], APR_F32, qb + g * j->Dp);
            orow[g] = rows_f32(rows_at(dO, h0 + g, t, 0), j->Dv, dO->nb[0], APR_F32, ob + g * j->Dvp);
        }
        const int64_t L = ag_limit(n, t, j->S, j->T);
        /* scores and dO.v of every key the query sees; -inf and 0 for the others */
        for (int64_t s = 0; s < L; s++) {
            const float mv = ag_mask(n, has_mask, s, t);
            if (mv == -INFINITY) {
                for (int g = 0; g < ng; g++) sc[g * j->Sp + s] = -INFINITY, dp[g * j->Sp + s] = 0.0f;
                continue;
            }
            const float *kr = rows_f32(rows_at(k, s, hk, 0), j->D, k->nb[0], k->dtype, kt);
            const float *vr = rows_f32(rows_at(v, s, hk, 0), j->Dv, v->nb[0], v->dtype, vt);
            float qk[AG_GMAX], ov[AG_GMAX];
            ag_dots(kr, qr, ng, j->D, qk);
            ag_dots(vr, orow, ng, j->Dv, ov);
            for (int g = 0; g < ng; g++) {
                sc[g * j->Sp + s] = qk[g] * scale + mv;
                dp[g * j->Sp + s] = ov[g];
            }
        }
        int any = 0;
        for (int g = 0; g < ng; g++) {
            float *sg = sc + g * j->Sp, *pg = dp + g * j->Sp, *st = j->stats + ((t * j->H) + h0 + g) * 3;
            float m = -INFINITY;
            for (int64_t s = 0; s < L; s++) m = sg[s] > m ? sg[s] : m;
            if (m == -INFINITY) { /* sees no key */
                st[0] = -INFINITY, st[1] = 0.0f, st[2] = 0.0f;
                for (int64_t s = 0; s < L; s++) sg[s] = 0.0f;
                continue;
            }
            any = 1;
            const vec_t vm = vec_set1(m);
            double l = 0.0;
            for (int64_t s = 0; s < L; s += VEC_W) {
                const int r = L - s < VEC_W ? (int)(L - s) : VEC_W;
                vec_storen(sg + s, vec_exp(vec_sub(vec_loadn(sg + s, r), vm)), r);
            }
            for (int64_t s = 0; s < L; s++) l += sg[s];
            const float inv_l = (float)(1.0 / l);
            double dd = 0.0;
            for (int64_t s = 0; s < L; s++) {
                sg[s] *= inv_l; /* p */
                dd += (double)sg[s] * pg[s];
            }
            for (int64_t s = 0; s < L; s++) sg[s] = scale * (sg[s] * (pg[s] - (float)dd)); /* scale * ds */
            st[0] = m, st[1] = inv_l, st[2] = (float)dd;
        }
        /* dQ = sum over the keys of (scale ds) k, a block of keys at a time; masked keys have ds = 0 */
        memset(acc, 0, (size_t)(ng * j->Dp) * 4);
        for (int64_t s0 = 0; any && s0 < L; s0 += AG_KB) {
            const int nb = (int)(L - s0 < AG_KB ? L - s0 : AG_KB);
            const float *krow[AG_KB];
            for (int b = 0; b < nb; b++) {
                krow[b] = NULL;
                int used = 0;
                for (int g = 0; g < ng; g++) used |= sc[g * j->Sp + s0 + b] != 0.0f;
                if (used) krow[b] = rows_f32(rows_at(k, s0 + b, hk, 0), j->D, k->nb[0], k->dtype, kt + b * j->Dp);
            }
            for (int g = 0; g < ng; g++) ag_axpy_multi(acc + g * j->Dp, sc + g * j->Sp + s0, krow, nb, j->D);
        }
        for (int g = 0; g < ng; g++) ag_store(d, j->D * (t + j->T * (h0 + g)), acc + g * j->Dp, j->D);
    }
}

/* ---------------------------------------------------------------- pass B: dK and dV per block of keys */

static size_t ag_scratch_b(const ag_job *j) {
    return (size_t)(2 * AG_KB * (j->Dp + j->Dvp) + AG_GMAX * (j->Dp + j->Dvp + 3 * AG_KB) + AG_KB + 4 * VEC_W);
}

static void ag_pass_b(void *ctx, int ith, int nth) {
    const ag_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2], *dO = &n->src_ext[0], *d = &n->dst;
    const int has_mask = cpu_supports_has_src(n, 3);
    const float scale = n->fparams[0];
    float *kb = (float *)j->be->scratch[ith], *vb = kb + AG_KB * j->Dp, *dk = vb + AG_KB * j->Dvp, *dv = dk + AG_KB * j->Dp;
    float *qt = dv + AG_KB * j->Dvp, *ot = qt + AG_GMAX * j->Dp, *ps = ot + AG_GMAX * j->Dvp, *cs = ps + AG_GMAX * AG_KB;
    float *dps = cs + AG_GMAX * AG_KB, *mvs = dps + AG_GMAX * AG_KB;
    const int64_t blocks = (j->S + AG_KB - 1) / AG_KB;
    long long u0, u1;
    tpool_split(blocks * j->Hkv, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t hk = u % j->Hkv, s0 = u / j->Hkv * AG_KB;
        const int nb = (int)(j->S - s0 < AG_KB ? j->S - s0 : AG_KB);
        int loaded = 0; /* key and value rows are converted on first use: a block no query sees is never read */
        const float *krow[AG_KB], *vrow[AG_KB];
        memset(dk, 0, (size_t)(AG_KB * j->Dp) * 4);
        memset(dv, 0, (size_t)(AG_KB * j->Dvp) * 4);
        for (int64_t t = 0; t < j->T; t++) {
            const int64_t L = ag_limit(n, t, j->S, j->T);
            const int vis = (int)(L - s0 < nb ? L - s0 : nb); /* the block's keys [s0, s0 + vis) are in causal reach */
            if (vis <= 0) continue;
            int live = 0;
            for (int b = 0; b < vis; b++) live |= (mvs[b] = ag_mask(n, has_mask, s0 + b, t)) != -INFINITY;
            if (!live) continue;
            if (!loaded) {
                for (int b = 0; b < nb; b++) {
                    krow[b] = rows_f32(rows_at(k, s0 + b, hk, 0), j->D, k->nb[0], k->dtype, kb + b * j->Dp);
                    vrow[b] = rows_f32(rows_at(v, s0 + b, hk, 0), j->Dv, v->nb[0], v->dtype, vb + b * j->Dvp);
                }
                loaded = 1;
            }
            /* the query heads of hk, up to AG_GMAX at a time: p and scale ds of each head and key,
             * then each key's dV and dK rows take every head's share in one pass */
            for (int64_t h0 = hk * j->group; h0 < (hk + 1) * j->group; h0 += AG_GMAX) {
                const int ng = (int)((hk + 1) * j->group - h0 < AG_GMAX ? (hk + 1) * j->group - h0 : AG_GMAX);
                const float *qr[AG_GMAX], *orow[AG_GMAX];
                for (int g = 0; g < ng; g++) {
                    const float *st = j->stats + (t * j->H + h0 + g) * 3;
                    float *pg = ps + g * AG_KB, *cg = cs + g * AG_KB, *dg = dps + g * AG_KB;
                    qr[g] = rows_f32(rows_at(q, t, h0 + g, 0), j->D, q->nb[0], APR_F32, qt + g * j->Dp);
                    orow[g] = rows_f32(rows_at(dO, h0 + g, t, 0), j->Dv, dO->nb[0], APR_F32, ot + g * j->Dvp);
                    if (st[1] == 0.0f) { /* sees no key at all */
                        for (int b = 0; b < vis; b++) pg[b] = cg[b] = 0.0f;
                        continue;
                    }
                    ag_dots(qr[g], krow, vis, j->D, pg);
                    ag_dots(orow[g], vrow, vis, j->Dv, dg);
                    for (int b = 0; b < vis; b++) {
                        if (mvs[b] == -INFINITY) pg[b] = -INFINITY, dg[b] = 0.0f; /* its row's values are not used */
                        else pg[b] = pg[b] * scale + mvs[b];
                    }
                    const vec_t vm = vec_set1(st[0]), vl = vec_set1(st[1]);
                    for (int b = 0; b < vis; b += VEC_W) {
                        const int r = vis - b < VEC_W ? vis - b : VEC_W;
                        vec_storen(pg + b, vec_mul(vec_exp(vec_sub(vec_loadn(pg + b, r), vm)), vl), r);
                    }
                    for (int b = 0; b < vis; b++) cg[b] = mvs[b] == -INFINITY ? 0.0f : scale * (pg[b] * (dg[b] - st[2]));
                }
                for (int b = 0; b < vis; b++) {
                    if (mvs[b] == -INFINITY) continue;
                    float pb[AG_GMAX], cb[AG_GMAX];
                    for (int g = 0; g < ng; g++) pb[g] = ps[g * AG_KB + b], cb[g] = cs[g * AG_KB + b];
                    ag_axpy_multi(dv + b * j->Dvp, pb, orow, ng, j->Dv);
                    ag_axpy_multi(dk + b * j->Dp, cb, qr, ng, j->D);
                }
            }
        }
        const int64_t at_k = j->D * j->T * j->H, at_v = at_k + j->D * j->S * j->Hkv;
        for (int b = 0; b < nb; b++) {
            ag_store(d, at_k + j->D * (s0 + b + j->S * hk), dk + b * j->Dp, j->D);
            ag_store(d, at_v + j->Dv * (s0 + b + j->S * hk), dv + b * j->Dvp, j->Dv);
        }
    }
}

apr_status attention_grad_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2];
    ag_job j = {.n = n, .be = be, .D = q->ne[0], .Dv = v->ne[0], .T = q->ne[1], .S = k->ne[1], .H = q->ne[2], .Hkv = k->ne[2]};
    if (n->dst.ne[0] == 0) return APR_OK;
    j.group = j.H / j.Hkv;
    j.slices = (j.group + AG_GMAX - 1) / AG_GMAX;
    j.Dp = ag_up(j.D), j.Dvp = ag_up(j.Dv), j.Sp = ag_up(j.S);
    size_t a = ag_scratch_a(&j), b = ag_scratch_b(&j);
    if (cpu_backend_reserve(be, (a > b ? a : b) * sizeof(float)) != 0 ||
        cpu_backend_reserve_shared(be, (size_t)(j.T * j.H * 3 + 1) * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "attention_grad: cannot allocate scratch");
    j.stats = (float *)be->shared;
    const int64_t work = j.T * j.H * j.S * (j.D + j.Dv);
    if (j.T * j.H > 0) cpu_backend_run(be, ag_pass_a, &j, 2 * work);
    cpu_backend_run(be, ag_pass_b, &j, 2 * work + j.S * j.Hkv * (j.D + j.Dv));
    return APR_OK;
}

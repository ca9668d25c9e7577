/* grad_attn.c — ATTENTION_GRAD, flash style: per block of queries their softmax statistics and dQ, then per block of keys dK and dV with p recomputed from q.k; never an [S, T] score matrix. GQA, masks, causal. */
#include <math.h>
#include <string.h>

#include "../common/msg.h"
#include "../common/cpu_supports.h"
#include "gemm_tile.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec_math.h"

/*
 * Two passes, each a dispatch over independent units, so no two workers add into one element:
 *   A. unit = (up to AG_ROWS / ng queries, kv head hk, up to AG_GMAX of its ng query heads): for
 *      every (query, head) row the scores s and dp = dO.v of every key the query sees (one row of
 *      S each), then m = max s, l = sum exp(s - m), p = exp(s - m) / l, dd = sum p dp,
 *      ds = p (dp - dd) and dQ = scale sum ds k. Each row's (m, 1/l, dd) goes to shared scratch.
 *   B. unit = (block of AG_KB keys, kv head hk): for every query and every query head of hk, in
 *      order, p and dp recomputed with that row's (m, 1/l, dd), then dV += p dO and
 *      dK += scale ds q for the block's keys, kept in scratch and written once.
 * Scores are formed a block of AG_KB keys at a time with the keys across the vector lanes (the
 * block's k and v rows transposed once, then one broadcast FMA per element of q or dO), the same
 * function in both passes, so pass B recomputes exactly the scores pass A's statistics came from.
 * A key whose mask is -inf for a query (or that causality hides) is skipped for that query: no
 * share of the gradient, and a key no row of a unit sees is never read. A query that sees no key
 * has 1/l = 0 and gets dQ = 0.
 */
#define AG_GMAX 8  /* query heads of one pass-A unit */
#define AG_ROWS 32 /* (query, head) rows of one pass-A unit: each transposed block of keys serves them all */
#define AG_KB 32   /* keys of one block: a multiple of every VEC_W */
#define AG_KV (AG_KB / VEC_W)
/* with two vectors across a block (AVX-512), even and odd elements take separate chains: FMA latency */
#define AG_SPLIT (AG_KV < 4)

typedef struct ag_job {
    const apr_node_desc *n;
    cpu_backend *be;
    float *stats; /* [T][H][3]: m, 1/l (0 = sees no key), dd */
    int64_t D, Dv, T, S, H, Hkv, group, slices;
    int64_t qblock;             /* queries of one pass-A unit */
    int64_t Dp, Dvp, Sk;        /* D, Dv rounded up to whole vectors; S to whole key blocks */
} ag_job;

static inline int64_t ag_up(int64_t x) { return (x + VEC_W - 1) / VEC_W * VEC_W; }

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

/* dst elements [at, at + cnt) = x. */
static void ag_store(const apr_tensor_desc *d, int64_t at, const float *x, int64_t cnt) {
    rows_store_f32((char *)d->data + at * d->nb[0], x, cnt, d->nb[0], APR_F32);
}

/* t[i * AG_KB + b] = rows[b][i] for i < D; a NULL row (or b >= nb) is zeros. zero: D zero floats. */
static void ag_transpose(float *t, const float *const *rows, int nb, int64_t D, const float *zero) {
    const float *r[AG_KB];
    for (int b = 0; b < AG_KB; b++) r[b] = b < nb && rows[b] ? rows[b] : zero;
    int64_t i = 0;
    for (; i + GEMM_TILE_T <= D; i += GEMM_TILE_T)
        for (int b = 0; b < AG_KB; b += GEMM_TILE_T) gemm_tile_transpose(r + b, i, t + i * AG_KB + b, AG_KB);
    for (; i < D; i++)
        for (int b = 0; b < AG_KB; b++) t[i * AG_KB + b] = r[b][i];
}

/* s1[b] = x1 . column b of t1 (over D1) and s2[b] = x2 . column b of t2 (over D2) for the AG_KB keys of
 * a transposed block, the keys across the lanes: a broadcast FMA per element, no horizontal sums. */
static void ag_scores(const float *x1, const float *t1, int64_t D1, const float *x2, const float *t2, int64_t D2, float *s1,
                      float *s2) {
    vec_t a[AG_KV], b[AG_KV], c[AG_KV], d[AG_KV];
    for (int v = 0; v < AG_KV; v++) a[v] = b[v] = c[v] = d[v] = vec_zero();
    const int64_t n = D1 < D2 ? D1 : D2;
    int64_t i = 0;
    if (AG_SPLIT)
        for (; i + 2 <= n; i += 2) {
            const vec_t x1e = vec_set1(x1[i]), x1o = vec_set1(x1[i + 1]), x2e = vec_set1(x2[i]), x2o = vec_set1(x2[i + 1]);
#pragma GCC unroll 8
            for (int v = 0; v < AG_KV; v++) {
                a[v] = vec_fma(x1e, vec_load(t1 + i * AG_KB + v * VEC_W), a[v]);
                b[v] = vec_fma(x1o, vec_load(t1 + (i + 1) * AG_KB + v * VEC_W), b[v]);
                c[v] = vec_fma(x2e, vec_load(t2 + i * AG_KB + v * VEC_W), c[v]);
                d[v] = vec_fma(x2o, vec_load(t2 + (i + 1) * AG_KB + v * VEC_W), d[v]);
            }
        }
    for (; i < n; i++) {
        const vec_t x1e = vec_set1(x1[i]), x2e = vec_set1(x2[i]);
#pragma GCC unroll 8
        for (int v = 0; v < AG_KV; v++) {
            a[v] = vec_fma(x1e, vec_load(t1 + i * AG_KB + v * VEC_W), a[v]);
            c[v] = vec_fma(x2e, vec_load(t2 + i * AG_KB + v * VEC_W), c[v]);
        }
    }
    for (int64_t j = i; j < D1; j++) {
        const vec_t x = vec_set1(x1[j]);
        for (int v = 0; v < AG_KV; v++) a[v] = vec_fma(x, vec_load(t1 + j * AG_KB + v * VEC_W), a[v]);
    }
    for (int64_t j = i; j < D2; j++) {
        const vec_t x = vec_set1(x2[j]);
        for (int v = 0; v < AG_KV; v++) c[v] = vec_fma(x, vec_load(t2 + j * AG_KB + v * VEC_W), c[v]);
    }
    for (int v = 0; v < AG_KV; v++) {
        vec_store(s1 + v * VEC_W, vec_add(a[v], b[v]));
        vec_store(s2 + v * VEC_W, vec_add(c[v], d[v]));
    }
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

/* The block's key and value rows [s0, s0 + nb) of kv head hk as f32 (converted into kc / vc where they
 * are not dense f32), the rows with use[b] == 0 NULL (never read), then transposed into kt, vt. */
static void ag_block(const ag_job *j, int64_t s0, int nb, int64_t hk, const int *use, const float **krow, const float **vrow,
                     float *kc, float *vc, float *kt, float *vt, const float *zero) {
    const apr_tensor_desc *k = &j->n->src[1], *v = &j->n->src[2];
    for (int b = 0; b < nb; b++) {
        krow[b] = use[b] ? rows_f32(rows_at(k, s0 + b, hk, 0), j->D, k->nb[0], k->dtype, kc + b * j->Dp) : NULL;
        vrow[b] = use[b] ? rows_f32(rows_at(v, s0 + b, hk, 0), j->Dv, v->nb[0], v->dtype, vc + b * j->Dvp) : NULL;
    }
    ag_transpose(kt, krow, nb, j->D, zero);
    ag_transpose(vt, vrow, nb, j->Dv, zero);
}

/* ---------------------------------------------------------------- pass A: statistics and dQ */

/* Scratch of one worker in floats (both passes share the block part). */
static size_t ag_scratch_block(const ag_job *j) {
    const int64_t Dm = j->Dp > j->Dvp ? j->Dp : j->Dvp;
    return (size_t)(AG_KB * (2 * j->Dp + 2 * j->Dvp) + Dm + 2 * VEC_W);
}
static size_t ag_scratch_a(const ag_job *j) {
    return ag_scratch_block(j) + (size_t)(AG_ROWS * (2 * j->Dp + j->Dvp + 2 * j->Sk) + AG_ROWS * AG_KB);
}

static void ag_pass_a(void *ctx, int ith, int nth) {
    const ag_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *q = &n->src[0], *dO = &n->src_ext[0], *d = &n->dst;
    const int has_mask = cpu_supports_has_src(n, 3);
    const float scale = n->fparams[0];
    float *kc = (float *)j->be->scratch[ith], *vc = kc + AG_KB * j->Dp, *kt = vc + AG_KB * j->Dvp, *vt = kt + AG_KB * j->Dp;
    float *zero = vt + AG_KB * j->Dvp;
    float *qb = zero + (j->Dp > j->Dvp ? j->Dp : j->Dvp) + 2 * VEC_W, *ob = qb + AG_ROWS * j->Dp, *acc = ob + AG_ROWS * j->Dvp;
    float *sc = acc + AG_ROWS * j->Dp, *dp = sc + AG_ROWS * j->Sk, *mvs = dp + AG_ROWS * j->Sk;
    memset(zero, 0, (size_t)(j->Dp > j->Dvp ? j->Dp : j->Dvp) * 4);
    const int64_t tblocks = (j->T + j->qblock - 1) / j->qblock;
    long long u0, u1;
    tpool_split(tblocks * j->Hkv * j->slices, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t sl = u % j->slices, hk = (u / j->slices) % j->Hkv, t0 = u / (j->slices * j->Hkv) * j->qblock;
        const int64_t h0 = hk * j->group + sl * AG_GMAX;
        const int ng = (int)(j->group - sl * AG_GMAX < AG_GMAX ? j->group - sl * AG_GMAX : AG_GMAX);
        const int nt = (int)(j->T - t0 < j->qblock ? j->T - t0 : j->qblock), nr = nt * ng; /* row r = (query t0 + r / ng, head h0 + r % ng) */
        const float *qr[AG_ROWS], *orow[AG_ROWS];
        int64_t L[AG_ROWS], Lmax = 0;
        for (int r = 0; r < nr; r++) {
            const int64_t t = t0 + r / ng, h = h0 + r % ng;
            qr[r] = rows_f32(rows_at(q, t, h, 0), j->D, q->nb[0], APR_F32, qb + r * j->Dp);
            orow[r] = rows_f32(rows_at(dO, h, t, 0), j->Dv, dO->nb[0], APR_F32, ob + r * j->Dvp);
            L[r] = ag_limit(n, t, j->S, j->T);
            Lmax = L[r] > Lmax ? L[r] : Lmax;
        }
        /* scores and dO.v of every key each row sees; -inf and 0 for the others */
        for (int64_t s0 = 0; s0 < Lmax; s0 += AG_KB) {
            const int nb = (int)(Lmax - s0 < AG_KB ? Lmax - s0 : AG_KB);
            int use[AG_KB];
            const float *krow[AG_KB], *vrow[AG_KB];
            for (int b = 0; b < nb; b++) {
                use[b] = 0;
                for (int tt = 0; tt < nt; tt++) {
                    const float mv = s0 + b < L[tt * ng] ? ag_mask(n, has_mask, s0 + b, t0 + tt) : -INFINITY;
                    mvs[tt * AG_KB + b] = mv;
                    use[b] |= mv != -INFINITY;
                }
            }
            ag_block(j, s0, nb, hk, use, krow, vrow, kc, vc, kt, vt, zero);
            for (int r = 0; r < nr; r++) {
                float *sr = sc + r * j->Sk + s0, *pr = dp + r * j->Sk + s0;
                const float *mr = mvs + (r / ng) * AG_KB;
                ag_scores(qr[r], kt, j->D, orow[r], vt, j->Dv, sr, pr);
                for (int b = 0; b < nb; b++) {
                    if (mr[b] == -INFINITY) sr[b] = -INFINITY, pr[b] = 0.0f;
                    else sr[b] = sr[b] * scale + mr[b];
                }
            }
        }
        int any = 0;
        for (int r = 0; r < nr; r++) {
            float *sg = sc + r * j->Sk, *pg = dp + r * j->Sk, *st = j->stats + ((t0 + r / ng) * j->H + h0 + r % ng) * 3;
            const int64_t Lr = L[r];
            float m = -INFINITY;
            for (int64_t s = 0; s < Lr; s++) m = sg[s] > m ? sg[s] : m;
            for (int64_t s = Lr; s < Lmax; s++) sg[s] = 0.0f; /* past this query's causal limit: no share */
            if (m == -INFINITY) { /* sees no key */
                st[0] = -INFINITY, st[1] = 0.0f, st[2] = 0.0f;
                for (int64_t s = 0; s < Lr; s++) sg[s] = 0.0f;
                continue;
            }
            any = 1;
            const vec_t vm = vec_set1(m);
            for (int64_t s = 0; s < Lr; s += VEC_W) {
                const int rr = Lr - s < VEC_W ? (int)(Lr - s) : VEC_W;
                vec_storen(sg + s, vec_exp(vec_sub(vec_loadn(sg + s, rr), vm)), rr);
            }
            double l = 0.0;
            for (int64_t s = 0; s < Lr; s++) l += sg[s];
            const float inv_l = (float)(1.0 / l);
            double dd = 0.0;
            for (int64_t s = 0; s < Lr; s++) {
                sg[s] *= inv_l; /* p */
                dd += (double)sg[s] * pg[s];
            }
            for (int64_t s = 0; s < Lr; s++) sg[s] = scale * (sg[s] * (pg[s] - (float)dd)); /* scale * ds */
            st[0] = m, st[1] = inv_l, st[2] = (float)dd;
        }
        /* dQ = sum over the keys of (scale ds) k, a block of keys at a time; masked keys have ds = 0 */
        memset(acc, 0, (size_t)(nr * j->Dp) * 4);
        const apr_tensor_desc *k = &n->src[1];
        for (int64_t s0 = 0; any && s0 < Lmax; s0 += AG_KB) {
            const int nb = (int)(Lmax - s0 < AG_KB ? Lmax - s0 : AG_KB);
            const float *krow[AG_KB];
            for (int b = 0; b < nb; b++) {
                int used = 0;
                for (int r = 0; r < nr; r++) used |= sc[r * j->Sk + s0 + b] != 0.0f;
                krow[b] = used ? rows_f32(rows_at(k, s0 + b, hk, 0), j->D, k->nb[0], k->dtype, kc + b * j->Dp) : NULL;
            }
            for (int r = 0; r < nr; r++) ag_axpy_multi(acc + r * j->Dp, sc + r * j->Sk + s0, krow, nb, j->D);
        }
        for (int r = 0; r < nr; r++) ag_store(d, j->D * (t0 + r / ng + j->T * (h0 + r % ng)), acc + r * j->Dp, j->D);
    }
}

/* ---------------------------------------------------------------- pass B: dK and dV per block of keys */

static size_t ag_scratch_b(const ag_job *j) {
    return ag_scratch_block(j) + (size_t)(AG_KB * (j->Dp + j->Dvp) + AG_GMAX * (j->Dp + j->Dvp + 3 * AG_KB) + AG_KB);
}

static void ag_pass_b(void *ctx, int ith, int nth) {
    const ag_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *q = &n->src[0], *dO = &n->src_ext[0], *d = &n->dst;
    const int has_mask = cpu_supports_has_src(n, 3);
    const float scale = n->fparams[0];
    float *kc = (float *)j->be->scratch[ith], *vc = kc + AG_KB * j->Dp, *kt = vc + AG_KB * j->Dvp, *vt = kt + AG_KB * j->Dp;
    float *zero = vt + AG_KB * j->Dvp;
    float *dk = zero + (j->Dp > j->Dvp ? j->Dp : j->Dvp) + 2 * VEC_W, *dv = dk + AG_KB * j->Dp;
    float *qt = dv + AG_KB * j->Dvp, *ot = qt + AG_GMAX * j->Dp, *ps = ot + AG_GMAX * j->Dvp, *cs = ps + AG_GMAX * AG_KB;
    float *dps = cs + AG_GMAX * AG_KB, *mvs = dps + AG_GMAX * AG_KB;
    memset(zero, 0, (size_t)(j->Dp > j->Dvp ? j->Dp : j->Dvp) * 4);
    const int64_t blocks = (j->S + AG_KB - 1) / AG_KB;
    long long u0, u1;
    tpool_split(blocks * j->Hkv, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t hk = u % j->Hkv, s0 = u / j->Hkv * AG_KB;
        const int nb = (int)(j->S - s0 < AG_KB ? j->S - s0 : AG_KB);
        int loaded = 0; /* the block is read on first use: one no query sees is never read */
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
                /* the keys some query sees: those within any causal reach (the last query's) not masked for all */
                int use[AG_KB];
                const float *krow[AG_KB], *vrow[AG_KB];
                const int64_t Llast = ag_limit(n, j->T - 1, j->S, j->T);
                for (int b = 0; b < nb; b++) {
                    use[b] = 0;
                    for (int64_t tq = 0; tq < j->T && !use[b] && s0 + b < Llast; tq++)
                        use[b] = s0 + b < ag_limit(n, tq, j->S, j->T) && ag_mask(n, has_mask, s0 + b, tq) != -INFINITY;
                }
                ag_block(j, s0, nb, hk, use, krow, vrow, kc, vc, kt, vt, zero);
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
                    ag_scores(qr[g], kt, j->D, orow[g], vt, j->Dv, pg, dg);
                    for (int b = 0; b < vis; b++) {
                        if (mvs[b] == -INFINITY) pg[b] = -INFINITY, dg[b] = 0.0f;
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
    const int64_t ng = j.group < AG_GMAX ? (j.group > 0 ? j.group : 1) : AG_GMAX;
    j.qblock = AG_ROWS / ng;
    j.Dp = ag_up(j.D), j.Dvp = ag_up(j.Dv), j.Sk = (j.S + AG_KB - 1) / AG_KB * AG_KB;
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

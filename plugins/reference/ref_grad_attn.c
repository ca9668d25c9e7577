/* ref_grad_attn.c — reference ATTENTION_GRAD: per query, its softmax recomputed in double, then dQ, and dK, dV summed over the queries. */
#include <math.h>
#include <stdlib.h>

#include "../common/msg.h"
#include "../common/opcheck.h"
#include "ref_ops.h"
#include "ref_tensor.h"

/* Scratch of one run: per-query rows (S scores, S probabilities' dp, D or Dv vectors) and the dK, dV
 * sums of every key, kept in double until the end so each is rounded once. */
typedef struct attn_grad_scratch {
    double *score; /* [S]: scale q.k + mask of the visible keys, -inf for the others */
    double *dp;    /* [S]: dO . v of the visible keys */
    double *dq;    /* [D] */
    double *dk;    /* [D, S, Hkv] */
    double *dv;    /* [Dv, S, Hkv] */
} attn_grad_scratch;

/* Query (t, h): its forward softmax p over the keys it sees, then dp, ds and the three gradients. */
static void attn_grad_one(const apr_node_desc *n, int64_t t, int64_t h, attn_grad_scratch *w) {
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2], *dout = &n->src_ext[0], *dst = &n->dst;
    const apr_tensor_desc *mask = opcheck_src_present(n, 3) ? &n->src[3] : NULL;
    int64_t D = q->ne[0], T = q->ne[1], H = q->ne[2], S = k->ne[1], Hkv = k->ne[2], Dv = v->ne[0];
    int64_t hk = h / (H / Hkv);
    double scale = n->fparams[0];

    /* Causal: query t sees keys s <= t + (S - T), i.e. the first t + S - T + 1 of them. */
    int64_t visible = S;
    if (n->iparams[0]) {
        visible = t + (S - T) + 1;
        if (visible < 0) visible = 0;
        if (visible > S) visible = S;
    }
    double max = -INFINITY;
    for (int64_t s = 0; s < visible; s++) {
        const double mv = mask ? reftensor_getf(mask, s, t, 0, 0) : 0.0;
        if (mv == -INFINITY) { /* a masked key is not read and gets nothing */
            w->score[s] = -INFINITY;
            continue;
        }
        double dot = 0.0;
        for (int64_t d = 0; d < D; d++)
            dot += (double)reftensor_getf(q, d, t, h, 0) * (double)reftensor_getf(k, d, s, hk, 0);
        double z = scale * dot + mv;
        w->score[s] = z;
        if (z > max || isnan(z)) max = z; /* a NaN becomes the max, so it poisons the gradients */
    }
    for (int64_t d = 0; d < D; d++) w->dq[d] = 0.0;
    if (max != -INFINITY) {
        double sum = 0.0;
        for (int64_t s = 0; s < visible; s++)
            if (w->score[s] != -INFINITY) sum += exp(w->score[s] - max);
        /* p[s] = exp(score - max) / sum; dp[s] = dO . v[:, s]; then sum_s p dp */
        double pdp = 0.0;
        for (int64_t s = 0; s < visible; s++) {
            if (w->score[s] == -INFINITY) continue;
            w->score[s] = exp(w->score[s] - max) / sum;
            double dp = 0.0;
            for (int64_t d = 0; d < Dv; d++)
                dp += (double)reftensor_getf(dout, d, h, t, 0) * (double)reftensor_getf(v, d, s, hk, 0);
            w->dp[s] = dp;
            pdp += w->score[s] * dp;
        }
        for (int64_t s = 0; s < visible; s++) {
            if (w->score[s] == -INFINITY) continue;
            double p = w->score[s], ds = p * (w->dp[s] - pdp);
            double *dk = w->dk + D * (s + S * hk), *dv = w->dv + Dv * (s + S * hk);
            for (int64_t d = 0; d < D; d++) {
                w->dq[d] += scale * ds * (double)reftensor_getf(k, d, s, hk, 0);
                dk[d] += scale * ds * (double)reftensor_getf(q, d, t, h, 0);
            }
            for (int64_t d = 0; d < Dv; d++) dv[d] += p * (double)reftensor_getf(dout, d, h, t, 0);
        }
    }
    /* dQ [D, T, H] opens dst; a query that sees no key gets zeros */
    for (int64_t d = 0; d < D; d++) reftensor_setf(dst, d + D * (t + T * h), 0, 0, 0, (float)w->dq[d]);
}

apr_status refgradattn_run(const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2], *dst = &n->dst;
    int64_t D = q->ne[0], T = q->ne[1], H = q->ne[2], S = k->ne[1], Hkv = k->ne[2], Dv = v->ne[0];
    size_t nk = (size_t)(D * S * Hkv), nv = (size_t)(Dv * S * Hkv);
    attn_grad_scratch w = {
        .score = malloc((size_t)(S > 0 ? S : 1) * sizeof(double)),
        .dp = malloc((size_t)(S > 0 ? S : 1) * sizeof(double)),
        .dq = malloc((size_t)(D > 0 ? D : 1) * sizeof(double)),
        .dk = calloc(nk ? nk : 1, sizeof(double)),
        .dv = calloc(nv ? nv : 1, sizeof(double)),
    };
    apr_status st = APR_OK;
    if (!w.score || !w.dp || !w.dq || !w.dk || !w.dv) {
        st = msg_set(err, err_size, APR_ERR_NOMEM, "attention_grad: cannot allocate scratch for %lld keys", (long long)S);
        goto done;
    }
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) attn_grad_one(n, t, h, &w);
    /* then dK [D, S, Hkv] and dV [Dv, S, Hkv], packed after dQ */
    int64_t at = D * T * H;
    for (size_t i = 0; i < nk; i++) reftensor_setf(dst, at + (int64_t)i, 0, 0, 0, (float)w.dk[i]);
    at += (int64_t)nk;
    for (size_t i = 0; i < nv; i++) reftensor_setf(dst, at + (int64_t)i, 0, 0, 0, (float)w.dv[i]);
done:
    free(w.score);
    free(w.dp);
    free(w.dq);
    free(w.dk);
    free(w.dv);
    return st;
}

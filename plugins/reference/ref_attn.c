/* ref_attn.c — reference ATTENTION: per query, a two-pass softmax over its visible keys, in double. */
#include <math.h>
#include <stdlib.h>

#include "../common/msg.h"
#include "../common/opcheck.h"
#include "ref_ops.h"
#include "ref_tensor.h"

/* Scores of one query are kept (S doubles) so each dot product is computed once; the S x T
 * matrix of all queries never exists. */
static void attend_one(const apr_node_desc *n, int64_t t, int64_t h, double *score, double *acc) {
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2], *dst = &n->dst;
    const apr_tensor_desc *mask = opcheck_src_present(n, 3) ? &n->src[3] : NULL;
    int64_t D = q->ne[0], T = q->ne[1], H = q->ne[2], S = k->ne[1], Dv = v->ne[0];
    int64_t hk = h / (H / k->ne[2]);
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
        if (mv == -INFINITY) { /* a masked key is not read: -inf whatever k holds */
            score[s] = -INFINITY;
            continue;
        }
        double dot = 0.0;
        for (int64_t d = 0; d < D; d++)
            dot += (double)reftensor_getf(q, d, t, h, 0) * (double)reftensor_getf(k, d, s, hk, 0);
        double z = scale * dot + mv;
        score[s] = z;
        /* A NaN becomes the max so that it poisons the output instead of vanishing. */
        if (z > max || isnan(z)) max = z;
    }
    if (max == -INFINITY) { /* no key visible, or every score masked out */
        for (int64_t d = 0; d < Dv; d++) reftensor_setf(dst, d, h, t, 0, 0.0f);
        return;
    }

    double sum = 0.0;
    for (int64_t d = 0; d < Dv; d++) acc[d] = 0.0;
    for (int64_t s = 0; s < visible; s++) {
        if (score[s] == -INFINITY) continue; /* masked: its v is not read either */
        double p = exp(score[s] - max);
        sum += p;
        for (int64_t d = 0; d < Dv; d++) acc[d] += p * (double)reftensor_getf(v, d, s, hk, 0);
    }
    for (int64_t d = 0; d < Dv; d++) reftensor_setf(dst, d, h, t, 0, (float)(acc[d] / sum));
}

apr_status refattn_run(const apr_node_desc *n, char *err, size_t err_size) {
    int64_t T = n->src[0].ne[1], H = n->src[0].ne[2], S = n->src[1].ne[1], Dv = n->src[2].ne[0];
    double *score = malloc((size_t)(S > 0 ? S : 1) * sizeof *score);
    double *acc = malloc((size_t)(Dv > 0 ? Dv : 1) * sizeof *acc);
    if (!score || !acc) {
        free(score);
        free(acc);
        return msg_set(err, err_size, APR_ERR_NOMEM, "attention: cannot allocate scratch for %lld keys",
                       (long long)S);
    }
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) attend_one(n, t, h, score, acc);
    free(score);
    free(acc);
    return APR_OK;
}

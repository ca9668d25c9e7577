/* ref_loss.c — reference CROSS_ENTROPY and CROSS_ENTROPY_GRAD: the summed loss of the targets and its gradient with respect to the logits, in double. */
#include <math.h>

#include "../common/msg.h"
#include "ref_ops.h"
#include "ref_tensor.h"

/* Every target is -1 (no loss at that column) or in [0, V); checked before anything is written. */
static apr_status check_targets(const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *targets = &n->src[1];
    int64_t V = n->src[0].ne[0];
    for (int64_t t = 0; t < targets->ne[0]; t++) {
        int32_t c = reftensor_geti(targets, t, 0, 0, 0);
        if (c != -1 && (c < 0 || c >= V))
            return msg_set(err, err_size, APR_ERR_INVALID, "%s: targets[%lld] = %d is outside [0, %lld) and not -1",
                           n->op == APR_OP_CROSS_ENTROPY ? "cross_entropy" : "cross_entropy_grad", (long long)t, (int)c,
                           (long long)V);
    }
    return APR_OK;
}

/* The max and log(sum exp(x - max)) of column t: logsumexp = max + lse. A NaN becomes the max so
 * that it poisons the column instead of vanishing. */
static void column_lse(const apr_tensor_desc *logits, int64_t t, double *max, double *lse) {
    double m = -INFINITY;
    for (int64_t v = 0; v < logits->ne[0]; v++) {
        double x = reftensor_getf(logits, v, t, 0, 0);
        if (x > m || isnan(x)) m = x;
    }
    double sum = 0.0;
    for (int64_t v = 0; v < logits->ne[0]; v++) sum += exp((double)reftensor_getf(logits, v, t, 0, 0) - m);
    *max = m;
    *lse = log(sum);
}

apr_status refloss_cross_entropy(const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *logits = &n->src[0], *targets = &n->src[1];
    apr_status st = check_targets(n, err, err_size);
    if (st != APR_OK) return st;
    double loss = 0.0;
    for (int64_t t = 0; t < logits->ne[1]; t++) {
        int32_t c = reftensor_geti(targets, t, 0, 0, 0);
        if (c < 0) continue;
        double max, lse;
        column_lse(logits, t, &max, &lse);
        loss += max + lse - (double)reftensor_getf(logits, c, t, 0, 0);
    }
    reftensor_setf(&n->dst, 0, 0, 0, 0, (float)loss);
    return APR_OK;
}

apr_status refloss_cross_entropy_grad(const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *logits = &n->src[0], *targets = &n->src[1], *dst = &n->dst;
    apr_status st = check_targets(n, err, err_size);
    if (st != APR_OK) return st;
    double g = reftensor_getf(&n->src[2], 0, 0, 0, 0);
    for (int64_t t = 0; t < logits->ne[1]; t++) {
        int32_t c = reftensor_geti(targets, t, 0, 0, 0);
        if (c < 0) {
            for (int64_t v = 0; v < logits->ne[0]; v++) reftensor_setf(dst, v, t, 0, 0, 0.0f);
            continue;
        }
        double max, lse;
        column_lse(logits, t, &max, &lse);
        /* every logit of the column was read above, so dst may alias the logits */
        for (int64_t v = 0; v < logits->ne[0]; v++) {
            double p = exp((double)reftensor_getf(logits, v, t, 0, 0) - max - lse);
            reftensor_setf(dst, v, t, 0, 0, (float)(g * (p - (v == c ? 1.0 : 0.0))));
        }
    }
    return APR_OK;
}

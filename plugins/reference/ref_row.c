/* ref_row.c — reference RMS_NORM, SOFTMAX and ARGMAX: ops that reduce along dim 0 of each row. */
#include <math.h>

#include "../common/opcheck.h"
#include "ref_ops.h"
#include "ref_tensor.h"

void refrow_rms_norm(const apr_node_desc *n) {
    const apr_tensor_desc *x = &n->src[0], *dst = &n->dst;
    int64_t D = x->ne[0];
    if (D == 0) return;
    double eps = n->fparams[0];
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++) {
                double sum = 0.0;
                for (int64_t i0 = 0; i0 < D; i0++) {
                    double v = reftensor_getf(x, i0, i1, i2, i3);
                    sum += v * v;
                }
                double denom = sqrt(sum / (double)D + eps);
                for (int64_t i0 = 0; i0 < D; i0++)
                    reftensor_setf(dst, i0, i1, i2, i3, (float)(reftensor_getf(x, i0, i1, i2, i3) / denom));
            }
}

/* z[j] of row (i1, i2, i3), recomputed on each pass rather than stored so no scratch is needed. */
static double softmax_z(const apr_node_desc *n, const apr_tensor_desc *mask, int64_t j, int64_t i1, int64_t i2,
                        int64_t i3) {
    const apr_tensor_desc *x = &n->src[0];
    if (n->iparams[0] && j > i1 + (x->ne[0] - x->ne[1])) return -INFINITY;
    double z = (double)reftensor_getf(x, j, i1, i2, i3) * (double)n->fparams[0];
    if (mask) z += reftensor_getf(mask, j, i1, 0, 0);
    return z;
}

void refrow_softmax(const apr_node_desc *n) {
    const apr_tensor_desc *x = &n->src[0], *dst = &n->dst;
    const apr_tensor_desc *mask = opcheck_src_present(n, 1) ? &n->src[1] : NULL;
    int64_t N = x->ne[0];
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++) {
                /* A NaN becomes the max so that it poisons the row instead of vanishing. */
                double max = -INFINITY;
                for (int64_t j = 0; j < N; j++) {
                    double z = softmax_z(n, mask, j, i1, i2, i3);
                    if (z > max || isnan(z)) max = z;
                }
                if (max == -INFINITY) {
                    for (int64_t j = 0; j < N; j++) reftensor_setf(dst, j, i1, i2, i3, 0.0f);
                    continue;
                }
                double sum = 0.0;
                for (int64_t j = 0; j < N; j++) sum += exp(softmax_z(n, mask, j, i1, i2, i3) - max);
                /* Each z is read before its own dst element is written, so dst may alias x. */
                for (int64_t j = 0; j < N; j++)
                    reftensor_setf(dst, j, i1, i2, i3, (float)(exp(softmax_z(n, mask, j, i1, i2, i3) - max) / sum));
            }
}

void refrow_argmax(const apr_node_desc *n) {
    const apr_tensor_desc *x = &n->src[0], *dst = &n->dst;
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++) {
                int64_t best = -1;
                float best_v = 0.0f;
                for (int64_t j = 0; j < x->ne[0]; j++) {
                    float v = reftensor_getf(x, j, i1, i2, i3);
                    /* Strict > keeps the lowest index among ties. */
                    if (!isnan(v) && (best < 0 || v > best_v)) {
                        best = j;
                        best_v = v;
                    }
                }
                reftensor_seti(dst, i1, i2, i3, 0, best < 0 ? 0 : (int32_t)best);
            }
}

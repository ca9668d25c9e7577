/* ref_matmul.c — reference MATMUL: one double-precision dot product per output element. */
#include "ref_ops.h"
#include "ref_tensor.h"

void refmatmul_run(const apr_node_desc *n) {
    const apr_tensor_desc *w = &n->src[0], *x = &n->src[1], *dst = &n->dst;
    int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1], B2 = x->ne[2], B3 = x->ne[3];
    /* Weight batch b2 / r2 serves r2 consecutive activation batches (opcheck made it divide). */
    int64_t r2 = B2 / w->ne[2], r3 = B3 / w->ne[3];
    for (int64_t b3 = 0; b3 < B3; b3++)
        for (int64_t b2 = 0; b2 < B2; b2++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t j = 0; j < N; j++) {
                    double sum = 0.0;
                    for (int64_t k = 0; k < K; k++)
                        sum += (double)reftensor_getf(w, k, j, b2 / r2, b3 / r3) * (double)reftensor_getf(x, k, m, b2, b3);
                    reftensor_setf(dst, j, m, b2, b3, (float)sum);
                }
}

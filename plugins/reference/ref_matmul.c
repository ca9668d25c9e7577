/* ref_matmul.c — reference MATMUL: one double-precision dot product per output element. */
#include <stdlib.h>

#include "../common/msg.h"
#include "ref_ops.h"
#include "ref_tensor.h"

/* W row j of weight batch (w2, w3) times X row (m, b2, b3); wrow holds that W row dequantized
 * when W is a block type, else NULL and W is read element by element. */
static double refmatmul_dot(const apr_node_desc *n, const float *wrow, int64_t j, int64_t w2, int64_t w3, int64_t m,
                            int64_t b2, int64_t b3) {
    const apr_tensor_desc *w = &n->src[0], *x = &n->src[1];
    double sum = 0.0;
    for (int64_t k = 0; k < w->ne[0]; k++) {
        double wk = wrow ? (double)wrow[k] : (double)reftensor_getf(w, k, j, w2, w3);
        sum += wk * (double)reftensor_getf(x, k, m, b2, b3);
    }
    return sum;
}

apr_status refmatmul_run(const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *w = &n->src[0], *x = &n->src[1], *dst = &n->dst;
    int64_t K = w->ne[0], N = w->ne[1], M = x->ne[1], B2 = x->ne[2], B3 = x->ne[3];
    /* Weight batch b2 / r2 serves r2 consecutive activation batches (opcheck made it divide). */
    int64_t r2 = B2 / w->ne[2], r3 = B3 / w->ne[3];
    float *wrow = NULL;
    if (reftensor_is_block(w)) {
        wrow = malloc((size_t)(K ? K : 1) * sizeof(float));
        if (!wrow) return msg_set(err, err_size, APR_ERR_NOMEM, "matmul: cannot allocate a %lld-float row", (long long)K);
    }
    for (int64_t b3 = 0; b3 < B3; b3++)
        for (int64_t b2 = 0; b2 < B2; b2++)
            for (int64_t j = 0; j < N; j++) {
                if (wrow) reftensor_dequant_row(w, j, b2 / r2, b3 / r3, wrow);
                for (int64_t m = 0; m < M; m++)
                    reftensor_setf(dst, j, m, b2, b3, (float)refmatmul_dot(n, wrow, j, b2 / r2, b3 / r3, m, b2, b3));
            }
    free(wrow);
    return APR_OK;
}

/* argmax.c — ARGMAX along dim 0: vector max (NaNs skipped), then the first index holding it. */
#include <math.h>
#include <string.h>

#include "../common/msg.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec.h"

typedef struct argmax_job {
    const apr_node_desc *n;
    cpu_backend *be;
} argmax_job;

static int32_t argmax_row(const float *x, int64_t N) {
    vec_t m = vec_set1(-INFINITY);
    int64_t i = 0;
    for (; i + VEC_W <= N; i += VEC_W) m = vec_max(vec_load(x + i), m); /* NaN lanes keep m */
    float mx = vec_hmax(m);
    for (; i < N; i++)
        if (x[i] > mx) mx = x[i];
    /* ties: the first index; all NaN (nothing equals mx = -inf): 0 */
    for (i = 0; i < N; i++)
        if (x[i] == mx) return (int32_t)i;
    return 0;
}

static void argmax_worker(void *ctx, int ith, int nth) {
    const argmax_job *j = ctx;
    const apr_tensor_desc *a = &j->n->src[0], *d = &j->n->dst;
    const int64_t N = a->ne[0];
    float *tx = (float *)j->be->scratch[ith];
    long long r0, r1;
    tpool_split(rows_count(a), ith, nth, &r0, &r1);
    for (long long r = r0; r < r1; r++) {
        int64_t i1, i2, i3;
        rows_index(a, r, &i1, &i2, &i3);
        const float *x = rows_f32(rows_at(a, i1, i2, i3), N, a->nb[0], APR_F32, tx);
        int32_t idx = N > 0 ? argmax_row(x, N) : 0;
        memcpy((char *)d->data + i1 * d->nb[0] + i2 * d->nb[1] + i3 * d->nb[2], &idx, 4);
    }
}

apr_status argmax_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *a = &n->src[0];
    if (rows_count(a) == 0) return APR_OK;
    if (cpu_backend_reserve(be, (size_t)(a->ne[0] + 16) * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "argmax: cannot allocate scratch");
    argmax_job j = {n, be};
    cpu_backend_run(be, argmax_worker, &j, rows_count(a) * a->ne[0]);
    return APR_OK;
}

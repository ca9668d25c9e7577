/* rmsnorm.c — RMS_NORM along dim 0: x / sqrt(mean(x^2) + eps), rows split over workers. */
#include <math.h>

#include "../common/msg.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec.h"

typedef struct rmsnorm_job {
    const apr_node_desc *n;
    cpu_backend *be;
} rmsnorm_job;

static void rmsnorm_worker(void *ctx, int ith, int nth) {
    const rmsnorm_job *j = ctx;
    const apr_tensor_desc *a = &j->n->src[0], *d = &j->n->dst;
    const int64_t len = d->ne[0];
    const float eps = j->n->fparams[0];
    float *ta = (float *)j->be->scratch[ith], *td = ta + len;
    long long r0, r1;
    tpool_split(rows_count(d), ith, nth, &r0, &r1);
    for (long long r = r0; r < r1; r++) {
        int64_t i1, i2, i3;
        rows_index(d, r, &i1, &i2, &i3);
        const float *x = rows_f32(rows_at(a, i1, i2, i3), len, a->nb[0], APR_F32, ta);
        char *drow = rows_at(d, i1, i2, i3);
        float *y = d->nb[0] == 4 ? (float *)drow : td;
        vec_t s0 = vec_zero(), s1 = vec_zero();
        int64_t i = 0;
        for (; i + 2 * VEC_W <= len; i += 2 * VEC_W) {
            vec_t u = vec_load(x + i), v = vec_load(x + i + VEC_W);
            s0 = vec_fma(u, u, s0);
            s1 = vec_fma(v, v, s1);
        }
        for (; i < len; i += VEC_W) {
            vec_t u = vec_loadn(x + i, len - i < VEC_W ? (int)(len - i) : VEC_W);
            s0 = vec_fma(u, u, s0);
        }
        /* the mean in double: the reference's order differs, but a long row's sum keeps its digits */
        double mean = (double)vec_hsum(vec_add(s0, s1)) / (double)len;
        vec_t sc = vec_set1((float)(1.0 / sqrt(mean + (double)eps)));
        for (i = 0; i + VEC_W <= len; i += VEC_W) vec_store(y + i, vec_mul(vec_load(x + i), sc));
        if (i < len) vec_storen(y + i, vec_mul(vec_loadn(x + i, (int)(len - i)), sc), (int)(len - i));
        if (y == td) rows_store_f32(drow, td, len, d->nb[0], APR_F32);
    }
}

apr_status rmsnorm_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *d = &n->dst;
    if (rows_count(d) == 0 || d->ne[0] == 0) return APR_OK;
    if (cpu_backend_reserve(be, (size_t)(2 * d->ne[0] + 16) * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "rms_norm: cannot allocate scratch");
    rmsnorm_job j = {n, be};
    cpu_backend_run(be, rmsnorm_worker, &j, rows_count(d) * d->ne[0] * 2);
    return APR_OK;
}

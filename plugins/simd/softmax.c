/* softmax.c — SOFTMAX along dim 0 with scale, optional [N, R] mask and causal cut; vector exp. */
#include <math.h>

#include "../common/msg.h"
#include "../common/cpu_supports.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec_math.h"

typedef struct softmax_job {
    const apr_node_desc *n;
    cpu_backend *be;
} softmax_job;

static void softmax_worker(void *ctx, int ith, int nth) {
    const softmax_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *a = &n->src[0], *mk = &n->src[1], *d = &n->dst;
    const int64_t N = d->ne[0], R = d->ne[1];
    const int has_mask = cpu_supports_has_src(n, 1), causal = n->iparams[0] != 0;
    const float scale = n->fparams[0];
    float *tx = (float *)j->be->scratch[ith], *tm = tx + N, *ty = tm + N;
    long long r0, r1;
    tpool_split(rows_count(d), ith, nth, &r0, &r1);
    for (long long r = r0; r < r1; r++) {
        int64_t i1, i2, i3;
        rows_index(d, r, &i1, &i2, &i3);
        const float *x = rows_f32(rows_at(a, i1, i2, i3), N, a->nb[0], APR_F32, tx);
        const float *m = has_mask ? rows_f32(rows_at(mk, i1, 0, 0), N, mk->nb[0], APR_F32, tm) : NULL;
        char *drow = rows_at(d, i1, i2, i3);
        float *y = d->nb[0] == 4 ? (float *)drow : ty;
        /* keys past L are cut by the causal rule: their z is -inf, their output 0 */
        int64_t L = N;
        if (causal) {
            int64_t lim = i1 + (N - R) + 1;
            L = lim < 0 ? 0 : lim < N ? lim : N;
        }
        vec_t vs = vec_set1(scale), vmax = vec_set1(-INFINITY);
        int64_t i = 0;
        for (; i < L; i += VEC_W) {
            int k = L - i < VEC_W ? (int)(L - i) : VEC_W;
            vec_t z = vec_mul(vec_loadn(x + i, k), vs);
            if (m) z = vec_add(z, vec_loadn(m + i, k));
            vec_storen(y + i, z, k);
            if (k < VEC_W) { /* the zero lanes loaded past L must not raise the max */
                float t[VEC_W];
                vec_store(t, z);
                for (int q = k; q < VEC_W; q++) t[q] = -INFINITY;
                z = vec_load(t);
            }
            vmax = vec_max(z, vmax);
        }
        float mx = vec_hmax(vmax);
        if (mx == -INFINITY || mx != mx) { /* nothing visible (or NaN max): zeros */
            for (i = 0; i < N; i++) y[i] = mx != mx ? mx : 0.0f;
        } else {
            vec_t vm = vec_set1(mx), sum = vec_zero();
            for (i = 0; i < L; i += VEC_W) {
                int k = L - i < VEC_W ? (int)(L - i) : VEC_W;
                vec_t e = vec_exp(vec_sub(vec_loadn(y + i, k), vm));
                if (k < VEC_W) e = vec_loadn((const float *)&e, k); /* drop lanes past L */
                vec_storen(y + i, e, k);
                sum = vec_add(sum, e);
            }
            vec_t inv = vec_set1((float)(1.0 / (double)vec_hsum(sum)));
            for (i = 0; i < L; i += VEC_W) {
                int k = L - i < VEC_W ? (int)(L - i) : VEC_W;
                vec_storen(y + i, vec_mul(vec_loadn(y + i, k), inv), k);
            }
            for (i = L; i < N; i++) y[i] = 0.0f;
        }
        if (y == ty) rows_store_f32(drow, ty, N, d->nb[0], APR_F32);
    }
}

apr_status softmax_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *d = &n->dst;
    if (rows_count(d) == 0 || d->ne[0] == 0) return APR_OK;
    if (cpu_backend_reserve(be, (size_t)(3 * d->ne[0] + 16) * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "softmax: cannot allocate scratch");
    softmax_job j = {n, be};
    cpu_backend_run(be, softmax_worker, &j, rows_count(d) * d->ne[0] * 8);
    return APR_OK;
}

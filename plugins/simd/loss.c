/* loss.c — CROSS_ENTROPY (summed over the tokens that have a target) and CROSS_ENTROPY_GRAD (g times softmax minus one-hot). */
#include <math.h>
#include <string.h>

#include "../common/msg.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec_math.h"

typedef struct loss_job {
    const apr_node_desc *n;
    cpu_backend *be;
    double *row_loss; /* [T] CROSS_ENTROPY: each token's loss, summed in token order afterwards */
    float g;          /* CROSS_ENTROPY_GRAD: the incoming gradient */
} loss_job;

static int32_t loss_target(const apr_node_desc *n, int64_t t) {
    int32_t id;
    memcpy(&id, (const char *)n->src[1].data + t * n->src[1].nb[0], 4);
    return id;
}

/* The largest of x[0..V) (NaN elements skipped, as vec_max does when the accumulator comes second). */
static float loss_max(const float *x, int64_t V) {
    vec_t m0 = vec_set1(-INFINITY), m1 = m0;
    int64_t i = 0;
    for (; i + 2 * VEC_W <= V; i += 2 * VEC_W) {
        m0 = vec_max(vec_load(x + i), m0);
        m1 = vec_max(vec_load(x + i + VEC_W), m1);
    }
    float m = vec_hmax(vec_max(m0, m1));
    for (; i < V; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* sum exp(x - mx) over x[0..V); with e set, e[i] = exp(x[i] - mx) too. */
static double loss_sumexp(const float *x, int64_t V, float mx, float *e) {
    const vec_t vm = vec_set1(mx);
    vec_t s = vec_zero();
    int64_t i = 0;
    for (; i + VEC_W <= V; i += VEC_W) {
        vec_t v = vec_exp(vec_sub(vec_load(x + i), vm));
        if (e) vec_store(e + i, v);
        s = vec_add(s, v);
    }
    double sum = vec_hsum(s);
    for (; i < V; i++) {
        float v = expf(x[i] - mx);
        if (e) e[i] = v;
        sum += v;
    }
    return sum;
}

static void loss_worker(void *ctx, int ith, int nth) {
    const loss_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *lg = &n->src[0], *d = &n->dst;
    const int64_t V = lg->ne[0];
    float *tx = (float *)j->be->scratch[ith], *ty = tx + V;
    long long t0, t1;
    tpool_split(lg->ne[1], ith, nth, &t0, &t1);
    for (long long t = t0; t < t1; t++) {
        const int32_t tg = loss_target(n, t);
        if (n->op == APR_OP_CROSS_ENTROPY) {
            if (tg < 0) { j->row_loss[t] = 0.0; continue; }
            const float *x = rows_f32(rows_at(lg, t, 0, 0), V, lg->nb[0], APR_F32, tx);
            const float mx = loss_max(x, V);
            j->row_loss[t] = (double)mx + log(loss_sumexp(x, V, mx, NULL)) - (double)x[tg];
            continue;
        }
        char *drow = rows_at(d, t, 0, 0);
        float *y = d->nb[0] == 4 ? (float *)drow : ty;
        if (tg < 0) {
            memset(y, 0, (size_t)V * 4);
        } else {
            const float *x = rows_f32(rows_at(lg, t, 0, 0), V, lg->nb[0], APR_F32, tx);
            const float mx = loss_max(x, V);
            const double sum = loss_sumexp(x, V, mx, y); /* y holds exp(x - mx) */
            const float c = (float)(1.0 / sum), etg = y[tg];
            const vec_t vc = vec_set1(c), vg = vec_set1(j->g);
            int64_t i = 0;
            for (; i + VEC_W <= V; i += VEC_W) vec_store(y + i, vec_mul(vg, vec_mul(vec_load(y + i), vc)));
            if (i < V) vec_storen(y + i, vec_mul(vg, vec_mul(vec_loadn(y + i, (int)(V - i)), vc)), (int)(V - i));
            y[tg] = j->g * (etg * c - 1.0f);
        }
        if (y == ty) rows_store_f32(drow, ty, V, d->nb[0], APR_F32);
    }
}

apr_status cross_entropy_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *lg = &n->src[0], *d = &n->dst;
    const char *op = n->op == APR_OP_CROSS_ENTROPY ? "cross_entropy" : "cross_entropy_grad";
    const int64_t V = lg->ne[0], T = lg->ne[1];
    for (int64_t t = 0; t < T; t++) {
        const int32_t tg = loss_target(n, t);
        if (tg != -1 && (tg < 0 || tg >= V))
            return msg_set(err, err_size, APR_ERR_INVALID, "%s: target %d at %lld outside [0, %lld) and not -1", op, tg, (long long)t,
                           (long long)V);
    }
    loss_job j = {n, be, NULL, 0.0f};
    if (n->op == APR_OP_CROSS_ENTROPY_GRAD) {
        memcpy(&j.g, n->src[2].data, 4);
        if (V == 0 || T == 0) return APR_OK;
    } else if (T > 0) {
        if (cpu_backend_reserve_shared(be, (size_t)T * sizeof(double)) != 0)
            return msg_set(err, err_size, APR_ERR_NOMEM, "%s: cannot allocate scratch", op);
        j.row_loss = (double *)be->shared;
    }
    if (T > 0) {
        if (cpu_backend_reserve(be, (size_t)(2 * V + 16) * sizeof(float)) != 0)
            return msg_set(err, err_size, APR_ERR_NOMEM, "%s: cannot allocate scratch", op);
        cpu_backend_run(be, loss_worker, &j, T * V * 4);
    }
    if (n->op == APR_OP_CROSS_ENTROPY) {
        double sum = 0.0; /* in token order: the same total whatever the thread count */
        for (int64_t t = 0; t < T; t++) sum += j.row_loss[t];
        const float f = (float)sum;
        memcpy(d->data, &f, 4);
    }
    return APR_OK;
}

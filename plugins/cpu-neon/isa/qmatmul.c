/* qmatmul.c — MATMUL with a block-type weight: activation rows rounded to int8 once per node, weight rows unpacked in tiles, int8 dot kernels. */
#include "qmatmul.h"

#include <stdlib.h>

#include "../../common/msg.h"
#include "../../simd/simd_ops.h"
#include "../../simd/rows.h"

#define QMM_NW 4 /* weight rows unpacked per tile */
#define QMM_NA 4 /* activation rows per kernel call */

typedef struct qmm_plan {
    const apr_node_desc *node;
    cpu_backend *be;
    qdot_fn *dot;
    char *act;          /* every activation row of every batch, rounded: qk_row_bytes(K) each */
    int64_t row_bytes;  /* qk_row_bytes(K) */
    int64_t n_chunk;    /* weight rows per unit (a multiple of QMM_NW) */
    int64_t n_units_n;
    int64_t n_units;
} qmm_plan;

/* Phase 1: activation rows (all batches; row r = (m, b2, b3) with m fastest). */
static void qmm_act_worker(void *ctx, int ith, int nth) {
    const qmm_plan *p = ctx;
    const apr_tensor_desc *x = &p->node->src[1];
    const int64_t K = x->ne[0];
    float *tmp = (float *)p->be->scratch[ith];
    long long r0, r1;
    tpool_split(rows_count(x), ith, nth, &r0, &r1);
    for (long long r = r0; r < r1; r++) {
        const float *xr = rows_f32(rows_ptr(x, r), K, x->nb[0], APR_F32, tmp);
        qact_row(xr, K, p->act + r * p->row_bytes);
    }
}

/* Phase 2: units (batch, chunk of weight rows); each tile of QMM_NW rows is unpacked once and
 * dotted with every activation row of the batch. */
static void qmm_worker(void *ctx, int ith, int nth) {
    const qmm_plan *p = ctx;
    const apr_tensor_desc *w = &p->node->src[0], *d = &p->node->dst;
    const int64_t K = w->ne[0], N = d->ne[0], M = d->ne[1], B2 = d->ne[2];
    const int64_t r2 = d->ne[2] / w->ne[2], r3 = d->ne[3] / w->ne[3];
    const int has_min = qunpack_has_min(w->dtype);
    char *wt = p->be->scratch[ith];
    float out[QMM_NA * QMM_NW];
    long long u0, u1;
    tpool_split(p->n_units, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t un = u % p->n_units_n, b = u / p->n_units_n, b2 = b % B2, b3 = b / B2;
        const char *wb = (const char *)w->data + (b2 / r2) * w->nb[2] + (b3 / r3) * w->nb[3];
        const char *ab = p->act + b * M * p->row_bytes;
        char *db = (char *)d->data + b2 * d->nb[2] + b3 * d->nb[3];
        const int64_t n0 = un * p->n_chunk, n1 = n0 + p->n_chunk < N ? n0 + p->n_chunk : N;
        for (int64_t n = n0; n < n1; n += QMM_NW) {
            const int nw = n1 - n < QMM_NW ? (int)(n1 - n) : QMM_NW;
            for (int i = 0; i < nw; i++) qunpack_row(w->dtype, wb + (n + i) * w->nb[1], K, wt + i * p->row_bytes);
            for (int64_t m = 0; m < M; m += QMM_NA) {
                const int na = M - m < QMM_NA ? (int)(M - m) : QMM_NA;
                p->dot(K, wt, nw, ab + m * p->row_bytes, na, has_min, out, QMM_NW);
                for (int j = 0; j < na; j++)
                    for (int i = 0; i < nw; i++)
                        *(float *)(db + (m + j) * d->nb[1] + (n + i) * d->nb[0]) = out[j * QMM_NW + i];
            }
        }
    }
}

static int64_t qmm_ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

apr_status qmatmul_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *x = &n->src[1], *d = &n->dst;
    const int64_t K = x->ne[0], N = d->ne[0], M = d->ne[1], batches = d->ne[2] * d->ne[3];
    if (N == 0 || M == 0 || batches == 0) return APR_OK;
    if (K == 0) {
        for (int64_t r = 0; r < rows_count(d); r++)
            for (int64_t i = 0; i < N; i++) *(float *)(rows_ptr(d, r) + i * d->nb[0]) = 0.0f;
        return APR_OK;
    }
    qmm_plan p = {.node = n, .be = be, .row_bytes = qk_row_bytes(K)};
    p.dot = be->qpath == NEON_QDOT_I8MM ? qdot_i8mm : be->qpath == NEON_QDOT_DOTPROD ? qdot_dotprod : qdot_plain;
    /* scratch: one row of f32 activations (phase 1), or QMM_NW unpacked weight rows (phase 2) */
    size_t need = (size_t)(K * 4 + 64);
    if ((size_t)(QMM_NW * p.row_bytes) > need) need = (size_t)(QMM_NW * p.row_bytes);
    if (cpu_backend_reserve(be, need) != 0) return msg_set(err, err_size, APR_ERR_NOMEM, "matmul: cannot allocate scratch");
    const int64_t n_act = rows_count(x);
    p.act = malloc((size_t)(n_act * p.row_bytes));
    if (!p.act) return msg_set(err, err_size, APR_ERR_NOMEM, "matmul: cannot allocate %lld activation rows", (long long)n_act);
    cpu_backend_run(be, qmm_act_worker, &p, n_act * K);
    /* weight rows split over workers in whole tiles; tiles (and so results) do not depend on the
     * thread count because chunk starts are multiples of QMM_NW */
    const int nth = be->n_threads;
    int64_t want_n = batches >= nth ? 1 : qmm_ceil(nth, batches);
    p.n_chunk = qmm_ceil(qmm_ceil(N, want_n), QMM_NW) * QMM_NW;
    p.n_units_n = qmm_ceil(N, p.n_chunk);
    p.n_units = batches * p.n_units_n;
    cpu_backend_run(be, qmm_worker, &p, N * M * K * batches / 4);
    free(p.act);
    return APR_OK;
}

/* qmatmul.c — MATMUL with block-type weights: quantize the activation rows once, then tiles of integer dot products split over the workers. */
#include <string.h>

#include "../../common/msg.h"
#include "qmatmul.h"
#include "qpack.h"

/*
 * Prefill: two dispatches per node. First every row of X (all batches) is rounded into an
 * activation row in be->shared (rows split over the workers). Then the units (batch, chunk of
 * weight rows) are split over the workers; a unit walks its weight rows in L2-sized chunks, and
 * within a chunk takes the activation rows QDOT_MAX_NA at a time against QDOT_MAX_NW weight rows
 * at a time, so a tile of activation rows stays in L1 while the chunk's weights stream from L2.
 * Decode (at most QDOT_MAX_NA rows of X in all, several workers): one dispatch; every worker
 * rounds the rows into its own scratch, then walks its own share of the chunks of weight rows
 * (stealing from the others' once done: tpool_steal) and streams each row once. The kernels
 * form each (weight row, activation row) pair the same way whatever the tile or the worker, so
 * results do not depend on the thread count.
 */

typedef void qact_fn(uint32_t wtype, const float *x, int64_t K, void *dst);

typedef struct qmm_plan {
    const apr_node_desc *node;
    cpu_backend *be;
    qact_fn *quant;     /* the activation quantizer of the chosen variant */
    qdot_fn *dot;       /* the weight format's kernel */
    qdot_rows_fn *rows; /* its row-run kernel for nw = 1, or NULL */
    int64_t abytes;     /* bytes of one activation row */
    int64_t n_chunk;    /* weight rows per unit (a multiple of QDOT_MAX_NW) */
    int64_t n_units_n;  /* ceil(N / n_chunk) */
    int64_t n_units;    /* batches * n_units_n */
    int64_t l2_rows;    /* weight rows per L2 chunk (a multiple of QDOT_MAX_NW) */
    int nw;             /* weight rows per kernel call: 1 when one tile of activation rows covers M */
    int own_act;        /* decode: each worker rounds the few activation rows into its own scratch */
    int64_t act_off;    /* where in a worker's scratch its activation rows start (own_act) */
    tpool_steal steal;  /* over the units, when own_act: owned shares with stealing, not a static split */
} qmm_plan;

/* Rounds activation rows [r0, r1) into dst (row r at dst + r * abytes); tmp holds K + 16 floats. */
static void qmm_quant_rows(const qmm_plan *p, long long r0, long long r1, float *tmp, char *dst) {
    const apr_tensor_desc *x = &p->node->src[1];
    const int64_t K = x->ne[0], M = x->ne[1], B2 = x->ne[2];
    for (long long r = r0; r < r1; r++) {
        const int64_t m = r % M, b2 = (r / M) % B2, b3 = r / (M * B2);
        const char *xr = (const char *)x->data + m * x->nb[1] + b2 * x->nb[2] + b3 * x->nb[3];
        const float *xf = (const float *)xr;
        if (x->nb[0] != 4) {
            for (int64_t k = 0; k < K; k++) memcpy(&tmp[k], xr + k * x->nb[0], 4);
            xf = tmp;
        } else if ((uintptr_t)xr % 4) {
            memcpy(tmp, xr, (size_t)K * 4);
            xf = tmp;
        }
        p->quant(p->node->src[0].dtype, xf, K, dst + r * p->abytes);
    }
}

static void qmm_quant_worker(void *ctx, int ith, int nth) {
    const qmm_plan *p = ctx;
    const apr_tensor_desc *x = &p->node->src[1];
    long long r0, r1;
    tpool_split(x->ne[1] * x->ne[2] * x->ne[3], ith, nth, &r0, &r1);
    qmm_quant_rows(p, r0, r1, (float *)p->be->scratch[ith], p->be->shared);
}

/* One unit: batch u / n_units_n, weight rows of chunk u % n_units_n, every activation row. */
static void qmm_unit(const qmm_plan *p, long long u, const char *act, int dense) {
    const apr_tensor_desc *w = &p->node->src[0], *d = &p->node->dst;
    const int64_t K = w->ne[0], N = d->ne[0], M = d->ne[1], B2 = d->ne[2];
    const int64_t r2 = d->ne[2] / w->ne[2], r3 = d->ne[3] / w->ne[3];
    float tile[QDOT_MAX_NA * QDOT_MAX_NW];
    const int64_t un = u % p->n_units_n, b = u / p->n_units_n, b2 = b % B2, b3 = b / B2;
    const char *wb = (const char *)w->data + (b2 / r2) * w->nb[2] + (b3 / r3) * w->nb[3];
    const char *ab = act + b * M * p->abytes;
    char *db = (char *)d->data + b2 * d->nb[2] + b3 * d->nb[3];
    const int64_t n0 = un * p->n_chunk, n1 = n0 + p->n_chunk < N ? n0 + p->n_chunk : N;
    for (int64_t nc = n0; nc < n1; nc += p->l2_rows) {
        const int64_t nc1 = nc + p->l2_rows < n1 ? nc + p->l2_rows : n1;
        for (int64_t m = 0; m < M; m += QDOT_MAX_NA) {
            const int na = M - m < QDOT_MAX_NA ? (int)(M - m) : QDOT_MAX_NA;
            if (p->nw == 1 && p->rows && dense) {
                p->rows(K, wb + nc * w->nb[1], w->nb[1], nc1 - nc, ab + m * p->abytes, p->abytes, na,
                        (float *)(db + m * d->nb[1] + nc * 4), d->nb[1] / 4);
                continue;
            }
            for (int64_t n = nc; n < nc1; n += p->nw) {
                const int nw = nc1 - n < p->nw ? (int)(nc1 - n) : p->nw;
                p->dot(K, wb + n * w->nb[1], w->nb[1], nw, ab + m * p->abytes, p->abytes, na, tile, QDOT_MAX_NW);
                for (int j = 0; j < na; j++)
                    for (int i = 0; i < nw; i++)
                        memcpy(db + (m + j) * d->nb[1] + (n + i) * d->nb[0], &tile[j * QDOT_MAX_NW + i], 4);
            }
        }
    }
}

static void qmm_dot_worker(void *ctx, int ith, int nth) {
    qmm_plan *p = ctx;
    const apr_tensor_desc *d = &p->node->dst;
    /* dst rows of contiguous, aligned floats: row runs write into it directly */
    const int dense = d->nb[0] == 4 && d->nb[1] % 4 == 0 && d->nb[2] % 4 == 0 && d->nb[3] % 4 == 0 &&
                      (uintptr_t)d->data % 4 == 0;
    const char *act = p->be->shared;
    if (p->own_act) {
        const apr_tensor_desc *x = &p->node->src[1];
        char *mine = p->be->scratch[ith] + p->act_off;
        qmm_quant_rows(p, 0, x->ne[1] * x->ne[2] * x->ne[3], (float *)p->be->scratch[ith], mine);
        act = mine;
    }
    long long u0, u1;
    if (p->own_act) {
        while (tpool_steal_next(&p->steal, ith, &u0)) qmm_unit(p, u0, act, dense);
        return;
    }
    tpool_split(p->n_units, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) qmm_unit(p, u, act, dense);
}

static void qmm_zero_worker(void *ctx, int ith, int nth) {
    const apr_tensor_desc *d = &((const qmm_plan *)ctx)->node->dst;
    const int64_t rows = d->ne[1] * d->ne[2] * d->ne[3];
    const float z = 0.0f;
    long long r0, r1;
    tpool_split(rows, ith, nth, &r0, &r1);
    for (long long r = r0; r < r1; r++) {
        char *row = (char *)d->data + (r % d->ne[1]) * d->nb[1] + (r / d->ne[1] % d->ne[2]) * d->nb[2] +
                    (r / (d->ne[1] * d->ne[2])) * d->nb[3];
        for (int64_t n = 0; n < d->ne[0]; n++) memcpy(row + n * d->nb[0], &z, 4);
    }
}

/* Chunks of weight rows per worker in decode, the grain of stealing. */
#define QMM_UNITS 8

static int64_t qmm_ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

apr_status qmatmul_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *w = &n->src[0], *d = &n->dst;
    if (qpack_of(w->buffer)) return qpack_matmul_run(be, n, err, err_size);
    const int64_t K = w->ne[0], N = d->ne[0], M = d->ne[1], batches = d->ne[2] * d->ne[3];
    if (N == 0 || M == 0 || batches == 0) return APR_OK;
    qmm_plan p = {.node = n, .be = be};
    if (K == 0) {
        cpu_backend_run(be, qmm_zero_worker, &p, N * M * batches);
        return APR_OK;
    }
    if (be->qpath == X86_QDOT_VNNI) {
        p.quant = qact_quantize_row_vnni;
        p.dot = qdot_lookup_vnni(w->dtype);
        p.rows = qdot_rows_lookup_vnni(w->dtype);
        p.abytes = qact_row_bytes_vnni(w->dtype, K);
    }
#if APR_X86_LEVEL == 2
    else if (be->qpath == X86_QDOT_AVXVNNI) {
        p.quant = qact_quantize_row_avxvnni;
        p.dot = qdot_lookup_avxvnni(w->dtype);
        p.rows = qdot_rows_lookup_avxvnni(w->dtype);
        p.abytes = qact_row_bytes_avxvnni(w->dtype, K);
    }
#endif
    else {
        p.quant = qact_quantize_row;
        p.dot = qdot_lookup(w->dtype);
        p.rows = qdot_rows_lookup(w->dtype);
        p.abytes = qact_row_bytes(w->dtype, K);
    }
    if (!p.dot || p.abytes <= 0)
        return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "matmul: no kernel for weight dtype %u", w->dtype);
    const int64_t rows = M * batches;
    const int nth = be->n_threads;
    /* Decode: every worker rounds the few activation rows itself (a few microseconds) instead of
     * waiting at a second dispatch, then walks its own share of the chunks of weight rows and
     * steals from the others' once done, so the worker whose stream runs faster takes more (two
     * streams seldom share memory evenly) while each reads one stream (tpool_steal). */
    p.own_act = rows <= QDOT_MAX_NA && nth > 1;
    p.act_off = ((K + 16) * 4 + 63) / 64 * 64;
    const size_t scratch = p.own_act ? (size_t)(p.act_off + rows * p.abytes) : (size_t)(K + 16) * 4;
    if ((!p.own_act && cpu_backend_reserve_shared(be, (size_t)(rows * p.abytes)) != 0) ||
        cpu_backend_reserve(be, scratch) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "matmul: cannot allocate %lld activation rows", (long long)rows);
    if (!p.own_act) cpu_backend_run(be, qmm_quant_worker, &p, rows * K);
    /* weight rows: split so every worker has a share when there are fewer batches than workers */
    const int64_t want_n = p.own_act ? QMM_UNITS * nth : batches >= nth ? 1 : qmm_ceil(nth, batches);
    p.n_chunk = qmm_ceil(qmm_ceil(N, want_n), QDOT_MAX_NW) * QDOT_MAX_NW;
    p.n_units_n = qmm_ceil(N, p.n_chunk);
    p.n_units = batches * p.n_units_n;
    if (p.own_act) tpool_steal_init(&p.steal, p.n_units, nth);
    /* a chunk of weight rows that half of L2 holds, reused by every tile of activation rows */
    const int64_t wrow = w->nb[1] > 0 ? w->nb[1] : 1;
    p.l2_rows = (be->l2_bytes / 2 / wrow) / QDOT_MAX_NW * QDOT_MAX_NW;
    if (p.l2_rows < QDOT_MAX_NW) p.l2_rows = QDOT_MAX_NW;
    /* Decode (M <= QDOT_MAX_NA) reads each weight row once: one row at a time keeps each worker's
     * weights a single sequential stream (the kernel prefetches it ahead), which reads faster
     * than several rows side by side. Larger M reuses each tile of weight rows across the
     * activation tiles. */
    p.nw = M <= QDOT_MAX_NA ? 1 : QDOT_MAX_NW;
    cpu_backend_run(be, qmm_dot_worker, &p, N * M * batches * (K / 8 + 1));
    return APR_OK;
}

apr_status qmatmul_run_group(cpu_backend *be, const apr_node_desc *const *nodes, int n, char *err, size_t err_size) {
    for (int i = 0; i < n;) {
        const int r = qpack_group_len(be, nodes + i, n - i);
        apr_status st = r > 1 ? qpack_matmul_run_group(be, nodes + i, r, err, err_size) : qmatmul_run(be, nodes[i], err, err_size);
        if (st != APR_OK) return st;
        i += r > 1 ? r : 1;
    }
    return APR_OK;
}

/* Only packed weights have a plan, so float weights need no test here (qpack_group_len is 0). */
void qmatmul_prefetch_plan(cpu_backend *be, const apr_node_desc *const *nodes, int n) { qpack_prefetch_plan(be, nodes, n); }

/* matmul.c — MATMUL dispatch: picks GEMV or GEMM per shape and splits (batch, n, m) blocks over the workers. */
#include "matmul.h"

#include "../common/msg.h"
#include "simd_ops.h"
#include "qmatmul.h"

/* The whole node, and how it is cut into units: unit u = (batch, n chunk, m chunk). Each unit
 * computes its outputs the same way whoever runs it, so results do not depend on thread count. */
typedef struct matmul_plan {
    const apr_node_desc *node;
    cpu_backend *be;
    int use_gemv;          /* M <= GEMV_MAX_M and rows contiguous along k */
    int x16;               /* gemv of f16 W: each worker rounds X to f16 in its scratch first */
    int64_t n_chunk;       /* columns per unit */
    int64_t m_chunk;       /* rows per unit */
    int64_t n_units_n;     /* ceil(N / n_chunk) */
    int64_t n_units_m;     /* ceil(M / m_chunk) */
    int64_t n_units;       /* batches * n_units_n * n_units_m */
} matmul_plan;

static void matmul_worker(void *ctx, int ith, int nth) {
    const matmul_plan *p = ctx;
    const apr_tensor_desc *w = &p->node->src[0], *x = &p->node->src[1], *d = &p->node->dst;
    const int64_t N = d->ne[0], M = d->ne[1], B2 = d->ne[2];
    const int64_t r2 = d->ne[2] / w->ne[2], r3 = d->ne[3] / w->ne[3];
    long long u0, u1;
    tpool_split(p->n_units, ith, nth, &u0, &u1);
    int64_t x16_batch = -1; /* the batch whose X rows scratch holds in f16 */
    int x16_ok = 0;
    for (long long u = u0; u < u1; u++) {
        int64_t um = u % p->n_units_m, un = (u / p->n_units_m) % p->n_units_n;
        int64_t b = u / (p->n_units_m * p->n_units_n), b2 = b % B2, b3 = b / B2;
        mm_slice s = {
            .w = (const char *)w->data + (b2 / r2) * w->nb[2] + (b3 / r3) * w->nb[3],
            .wnb0 = w->nb[0], .wnb1 = w->nb[1], .wtype = w->dtype,
            .x = (const char *)x->data + b2 * x->nb[2] + b3 * x->nb[3],
            .xnb0 = x->nb[0], .xnb1 = x->nb[1],
            .d = (char *)d->data + b2 * d->nb[2] + b3 * d->nb[3],
            .dnb0 = d->nb[0], .dnb1 = d->nb[1],
            .K = w->ne[0],
            .n0 = un * p->n_chunk, .m0 = um * p->m_chunk,
        };
        s.n1 = s.n0 + p->n_chunk < N ? s.n0 + p->n_chunk : N;
        s.m1 = s.m0 + p->m_chunk < M ? s.m0 + p->m_chunk : M;
        if (s.K == 0) {
            for (int64_t m = s.m0; m < s.m1; m++)
                for (int64_t n = s.n0; n < s.n1; n++) *(float *)(s.d + m * s.dnb1 + n * s.dnb0) = 0.0f;
        } else if (p->use_gemv) {
            if (p->x16) {
                uint16_t *x16 = (uint16_t *)p->be->scratch[ith];
                if (x16_batch != b) x16_ok = gemv_round_x16(&s, x16);
                x16_batch = b;
                s.x16 = x16_ok ? x16 : NULL;
            }
            gemv_slice(&s);
        } else {
            gemm_slice(&s, (float *)p->be->scratch[ith]);
        }
    }
}

static int64_t matmul_ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

apr_status matmul_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *w = &n->src[0], *x = &n->src[1], *d = &n->dst;
    if (w->dtype != APR_F32 && w->dtype != APR_F16 && w->dtype != APR_BF16) return qmatmul_run(be, n, err, err_size);
    const int64_t N = d->ne[0], M = d->ne[1], batches = d->ne[2] * d->ne[3];
    if (N == 0 || M == 0 || batches == 0) return APR_OK;
    const int nth = be->n_threads;
    matmul_plan p = {.node = n, .be = be};
    p.use_gemv = M <= GEMV_MAX_M && w->nb[0] == (w->dtype == APR_F32 ? 4 : 2) && x->nb[0] == 4;
    if (!p.use_gemv && cpu_backend_reserve(be, (size_t)GEMM_SCRATCH_FLOATS * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "matmul: cannot allocate packing buffers");
    /* f16 W in decode: X rounded to f16 once per worker halves the X bytes every W row re-reads,
     * which keeps them in L1 beside the W stream. The conformance bound for f16 matmul admits
     * this rounding, as llama.cpp's f16 dot products do; X past f16's range keeps f32. */
    p.x16 = p.use_gemv && w->dtype == APR_F16 && w->ne[0] > 0;
    if (p.x16 && cpu_backend_reserve(be, (size_t)(M * w->ne[0]) * sizeof(uint16_t)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "matmul: cannot allocate the f16 copy of X");
    /* Columns first: splitting n keeps each worker streaming its own part of W. Chunks are whole
     * multiples of 64 columns so tiles (and cache lines of dst) never straddle two workers. */
    int64_t want_n = batches >= nth ? 1 : matmul_ceil(nth, batches);
    p.n_chunk = matmul_ceil(matmul_ceil(N, want_n), 64) * 64;
    p.n_units_n = matmul_ceil(N, p.n_chunk);
    /* Too few units for the workers (small N, large M): split rows too, in whole register tiles. */
    int64_t have = batches * p.n_units_n;
    int64_t want_m = have >= nth || p.use_gemv ? 1 : matmul_ceil(nth, have);
    p.m_chunk = matmul_ceil(matmul_ceil(M, want_m), GEMM_MR) * GEMM_MR;
    p.n_units_m = matmul_ceil(M, p.m_chunk);
    p.n_units = batches * p.n_units_n * p.n_units_m;
    cpu_backend_dispatch(be, matmul_worker, &p);
    return APR_OK;
}

apr_status matmul_run_group(cpu_backend *be, const apr_node_desc *const *nodes, int n, char *err, size_t err_size) {
#ifdef QMATMUL_HAS_GROUP
    int blocks = n > 1;
    for (int i = 0; i < n && blocks; i++) {
        const uint32_t t = nodes[i]->src[0].dtype;
        blocks = t != APR_F32 && t != APR_F16 && t != APR_BF16;
    }
    if (blocks) return qmatmul_run_group(be, nodes, n, err, err_size);
#endif
    for (int i = 0; i < n; i++) {
        apr_status st = matmul_run(be, nodes[i], err, err_size);
        if (st != APR_OK) return st;
    }
    return APR_OK;
}

void matmul_prefetch_plan(cpu_backend *be, const apr_node_desc *const *nodes, int n) {
#ifdef QMATMUL_HAS_GROUP
    qmatmul_prefetch_plan(be, nodes, n);
#else
    (void)be, (void)nodes, (void)n;
#endif
}

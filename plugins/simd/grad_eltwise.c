/* grad_eltwise.c — the element-wise gradient ops: SILU_GRAD, GELU_GRAD, ACC (in place) and SUM_REPEATS (the repeat's sum). */
#include <string.h>

#include "../common/msg.h"
#include "../common/opcheck.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec_math.h"

typedef struct grad_eltwise_job {
    const apr_node_desc *n;
    cpu_backend *be;
} grad_eltwise_job;

/* ---------------------------------------------------------------- SILU_GRAD, GELU_GRAD */

/* dY * s * (1 + x (1 - s)), s = 1 / (1 + e^-x). */
static inline __attribute__((always_inline)) vec_t grad_silu(vec_t x, vec_t dy) {
    const vec_t one = vec_set1(1.0f);
    vec_t s = vec_div(one, vec_add(one, vec_exp(vec_sub(vec_zero(), x))));
    return vec_mul(vec_mul(dy, s), vec_fma(x, vec_sub(one, s), one));
}

/* dY * gelu'(x). With a = 1 / (1 + e^(2u)): 1 + t = 2 (1 - a) and 1 - t^2 = 4 a (1 - a), so
 * gelu'(x) = (1 - a) + 2 c x a (1 - a) (1 + 3 * 0.044715 x^2), with no cancellation where t nears +-1. */
static inline __attribute__((always_inline)) vec_t grad_gelu(vec_t x, vec_t dy) {
    const float c = 0.7978845608028654f;
    const vec_t one = vec_set1(1.0f);
    vec_t x2 = vec_mul(x, x);
    vec_t u2 = vec_mul(vec_set1(2.0f * c), vec_fma(vec_mul(x2, x), vec_set1(0.044715f), x));
    vec_t a = vec_div(one, vec_add(one, vec_exp(u2)));
    vec_t oma = vec_sub(one, a);
    vec_t poly = vec_fma(x2, vec_set1(3.0f * 0.044715f), one);
    vec_t g = vec_fma(vec_mul(vec_mul(vec_set1(2.0f * c), x), vec_mul(a, oma)), poly, oma);
    return vec_mul(dy, g);
}

static inline __attribute__((always_inline)) void grad_act_row(uint32_t op, float *y, const float *x, const float *dy, int64_t len) {
    int64_t i = 0;
    for (; i + VEC_W <= len; i += VEC_W) {
        vec_t vx = vec_load(x + i), vd = vec_load(dy + i);
        vec_store(y + i, op == APR_OP_SILU_GRAD ? grad_silu(vx, vd) : grad_gelu(vx, vd));
    }
    if (i < len) {
        int r = (int)(len - i);
        vec_t vx = vec_loadn(x + i, r), vd = vec_loadn(dy + i, r);
        vec_storen(y + i, op == APR_OP_SILU_GRAD ? grad_silu(vx, vd) : grad_gelu(vx, vd), r);
    }
}

static void grad_eltwise_worker(void *ctx, int ith, int nth) {
    const grad_eltwise_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *a = &n->src[0], *b = &n->src[1], *d = &n->dst;
    const int64_t len = d->ne[0];
    float *ta = (float *)j->be->scratch[ith], *tb = ta + len, *td = tb + len;
    long long r0, r1;
    tpool_split(rows_count(d), ith, nth, &r0, &r1);
    for (long long r = r0; r < r1; r++) {
        int64_t i1, i2, i3;
        rows_index(d, r, &i1, &i2, &i3);
        const float *x = rows_f32(rows_at(a, i1, i2, i3), len, a->nb[0], APR_F32, ta);
        const float *dy = rows_f32(rows_at(b, i1, i2, i3), len, b->nb[0], APR_F32, tb);
        char *drow = rows_at(d, i1, i2, i3);
        float *y = d->nb[0] == 4 ? (float *)drow : td;
        if (n->op == APR_OP_SILU_GRAD) grad_act_row(APR_OP_SILU_GRAD, y, x, dy, len);
        else grad_act_row(APR_OP_GELU_GRAD, y, x, dy, len);
        if (y == td) rows_store_f32(drow, td, len, d->nb[0], APR_F32);
    }
}

apr_status grad_eltwise_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *d = &n->dst;
    if (rows_count(d) == 0 || d->ne[0] == 0) return APR_OK;
    if (cpu_backend_reserve(be, (size_t)(3 * d->ne[0] + 16) * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "%s: cannot allocate scratch", n->op == APR_OP_SILU_GRAD ? "silu_grad" : "gelu_grad");
    grad_eltwise_job j = {n, be};
    cpu_backend_run(be, grad_eltwise_worker, &j, rows_count(d) * d->ne[0] * 3);
    return APR_OK;
}

/* ---------------------------------------------------------------- ACC */

/* Rows are cut into chunks so that one long row (a 1-D gradient) still spreads over every worker. */
#define ACC_CHUNK 4096

typedef struct acc_job {
    const apr_node_desc *n;
    int64_t chunks_per_row, n_chunks;
} acc_job;

static void acc_worker(void *ctx, int ith, int nth) {
    const acc_job *j = ctx;
    const apr_tensor_desc *ta = &j->n->src[0], *tb = &j->n->src[1];
    long long c0, c1;
    tpool_split(j->n_chunks, ith, nth, &c0, &c1);
    for (long long c = c0; c < c1; c++) {
        const int64_t r = c / j->chunks_per_row, at = c % j->chunks_per_row * ACC_CHUNK;
        const int64_t len = ta->ne[0] - at < ACC_CHUNK ? ta->ne[0] - at : ACC_CHUNK;
        rows_add_f32(rows_ptr(ta, r) + at * ta->nb[0], ta->nb[0], rows_ptr(tb, r) + at * tb->nb[0], tb->nb[0], len);
    }
}

apr_status acc_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    (void)err, (void)err_size;
    const apr_tensor_desc *a = &n->src[0];
    if (a->ne[0] == 0 || rows_count(a) == 0) return APR_OK;
    acc_job j = {.n = n};
    j.chunks_per_row = (a->ne[0] + ACC_CHUNK - 1) / ACC_CHUNK;
    j.n_chunks = j.chunks_per_row * rows_count(a);
    cpu_backend_run(be, acc_worker, &j, 2 * a->ne[0] * rows_count(a));
    return APR_OK;
}

/* ---------------------------------------------------------------- SUM_REPEATS */

/*
 * dst [B0..B3] from a [A0..A3], Q_d = A_d / B_d repeats per dim. dst row j (j1, j2, j3) sums the
 * R = Q1 Q2 Q3 rows of a at (j1 + q1 B1, ...), each folded along dim 0 (Q0 pieces of B0). The
 * reduction of one dst row is the sequence of "items" (row rr < R, piece q0 < Q0): L = R * Q0 items.
 * Units are (dst row, chunk of SR_COLS dst columns, slice of the items); when there are few dst
 * units (a bias gradient [D] of [D, T], a total of everything), the items are cut into S slices
 * whose partial sums land in shared scratch and are added in slice order afterwards. S depends on
 * the shape only, so every element is summed in the same order whatever the thread count.
 */
#define SR_COLS 1024
#define SR_UNITS 64         /* dst units at which no slicing of the reduction is needed */
#define SR_SLICE_WORK 32768 /* elements of a per slice, at least */

typedef struct sum_repeats_job {
    const apr_node_desc *n;
    int64_t q[APR_MAX_DIMS]; /* repeats per dim */
    int64_t rows_d;          /* dst rows */
    int64_t n_cols;          /* column chunks per dst row */
    int64_t slices;          /* S */
    int64_t n_units;         /* rows_d * n_cols * slices */
    float *partial;          /* [S][rows_d][B0] when S > 1 */
} sum_repeats_job;

/* acc[0..w) += the w elements at p, nb0 bytes apart. */
static void sr_add(float *acc, const char *p, int64_t nb0, int64_t w) {
    int64_t i = 0;
    if (nb0 == 4) {
        const float *x = (const float *)p;
        for (; i + VEC_W <= w; i += VEC_W) vec_store(acc + i, vec_add(vec_load(acc + i), vec_load(x + i)));
        if (i < w) vec_storen(acc + i, vec_add(vec_loadn(acc + i, (int)(w - i)), vec_loadn(x + i, (int)(w - i))), (int)(w - i));
        return;
    }
    for (; i < w; i++) {
        float x;
        memcpy(&x, p + i * nb0, 4);
        acc[i] += x;
    }
}

/* The sum of cnt elements nb0 bytes apart. */
static float sr_sum(const char *p, int64_t nb0, int64_t cnt) {
    int64_t i = 0;
    if (nb0 == 4) {
        const float *x = (const float *)p;
        vec_t s0 = vec_zero(), s1 = vec_zero();
        for (; i + 2 * VEC_W <= cnt; i += 2 * VEC_W) {
            s0 = vec_add(s0, vec_load(x + i));
            s1 = vec_add(s1, vec_load(x + i + VEC_W));
        }
        for (; i < cnt; i += VEC_W) s0 = vec_add(s0, vec_loadn(x + i, cnt - i < VEC_W ? (int)(cnt - i) : VEC_W));
        return vec_hsum(vec_add(s0, s1));
    }
    float s = 0.0f;
    for (; i < cnt; i++) {
        float x;
        memcpy(&x, p + i * nb0, 4);
        s += x;
    }
    return s;
}

static void sum_repeats_worker(void *ctx, int ith, int nth) {
    const sum_repeats_job *j = ctx;
    const apr_tensor_desc *a = &j->n->src[0], *d = &j->n->dst;
    const int64_t B0 = d->ne[0], Q0 = j->q[0], R = j->q[1] * j->q[2] * j->q[3], L = R * Q0;
    long long u0, u1;
    tpool_split(j->n_units, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t s = u % j->slices, c = (u / j->slices) % j->n_cols, jr = u / (j->slices * j->n_cols);
        int64_t j1, j2, j3;
        rows_index(d, jr, &j1, &j2, &j3);
        const int64_t c0 = c * SR_COLS, w = B0 - c0 < SR_COLS ? B0 - c0 : SR_COLS;
        float buf[SR_COLS];
        float *out = j->slices > 1 ? j->partial + (s * j->rows_d + jr) * B0 + c0 : buf;
        memset(out, 0, (size_t)w * sizeof(float));
        const int64_t it0 = L * s / j->slices, it1 = L * (s + 1) / j->slices;
        for (int64_t it = it0; it < it1;) {
            const int64_t rr = it / Q0, q0 = it % Q0;
            const int64_t q1 = rr % j->q[1], q2 = rr / j->q[1] % j->q[2], q3 = rr / (j->q[1] * j->q[2]);
            const char *row = rows_at(a, j1 + q1 * d->ne[1], j2 + q2 * d->ne[2], j3 + q3 * d->ne[3]);
            const int64_t qe = Q0 < q0 + (it1 - it) ? Q0 : q0 + (it1 - it); /* pieces of this row in the slice */
            if (B0 == 1) out[0] += sr_sum(row + q0 * a->nb[0], a->nb[0], qe - q0);
            else
                for (int64_t qq = q0; qq < qe; qq++) sr_add(out, row + (qq * B0 + c0) * a->nb[0], a->nb[0], w);
            it += qe - q0;
        }
        if (j->slices == 1) {
            char *drow = rows_at(d, j1, j2, j3) + c0 * d->nb[0];
            rows_store_f32(drow, out, w, d->nb[0], APR_F32);
        }
    }
}

/* The slices' partial sums added in slice order into dst. */
static void sum_repeats_gather(void *ctx, int ith, int nth) {
    const sum_repeats_job *j = ctx;
    const apr_tensor_desc *d = &j->n->dst;
    const int64_t B0 = d->ne[0];
    long long r0, r1;
    tpool_split(j->rows_d, ith, nth, &r0, &r1);
    for (long long r = r0; r < r1; r++) {
        char *drow = rows_ptr(d, r);
        for (int64_t i = 0; i < B0; i++) {
            float s = j->partial[r * B0 + i];
            for (int64_t k = 1; k < j->slices; k++) s += j->partial[(k * j->rows_d + r) * B0 + i];
            memcpy(drow + i * d->nb[0], &s, 4);
        }
    }
}

apr_status sum_repeats_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *a = &n->src[0], *d = &n->dst;
    sum_repeats_job j = {.n = n};
    for (int i = 0; i < APR_MAX_DIMS; i++) j.q[i] = d->ne[i] ? a->ne[i] / d->ne[i] : 0;
    j.rows_d = rows_count(d);
    if (j.rows_d == 0 || d->ne[0] == 0) return APR_OK;
    j.n_cols = (d->ne[0] + SR_COLS - 1) / SR_COLS;
    const int64_t dst_units = j.rows_d * j.n_cols, total = opcheck_nelements(a);
    j.slices = 1;
    if (dst_units < SR_UNITS) {
        int64_t by_work = total / SR_SLICE_WORK, by_units = (SR_UNITS + dst_units - 1) / dst_units;
        j.slices = by_work < by_units ? by_work : by_units;
        if (j.slices < 1) j.slices = 1;
        const int64_t L = j.q[0] * j.q[1] * j.q[2] * j.q[3];
        if (j.slices > L) j.slices = L > 0 ? L : 1;
    }
    if (j.slices > 1) {
        if (cpu_backend_reserve_shared(be, (size_t)(j.slices * j.rows_d * d->ne[0]) * sizeof(float)) != 0)
            return msg_set(err, err_size, APR_ERR_NOMEM, "sum_repeats: cannot allocate scratch");
        j.partial = (float *)be->shared;
    }
    j.n_units = dst_units * j.slices;
    cpu_backend_run(be, sum_repeats_worker, &j, total + j.rows_d * d->ne[0]);
    if (j.slices > 1) cpu_backend_run(be, sum_repeats_gather, &j, j.slices * j.rows_d * d->ne[0]);
    return APR_OK;
}

/* grad_row.c — the row-wise gradient ops: RMS_NORM_GRAD, SOFTMAX_GRAD, ROPE_GRAD (ROPE turned backwards) and GET_ROWS_GRAD (a scatter-add). */
#include <math.h>
#include <string.h>

#include "../common/msg.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec.h"

typedef struct grad_row_job {
    const apr_node_desc *n;
    cpu_backend *be;
} grad_row_job;

/* ---------------------------------------------------------------- RMS_NORM_GRAD, SOFTMAX_GRAD */

/* sum x[i] * y[i] over len, in two vector chains. */
static float grad_row_dot(const float *x, const float *y, int64_t len) {
    vec_t s0 = vec_zero(), s1 = vec_zero();
    int64_t i = 0;
    for (; i + 2 * VEC_W <= len; i += 2 * VEC_W) {
        s0 = vec_fma(vec_load(x + i), vec_load(y + i), s0);
        s1 = vec_fma(vec_load(x + i + VEC_W), vec_load(y + i + VEC_W), s1);
    }
    for (; i < len; i += VEC_W) {
        int r = len - i < VEC_W ? (int)(len - i) : VEC_W;
        s0 = vec_fma(vec_loadn(x + i, r), vec_loadn(y + i, r), s0);
    }
    return vec_hsum(vec_add(s0, s1));
}

/* out = a * u + b * v element-wise (u, v rows; a, b scalars). */
static void grad_row_axpby(float *out, float a, const float *u, float b, const float *v, int64_t len) {
    const vec_t va = vec_set1(a), vb = vec_set1(b);
    int64_t i = 0;
    for (; i + VEC_W <= len; i += VEC_W) vec_store(out + i, vec_fma(va, vec_load(u + i), vec_mul(vb, vec_load(v + i))));
    if (i < len) {
        int r = (int)(len - i);
        vec_storen(out + i, vec_fma(va, vec_loadn(u + i, r), vec_mul(vb, vec_loadn(v + i, r))), r);
    }
}

/* RMS_NORM_GRAD of a short row, all in double: there one element can carry most of the mean, and
 * r dY - x r^3 mean(x dY) then cancels to a few bits in f32 (a row of one element keeps none). */
#define GRAD_ROW_SHORT 32
static void grad_row_rms_short(float *y, const float *x, const float *dy, int64_t len, float eps) {
    double sxx = 0.0, sxd = 0.0;
    for (int64_t i = 0; i < len; i++) sxx += (double)x[i] * x[i], sxd += (double)x[i] * dy[i];
    const double r = 1.0 / sqrt(sxx / (double)len + (double)eps), c = r * r * sxd / (double)len;
    for (int64_t i = 0; i < len; i++) y[i] = (float)(r * ((double)dy[i] - (double)x[i] * c));
}

static void grad_row_worker(void *ctx, int ith, int nth) {
    const grad_row_job *j = ctx;
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
        if (n->op == APR_OP_RMS_NORM_GRAD && len <= GRAD_ROW_SHORT) {
            grad_row_rms_short(y, x, dy, len, n->fparams[0]);
        } else if (n->op == APR_OP_RMS_NORM_GRAD) {
            /* dX = r dY - x r^3 mean(x dY), r = 1 / sqrt(mean(x^2) + eps): the definition with y = x r
             * folded in; the means and r in double as rms_norm takes them */
            const double ms = (double)grad_row_dot(x, x, len) / (double)len;
            const double rr = 1.0 / sqrt(ms + (double)n->fparams[0]);
            const double mxd = (double)grad_row_dot(x, dy, len) / (double)len;
            grad_row_axpby(y, (float)rr, dy, (float)(-rr * rr * rr * mxd), x, len);
        } else {
            /* scale * y * (dY - y.dY) */
            const float dot = grad_row_dot(x, dy, len), scale = n->fparams[0];
            const vec_t vdot = vec_set1(dot), vs = vec_set1(scale);
            int64_t i = 0;
            for (; i + VEC_W <= len; i += VEC_W)
                vec_store(y + i, vec_mul(vec_mul(vs, vec_load(x + i)), vec_sub(vec_load(dy + i), vdot)));
            if (i < len) {
                int rem = (int)(len - i);
                vec_storen(y + i, vec_mul(vec_mul(vs, vec_loadn(x + i, rem)), vec_sub(vec_loadn(dy + i, rem), vdot)), rem);
            }
        }
        if (y == td) rows_store_f32(drow, td, len, d->nb[0], APR_F32);
    }
}

apr_status grad_row_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *d = &n->dst;
    if (rows_count(d) == 0 || d->ne[0] == 0) return APR_OK;
    if (cpu_backend_reserve(be, (size_t)(3 * d->ne[0] + 16) * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "%s: cannot allocate scratch",
                       n->op == APR_OP_RMS_NORM_GRAD ? "rms_norm_grad" : "softmax_grad");
    grad_row_job j = {n, be};
    cpu_backend_run(be, grad_row_worker, &j, rows_count(d) * d->ne[0] * 3);
    return APR_OK;
}

/* ---------------------------------------------------------------- ROPE_GRAD */

/* The transposed rotation is the rotation by -theta, and theta is linear in ROPE's position scale:
 * ROPE's kernel with the scale negated computes exactly cos(theta) and -sin(theta) (cos is even and
 * sin odd, bit for bit), so rope_run serves both. Only the fields of a v3 node are copied: rope_run
 * reads no others. */
apr_status rope_grad_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    apr_node_desc t;
    memset(&t, 0, sizeof t);
    memcpy(&t, n, APR_NODE_DESC_SIZE_V3);
    t.struct_size = (uint32_t)APR_NODE_DESC_SIZE_V3;
    t.op = APR_OP_ROPE;
    t.fparams[1] = -n->fparams[1];
    return rope_run(be, &t, err, err_size);
}

/* ---------------------------------------------------------------- GET_ROWS_GRAD */

/*
 * dst [D, R]: row r = the sum of the dY rows whose id is r, added in the order of n. Units are
 * (block of dst rows, chunk of GRG_COLS columns); each zeroes its part of dst and walks every id,
 * adding the rows that land in it. Ids are N integers against D * N additions, so every unit
 * reading them all costs little, and every element is summed in id order whatever the split.
 */
#define GRG_COLS 512

typedef struct get_rows_grad_job {
    const apr_node_desc *n;
    int64_t row_blocks, n_cols, n_units;
} get_rows_grad_job;

static void get_rows_grad_worker(void *ctx, int ith, int nth) {
    const get_rows_grad_job *j = ctx;
    const apr_tensor_desc *dy = &j->n->src[0], *ids = &j->n->src[1], *d = &j->n->dst;
    const int64_t D = d->ne[0], R = d->ne[1], N = ids->ne[0];
    long long u0, u1;
    tpool_split(j->n_units, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t c = u % j->n_cols, rb = u / j->n_cols;
        const int64_t c0 = c * GRG_COLS, w = D - c0 < GRG_COLS ? D - c0 : GRG_COLS;
        const int64_t ra = R * rb / j->row_blocks, re = R * (rb + 1) / j->row_blocks;
        const float zero = 0.0f;
        for (int64_t r = ra; r < re; r++) {
            char *drow = (char *)d->data + r * d->nb[1] + c0 * d->nb[0];
            if (d->nb[0] == 4) memset(drow, 0, (size_t)w * 4);
            else
                for (int64_t i = 0; i < w; i++) memcpy(drow + i * d->nb[0], &zero, 4);
        }
        for (int64_t k = 0; k < N; k++) {
            int32_t id;
            memcpy(&id, (const char *)ids->data + k * ids->nb[0], 4); /* checked by get_rows_grad_run */
            if (id < ra || id >= re) continue;
            char *drow = (char *)d->data + (int64_t)id * d->nb[1] + c0 * d->nb[0];
            const char *srow = (const char *)dy->data + k * dy->nb[1] + c0 * dy->nb[0];
            rows_add_f32(drow, d->nb[0], srow, dy->nb[0], w);
        }
    }
}

apr_status get_rows_grad_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *ids = &n->src[1], *d = &n->dst;
    const int64_t R = d->ne[1];
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        int32_t id;
        memcpy(&id, (const char *)ids->data + i * ids->nb[0], 4);
        if (id < 0 || id >= R)
            return msg_set(err, err_size, APR_ERR_INVALID, "get_rows_grad: id %d at %lld outside [0, %lld)", id, (long long)i,
                           (long long)R);
    }
    if (d->ne[0] == 0 || R == 0) return APR_OK;
    get_rows_grad_job j = {.n = n};
    j.n_cols = (d->ne[0] + GRG_COLS - 1) / GRG_COLS;
    /* enough row blocks that ids bunched on a few rows still leave every worker something */
    j.row_blocks = R < 4 * (int64_t)be->n_threads ? R : 4 * (int64_t)be->n_threads;
    j.n_units = j.row_blocks * j.n_cols;
    cpu_backend_run(be, get_rows_grad_worker, &j, d->ne[0] * (R + ids->ne[0]));
    return APR_OK;
}

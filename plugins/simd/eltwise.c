/* eltwise.c — ADD, MUL (with repeat of src1), SCALE, SILU, GELU, SWIGLU over rows, any strides. */
#include "../common/msg.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec_math.h"

typedef struct eltwise_job {
    const apr_node_desc *n;
    cpu_backend *be;
} eltwise_job;

/* y[0..len) = f(a, b) for the binary ops, b contiguous with the same length. */
static void eltwise_binary(uint32_t op, float *y, const float *a, const float *b, int64_t len) {
    int64_t i = 0;
    for (; i + VEC_W <= len; i += VEC_W) {
        vec_t va = vec_load(a + i), vb = vec_load(b + i);
        vec_store(y + i, op == APR_OP_ADD ? vec_add(va, vb) : op == APR_OP_MUL ? vec_mul(va, vb) : vec_mul(vec_silu(va), vb));
    }
    if (i < len) {
        int r = (int)(len - i);
        vec_t va = vec_loadn(a + i, r), vb = vec_loadn(b + i, r);
        vec_storen(y + i, op == APR_OP_ADD ? vec_add(va, vb) : op == APR_OP_MUL ? vec_mul(va, vb) : vec_mul(vec_silu(va), vb), r);
    }
}

static inline __attribute__((always_inline)) vec_t eltwise_f(uint32_t op, vec_t x, vec_t s) {
    if (op == APR_OP_SCALE) return vec_mul(x, s);
    if (op == APR_OP_SILU) return vec_silu(x);
    return vec_gelu(x);
}

static inline __attribute__((always_inline)) void eltwise_unary_op(uint32_t op, float *y, const float *a, int64_t len, float s) {
    vec_t vs = vec_set1(s);
    int64_t i = 0;
    for (; i + VEC_W <= len; i += VEC_W) vec_store(y + i, eltwise_f(op, vec_load(a + i), vs));
    if (i < len) vec_storen(y + i, eltwise_f(op, vec_loadn(a + i, (int)(len - i)), vs), (int)(len - i));
}

static void eltwise_unary(uint32_t op, float *y, const float *a, int64_t len, float s) {
    if (op == APR_OP_SCALE) eltwise_unary_op(APR_OP_SCALE, y, a, len, s);
    else if (op == APR_OP_SILU) eltwise_unary_op(APR_OP_SILU, y, a, len, s);
    else eltwise_unary_op(APR_OP_GELU, y, a, len, s);
}

static void eltwise_worker(void *ctx, int ith, int nth) {
    const eltwise_job *j = ctx;
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
        char *drow = rows_at(d, i1, i2, i3);
        float *y = d->nb[0] == 4 ? (float *)drow : td;
        switch (n->op) {
        case APR_OP_ADD:
        case APR_OP_MUL: {
            const int64_t blen = b->ne[0];
            const float *xb = rows_f32(rows_at(b, i1 % b->ne[1], i2 % b->ne[2], i3 % b->ne[3]), blen, b->nb[0], APR_F32, tb);
            if (blen == 1) {
                /* a scalar per row (bias/scale by a broadcast column) */
                vec_t vb = vec_set1(xb[0]);
                int64_t i = 0;
                for (; i + VEC_W <= len; i += VEC_W)
                    vec_store(y + i, n->op == APR_OP_ADD ? vec_add(vec_load(x + i), vb) : vec_mul(vec_load(x + i), vb));
                for (; i < len; i++) y[i] = n->op == APR_OP_ADD ? x[i] + xb[0] : x[i] * xb[0];
            } else {
                for (int64_t i = 0; i < len; i += blen) eltwise_binary(n->op, y + i, x + i, xb, blen);
            }
            break;
        }
        case APR_OP_SWIGLU: {
            const float *xb = rows_f32(rows_at(b, i1, i2, i3), len, b->nb[0], APR_F32, tb);
            eltwise_binary(APR_OP_SWIGLU, y, x, xb, len);
            break;
        }
        default: eltwise_unary(n->op, y, x, len, n->fparams[0]); break;
        }
        if (y == td) rows_store_f32(drow, td, len, d->nb[0], APR_F32);
    }
}

apr_status eltwise_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *d = &n->dst;
    int64_t rows = rows_count(d);
    if (rows == 0 || d->ne[0] == 0) return APR_OK;
    if (cpu_backend_reserve(be, (size_t)(3 * d->ne[0] + 16) * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "eltwise: cannot allocate scratch");
    eltwise_job j = {n, be};
    /* silu/gelu cost more per element than add/mul: parallelise them a little earlier, but a
     * decode row of an FFN stays on the caller, where a dispatch costs more than the work. */
    int64_t weight = n->op == APR_OP_GELU || n->op == APR_OP_SILU || n->op == APR_OP_SWIGLU ? 2 : 1;
    cpu_backend_run(be, eltwise_worker, &j, rows * d->ne[0] * weight);
    return APR_OK;
}

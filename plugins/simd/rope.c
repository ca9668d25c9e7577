/* rope.c — ROPE (adjacent-pair and split-half layouts): angles in double once per token, rotation vectorised. */
#include <math.h>
#include <string.h>

#include "../common/msg.h"
#include "../common/cpu_supports.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec.h"

typedef struct rope_job {
    const apr_node_desc *n;
    cpu_backend *be;
} rope_job;

/* Scratch layout per worker: cs[n_rot], sn[n_rot] (see rope_angles), then two rows of D. */
static void rope_angles(const apr_node_desc *n, int64_t t, float *cs, float *sn) {
    const int n_rot = n->iparams[0], layout = n->iparams[1];
    const double base = n->fparams[0], scale = n->fparams[1];
    int32_t pos;
    memcpy(&pos, (const char *)n->src[1].data + t * n->src[1].nb[0], 4);
    const int has_ff = cpu_supports_has_src(n, 2);
    for (int i = 0; i < n_rot / 2; i++) {
        double theta = (double)pos * scale * pow(base, -2.0 * i / n_rot);
        if (has_ff) {
            float ff;
            memcpy(&ff, (const char *)n->src[2].data + i * n->src[2].nb[0], 4);
            theta /= ff;
        }
        float c = (float)cos(theta), s = (float)sin(theta);
        if (layout == 0) { /* interleaved so that y = x * cs + swap_pairs(x) * sn */
            cs[2 * i] = cs[2 * i + 1] = c;
            sn[2 * i] = -s;
            sn[2 * i + 1] = s;
        } else {
            cs[i] = c;
            sn[i] = s;
        }
    }
}

static void rope_row(const apr_node_desc *n, float *y, const float *x, int64_t D, const float *cs, const float *sn) {
    const int n_rot = n->iparams[0];
    int64_t i = 0;
    if (n->iparams[1] == 0) {
        /* VEC_W and n_rot are even, so a vector (or a tail) never splits a pair */
        for (; i + VEC_W <= n_rot; i += VEC_W) {
            vec_t v = vec_load(x + i);
            vec_store(y + i, vec_fma(v, vec_load(cs + i), vec_mul(vec_swap_pairs(v), vec_load(sn + i))));
        }
        if (i < n_rot) {
            int r = (int)(n_rot - i);
            vec_t v = vec_loadn(x + i, r);
            vec_storen(y + i, vec_fma(v, vec_loadn(cs + i, r), vec_mul(vec_swap_pairs(v), vec_loadn(sn + i, r))), r);
        }
    } else {
        const int h = n_rot / 2;
        for (; i < h; i += VEC_W) {
            int r = h - i < VEC_W ? (int)(h - i) : VEC_W;
            vec_t a = vec_loadn(x + i, r), b = vec_loadn(x + i + h, r);
            vec_t c = vec_loadn(cs + i, r), s = vec_loadn(sn + i, r);
            vec_t ya = vec_fma(a, c, vec_mul(vec_sub(vec_zero(), b), s));
            vec_t yb = vec_fma(a, s, vec_mul(b, c));
            vec_storen(y + i, ya, r);
            vec_storen(y + i + h, yb, r);
        }
    }
    if (y != x && D > n_rot) memmove(y + n_rot, x + n_rot, (size_t)(D - n_rot) * 4);
}

static void rope_worker(void *ctx, int ith, int nth) {
    const rope_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *a = &n->src[0], *d = &n->dst;
    const int64_t D = d->ne[0], H = d->ne[1];
    const int n_rot = n->iparams[0];
    float *cs = (float *)j->be->scratch[ith], *sn = cs + n_rot + VEC_W, *tx = sn + n_rot + VEC_W, *ty = tx + D;
    long long r0, r1;
    tpool_split(H * d->ne[2], ith, nth, &r0, &r1);
    int64_t have_t = -1;
    for (long long r = r0; r < r1; r++) {
        int64_t h = r % H, t = r / H;
        if (t != have_t) { rope_angles(n, t, cs, sn); have_t = t; } /* shared by every head of token t */
        const char *arow = rows_at(a, h, t, 0);
        char *drow = rows_at(d, h, t, 0);
        const float *x = rows_f32(arow, D, a->nb[0], APR_F32, tx);
        /* a strided dst row is assembled in ty and scattered; in-place (dst == src) is safe per element */
        float *y = d->nb[0] == 4 ? (float *)drow : ty;
        rope_row(n, y, x, D, cs, sn);
        if (y == ty) rows_store_f32(drow, ty, D, d->nb[0], APR_F32);
    }
}

apr_status rope_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *d = &n->dst;
    if (rows_count(d) == 0 || d->ne[0] == 0) return APR_OK;
    if (cpu_backend_reserve(be, (size_t)(2 * n->iparams[0] + 2 * d->ne[0] + 4 * VEC_W) * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "rope: cannot allocate scratch");
    rope_job j = {n, be};
    cpu_backend_run(be, rope_worker, &j, rows_count(d) * d->ne[0] * 2);
    return APR_OK;
}

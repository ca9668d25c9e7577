/* operands.c — the host data of one case: weights (one set per copy) and activations. */
#include "operands.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hostbuf.h"

int operands_copies(const cases_case *c, long long cache_bytes) {
    if (c->bound != CASES_BOUND_READ) return 1;
    if (cache_bytes <= 0) cache_bytes = 32ll << 20;
    double want = 4.0 * (double)cache_bytes / cases_bytes(c);
    int n = (int)ceil(want);
    return n < 1 ? 1 : n > OPERANDS_MAX_COPIES ? OPERANDS_MAX_COPIES : n;
}

int operands_new(operands *o, const cases_case *c, int copies, char *err, size_t err_size) {
    memset(o, 0, sizeof *o);
    o->c = c;
    o->copies = copies;
    int64_t n_x = 0, n_w = 0, n_v = 0, n_out = 0;
    switch (c->kind) {
    case CASES_MATMUL:
        n_w = c->k * c->n;
        n_x = c->k * c->m;
        n_out = c->n * c->m;
        break;
    case CASES_RMS_NORM:
    case CASES_SOFTMAX:
        n_x = n_out = c->rows * c->cols;
        break;
    case CASES_ATTENTION:
        n_w = n_v = c->d * c->s * c->hkv;
        n_x = n_out = c->d * c->t * c->h;
        break;
    }
    o->w_bytes = n_w ? (size_t)apr_dtype_row_bytes(c->dtype, n_w) : 0;
    o->v_bytes = n_v ? (size_t)apr_dtype_row_bytes(c->dtype, n_v) : 0;
    o->x_bytes = (size_t)n_x * sizeof(float);
    o->out_bytes = (size_t)n_out * sizeof(float);
    float lo = c->kind == CASES_SOFTMAX ? -5.0f : -1.0f, hi = -lo;
    o->x = hostbuf_alloc(o->x_bytes);
    if (!o->x) goto nomem;
    hostbuf_fill(o->x, APR_F32, n_x, lo, hi, 1);
    for (int i = 0; i < copies; i++) {
        if (n_w) {
            if (!(o->w[i] = hostbuf_alloc(o->w_bytes))) goto nomem;
            hostbuf_fill(o->w[i], c->dtype, n_w, -1.0f, 1.0f, 100 + (uint64_t)i);
        }
        if (n_v) {
            if (!(o->v[i] = hostbuf_alloc(o->v_bytes))) goto nomem;
            hostbuf_fill(o->v[i], c->dtype, n_v, -1.0f, 1.0f, 200 + (uint64_t)i);
        }
    }
    return 0;
nomem:
    snprintf(err, err_size, "out of memory for the operands of %s", c->id);
    operands_free(o);
    return -1;
}

void operands_free(operands *o) {
    for (int i = 0; i < OPERANDS_MAX_COPIES; i++) {
        if (o->w[i]) hostbuf_free(o->w[i], o->w_bytes);
        if (o->v[i]) hostbuf_free(o->v[i], o->v_bytes);
    }
    if (o->x) hostbuf_free(o->x, o->x_bytes);
    memset(o, 0, sizeof *o);
}

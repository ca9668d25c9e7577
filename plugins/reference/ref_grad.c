/* ref_grad.c — reference gradients of the forward ops (ABI 5): matmul both operands, get_rows, sum_repeats, rms_norm, rope, softmax, silu, gelu. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "../common/msg.h"
#include "../common/opcheck.h"
#include "ref_ops.h"
#include "ref_tensor.h"

/* ---------------------------------------------------------------- matmul */

/* dX[:, m, b2, b3] = sum_n W[:, n, w2, w3] dY[n, m, b2, b3]. Per activation batch, each W row is
 * read (dequantized for a block type) once and added into the K x M sums of that batch. */
apr_status refgrad_matmul_x(const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *w = &n->src[0], *dy = &n->src[1], *dst = &n->dst;
    int64_t K = w->ne[0], N = w->ne[1], M = dy->ne[1], B2 = dy->ne[2], B3 = dy->ne[3];
    int64_t r2 = B2 / w->ne[2], r3 = B3 / w->ne[3];
    size_t km = (size_t)(K * M > 0 ? K * M : 1);
    double *acc = malloc(km * sizeof *acc);
    float *wrow = malloc((size_t)(K > 0 ? K : 1) * sizeof *wrow);
    if (!acc || !wrow) {
        free(acc);
        free(wrow);
        return msg_set(err, err_size, APR_ERR_NOMEM, "matmul_grad_x: cannot allocate %lld x %lld sums", (long long)K,
                       (long long)M);
    }
    const bool block = reftensor_is_block(w);
    for (int64_t b3 = 0; b3 < B3; b3++)
        for (int64_t b2 = 0; b2 < B2; b2++) {
            for (size_t i = 0; i < km; i++) acc[i] = 0.0;
            for (int64_t j = 0; j < N; j++) {
                if (block) reftensor_dequant_row(w, j, b2 / r2, b3 / r3, wrow);
                else
                    for (int64_t k = 0; k < K; k++) wrow[k] = reftensor_getf(w, k, j, b2 / r2, b3 / r3);
                for (int64_t m = 0; m < M; m++) {
                    double g = reftensor_getf(dy, j, m, b2, b3);
                    double *a = acc + m * K;
                    for (int64_t k = 0; k < K; k++) a[k] += (double)wrow[k] * g;
                }
            }
            for (int64_t m = 0; m < M; m++)
                for (int64_t k = 0; k < K; k++) reftensor_setf(dst, k, m, b2, b3, (float)acc[m * K + k]);
        }
    free(acc);
    free(wrow);
    return APR_OK;
}

/* dW[k, j, w2, w3] sums X[k, m, b2, b3] dY[j, m, b2, b3] over m and over the activation batches
 * (b2, b3) that weight batch (w2, w3) serves. */
void refgrad_matmul_w(const apr_node_desc *n) {
    const apr_tensor_desc *x = &n->src[0], *dy = &n->src[1], *dst = &n->dst;
    int64_t K = x->ne[0], M = x->ne[1], N = dy->ne[0];
    int64_t r2 = x->ne[2] / dst->ne[2], r3 = x->ne[3] / dst->ne[3];
    for (int64_t w3 = 0; w3 < dst->ne[3]; w3++)
        for (int64_t w2 = 0; w2 < dst->ne[2]; w2++)
            for (int64_t j = 0; j < N; j++)
                for (int64_t k = 0; k < K; k++) {
                    double sum = 0.0;
                    for (int64_t b3 = w3 * r3; b3 < (w3 + 1) * r3; b3++)
                        for (int64_t b2 = w2 * r2; b2 < (w2 + 1) * r2; b2++)
                            for (int64_t m = 0; m < M; m++)
                                sum += (double)reftensor_getf(x, k, m, b2, b3) * (double)reftensor_getf(dy, j, m, b2, b3);
                    reftensor_setf(dst, k, j, w2, w3, (float)sum);
                }
}

/* ---------------------------------------------------------------- get_rows, sum_repeats */

/* A scatter-add: the columns of dY are grouped by id (a counting sort of their indices), then each
 * table row is the double sum of its group, in index order; a row no id names is zero. */
apr_status refgrad_get_rows(const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *dy = &n->src[0], *ids = &n->src[1], *dst = &n->dst;
    int64_t D = dy->ne[0], N = dy->ne[1], R = dst->ne[1];
    for (int64_t i = 0; i < N; i++) {
        int32_t id = reftensor_geti(ids, i, 0, 0, 0);
        if (id < 0 || id >= R)
            return msg_set(err, err_size, APR_ERR_INVALID, "get_rows_grad: ids[%lld] = %d is outside [0, %lld)", (long long)i,
                           (int)id, (long long)R);
    }
    int64_t *start = calloc((size_t)R + 1, sizeof *start), *order = malloc((size_t)(N > 0 ? N : 1) * sizeof *order);
    if (!start || !order) {
        free(start);
        free(order);
        return msg_set(err, err_size, APR_ERR_NOMEM, "get_rows_grad: cannot allocate the index of %lld rows", (long long)R);
    }
    for (int64_t i = 0; i < N; i++) start[reftensor_geti(ids, i, 0, 0, 0) + 1]++;
    for (int64_t r = 0; r < R; r++) start[r + 1] += start[r];
    for (int64_t i = 0; i < N; i++) order[start[reftensor_geti(ids, i, 0, 0, 0)]++] = i; /* start[r] moves to the end of r */
    for (int64_t r = 0, from = 0; r < R; r++) {
        for (int64_t d = 0; d < D; d++) {
            double sum = 0.0;
            for (int64_t i = from; i < start[r]; i++) sum += reftensor_getf(dy, d, order[i], 0, 0);
            reftensor_setf(dst, d, r, 0, 0, (float)sum);
        }
        from = start[r];
    }
    free(start);
    free(order);
    return APR_OK;
}

/* dst[j] sums a[j + q * B] over every whole number of repeats q in each dim. */
void refgrad_sum_repeats(const apr_node_desc *n) {
    const apr_tensor_desc *a = &n->src[0], *dst = &n->dst;
    const int64_t *B = dst->ne;
    for (int64_t j3 = 0; j3 < B[3]; j3++)
        for (int64_t j2 = 0; j2 < B[2]; j2++)
            for (int64_t j1 = 0; j1 < B[1]; j1++)
                for (int64_t j0 = 0; j0 < B[0]; j0++) {
                    double sum = 0.0;
                    for (int64_t i3 = j3; i3 < a->ne[3]; i3 += B[3])
                        for (int64_t i2 = j2; i2 < a->ne[2]; i2 += B[2])
                            for (int64_t i1 = j1; i1 < a->ne[1]; i1 += B[1])
                                for (int64_t i0 = j0; i0 < a->ne[0]; i0 += B[0]) sum += reftensor_getf(a, i0, i1, i2, i3);
                    reftensor_setf(dst, j0, j1, j2, j3, (float)sum);
                }
}

/* ---------------------------------------------------------------- row ops: rms_norm, softmax */

/* dX = r (dY - y mean(dY y)) with r = 1 / sqrt(mean(x^2) + eps) and y = x r, per row. */
void refgrad_rms_norm(const apr_node_desc *n) {
    const apr_tensor_desc *x = &n->src[0], *dy = &n->src[1], *dst = &n->dst;
    int64_t D = x->ne[0];
    if (D == 0) return;
    double eps = n->fparams[0];
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++) {
                double ss = 0.0;
                for (int64_t i0 = 0; i0 < D; i0++) {
                    double v = reftensor_getf(x, i0, i1, i2, i3);
                    ss += v * v;
                }
                double r = 1.0 / sqrt(ss / (double)D + eps), dot = 0.0;
                for (int64_t i0 = 0; i0 < D; i0++)
                    dot += (double)reftensor_getf(dy, i0, i1, i2, i3) * ((double)reftensor_getf(x, i0, i1, i2, i3) * r);
                double mean = dot / (double)D;
                /* every input of the row was read above, so dst may alias x or dY */
                for (int64_t i0 = 0; i0 < D; i0++) {
                    double y = (double)reftensor_getf(x, i0, i1, i2, i3) * r;
                    reftensor_setf(dst, i0, i1, i2, i3, (float)(r * ((double)reftensor_getf(dy, i0, i1, i2, i3) - y * mean)));
                }
            }
}

/* dst = scale y (dY - sum_j y[j] dY[j]) per row; the mask and causality of the forward live in y
 * (zeros where it hid a position), so they need no source here. */
void refgrad_softmax(const apr_node_desc *n) {
    const apr_tensor_desc *y = &n->src[0], *dy = &n->src[1], *dst = &n->dst;
    double scale = n->fparams[0];
    for (int64_t i3 = 0; i3 < y->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < y->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < y->ne[1]; i1++) {
                double dot = 0.0;
                for (int64_t j = 0; j < y->ne[0]; j++)
                    dot += (double)reftensor_getf(y, j, i1, i2, i3) * (double)reftensor_getf(dy, j, i1, i2, i3);
                for (int64_t j = 0; j < y->ne[0]; j++) {
                    double yj = reftensor_getf(y, j, i1, i2, i3), g = reftensor_getf(dy, j, i1, i2, i3);
                    reftensor_setf(dst, j, i1, i2, i3, (float)(scale * yj * (g - dot)));
                }
            }
}

/* ---------------------------------------------------------------- rope */

/* The transposed rotation of ROPE (the inverse: a rotation's transpose), theta exactly as
 * refrope_run computes it: the same code, in ref_rope.c. */
void refgrad_rope(const apr_node_desc *n) { refrope_rotate(n, true); }

/* ---------------------------------------------------------------- element-wise: silu, gelu */

/* dst = dY * f'(x) element by element, f' evaluated in double. */
typedef double deriv_fn(double x);

static void grad_map(const apr_node_desc *n, deriv_fn *f) {
    const apr_tensor_desc *x = &n->src[0], *dy = &n->src[1], *dst = &n->dst;
    for (int64_t i3 = 0; i3 < dst->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < dst->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < dst->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < dst->ne[0]; i0++) {
                    double v = reftensor_getf(x, i0, i1, i2, i3), g = reftensor_getf(dy, i0, i1, i2, i3);
                    reftensor_setf(dst, i0, i1, i2, i3, (float)(g * f(v)));
                }
}

/* s (1 + x (1 - s)), s = 1 / (1 + exp(-x)) */
static double silu_deriv(double x) {
    double s = 1.0 / (1.0 + exp(-x));
    return s * (1.0 + x * (1.0 - s));
}

/* 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2), t = tanh(c (x + 0.044715 x^3)), c = sqrt(2/pi) */
static double gelu_deriv(double x) {
    const double c = 0.79788456080286535588, a = 0.044715;
    double t = tanh(c * (x + a * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * a * x * x);
}

void refgrad_silu(const apr_node_desc *n) { grad_map(n, silu_deriv); }
void refgrad_gelu(const apr_node_desc *n) { grad_map(n, gelu_deriv); }

/* graph_grad.c — constructors of the ABI 5 ops: the gradients of the forward ops, the loss and the in-place training steps. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static bool grad_same_shape(const struct apr_tensor *a, const struct apr_tensor *b) {
    for (int d = 0; d < APR_MAX_DIMS; d++)
        if (a->ne[d] != b->ne[d]) return false;
    return true;
}

/* x and dy: f32 of one shape; the node's dst has that shape too. */
static apr_tensor *grad_pointwise(apr_graph *g, apr_op op, apr_tensor *x, apr_tensor *dy, const char *opname) {
    if (!x || !dy) return NULL;
    GRAPH_NEED(g, x->dtype == APR_F32 && dy->dtype == APR_F32, "%s: %s and %s must be f32", opname, x->name, dy->name);
    GRAPH_NEED(g, grad_same_shape(x, dy), "%s: %s and %s differ in shape", opname, x->name, dy->name);
    return graph_op(g, op, APR_F32, x->ne, 2, (struct apr_tensor *[]){x, dy}, opname);
}

APR_API apr_tensor *apr_matmul_grad_x(apr_graph *g, apr_tensor *w, apr_tensor *dy) {
    if (!w || !dy) return NULL;
    GRAPH_NEED(g, dy->dtype == APR_F32, "matmul_grad_x: dY %s must be f32", dy->name);
    GRAPH_NEED(g, w->ne[1] == dy->ne[0], "matmul_grad_x %s, %s: W has %lld rows, dY %lld", w->name, dy->name,
               (long long)w->ne[1], (long long)dy->ne[0]);
    GRAPH_NEED(g, dy->ne[2] % w->ne[2] == 0 && dy->ne[3] % w->ne[3] == 0,
               "matmul_grad_x %s, %s: batch dims of dY must be multiples of those of W", w->name, dy->name);
    return graph_op(g, APR_OP_MATMUL_GRAD_X, APR_F32, (int64_t[]){w->ne[0], dy->ne[1], dy->ne[2], dy->ne[3]}, 2,
                    (struct apr_tensor *[]){w, dy}, "matmul_grad_x");
}

APR_API apr_tensor *apr_matmul_grad_w(apr_graph *g, apr_tensor *x, apr_tensor *dy, const apr_tensor *w) {
    if (!x || !dy || !w) return NULL;
    GRAPH_NEED(g, x->dtype == APR_F32 && dy->dtype == APR_F32, "matmul_grad_w: X %s and dY %s must be f32", x->name,
               dy->name);
    GRAPH_NEED(g, x->ne[1] == dy->ne[1] && x->ne[2] == dy->ne[2] && x->ne[3] == dy->ne[3],
               "matmul_grad_w %s, %s: X and dY differ in columns or batches", x->name, dy->name);
    GRAPH_NEED(g, w->ne[0] == x->ne[0] && w->ne[1] == dy->ne[0], "matmul_grad_w: %s is not [%lld, %lld]", w->name,
               (long long)x->ne[0], (long long)dy->ne[0]);
    GRAPH_NEED(g, x->ne[2] % w->ne[2] == 0 && x->ne[3] % w->ne[3] == 0,
               "matmul_grad_w: batch dims of %s must be multiples of those of %s", x->name, w->name);
    return graph_op(g, APR_OP_MATMUL_GRAD_W, APR_F32, (int64_t[]){w->ne[0], w->ne[1], w->ne[2], w->ne[3]}, 2,
                    (struct apr_tensor *[]){x, dy}, "matmul_grad_w");
}

APR_API apr_tensor *apr_get_rows_grad(apr_graph *g, apr_tensor *dy, apr_tensor *ids, int64_t n_rows) {
    if (!dy || !ids) return NULL;
    GRAPH_NEED(g, dy->dtype == APR_F32 && dy->ne[2] == 1 && dy->ne[3] == 1, "get_rows_grad: dY %s must be f32 [D, N]",
               dy->name);
    GRAPH_NEED(g, ids->dtype == APR_I32 && ids->ne[0] == dy->ne[1] && ids->ne[1] == 1 && ids->ne[2] == 1 &&
                      ids->ne[3] == 1, "get_rows_grad: ids %s must be i32 [%lld]", ids->name, (long long)dy->ne[1]);
    GRAPH_NEED(g, n_rows >= 1, "get_rows_grad: %lld rows", (long long)n_rows);
    return graph_op(g, APR_OP_GET_ROWS_GRAD, APR_F32, (int64_t[]){dy->ne[0], n_rows, 1, 1}, 2,
                    (struct apr_tensor *[]){dy, ids}, "get_rows_grad");
}

APR_API apr_tensor *apr_sum_repeats(apr_graph *g, apr_tensor *a, int n_dims, const int64_t *ne) {
    if (!a) return NULL;
    GRAPH_NEED(g, a->dtype == APR_F32, "sum_repeats: %s must be f32", a->name);
    GRAPH_NEED(g, n_dims >= 1 && n_dims <= APR_MAX_DIMS, "sum_repeats of %s: %d dimensions", a->name, n_dims);
    int64_t to[APR_MAX_DIMS];
    for (int d = 0; d < APR_MAX_DIMS; d++) {
        to[d] = d < n_dims ? ne[d] : 1;
        GRAPH_NEED(g, to[d] >= 1 && a->ne[d] % to[d] == 0, "sum_repeats of %s: dim %d of %lld into %lld", a->name, d,
                   (long long)a->ne[d], (long long)to[d]);
    }
    return graph_op(g, APR_OP_SUM_REPEATS, APR_F32, to, 1, (struct apr_tensor *[]){a}, "sum_repeats");
}

APR_API apr_tensor *apr_rms_norm_grad(apr_graph *g, apr_tensor *x, apr_tensor *dy, float eps) {
    if (x && !(eps > 0)) return graph_fail(g, "rms_norm_grad of %s: eps must be > 0", x->name);
    struct apr_tensor *t = grad_pointwise(g, APR_OP_RMS_NORM_GRAD, x, dy, "rms_norm_grad");
    if (t) t->fparams[0] = eps;
    return t;
}

APR_API apr_tensor *apr_rope_grad(apr_graph *g, apr_tensor *dy, apr_tensor *pos, apr_tensor *ff,
                                  const apr_rope_params *p) {
    /* the same checks and parameters as the forward op, under another op number */
    struct apr_tensor *t = apr_rope(g, dy, pos, ff, p);
    if (!t) return NULL;
    t->op = APR_OP_ROPE_GRAD;
    snprintf(t->name, sizeof t->name, "rope_grad_%d", t->id);
    return t;
}

APR_API apr_tensor *apr_softmax_grad(apr_graph *g, apr_tensor *y, apr_tensor *dy, float scale) {
    struct apr_tensor *t = grad_pointwise(g, APR_OP_SOFTMAX_GRAD, y, dy, "softmax_grad");
    if (t) t->fparams[0] = scale;
    return t;
}

APR_API apr_tensor *apr_silu_grad(apr_graph *g, apr_tensor *x, apr_tensor *dy) {
    return grad_pointwise(g, APR_OP_SILU_GRAD, x, dy, "silu_grad");
}

APR_API apr_tensor *apr_gelu_grad(apr_graph *g, apr_tensor *x, apr_tensor *dy) {
    return grad_pointwise(g, APR_OP_GELU_GRAD, x, dy, "gelu_grad");
}

APR_API apr_tensor *apr_attention_grad(apr_graph *g, apr_tensor *q, apr_tensor *k, apr_tensor *v, apr_tensor *mask,
                                       apr_tensor *dout, float scale, bool causal) {
    if (!q || !k || !v || !dout) return NULL;
    /* the forward's checks; that node is dropped again (it is never an output nor read) */
    struct apr_tensor *fwd = apr_attention(g, q, k, v, mask, scale, causal);
    if (!fwd) return NULL;
    GRAPH_NEED(g, dout->dtype == APR_F32 && grad_same_shape(fwd, dout), "attention_grad: dO %s must be f32 [%lld, %lld, %lld]",
               dout->name, (long long)fwd->ne[0], (long long)fwd->ne[1], (long long)fwd->ne[2]);
    int64_t nq = q->ne[0] * q->ne[1] * q->ne[2], nk = k->ne[0] * k->ne[1] * k->ne[2], nv = v->ne[0] * v->ne[1] * v->ne[2];
    /* reuse the forward node's slot: same sources plus dO, a new op and shape */
    fwd->op = APR_OP_ATTENTION_GRAD;
    fwd->n_src = 5;
    fwd->src[4] = dout;
    int64_t ne[APR_MAX_DIMS] = {nq + nk + nv, 1, 1, 1};
    memcpy(fwd->ne, ne, sizeof ne);
    fwd->nb[0] = 4;
    for (int d = 1; d < APR_MAX_DIMS; d++) fwd->nb[d] = fwd->nb[d - 1] * fwd->ne[d - 1];
    snprintf(fwd->name, sizeof fwd->name, "attention_grad_%d", fwd->id);
    return fwd;
}

APR_API apr_tensor *apr_attention_grad_part(apr_graph *g, apr_tensor *packed, int part, const apr_tensor *q,
                                            const apr_tensor *k, const apr_tensor *v) {
    if (!packed || !q || !k || !v) return NULL;
    GRAPH_NEED(g, packed->kind == APR_KIND_OP && packed->op == APR_OP_ATTENTION_GRAD,
               "attention_grad_part: %s is not an attention_grad result", packed->name);
    GRAPH_NEED(g, part >= 0 && part <= 2, "attention_grad_part: part %d (0 dQ, 1 dK, 2 dV)", part);
    const struct apr_tensor *shape[3] = {q, k, v};
    int64_t off = 0;
    for (int i = 0; i < part; i++) off += shape[i]->ne[0] * shape[i]->ne[1] * shape[i]->ne[2];
    const struct apr_tensor *s = shape[part];
    int64_t len = s->ne[0] * s->ne[1] * s->ne[2];
    GRAPH_NEED(g, off + len <= packed->ne[0], "attention_grad_part: %s does not match the shapes given", packed->name);
    apr_tensor *sl = apr_slice(g, packed, 0, off, len);
    return apr_reshape(g, sl, 3, (int64_t[]){s->ne[0], s->ne[1], s->ne[2]});
}

static bool grad_ce_check(apr_graph *g, apr_tensor *logits, apr_tensor *targets, const char *opname) {
    if (!logits || !targets) return false;
    if (logits->dtype != APR_F32 || logits->ne[2] != 1 || logits->ne[3] != 1) {
        graph_fail(g, "%s: logits %s must be f32 [V, T]", opname, logits->name);
        return false;
    }
    if (targets->dtype != APR_I32 || targets->ne[0] != logits->ne[1] || targets->ne[1] != 1 || targets->ne[2] != 1 ||
        targets->ne[3] != 1) {
        graph_fail(g, "%s: targets %s must be i32 [%lld]", opname, targets->name, (long long)logits->ne[1]);
        return false;
    }
    return true;
}

APR_API apr_tensor *apr_cross_entropy(apr_graph *g, apr_tensor *logits, apr_tensor *targets) {
    if (!grad_ce_check(g, logits, targets, "cross_entropy")) return NULL;
    return graph_op(g, APR_OP_CROSS_ENTROPY, APR_F32, (int64_t[]){1, 1, 1, 1}, 2,
                    (struct apr_tensor *[]){logits, targets}, "cross_entropy");
}

APR_API apr_tensor *apr_cross_entropy_grad(apr_graph *g, apr_tensor *logits, apr_tensor *targets, apr_tensor *dloss) {
    if (!grad_ce_check(g, logits, targets, "cross_entropy_grad") || !dloss) return NULL;
    GRAPH_NEED(g, dloss->dtype == APR_F32 && apr_tensor_nelements(dloss) == 1, "cross_entropy_grad: %s must be f32 [1]",
               dloss->name);
    return graph_op(g, APR_OP_CROSS_ENTROPY_GRAD, APR_F32, logits->ne, 3,
                    (struct apr_tensor *[]){logits, targets, dloss}, "cross_entropy_grad");
}

APR_API apr_tensor *apr_sgd(apr_graph *g, apr_tensor *param, apr_tensor *grad, apr_tensor *mom, apr_tensor *hp) {
    if (!param || !grad || !mom || !hp) return NULL;
    struct apr_tensor *const w[2] = {param, mom};
    for (int i = 0; i < 2; i++) {
        GRAPH_NEED(g, graph_is_writable_leaf(w[i]), "sgd: %s must be a resident or state leaf (it is written in place)",
                   w[i]->name);
        GRAPH_NEED(g, w[i]->dtype == APR_F32, "sgd: %s must be f32", w[i]->name);
    }
    GRAPH_NEED(g, param != mom, "sgd: %s is given twice", param->name);
    GRAPH_NEED(g, grad->dtype == APR_F32 && hp->dtype == APR_F32, "sgd: gradient %s and hyperparameters %s must be f32",
               grad->name, hp->name);
    GRAPH_NEED(g, grad_same_shape(grad, param) && grad_same_shape(mom, param), "sgd: %s, %s and %s must have one shape",
               param->name, grad->name, mom->name);
    GRAPH_NEED(g, apr_tensor_nelements(hp) == APR_SGD_HP_COUNT && hp->ne[0] == APR_SGD_HP_COUNT,
               "sgd: hyperparameters %s must be [%d]", hp->name, APR_SGD_HP_COUNT);
    GRAPH_NEED(g, grad->base != param && grad->base != mom && hp->base != param && hp->base != mom,
               "sgd: the gradient and hyperparameters must not be the tensors it writes");
    struct apr_tensor *t = graph_op(g, APR_OP_SGD, APR_F32, param->ne, 4, (struct apr_tensor *[]){param, grad, mom, hp},
                                    "sgd");
    if (!t) return NULL;
    t->base = param;
    t->in_place = true;
    t->written = 1u | 1u << 2;
    return t;
}

APR_API apr_tensor *apr_acc(apr_graph *g, apr_tensor *acc, apr_tensor *b) {
    if (!acc || !b) return NULL;
    GRAPH_NEED(g, graph_is_writable_leaf(acc), "acc: %s must be a resident or state leaf (it is written in place)",
               acc->name);
    GRAPH_NEED(g, acc->dtype == APR_F32 && b->dtype == APR_F32, "acc: %s and %s must be f32", acc->name, b->name);
    GRAPH_NEED(g, grad_same_shape(acc, b), "acc: %s and %s differ in shape", acc->name, b->name);
    GRAPH_NEED(g, b->base != acc, "acc: %s is added to itself", acc->name);
    struct apr_tensor *t = graph_op(g, APR_OP_ACC, APR_F32, acc->ne, 2, (struct apr_tensor *[]){acc, b}, "acc");
    if (!t) return NULL;
    t->base = acc;
    t->in_place = true;
    t->written = 1u;
    return t;
}

/* autodiff.c — reverse-mode differentiation of op graphs (apr_backward): adds to a graph the nodes
 * that compute the gradient of a weighted sum of its outs with respect to chosen tensors.
 *
 * The tensors that matter lie on a path from some wrt to some out: those that depend on a wrt
 * (marked forward from the wrt in creation order, which is topological) and that some out depends
 * on (marked backward from the outs). Only they get gradients, and they are visited once each in
 * reverse creation order, so that a tensor's gradient is complete (every consumer's contribution
 * summed with ADD) before its own rule passes it on to its sources. Each op's rule is the chain
 * rule of that op, built from the ABI 5 gradient ops (graph_grad.c) and ordinary forward ops, and
 * makes nodes only for the sources on a path (a frozen weight gets no dW). Gradients are f32 of
 * their tensor's shape; no zero tensor is ever made (a tensor that gets no contribution has none).
 * Every wrt is a boundary: its gradient is not passed on to the tensors it was computed from, so a
 * layer recomputed from a saved input can be differentiated alone (gradient checkpointing).
 * Every refusal goes through the graph's sticky first error. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define AD_FWD 1u /* depends on a wrt (or is one) */
#define AD_BWD 2u /* some out depends on it (or is one) */
#define AD_WRT 4u /* a wrt: a boundary the gradient is not passed through */
#define AD_PATH (AD_FWD | AD_BWD)
/* Records the first error of g and gives false. */
#define AD_FAIL(g, ...) (graph_fail((g), __VA_ARGS__), false)

/* One run of apr_backward. */
typedef struct ad_state {
    apr_graph *g;
    int n;                        /* tensors of g before the backward nodes; only they are differentiated */
    unsigned char *mark;          /* [n] AD_* bits */
    struct apr_tensor **grad;     /* [n] the gradient summed so far, or NULL (none yet) */
} ad_state;

/* The sources a tensor is computed from: an op's sources, or the tensor a view was made from. */
static int ad_sources(const struct apr_tensor *t, struct apr_tensor **out) {
    if (t->kind == APR_KIND_VIEW) {
        out[0] = t->view_of;
        return 1;
    }
    int n = 0;
    if (t->kind == APR_KIND_OP)
        for (int i = 0; i < t->n_src; i++)
            if (t->src[i]) out[n++] = t->src[i];
    return n;
}

/* Whether t (a tensor of g, or a backward node, which never is) lies on a path from a wrt to an out. */
static bool ad_on_path(const ad_state *a, const struct apr_tensor *t) {
    return t && t->id < a->n && (a->mark[t->id] & AD_PATH) == AD_PATH;
}

static bool ad_same_shape(const struct apr_tensor *x, const struct apr_tensor *y) {
    for (int d = 0; d < APR_MAX_DIMS; d++)
        if (x->ne[d] != y->ne[d]) return false;
    return true;
}

static bool ad_is_block(apr_dtype t) { return apr_dtype_block_elems(t) > 1; }

/* Adds d (f32, t's shape; NULL after a failed constructor) to the gradient of t. */
static bool ad_contribute(ad_state *a, struct apr_tensor *t, struct apr_tensor *d) {
    if (!d) return false; /* the constructor recorded why */
    if (!ad_same_shape(t, d) || d->dtype != APR_F32)
        return AD_FAIL(a->g, "apr_backward: internal error: the gradient %s of %s has the wrong shape or dtype",
                       d->name, t->name);
    struct apr_tensor *have = a->grad[t->id];
    a->grad[t->id] = have ? apr_add(a->g, have, d) : d;
    return a->grad[t->id] != NULL;
}

/* dY summed down to the shape of b, a source that ADD or MUL repeat over dY's shape. */
static struct apr_tensor *ad_unrepeat(ad_state *a, struct apr_tensor *dy, const struct apr_tensor *b) {
    if (!dy || ad_same_shape(dy, b)) return dy;
    return apr_sum_repeats(a->g, dy, APR_MAX_DIMS, b->ne);
}

/* ---------------------------------------------------------------- views */

/* The gradient of the tensor a view t was made from. Views keep no record of how they were made, so
 * the kind is read off the layout: the same offset and element count with both contiguous is a
 * reshape (the same element order: dY is reshaped back); the same offset with every (ne, nb) pair of
 * the source found again among t's is a permute (dY is permuted back); anything else takes part of
 * its source (a slice), whose gradient would need zeros around dY. */
static bool ad_view(ad_state *a, struct apr_tensor *t, struct apr_tensor *dy) {
    struct apr_tensor *s = t->view_of;
    const int64_t s_offset = s->kind == APR_KIND_VIEW ? s->view_offset : 0;
    if (t->view_offset != s_offset || apr_tensor_nelements(t) != apr_tensor_nelements(s))
        return AD_FAIL(a->g, "apr_backward: cannot differentiate through slice %s", t->name);
    if (apr_tensor_is_contiguous(s) && apr_tensor_is_contiguous(t)) {
        if (ad_same_shape(dy, s)) return ad_contribute(a, s, dy);
        if (!apr_tensor_is_contiguous(dy)) dy = apr_cast(a->g, dy, APR_F32);
        return ad_contribute(a, s, apr_reshape(a->g, dy, APR_MAX_DIMS, s->ne));
    }
    /* source dim i went to position ax[i] of t */
    int ax[APR_MAX_DIMS];
    unsigned used = 0;
    for (int i = 0; i < APR_MAX_DIMS; i++) {
        ax[i] = -1;
        for (int j = 0; j < APR_MAX_DIMS && ax[i] < 0; j++)
            if (!(used >> j & 1u) && t->ne[j] == s->ne[i] && t->nb[j] == s->nb[i]) ax[i] = j;
        if (ax[i] < 0)
            return AD_FAIL(a->g, "apr_backward: cannot differentiate through slice %s (a view that is neither a "
                           "reshape nor a permute of %s)", t->name, s->name);
        used |= 1u << ax[i];
    }
    bool identity = true;
    int back[APR_MAX_DIMS]; /* dim ax[i] of dY goes back to position i */
    for (int i = 0; i < APR_MAX_DIMS; i++) {
        back[ax[i]] = i;
        identity = identity && ax[i] == i;
    }
    if (identity) return ad_contribute(a, s, dy);
    return ad_contribute(a, s, apr_permute(a->g, dy, back[0], back[1], back[2], back[3]));
}

/* ---------------------------------------------------------------- ops */

/* Why an op cannot be differentiated, or NULL when it has a rule below. */
static const char *ad_refusal(apr_op op) {
    switch (op) {
    case APR_OP_ARGMAX: return "argmax has no gradient";
    case APR_OP_SET_ROWS: return "set_rows writes its table in place";
    case APR_OP_ADAMW: return "adamw is a training step written in place";
    case APR_OP_SGD: return "sgd is a training step written in place";
    case APR_OP_ACC: return "acc is written in place";
    case APR_OP_MATMUL_GRAD_X: case APR_OP_MATMUL_GRAD_W: case APR_OP_GET_ROWS_GRAD: case APR_OP_SUM_REPEATS:
    case APR_OP_RMS_NORM_GRAD: case APR_OP_ROPE_GRAD: case APR_OP_SOFTMAX_GRAD: case APR_OP_SILU_GRAD:
    case APR_OP_GELU_GRAD: case APR_OP_ATTENTION_GRAD: case APR_OP_CROSS_ENTROPY_GRAD:
        return "a gradient op has no derivative here (no second derivatives)";
    case APR_OP_GET_ROWS: case APR_OP_MATMUL: case APR_OP_ADD: case APR_OP_MUL: case APR_OP_SCALE:
    case APR_OP_RMS_NORM: case APR_OP_ROPE: case APR_OP_SOFTMAX: case APR_OP_SILU: case APR_OP_GELU:
    case APR_OP_SWIGLU: case APR_OP_ATTENTION: case APR_OP_CPY: case APR_OP_CONCAT: case APR_OP_CROSS_ENTROPY:
        return NULL;
    case APR_OP_NONE: case APR_OP_COUNT_V5: break;
    }
    return "the op is unknown";
}

static bool ad_attention(ad_state *a, struct apr_tensor *t, struct apr_tensor *dy) {
    struct apr_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2], *mask = t->src[3];
    if (ad_on_path(a, mask))
        return AD_FAIL(a->g, "apr_backward: cannot differentiate attention %s with respect to its mask %s "
                       "(attention_grad gives the mask none)", t->name, mask->name);
    struct apr_tensor *packed = apr_attention_grad(a->g, q, k, v, mask, dy, t->fparams[0], t->iparams[0] != 0);
    struct apr_tensor *const part[3] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        /* q, k and v may be one tensor: each part is its own contribution */
        if (ad_on_path(a, part[i]) && !ad_contribute(a, part[i], apr_attention_grad_part(a->g, packed, i, q, k, v)))
            return false;
    }
    return packed != NULL;
}

/* Passes dy, the complete gradient of the op node t, on to its sources on a path. */
static bool ad_op(ad_state *a, struct apr_tensor *t, struct apr_tensor *dy) {
    apr_graph *g = a->g;
    struct apr_tensor *s0 = t->src[0], *s1 = t->n_src > 1 ? t->src[1] : NULL;
    const bool need0 = ad_on_path(a, s0), need1 = ad_on_path(a, s1);
    switch (t->op) {
    case APR_OP_MATMUL: /* Y = W X: dX = W^T dY, dW = dY X^T */
        if (need1 && !ad_contribute(a, s1, apr_matmul_grad_x(g, s0, dy))) return false;
        return !need0 || ad_contribute(a, s0, apr_matmul_grad_w(g, s1, dy, s0));
    case APR_OP_GET_ROWS: /* scatter-add of dY's rows; ids get none */
        return !need0 || ad_contribute(a, s0, apr_get_rows_grad(g, dy, s1, s0->ne[1]));
    case APR_OP_ADD:
        if (need0 && !ad_contribute(a, s0, dy)) return false;
        return !need1 || ad_contribute(a, s1, ad_unrepeat(a, dy, s1));
    case APR_OP_MUL:
        if (need0 && !ad_contribute(a, s0, apr_mul(g, dy, s1))) return false;
        return !need1 || ad_contribute(a, s1, ad_unrepeat(a, apr_mul(g, dy, s0), s1));
    case APR_OP_SCALE:
        return ad_contribute(a, s0, apr_scale(g, dy, t->fparams[0]));
    case APR_OP_RMS_NORM:
        return ad_contribute(a, s0, apr_rms_norm_grad(g, s0, dy, t->fparams[0]));
    case APR_OP_ROPE: {
        struct apr_tensor *ff = t->src[2];
        if (ad_on_path(a, ff))
            return AD_FAIL(g, "apr_backward: cannot differentiate rope %s with respect to its frequency factors %s",
                           t->name, ff->name);
        const apr_rope_params p = {t->iparams[0], t->iparams[1], t->fparams[0], t->fparams[1]};
        return !need0 || ad_contribute(a, s0, apr_rope_grad(g, dy, s1, ff, &p));
    }
    case APR_OP_SOFTMAX: {
        /* z = scale x + mask; dz = y (dY - sum y dY): dx = scale dz, dmask = dz summed over the batches */
        const float scale = t->fparams[0];
        struct apr_tensor *dx = need0 ? apr_softmax_grad(g, t, dy, scale) : NULL;
        if (need0 && !ad_contribute(a, s0, dx)) return false;
        if (!need1) return true;
        struct apr_tensor *dz = dx && scale == 1.0f ? dx : apr_softmax_grad(g, t, dy, 1.0f);
        return ad_contribute(a, s1, ad_unrepeat(a, dz, s1));
    }
    case APR_OP_SILU:
        return ad_contribute(a, s0, apr_silu_grad(g, s0, dy));
    case APR_OP_GELU:
        return ad_contribute(a, s0, apr_gelu_grad(g, s0, dy));
    case APR_OP_SWIGLU: /* y = silu(a) b: da = silu'(a) (dY b), db = silu(a) dY */
        if (need0 && !ad_contribute(a, s0, apr_silu_grad(g, s0, apr_mul(g, dy, s1)))) return false;
        return !need1 || ad_contribute(a, s1, apr_swiglu(g, s0, dy));
    case APR_OP_ATTENTION:
        return ad_attention(a, t, dy);
    case APR_OP_CPY:
        if (s0->dtype != APR_F32)
            return AD_FAIL(g, "apr_backward: cannot differentiate cpy %s into its %s source %s: gradients are f32",
                           t->name, apr_dtype_name(s0->dtype), s0->name);
        return ad_contribute(a, s0, dy); /* f32 into any float dtype: the gradient passes unchanged */
    case APR_OP_CONCAT: {
        const int dim = t->iparams[0];
        if (need0 && !ad_contribute(a, s0, apr_slice(g, dy, dim, 0, s0->ne[dim]))) return false;
        return !need1 || ad_contribute(a, s1, apr_slice(g, dy, dim, s0->ne[dim], s1->ne[dim]));
    }
    case APR_OP_CROSS_ENTROPY: /* dy is the [1] gradient of the loss; targets get none */
        return !need0 || ad_contribute(a, s0, apr_cross_entropy_grad(g, s0, s1, dy));
    default: break;
    }
    return AD_FAIL(g, "apr_backward: internal error: no rule for %s", t->name);
}

/* The rule of one tensor on a path, whose gradient is now complete. */
static bool ad_node(ad_state *a, struct apr_tensor *t) {
    struct apr_tensor *src[APR_SRC_LIMIT];
    int n_src = ad_sources(t, src);
    bool feeds = false; /* a source lies on a path (false for a wrt that depends on no other) */
    for (int i = 0; i < n_src; i++) feeds = feeds || ad_on_path(a, src[i]);
    if (!feeds) return true;
    const char *no = t->kind == APR_KIND_OP ? ad_refusal(t->op) : NULL;
    if (no)
        return AD_FAIL(a->g, "apr_backward: cannot differentiate through %s: %s", t->name, no);
    for (int i = 0; i < n_src; i++)
        if (ad_on_path(a, src[i]) && ad_is_block(src[i]->dtype))
            return AD_FAIL(a->g, "apr_backward: cannot differentiate with respect to quantized weight %s (%s)",
                           src[i]->base->name, apr_dtype_name(src[i]->dtype));
    struct apr_tensor *dy = a->grad[t->id];
    if (!dy) return true; /* integers (ids, positions) on a path carry no gradient */
    return t->kind == APR_KIND_VIEW ? ad_view(a, t, dy) : ad_op(a, t, dy);
}

/* ---------------------------------------------------------------- entry */

static bool ad_of_graph(const apr_graph *g, const struct apr_tensor *t) {
    return t->id >= 0 && t->id < g->n_tensors && g->tensors[t->id] == t;
}

/* The caller's arguments, checked before anything is added to g. */
static bool ad_check_args(apr_graph *g, int n_outs, apr_tensor *const *outs, apr_tensor *const *seeds, int n_wrt,
                          apr_tensor *const *wrt, apr_tensor **grads) {
    if (n_outs < 1 || !outs || !seeds) return AD_FAIL(g, "apr_backward: no outs or seeds (n_outs %d)", n_outs);
    if (n_wrt < 1 || !wrt || !grads) return AD_FAIL(g, "apr_backward: no wrt or grads (n_wrt %d)", n_wrt);
    for (int j = 0; j < n_outs; j++) {
        if (!outs[j] || !seeds[j])
            return AD_FAIL(g, "apr_backward: %s[%d] is NULL (a failed node?)", outs[j] ? "seeds" : "outs", j);
        if (!ad_of_graph(g, outs[j]) || !ad_of_graph(g, seeds[j]))
            return AD_FAIL(g, "apr_backward: out %s or its seed %s is not a tensor of this graph", outs[j]->name,
                           seeds[j]->name);
        if (seeds[j]->dtype != APR_F32 || !ad_same_shape(seeds[j], outs[j]))
            return AD_FAIL(g, "apr_backward: the seed %s of out %s must be f32 of its shape [%lld, %lld, %lld, %lld]",
                           seeds[j]->name, outs[j]->name, (long long)outs[j]->ne[0], (long long)outs[j]->ne[1],
                           (long long)outs[j]->ne[2], (long long)outs[j]->ne[3]);
    }
    for (int i = 0; i < n_wrt; i++) {
        if (!wrt[i]) return AD_FAIL(g, "apr_backward: wrt[%d] is NULL (a failed node?)", i);
        if (!ad_of_graph(g, wrt[i]))
            return AD_FAIL(g, "apr_backward: wrt %s is not a tensor of this graph", wrt[i]->name);
    }
    return true;
}

APR_API bool apr_backward(apr_graph *g, int n_outs, apr_tensor *const *outs, apr_tensor *const *seeds, int n_wrt,
                          apr_tensor *const *wrt, apr_tensor **grads) {
    if (!g) return false;
    if (grads)
        for (int i = 0; i < n_wrt; i++) grads[i] = NULL;
    if (g->error[0] || !ad_check_args(g, n_outs, outs, seeds, n_wrt, wrt, grads)) return false;

    ad_state a = {.g = g, .n = g->n_tensors};
    a.mark = calloc((size_t)a.n, 1);
    a.grad = calloc((size_t)a.n, sizeof *a.grad);
    if (!a.mark || !a.grad) {
        free(a.mark);
        free(a.grad);
        return AD_FAIL(g, "out of memory building the backward graph");
    }
    struct apr_tensor *src[APR_SRC_LIMIT];
    for (int i = 0; i < n_wrt; i++) a.mark[wrt[i]->id] |= AD_FWD | AD_WRT;
    for (int id = 0; id < a.n; id++) {
        int n = ad_sources(g->tensors[id], src);
        for (int s = 0; s < n && !(a.mark[id] & AD_FWD); s++) a.mark[id] |= a.mark[src[s]->id] & AD_FWD;
    }
    for (int j = 0; j < n_outs; j++) a.mark[outs[j]->id] |= AD_BWD;
    for (int id = a.n - 1; id >= 0; id--) {
        if (!(a.mark[id] & AD_BWD) || (a.mark[id] & AD_WRT)) continue;
        int n = ad_sources(g->tensors[id], src);
        for (int s = 0; s < n; s++) a.mark[src[s]->id] |= AD_BWD;
    }

    bool ok = true;
    for (int i = 0; i < n_wrt && ok; i++)
        if (wrt[i]->dtype == APR_I32 && ad_on_path(&a, wrt[i]))
            ok = AD_FAIL(g, "apr_backward: cannot differentiate with respect to %s: i32 has no gradient", wrt[i]->name);
    for (int j = 0; j < n_outs && ok; j++)
        if (ad_on_path(&a, outs[j]) && outs[j]->dtype != APR_I32) ok = ad_contribute(&a, outs[j], seeds[j]);
    for (int id = a.n - 1; id >= 0 && ok; id--)
        if (ad_on_path(&a, g->tensors[id]) && !(a.mark[id] & AD_WRT)) ok = ad_node(&a, g->tensors[id]);
    ok = ok && !g->error[0];
    for (int i = 0; i < n_wrt; i++) grads[i] = ok ? a.grad[wrt[i]->id] : NULL;
    free(a.mark);
    free(a.grad);
    return ok;
}

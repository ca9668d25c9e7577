/* llama_train_graph.c — the trainer's graphs: the forward pass with LoRA branches or trainable weights, the
 * loss, the backward pass (apr_backward) with gradients summed in place, the norms, the optimizer step. */
#include "llama_train_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A forward graph being built: which leaf stands for each trainable tensor in it, and the dropout
 * masks handed out so far (one per adapter input site: a layer's attention input, attention output,
 * feed-forward input and activation), which a recomputed layer reuses. */
typedef struct train_fwd {
    llama_train *t;
    apr_graph *g;
    apr_tensor **leaves;          /* [n_params] */
    bool dropout;                 /* step graph with lora_dropout > 0 */
    apr_tensor **drop_in;         /* [cap] mask inputs */
    int *drop_site;               /* [cap] layer * 4 + site */
    int n_drop, cap_drop;
    bool *reached;                /* [n_params] a gradient was accumulated (step graph) */
} train_fwd;

static int train_find_src(const llama_train *t, const gguf_tensor *w) {
    for (int i = 0; i < t->n_params; i++)
        if (t->params[i].src == w) return i;
    return -1;
}

static apr_tensor *train_leaf(train_fwd *f, int i) {
    if (!f->leaves[i]) {
        const train_param *p = &f->t->params[i];
        f->leaves[i] = apr_resident(f->g, APR_F32, p->info.n_dims, p->info.ne, p->w, 0, p->name);
    }
    return f->leaves[i];
}

/* A model weight: its trainable f32 copy in full training, else the frozen weight as placed. */
static apr_tensor *train_weight(train_fwd *f, const gguf_tensor *w) {
    const int i = train_find_src(f->t, w);
    if (i >= 0) return train_leaf(f, i);
    return apr_weight(f->g, (apr_dtype)w->dtype, w->n_dims, w->ne, w->data, w->name);
}

static apr_tensor *train_norm(train_fwd *f, const gguf_tensor *w) {
    apr_tensor *x = train_weight(f, w);
    if (x && apr_tensor_ne(x, 1) * apr_tensor_ne(x, 2) * apr_tensor_ne(x, 3) != 1)
        x = apr_reshape(f->g, x, 1, (int64_t[]){apr_tensor_nelements(x)});
    return x && apr_tensor_dtype(x) != APR_F32 ? apr_cast(f->g, x, APR_F32) : x;
}

/* x times the dropout mask of its site (layer * 4 + which input), made on first use. */
static apr_tensor *train_drop(train_fwd *f, apr_tensor *x, int site) {
    if (!f->dropout || !x) return x;
    for (int i = 0; i < f->n_drop; i++)
        if (f->drop_site[i] == site) return apr_mul(f->g, x, f->drop_in[i]);
    if (f->n_drop == f->cap_drop) {
        int cap = f->cap_drop ? 2 * f->cap_drop : 16;
        apr_tensor **a = realloc(f->drop_in, (size_t)cap * sizeof *a);
        if (a) f->drop_in = a;
        int *b = realloc(f->drop_site, (size_t)cap * sizeof *b);
        if (b) f->drop_site = b;
        if (!a || !b) return NULL;
        f->cap_drop = cap;
    }
    char name[32];
    snprintf(name, sizeof name, "dropout.%d", site);
    apr_tensor *mask = apr_input(f->g, APR_F32, 2, (int64_t[]){apr_tensor_ne(x, 0), apr_tensor_ne(x, 1)}, name);
    f->drop_in[f->n_drop] = mask;
    f->drop_site[f->n_drop++] = site;
    return apr_mul(f->g, x, mask);
}

/* W x, plus (alpha / r) B (A x) where LoRA adapts this matmul. */
static apr_tensor *train_linear(train_fwd *f, int layer, int bit, const gguf_tensor *w, apr_tensor *x) {
    apr_tensor *y = apr_matmul(f->g, train_weight(f, w), x);
    const llama_train *t = f->t;
    if (t->p.method == LLAMA_TRAIN_FULL || !(t->p.lora_targets >> bit & 1u)) return y;
    for (int i = 0; i < t->n_params; i++) {
        const train_param *p = &t->params[i];
        if (!p->lora_a || p->layer != layer || p->target != bit) continue;
        static const int site_of[7] = {0, 0, 0, 1, 2, 2, 3}; /* q k v read one input, gate and up another */
        apr_tensor *ax = apr_matmul(f->g, train_leaf(f, i), train_drop(f, x, layer * 4 + site_of[bit]));
        apr_tensor *bax = apr_matmul(f->g, train_leaf(f, i + 1), ax);
        return apr_add(f->g, y, apr_scale(f->g, bax, t->p.lora_alpha / (float)t->p.lora_rank));
    }
    return y;
}

static apr_tensor *train_bias(train_fwd *f, apr_tensor *y, const gguf_tensor *b) {
    return b ? apr_add(f->g, y, train_norm(f, b)) : y;
}

/* [hd, heads, n] from a projection; qwen3 normalises each head. */
static apr_tensor *train_heads(train_fwd *f, apr_tensor *x, int64_t hd, int64_t heads, int n, const gguf_tensor *norm,
                               float eps) {
    x = apr_reshape(f->g, x, 3, (int64_t[]){hd, heads, n});
    return norm ? apr_mul(f->g, apr_rms_norm(f->g, x, eps), train_norm(f, norm)) : x;
}

/* Inputs every layer reads: positions, the window mask, rope's frequency factors. */
typedef struct train_ctx {
    apr_tensor *pos, *mask, *ff;
} train_ctx;

static train_ctx train_context(train_fwd *f) {
    llama_train *t = f->t;
    const int n = t->n_tok;
    train_ctx c = {apr_weight(f->g, APR_I32, 1, (int64_t[]){n}, t->pos, "positions"),
                   t->mask ? apr_weight(f->g, APR_F32, 2, (int64_t[]){n, n}, t->mask, "window_mask") : NULL,
                   t->m->rope_freqs ? train_norm(f, t->m->rope_freqs) : NULL};
    return c;
}

/* Layer l over the residual stream x [n_embd, n]. */
static apr_tensor *train_layer(train_fwd *f, const train_ctx *c, int l, apr_tensor *x) {
    const llama_hparams *hp = &f->t->m->hp;
    const llama_layer *L = &f->t->m->layers[l];
    apr_graph *g = f->g;
    const int n = f->t->n_tok;
    const int64_t hd = hp->head_dim, H = hp->n_head, Hkv = hp->n_head_kv;
    const apr_rope_params rope = {hp->n_rot, hp->rope_layout, hp->rope_base, hp->rope_scale};
    apr_tensor *h = apr_mul(g, apr_rms_norm(g, x, hp->rms_eps), train_norm(f, L->attn_norm));
    apr_tensor *q = train_linear(f, l, 0, L->wq, h);
    apr_tensor *k = train_linear(f, l, 1, L->wk, h);
    apr_tensor *v = train_linear(f, l, 2, L->wv, h);
    q = train_heads(f, train_bias(f, q, L->bq), hd, H, n, L->q_norm, hp->rms_eps);
    k = train_heads(f, train_bias(f, k, L->bk), hd, Hkv, n, L->k_norm, hp->rms_eps);
    v = train_heads(f, train_bias(f, v, L->bv), hd, Hkv, n, NULL, 0);
    q = apr_rope(g, q, c->pos, c->ff, &rope);
    k = apr_rope(g, k, c->pos, c->ff, &rope);
    /* [hd, heads, n] -> [hd, n, heads], the layout attention reads */
    apr_tensor *att = apr_attention(g, apr_permute(g, q, 0, 2, 1, 3), apr_permute(g, k, 0, 2, 1, 3),
                                    apr_permute(g, v, 0, 2, 1, 3), c->mask, 1.0f / sqrtf((float)hd), c->mask == NULL);
    att = apr_reshape(g, att, 2, (int64_t[]){H * hd, n});
    x = apr_add(g, x, train_linear(f, l, 3, L->wo, att));
    h = apr_mul(g, apr_rms_norm(g, x, hp->rms_eps), train_norm(f, L->ffn_norm));
    apr_tensor *gate = train_linear(f, l, 4, L->w_gate, h);
    apr_tensor *up = train_linear(f, l, 5, L->w_up, h);
    return apr_add(g, x, train_linear(f, l, 6, L->w_down, apr_swiglu(g, gate, up)));
}

/* The final norm, the logits and the summed cross-entropy. */
static apr_tensor *train_head(train_fwd *f, apr_tensor *x, apr_tensor *targets) {
    const llama_model *m = f->t->m;
    x = apr_mul(f->g, apr_rms_norm(f->g, x, m->hp.rms_eps), train_norm(f, m->out_norm));
    return apr_cross_entropy(f->g, apr_matmul(f->g, train_weight(f, m->output), x), targets);
}

static apr_status train_graph_error(apr_graph *g, const char *what, apr_error *err) {
    return apr_error_set(err, APR_ERR_INVALID, "building the %s graph: %s", what,
                         apr_graph_error(g) ? apr_graph_error(g) : "out of memory");
}

static void train_fwd_free(train_fwd *f) {
    free(f->leaves);
    free(f->drop_in);
    free(f->drop_site);
}

/* Adds each gradient apr_backward gave into its tensor's accumulator (a tensor read in several places
 * may get several). */
static void train_accumulate(train_fwd *f, apr_tensor *const *grads) {
    llama_train *t = f->t;
    for (int i = 0; i < t->n_params; i++) {
        if (!grads[i]) continue;
        const train_param *p = &t->params[i];
        char name[200];
        snprintf(name, sizeof name, "%s (gradient)", p->name);
        apr_tensor *acc = apr_resident(f->g, APR_F32, p->info.n_dims, p->info.ne, p->g, 0, name);
        apr_graph_output(f->g, apr_acc(f->g, acc, grads[i]));
        f->reached[i] = true;
    }
}

/* The backward pass of the step graph. Plain: one apr_backward from the loss to every tensor. With
 * checkpointing: the head from the loss back to the last layer's input, then each layer recomputed from
 * its saved input and differentiated alone (every wrt is a boundary apr_backward does not cross), so
 * only one layer's intermediates are alive at a time. */
static apr_status train_backward(train_fwd *f, train_graph *tg, const train_ctx *c, apr_tensor **xs, apr_error *err) {
    llama_train *t = f->t;
    const int np = t->n_params, nl = t->m->hp.n_layer;
    apr_tensor **wrt = calloc((size_t)np + 1, sizeof *wrt), **grads = calloc((size_t)np + 1, sizeof *grads);
    if (!wrt || !grads || !(f->reached = calloc((size_t)np, sizeof *f->reached))) {
        free(wrt);
        free(grads);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < np; i++) wrt[i] = train_leaf(f, i);
    if (!t->p.checkpointing) {
        if (apr_backward(f->g, 1, &tg->loss, &tg->dloss, np, wrt, grads)) train_accumulate(f, grads);
    } else {
        wrt[np] = xs[nl];
        apr_tensor *d = NULL;
        if (apr_backward(f->g, 1, &tg->loss, &tg->dloss, np + 1, wrt, grads)) {
            train_accumulate(f, grads);
            d = grads[np];
        }
        for (int l = nl - 1; d && l >= 0; l--) {
            apr_tensor *y = train_layer(f, c, l, xs[l]); /* recomputed: created now, so it runs now */
            apr_tensor *seed = d;
            wrt[np] = xs[l];
            memset(grads, 0, ((size_t)np + 1) * sizeof *grads);
            d = NULL;
            if (apr_backward(f->g, 1, &y, &seed, np + 1, wrt, grads)) {
                train_accumulate(f, grads);
                d = grads[np];
            }
        }
        /* the embedding rows, when the table is trained */
        memset(grads, 0, ((size_t)np + 1) * sizeof *grads);
        if (d && apr_backward(f->g, 1, &xs[0], &d, np, wrt, grads)) train_accumulate(f, grads);
    }
    free(wrt);
    free(grads);
    for (int i = 0; i < np; i++)
        if (!f->reached[i] && !apr_graph_error(f->g))
            return apr_error_set(err, APR_ERR_INTERNAL, "the loss does not depend on %s", t->params[i].name);
    return APR_OK;
}

/* The step graph (train: forward, backward, gradients summed in place) or the evaluation graph. */
static apr_status train_build_forward(llama_train *t, train_graph *tg, bool train, apr_error *err) {
    train_fwd f = {.t = t, .dropout = train && t->p.method != LLAMA_TRAIN_FULL && t->p.lora_dropout > 0};
    const int nl = t->m->hp.n_layer;
    apr_tensor **xs = calloc((size_t)nl + 1, sizeof *xs);
    if (!xs || !(tg->g = apr_graph_new()) || !(f.leaves = calloc((size_t)t->n_params, sizeof *f.leaves))) {
        free(xs);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    f.g = tg->g;
    tg->ids = apr_input(f.g, APR_I32, 1, (int64_t[]){t->n_tok}, "ids");
    tg->targets = apr_input(f.g, APR_I32, 1, (int64_t[]){t->n_tok}, "targets");
    const train_ctx c = train_context(&f);
    xs[0] = apr_get_rows(f.g, train_weight(&f, t->m->tok_embd), tg->ids);
    for (int l = 0; l < nl; l++) xs[l + 1] = train_layer(&f, &c, l, xs[l]);
    tg->loss = train_head(&f, xs[nl], tg->targets);
    apr_graph_output(f.g, tg->loss);
    apr_status s = APR_OK;
    if (train) {
        tg->dloss = apr_input(f.g, APR_F32, 1, (int64_t[]){1}, "dloss");
        s = train_backward(&f, tg, &c, xs, err);
        if (s == APR_OK && f.n_drop) {
            t->n_drop = f.n_drop;
            tg->drop = calloc((size_t)f.n_drop, sizeof *tg->drop);
            t->drop_data = calloc((size_t)f.n_drop, sizeof *t->drop_data);
            t->drop_len = calloc((size_t)f.n_drop, sizeof *t->drop_len);
            if (!tg->drop || !t->drop_data || !t->drop_len) s = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
            for (int i = 0; s == APR_OK && i < f.n_drop; i++) {
                tg->drop[i] = f.drop_in[i];
                t->drop_len[i] = apr_tensor_nelements(f.drop_in[i]);
                if (!(t->drop_data[i] = malloc((size_t)t->drop_len[i] * sizeof(float))))
                    s = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
            }
        }
    }
    free(xs);
    free(f.reached);
    train_fwd_free(&f);
    if (s != APR_OK) return s;
    if (apr_graph_error(tg->g)) return train_graph_error(tg->g, train ? "training step" : "evaluation", err);
    return apr_plan_new(tg->g, t->backends, t->n_backends, &tg->p, err);
}

static apr_status train_build_norms(llama_train *t, apr_error *err) {
    if (!(t->gn = apr_graph_new()) || !(t->norm_out = calloc((size_t)t->n_params, sizeof *t->norm_out)) ||
        !(t->norms = calloc((size_t)t->n_params, sizeof *t->norms)))
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->n_params; i++) {
        const train_param *p = &t->params[i];
        apr_tensor *g = apr_resident(t->gn, APR_F32, p->info.n_dims, p->info.ne, p->g, 0, p->name);
        t->norm_out[i] = apr_sum_repeats(t->gn, apr_mul(t->gn, g, g), 1, (int64_t[]){1});
        apr_graph_output(t->gn, t->norm_out[i]);
    }
    if (apr_graph_error(t->gn)) return train_graph_error(t->gn, "gradient norm", err);
    return apr_plan_new(t->gn, t->backends, t->n_backends, &t->pn, err);
}

static apr_status train_build_update(llama_train *t, apr_error *err) {
    if (!(t->gu = apr_graph_new())) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    const bool sgd = t->p.opt == LLAMA_OPT_SGD;
    t->hp = apr_input(t->gu, APR_F32, 1, (int64_t[]){sgd ? APR_SGD_HP_COUNT : APR_ADAMW_HP_COUNT}, "hyperparameters");
    for (int i = 0; i < t->n_params; i++) {
        const train_param *p = &t->params[i];
        char name[200];
        apr_tensor *w = apr_resident(t->gu, APR_F32, p->info.n_dims, p->info.ne, p->w, 0, p->name);
        snprintf(name, sizeof name, "%s (gradient)", p->name);
        apr_tensor *g = apr_resident(t->gu, APR_F32, p->info.n_dims, p->info.ne, p->g, 0, name);
        snprintf(name, sizeof name, "%s (m)", p->name);
        apr_tensor *m = apr_resident(t->gu, APR_F32, p->info.n_dims, p->info.ne, p->m, 0, name);
        apr_tensor *r;
        if (sgd) {
            r = apr_sgd(t->gu, w, g, m, t->hp);
        } else {
            snprintf(name, sizeof name, "%s (v)", p->name);
            r = apr_adamw(t->gu, w, g, m, apr_resident(t->gu, APR_F32, p->info.n_dims, p->info.ne, p->v, 0, name), t->hp);
        }
        apr_graph_output(t->gu, r);
    }
    if (apr_graph_error(t->gu)) return train_graph_error(t->gu, "optimizer", err);
    return apr_plan_new(t->gu, t->backends, t->n_backends, &t->pu, err);
}

/* Positions restart in every window; the mask keeps windows apart and each causal. */
static apr_status train_build_consts(llama_train *t, apr_error *err) {
    const int n = t->n_tok, L = t->p.seq_len;
    if (!(t->pos = malloc((size_t)n * sizeof *t->pos))) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) t->pos[i] = i % L;
    if (t->p.n_seqs > 1) {
        if (!(t->mask = malloc((size_t)n * (size_t)n * sizeof *t->mask))) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        for (int q = 0; q < n; q++)
            for (int k = 0; k < n; k++) t->mask[(size_t)q * n + k] = (k / L == q / L && k <= q) ? 0.0f : -INFINITY;
    }
    int64_t most = 0;
    for (int i = 0; i < t->n_params; i++) most = t->params[i].info.n > most ? t->params[i].info.n : most;
    if (!(t->zeros = calloc((size_t)most + 1, sizeof *t->zeros))) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    return APR_OK;
}

apr_status llama_train_build(llama_train *t, apr_error *err) {
    apr_status s = train_build_consts(t, err);
    if (s == APR_OK) s = train_build_forward(t, &t->step, true, err);
    if (s == APR_OK) s = train_build_forward(t, &t->eval, false, err);
    if (s == APR_OK) s = train_build_norms(t, err);
    if (s == APR_OK) s = train_build_update(t, err);
    return s;
}

static void train_graph_free(train_graph *tg) {
    apr_plan_free(tg->p);
    apr_graph_free(tg->g);
    free(tg->drop);
    memset(tg, 0, sizeof *tg);
}

void llama_train_unbuild(llama_train *t) {
    train_graph_free(&t->step);
    train_graph_free(&t->eval);
    apr_plan_free(t->pn);
    apr_graph_free(t->gn);
    apr_plan_free(t->pu);
    apr_graph_free(t->gu);
    free(t->norm_out);
    free(t->norms);
    for (int i = 0; i < t->n_drop; i++) free(t->drop_data ? t->drop_data[i] : NULL);
    free(t->drop_data);
    free(t->drop_len);
    free(t->pos);
    free(t->mask);
    free(t->zeros);
}

/* ---------------------------------------------------------------- runs */

static apr_status train_run_forward(llama_train *t, train_graph *tg, const int32_t *ids, const int32_t *targets,
                                    const float *dloss, float *loss, apr_error *err) {
    const size_t bytes = (size_t)t->n_tok * sizeof(int32_t);
    apr_status s = apr_plan_set_input(tg->p, tg->ids, ids, bytes, err);
    if (s == APR_OK) s = apr_plan_set_input(tg->p, tg->targets, targets, bytes, err);
    if (s == APR_OK && dloss) s = apr_plan_set_input(tg->p, tg->dloss, dloss, sizeof *dloss, err);
    for (int i = 0; s == APR_OK && dloss && i < t->n_drop; i++)
        s = apr_plan_set_input(tg->p, tg->drop[i], t->drop_data[i], (size_t)t->drop_len[i] * sizeof(float), err);
    if (s == APR_OK) s = apr_plan_run(tg->p, err);
    if (s == APR_OK) s = apr_plan_get_output(tg->p, tg->loss, loss, sizeof *loss, err);
    return s;
}

apr_status llama_train_run_step(llama_train *t, const int32_t *ids, const int32_t *targets, float dloss, float *loss,
                                apr_error *err) {
    return train_run_forward(t, &t->step, ids, targets, &dloss, loss, err);
}

apr_status llama_train_run_eval(llama_train *t, const int32_t *ids, const int32_t *targets, float *loss, apr_error *err) {
    return train_run_forward(t, &t->eval, ids, targets, NULL, loss, err);
}

apr_status llama_train_run_norms(llama_train *t, apr_error *err) {
    apr_status s = apr_plan_run(t->pn, err);
    for (int i = 0; s == APR_OK && i < t->n_params; i++) {
        float v = 0;
        s = apr_plan_get_output(t->pn, t->norm_out[i], &v, sizeof v, err);
        t->norms[i] = v;
    }
    return s;
}

apr_status llama_train_run_update(llama_train *t, float lr, float gscale, apr_error *err) {
    float hp[APR_ADAMW_HP_COUNT];
    size_t n;
    if (t->p.opt == LLAMA_OPT_SGD) {
        hp[APR_SGD_LR] = lr;
        hp[APR_SGD_MOMENTUM] = t->p.momentum;
        hp[APR_SGD_WEIGHT_DECAY] = t->p.weight_decay;
        hp[APR_SGD_GSCALE] = gscale;
        n = APR_SGD_HP_COUNT;
    } else {
        const double st = (double)t->steps;
        hp[APR_ADAMW_LR] = lr;
        hp[APR_ADAMW_BETA1] = t->p.beta1;
        hp[APR_ADAMW_BETA2] = t->p.beta2;
        hp[APR_ADAMW_EPS] = t->p.eps;
        hp[APR_ADAMW_WEIGHT_DECAY] = t->p.opt == LLAMA_OPT_ADAMW ? t->p.weight_decay : 0.0f;
        hp[APR_ADAMW_C1] = (float)(1.0 / (1.0 - pow(t->p.beta1, st)));
        hp[APR_ADAMW_C2] = (float)(1.0 / (1.0 - pow(t->p.beta2, st)));
        hp[APR_ADAMW_GSCALE] = gscale;
        n = APR_ADAMW_HP_COUNT;
    }
    apr_status s = apr_plan_set_input(t->pu, t->hp, hp, n * sizeof *hp, err);
    return s == APR_OK ? apr_plan_run(t->pu, err) : s;
}

apr_status llama_train_zero(llama_train *t, apr_mem *mem, apr_error *err) {
    return apr_mem_write(mem, 0, t->zeros, apr_mem_size(mem), err);
}

void apr_llama_train_stats(const llama_train *t, apr_plan_stats *out) { apr_plan_stats_get(t->step.p, out); }

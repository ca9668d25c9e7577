/* llama_graph.c — a session: the KV cache (f16 or f32) and the forward graph of a batch of tokens, run by the executor. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

#define LLAMA_MAX_BACKENDS 8
/* A decode graph reads the cache rounded up to a multiple of this many positions, the slots past
 * the last token masked, so one graph and plan serve this many consecutive tokens. */
#define LLAMA_KV_STEP 64

typedef struct graph_outputs {
    apr_tensor *ids, *pos, *logits;
    apr_tensor *mask;               /* [past + n, n] additive mask (sliding window, unfilled cache
                                     * slots), or NULL when every key is seen */
    apr_tensor **k_new, **v_new;    /* [n_layer] kv_dtype [head_dim, n_head_kv, n] to append to the cache */
} graph_outputs;

/* A graph and its plan, kept while the batches that follow have the same shape. */
typedef struct graph_kept {
    apr_graph *g;                   /* NULL when nothing is kept */
    apr_plan *p;
    graph_outputs o;
    int past;                       /* cache slots the graph reads */
} graph_kept;

struct llama_session {
    const llama_model *m;
    int n_ctx;                          /* positions the cache holds */
    int pos;                            /* tokens processed so far */
    apr_backend *backends[LLAMA_MAX_BACKENDS];
    int n_backends;
    apr_dtype kv_dtype;                 /* APR_F16 or APR_F32 */
    size_t kv_elem;                     /* its bytes per element */
    unsigned char **k_cache;            /* [n_layer] of kv_dtype [head_dim, n_head_kv, n_ctx] */
    unsigned char **v_cache;            /* [n_layer] of kv_dtype [head_dim, n_head_kv, n_ctx] */
    llama_pack *pack;                   /* the weights packed on backends[0], or NULL */
    graph_kept decode;                  /* the single-token graph of the current LLAMA_KV_STEP */
};

llama_session_params llama_session_defaults(int n_ctx) {
    return (llama_session_params){.n_ctx = n_ctx, .kv_dtype = APR_F16, .pack_weights = true};
}

apr_status llama_session_new(const llama_model *m, int n_ctx, apr_backend *const *backends, int n_backends,
                             llama_session **out, apr_error *err) {
    llama_session_params p = llama_session_defaults(n_ctx);
    return llama_session_new_ex(m, &p, backends, n_backends, out, err);
}

apr_status llama_session_new_ex(const llama_model *m, const llama_session_params *p, apr_backend *const *backends,
                                int n_backends, llama_session **out, apr_error *err) {
    *out = NULL;
    const int n_ctx = p->n_ctx;
    if (p->kv_dtype != APR_F16 && p->kv_dtype != APR_F32)
        return apr_error_set(err, APR_ERR_INVALID, "KV cache dtype %s is not supported (f16 and f32 are)",
                          apr_dtype_name(p->kv_dtype) ? apr_dtype_name(p->kv_dtype) : "unknown");
    if (n_ctx < 1) return apr_error_set(err, APR_ERR_INVALID, "context size %d must be positive", n_ctx);
    if (n_backends < 1 || n_backends > LLAMA_MAX_BACKENDS)
        return apr_error_set(err, APR_ERR_INVALID, "%d backends given", n_backends);
    llama_session *s = calloc(1, sizeof *s);
    if (!s) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_backends = n_backends;
    s->kv_dtype = p->kv_dtype;
    s->kv_elem = p->kv_dtype == APR_F32 ? 4 : 2;
    memcpy(s->backends, backends, (size_t)n_backends * sizeof *backends);
    const llama_hparams *hp = &m->hp;
    size_t per_layer = (size_t)hp->head_dim * (size_t)hp->n_head_kv * (size_t)n_ctx;
    s->k_cache = calloc((size_t)hp->n_layer, sizeof *s->k_cache);
    s->v_cache = calloc((size_t)hp->n_layer, sizeof *s->v_cache);
    bool ok = s->k_cache && s->v_cache;
    for (int l = 0; ok && l < hp->n_layer; l++) {
        s->k_cache[l] = calloc(per_layer, s->kv_elem);
        s->v_cache[l] = calloc(per_layer, s->kv_elem);
        ok = s->k_cache[l] && s->v_cache[l];
    }
    if (!ok) {
        llama_session_free(s);
        return apr_error_set(err, APR_ERR_NOMEM, "cannot allocate the KV cache (%zu MiB for %d positions)",
                          2 * per_layer * s->kv_elem * (size_t)hp->n_layer >> 20, n_ctx);
    }
    if (p->pack_weights) {
        apr_status st = llama_pack_new(m, backends[0], &s->pack, err);
        if (st != APR_OK) {
            llama_session_free(s);
            return st;
        }
    }
    *out = s;
    return APR_OK;
}

static void graph_kept_free(graph_kept *k) {
    apr_plan_free(k->p);
    apr_graph_free(k->g);
    free(k->o.k_new);
    memset(k, 0, sizeof *k);
}

void llama_session_free(llama_session *s) {
    if (!s) return;
    graph_kept_free(&s->decode);
    llama_pack_free(s->pack);
    for (int l = 0; l < s->m->hp.n_layer; l++) {
        if (s->k_cache) free(s->k_cache[l]);
        if (s->v_cache) free(s->v_cache[l]);
    }
    free(s->k_cache);
    free(s->v_cache);
    free(s);
}

int llama_session_pos(const llama_session *s) { return s->pos; }

/* The dtype, shape and data llama_pack_new packs, so that plans find the packed copies. */
static apr_tensor *graph_weight(apr_graph *g, const gguf_tensor *t) {
    return apr_weight(g, (apr_dtype)t->dtype, t->n_dims, t->ne, t->data, t->name);
}

/* A norm weight as f32, the dtype mul works in. */
static apr_tensor *graph_norm_weight(apr_graph *g, const gguf_tensor *t) {
    apr_tensor *w = apr_weight(g, (apr_dtype)t->dtype, 1, t->ne, t->data, t->name);
    return t->dtype == APR_F32 ? w : apr_cast(g, w, APR_F32);
}

/* y plus the bias broadcast over tokens when the model has one (qwen2). */
static apr_tensor *graph_bias(apr_graph *g, apr_tensor *y, const gguf_tensor *b) {
    return b ? apr_add(g, y, graph_norm_weight(g, b)) : y;
}

/* x [hd, heads, n] reshaped from a projection; qwen3 RMS-normalises each head before rope. */
static apr_tensor *graph_heads(apr_graph *g, apr_tensor *x, int64_t hd, int64_t heads, int n, const gguf_tensor *norm,
                               float eps) {
    x = apr_reshape(g, x, 3, (int64_t[]){hd, heads, n});
    return norm ? apr_mul(g, apr_rms_norm(g, x, eps), graph_norm_weight(g, norm)) : x;
}

/* True when some query of this batch would see a key older than the sliding window. */
static bool graph_needs_swa(const llama_session *s, int n) {
    return s->m->hp.swa_window > 0 && s->pos + n > s->m->hp.swa_window;
}

/* The keys of a batch of n at s->pos are past cache slots, then the batch. mask[j, t] = -inf for
 * the keys the query at position pos + t does not see: cache slots not filled yet (j >= pos) and,
 * with a sliding window, keys at or before pos + t - window. */
static void graph_fill_mask(const llama_session *s, int n, int past, float *mask) {
    const int64_t S = past + n, W = s->m->hp.swa_window;
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < S; j++) {
            const int64_t kpos = j < past ? j : s->pos + (j - past);
            const bool filled = j >= past || j < s->pos;
            mask[t * S + j] = !filled || (W > 0 && kpos <= s->pos + t - W) ? -INFINITY : 0.0f;
        }
}

/* The forward graph of n tokens reading past cache slots; with masked, a mask input hides the
 * slots past s->pos (and the sliding window's old keys) so the graph serves several positions. */
static void graph_build(const llama_session *s, apr_graph *g, int n, int past, bool masked, bool all_logits,
                        graph_outputs *o) {
    const llama_model *m = s->m;
    const llama_hparams *hp = &m->hp;
    const int64_t hd = hp->head_dim, H = hp->n_head, Hkv = hp->n_head_kv, E = hp->n_embd;
    const apr_rope_params rope = {hp->n_rot, hp->rope_layout, hp->rope_base, hp->rope_scale};
    o->ids = apr_input(g, APR_I32, 1, (int64_t[]){n}, "ids");
    o->pos = apr_input(g, APR_I32, 1, (int64_t[]){n}, "positions");
    apr_tensor *x = apr_get_rows(g, graph_weight(g, m->tok_embd), o->ids);
    apr_tensor *ff = m->rope_freqs ? graph_norm_weight(g, m->rope_freqs) : NULL; /* shared by every layer */
    o->mask = masked || graph_needs_swa(s, n) ? apr_input(g, APR_F32, 2, (int64_t[]){past + n, n}, "kv_mask") : NULL;
    for (int l = 0; l < hp->n_layer; l++) {
        const llama_layer *L = &m->layers[l];
        apr_tensor *h = apr_mul(g, apr_rms_norm(g, x, hp->rms_eps), graph_norm_weight(g, L->attn_norm));
        /* the matmuls that read h come one after another (nodes run in creation order), so that a
         * backend can run them as one (cpu: matmul_run_group) */
        apr_tensor *q = apr_matmul(g, graph_weight(g, L->wq), h);
        apr_tensor *k = apr_matmul(g, graph_weight(g, L->wk), h);
        apr_tensor *v = apr_matmul(g, graph_weight(g, L->wv), h);
        q = graph_heads(g, graph_bias(g, q, L->bq), hd, H, n, L->q_norm, hp->rms_eps);
        k = graph_heads(g, graph_bias(g, k, L->bk), hd, Hkv, n, L->k_norm, hp->rms_eps);
        v = graph_heads(g, graph_bias(g, v, L->bv), hd, Hkv, n, NULL, 0);
        q = apr_rope(g, q, o->pos, ff, &rope);
        k = apr_rope(g, k, o->pos, ff, &rope);
        o->k_new[l] = apr_cast(g, k, s->kv_dtype);
        o->v_new[l] = apr_cast(g, v, s->kv_dtype);
        apr_graph_output(g, o->k_new[l]);
        apr_graph_output(g, o->v_new[l]);
        apr_tensor *k_all = o->k_new[l], *v_all = o->v_new[l];
        if (past > 0) {
            /* the cached positions, read in place at every run, followed by this batch */
            apr_tensor *kc = apr_state(g, s->kv_dtype, 3, (int64_t[]){hd, Hkv, past}, s->k_cache[l], "k_cache");
            apr_tensor *vc = apr_state(g, s->kv_dtype, 3, (int64_t[]){hd, Hkv, past}, s->v_cache[l], "v_cache");
            k_all = apr_concat(g, kc, k_all, 2);
            v_all = apr_concat(g, vc, v_all, 2);
        }
        /* [hd, heads, tokens] -> [hd, tokens, heads], the layout attention reads */
        apr_tensor *att = apr_attention(g, apr_permute(g, q, 0, 2, 1, 3), apr_permute(g, k_all, 0, 2, 1, 3),
                                        apr_permute(g, v_all, 0, 2, 1, 3), o->mask, 1.0f / sqrtf((float)hd), true);
        att = apr_reshape(g, att, 2, (int64_t[]){H * hd, n});
        x = apr_add(g, x, apr_matmul(g, graph_weight(g, L->wo), att));
        h = apr_mul(g, apr_rms_norm(g, x, hp->rms_eps), graph_norm_weight(g, L->ffn_norm));
        apr_tensor *gate = apr_matmul(g, graph_weight(g, L->w_gate), h);
        apr_tensor *up = apr_matmul(g, graph_weight(g, L->w_up), h);
        apr_tensor *act = apr_swiglu(g, gate, up);
        x = apr_add(g, x, apr_matmul(g, graph_weight(g, L->w_down), act));
    }
    x = apr_mul(g, apr_rms_norm(g, x, hp->rms_eps), graph_norm_weight(g, m->out_norm));
    if (!all_logits && n > 1) x = apr_slice(g, x, 1, n - 1, 1);
    (void)E;
    o->logits = apr_matmul(g, graph_weight(g, m->output), x);
    apr_graph_output(g, o->logits);
}

/* Builds the graph of n tokens reading past cache slots, and its plan, into k. */
static apr_status graph_make(llama_session *s, int n, int past, bool masked, bool all_logits, graph_kept *k,
                             apr_error *err) {
    const int n_layer = s->m->hp.n_layer;
    memset(k, 0, sizeof *k);
    k->past = past;
    k->g = apr_graph_new();
    k->o.k_new = calloc(2 * (size_t)n_layer, sizeof *k->o.k_new);
    if (!k->g || !k->o.k_new) {
        graph_kept_free(k);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    k->o.v_new = k->o.k_new + n_layer;
    graph_build(s, k->g, n, past, masked, all_logits, &k->o);
    apr_status st = APR_OK;
    if (apr_graph_error(k->g)) st = apr_error_set(err, APR_ERR_INTERNAL, "model graph: %s", apr_graph_error(k->g));
    if (!st) st = apr_plan_new(k->g, s->backends, s->n_backends, &k->p, err);
    if (st) graph_kept_free(k);
    return st;
}

/* Sets the inputs of n tokens at s->pos, runs, and appends their keys and values to the cache. */
static apr_status graph_run(llama_session *s, graph_kept *k, const int32_t *ids, int n, bool all_logits,
                            float *logits, apr_error *err) {
    const llama_hparams *hp = &s->m->hp;
    apr_plan *p = k->p;
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) pos[i] = s->pos + i;
    apr_status st = apr_plan_set_input(p, k->o.ids, ids, (size_t)n * sizeof *ids, err);
    if (!st) st = apr_plan_set_input(p, k->o.pos, pos, (size_t)n * sizeof *pos, err);
    free(pos);
    if (!st && k->o.mask) {
        size_t bytes = (size_t)(k->past + n) * (size_t)n * sizeof(float);
        float *mask = malloc(bytes);
        if (!mask) st = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        else {
            graph_fill_mask(s, n, k->past, mask);
            st = apr_plan_set_input(p, k->o.mask, mask, bytes, err);
            free(mask);
        }
    }
    if (!st) st = apr_plan_run(p, err);
    size_t row = (size_t)hp->head_dim * (size_t)hp->n_head_kv * s->kv_elem; /* cache bytes per position */
    for (int l = 0; !st && l < hp->n_layer; l++) {
        st = apr_plan_get_output(p, k->o.k_new[l], s->k_cache[l] + row * (size_t)s->pos, row * (size_t)n, err);
        if (!st) st = apr_plan_get_output(p, k->o.v_new[l], s->v_cache[l] + row * (size_t)s->pos, row * (size_t)n, err);
    }
    if (!st) {
        size_t rows = all_logits ? (size_t)n : 1;
        st = apr_plan_get_output(p, k->o.logits, logits, rows * (size_t)hp->n_vocab * sizeof(float), err);
    }
    if (!st) s->pos += n;
    return st;
}

apr_status llama_session_eval(llama_session *s, const int32_t *ids, int n, bool all_logits, float *logits,
                              apr_error *err) {
    const llama_hparams *hp = &s->m->hp;
    if (n < 1) return apr_error_set(err, APR_ERR_INVALID, "no tokens to evaluate");
    if (n > s->n_ctx - s->pos)
        return apr_error_set(err, APR_ERR_INVALID, "context overflow: %d tokens at position %d exceed the context of %d (--ctx)",
                          n, s->pos, s->n_ctx);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= hp->n_vocab)
            return apr_error_set(err, APR_ERR_INVALID, "token id %d is outside the vocabulary of %d", ids[i], hp->n_vocab);
    if (n == 1 && s->pos > 0) {
        /* decode: building and planning the graph costs about as much as a few layers of a small
         * model, so the graph over the cache rounded up to LLAMA_KV_STEP slots is kept and rerun */
        int past = (s->pos + LLAMA_KV_STEP - 1) / LLAMA_KV_STEP * LLAMA_KV_STEP;
        if (past > s->n_ctx) past = s->n_ctx;
        if (s->decode.g && s->decode.past != past) graph_kept_free(&s->decode);
        if (!s->decode.g) {
            apr_status st = graph_make(s, 1, past, true, false, &s->decode, err);
            if (st) return st;
        }
        return graph_run(s, &s->decode, ids, 1, all_logits, logits, err);
    }
    graph_kept k;
    apr_status st = graph_make(s, n, s->pos, false, all_logits, &k, err);
    if (!st) st = graph_run(s, &k, ids, n, all_logits, logits, err);
    graph_kept_free(&k);
    return st;
}

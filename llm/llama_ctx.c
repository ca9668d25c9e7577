/* llama_ctx.c — a model at work: its weights placed on a backend, its KV cache, and batches of
 * tokens from several sequences run through kept graphs and plans. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama_graph.h"

#define LLAMA_MAX_BACKENDS 8
/* A decode graph reads the cache rounded up to a multiple of this many positions, the slots past
 * the last token masked, so one graph and plan serve this many consecutive tokens. */
#define LLAMA_KV_STEP 64
/* Graphs kept for the shapes that came last (decode, a server's mixed batches). */
#define LLAMA_KEPT 4

/* A graph and its plan, kept while batches of its shape come. */
typedef struct llama_kept {
    apr_graph *g;        /* NULL when the entry is free */
    apr_plan *p;
    llama_shape sh;
    llama_graph_io io;
    unsigned used;       /* the ctx's clock when last used */
} llama_kept;

struct llama_ctx {
    const llama_model *m;
    apr_backend *backends[LLAMA_MAX_BACKENDS];
    int n_backends;
    llama_pack *placed;              /* every weight placed on backends[0] */
    llama_kv *kv;                    /* on the first backend that writes it in place */
    llama_kept kept[LLAMA_KEPT];
    unsigned clock;
    int plans_made;
    int32_t *scratch_i;              /* [cap_i] positions, slots, out ids of the batch being run */
    size_t cap_i;
    float *scratch_mask;             /* [cap_mask] */
    size_t cap_mask;
    int *seq_span;                   /* [2 n_seq] first and one-past-last position of each sequence in
                                      * the batch being run (-1 = not in it) */
};

llama_ctx_params apr_llama_ctx_defaults(int n_ctx) {
    return (llama_ctx_params){.n_ctx = n_ctx, .n_seq = 1, .kv_dtype = APR_F16, .pack_weights = true};
}

apr_status apr_llama_ctx_new(const llama_model *m, const llama_ctx_params *p, apr_backend *const *backends, int n_backends,
                             llama_ctx **out, apr_error *err) {
    *out = NULL;
    if (n_backends < 1 || n_backends > LLAMA_MAX_BACKENDS) return apr_error_set(err, APR_ERR_INVALID, "%d backends given", n_backends);
    if (p->n_ctx < 1) return apr_error_set(err, APR_ERR_INVALID, "context size %d must be positive", p->n_ctx);
    if (p->n_seq < 1) return apr_error_set(err, APR_ERR_INVALID, "%d sequences: at least one", p->n_seq);
    llama_ctx *c = calloc(1, sizeof *c);
    if (!c) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    c->m = m;
    c->n_backends = n_backends;
    memcpy(c->backends, backends, (size_t)n_backends * sizeof *backends);
    if (!(c->seq_span = malloc(2 * (size_t)p->n_seq * sizeof *c->seq_span))) {
        free(c);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    int home = -1;
    char why[LLAMA_MAX_BACKENDS][160];
    for (int b = 0; b < n_backends && home < 0; b++)
        if (apr_backend_can_set_rows(backends[b], p->kv_dtype, APR_F32, why[b], sizeof why[b])) home = b;
    apr_status st = APR_OK;
    if (home < 0)
        st = apr_error_set(err, APR_ERR_UNSUPPORTED, "no backend can hold the KV cache (%s: %s)", apr_backend_name(backends[0]), why[0]);
    if (!st) st = apr_llama_kv_new(backends[home], p->kv_dtype, m->hp.n_layer, m->hp.head_dim, m->hp.n_head_kv, p->n_ctx,
                                   p->n_seq, &c->kv, err);
    if (!st) st = apr_llama_place_new(m, backends[0], p->pack_weights, &c->placed, err);
    if (st) {
        apr_llama_ctx_free(c);
        return st;
    }
    *out = c;
    return APR_OK;
}

static void kept_free(llama_kept *k) {
    apr_plan_free(k->p);
    apr_graph_free(k->g);
    memset(k, 0, sizeof *k);
}

void apr_llama_ctx_free(llama_ctx *c) {
    if (!c) return;
    for (int i = 0; i < LLAMA_KEPT; i++) kept_free(&c->kept[i]);
    apr_llama_pack_free(c->placed);
    apr_llama_kv_free(c->kv);
    free(c->scratch_i);
    free(c->scratch_mask);
    free(c->seq_span);
    free(c);
}

llama_kv *apr_llama_ctx_kv(llama_ctx *c) { return c->kv; }
const llama_model *apr_llama_ctx_model(const llama_ctx *c) { return c->m; }
int apr_llama_ctx_plans_made(const llama_ctx *c) { return c->plans_made; }

static bool shape_eq(const llama_shape *a, const llama_shape *b) {
    return a->n == b->n && a->s0 == b->s0 && a->S == b->S && a->masked == b->masked && a->causal == b->causal &&
           a->n_out == b->n_out && a->last_only == b->last_only;
}

/* The kept graph of shape sh, built and planned when there is none (replacing the oldest). */
static apr_status ctx_graph(llama_ctx *c, const llama_shape *sh, llama_kept **out, apr_error *err) {
    llama_kept *k = NULL;
    for (int i = 0; i < LLAMA_KEPT && !k; i++)
        if (c->kept[i].g && shape_eq(&c->kept[i].sh, sh)) k = &c->kept[i];
    if (!k) {
        k = &c->kept[0];
        for (int i = 1; i < LLAMA_KEPT; i++)
            if (!c->kept[i].g || (k->g && c->kept[i].used < k->used)) k = &c->kept[i];
        kept_free(k);
        k->g = apr_graph_new();
        if (!k->g) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        k->sh = *sh;
        llama_graph_build(c->m, c->kv, sh, k->g, &k->io);
        apr_status st = APR_OK;
        if (apr_graph_error(k->g)) st = apr_error_set(err, APR_ERR_INTERNAL, "model graph: %s", apr_graph_error(k->g));
        if (!st) st = apr_plan_new(k->g, c->backends, c->n_backends, &k->p, err);
        if (st) {
            kept_free(k);
            return st;
        }
        c->plans_made++;
    }
    k->used = ++c->clock;
    *out = k;
    return APR_OK;
}

static bool ctx_reserve(llama_ctx *c, size_t n_i, size_t n_mask) {
    if (n_i > c->cap_i) {
        int32_t *p = realloc(c->scratch_i, n_i * sizeof *p);
        if (!p) return false;
        c->scratch_i = p, c->cap_i = n_i;
    }
    if (n_mask > c->cap_mask) {
        float *p = realloc(c->scratch_mask, n_mask * sizeof *p);
        if (!p) return false;
        c->scratch_mask = p, c->cap_mask = n_mask;
    }
    return true;
}

/* Checks the batch and works out each token's position (pos[]) and its graph's shape. */
static apr_status ctx_shape(const llama_ctx *c, const llama_batch *b, int32_t *pos, int *start, int *end,
                            llama_shape *sh, apr_error *err) {
    const llama_kv *kv = c->kv;
    const llama_hparams *hp = &c->m->hp;
    if (b->n < 1) return apr_error_set(err, APR_ERR_INVALID, "no tokens to evaluate");
    for (int s = 0; s < kv->n_seq; s++) start[s] = end[s] = -1;
    int n_out = 0, first_seq = -1;
    bool one_seq = true;
    for (int i = 0; i < b->n; i++) {
        const int s = b->seq ? b->seq[i] : 0;
        if (s < 0 || s >= kv->n_seq) return apr_error_set(err, APR_ERR_INVALID, "token %d: sequence %d of %d", i, s, kv->n_seq);
        if (b->ids[i] < 0 || b->ids[i] >= hp->n_vocab)
            return apr_error_set(err, APR_ERR_INVALID, "token id %d is outside the vocabulary of %d", b->ids[i], hp->n_vocab);
        if (first_seq < 0) first_seq = s;
        one_seq = one_seq && s == first_seq;
        pos[i] = b->pos ? b->pos[i] : (end[s] >= 0 ? end[s] : kv->len[s]);
        if (end[s] < 0) {
            if (pos[i] < 0 || pos[i] > kv->len[s])
                return apr_error_set(err, APR_ERR_INVALID, "sequence %d holds %d positions; a batch cannot start it at %d", s,
                                     kv->len[s], pos[i]);
            start[s] = pos[i];
        } else if (pos[i] != end[s]) {
            return apr_error_set(err, APR_ERR_INVALID, "sequence %d: position %d follows %d in the batch", s, pos[i], end[s] - 1);
        }
        if (pos[i] >= kv->n_ctx)
            return apr_error_set(err, APR_ERR_INVALID, "context overflow: position %d of sequence %d exceeds the context of %d (--ctx)",
                                 pos[i], s, kv->n_ctx);
        end[s] = pos[i] + 1;
        n_out += b->logits ? b->logits[i] : i == b->n - 1;
    }
    memset(sh, 0, sizeof *sh);
    sh->n = b->n;
    sh->n_out = n_out;
    sh->last_only = n_out == 1 && (!b->logits || b->logits[b->n - 1]);
    if (n_out == 0) return apr_error_set(err, APR_ERR_INVALID, "the batch wants no logits");
    if (one_seq) {
        sh->s0 = llama_kv_slot(kv, first_seq, 0);
        const int past = start[first_seq], last = end[first_seq];
        if (b->n == 1 && past > 0) {
            /* decode: one graph for LLAMA_KV_STEP positions, the slots past the token masked */
            sh->S = (last + LLAMA_KV_STEP - 1) / LLAMA_KV_STEP * LLAMA_KV_STEP;
            if (sh->S > kv->n_ctx) sh->S = kv->n_ctx;
            sh->masked = true;
        } else {
            sh->S = last;
            sh->causal = true;
            sh->masked = hp->swa_window > 0 && last > hp->swa_window;
        }
    } else {
        int64_t lo = INT64_MAX, hi = 0;
        for (int s = 0; s < kv->n_seq; s++)
            if (end[s] >= 0) {
                lo = lo < llama_kv_slot(kv, s, 0) ? lo : llama_kv_slot(kv, s, 0);
                hi = hi > llama_kv_slot(kv, s, end[s]) ? hi : llama_kv_slot(kv, s, end[s]);
            }
        sh->s0 = lo;
        sh->S = (int)(hi - lo);
        sh->masked = true;
    }
    return APR_OK;
}

/* mask[t, j] = -inf for the slots s0 + j token t does not see: other sequences' slots, its own
 * positions after it, and with a sliding window the positions at or before pos - window. */
static void ctx_fill_mask(const llama_ctx *c, const llama_batch *b, const int32_t *pos, const llama_shape *sh, float *mask) {
    const llama_kv *kv = c->kv;
    const int64_t W = c->m->hp.swa_window;
    for (int t = 0; t < b->n; t++) {
        const int64_t base = llama_kv_slot(kv, b->seq ? b->seq[t] : 0, 0);
        for (int64_t j = 0; j < sh->S; j++) {
            const int64_t kp = sh->s0 + j - base;
            const bool seen = kp >= 0 && kp <= pos[t] && !(W > 0 && kp <= pos[t] - W);
            mask[(int64_t)t * sh->S + j] = seen ? 0.0f : -INFINITY;
        }
    }
}

apr_status apr_llama_ctx_decode(llama_ctx *c, const llama_batch *b, float *logits, apr_error *err) {
    llama_kv *kv = c->kv;
    const int n = b->n;
    if (n < 1) return apr_error_set(err, APR_ERR_INVALID, "no tokens to evaluate");
    const int Hkv = kv->n_head_kv;
    if (!ctx_reserve(c, (2 + (size_t)Hkv) * (size_t)n, 0)) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    int *start = c->seq_span, *end = start + kv->n_seq;
    int32_t *pos = c->scratch_i, *rows = pos + n, *out_ids = rows + (size_t)Hkv * n;
    llama_shape sh;
    apr_status st = ctx_shape(c, b, pos, start, end, &sh, err);
    const bool shaped = st == APR_OK;
    if (!st && sh.masked && !ctx_reserve(c, 0, (size_t)sh.S * (size_t)n))
        st = apr_error_set(err, APR_ERR_NOMEM, "out of memory for the mask");
    pos = c->scratch_i, rows = pos + n, out_ids = rows + (size_t)Hkv * n; /* the scratch may have moved */
    llama_kept *k = NULL;
    if (!st) st = ctx_graph(c, &sh, &k, err);
    if (!st) {
        int n_out = 0;
        for (int i = 0; i < n; i++) {
            const int64_t slot = llama_kv_slot(kv, b->seq ? b->seq[i] : 0, pos[i]);
            for (int h = 0; h < Hkv; h++) rows[(size_t)Hkv * i + h] = (int32_t)(h * kv->n_slots + slot);
            if (b->logits ? b->logits[i] : i == n - 1) out_ids[n_out++] = i;
        }
        apr_plan *p = k->p;
        st = apr_plan_set_input(p, k->io.ids, b->ids, (size_t)n * sizeof(int32_t), err);
        if (!st) st = apr_plan_set_input(p, k->io.pos, pos, (size_t)n * sizeof(int32_t), err);
        if (!st) st = apr_plan_set_input(p, k->io.slots, rows, (size_t)Hkv * n * sizeof(int32_t), err);
        if (!st && k->io.out_ids) st = apr_plan_set_input(p, k->io.out_ids, out_ids, (size_t)n_out * sizeof(int32_t), err);
        if (!st && k->io.mask) {
            ctx_fill_mask(c, b, pos, &sh, c->scratch_mask);
            st = apr_plan_set_input(p, k->io.mask, c->scratch_mask, (size_t)sh.S * (size_t)n * sizeof(float), err);
        }
        if (!st) st = apr_plan_run(p, err);
        if (!st)
            st = apr_plan_get_output(p, k->io.logits, logits, (size_t)sh.n_out * (size_t)c->m->hp.n_vocab * sizeof(float), err);
    }
    /* a prompt's graph rarely comes again, and its arena is the largest: the backend keeps that
     * for the next plan instead */
    if (k && sh.causal) kept_free(k);
    /* the cache now holds each sequence up to its last token (even after a failed run, the positions
     * from the batch's start on are not to be trusted) */
    for (int s = 0; shaped && s < kv->n_seq; s++)
        if (end[s] >= 0) kv->len[s] = st ? start[s] : end[s];
    return st;
}

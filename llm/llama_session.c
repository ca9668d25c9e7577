/* llama_session.c — a session: a handle on one sequence of a context, which it may own. */
#include <stdlib.h>

#include "llama.h"

struct llama_session {
    llama_ctx *ctx;
    bool own;            /* the session made ctx and frees it */
    int seq;             /* its sequence in ctx */
    bool *want;          /* [cap] logits flags of the last batch */
    int32_t *seqs;       /* [cap] its sequence ids (all seq) */
    int cap;
};

llama_session_params apr_llama_session_defaults(int n_ctx) {
    return (llama_session_params){.n_ctx = n_ctx, .kv_dtype = APR_F16, .pack_weights = true};
}

apr_status apr_llama_session_new(const llama_model *m, int n_ctx, apr_backend *const *backends, int n_backends,
                                 llama_session **out, apr_error *err) {
    llama_session_params p = apr_llama_session_defaults(n_ctx);
    return apr_llama_session_new_ex(m, &p, backends, n_backends, out, err);
}

apr_status apr_llama_session_new_ex(const llama_model *m, const llama_session_params *p, apr_backend *const *backends,
                                    int n_backends, llama_session **out, apr_error *err) {
    *out = NULL;
    llama_ctx_params cp = apr_llama_ctx_defaults(p->n_ctx);
    cp.kv_dtype = p->kv_dtype;
    cp.pack_weights = p->pack_weights;
    llama_ctx *c;
    apr_status st = apr_llama_ctx_new(m, &cp, backends, n_backends, &c, err);
    if (st) return st;
    if ((st = apr_llama_session_on(c, 0, out, err)) != APR_OK) {
        apr_llama_ctx_free(c);
        return st;
    }
    (*out)->own = true;
    return APR_OK;
}

apr_status apr_llama_session_on(llama_ctx *c, int seq, llama_session **out, apr_error *err) {
    *out = NULL;
    if (seq < 0 || seq >= apr_llama_ctx_kv(c)->n_seq)
        return apr_error_set(err, APR_ERR_INVALID, "sequence %d of a context of %d", seq, apr_llama_ctx_kv(c)->n_seq);
    llama_session *s = calloc(1, sizeof *s);
    if (!s) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    s->ctx = c;
    s->seq = seq;
    *out = s;
    return APR_OK;
}

void apr_llama_session_free(llama_session *s) {
    if (!s) return;
    if (s->own) apr_llama_ctx_free(s->ctx);
    free(s->want);
    free(s->seqs);
    free(s);
}

int apr_llama_session_pos(const llama_session *s) { return apr_llama_ctx_kv(s->ctx)->len[s->seq]; }
llama_ctx *apr_llama_session_ctx(llama_session *s) { return s->ctx; }

apr_status apr_llama_session_eval(llama_session *s, const int32_t *ids, int n, bool all_logits, float *logits,
                                  apr_error *err) {
    if (n < 1) return apr_error_set(err, APR_ERR_INVALID, "no tokens to evaluate");
    const llama_kv *kv = apr_llama_ctx_kv(s->ctx);
    if (n > kv->n_ctx - kv->len[s->seq])
        return apr_error_set(err, APR_ERR_INVALID, "context overflow: %d tokens at position %d exceed the context of %d (--ctx)",
                             n, kv->len[s->seq], kv->n_ctx);
    if (n > s->cap) {
        bool *w = realloc(s->want, (size_t)n * sizeof *w);
        if (w) s->want = w;
        int32_t *q = realloc(s->seqs, (size_t)n * sizeof *q);
        if (q) s->seqs = q;
        if (!w || !q) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        s->cap = n;
    }
    for (int i = 0; i < n; i++) s->seqs[i] = s->seq, s->want[i] = true;
    llama_batch b = {.n = n, .ids = ids, .seq = s->seqs, .logits = all_logits ? s->want : NULL};
    return apr_llama_ctx_decode(s->ctx, &b, logits, err);
}

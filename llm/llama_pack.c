/* llama_pack.c — a model's weights placed (apr_backend_place_weight) or its matmul weights packed
 * (apr_backend_pack_weight) on one backend, for as long as a holder keeps them. */
#include <stdlib.h>

#include "llama.h"

struct llama_pack {
    apr_backend *be;
    const void **data;   /* [n] the weights packed, one reference each, in packing order */
    int n;
};

/* Every W of a MATMUL in the forward graph (graph_build): attention and feed-forward projections
 * of each layer, and the output matrix (the embedding when tied: its GET_ROWS still reads the
 * original). Returns how many it wrote; out holds 7 n_layer + 1. */
static int llama_pack_list(const llama_model *m, const gguf_tensor **out) {
    int n = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const llama_layer *L = &m->layers[l];
        const gguf_tensor *w[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof w / sizeof *w; i++) out[n++] = w[i];
    }
    out[n++] = m->output;
    return n;
}

/* Every weight the forward graph reads, matmul weights first (n_mm of them, as llama_pack_list). */
static int llama_place_list(const llama_model *m, const gguf_tensor **out, int *n_mm) {
    int n = llama_pack_list(m, out);
    *n_mm = n;
    const gguf_tensor *top[] = {m->tok_embd, m->out_norm, m->rope_freqs};
    for (size_t i = 0; i < sizeof top / sizeof *top; i++)
        if (top[i]) out[n++] = top[i];
    for (int l = 0; l < m->hp.n_layer; l++) {
        const llama_layer *L = &m->layers[l];
        const gguf_tensor *w[] = {L->attn_norm, L->ffn_norm, L->bq, L->bk, L->bv, L->q_norm, L->k_norm};
        for (size_t i = 0; i < sizeof w / sizeof *w; i++)
            if (w[i]) out[n++] = w[i];
    }
    return n;
}

/* The holder of pack (place false: only the matmul weights, packed, those the backend declines
 * skipped) or of every weight placed (place true), the matmul ones packed too when pack is set. */
static apr_status llama_hold(const llama_model *m, apr_backend *be, bool place, bool pack, llama_pack **out,
                             apr_error *err) {
    *out = NULL;
    const int cap = 14 * m->hp.n_layer + 4;
    llama_pack *p = calloc(1, sizeof *p);
    const gguf_tensor **list = calloc((size_t)cap, sizeof *list);
    if (p) p->data = calloc((size_t)cap, sizeof *p->data);
    if (!p || !list || !p->data) {
        if (p) free(p->data);
        free(p);
        free(list);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    p->be = be;
    int n_mm, n = place ? llama_place_list(m, list, &n_mm) : (n_mm = llama_pack_list(m, list));
    apr_status st = APR_OK;
    for (int i = 0; i < n && st == APR_OK; i++) {
        const gguf_tensor *t = list[i];
        apr_error e;
        /* the dtype, shape and data graph_weight and graph_norm_weight hand apr_weight (norms and
         * biases as 1-D), so that plans find the copy */
        const int n_dims = i < n_mm || t == m->tok_embd ? t->n_dims : 1;
        apr_status s = place ? apr_backend_place_weight(be, (apr_dtype)t->dtype, n_dims, t->ne, t->data,
                                                        pack && i < n_mm ? APR_PLACE_PACK : 0, t->name, &e)
                             : apr_backend_pack_weight(be, (apr_dtype)t->dtype, n_dims, t->ne, t->data, t->name, &e);
        if (s == APR_OK) p->data[p->n++] = t->data;
        else if (place || s != APR_ERR_UNSUPPORTED) /* a declined pack keeps the file's layout */
            st = apr_error_set(err, s, "%s the weights on %s: %s", place ? "placing" : "packing", apr_backend_name(be), e.msg);
    }
    free(list);
    if (st != APR_OK) {
        apr_llama_pack_free(p);
        return st;
    }
    *out = p;
    return APR_OK;
}

apr_status apr_llama_pack_new(const llama_model *m, apr_backend *be, llama_pack **out, apr_error *err) {
    return llama_hold(m, be, false, true, out, err);
}

apr_status apr_llama_place_new(const llama_model *m, apr_backend *be, bool pack, llama_pack **out, apr_error *err) {
    return llama_hold(m, be, true, pack, out, err);
}

void apr_llama_pack_free(llama_pack *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) apr_backend_unpack_weight(p->be, p->data[i]);
    free(p->data);
    free(p);
}

int apr_llama_pack_count(const llama_pack *p) { return p ? p->n : 0; }

/* llama_graph.c — the forward graph of a batch of tokens: embeddings, layers that write their keys
 * and values into the KV cache in place and attend over it, and the logits. */
#include "llama_graph.h"

#include <math.h>

/* The dtype, shape and data apr_llama_place_new places, so that plans find the placed copies. */
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

/* Writes x [hd, Hkv, n] into rows io->slots of the head-major cache table in mem, then returns the
 * slots [s0, s0 + S) of the table as attention reads them: [hd, S, Hkv], each head's run in order. */
static apr_tensor *graph_cache(apr_graph *g, const llama_kv *kv, apr_mem *mem, apr_tensor *x, const llama_shape *sh,
                               const llama_graph_io *io, const char *name) {
    const int64_t hd = kv->head_dim, Hkv = kv->n_head_kv;
    apr_tensor *table = apr_resident(g, kv->dtype, 2, (int64_t[]){hd, kv->n_slots * Hkv}, mem, 0, name);
    table = apr_set_rows(g, table, apr_reshape(g, x, 2, (int64_t[]){hd, Hkv * sh->n}), io->slots);
    return apr_slice(g, apr_reshape(g, table, 3, (int64_t[]){hd, kv->n_slots, Hkv}), 1, sh->s0, sh->S);
}

void llama_graph_build(const llama_model *m, const llama_kv *kv, const llama_shape *sh, apr_graph *g, llama_graph_io *io) {
    const llama_hparams *hp = &m->hp;
    const int n = sh->n;
    const int64_t hd = hp->head_dim, H = hp->n_head, Hkv = hp->n_head_kv;
    const apr_rope_params rope = {hp->n_rot, hp->rope_layout, hp->rope_base, hp->rope_scale};
    io->ids = apr_input(g, APR_I32, 1, (int64_t[]){n}, "ids");
    io->pos = apr_input(g, APR_I32, 1, (int64_t[]){n}, "positions");
    io->slots = apr_input(g, APR_I32, 1, (int64_t[]){Hkv * n}, "kv_rows");
    io->mask = sh->masked ? apr_input(g, APR_F32, 2, (int64_t[]){sh->S, n}, "kv_mask") : NULL;
    io->out_ids = !sh->last_only && sh->n_out < n ? apr_input(g, APR_I32, 1, (int64_t[]){sh->n_out}, "out_ids") : NULL;
    apr_tensor *x = apr_get_rows(g, graph_weight(g, m->tok_embd), io->ids);
    apr_tensor *ff = m->rope_freqs ? graph_norm_weight(g, m->rope_freqs) : NULL; /* shared by every layer */
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
        q = apr_rope(g, q, io->pos, ff, &rope);
        k = apr_rope(g, k, io->pos, ff, &rope);
        apr_tensor *k_all = graph_cache(g, kv, kv->k[l], k, sh, io, "k_cache");
        apr_tensor *v_all = graph_cache(g, kv, kv->v[l], v, sh, io, "v_cache");
        /* q [hd, heads, tokens] -> [hd, tokens, heads], the layout attention reads */
        apr_tensor *att = apr_attention(g, apr_permute(g, q, 0, 2, 1, 3), k_all, v_all, io->mask,
                                        1.0f / sqrtf((float)hd), sh->causal);
        att = apr_reshape(g, att, 2, (int64_t[]){H * hd, n});
        x = apr_add(g, x, apr_matmul(g, graph_weight(g, L->wo), att));
        h = apr_mul(g, apr_rms_norm(g, x, hp->rms_eps), graph_norm_weight(g, L->ffn_norm));
        apr_tensor *gate = apr_matmul(g, graph_weight(g, L->w_gate), h);
        apr_tensor *up = apr_matmul(g, graph_weight(g, L->w_up), h);
        apr_tensor *act = apr_swiglu(g, gate, up);
        x = apr_add(g, x, apr_matmul(g, graph_weight(g, L->w_down), act));
    }
    x = apr_mul(g, apr_rms_norm(g, x, hp->rms_eps), graph_norm_weight(g, m->out_norm));
    if (sh->last_only && n > 1) x = apr_slice(g, x, 1, n - 1, 1);
    else if (io->out_ids) x = apr_get_rows(g, x, io->out_ids);
    io->logits = apr_matmul(g, graph_weight(g, m->output), x);
    apr_graph_output(g, io->logits);
}

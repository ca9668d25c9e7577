/* hf_import_folder.c — a Hugging Face folder (config, safetensors, tokenizer) into an import: tensor names mapped, llama q/k permuted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_internal.h"

/* HF suffix after "model.layers.N." -> GGUF suffix after "blk.N."; which rows get permuted. */
static const struct { const char *hf, *gguf; char perm; } hf_import_folder_layer[] = {
    {"self_attn.q_proj.weight", "attn_q.weight", 'q'},   {"self_attn.k_proj.weight", "attn_k.weight", 'k'},
    {"self_attn.v_proj.weight", "attn_v.weight", 0},     {"self_attn.o_proj.weight", "attn_output.weight", 0},
    {"self_attn.q_proj.bias", "attn_q.bias", 'q'},       {"self_attn.k_proj.bias", "attn_k.bias", 'k'},
    {"self_attn.v_proj.bias", "attn_v.bias", 0},         {"self_attn.q_norm.weight", "attn_q_norm.weight", 0},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", 0}, {"mlp.gate_proj.weight", "ffn_gate.weight", 0},
    {"mlp.up_proj.weight", "ffn_up.weight", 0},          {"mlp.down_proj.weight", "ffn_down.weight", 0},
    {"input_layernorm.weight", "attn_norm.weight", 0},   {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
};

static const struct { const char *hf, *gguf; } hf_import_folder_global[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

/* The GGUF name of an HF tensor (empty = skip it); false when the name is unknown. */
static bool hf_import_folder_name(const char *hf, const hf_config *c, char *out, size_t cap, char *perm) {
    *perm = 0;
    *out = 0;
    for (size_t i = 0; i < sizeof hf_import_folder_global / sizeof *hf_import_folder_global; i++)
        if (!strcmp(hf, hf_import_folder_global[i].hf)) {
            snprintf(out, cap, "%s", hf_import_folder_global[i].gguf);
            return true;
        }
    int layer, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used > 0 && layer >= 0 && layer < c->n_layer) {
        const char *rest = hf + used;
        if (!strcmp(rest, "self_attn.rotary_emb.inv_freq")) return true; /* recomputed from rope_theta */
        for (size_t i = 0; i < sizeof hf_import_folder_layer / sizeof *hf_import_folder_layer; i++)
            if (!strcmp(rest, hf_import_folder_layer[i].hf)) {
                snprintf(out, cap, "blk.%d.%s", layer, hf_import_folder_layer[i].gguf);
                *perm = hf_import_folder_layer[i].perm;
                return true;
            }
    }
    return false;
}

static apr_status hf_import_folder_tensor(hf_import *im, const char *file, const safetensors_tensor *t, const hf_config *c,
                                          apr_error *err) {
    char name[128], perm;
    if (!hf_import_folder_name(t->name, c, name, sizeof name, &perm))
        return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: tensor '%s' has no GGUF counterpart for %s", file, t->name, im->arch);
    if (!*name) return APR_OK;
    if (t->n_dims < 1 || t->n_dims > 4)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s' has %d dims (1 to 4 expected)", file, t->name, t->n_dims);
    int64_t ne[4];
    for (int i = 0; i < t->n_dims; i++) ne[i] = t->shape[t->n_dims - 1 - i]; /* GGUF lists the innermost dim first */
    const void *data = t->data;
    if (perm && c->permute) {
        int heads = perm == 'q' ? c->n_head : c->n_head_kv;
        int64_t rows = t->shape[0];
        if (rows != (int64_t)heads * c->head_dim)
            return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s' has %lld rows, expected %d heads x %d", file, t->name,
                                  (long long)rows, heads, c->head_dim);
        void *dst = hf_import_alloc(im, t->size);
        if (!dst) return apr_error_set(err, APR_ERR_NOMEM, "out of memory copying %s", t->name);
        hf_import_permute_rows(dst, t->data, heads, c->head_dim, t->size / (uint64_t)rows);
        data = dst;
    }
    hf_import_add(im, name, t->dtype, t->n_dims, ne, data, t->size);
    return APR_OK;
}

apr_status apr_hf_import_folder(const char *dir, hf_import **out, apr_error *err) {
    *out = NULL;
    hf_import *im = hf_import_new();
    if (!im) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    hf_config c = {0};
    apr_status st = hf_config_read(im, dir, &c, err);
    if (!st) st = hf_weights_open(im, dir, err);
    const safetensors_tensor *emb = st ? NULL : hf_weights_find(im, "model.embed_tokens.weight");
    if (!st && (!emb || emb->n_dims != 2 || emb->shape[1] != c.n_embd))
        st = apr_error_set(err, APR_ERR_FORMAT, "%s: model.embed_tokens.weight is missing or not [vocab, %d]", dir, c.n_embd);
    /* refuse an incomplete model here rather than write a file no loader accepts */
    for (int l = 0; !st && l < c.n_layer; l++)
        for (size_t i = 0; !st && i < sizeof hf_import_folder_layer / sizeof *hf_import_folder_layer; i++) {
            const char *suffix = hf_import_folder_layer[i].hf;
            if (strstr(suffix, ".bias") || strstr(suffix, "_norm.")) continue; /* optional: biases, q/k norms */
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);
            if (!hf_weights_find(im, name)) st = apr_error_set(err, APR_ERR_FORMAT, "%s: tensor %s is missing", dir, name);
        }
    if (!st && !hf_weights_find(im, "model.norm.weight"))
        st = apr_error_set(err, APR_ERR_FORMAT, "%s: tensor model.norm.weight is missing", dir);
    for (int s = 0; !st && s < im->n_shards; s++)
        for (int64_t i = 0; !st && i < apr_safetensors_count(im->shards[s]); i++)
            st = hf_import_folder_tensor(im, dir, apr_safetensors_at(im->shards[s], i), &c, err);
    if (!st) {
        char key[64];
        snprintf(key, sizeof key, "%s.vocab_size", im->arch);
        apr_gguf_writer_set_u32(im->w, key, (uint32_t)emb->shape[0]);
        st = hf_vocab_write(im, dir, emb->shape[0], err);
    }
    if (st) { apr_hf_import_free(im); return st; }
    *out = im;
    return APR_OK;
}

/* llama_load.c — Llama-family hyperparameters and weight tensors from a GGUF file, every shape checked.
 * One graph serves llama, qwen2 and qwen3: the architectures differ only in optional tensors
 * (q/k/v bias, q/k norm, rope_freqs) and the rope layout, all read from the file. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr_quant.h"
#include "llama.h"

/* "{arch}.{suffix}" as a u32; required keys fail with the key's name. */
static apr_status load_u32(const gguf_file *f, const char *arch, const char *suffix, bool required, uint32_t dflt,
                           int *out, apr_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    if (apr_gguf_get_u32(f, key, &v)) {
        if (v > (1u << 24)) return apr_error_set(err, APR_ERR_FORMAT, "%s: %s = %u is out of range", apr_gguf_path(f), key, v);
        *out = (int)v;
        return APR_OK;
    }
    if (required) return apr_error_set(err, APR_ERR_FORMAT, "%s: required key %s is missing", apr_gguf_path(f), key);
    *out = (int)dflt;
    return APR_OK;
}

static float load_f32(const gguf_file *f, const char *arch, const char *suffix, float dflt) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    float v;
    return apr_gguf_get_f32(f, key, &v) ? v : dflt;
}

/* Finds a tensor and checks its dtype family and shape (ne1 = 1 for vectors). */
static apr_status load_tensor(const gguf_file *f, const char *name, int64_t ne0, int64_t ne1, bool required,
                              const gguf_tensor **out, apr_error *err) {
    const gguf_tensor *t = apr_gguf_tensor_find(f, name);
    *out = t;
    if (!t) return required ? apr_error_set(err, APR_ERR_FORMAT, "%s: tensor %s is missing", apr_gguf_path(f), name) : APR_OK;
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                         apr_gguf_path(f), name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                         (long long)t->ne[3], (long long)ne0, (long long)ne1);
    /* Matrices may be any block type a matmul or a row lookup takes; vectors (norms, biases) are
     * added and multiplied, which only float tensors are. */
    bool is_float = t->dtype == APR_F32 || t->dtype == APR_F16 || t->dtype == APR_BF16;
    bool is_block = ne1 > 1 && apr_quant_is_block((apr_dtype)t->dtype) && t->dtype != APR_Q8_K;
    if (!is_float && !is_block)
        return apr_error_set(err, APR_ERR_UNSUPPORTED,
                             "%s: tensor %s is %s, which apr cannot run here (f32, f16, bf16%s can)", apr_gguf_path(f), name,
                             apr_gguf_dtype_name(t->dtype) ? apr_gguf_dtype_name(t->dtype) : "an unknown type",
                             ne1 > 1 ? " and q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K" : "");
    return APR_OK;
}

#define LOAD_ARCHS "llama, qwen2, qwen3"

static bool load_known_arch(const char *arch) {
    return !strcmp(arch, "llama") || !strcmp(arch, "qwen2") || !strcmp(arch, "qwen3");
}

apr_status apr_llama_model_load(const gguf_file *f, llama_model **out, apr_error *err) {
    *out = NULL;
    const char *arch = apr_gguf_get_str(f, "general.architecture");
    if (!arch) return apr_error_set(err, APR_ERR_FORMAT, "%s: general.architecture is missing: not a model file", apr_gguf_path(f));
    if (!load_known_arch(arch))
        return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (supported: " LOAD_ARCHS ")",
                         apr_gguf_path(f), arch);
    llama_model *m = calloc(1, sizeof *m);
    if (!m) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    llama_hparams *hp = &m->hp;
    m->file = f;
    snprintf(hp->arch, sizeof hp->arch, "%s", arch);
    apr_status st = APR_OK;
    if (!st) st = load_u32(f, arch, "block_count", true, 0, &hp->n_layer, err);
    if (!st) st = load_u32(f, arch, "embedding_length", true, 0, &hp->n_embd, err);
    if (!st) st = load_u32(f, arch, "attention.head_count", true, 0, &hp->n_head, err);
    if (!st) st = load_u32(f, arch, "attention.head_count_kv", false, (uint32_t)hp->n_head, &hp->n_head_kv, err);
    if (!st) st = load_u32(f, arch, "feed_forward_length", true, 0, &hp->n_ff, err);
    if (!st) st = load_u32(f, arch, "context_length", false, 2048, &hp->n_ctx_train, err);
    /* head size: explicit in Qwen3 and some Llama 3 files, where it need not be n_embd / n_head */
    if (!st) st = load_u32(f, arch, "attention.key_length", false, 0, &hp->head_dim, err);
    int v_len = 0;
    if (!st) st = load_u32(f, arch, "attention.value_length", false, 0, &v_len, err);
    if (!st) st = load_u32(f, arch, "attention.sliding_window", false, 0, &hp->swa_window, err);
    if (st) { apr_llama_model_free(m); return st; }
    if (hp->n_layer < 1 || hp->n_embd < 1 || hp->n_head < 1 || hp->n_head_kv < 1 || hp->n_ff < 1 ||
        (!hp->head_dim && hp->n_embd % hp->n_head) || hp->n_head % hp->n_head_kv ||
        (v_len && v_len != (hp->head_dim ? hp->head_dim : hp->n_embd / hp->n_head))) {
        st = apr_error_set(err, APR_ERR_FORMAT,
                       "%s: inconsistent hyperparameters (layers %d, width %d, heads %d/%d, ffn %d, key/value length %d/%d)",
                       apr_gguf_path(f), hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->n_ff, hp->head_dim, v_len);
        apr_llama_model_free(m);
        return st;
    }
    if (!hp->head_dim) hp->head_dim = hp->n_embd / hp->n_head;
    if ((st = load_u32(f, arch, "rope.dimension_count", false, (uint32_t)hp->head_dim, &hp->n_rot, err))) {
        apr_llama_model_free(m);
        return st;
    }
    if (hp->n_rot < 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2) {
        st = apr_error_set(err, APR_ERR_FORMAT, "%s: rope dimension %d does not fit head size %d", apr_gguf_path(f), hp->n_rot,
                       hp->head_dim);
        apr_llama_model_free(m);
        return st;
    }
    hp->rms_eps = load_f32(f, arch, "attention.layer_norm_rms_epsilon", 1e-5f);
    hp->rope_base = load_f32(f, arch, "rope.freq_base", 10000.0f);
    float factor = load_f32(f, arch, "rope.scaling.factor", 1.0f);
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *stype = apr_gguf_get_str(f, key);
    hp->rope_scale = (stype && !strcmp(stype, "linear") && factor > 0) ? 1.0f / factor : 1.0f;
    /* convert_hf_to_gguf permutes llama q/k rows for adjacent pairs; qwen2/qwen3 stay NEOX (split half) */
    hp->rope_layout = strcmp(arch, "llama") ? 1 : 0;
    if (!(hp->rms_eps > 0) || !(hp->rope_base > 0)) {
        apr_llama_model_free(m);
        return apr_error_set(err, APR_ERR_FORMAT, "%s: rms epsilon and rope base must be positive", apr_gguf_path(f));
    }

    const gguf_tensor *emb = apr_gguf_tensor_find(f, "token_embd.weight");
    if (!emb) { apr_llama_model_free(m); return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor token_embd.weight is missing", apr_gguf_path(f)); }
    hp->n_vocab = (int)emb->ne[1];
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    st = load_tensor(f, "token_embd.weight", E, hp->n_vocab, true, &m->tok_embd, err);
    if (!st) st = load_tensor(f, "output_norm.weight", E, 1, true, &m->out_norm, err);
    if (!st) st = load_tensor(f, "output.weight", E, hp->n_vocab, false, &m->output, err);
    if (!st && !m->output) m->output = m->tok_embd; /* tied embeddings */
    if (!st) st = load_tensor(f, "rope_freqs.weight", hp->n_rot / 2, 1, false, &m->rope_freqs, err);
    m->layers = st ? NULL : calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!st && !m->layers) st = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int l = 0; l < hp->n_layer && !st; l++) {
        llama_layer *L = &m->layers[l];
        struct { const char *name; int64_t ne0, ne1; const gguf_tensor **dst; } want[] = {
            {"attn_norm", E, 1, &L->attn_norm}, {"attn_q", E, Q, &L->wq},        {"attn_k", E, KV, &L->wk},
            {"attn_v", E, KV, &L->wv},          {"attn_output", Q, E, &L->wo},   {"ffn_norm", E, 1, &L->ffn_norm},
            {"ffn_gate", E, hp->n_ff, &L->w_gate}, {"ffn_up", E, hp->n_ff, &L->w_up}, {"ffn_down", hp->n_ff, E, &L->w_down},
        };
        for (size_t i = 0; i < sizeof want / sizeof *want && !st; i++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, want[i].name);
            st = load_tensor(f, name, want[i].ne0, want[i].ne1, true, want[i].dst, err);
        }
        /* optional everywhere; qwen3 requires the q/k norms, which its graph cannot do without */
        bool qk_norm = !strcmp(arch, "qwen3");
        struct { const char *name; int64_t ne0; bool required; const gguf_tensor **dst; } opt[] = {
            {"attn_q.bias", Q, false, &L->bq}, {"attn_k.bias", KV, false, &L->bk}, {"attn_v.bias", KV, false, &L->bv},
            {"attn_q_norm.weight", hp->head_dim, qk_norm, &L->q_norm}, {"attn_k_norm.weight", hp->head_dim, qk_norm, &L->k_norm},
        };
        for (size_t i = 0; i < sizeof opt / sizeof *opt && !st; i++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", l, opt[i].name);
            st = load_tensor(f, name, opt[i].ne0, 1, opt[i].required, opt[i].dst, err);
        }
        if (!st && (!L->q_norm) != (!L->k_norm))
            st = apr_error_set(err, APR_ERR_FORMAT, "%s: block %d has only one of attn_q_norm and attn_k_norm", apr_gguf_path(f), l);
    }
    if (st) { apr_llama_model_free(m); return st; }
    *out = m;
    return APR_OK;
}

void apr_llama_model_free(llama_model *m) {
    if (!m) return;
    free(m->layers);
    free(m);
}

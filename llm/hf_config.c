/* hf_config.c — config.json of a Hugging Face model into GGUF "{arch}.*" keys, as convert_hf_to_gguf.py names them. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_internal.h"

static const struct { const char *hf, *gguf; bool permute; } hf_config_archs[] = {
    {"LlamaForCausalLM", "llama", true},   {"MistralForCausalLM", "llama", true},
    {"Qwen2ForCausalLM", "qwen2", false},  {"Qwen3ForCausalLM", "qwen3", false},
};

/* A positive integer member; absent optional ones give dflt. */
static apr_status hf_config_int(const char *path, const cJSON *o, const char *key, bool required, int dflt, int *out,
                                apr_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return apr_error_set(err, APR_ERR_FORMAT, "%s: %s is missing", path, key);
        *out = dflt;
        return APR_OK;
    }
    double d = cJSON_GetNumberValue(j);
    if (!cJSON_IsNumber(j) || !(d >= 1 && d <= (1 << 24)) || d != floor(d))
        return apr_error_set(err, APR_ERR_FORMAT, "%s: %s is not an integer in [1, 2^24]", path, key);
    *out = (int)d;
    return APR_OK;
}

static double hf_config_num(const cJSON *o, const char *key, double dflt) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(j) ? j->valuedouble : dflt;
}

static void hf_config_key_u32(hf_import *im, const char *suffix, int v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", im->arch, suffix);
    apr_gguf_writer_set_u32(im->w, key, (uint32_t)v);
}

static void hf_config_key_f32(hf_import *im, const char *suffix, float v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", im->arch, suffix);
    apr_gguf_writer_set_f32(im->w, key, v);
}

/* Llama 3.x rope scaling: llama.cpp stores per-frequency divisors as rope_freqs.weight [n_rot/2],
 * computed exactly as LlamaModel.generate_extra_tensors does (freqs in f32, wavelengths in double). */
static apr_status hf_config_llama3(hf_import *im, const char *path, const cJSON *rs, const hf_config *c, float base,
                                   apr_error *err) {
    double factor = hf_config_num(rs, "factor", 8.0), lo = hf_config_num(rs, "low_freq_factor", 1.0);
    double hi = hf_config_num(rs, "high_freq_factor", 4.0), old = hf_config_num(rs, "original_max_position_embeddings", 8192);
    if (!(factor > 0) || !(hi > lo) || !(old > 0))
        return apr_error_set(err, APR_ERR_FORMAT, "%s: rope_scaling llama3 parameters are inconsistent", path);
    int n = c->head_dim / 2;
    float *f = hf_import_alloc(im, (size_t)n * sizeof *f);
    if (!f) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    double lo_wl = old / lo, hi_wl = old / hi;
    for (int i = 0; i < n; i++) {
        float freq = 1.0f / powf(base, (float)(2 * i) / (float)c->head_dim);
        double wl = 2 * M_PI / freq;
        if (wl < hi_wl) f[i] = 1.0f;
        else if (wl > lo_wl) f[i] = (float)factor;
        else {
            double smooth = (old / wl - lo) / (hi - lo);
            f[i] = (float)(1 / ((1 - smooth) / factor + smooth));
        }
    }
    hf_import_add(im, "rope_freqs.weight", APR_F32, 1, (int64_t[]){n}, f, (uint64_t)n * sizeof *f);
    return APR_OK;
}

static apr_status hf_config_rope_scaling(hf_import *im, const char *path, const cJSON *rs, const hf_config *c, float base,
                                         apr_error *err) {
    if (!rs || cJSON_IsNull(rs)) return APR_OK;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "";
    if (!strcmp(type, "default")) return APR_OK;
    if (!strcmp(type, "llama3")) return hf_config_llama3(im, path, rs, c, base, err);
    if (!strcmp(type, "linear") || !strcmp(type, "yarn")) {
        char key[96];
        snprintf(key, sizeof key, "%s.rope.scaling.type", im->arch);
        apr_gguf_writer_set_str(im->w, key, type);
        hf_config_key_f32(im, "rope.scaling.factor", (float)hf_config_num(rs, "factor", 1.0));
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(rs, "original_max_position_embeddings");
        if (cJSON_IsNumber(o)) hf_config_key_u32(im, "rope.scaling.original_context_length", o->valueint);
        return APR_OK;
    }
    return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported (linear, yarn, llama3 are)",
                          path, type);
}

apr_status hf_config_read(hf_import *im, const char *dir, hf_config *c, apr_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *js = hf_import_slurp(path, 16u << 20, NULL, err);
    if (!js) return APR_ERR_IO;
    cJSON *root = cJSON_Parse(js);
    free(js);
    apr_status st = APR_OK;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_GetArrayItem(archs, 0);
    if (!cJSON_IsObject(root)) st = apr_error_set(err, APR_ERR_FORMAT, "%s: not a JSON object", path);
    else if (!cJSON_IsString(a0)) st = apr_error_set(err, APR_ERR_FORMAT, "%s: architectures[0] is missing", path);
    size_t k = 0, nk = sizeof hf_config_archs / sizeof *hf_config_archs;
    while (!st && k < nk && strcmp(a0->valuestring, hf_config_archs[k].hf)) k++;
    if (!st && k == nk)
        st = apr_error_set(err, APR_ERR_UNSUPPORTED,
                            "%s: architecture %.64s is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                            "Qwen3ForCausalLM are)", path, a0->valuestring);
    if (st) { cJSON_Delete(root); return st; }
    snprintf(im->arch, sizeof im->arch, "%s", hf_config_archs[k].gguf);
    c->permute = hf_config_archs[k].permute;
    if (!st) st = hf_config_int(path, root, "num_hidden_layers", true, 0, &c->n_layer, err);
    if (!st) st = hf_config_int(path, root, "hidden_size", true, 0, &c->n_embd, err);
    if (!st) st = hf_config_int(path, root, "num_attention_heads", true, 0, &c->n_head, err);
    if (!st) st = hf_config_int(path, root, "num_key_value_heads", false, c->n_head, &c->n_head_kv, err);
    if (!st) st = hf_config_int(path, root, "intermediate_size", true, 0, &c->n_ff, err);
    if (!st) st = hf_config_int(path, root, "max_position_embeddings", false, 2048, &c->n_ctx, err);
    bool has_hd = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "head_dim"));
    if (!st) st = hf_config_int(path, root, "head_dim", false, c->n_embd / c->n_head, &c->head_dim, err);
    if (!st && (c->n_head % c->n_head_kv || c->head_dim % 2 || (!has_hd && c->n_embd % c->n_head)))
        st = apr_error_set(err, APR_ERR_FORMAT, "%s: inconsistent heads (width %d, heads %d/%d, head_dim %d)", path,
                            c->n_embd, c->n_head, c->n_head_kv, c->head_dim);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    c->tied = cJSON_IsBool(tie) ? cJSON_IsTrue(tie) : false;
    float base = (float)hf_config_num(root, "rope_theta", 10000.0);
    float eps = (float)hf_config_num(root, "rms_norm_eps", 1e-6);
    if (!st && (!(base > 0) || !(eps > 0))) st = apr_error_set(err, APR_ERR_FORMAT, "%s: rope_theta and rms_norm_eps must be positive", path);
    if (!st) {
        apr_gguf_writer_set_str(im->w, "general.architecture", im->arch);
        const char *slash = strrchr(dir, '/');
        apr_gguf_writer_set_str(im->w, "general.name", slash && slash[1] ? slash + 1 : dir);
        hf_config_key_u32(im, "context_length", c->n_ctx);
        hf_config_key_u32(im, "embedding_length", c->n_embd);
        hf_config_key_u32(im, "feed_forward_length", c->n_ff);
        hf_config_key_u32(im, "block_count", c->n_layer);
        hf_config_key_u32(im, "attention.head_count", c->n_head);
        hf_config_key_u32(im, "attention.head_count_kv", c->n_head_kv);
        hf_config_key_f32(im, "rope.freq_base", base);
        hf_config_key_f32(im, "attention.layer_norm_rms_epsilon", eps);
        hf_config_key_u32(im, "rope.dimension_count", c->head_dim);
        if (has_hd) {
            hf_config_key_u32(im, "attention.key_length", c->head_dim);
            hf_config_key_u32(im, "attention.value_length", c->head_dim);
        }
        /* Mistral 7B v0.1 attends to the last sliding_window positions only (null in later versions) */
        const cJSON *swa = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
        if (cJSON_IsNumber(swa) && swa->valuedouble >= 1 && swa->valuedouble < c->n_ctx)
            hf_config_key_u32(im, "attention.sliding_window", (int)swa->valuedouble);
        st = hf_config_rope_scaling(im, path, cJSON_GetObjectItemCaseSensitive(root, "rope_scaling"), c, base, err);
    }
    cJSON_Delete(root);
    return st;
}

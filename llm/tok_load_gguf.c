/* tok_load_gguf.c — a tok_vocab from the tokenizer.ggml.* keys of a GGUF file.
 *
 * tokenizer.ggml.model "llama" is SPM, "gpt2" byte-level BPE; tokens, scores, token_type,
 * merges, bos/eos/unknown/padding ids, add_bos_token / add_eos_token, add_space_prefix and pre
 * (the pre-tokenizer family) are read as llama.cpp writes them. A special id outside the
 * vocabulary is an error naming the key, where llama.cpp warns and falls back to a default. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* The id under key: dflt when absent, -1 when all ones (-1, 0xFFFFFFFF: "none", as llama.cpp
 * writes it); any other value outside [0, n) is an error naming the file and the key. */
static apr_status loadgguf_id(const gguf_file *f, const char *key, int32_t n, int32_t dflt, int32_t *out, apr_error *err) {
    int64_t id;
    *out = dflt;
    if (apr_gguf_kv_find(f, key) < 0) return APR_OK;
    if (!apr_gguf_get_i64(f, key, &id))
        return apr_error_set(err, APR_ERR_FORMAT, "%s: %s is not an integer", apr_gguf_path(f), key);
    if (id == -1 || id == (int64_t)UINT32_MAX) *out = -1;
    else if (id >= 0 && id < n) *out = (int32_t)id;
    else return apr_error_set(err, APR_ERR_FORMAT, "%s: %s is %lld, outside the vocabulary of %d tokens", apr_gguf_path(f), key,
                              (long long)id, (int)n);
    return APR_OK;
}

static apr_status loadgguf_arr(const gguf_file *f, const char *key, gguf_type want, uint64_t n, bool required,
                               bool *present, apr_error *err) {
    gguf_type et;
    uint64_t len;
    *present = false;
    if (!apr_gguf_get_arr(f, key, &et, &len)) {
        if (required) return apr_error_set(err, APR_ERR_FORMAT, "%s: %s is missing", apr_gguf_path(f), key);
        return APR_OK;
    }
    if (et != want) return apr_error_set(err, APR_ERR_FORMAT, "%s: %s has element type %d, expected %d", apr_gguf_path(f), key, (int)et, (int)want);
    if (n != UINT64_MAX && len != n)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: %s has %llu entries for %llu tokens", apr_gguf_path(f), key,
                          (unsigned long long)len, (unsigned long long)n);
    *present = true;
    return APR_OK;
}

apr_status apr_tok_load_gguf(const gguf_file *f, tok_vocab **out, apr_error *err) {
    *out = NULL;
    const char *path = apr_gguf_path(f);
    const char *model = apr_gguf_get_str(f, "tokenizer.ggml.model");
    if (!model) return apr_error_set(err, APR_ERR_FORMAT, "%s: tokenizer.ggml.model is missing (no vocabulary)", path);
    tok_model kind;
    if (!strcmp(model, "llama")) kind = TOK_MODEL_SPM;
    else if (!strcmp(model, "gpt2")) kind = TOK_MODEL_BPE;
    else return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (llama and gpt2 are)", path, model);

    gguf_type et;
    uint64_t n;
    if (!apr_gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n) || et != GGUF_STRING)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tokenizer.ggml.tokens is missing or not a string array", path);
    if (n == 0 || n > (1u << 30)) return apr_error_set(err, APR_ERR_FORMAT, "%s: %llu tokens", path, (unsigned long long)n);

    const char *const *pre_re = NULL;
    int pre_n = 0;
    const char *pre = apr_gguf_get_str(f, "tokenizer.ggml.pre");
    if (kind == TOK_MODEL_BPE && !pre_family(pre ? pre : "default", &pre_re, &pre_n))
        return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported", path, pre);

    tok_vocab *v = vocab_new(kind, (int32_t)n);
    const char **texts = malloc(n * sizeof *texts);
    apr_status st = APR_OK;
    if (!v || !texts) { st = apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory for %llu tokens", path, (unsigned long long)n); goto fail; }
    for (uint64_t i = 0; i < n; i++) {
        texts[i] = apr_gguf_get_arr_str(f, "tokenizer.ggml.tokens", i);
        if (!texts[i]) { st = apr_error_set(err, APR_ERR_FORMAT, "%s: token %llu is unreadable", path, (unsigned long long)i); goto fail; }
    }
    if ((st = vocab_set_texts(v, texts, NULL, err))) goto fail;

    bool have;
    if ((st = loadgguf_arr(f, "tokenizer.ggml.scores", GGUF_FLOAT32, n, false, &have, err))) goto fail;
    const void *scores = have ? apr_gguf_get_arr_data(f, "tokenizer.ggml.scores") : NULL;
    if (scores) memcpy(v->score, scores, n * sizeof(float));
    if ((st = loadgguf_arr(f, "tokenizer.ggml.token_type", GGUF_INT32, n, false, &have, err))) goto fail;
    const uint8_t *tt = have ? apr_gguf_get_arr_data(f, "tokenizer.ggml.token_type") : NULL;
    if (tt) {
        for (uint64_t i = 0; i < n; i++) {
            int32_t t;
            memcpy(&t, tt + 4 * i, 4);
            v->type[i] = t >= TOK_TYPE_NORMAL && t <= TOK_TYPE_BYTE ? (uint8_t)t : TOK_TYPE_NORMAL;
        }
    }
    if (kind == TOK_MODEL_BPE) {
        if ((st = loadgguf_arr(f, "tokenizer.ggml.merges", GGUF_STRING, UINT64_MAX, true, &have, err))) goto fail;
        uint64_t nm;
        apr_gguf_get_arr(f, "tokenizer.ggml.merges", &et, &nm);
        if ((st = vocab_merges_alloc(v, nm, err))) goto fail;
        for (uint64_t i = 0; i < nm; i++) {
            const char *m = apr_gguf_get_arr_str(f, "tokenizer.ggml.merges", i);
            const char *sp = m && m[0] ? strchr(m + 1, ' ') : NULL;
            if (sp) vocab_add_merge(v, m, (size_t)(sp - m), sp + 1, strlen(sp + 1), (int32_t)i);
        }
    }

    bool spm = kind == TOK_MODEL_SPM;
    if ((st = loadgguf_id(f, "tokenizer.ggml.bos_token_id", v->n, spm ? 1 : -1, &v->bos, err)) ||
        (st = loadgguf_id(f, "tokenizer.ggml.eos_token_id", v->n, spm ? 2 : -1, &v->eos, err)) ||
        (st = loadgguf_id(f, "tokenizer.ggml.unknown_token_id", v->n, spm ? 0 : -1, &v->unk, err)) ||
        (st = loadgguf_id(f, "tokenizer.ggml.padding_token_id", v->n, -1, &v->pad, err)))
        goto fail;
    v->add_bos = spm;
    v->add_eos = false;
    v->add_space_prefix = spm;
    apr_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos);
    apr_gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos);
    apr_gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    if (!spm) {
        snprintf(v->pre_name, sizeof v->pre_name, "%s", pre ? pre : "default");
        v->ignore_merges = !strcmp(v->pre_name, "llama3") || !strcmp(v->pre_name, "llama-v3") ||
                           !strcmp(v->pre_name, "llama-bpe");
    }
    if ((st = vocab_finish(v, pre_re, pre_n, err))) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err ? err->msg : "");
        apr_error_set(err, st, "%s: %s", path, m);
        goto fail;
    }
    free(texts);
    *out = v;
    return APR_OK;
fail:
    free(texts);
    apr_tok_free(v);
    return st;
}

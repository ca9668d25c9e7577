/* bpe_train_gguf.c — a learned BPE vocabulary as GGUF keys (apr_bpe_gguf_set, apr_bpe_write_gguf),
 * training from a file, and releasing the result. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_train.h"

void apr_bpe_free(apr_bpe_vocab *v) {
    if (!v) return;
    for (int32_t i = 0; v->tokens && i < v->n_tokens; i++) free(v->tokens[i]);
    for (int32_t i = 0; v->merges && i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->token_type);
    free(v->merges);
    free(v->merge_count);
    free(v);
}

void apr_bpe_gguf_set(const apr_bpe_vocab *v, gguf_writer *w) {
    if (!v || !w) return;
    apr_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    apr_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre);
    apr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, (uint64_t)v->n_tokens);
    apr_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, v->token_type, (uint64_t)v->n_tokens);
    apr_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, (uint64_t)v->n_merges);
    apr_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    apr_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->pad >= 0) apr_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    apr_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    apr_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
}

apr_status apr_bpe_write_gguf(const apr_bpe_vocab *v, const char *path, apr_error *err) {
    if (!v || !path) return apr_error_set(err, APR_ERR_INVALID, "apr_bpe_write_gguf: %s is NULL", !v ? "the vocabulary" : "path");
    gguf_writer *w = apr_gguf_writer_new();
    if (!w) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory for the GGUF writer", path);
    apr_gguf_writer_set_str(w, "general.name", "apr-bpe");
    apr_bpe_gguf_set(v, w);
    apr_status st = apr_gguf_writer_write(w, path, err);
    apr_gguf_writer_free(w);
    return st;
}

apr_status apr_bpe_train_file(const char *path, const apr_bpe_options *opts, apr_bpe_vocab **out, apr_error *err) {
    if (out) *out = NULL;
    if (!path) return apr_error_set(err, APR_ERR_INVALID, "apr_bpe_train_file: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return apr_error_set(err, APR_ERR_IO, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    apr_status st = APR_OK;
    for (;;) {
        if (len == cap) {
            size_t c = cap ? cap * 2 : 1 << 20;
            char *p = c > cap ? realloc(text, c) : NULL;
            if (!p) { st = apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory after %zu bytes", path, len); break; }
            text = p;
            cap = c;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) st = apr_error_set(err, APR_ERR_IO, "%s: read error after %zu bytes", path, len);
            break;
        }
    }
    fclose(f);
    if (!st) {
        st = apr_bpe_train(text, len, opts, out, err);
        if (st) {   /* name the file in the message */
            char m[sizeof err->msg];
            snprintf(m, sizeof m, "%s", err ? err->msg : "");
            apr_error_set(err, st, "%s: %s", path, m);
        }
    }
    free(text);
    return st;
}

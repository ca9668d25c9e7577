/* hf_internal.h — the hf_import structure and helpers that the hf_*.c importers share. */
#ifndef APR_HF_INTERNAL_H
#define APR_HF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_import.h"
#include "safetensors.h"

struct hf_import {
    gguf_writer *w;              /* keys and tensors collected so far */
    char arch[16];               /* "llama", "qwen2", "qwen3" */
    void **bufs;                 /* [n_bufs] heap copies the writer points into (permuted rows, rope factors) */
    size_t n_bufs, cap_bufs;
    safetensors_file **shards;   /* [n_shards] mapped weight files the writer points into */
    int n_shards;
    void *map;                   /* llama2.c checkpoint mapping, or NULL */
    size_t map_size;
    int64_t n_tensors;           /* added so far */
    int64_t n_params;            /* elements added so far */
};

hf_import *hf_import_new(void);
/* A zeroed heap buffer owned by im (freed by apr_hf_import_free); NULL when out of memory. */
void *hf_import_alloc(hf_import *im, size_t bytes);
/* Adds a tensor (ne innermost first, GGUF order) and counts it. */
void hf_import_add(hf_import *im, const char *name, apr_dtype dt, int n_dims, const int64_t *ne, const void *data,
                   uint64_t size);
/* Copies rows (each row_bytes) of a [n_head * head_dim] projection, reordering each head's rows
 * from split-half [2, head_dim/2] to interleaved [head_dim/2, 2]: llama.cpp's permute(). */
void hf_import_permute_rows(void *dst, const void *src, int n_head, int head_dim, size_t row_bytes);


/* hf_vocab.c: tokenizer.json (+ tokenizer_config.json, generation_config.json) into tokenizer.ggml.* keys. */
apr_status hf_vocab_write(hf_import *im, const char *dir, int64_t n_vocab, apr_error *err);
/* hf_config.c: config.json into the "{arch}.*" keys; fills what the tensor mapping needs. */
typedef struct hf_config {
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_ctx;
    bool tied;                   /* tie_word_embeddings */
    bool permute;                /* q/k rows go from split-half to adjacent pairs (llama only) */
} hf_config;
apr_status hf_config_read(hf_import *im, const char *dir, hf_config *c, apr_error *err);
/* hf_weights.c: maps model.safetensors or the shards of model.safetensors.index.json into im->shards. */
apr_status hf_weights_open(hf_import *im, const char *dir, apr_error *err);
const safetensors_tensor *hf_weights_find(const hf_import *im, const char *name);
/* Reads a whole small file (JSON); NUL-terminated, caller frees; NULL + err when it cannot. */
char *hf_import_slurp(const char *path, size_t max, size_t *len_out, apr_error *err);

#endif

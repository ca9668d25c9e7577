/* model_init.h — new Llama-family models of random weights in a named or custom shape, written as
 * GGUF with a tokenizer copied from another file, added by the caller, or none. */
#ifndef APR_MODEL_INIT_H
#define APR_MODEL_INIT_H

/*
 * OVERVIEW
 *
 * apr_model_init_write writes a model that apr_llama_model_load (and llama.cpp) loads: the
 * {arch}.* hyperparameter keys, general.name saying these are random weights, a tokenizer, and
 * the tensors token_embd, [rope_freqs], per block attn_norm, attn_q [+ bias] [attn_q_norm],
 * attn_k [+ bias] [attn_k_norm], attn_v [+ bias], attn_output, ffn_norm, ffn_gate, ffn_up,
 * ffn_down, then output_norm and [output] (absent when tied). Matrices are normal with std 0.02
 * in the chosen dtype; norms are 1; biases normal too; vectors stay f32 as llama.cpp's converter
 * keeps them. Each tensor's values depend only on the seed and its position in that list, and
 * are produced while the file is written (the GGUF writer's fill callbacks), so a model of many
 * GB never sits in memory. The file is written atomically (apr_gguf_writer_write). apr-genmodel
 * is this function with a command line; apr-finetune --from-scratch starts training from it.
 *
 * Shapes: apr_model_init_shape_find("tinyllama-1.1b") for a named one, or
 * apr_model_init_shape_parse("layers=4,embd=192,heads=6,kv_heads=2,ff=512,vocab=2048", ...) for a custom
 * one (keys under apr_model_init_shape_parse).
 *
 * The vocabulary: n_vocab is the embedding's rows. A tokenizer copied from a GGUF file
 * (tok->gguf_path) must have at most n_vocab tokens; a smaller one is padded up to n_vocab with
 * "[PAD<id>]" tokens (token type 5, unused; the lowest score present), as Hugging Face's converter
 * pads embedding rows past its tokenizer, since llama.cpp wants one token per row. With n_vocab 0
 * ("as the tokenizer has") the rows are the file's token count, or tok->n_tokens for a keys
 * callback, or 32000 (the tiny shape's) without a tokenizer.
 *
 * Example: a small model with a vocabulary trained by bpe_train.h
 *
 *     apr_model_init_shape sh; apr_error e;
 *     if (apr_model_init_shape_parse("layers=4,embd=192,heads=6,kv_heads=2,ff=512,ctx=256", &sh, &e)) die(e.msg);
 *     // sh.n_vocab is 0: the rows are the tokens the callback reports
 *     apr_model_init_tok tok = {.keys = set_bpe, .keys_ctx = bv, .n_tokens = bv->n_tokens};
 *     if (apr_model_init_write(&sh, APR_F32, 1, &tok, NULL, "init.gguf", &e)) die(e.msg);
 *
 * with   static apr_status set_bpe(void *bv, gguf_writer *w, apr_error *e) { apr_bpe_gguf_set(bv, w); return APR_OK; }
 */

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr.h"
#include "gguf.h"
#include "llm_api.h"

typedef struct apr_model_init_shape {
    char name[32];        /* "tiny", "qwen2.5-0.5b", ...; "custom" for a parsed spec */
    char arch[16];        /* general.architecture: "llama", "qwen2" or "qwen3" (qwen3: per-head q/k norms) */
    int n_layer;          /* transformer blocks */
    int n_embd;           /* model width */
    int n_head;           /* query heads */
    int n_head_kv;        /* key/value heads, dividing n_head */
    int head_dim;         /* per head; 0 = n_embd / n_head. Written as {arch}.attention.key_length and
                           * value_length only when it differs from n_embd / n_head */
    int n_ff;             /* feed-forward width */
    int n_vocab;          /* embedding rows; 0 = as the tokenizer has (see OVERVIEW) */
    int n_ctx_train;      /* {arch}.context_length */
    float rope_base;      /* {arch}.rope.freq_base */
    float rms_eps;        /* {arch}.attention.layer_norm_rms_epsilon */
    bool tied;            /* no output.weight: the output reads the embedding */
    bool qkv_bias;        /* attn_q/k/v.bias (qwen2) */
    bool llama3_rope;     /* rope_freqs.weight: Llama 3 rope scaling (factor 32, low/high 1 and 4, context 8192) */
} apr_model_init_shape;

/* The named shape (tiny, tinyllama-1.1b, qwen2.5-0.5b, llama-3.2-1b), or NULL. */
LLM_API const apr_model_init_shape *apr_model_init_shape_find(const char *name);
/* The i-th named shape, i from 0, or NULL past the last (for listing them). */
LLM_API const apr_model_init_shape *apr_model_init_shape_at(int i);

/* A custom shape from comma-separated key=value pairs; keys not given keep the base shape's
 * values (tiny unless base= names another), except vocab, which is 0 ("as the tokenizer has")
 * unless given. Keys:
 *
 *   base=NAME        a named shape to start from            arch=llama|qwen2|qwen3
 *   layers=N  embd=N  heads=N  kv_heads=N  head_dim=N  ff=N  vocab=N  ctx=N   (integers)
 *   rope_base=X  rms_eps=X   (positive numbers)
 *   tied=0|1  qkv_bias=0|1  llama3_rope=0|1
 *
 * arch= also sets qkv_bias to 1 for qwen2 and 0 otherwise, unless qkv_bias= is given. The result
 * passes apr_model_init_shape_check. Errors are APR_ERR_INVALID, the message quoting the spec and
 * naming the key: an unknown key (listing the keys), a value that is not a number or out of range,
 * a key given twice, heads that do not divide embd without head_dim, ... *out is written only on
 * APR_OK. */
LLM_API apr_status apr_model_init_shape_parse(const char *spec, apr_model_init_shape *out, apr_error *err);

/* APR_ERR_INVALID naming the field when sh is not a model apr can load: an unknown arch, counts
 * below 1 or above 1 << 24 (n_vocab and head_dim may be 0), kv heads not dividing heads, heads not
 * dividing n_embd when head_dim is 0, an odd head size, rope base or rms epsilon not positive. */
LLM_API apr_status apr_model_init_shape_check(const apr_model_init_shape *sh, apr_error *err);

/* Adds keys to the model being written: a tokenizer (apr_bpe_gguf_set, say) or any other. Called
 * once, after the {arch}.* keys; a key already set is replaced. An error fails the write. */
typedef apr_status (*apr_model_init_keys_fn)(void *ctx, gguf_writer *w, apr_error *err);

/* Where the tokenizer comes from: at most one of gguf_path and keys; NULL or all zero = none. */
typedef struct apr_model_init_tok {
    const char *gguf_path;        /* copy the tokenizer.* keys of this GGUF file, padded (see OVERVIEW) */
    apr_model_init_keys_fn keys;  /* or: the caller's callback sets them */
    void *keys_ctx;
    int n_tokens;                 /* with keys: the tokens it writes. Needed when n_vocab is 0; else, when
                                   * not 0, it must equal n_vocab (a callback's vocabulary is not padded) */
} apr_model_init_tok;

/* What a write does, told to apr_model_init_opts.progress. */
typedef struct apr_model_init_info {
    const apr_model_init_shape *shape;  /* as written: n_vocab and head_dim resolved */
    apr_dtype dtype;
    const char *tok_path;               /* the tokenizer's file, or NULL */
    int64_t n_tokens;                   /* the tokenizer's tokens before padding (0: none or not told) */
    bool padded;                        /* the copied vocabulary was padded to n_vocab rows */
    uint64_t done, total;               /* bytes of tensor data written so far, and in all */
} apr_model_init_info;

typedef struct apr_model_init_opts {
    /* general.name is "random weights — not a trained model (PRODUCER SHAPE, seed S)"; NULL = "apr" */
    const char *producer;
    /* called once with done 0 when the metadata is set and writing starts, then after each piece of
     * tensor data; NULL = silent */
    void (*progress)(void *ctx, const apr_model_init_info *info);
    void *progress_ctx;
} apr_model_init_opts;

/* Writes a model of random weights of shape sh to out (see OVERVIEW). dtype (APR_F32, APR_F16 or
 * APR_BF16) is the matrices' type; seed picks the values; tok and opts may be NULL. Errors:
 * APR_ERR_INVALID for a bad shape, dtype or tokenizer source (both a file and a callback, a keys
 * callback's n_tokens not matching), the GGUF reader's status for the tokenizer file, and
 * APR_ERR_FORMAT naming it when it has no vocabulary or more tokens than n_vocab rows; the
 * writer's for the output. Nothing is left at out on an error. */
LLM_API apr_status apr_model_init_write(const apr_model_init_shape *sh, apr_dtype dtype, uint64_t seed,
                                        const apr_model_init_tok *tok, const apr_model_init_opts *opts, const char *out,
                                        apr_error *err);

#endif

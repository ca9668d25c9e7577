/* llama.h — Llama-family transformer models: hyperparameters from GGUF metadata, contexts that run
 * batches of tokens from several sequences over a KV cache on a backend, and sessions (one sequence). */
#ifndef APR_LLAMA_H
#define APR_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr.h"
#include "gguf.h"
#include "llama_kv.h"
#include "llm_api.h"

typedef struct llama_hparams {
    char arch[32];        /* general.architecture */
    int n_layer;          /* transformer blocks */
    int n_embd;           /* model width */
    int n_head;           /* query heads */
    int n_head_kv;        /* key/value heads (grouped-query attention when < n_head) */
    int head_dim;         /* {arch}.attention.key_length, else n_embd / n_head */
    int n_ff;             /* feed-forward width */
    int n_vocab;          /* rows of the embedding */
    int n_rot;            /* rotated dims per head */
    int n_ctx_train;      /* context the model was trained with */
    float rms_eps;        /* rms_norm epsilon */
    float rope_base;      /* rope frequency base */
    float rope_scale;     /* rope position multiplier (1 / linear scaling factor) */
    int rope_layout;      /* 0 adjacent pairs (GGUF llama), 1 split half (qwen2, qwen3: NEOX) */
    int swa_window;       /* {arch}.attention.sliding_window: a query sees only the last swa_window positions; 0 = all */
} llama_hparams;

typedef struct llama_layer {
    const gguf_tensor *attn_norm;  /* [n_embd] */
    const gguf_tensor *wq;         /* [n_embd, n_head * head_dim] */
    const gguf_tensor *wk;         /* [n_embd, n_head_kv * head_dim] */
    const gguf_tensor *wv;         /* [n_embd, n_head_kv * head_dim] */
    const gguf_tensor *bq;         /* [n_head * head_dim] or NULL (qwen2 q/k/v bias) */
    const gguf_tensor *bk;         /* [n_head_kv * head_dim] or NULL */
    const gguf_tensor *bv;         /* [n_head_kv * head_dim] or NULL */
    const gguf_tensor *q_norm;     /* [head_dim] or NULL (qwen3 per-head RMS norm of q) */
    const gguf_tensor *k_norm;     /* [head_dim] or NULL */
    const gguf_tensor *wo;         /* [n_head * head_dim, n_embd] */
    const gguf_tensor *ffn_norm;   /* [n_embd] */
    const gguf_tensor *w_gate;     /* [n_embd, n_ff] */
    const gguf_tensor *w_up;       /* [n_embd, n_ff] */
    const gguf_tensor *w_down;     /* [n_ff, n_embd] */
} llama_layer;

typedef struct llama_model {
    llama_hparams hp;
    const gguf_file *file;         /* owns the weight memory; must outlive the model */
    const gguf_tensor *tok_embd;   /* [n_embd, n_vocab] */
    const gguf_tensor *out_norm;   /* [n_embd] */
    const gguf_tensor *output;     /* [n_embd, n_vocab]; the embedding when tied */
    const gguf_tensor *rope_freqs; /* [n_rot / 2] rope frequency divisors (Llama 3 scaling) or NULL */
    llama_layer *layers;           /* [n_layer] */
} llama_model;

/* Reads the hyperparameters and finds every tensor, checking each shape; an unknown
 * architecture or a missing/misshapen tensor is an error naming it. Architectures: llama
 * (Llama 2/3.x with rope_freqs, TinyLlama, Mistral), qwen2 (q/k/v bias), qwen3 (q/k norm). */
LLM_API apr_status apr_llama_model_load(const gguf_file *f, llama_model **out, apr_error *err);
LLM_API void apr_llama_model_free(llama_model *m);

typedef struct llama_session llama_session;

/* A backend may keep a weight matrix in a layout of its own that its matmul kernels read faster
 * (apr_backend_pack_weight). apr_llama_pack_new offers it every matmul weight of a model (q, k, v,
 * output projections, gate, up, down of each layer, and the output matrix), skipping those it
 * keeps no packed layout for, and apr_llama_pack_free gives them back. On an error nothing stays
 * packed. A session packs on its own (llama_session_params.pack_weights); a llama_pack held
 * across sessions makes their packing only count references, so a tool that makes many
 * sessions packs once. The model and be must outlive the pack. */
typedef struct llama_pack llama_pack;
LLM_API apr_status apr_llama_pack_new(const llama_model *m, apr_backend *be, llama_pack **out, apr_error *err);
LLM_API void apr_llama_pack_free(llama_pack *p);
/* Weights packed (0 for NULL). */
LLM_API int apr_llama_pack_count(const llama_pack *p);
/* Places every weight the forward graph reads on be for good (apr_backend_place_weight: imported
 * where be computes from host memory, else uploaded once), the matmul weights packed too when pack
 * is set; released by apr_llama_pack_free. apr_llama_pack_count then counts the weights placed. */
LLM_API apr_status apr_llama_place_new(const llama_model *m, apr_backend *be, bool pack, llama_pack **out, apr_error *err);

/* ---------------------------------------------------------------- contexts: batches over sequences */

/* A model on a list of backends with a KV cache of n_seq sequences (llama_kv.h), its weights placed
 * on backends[0] for the context's life, and the graphs and plans of recent batch shapes kept. */
typedef struct llama_ctx llama_ctx;

typedef struct llama_ctx_params {
    int n_ctx;            /* positions each sequence holds */
    int n_seq;            /* sequences (1 for a session of its own) */
    apr_dtype kv_dtype;   /* APR_F16 (default) or APR_F32 */
    bool pack_weights;    /* pack the matmul weights on backends[0] too (apr_llama_place_new) */
} llama_ctx_params;

/* n_ctx positions, 1 sequence, f16 KV cache, packed weights */
LLM_API llama_ctx_params apr_llama_ctx_defaults(int n_ctx);
/* backends: in order of preference, as for apr_plan_new. The KV cache lives on the first of them
 * that writes it in place (apr_backend_can_set_rows). */
LLM_API apr_status apr_llama_ctx_new(const llama_model *m, const llama_ctx_params *p, apr_backend *const *backends,
                                     int n_backends, llama_ctx **out, apr_error *err);
LLM_API void apr_llama_ctx_free(llama_ctx *c);
LLM_API llama_kv *apr_llama_ctx_kv(llama_ctx *c);
LLM_API const llama_model *apr_llama_ctx_model(const llama_ctx *c);
/* Plans made so far (a new batch shape makes one; decode makes one per 64 positions). */
LLM_API int apr_llama_ctx_plans_made(const llama_ctx *c);

/* Tokens to run together: token i is ids[i] at position pos[i] of sequence seq[i]. The tokens of
 * one sequence come in order at consecutive positions, the first at most at the sequence's length
 * (a smaller one forgets the positions from there on). */
typedef struct llama_batch {
    int n;                  /* tokens */
    const int32_t *ids;     /* [n] token ids */
    const int32_t *pos;     /* [n] positions; NULL = each sequence continues where it is */
    const int32_t *seq;     /* [n] sequences; NULL = all in sequence 0 */
    const bool *logits;     /* [n] which tokens' logits are wanted; NULL = the last token only */
} llama_batch;

/* Runs a batch: every token's keys and values are written into its sequence's cache where it lives,
 * and logits receives n_vocab floats for each token that wants them, in token order. A sequence's
 * result does not depend on what else is in the batch beyond rounding. */
LLM_API apr_status apr_llama_ctx_decode(llama_ctx *c, const llama_batch *b, float *logits, apr_error *err);

typedef struct llama_session_params {
    int n_ctx;            /* positions the KV cache holds */
    apr_dtype kv_dtype;   /* APR_F16 (default) or APR_F32 */
    bool pack_weights;    /* pack the model's matmul weights on backends[0] for the session's life
                           * (apr_llama_pack_new); false reads them in the file's layout */
} llama_session_params;

/* n_ctx positions, f16 KV cache, packed weights */
LLM_API llama_session_params apr_llama_session_defaults(int n_ctx);

/* A session is a handle on one sequence of a context. apr_llama_session_new_ex makes a context of one
 * sequence that the session owns: backends in order of preference, as for apr_plan_new. With
 * p->pack_weights the model's matmul weights are packed on backends[0] (those it declines stay as
 * they are) until apr_llama_session_free; a packing error fails the call with nothing left packed. */
LLM_API apr_status apr_llama_session_new_ex(const llama_model *m, const llama_session_params *p, apr_backend *const *backends,
                                            int n_backends, llama_session **out, apr_error *err);
/* apr_llama_session_new_ex with apr_llama_session_defaults(n_ctx). */
LLM_API apr_status apr_llama_session_new(const llama_model *m, int n_ctx, apr_backend *const *backends, int n_backends,
                             llama_session **out, apr_error *err);
/* A handle on sequence seq of c, which must outlive it (and is not freed with it). */
LLM_API apr_status apr_llama_session_on(llama_ctx *c, int seq, llama_session **out, apr_error *err);
LLM_API void apr_llama_session_free(llama_session *s);
LLM_API int apr_llama_session_pos(const llama_session *s);
LLM_API llama_ctx *apr_llama_session_ctx(llama_session *s);

/* Runs n tokens at the current position and advances it. logits receives n_vocab floats for the
 * last token, or n * n_vocab (position-major) when all_logits. Running past n_ctx is an error.
 * Single tokens after the first rerun a graph and plan the context keeps (one per 64 positions,
 * the unfilled cache slots masked) instead of building and planning one per token. */
LLM_API apr_status apr_llama_session_eval(llama_session *s, const int32_t *ids, int n, bool all_logits, float *logits,
                              apr_error *err);

#endif

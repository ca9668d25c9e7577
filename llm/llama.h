/* llama.h — Llama-family transformer models: hyperparameters from GGUF metadata, the forward
 * graph built for the executor, and a session holding the KV cache. */
#ifndef APR_LLAMA_H
#define APR_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr.h"
#include "gguf.h"
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
LLM_API apr_status llama_model_load(const gguf_file *f, llama_model **out, apr_error *err);
LLM_API void llama_model_free(llama_model *m);

typedef struct llama_session llama_session;

/* A backend may keep a weight matrix in a layout of its own that its matmul kernels read faster
 * (apr_backend_pack_weight). llama_pack_new offers it every matmul weight of a model (q, k, v,
 * output projections, gate, up, down of each layer, and the output matrix), skipping those it
 * keeps no packed layout for, and llama_pack_free gives them back. On an error nothing stays
 * packed. A session packs on its own (llama_session_params.pack_weights); a llama_pack held
 * across sessions makes their packing only count references, so a tool that makes many
 * sessions packs once. The model and be must outlive the pack. */
typedef struct llama_pack llama_pack;
LLM_API apr_status llama_pack_new(const llama_model *m, apr_backend *be, llama_pack **out, apr_error *err);
LLM_API void llama_pack_free(llama_pack *p);
/* Weights packed (0 for NULL). */
LLM_API int llama_pack_count(const llama_pack *p);

typedef struct llama_session_params {
    int n_ctx;            /* positions the KV cache holds */
    apr_dtype kv_dtype;   /* APR_F16 (default) or APR_F32 */
    bool pack_weights;    /* pack the model's matmul weights on backends[0] for the session's life
                           * (llama_pack_new); false reads them in the file's layout */
} llama_session_params;

/* n_ctx positions, f16 KV cache, packed weights */
LLM_API llama_session_params llama_session_defaults(int n_ctx);

/* backends: in order of preference, as for apr_plan_new. With p->pack_weights the model's matmul
 * weights are packed on backends[0] (those it declines stay as they are) until llama_session_free;
 * a packing error fails the call with nothing left packed. */
LLM_API apr_status llama_session_new_ex(const llama_model *m, const llama_session_params *p, apr_backend *const *backends,
                                        int n_backends, llama_session **out, apr_error *err);
/* llama_session_new_ex with llama_session_defaults(n_ctx). */
LLM_API apr_status llama_session_new(const llama_model *m, int n_ctx, apr_backend *const *backends, int n_backends,
                             llama_session **out, apr_error *err);
LLM_API void llama_session_free(llama_session *s);
LLM_API int llama_session_pos(const llama_session *s);

/* Runs n tokens at the current position and advances it. logits receives n_vocab floats for the
 * last token, or n * n_vocab (position-major) when all_logits. Running past n_ctx is an error.
 * Single tokens after the first rerun a graph and plan the session keeps (one per 64 positions,
 * the unfilled cache slots masked) instead of building and planning one per token. */
LLM_API apr_status llama_session_eval(llama_session *s, const int32_t *ids, int n, bool all_logits, float *logits,
                              apr_error *err);

#endif

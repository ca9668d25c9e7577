/* lora.h — LoRA adapters as GGUF files in the layout llama.cpp reads, and their application to a model. */
#ifndef APR_LORA_H
#define APR_LORA_H

/*
 * An adapter file is a GGUF with general.type = "adapter", adapter.type = "lora", adapter.lora.alpha
 * (f32), general.architecture of its base, and for each adapted weight W [in, out] of the base two
 * tensors named after it: "W.lora_a" [in, r] and "W.lora_b" [r, out]. The adapted weight is
 *     W + scale * (alpha / r) * B A,  i.e.  W[i, o] += scale * alpha / r * sum_j A[i, j] * B[j, o].
 * Adapter tensors may be f32, f16 or bf16.
 *
 * Applying adapters to a loaded model (apr_lora_apply) replaces the model's pointers to the weights
 * they adapt with f32 copies that hold the sums; the rest of the model is untouched, and
 * apr_lora_applied_free puts the original pointers back.
 */

#include <stdint.h>

#include "apr/apr.h"
#include "gguf.h"
#include "llama.h"
#include "llm_api.h"

/* One adapted weight's pair, for writing. */
typedef struct lora_pair {
    const char *weight;      /* the base weight's name ("blk.0.attn_q.weight") */
    int64_t n_in, n_out, r;
    const float *a;          /* [in, r]: a[j * n_in + i] */
    const float *b;          /* [r, out]: b[o * r + j] */
} lora_pair;

/* Writes an adapter atomically (the GGUF writer). */
LLM_API apr_status apr_lora_write(const char *path, const char *arch, float alpha, const lora_pair *pairs, int n,
                                  apr_error *err);

typedef struct lora_adapter lora_adapter;
/* Opens and checks an adapter: the keys above, every lora_a with its lora_b, shapes that agree. */
LLM_API apr_status apr_lora_open(const char *path, lora_adapter **out, apr_error *err);
LLM_API void apr_lora_close(lora_adapter *a);
LLM_API float apr_lora_alpha(const lora_adapter *a);
LLM_API int apr_lora_count(const lora_adapter *a);      /* adapted weights */

/* Adds scales[k] * (alpha / r) * B A of adapters[k] (k < n) to every weight of m they name; every name
 * must be a weight of m with the matching shape, and the adapter's architecture m's. */
typedef struct lora_applied lora_applied;
LLM_API apr_status apr_lora_apply(llama_model *m, lora_adapter *const *adapters, const float *scales, int n,
                                  lora_applied **out, apr_error *err);
/* Restores the model's weights and frees the sums. */
LLM_API void apr_lora_applied_free(lora_applied *ap);
/* The weights replaced, for writing a merged model: i-th one's tensor (name, f32 data). */
LLM_API int apr_lora_applied_count(const lora_applied *ap);
LLM_API const gguf_tensor *apr_lora_applied_tensor(const lora_applied *ap, int i);

#endif

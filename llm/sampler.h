/* sampler.h — the sampler chain that turns logits into the next token id. */
#ifndef APR_SAMPLER_H
#define APR_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "llm_api.h"

typedef struct sampler_params {
    float temperature;        /* 0 = greedy (the largest logit; ties to the lowest id) */
    int top_k;                /* keep the k most likely; 0 = all */
    float top_p;              /* keep the smallest set whose probability reaches p; 1 = all */
    float min_p;              /* drop tokens below min_p * the top probability; 0 = none */
    float repeat_penalty;     /* divide positive / multiply negative logits of recent tokens; 1 = none */
    float frequency_penalty;  /* subtract count * this from recent tokens' logits */
    float presence_penalty;   /* subtract this once from every recent token's logit */
    int penalty_last_n;       /* how many recent tokens the penalties see */
    uint64_t seed;            /* the same seed gives the same choices */
} sampler_params;

/* Defaults as llama.cpp users expect: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * no penalties over the last 64 tokens, seed 0. */
LLM_API sampler_params apr_sampler_defaults(void);

typedef struct sampler sampler;

LLM_API sampler *apr_sampler_new(const sampler_params *p, int n_vocab);
LLM_API void apr_sampler_free(sampler *s);
/* Records an accepted token (prompt or generated) for the penalties. */
LLM_API void apr_sampler_accept(sampler *s, int32_t id);
/* Picks the next token from logits[n_vocab]; logits is used as scratch and changed. */
LLM_API int32_t apr_sampler_sample(sampler *s, float *logits);

#endif

/* llama_train_internal.h — the trainer's state, shared by llama_train.c (tensors, steps) and
 * llama_train_graph.c (the step, norm, update and evaluation graphs and their plans). */
#ifndef APR_LLAMA_TRAIN_INTERNAL_H
#define APR_LLAMA_TRAIN_INTERNAL_H

#include "llama_train.h"

#define LLAMA_TRAIN_MAX_BACKENDS 8

/* One trainable tensor: four f32 buffers of info.n elements on the trainer's backend. */
typedef struct train_param {
    char name[160];
    llama_train_tensor info;     /* name points at name[] */
    const gguf_tensor *src;      /* full training: the model tensor it starts from and stands for; else NULL */
    bool lora_a;                 /* LoRA: A [in, r] (else B [r, out]) of the matmul (layer, target bit) */
    int layer, target;
    apr_mem *w, *m, *v, *g;      /* weights, first moment (SGD: momentum), second moment (NULL for SGD), gradient sum */
} train_param;

/* A graph, its plan and the inputs a run sets. */
typedef struct train_graph {
    apr_graph *g;
    apr_plan *p;
    apr_tensor *ids, *targets, *dloss; /* [n] i32, [n] i32, [1] f32 (step only) */
    apr_tensor *loss;                  /* [1] summed token loss */
    apr_tensor **drop;                 /* [n_drop] dropout mask inputs (step only) */
} train_graph;

struct llama_train {
    const llama_model *m;
    llama_train_params p;
    apr_backend *be;                             /* backends[0]: holds every trainable tensor */
    apr_backend *backends[LLAMA_TRAIN_MAX_BACKENDS];
    int n_backends;
    llama_pack *placed;                          /* the frozen weights, placed on be */
    train_param *params;                         /* [n_params] */
    int n_params, cap_params;
    int n_tok;                                   /* tokens per micro-batch: seq_len * n_seqs */
    uint64_t rng[4];                             /* LoRA A's initial values, then dropout masks */
    int64_t steps;                               /* optimizer steps taken */
    train_graph step, eval;
    apr_graph *gn;                               /* the norm graph: norm_out[i] = sum of g_i^2 */
    apr_plan *pn;
    apr_tensor **norm_out;
    double *norms;                               /* [n_params] from the last run of pn */
    apr_graph *gu;                               /* the update graph over hp */
    apr_plan *pu;
    apr_tensor *hp;
    int32_t *pos;                                /* [n_tok] position of each token in its window */
    float *mask;                                 /* [n_tok, n_tok] windows apart and causal; NULL for one window */
    int n_drop;                                  /* dropout masks per micro-batch (LoRA inputs) */
    float **drop_data;                           /* [n_drop][drop_len[i]] */
    int64_t *drop_len;
    float *zeros;                                /* the largest gradient's worth of zeros */
};

/* Builds the four graphs and plans (llama_train_graph.c); unbuild frees them. */
apr_status llama_train_build(llama_train *t, apr_error *err);
void llama_train_unbuild(llama_train *t);
/* One micro-batch through the step plan; *loss gets its summed token loss. */
apr_status llama_train_run_step(llama_train *t, const int32_t *ids, const int32_t *targets, float dloss, float *loss,
                                apr_error *err);
apr_status llama_train_run_eval(llama_train *t, const int32_t *ids, const int32_t *targets, float *loss, apr_error *err);
/* Fills t->norms with each accumulated gradient's sum of squares. */
apr_status llama_train_run_norms(llama_train *t, apr_error *err);
/* One ADAMW / SGD step of every tensor at step t->steps. */
apr_status llama_train_run_update(llama_train *t, float lr, float gscale, apr_error *err);
/* Sets mem (one of a tensor's buffers) to zero. */
apr_status llama_train_zero(llama_train *t, apr_mem *mem, apr_error *err);

uint64_t llama_train_rand(uint64_t s[4]);
float llama_train_uniform(uint64_t s[4]);
void llama_train_seed(uint64_t s[4], uint64_t seed);

#endif

/* llama_train.h — training a Llama-family model on a backend: LoRA adapters over a frozen base (QLoRA
 * when the base is quantized) or every weight in f32, one optimizer step at a time. */
#ifndef APR_LLAMA_TRAIN_H
#define APR_LLAMA_TRAIN_H

/*
 * A trainer holds the trainable tensors in memory on backends[0] (apr_mem: weights, the optimizer's
 * moments and a gradient accumulator each), the frozen base weights placed there once, and three kept
 * plans:
 *   - the step graph: forward over a micro-batch, the summed cross-entropy loss, the backward graph
 *     apr_backward builds, and each gradient added in place into its accumulator (APR_OP_ACC);
 *   - the norm graph: the sum of squares of every accumulated gradient (clipping, NaN/inf checks);
 *   - the update graph: one ADAMW or SGD node per tensor, its hyperparameters an input set per step.
 * A step runs the first for each micro-batch, then the second, checks every norm and the loss on the
 * host, and runs the third. Nothing but token ids, targets and a few scalars crosses per step.
 *
 * A micro-batch is n_seqs windows of seq_len tokens run as one sequence of n_seqs * seq_len tokens
 * whose attention mask keeps the windows apart (each causal, positions from 0).
 *
 * Results with a fixed seed are bit-identical from run to run on one backend and thread count.
 */

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr.h"
#include "llama.h"
#include "llm_api.h"

typedef enum llama_train_method {
    LLAMA_TRAIN_LORA = 0,  /* adapters over a float base (f32, f16, bf16) */
    LLAMA_TRAIN_QLORA = 1, /* adapters over a quantized base, read by the quantized kernels as it is */
    LLAMA_TRAIN_FULL = 2,  /* every weight, in f32 */
} llama_train_method;

/* The matmuls LoRA adapts (lora_targets bits). */
enum {
    LLAMA_LORA_Q = 1u << 0, LLAMA_LORA_K = 1u << 1, LLAMA_LORA_V = 1u << 2, LLAMA_LORA_O = 1u << 3,
    LLAMA_LORA_GATE = 1u << 4, LLAMA_LORA_UP = 1u << 5, LLAMA_LORA_DOWN = 1u << 6,
};

typedef enum llama_optimizer { LLAMA_OPT_ADAMW = 0, LLAMA_OPT_ADAM = 1, LLAMA_OPT_SGD = 2 } llama_optimizer;

typedef struct llama_train_params {
    llama_train_method method;
    int lora_rank;            /* r */
    float lora_alpha;         /* the adapter's output is scaled by alpha / r */
    float lora_dropout;       /* probability an adapter input element is dropped (0 = none) */
    unsigned lora_targets;    /* LLAMA_LORA_* */
    int seq_len;              /* tokens per window */
    int n_seqs;               /* windows per micro-batch */
    llama_optimizer opt;
    float beta1, beta2, eps;  /* Adam(W) */
    float weight_decay;       /* decoupled (AdamW), L2 in the gradient (SGD); Adam ignores it */
    float momentum;           /* SGD */
    float clip;               /* largest gradient norm before scaling down; 0 = no clipping */
    uint64_t seed;            /* adapter initialisation and dropout */
    bool checkpointing;       /* recompute each layer in the backward pass instead of keeping its activations */
} llama_train_params;

/* LoRA r 8, alpha 16, no dropout, q and v; seq_len 256, 1 window; AdamW (0.9, 0.999, 1e-8, wd 0);
 * clip 1.0; seed 42. */
LLM_API llama_train_params apr_llama_train_defaults(void);

typedef struct llama_train llama_train;

/* m must outlive the trainer, and so must backends[0..n). The trainable tensors are initialised: LoRA A
 * uniform in +-1/sqrt(in) from the seed, B zero (the adapted model starts as the base); full training
 * starts from the model's weights converted to f32. A base whose dtype does not fit the method is an
 * error that says which method fits. */
LLM_API apr_status apr_llama_train_new(const llama_model *m, const llama_train_params *p, apr_backend *const *backends,
                                       int n_backends, llama_train **out, apr_error *err);
LLM_API void apr_llama_train_free(llama_train *t);

typedef struct llama_train_result {
    double loss;           /* mean token loss over the step's micro-batches */
    int64_t tokens;        /* tokens that carried loss */
    double grad_norm;      /* before clipping */
} llama_train_result;

/* One optimizer step over n_micro micro-batches; micro-batch i is ids[i * n] and targets[i * n] with
 * n = seq_len * n_seqs (targets -1 take no loss). lr is this step's learning rate. A loss or gradient that
 * is not finite leaves every tensor as it was and fails with APR_ERR_INVALID naming the tensor; a step
 * without any target is an error too. */
LLM_API apr_status apr_llama_train_step(llama_train *t, int n_micro, const int32_t *ids, const int32_t *targets, float lr,
                                        llama_train_result *res, apr_error *err);
/* The summed loss and the count of targets of one micro-batch, without any update. */
LLM_API apr_status apr_llama_train_eval(llama_train *t, const int32_t *ids, const int32_t *targets, double *loss_sum,
                                        int64_t *count, apr_error *err);
/* Optimizer steps taken (the bias corrections' t); set on resume. */
LLM_API int64_t apr_llama_train_steps(const llama_train *t);
LLM_API void apr_llama_train_set_steps(llama_train *t, int64_t steps);

/* The trainable tensors, in a fixed order: name (GGUF style: "blk.0.attn_q.weight.lora_a", or the
 * weight's own name in full training), shape, and their weights / moments read or written by value. */
typedef struct llama_train_tensor {
    const char *name;
    int n_dims;
    int64_t ne[4];
    int64_t n;              /* elements */
} llama_train_tensor;
enum { LLAMA_TRAIN_WEIGHT = 0, LLAMA_TRAIN_M = 1, LLAMA_TRAIN_V = 2 };
LLM_API int apr_llama_train_count(const llama_train *t);
LLM_API const llama_train_tensor *apr_llama_train_tensor(const llama_train *t, int i);
LLM_API apr_status apr_llama_train_read(llama_train *t, int i, int which, float *dst, apr_error *err);
LLM_API apr_status apr_llama_train_write(llama_train *t, int i, int which, const float *src, apr_error *err);
/* The generator behind dropout, for checkpoints (a resumed run draws the same masks). */
LLM_API void apr_llama_train_rng_get(const llama_train *t, uint64_t rng[4]);
LLM_API void apr_llama_train_rng_set(llama_train *t, const uint64_t rng[4]);
/* The plan statistics of the step graph (for --verbose). */
LLM_API void apr_llama_train_stats(const llama_train *t, apr_plan_stats *out);

#endif

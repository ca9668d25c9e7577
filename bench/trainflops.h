/* trainflops.h — the matmul and attention FLOPs of one training step (llm/llama_train.h), from the
 * model's shapes and the trainer's parameters.
 *
 * T = tokens per step (seq_len x n_seqs). A matmul of a weight of K inputs and N outputs over T tokens
 * is 2·K·N·T FLOPs (an FMA counts two), and so is each of its two gradients:
 *   forward   every matmul: q k v o gate up down of every layer, the output projection, and for
 *             LoRA both matmuls of each adapter (A: K -> r, B: r -> N);
 *   backward  dX = Wᵀ·dY for every matmul whose input X lies on the gradient's path, i.e. depends
 *             on a trainable tensor (apr_backward differentiates only such paths: with LoRA the base
 *             q/k/v/gate/up of the first layer below any adapter get no dX, nor do A's inputs there,
 *             while B's input A·x always does), and dW = dY·Xᵀ for the trainable weights only
 *             (LoRA A and B; full training: every weight).
 * Attention is counted apart: per window, layer and query head, with P = L(L+1)/2 causal (query,
 * key) pairs of a window of L tokens, 2·hd·P for Q·Kᵀ and 2·hd·P for P·V forward, and four such
 * products backward (dV = Pᵀ·dO, dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q) in every layer whose attention
 * output lies on the gradient's path. Without gradient checkpointing (apr-bench leaves it off): its
 * recomputation of every layer would add the layers' forward FLOPs again. */
#ifndef BENCH_TRAINFLOPS_H
#define BENCH_TRAINFLOPS_H

#include "llama.h"
#include "llama_train.h"

typedef struct trainflops {
    double fwd_base;      /* forward matmuls of the model's layers (q k v o gate up down) */
    double fwd_output;    /* the output projection (n_embd -> n_vocab) */
    double fwd_lora;      /* the adapters' A and B matmuls */
    double bwd_dx;        /* dX of every matmul on the gradient's path */
    double bwd_dw;        /* dW of the trainable weights */
    double attn_fwd;      /* attention products, forward (not in the matmul figures) */
    double attn_bwd;      /* attention products, backward */
    int n_fwd, n_dx, n_dw; /* matmuls counted in each part */
    int n_attn_bwd;        /* layers whose attention is differentiated */
} trainflops;

/* The matmul FLOPs of one step: forward + dX + dW. */
double trainflops_matmul(const trainflops *f);

/* Fills out for one optimizer step of one micro-batch of m trained with p (p->checkpointing off). */
void trainflops_count(const llama_model *m, const llama_train_params *p, trainflops *out);

#endif

/* trainflops.c — the matmul and attention FLOPs of one training step (the formula: trainflops.h).
 *
 * The forward pass is walked as llm/llama_train_graph.c builds it, carrying for each activation
 * whether it depends on a trainable tensor ("on the path": apr_backward's forward mark; every
 * activation here reaches the loss, so that mark alone decides). A matmul gets a dX when its input
 * is on the path and a dW when its weight is trainable; its output is on the path when either is. */
#include "trainflops.h"

double trainflops_matmul(const trainflops *f) { return f->fwd_base + f->fwd_output + f->fwd_lora + f->bwd_dx + f->bwd_dw; }

typedef struct trainflops_walk {
    trainflops *f;
    const llama_train_params *p;
    double T;           /* tokens per step */
    bool full;          /* every weight and norm trainable */
} trainflops_walk;

/* One matmul of a K x N weight over the step's tokens; returns whether its output is on the path. */
static bool trainflops_mm(trainflops_walk *w, double *fwd, double K, double N, bool x_on_path, bool w_trainable) {
    const double fl = 2.0 * K * N * w->T;
    *fwd += fl;
    w->f->n_fwd++;
    if (x_on_path) {
        w->f->bwd_dx += fl;
        w->f->n_dx++;
    }
    if (w_trainable) {
        w->f->bwd_dw += fl;
        w->f->n_dw++;
    }
    return x_on_path || w_trainable;
}

/* A projection of the model (LLAMA_LORA_* bit) over x: W x, plus B (A x) where LoRA adapts it. */
static bool trainflops_linear(trainflops_walk *w, int bit, const gguf_tensor *wt, bool x_on_path) {
    const double K = (double)wt->ne[0], N = (double)wt->ne[1];
    bool y = trainflops_mm(w, &w->f->fwd_base, K, N, x_on_path, w->full);
    if (!w->full && (w->p->lora_targets >> bit & 1u)) {
        const double r = (double)w->p->lora_rank;
        bool ax = trainflops_mm(w, &w->f->fwd_lora, K, r, x_on_path, true);
        y |= trainflops_mm(w, &w->f->fwd_lora, r, N, ax, true);
    }
    return y;
}

void trainflops_count(const llama_model *m, const llama_train_params *p, trainflops *out) {
    *out = (trainflops){0};
    const llama_hparams *hp = &m->hp;
    trainflops_walk w = {.f = out, .p = p, .T = (double)p->seq_len * p->n_seqs, .full = p->method == LLAMA_TRAIN_FULL};
    /* attention: causal pairs of every window, times the query heads and the head width */
    const double L = (double)p->seq_len, pairs = L * (L + 1) / 2 * p->n_seqs;
    const double attn_product = 2.0 * hp->head_dim * pairs * hp->n_head;

    bool x = w.full; /* the embedding rows (a trainable table in full training; get_rows, no matmul) */
    for (int l = 0; l < hp->n_layer; l++) {
        const llama_layer *ly = &m->layers[l];
        const bool h = x || w.full; /* rms_norm times attn_norm, trainable in full training */
        bool q = trainflops_linear(&w, 0, ly->wq, h);
        bool k = trainflops_linear(&w, 1, ly->wk, h);
        bool v = trainflops_linear(&w, 2, ly->wv, h);
        /* biases and q/k norms are trainable only in full training, where everything already is */
        const bool att = q || k || v;
        out->attn_fwd += 2 * attn_product;
        if (att) {
            out->attn_bwd += 4 * attn_product;
            out->n_attn_bwd++;
        }
        x |= trainflops_linear(&w, 3, ly->wo, att);
        const bool h2 = x || w.full;
        bool gate = trainflops_linear(&w, 4, ly->w_gate, h2);
        bool up = trainflops_linear(&w, 5, ly->w_up, h2);
        x |= trainflops_linear(&w, 6, ly->w_down, gate || up);
    }
    /* the final norm and the output projection (the embedding itself when tied: trainable in full) */
    trainflops_mm(&w, &out->fwd_output, (double)m->output->ne[0], (double)m->output->ne[1], x || w.full, w.full);
}

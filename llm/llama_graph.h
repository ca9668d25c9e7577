/* llama_graph.h — the forward graph of a batch over the KV cache, as llama_ctx.c builds and keeps it. */
#ifndef APR_LLAMA_GRAPH_H
#define APR_LLAMA_GRAPH_H

#include "llama.h"

/* What fixes a batch's graph: the values that vary within one shape are its inputs. */
typedef struct llama_shape {
    int n;               /* tokens */
    int64_t s0;          /* first cache slot attention reads */
    int S;               /* slots it reads: [s0, s0 + S) */
    bool masked;         /* a mask input says which slots each token sees */
    bool causal;         /* without a mask: token t sees slots up to t + S - n */
    int n_out;           /* tokens whose logits are wanted */
    bool last_only;      /* n_out == 1 and it is the last token (no selection input) */
} llama_shape;

/* The graph's inputs and output. */
typedef struct llama_graph_io {
    apr_tensor *ids;     /* [n] i32 */
    apr_tensor *pos;     /* [n] i32 positions */
    apr_tensor *slots;   /* [n_head_kv * n] i32 rows of the cache tables each token's heads go to */
    apr_tensor *mask;    /* [S, n] f32 or NULL */
    apr_tensor *out_ids; /* [n_out] i32 tokens whose logits are wanted, or NULL (all, or the last) */
    apr_tensor *logits;  /* [n_vocab, n_out] f32 */
} llama_graph_io;

/* Builds the forward graph of shape sh over kv into g; apr_graph_error says what went wrong. */
void llama_graph_build(const llama_model *m, const llama_kv *kv, const llama_shape *sh, apr_graph *g, llama_graph_io *io);

#endif

/* llama_kv.h — the KV cache of a Llama-family model: per layer, keys and values of every sequence's
 * positions in memory that lives on a backend, written in place by the forward graph. */
#ifndef APR_LLAMA_KV_H
#define APR_LLAMA_KV_H

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr.h"
#include "llm_api.h"

/* Sequence s holds its position p in slot s * n_ctx + p of every layer's tables. A table is
 * [head_dim, n_seq * n_ctx, n_head_kv] of dtype, head-major: the row of head h and slot i is row
 * h * n_slots + i, so that attention streams each head's keys and values in order. */
typedef struct llama_kv {
    apr_backend *be;        /* where the tables live */
    apr_dtype dtype;        /* APR_F16 or APR_F32 */
    int n_layer;
    int head_dim;           /* elements of one row */
    int n_head_kv;          /* rows of one slot (one per key/value head) */
    int64_t n_slots;        /* n_seq * n_ctx */
    int n_ctx;              /* positions per sequence */
    int n_seq;              /* sequences */
    apr_mem **k, **v;       /* [n_layer] tables */
    int *len;               /* [n_seq] positions held by each sequence (0 = empty) */
} llama_kv;

/* Tables for n_seq sequences of n_ctx positions on be; zeroed. A failure names what did not fit. */
LLM_API apr_status apr_llama_kv_new(apr_backend *be, apr_dtype dtype, int n_layer, int head_dim, int n_head_kv, int n_ctx, int n_seq,
                                    llama_kv **out, apr_error *err);
LLM_API void apr_llama_kv_free(llama_kv *kv);
/* Bytes of the tables, all layers, keys and values. */
LLM_API int64_t apr_llama_kv_bytes(const llama_kv *kv);
/* The slot of position pos of sequence seq. */
static inline int64_t llama_kv_slot(const llama_kv *kv, int seq, int pos) { return (int64_t)seq * kv->n_ctx + pos; }
/* Forgets sequence seq's positions from pos on (0: all of them); later tokens overwrite them. */
LLM_API void apr_llama_kv_truncate(llama_kv *kv, int seq, int pos);
/* Makes sequence dst hold the first n positions of src (a shared prompt), copying them on the backend. */
LLM_API apr_status apr_llama_kv_copy_seq(llama_kv *kv, int dst, int src, int n, apr_error *err);

#endif

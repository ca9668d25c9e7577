/* operands.h — the host data of one case: weights (one set per copy) and activations. */
#ifndef BENCH_OPERANDS_H
#define BENCH_OPERANDS_H

#include <stddef.h>

#include "cases.h"

#define OPERANDS_MAX_COPIES 8

typedef struct operands {
    const cases_case *c;
    int copies;                            /* independent weight sets, used in turn */
    void *w[OPERANDS_MAX_COPIES];          /* matmul W [K, N] or attention K [D, S, Hkv], in c->dtype */
    void *v[OPERANDS_MAX_COPIES];          /* attention V [D, S, Hkv]; NULL otherwise */
    size_t w_bytes, v_bytes;
    float *x;                              /* the input: matmul X [K, M], row-op x, attention Q [D, T, H] */
    size_t x_bytes;
    size_t out_bytes;                      /* bytes of the op's f32 result */
} operands;

/* Enough copies that one pass over them does not fit in a cache of cache_bytes (memory-bound
 * cases only; compute-bound cases use one). */
int operands_copies(const cases_case *c, long long cache_bytes);

/* Allocates and fills. Returns 0, or -1 with a message. */
int operands_new(operands *o, const cases_case *c, int copies, char *err, size_t err_size);
void operands_free(operands *o);

#endif

/* cases.h — the benchmark cases: op, shape, dtype, and the work and traffic each one implies. */
#ifndef BENCH_CASES_H
#define BENCH_CASES_H

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr.h"

typedef enum cases_kind { CASES_MATMUL, CASES_RMS_NORM, CASES_SOFTMAX, CASES_ATTENTION } cases_kind;

/* Which ceiling a case is held to. */
typedef enum cases_bound {
    CASES_BOUND_READ, /* memory-bound: bytes moved / read bandwidth */
    CASES_BOUND_FMA,  /* compute-bound: flops / peak FMA rate */
} cases_bound;

typedef struct cases_case {
    const char *id;         /* short name for --case and JSON, e.g. "gemv-f32" */
    cases_kind kind;
    apr_dtype dtype;        /* matmul weight dtype; attention K/V dtype; f32 otherwise */
    int64_t m, n, k;        /* matmul: X is M rows of K, W is N rows of K, dst is M rows of N */
    int64_t rows, cols;     /* rms_norm, softmax: rows of cols elements */
    int64_t d, h, hkv, t, s;/* attention: head dim, query heads, kv heads, queries, keys */
    bool causal;            /* attention */
    cases_bound bound;
    bool quick;             /* part of the --quick set */
    bool headline;          /* repeated in the summary (the figures the project's closing note quotes) */
} cases_case;

/* All cases, in run order. */
const cases_case *cases_all(int *n);
/* The case with this id, or NULL. */
const cases_case *cases_find(const char *id);

/* Floating-point operations of one run (an FMA counts as two); 0 where flops are not the measure. */
double cases_flops(const cases_case *c);
/* Bytes one run must read and write at least: weights, activations and results, once each. */
double cases_bytes(const cases_case *c);
/* A human-readable shape, e.g. "gemv K4096 N4096" or "gemm 1024^3". */
void cases_describe(const cases_case *c, char *buf, size_t size);
/* True when OpenBLAS can do the same work (f32 matmul). */
bool cases_has_peer(const cases_case *c);

#endif

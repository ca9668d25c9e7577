/* x86_backend.h — the cpu-x86 backend instance: thread pool, per-worker scratch, cache-derived blocking. */
#ifndef APR_X86_BACKEND_H
#define APR_X86_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "apr/apr_abi.h"
#include "../common/tpool.h"

typedef struct x86_backend {
    tpool *pool;            /* n_threads workers, the compute() caller being worker 0 */
    int n_threads;          /* workers */
    char **scratch;         /* [n_threads] per-worker scratch, 64-byte aligned */
    size_t scratch_size;    /* bytes of each scratch[i] */
    int64_t l1d_bytes;      /* L1 data cache of one core (host info, or a default) */
    int64_t l2_bytes;       /* L2 of one core */
    char *shared;           /* scratch all workers share (qmatmul's quantized activation rows), 64-byte aligned */
    size_t shared_size;     /* bytes of shared */
    int vnni;               /* 1: the CPU has AVX512-VNNI and this is the avx512 variant (qmatmul picks _vnni kernels) */
} x86_backend;

/* Makes every worker's scratch at least bytes long (called by the dispatching thread before
 * tpool_run; contents are not kept). 0 on success, -1 when memory ran out. */
int backend_reserve(x86_backend *be, size_t bytes);

/* Makes be->shared at least bytes long (contents are not kept). 0 on success, -1 when memory ran out. */
int backend_reserve_shared(x86_backend *be, size_t bytes);

/* Runs fn on every worker, or only on the caller (as worker 0 of 1) when the node is too small
 * for a dispatch to pay off: work is about the number of elements touched. */
#define BACKEND_SERIAL_WORK 16384
static inline void backend_run(x86_backend *be, tpool_fn fn, void *ctx, int64_t work) {
    if (be->n_threads == 1 || work < BACKEND_SERIAL_WORK) fn(ctx, 0, 1);
    else tpool_run(be->pool, fn, ctx);
}

#endif

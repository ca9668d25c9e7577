/* neon_backend.h — the cpu-neon backend instance: thread pool, per-worker scratch, cache-derived blocking, int8 dot path. */
#ifndef APR_NEON_BACKEND_H
#define APR_NEON_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "apr/apr_abi.h"
#include "../common/tpool.h"

/* The int8 dot-product paths, from the most widely available up. */
#define NEON_QDOT_PLAIN 0   /* smull + sadalp: every AArch64 CPU */
#define NEON_QDOT_DOTPROD 1 /* sdot (vdotq_s32): HWCAP_ASIMDDP */
#define NEON_QDOT_I8MM 2    /* smmla (vmmlaq_s32): HWCAP2_I8MM (the dotprod kernel serves single rows) */

typedef struct neon_backend {
    tpool *pool;            /* n_threads workers, the compute() caller being worker 0 */
    int n_threads;          /* workers */
    char **scratch;         /* [n_threads] per-worker scratch, 64-byte aligned */
    size_t scratch_size;    /* bytes of each scratch[i] */
    int64_t l1d_bytes;      /* L1 data cache of one core (host info, or a default) */
    int64_t l2_bytes;       /* L2 of one core */
    int qpath;              /* int8 dot-product kernels qmatmul uses: NEON_QDOT_* (from HWCAP at create) */
} neon_backend;

/* Makes every worker's scratch at least bytes long (called by the dispatching thread before
 * tpool_run; contents are not kept). 0 on success, -1 when memory ran out. */
int backend_reserve(neon_backend *be, size_t bytes);

/* Runs fn on every worker, or only on the caller (as worker 0 of 1) when the node is too small
 * for a dispatch to pay off: work is about the number of elements touched. */
#define BACKEND_SERIAL_WORK 16384
static inline void backend_run(neon_backend *be, tpool_fn fn, void *ctx, int64_t work) {
    if (be->n_threads == 1 || work < BACKEND_SERIAL_WORK) fn(ctx, 0, 1);
    else tpool_run(be->pool, fn, ctx);
}

#endif

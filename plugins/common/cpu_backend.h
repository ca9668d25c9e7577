/* cpu_backend.h — the instance every CPU plugin shares: thread pool, per-worker and shared scratch, cache-derived blocking. */
#ifndef APR_CPU_BACKEND_H
#define APR_CPU_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "apr/apr_abi.h"
#include "tpool.h"

/* What one helper prefetches once it has finished its share of an op (tpool_leave), while the
 * caller runs the small ops up to the next matmul alone: the first weight bytes its share of that
 * matmul reads, as ranges read round-robin in CPU_PF_CHUNK pieces. */
#define CPU_PF_RANGES 16
#define CPU_PF_CHUNK 4096
typedef struct cpu_prefetch {
    const char *p[CPU_PF_RANGES]; /* start of each range */
    int64_t bytes[CPU_PF_RANGES];  /* its length */
    int n;                         /* ranges; 0 = nothing to prefetch */
} cpu_prefetch;

typedef struct cpu_backend {
    tpool *pool;            /* n_threads workers, the compute() caller being worker 0 */
    int n_threads;          /* workers */
    char **scratch;         /* [n_threads] per-worker scratch, 64-byte aligned */
    size_t scratch_size;    /* bytes of each scratch[i] */
    int64_t l1d_bytes;      /* L1 data cache of one core (host info, or a default) */
    int64_t l2_bytes;       /* L2 of one core */
    char *shared;           /* scratch all workers share (x86 qmatmul's quantized activation rows), 64-byte aligned */
    size_t shared_size;     /* bytes of shared */
    int qpath;              /* int8 dot-product kernels qmatmul uses (probe_qpath() at create): X86_QDOT_* / NEON_QDOT_* */
    cpu_prefetch *ahead;    /* [n_threads] what helper i prefetches after its share of the op now running (entry 0 unused) */
    const void *ahead_of;   /* the first node of the matmul run ahead describes, or NULL */
} cpu_backend;

/* The instance slots of the plugin table. create refuses (UNSUPPORTED) where probe_usable() does;
 * compute checks each node with opcheck and cpu_supports_node, then runs the kernel of its op
 * (../simd/simd_ops.h). */
apr_status cpu_backend_create(const apr_backend_config *cfg, void **backend, char *err, size_t err_size);
void cpu_backend_destroy(void *backend);
apr_status cpu_backend_compute(void *backend, const apr_subgraph *g, char *err, size_t err_size);

/* The plan slots (ABI 4, cpu_plan.c): a plan runs its subgraph through cpu_backend_compute, checking
 * its nodes on the first run only. */
apr_status cpu_plan_create(void *backend, const apr_subgraph *g, void **plan, char *err, size_t err_size);
apr_status cpu_plan_compute(void *backend, void *plan, char *err, size_t err_size);
void cpu_plan_free(void *backend, void *plan);

/* The weight_pack slot (ABI 3). Checks what every plugin would, then asks the plugin's own
 * cpu_isa_weight_pack, which keeps the layouts its kernels read (cpu-x86: isa/qpack.h) or declines. */
apr_status cpu_backend_weight_pack(void *backend, const apr_tensor_desc *w, apr_buffer *out, char *err, size_t err_size);
apr_status cpu_isa_weight_pack(cpu_backend *be, const apr_tensor_desc *w, apr_buffer *out, char *err, size_t err_size);

/* Makes every worker's scratch at least bytes long (called by the dispatching thread before
 * tpool_run; contents are not kept). 0 on success, -1 when memory ran out. */
int cpu_backend_reserve(cpu_backend *be, size_t bytes);

/* Makes be->shared at least bytes long (contents are not kept). 0 on success, -1 when memory ran out. */
int cpu_backend_reserve_shared(cpu_backend *be, size_t bytes);

/* Whether two descriptors name the very same tensor (data, dtype, shape and strides). */
static inline int cpu_same_tensor(const apr_tensor_desc *a, const apr_tensor_desc *b) {
    if (a->data != b->data || a->dtype != b->dtype) return 0;
    for (int i = 0; i < APR_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i] || a->nb[i] != b->nb[i]) return 0;
    return 1;
}

/* Runs fn on every worker (tpool_run); a helper done with its share then prefetches be->ahead[ith]. */
void cpu_backend_dispatch(cpu_backend *be, tpool_fn fn, void *ctx);

/* Runs fn on every worker, or only on the caller (as worker 0 of 1) when the node is too small
 * for a dispatch to pay off: work is about the number of elements touched. */
#define CPU_BACKEND_SERIAL_WORK 16384
static inline void cpu_backend_run(cpu_backend *be, tpool_fn fn, void *ctx, int64_t work) {
    if (be->n_threads == 1 || work < CPU_BACKEND_SERIAL_WORK) fn(ctx, 0, 1);
    else cpu_backend_dispatch(be, fn, ctx);
}

#endif

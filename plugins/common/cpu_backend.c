/* cpu_backend.c — CPU plugin instances: create/destroy (thread pool, scratch, int8 path), compute (node dispatch, matmul runs, prefetch ahead); baseline code. */
#include "cpu_backend.h"

#include <stdlib.h>

#include "../simd/simd_ops.h"
#include "cpu_probe.h"
#include "cpu_supports.h"
#include "msg.h"
#include "opcheck.h"

int cpu_backend_reserve(cpu_backend *be, size_t bytes) {
    if (bytes <= be->scratch_size) return 0;
    bytes = (bytes + 63) & ~(size_t)63;
    for (int i = 0; i < be->n_threads; i++) {
        void *p = aligned_alloc(64, bytes);
        if (!p) return -1; /* earlier workers keep their bigger buffers; size stays the old one */
        free(be->scratch[i]);
        be->scratch[i] = p;
    }
    be->scratch_size = bytes;
    return 0;
}

int cpu_backend_reserve_shared(cpu_backend *be, size_t bytes) {
    if (bytes <= be->shared_size) return 0;
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (!p) return -1;
    free(be->shared);
    be->shared = p;
    be->shared_size = bytes;
    return 0;
}

typedef struct cpu_job {
    cpu_backend *be;
    tpool_fn fn;
    void *ctx;
} cpu_job;

/* A helper that has done its share leaves the job and, until the next job comes, prefetches the
 * first weights of its share of the next matmul into its L2: the caller meanwhile runs the small
 * ops in between alone (norms, rope, attention's tail), so this reading costs no one any time. */
static void cpu_backend_job(void *ctx, int ith, int nth) {
    const cpu_job *j = ctx;
    j->fn(j->ctx, ith, nth);
    if (ith == 0 || !j->be->ahead || j->be->ahead[ith].n == 0) return;
    const cpu_prefetch pf = j->be->ahead[ith]; /* copied before leaving: the caller rewrites it */
    tpool *pool = j->be->pool;
    const unsigned ticket = tpool_leave(pool);
    for (int64_t off = 0;; off += CPU_PF_CHUNK) {
        int more = 0;
        for (int r = 0; r < pf.n; r++) {
            if (off >= pf.bytes[r]) continue;
            more = 1;
            if (tpool_superseded(pool, ticket)) return;
            const int64_t end = off + CPU_PF_CHUNK < pf.bytes[r] ? off + CPU_PF_CHUNK : pf.bytes[r];
            for (int64_t o = off; o < end; o += 64) __builtin_prefetch(pf.p[r] + o, 0, 2);
        }
        if (!more) return;
    }
}

void cpu_backend_dispatch(cpu_backend *be, tpool_fn fn, void *ctx) {
    cpu_job j = {be, fn, ctx};
    tpool_run(be->pool, cpu_backend_job, &j);
}

void cpu_backend_destroy(void *backend) {
    cpu_backend *be = backend;
    if (!be) return;
    tpool_destroy(be->pool);
    if (be->scratch)
        for (int i = 0; i < be->n_threads; i++) free(be->scratch[i]);
    free(be->scratch);
    free(be->shared);
    free(be->ahead);
    free(be);
}

apr_status cpu_backend_create(const apr_backend_config *cfg, void **backend, char *err, size_t err_size) {
    char why[160];
    if (!backend) return msg_set(err, err_size, APR_ERR_INVALID, "create: NULL backend pointer");
    *backend = NULL;
    /* create may be called without a probe (or on another machine than the probe ran on) */
    if (!probe_usable(why, sizeof why)) return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "%s", why);
    int n = 0;
    const apr_host_info *host = NULL;
    if (cfg && cfg->struct_size >= offsetof(apr_backend_config, n_threads) + sizeof(int32_t)) n = cfg->n_threads;
    if (cfg && cfg->struct_size >= sizeof(apr_backend_config)) host = cfg->host;
    if (n < 0) return msg_set(err, err_size, APR_ERR_INVALID, "create: n_threads %d < 0", n);
    if (n == 0 && host && host->struct_size >= offsetof(apr_host_info, n_physical_cores) + sizeof(int32_t))
        n = host->n_physical_cores;
    if (n <= 0) n = 1;
    if (n > 1024) return msg_set(err, err_size, APR_ERR_INVALID, "create: n_threads %d too large", n);
    cpu_backend *be = calloc(1, sizeof *be);
    if (!be) return msg_set(err, err_size, APR_ERR_NOMEM, "create: out of memory");
    be->n_threads = n;
    be->qpath = probe_qpath();
    be->l1d_bytes = 32 * 1024;
    be->l2_bytes = 1024 * 1024;
    if (host && host->struct_size >= offsetof(apr_host_info, l2_bytes) + sizeof(int64_t)) {
        if (host->l1d_bytes > 0) be->l1d_bytes = host->l1d_bytes;
        if (host->l2_bytes > 0) be->l2_bytes = host->l2_bytes;
    }
    be->scratch = calloc((size_t)n, sizeof(char *));
    be->ahead = calloc((size_t)n, sizeof(cpu_prefetch));
    be->pool = be->scratch && be->ahead ? tpool_create(n) : NULL;
    if (!be->pool) {
        cpu_backend_destroy(be);
        return msg_set(err, err_size, APR_ERR_NOMEM, "create: cannot start %d worker threads", n);
    }
    *backend = be;
    return APR_OK;
}

/* 1 when every tensor the node uses has a CPU address. */
static int cpu_backend_host_visible(const apr_node_desc *n) {
    if (opcheck_nelements(&n->dst) && !n->dst.data) return 0;
    for (uint32_t i = 0; i < n->n_src; i++)
        if (cpu_supports_has_src(n, (int)i) && opcheck_nelements(opcheck_src(n, i)) && !opcheck_src(n, i)->data) return 0;
    return 1;
}

/* 1 when a packed buffer (weight_pack) is read by anything but a MATMUL as its weight: only the
 * matmul kernels know the packed layouts. */
static int cpu_backend_packed_misused(const apr_node_desc *n) {
    if (n->dst.buffer && (n->dst.buffer->flags & APR_BUFFER_PACKED)) return 1;
    for (uint32_t i = 0; i < n->n_src; i++)
        if (cpu_supports_has_src(n, (int)i) && opcheck_src(n, i)->buffer && (opcheck_src(n, i)->buffer->flags & APR_BUFFER_PACKED) &&
            !(n->op == APR_OP_MATMUL && i == 0))
            return 1;
    return 0;
}

apr_status cpu_backend_weight_pack(void *backend, const apr_tensor_desc *w, apr_buffer *out, char *err, size_t err_size) {
    cpu_backend *be = backend;
    if (!be || !w || !out) return msg_set(err, err_size, APR_ERR_INVALID, "weight_pack: NULL argument");
    if (w->struct_size < sizeof(apr_tensor_desc) || out->struct_size < sizeof(apr_buffer))
        return msg_set(err, err_size, APR_ERR_ABI, "weight_pack: struct too small");
    return cpu_isa_weight_pack(be, w, out, err, err_size);
}

static apr_status cpu_backend_node(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    switch (n->op) {
    case APR_OP_MATMUL: return matmul_run(be, n, err, err_size);
    case APR_OP_ADD:
    case APR_OP_MUL:
    case APR_OP_SCALE:
    case APR_OP_SILU:
    case APR_OP_GELU:
    case APR_OP_SWIGLU: return eltwise_run(be, n, err, err_size);
    case APR_OP_RMS_NORM: return rmsnorm_run(be, n, err, err_size);
    case APR_OP_ROPE: return rope_run(be, n, err, err_size);
    case APR_OP_SOFTMAX: return softmax_run(be, n, err, err_size);
    case APR_OP_ATTENTION: return attention_run(be, n, err, err_size);
    case APR_OP_GET_ROWS:
    case APR_OP_CPY:
    case APR_OP_CONCAT: return convert_run(be, n, err, err_size);
    case APR_OP_SET_ROWS: return set_rows_run(be, n, err, err_size);
    case APR_OP_ARGMAX: return argmax_run(be, n, err, err_size);
    case APR_OP_ADAMW: return adamw_run(be, n, err, err_size);
    case APR_OP_MATMUL_GRAD_X: return matmul_grad_x_run(be, n, err, err_size);
    case APR_OP_MATMUL_GRAD_W: return matmul_grad_w_run(be, n, err, err_size);
    case APR_OP_GET_ROWS_GRAD: return get_rows_grad_run(be, n, err, err_size);
    case APR_OP_SUM_REPEATS: return sum_repeats_run(be, n, err, err_size);
    case APR_OP_RMS_NORM_GRAD:
    case APR_OP_SOFTMAX_GRAD: return grad_row_run(be, n, err, err_size);
    case APR_OP_ROPE_GRAD: return rope_grad_run(be, n, err, err_size);
    case APR_OP_SILU_GRAD:
    case APR_OP_GELU_GRAD: return grad_eltwise_run(be, n, err, err_size);
    case APR_OP_ATTENTION_GRAD: return attention_grad_run(be, n, err, err_size);
    case APR_OP_CROSS_ENTROPY:
    case APR_OP_CROSS_ENTROPY_GRAD: return cross_entropy_run(be, n, err, err_size);
    case APR_OP_SGD: return sgd_run(be, n, err, err_size);
    case APR_OP_ACC: return acc_run(be, n, err, err_size);
    default: return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "op %u not supported", n->op);
    }
}

static const apr_node_desc *cpu_backend_at(const apr_subgraph *g, uint32_t i) {
    return (const apr_node_desc *)((const char *)g->nodes + (size_t)i * g->node_stride);
}

/* How many nodes from i on are MATMULs that read node i's very X (a layer's q, k and v, or its
 * gate and up), at most CPU_MATMUL_GROUP; 1 for any other node. Such a run goes to
 * matmul_run_group, which can read the weights as one sequence in one dispatch. */
#define CPU_MATMUL_GROUP 4
static uint32_t cpu_backend_run_len(const apr_subgraph *g, uint32_t i) {
    const apr_node_desc *a = cpu_backend_at(g, i);
    uint32_t r = 1;
    if (a->op != APR_OP_MATMUL) return r;
    while (i + r < g->n_nodes && r < CPU_MATMUL_GROUP) {
        const apr_node_desc *b = cpu_backend_at(g, i + r);
        if (b->op != APR_OP_MATMUL || !cpu_same_tensor(&a->src[1], &b->src[1])) break;
        r++;
    }
    return r;
}

/* Points be->ahead at the matmul run that starts at or after node `from` (next_mm remembers
 * where the last search ended, so a subgraph is scanned once). */
static void cpu_backend_look_ahead(cpu_backend *be, const apr_subgraph *g, uint32_t from, uint32_t *next_mm) {
    if (*next_mm < from) {
        *next_mm = from;
        while (*next_mm < g->n_nodes && cpu_backend_at(g, *next_mm)->op != APR_OP_MATMUL) (*next_mm)++;
    }
    const void *key = *next_mm < g->n_nodes ? (const void *)cpu_backend_at(g, *next_mm) : NULL;
    if (key == be->ahead_of) return;
    be->ahead_of = key;
    for (int t = 0; t < be->n_threads; t++) be->ahead[t].n = 0;
    if (!key) return;
    const uint32_t r = cpu_backend_run_len(g, *next_mm);
    const apr_node_desc *run[CPU_MATMUL_GROUP];
    for (uint32_t j = 0; j < r; j++) run[j] = cpu_backend_at(g, *next_mm + j);
    matmul_prefetch_plan(be, run, (int)r);
}

/* The checks a node passes before it first runs: a node we do not implement fails loudly, never runs wrong. */
static apr_status cpu_backend_check(cpu_backend *be, const apr_node_desc *n, char *why, size_t why_size) {
    apr_status st = opcheck_node(n, why, why_size);
    if (st == APR_OK) st = opcheck_bounds(n, why, why_size);
    if (st == APR_OK) st = cpu_supports_node(be, n, why, why_size);
    if (st != APR_OK) return st;
    if (cpu_backend_packed_misused(n))
        return msg_set(why, why_size, APR_ERR_INVALID, "a packed weight is read by something other than a matmul");
    if (!cpu_backend_host_visible(n)) return msg_set(why, why_size, APR_ERR_INVALID, "tensor not in host memory");
    return APR_OK;
}

apr_status cpu_backend_compute(void *backend, const apr_subgraph *g, char *err, size_t err_size) {
    cpu_backend *be = backend;
    if (!be || !g) return msg_set(err, err_size, APR_ERR_INVALID, "compute: NULL argument");
    if (g->struct_size < sizeof(apr_subgraph)) return msg_set(err, err_size, APR_ERR_ABI, "compute: subgraph struct too small");
    if (g->n_nodes && (!g->nodes || g->node_stride < APR_NODE_DESC_SIZE_V3))
        return msg_set(err, err_size, APR_ERR_ABI, "compute: node stride %u below %zu", g->node_stride,
                       (size_t)APR_NODE_DESC_SIZE_V3);
    /* another subgraph may hold other nodes at the addresses of the last one's */
    be->ahead_of = NULL;
    for (int t = 0; t < be->n_threads; t++) be->ahead[t].n = 0;
    uint32_t next_mm = 0; /* the first MATMUL at or after the current run's end, or n_nodes */
    for (uint32_t i = 0; i < g->n_nodes;) {
        const uint32_t r = cpu_backend_run_len(g, i);
        if (be->n_threads > 1) cpu_backend_look_ahead(be, g, i + r, &next_mm);
        char why[200];
        /* APR_SUBGRAPH_CHECKED: these nodes passed every check in an earlier call (a decode plan rerun per token) */
        for (uint32_t j = i; j < i + r && !(g->flags & APR_SUBGRAPH_CHECKED); j++) {
            const apr_node_desc *n = cpu_backend_at(g, j);
            apr_status st = cpu_backend_check(be, n, why, sizeof why);
            if (st != APR_OK) return msg_set(err, err_size, st, "node %u (%s): %s", j, n->name ? n->name : "?", why);
        }
        const apr_node_desc *n = cpu_backend_at(g, i);
        apr_status st;
        if (r > 1) {
            const apr_node_desc *run[CPU_MATMUL_GROUP];
            for (uint32_t j = 0; j < r; j++) run[j] = cpu_backend_at(g, i + j);
            st = matmul_run_group(be, run, (int)r, why, sizeof why);
        } else {
            st = cpu_backend_node(be, n, why, sizeof why);
        }
        if (st != APR_OK)
            return msg_set(err, err_size, st, "node %u (%s)%s: %s", i, n->name ? n->name : "?", r > 1 ? " and the matmuls after it" : "", why);
        i += r;
    }
    return APR_OK;
}

/* opaque.c — a test backend (ABI 4) whose memory the host cannot address and whose work is queued,
 * running every op with the reference kernels and counting what crosses its boundary (opaque.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/common/msg.h"
#include "../../plugins/common/opcheck.h"
#include "../../plugins/reference/ref_ops.h"
#include "opaque.h"

__attribute__((visibility("default"))) apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out,
                                                                   char *err, size_t err_size);
_Static_assert(__builtin_types_compatible_p(__typeof__(&apr_plugin_entry), apr_plugin_entry_fn),
               "apr_plugin_entry does not match apr_plugin_entry_fn");

#define OPAQUE_ALIGN 64u
#define MEM_MAGIC 0x4f50424du   /* "OPBM": a live buffer record */
#define PLAN_MAGIC 0x4f50504cu  /* "OPPL": a live plan */
#define EVENT_MAGIC 0x4f504556u /* "OPEV": a live event */

#define FITS(s, type, field) ((s)->struct_size >= offsetof(type, field) + sizeof((s)->field))

struct instance;

/* What an apr_buffer's handle points to: the bytes and what the plugin knows of them. The record
 * and its bytes live while referenced: by the owner's list until buffer_free / destroy, and by each
 * peer copy from it still queued on another instance. */
typedef struct opaque_mem {
    uint32_t magic;           /* MEM_MAGIC while alive (in its owner's list); 0 once freed. Written by
                               * the owner's thread, read atomically by a peer's queue */
    uint32_t usage;           /* index of the *_by_usage counters */
    uint32_t refs;            /* references (atomic): 1 for the owner's list + 1 per queued peer copy */
    struct instance *owner;   /* may dangle once magic is 0: never followed then */
    uint64_t size;
    unsigned char *bytes;     /* OPAQUE_ALIGN-aligned, never handed out */
    apr_buffer shadow;        /* what queued and planned nodes' descs point to instead of the core's apr_buffer */
} opaque_mem;

/* A subgraph made runnable: node copies whose data point into the plugin's memory. */
typedef struct opaque_plan {
    uint32_t magic;           /* PLAN_MAGIC while alive */
    struct instance *owner;
    uint32_t n_nodes;
    apr_node_desc *nodes;
    size_t n_mems;
    opaque_mem **mems;        /* the buffers the nodes name, checked alive at each plan_compute */
} opaque_plan;

typedef enum qkind { Q_WRITE, Q_READ, Q_COPY, Q_PEER_COPY, Q_NODES, Q_PLAN, Q_MARKER } qkind;

typedef struct qitem {
    struct qitem *next;
    uint64_t seq;
    qkind kind;
    opaque_mem *mem, *src_mem; /* WRITE/READ: mem; COPY: src_mem -> mem; PEER_COPY: the same, src_mem
                                * another instance's and referenced until the item has run */
    uint64_t offset, src_offset, size;
    const void *host_src;      /* WRITE: read when run */
    void *host_dst;            /* READ: written when run */
    opaque_plan *plan;         /* NODES: owned, freed once run; PLAN: the caller's plan */
} qitem;

typedef struct opaque_event {
    uint32_t magic;            /* EVENT_MAGIC while alive */
    struct instance *owner;    /* the instance it was last recorded on; NULL before */
    uint64_t seq;              /* the marker's sequence number there */
} opaque_event;

typedef struct instance {
    opaque_counters counters;  /* first: apr_backend_instance(be) is a opaque_counters * */
    int32_t device;
    pthread_mutex_t lock;      /* the queue and what a drain touches (event_wait may drain another instance) */
    qitem *head, *tail;
    uint64_t next_seq, depth;
    opaque_mem **mems;         /* live buffers, sorted by address; changed only by the instance's own
                                * thread and then under live_lock (other instances read it under live_lock) */
    size_t n_mems, cap_mems;
    uint64_t live_bytes, live_plans;
} instance;

/* ---------------------------------------------------------------- bookkeeping */

/* Every live instance of this process, so that buffer_copy can tell a peer's buffer from anything
 * else without following a handle that may not be a buffer, and event_wait an instance still alive
 * from one destroyed. Instances are used from different threads: live_lock guards this list and
 * every change to an instance's mems array. Lock order: live_lock before an instance's lock. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct instance **live;
static size_t n_live, cap_live;

static bool live_has(const struct instance *x) { /* live_lock held */
    for (size_t i = 0; i < n_live; i++)
        if (live[i] == x) return true;
    return false;
}

static void mem_ref(opaque_mem *m) { __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED); }

static void mem_unref(opaque_mem *m) {
    if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    free(m->bytes);
    free(m);
}

/* The owner is done with m (buffer_free, destroy), m already out of its list: a peer copy still
 * queued from it finds it dead, but its bytes stay valid until that copy has run. */
static void mem_kill(opaque_mem *m) {
    __atomic_store_n(&m->magic, 0u, __ATOMIC_RELEASE);
    mem_unref(m);
}

/* Rewrites what a test's reset may have zeroed and the gauges; refuse_peer_copy, the test's to set,
 * is left alone. */
static void publish(instance *in) {
    in->counters.magic = OPAQUE_MAGIC;
    in->counters.device = in->device;
    in->counters.live_buffers = in->n_mems;
    in->counters.live_bytes = in->live_bytes;
    in->counters.live_plans = in->live_plans;
    in->counters.queue_depth = in->depth;
}

static size_t mem_pos(const instance *in, const void *p) {
    size_t lo = 0, hi = in->n_mems;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)in->mems[mid] < (uintptr_t)p) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The live record of this instance that handle is, without dereferencing a foreign handle. */
static opaque_mem *mem_find(const instance *in, const void *handle) {
    size_t i = mem_pos(in, handle);
    return i < in->n_mems && in->mems[i] == handle ? in->mems[i] : NULL;
}

/* buf as one of this instance's buffers, its apr_buffer consistent with the record. */
static opaque_mem *mem_of(const instance *in, const apr_buffer *buf) {
    if (!buf) return NULL;
    opaque_mem *m = mem_find(in, buf->handle);
    if (!m || m->magic != MEM_MAGIC || buf->size != m->size || (buf->flags & APR_BUFFER_HOST_VISIBLE) || buf->host_ptr)
        return NULL;
    return m;
}

static bool range_ok(const opaque_mem *m, uint64_t offset, uint64_t size) {
    return offset <= m->size && size <= m->size - offset;
}

/* ---------------------------------------------------------------- kernels */

static apr_status check_host(const apr_node_desc *n, char *err, size_t err_size) {
    if (opcheck_nelements(&n->dst) && !n->dst.data)
        return msg_set(err, err_size, APR_ERR_INVALID, "%s: dst has no memory", opcheck_op_name(n->op));
    for (uint32_t i = 0; i < n->n_src; i++)
        if (opcheck_src_present(n, i) && opcheck_nelements(opcheck_src(n, i)) && !opcheck_src(n, i)->data)
            return msg_set(err, err_size, APR_ERR_INVALID, "%s: src%u has no memory", opcheck_op_name(n->op), (unsigned)i);
    return APR_OK;
}

/* Points t (a copy) into the plugin's memory: data = bytes + offset, buffer = the record's shadow.
 * An absent tensor (no buffer) stays as it is. */
static apr_status translate(instance *in, apr_tensor_desc *t, const char *what, opaque_plan *p, size_t cap_mems,
                            char *err, size_t err_size) {
    if (t->struct_size < offsetof(apr_tensor_desc, data) + sizeof t->data)
        return msg_set(err, err_size, APR_ERR_INVALID, "%s: struct_size %u is too small", what, (unsigned)t->struct_size);
    if (!t->buffer) {
        if (t->data) return msg_set(err, err_size, APR_ERR_INVALID, "%s: data without a buffer", what);
        return APR_OK;
    }
    /* the core must never invent a host address for memory that is not host visible */
    if (t->data) return msg_set(err, err_size, APR_ERR_INVALID, "%s: data is set, but no buffer of opaque is host visible", what);
    opaque_mem *m = mem_of(in, t->buffer);
    if (!m) return msg_set(err, err_size, APR_ERR_INVALID, "%s: the buffer is not a live buffer of this opaque instance", what);
    t->buffer = &m->shadow;
    t->data = t->offset <= m->size ? m->bytes + t->offset : NULL; /* past the end: opcheck_bounds refuses it */
    for (size_t i = 0; i < p->n_mems; i++)
        if (p->mems[i] == m) return APR_OK;
    if (p->n_mems < cap_mems) p->mems[p->n_mems++] = m;
    return APR_OK;
}

static void plan_destroy(opaque_plan *p) {
    if (!p) return;
    p->magic = 0;
    free(p->nodes);
    free(p->mems);
    free(p);
}

/* Checks every node of graph and copies it, translated, into a new plan. */
static apr_status plan_build(instance *in, const apr_subgraph *graph, opaque_plan **out, char *err, size_t err_size) {
    *out = NULL;
    if (!graph || graph->struct_size < sizeof(apr_subgraph))
        return msg_set(err, err_size, APR_ERR_INVALID, "opaque: subgraph is NULL or its struct_size is too small");
    if (graph->n_nodes && !graph->nodes)
        return msg_set(err, err_size, APR_ERR_INVALID, "opaque: subgraph of %u nodes has no node array", (unsigned)graph->n_nodes);
    if (graph->n_nodes &&
        (graph->node_stride < sizeof(apr_node_desc) || graph->node_stride % _Alignof(apr_node_desc) != 0))
        return msg_set(err, err_size, APR_ERR_INVALID, "opaque: node_stride %u, want a multiple of %zu and >= %zu",
                       (unsigned)graph->node_stride, _Alignof(apr_node_desc), sizeof(apr_node_desc));
    opaque_plan *p = calloc(1, sizeof *p);
    size_t cap_mems = (size_t)graph->n_nodes * (1 + APR_MAX_SRC + APR_MAX_SRC_EXT);
    if (p) {
        p->nodes = calloc(graph->n_nodes ? graph->n_nodes : 1, sizeof *p->nodes);
        p->mems = calloc(cap_mems ? cap_mems : 1, sizeof *p->mems);
    }
    if (!p || !p->nodes || !p->mems) {
        plan_destroy(p);
        return msg_set(err, err_size, APR_ERR_NOMEM, "opaque: out of memory copying a subgraph of %u nodes", (unsigned)graph->n_nodes);
    }
    p->magic = PLAN_MAGIC;
    p->owner = in;
    p->n_nodes = graph->n_nodes;
    for (uint32_t i = 0; i < graph->n_nodes; i++) {
        const apr_node_desc *src = (const apr_node_desc *)((const char *)graph->nodes + (size_t)i * graph->node_stride);
        apr_node_desc *n = &p->nodes[i];
        char why[384] = "";
        apr_status st = opcheck_node(src, why, sizeof why);
        if (st == APR_OK) {
            *n = *src; /* opcheck_node saw struct_size >= sizeof(apr_node_desc) */
            st = translate(in, &n->dst, "dst", p, cap_mems, why, sizeof why);
            for (uint32_t k = 0; st == APR_OK && k < n->n_src; k++) {
                char what[16];
                snprintf(what, sizeof what, "src%u", (unsigned)k);
                apr_tensor_desc *t = k < APR_MAX_SRC ? &n->src[k] : &n->src_ext[k - APR_MAX_SRC];
                if (opcheck_src_present(n, k))
                    st = translate(in, t, what, p, cap_mems, why, sizeof why);
                else if (t->struct_size >= offsetof(apr_tensor_desc, data) + sizeof t->data && t->data)
                    st = msg_set(why, sizeof why, APR_ERR_INVALID, "%s: absent, but data is set", what);
            }
        }
        if (st == APR_OK) st = opcheck_bounds(n, why, sizeof why);
        if (st == APR_OK) st = check_host(n, why, sizeof why);
        if (st != APR_OK) {
            const char *name = src->struct_size >= sizeof(apr_node_desc) && src->name ? src->name : "unnamed";
            plan_destroy(p);
            return msg_set(err, err_size, st, "opaque: node %u (%s): %s", (unsigned)i, name, why);
        }
        n->name = NULL; /* the core's string may not outlive a plain compute */
    }
    *out = p;
    return APR_OK;
}

/* ---------------------------------------------------------------- the queue */

static apr_status enqueue(instance *in, qitem *it, char *err, size_t err_size) {
    qitem *q = malloc(sizeof *q);
    if (!q) return msg_set(err, err_size, APR_ERR_NOMEM, "opaque: out of memory queueing work");
    *q = *it;
    q->next = NULL;
    pthread_mutex_lock(&in->lock);
    q->seq = ++in->next_seq;
    if (in->tail) in->tail->next = q;
    else in->head = q;
    in->tail = q;
    in->depth++;
    in->counters.n_enqueued++;
    publish(in);
    pthread_mutex_unlock(&in->lock);
    return APR_OK;
}

static apr_status run_nodes(instance *in, const opaque_plan *p, char *err, size_t err_size) {
    for (uint32_t i = 0; i < p->n_nodes; i++) {
        const apr_node_desc *n = &p->nodes[i];
        char why[384] = "";
        apr_status st = refkernel_run(n, why, sizeof why);
        if (st != APR_OK) return msg_set(err, err_size, st, "opaque: queued node %u: %s", (unsigned)i, why);
        in->counters.n_nodes_run++;
        if (n->op < OPAQUE_N_OPS) in->counters.nodes_by_op[n->op]++;
    }
    return APR_OK;
}

static apr_status run_item(instance *in, qitem *q, char *err, size_t err_size) {
    switch (q->kind) {
    case Q_WRITE: memcpy(q->mem->bytes + q->offset, q->host_src, (size_t)q->size); return APR_OK;
    case Q_READ: memcpy(q->host_dst, q->mem->bytes + q->offset, (size_t)q->size); return APR_OK;
    case Q_COPY: memmove(q->mem->bytes + q->offset, q->src_mem->bytes + q->src_offset, (size_t)q->size); return APR_OK;
    case Q_PEER_COPY:
        /* the peer's memory, as its queue has left it: the core made this queue wait for an event
         * recorded there, which drained the peer up to that marker */
        if (__atomic_load_n(&q->src_mem->magic, __ATOMIC_ACQUIRE) != MEM_MAGIC)
            return msg_set(err, err_size, APR_ERR_INVALID,
                           "opaque: a queued copy of %llu bytes from a peer's buffer ran after that buffer was freed",
                           (unsigned long long)q->size);
        memcpy(q->mem->bytes + q->offset, q->src_mem->bytes + q->src_offset, (size_t)q->size);
        return APR_OK;
    case Q_NODES:
    case Q_PLAN: return run_nodes(in, q->plan, err, err_size);
    case Q_MARKER: return APR_OK;
    }
    return msg_set(err, err_size, APR_ERR_INTERNAL, "opaque: queue item of kind %d", (int)q->kind);
}

/* Runs queued items in order up to and including sequence number upto; the first failure is
 * returned (later items still run, as on a device whose queue does not stop). */
static apr_status drain(instance *in, uint64_t upto, char *err, size_t err_size) {
    apr_status first = APR_OK;
    pthread_mutex_lock(&in->lock);
    while (in->head && in->head->seq <= upto) {
        qitem *q = in->head;
        in->head = q->next;
        if (!in->head) in->tail = NULL;
        in->depth--;
        char why[512] = "";
        apr_status st = run_item(in, q, why, sizeof why);
        if (st != APR_OK) {
            in->counters.n_async_errors++;
            if (first == APR_OK) first = msg_set(err, err_size, st, "%s", why);
        }
        if (q->kind == Q_NODES) plan_destroy(q->plan);
        if (q->kind == Q_PEER_COPY) mem_unref(q->src_mem);
        free(q);
    }
    publish(in);
    pthread_mutex_unlock(&in->lock);
    return first;
}

static apr_status drain_all(instance *in, char *err, size_t err_size) { return drain(in, UINT64_MAX, err, err_size); }

/* The drain a synchronous call does first; counted when it found work. */
static apr_status drain_implicit(instance *in, char *err, size_t err_size) {
    if (!in->head) return APR_OK;
    in->counters.n_implicit_drains++;
    char why[512] = "";
    apr_status st = drain_all(in, why, sizeof why);
    if (st != APR_OK) return msg_set(err, err_size, st, "opaque: earlier queued work failed: %s", why);
    return APR_OK;
}

/* ---------------------------------------------------------------- probe, instances */

static apr_status opaque_probe(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size) {
    (void)host;
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: probe result is NULL");
    if (FITS(out, apr_probe_result, score)) out->score = 1;
    if (FITS(out, apr_probe_result, reason))
        msg_set(out->reason, sizeof out->reason, APR_OK, "test plugin: memory the host cannot address, queued work");
    if (FITS(out, apr_probe_result, features)) out->features[0] = '\0';
    if (FITS(out, apr_probe_result, n_devices)) out->n_devices = OPAQUE_N_DEVICES;
    return APR_OK;
}

static apr_status opaque_probe_device(const apr_host_info *host, uint32_t device, apr_probe_result *out, char *err,
                                      size_t err_size) {
    (void)host;
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: probe result is NULL");
    if (device >= OPAQUE_N_DEVICES)
        return msg_set(err, err_size, APR_ERR_INVALID, "opaque: device %u, it has %d", (unsigned)device, OPAQUE_N_DEVICES);
    if (FITS(out, apr_probe_result, score)) out->score = 1;
    if (FITS(out, apr_probe_result, reason)) msg_set(out->reason, sizeof out->reason, APR_OK, "opaque device %u", (unsigned)device);
    if (FITS(out, apr_probe_result, features)) out->features[0] = '\0';
    return APR_OK;
}

static apr_status opaque_create(const apr_backend_config *cfg, void **backend, char *err, size_t err_size) {
    if (!backend) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: create without an output pointer");
    *backend = NULL;
    int32_t device = cfg && FITS(cfg, apr_backend_config, device) ? cfg->device : 0;
    if (device < 0 || device >= OPAQUE_N_DEVICES)
        return msg_set(err, err_size, APR_ERR_INVALID, "opaque: device %d, want 0..%d", (int)device, OPAQUE_N_DEVICES - 1);
    instance *in = calloc(1, sizeof *in);
    if (!in) return msg_set(err, err_size, APR_ERR_NOMEM, "opaque: cannot allocate an instance");
    if (pthread_mutex_init(&in->lock, NULL) != 0) {
        free(in);
        return msg_set(err, err_size, APR_ERR_INTERNAL, "opaque: cannot create a mutex");
    }
    in->device = device;
    pthread_mutex_lock(&live_lock);
    if (n_live == cap_live) {
        size_t cap = cap_live ? 2 * cap_live : 8;
        instance **nl = realloc(live, cap * sizeof *nl);
        if (nl) live = nl, cap_live = cap;
    }
    bool listed = n_live < cap_live;
    if (listed) live[n_live++] = in;
    pthread_mutex_unlock(&live_lock);
    if (!listed) {
        pthread_mutex_destroy(&in->lock);
        free(in);
        return msg_set(err, err_size, APR_ERR_NOMEM, "opaque: out of memory listing instances");
    }
    publish(in);
    *backend = in;
    return APR_OK;
}

static void opaque_destroy(void *backend) {
    instance *in = backend;
    if (!in) return;
    /* off the list first: no peer copy can name its buffers from now on, and no event_wait drains it */
    pthread_mutex_lock(&live_lock);
    for (size_t i = 0; i < n_live; i++)
        if (live[i] == in) {
            live[i] = live[--n_live];
            break;
        }
    if (!n_live) {
        free(live);
        live = NULL;
        cap_live = 0;
    }
    pthread_mutex_unlock(&live_lock);
    drain_all(in, NULL, 0);
    for (size_t i = 0; i < in->n_mems; i++) mem_kill(in->mems[i]);
    free(in->mems);
    pthread_mutex_destroy(&in->lock);
    free(in);
}

static apr_status opaque_supports(void *backend, const apr_node_desc *node, char *why, size_t why_size) {
    instance *in = backend;
    if (in) {
        in->counters.n_supports++;
        publish(in);
    }
    return opcheck_node(node, why, why_size) == APR_OK ? APR_OK : APR_ERR_UNSUPPORTED;
}

/* ---------------------------------------------------------------- memory */

static apr_status mem_new(instance *in, uint64_t size, uint32_t usage, apr_buffer *out, char *err, size_t err_size) {
    if (!in || !out) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: alloc without an instance or an output");
    if (size > SIZE_MAX - OPAQUE_ALIGN)
        return msg_set(err, err_size, APR_ERR_NOMEM, "opaque: cannot allocate %llu bytes", (unsigned long long)size);
    size_t rounded = ((size_t)size + OPAQUE_ALIGN - 1) / OPAQUE_ALIGN * OPAQUE_ALIGN;
    if (!rounded) rounded = OPAQUE_ALIGN;
    opaque_mem *m = calloc(1, sizeof *m);
    unsigned char *bytes = aligned_alloc(OPAQUE_ALIGN, rounded);
    if (!m || !bytes) {
        free(m);
        free(bytes);
        return msg_set(err, err_size, APR_ERR_NOMEM, "opaque: cannot allocate %llu bytes", (unsigned long long)size);
    }
    memset(bytes, 0, rounded);
    m->magic = MEM_MAGIC;
    m->usage = usage;
    m->refs = 1;
    m->owner = in;
    m->size = size;
    m->bytes = bytes;
    m->shadow = (apr_buffer){.struct_size = sizeof(apr_buffer), .flags = 0, .size = size, .host_ptr = NULL, .handle = m};
    pthread_mutex_lock(&live_lock); /* a peer's buffer_copy may be searching the list */
    if (in->n_mems == in->cap_mems) {
        size_t cap = in->cap_mems ? 2 * in->cap_mems : 64;
        opaque_mem **nm = realloc(in->mems, cap * sizeof *nm);
        if (nm) in->mems = nm, in->cap_mems = cap;
    }
    bool listed = in->n_mems < in->cap_mems;
    if (listed) {
        size_t pos = mem_pos(in, m);
        memmove(in->mems + pos + 1, in->mems + pos, (in->n_mems - pos) * sizeof *in->mems);
        in->mems[pos] = m;
        in->n_mems++;
    }
    pthread_mutex_unlock(&live_lock);
    if (!listed) {
        free(bytes);
        free(m);
        return msg_set(err, err_size, APR_ERR_NOMEM, "opaque: out of memory listing buffers");
    }
    in->live_bytes += size;
    out->flags = 0; /* never host visible: every byte goes through buffer_write / buffer_read */
    out->size = size;
    out->host_ptr = NULL;
    out->handle = m;
    in->counters.bytes_allocated += size;
    in->counters.n_allocs_by_usage[usage]++;
    in->counters.bytes_allocated_by_usage[usage] += size;
    publish(in);
    return APR_OK;
}

static apr_status opaque_alloc(void *backend, uint64_t size, apr_buffer *out, char *err, size_t err_size) {
    instance *in = backend;
    apr_status st = mem_new(in, size, OPAQUE_USAGE_UNTOLD, out, err, err_size);
    if (st == APR_OK) in->counters.n_allocs++;
    return st;
}

static apr_status opaque_alloc_ex(void *backend, const apr_buffer_request *req, apr_buffer *out, char *err,
                                  size_t err_size) {
    instance *in = backend;
    if (!in || !req || !FITS(req, apr_buffer_request, size))
        return msg_set(err, err_size, APR_ERR_INVALID, "opaque: buffer request is NULL or its struct_size is too small");
    if (req->usage > APR_USAGE_STAGING)
        return msg_set(err, err_size, APR_ERR_INVALID, "opaque: unknown buffer usage %u", (unsigned)req->usage);
    if (req->kind != APR_MEM_DEVICE) {
        in->counters.n_allocs_refused++;
        publish(in);
        return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "opaque: has no %s memory",
                       req->kind == APR_MEM_HOST_VISIBLE ? "host-visible" : req->kind == APR_MEM_HOST_STAGING ? "staging" : "such");
    }
    apr_status st = mem_new(in, req->size, req->usage, out, err, err_size);
    if (st == APR_OK) in->counters.n_allocs_ex++;
    return st;
}

static void opaque_free(void *backend, apr_buffer *buf) {
    instance *in = backend;
    if (!in || !buf) return;
    opaque_mem *m = mem_find(in, buf->handle);
    if (!m) return; /* not ours (or freed twice): nothing to do */
    drain_implicit(in, NULL, 0); /* queued work may still name it */
    pthread_mutex_lock(&live_lock); /* a peer's buffer_copy may be searching the list */
    size_t pos = mem_pos(in, m);
    memmove(in->mems + pos, in->mems + pos + 1, (in->n_mems - pos - 1) * sizeof *in->mems);
    in->n_mems--;
    pthread_mutex_unlock(&live_lock);
    in->live_bytes -= m->size;
    mem_kill(m); /* a peer copy from it still queued elsewhere keeps its bytes and fails when it runs */
    buf->handle = NULL;
    buf->host_ptr = NULL;
    buf->size = 0;
    in->counters.n_frees++;
    publish(in);
}

static apr_status io_check(instance *in, const apr_buffer *buf, uint64_t offset, const void *host, uint64_t size,
                           const char *what, opaque_mem **m, char *err, size_t err_size) {
    if (!in) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: %s without an instance", what);
    *m = mem_of(in, buf);
    if (!*m) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: %s on a buffer that is not a live buffer of this instance", what);
    if (!range_ok(*m, offset, size))
        return msg_set(err, err_size, APR_ERR_INVALID, "opaque: %s of %llu bytes at %llu past a %llu-byte buffer", what,
                       (unsigned long long)size, (unsigned long long)offset, (unsigned long long)(*m)->size);
    if (size && !host) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: %s of %llu bytes with a NULL host pointer", what,
                                      (unsigned long long)size);
    return APR_OK;
}

static void count_in(instance *in, const opaque_mem *m, uint64_t size, bool async) {
    in->counters.bytes_in += size;
    in->counters.n_writes++;
    in->counters.n_writes_async += async;
    in->counters.bytes_in_by_usage[m->usage] += size;
    in->counters.n_writes_by_usage[m->usage]++;
    publish(in);
}

static void count_out(instance *in, const opaque_mem *m, uint64_t size, bool async) {
    in->counters.bytes_out += size;
    in->counters.n_reads++;
    in->counters.n_reads_async += async;
    in->counters.bytes_out_by_usage[m->usage] += size;
    in->counters.n_reads_by_usage[m->usage]++;
    publish(in);
}

static apr_status opaque_write(void *backend, apr_buffer *buf, uint64_t offset, const void *src, uint64_t size, char *err,
                               size_t err_size) {
    instance *in = backend;
    opaque_mem *m;
    apr_status st = io_check(in, buf, offset, src, size, "write", &m, err, err_size);
    if (st == APR_OK) st = drain_implicit(in, err, err_size);
    if (st != APR_OK) return st;
    if (size) memcpy(m->bytes + offset, src, (size_t)size);
    count_in(in, m, size, false);
    return APR_OK;
}

static apr_status opaque_read(void *backend, const apr_buffer *buf, uint64_t offset, void *dst, uint64_t size, char *err,
                              size_t err_size) {
    instance *in = backend;
    opaque_mem *m;
    apr_status st = io_check(in, buf, offset, dst, size, "read", &m, err, err_size);
    if (st == APR_OK) st = drain_implicit(in, err, err_size);
    if (st != APR_OK) return st;
    if (size) memcpy(dst, m->bytes + offset, (size_t)size);
    count_out(in, m, size, false);
    return APR_OK;
}

static apr_status opaque_write_async(void *backend, apr_buffer *buf, uint64_t offset, const void *src, uint64_t size,
                                     char *err, size_t err_size) {
    instance *in = backend;
    opaque_mem *m;
    apr_status st = io_check(in, buf, offset, src, size, "write_async", &m, err, err_size);
    if (st != APR_OK) return st;
    qitem it = {.kind = Q_WRITE, .mem = m, .offset = offset, .size = size, .host_src = src};
    if ((st = enqueue(in, &it, err, err_size)) != APR_OK) return st;
    count_in(in, m, size, true);
    return APR_OK;
}

static apr_status opaque_read_async(void *backend, const apr_buffer *buf, uint64_t offset, void *dst, uint64_t size,
                                    char *err, size_t err_size) {
    instance *in = backend;
    opaque_mem *m;
    apr_status st = io_check(in, buf, offset, dst, size, "read_async", &m, err, err_size);
    if (st != APR_OK) return st;
    qitem it = {.kind = Q_READ, .mem = m, .offset = offset, .size = size, .host_dst = dst};
    if ((st = enqueue(in, &it, err, err_size)) != APR_OK) return st;
    count_out(in, m, size, true);
    return APR_OK;
}

/* Between two buffers of this instance, or from a buffer of another live opaque instance (a peer
 * device) into one of this instance: both are queued here and run when this queue is drained. A
 * host-visible buffer of another backend, or anything else, is APR_ERR_UNSUPPORTED (the core stages
 * the copy through buffer_write), and so is a peer's buffer while refuse_peer_copy is set on either
 * side. */
static apr_status opaque_copy(void *backend, const apr_buffer *src, uint64_t src_offset, apr_buffer *dst,
                              uint64_t dst_offset, uint64_t size, char *err, size_t err_size) {
    instance *in = backend;
    if (!in) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: copy without an instance");
    opaque_mem *d = mem_of(in, dst);
    if (!d) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: copy into a buffer that is not a live buffer of this instance");
    opaque_mem *s = mem_of(in, src);
    if (s) {
        if (!range_ok(s, src_offset, size) || !range_ok(d, dst_offset, size))
            return msg_set(err, err_size, APR_ERR_INVALID,
                           "opaque: copy of %llu bytes from %llu of %llu to %llu of %llu is out of range",
                           (unsigned long long)size, (unsigned long long)src_offset, (unsigned long long)s->size,
                           (unsigned long long)dst_offset, (unsigned long long)d->size);
        qitem it = {.kind = Q_COPY, .mem = d, .offset = dst_offset, .src_mem = s, .src_offset = src_offset, .size = size};
        apr_status st = enqueue(in, &it, err, err_size);
        if (st != APR_OK) return st;
        in->counters.bytes_copied += size;
        in->counters.n_copies++;
        in->counters.bytes_copied_by_usage[d->usage] += size;
        publish(in);
        return APR_OK;
    }

    /* a peer's? Every other live instance's list is searched under live_lock, so src->handle is
     * followed only once it is known to be a live record, and a reference is taken before the lock
     * is let go: a free from the peer's thread cannot pull the bytes from under the queued copy. */
    instance *peer = NULL;
    bool refused = false, in_range = false;
    int32_t peer_device = -1;
    uint64_t src_size = 0;
    pthread_mutex_lock(&live_lock);
    for (size_t i = 0; src && i < n_live && !s; i++)
        if (live[i] != in && (s = mem_of(live[i], src)) != NULL) peer = live[i];
    if (s) {
        peer_device = peer->device;
        src_size = s->size;
        refused = __atomic_load_n(&in->counters.refuse_peer_copy, __ATOMIC_RELAXED) != 0 ||
                  __atomic_load_n(&peer->counters.refuse_peer_copy, __ATOMIC_RELAXED) != 0;
        in_range = range_ok(s, src_offset, size) && range_ok(d, dst_offset, size);
        if (!refused && in_range) mem_ref(s);
    }
    pthread_mutex_unlock(&live_lock);
    if (!s || refused) {
        in->counters.n_copies_refused++;
        publish(in);
        if (!s)
            return msg_set(err, err_size, APR_ERR_UNSUPPORTED,
                           "opaque: copies only from its own buffers or a live buffer of another opaque instance");
        return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "opaque: device %d cannot reach device %d (refuse_peer_copy)",
                       (int)in->device, (int)peer_device);
    }
    if (!in_range)
        return msg_set(err, err_size, APR_ERR_INVALID,
                       "opaque: peer copy of %llu bytes from %llu of %llu to %llu of %llu is out of range",
                       (unsigned long long)size, (unsigned long long)src_offset, (unsigned long long)src_size,
                       (unsigned long long)dst_offset, (unsigned long long)d->size);
    qitem it = {.kind = Q_PEER_COPY, .mem = d, .offset = dst_offset, .src_mem = s, .src_offset = src_offset, .size = size};
    apr_status st = enqueue(in, &it, err, err_size);
    if (st != APR_OK) {
        mem_unref(s);
        return st;
    }
    /* nothing crosses to the host: bytes_in / bytes_out stay as they are */
    in->counters.bytes_peer_copied += size;
    in->counters.n_peer_copies++;
    publish(in);
    return APR_OK;
}

/* ---------------------------------------------------------------- compute and plans */

static apr_status opaque_compute(void *backend, const apr_subgraph *graph, char *err, size_t err_size) {
    instance *in = backend;
    if (!in) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: compute without an instance");
    opaque_plan *p;
    apr_status st = plan_build(in, graph, &p, err, err_size);
    if (st != APR_OK) return st;
    qitem it = {.kind = Q_NODES, .plan = p};
    if ((st = enqueue(in, &it, err, err_size)) != APR_OK) {
        plan_destroy(p);
        return st;
    }
    in->counters.n_computes++;
    publish(in);
    return APR_OK;
}

static apr_status opaque_plan_create(void *backend, const apr_subgraph *graph, void **plan, char *err, size_t err_size) {
    instance *in = backend;
    if (!in || !plan) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: plan_create without an instance or an output");
    *plan = NULL;
    opaque_plan *p;
    apr_status st = plan_build(in, graph, &p, err, err_size);
    if (st != APR_OK) return st;
    *plan = p;
    in->live_plans++;
    in->counters.n_plans_created++;
    publish(in);
    return APR_OK;
}

static apr_status opaque_plan_compute(void *backend, void *plan, char *err, size_t err_size) {
    instance *in = backend;
    opaque_plan *p = plan;
    if (!in || !p || p->magic != PLAN_MAGIC || p->owner != in)
        return msg_set(err, err_size, APR_ERR_INVALID, "opaque: plan_compute of something not a live plan of this instance");
    for (size_t i = 0; i < p->n_mems; i++)
        if (!mem_find(in, p->mems[i]))
            return msg_set(err, err_size, APR_ERR_INVALID, "opaque: the plan names a buffer that was freed");
    qitem it = {.kind = Q_PLAN, .plan = p};
    apr_status st = enqueue(in, &it, err, err_size);
    if (st != APR_OK) return st;
    in->counters.n_plan_runs++;
    publish(in);
    return APR_OK;
}

static void opaque_plan_free(void *backend, void *plan) {
    instance *in = backend;
    opaque_plan *p = plan;
    if (!in || !p || p->magic != PLAN_MAGIC || p->owner != in) return;
    drain_implicit(in, NULL, 0); /* a queued run may still name it */
    plan_destroy(p);
    in->live_plans--;
    in->counters.n_plans_freed++;
    publish(in);
}

/* ---------------------------------------------------------------- synchronize and events */

static apr_status opaque_synchronize(void *backend, char *err, size_t err_size) {
    instance *in = backend;
    if (!in) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: synchronize without an instance");
    in->counters.n_synchronize++;
    return drain_all(in, err, err_size);
}

static apr_status opaque_event_create(void *backend, void **event, char *err, size_t err_size) {
    instance *in = backend;
    if (!in || !event) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: event_create without an instance or an output");
    opaque_event *e = calloc(1, sizeof *e);
    if (!e) return msg_set(err, err_size, APR_ERR_NOMEM, "opaque: cannot allocate an event");
    e->magic = EVENT_MAGIC;
    *event = e;
    in->counters.n_events_created++;
    publish(in);
    return APR_OK;
}

static opaque_event *event_of(void *event) {
    opaque_event *e = event;
    return e && e->magic == EVENT_MAGIC ? e : NULL;
}

static apr_status opaque_event_record(void *backend, void *event, char *err, size_t err_size) {
    instance *in = backend;
    opaque_event *e = event_of(event);
    if (!in || !e) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: event_record of something not a live event");
    qitem it = {.kind = Q_MARKER};
    apr_status st = enqueue(in, &it, err, err_size);
    if (st != APR_OK) return st;
    e->owner = in;
    e->seq = in->next_seq; /* the marker's */
    in->counters.n_event_records++;
    publish(in);
    return APR_OK;
}

/* Drains the instance e was recorded on up to its marker, when that instance is still alive (a
 * destroyed one drained everything first). Another instance's is drained under live_lock, so that it
 * cannot be destroyed meanwhile. */
static apr_status drain_to_event(instance *in, const opaque_event *e, char *err, size_t err_size) {
    if (!e->owner) return APR_OK; /* never recorded: nothing to wait for */
    if (e->owner == in) return drain(in, e->seq, err, err_size);
    pthread_mutex_lock(&live_lock);
    apr_status st = live_has(e->owner) ? drain(e->owner, e->seq, err, err_size) : APR_OK;
    pthread_mutex_unlock(&live_lock);
    return st;
}

/* One queue per instance runs in order, so an event of this instance needs nothing; one of another
 * instance (same plugin) is waited for by draining that instance up to its marker now, so that the
 * work queued here afterwards (a peer copy from that instance's memory) sees what came before the
 * marker. */
static apr_status opaque_event_wait(void *backend, void *event, char *err, size_t err_size) {
    instance *in = backend;
    opaque_event *e = event_of(event);
    if (!in || !e) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: event_wait on something not a live event");
    in->counters.n_event_waits++;
    publish(in);
    if (!e->owner || e->owner == in) return APR_OK;
    return drain_to_event(in, e, err, err_size);
}

static apr_status opaque_event_synchronize(void *backend, void *event, char *err, size_t err_size) {
    instance *in = backend;
    opaque_event *e = event_of(event);
    if (!in || !e) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: event_synchronize on something not a live event");
    in->counters.n_event_syncs++;
    publish(in);
    return drain_to_event(in, e, err, err_size);
}

static void opaque_event_free(void *backend, void *event) {
    instance *in = backend;
    opaque_event *e = event_of(event);
    if (!e) return;
    e->magic = 0;
    free(e);
    if (in) {
        in->counters.n_events_freed++;
        publish(in);
    }
}

/* ---------------------------------------------------------------- the table */

static const apr_plugin opaque_table = {
    .struct_size = sizeof(apr_plugin),
    .abi_version = APR_ABI_VERSION,
    .name = "opaque",
    .description = "test backend: memory the host cannot address, queued work, two devices, reference kernels",
    .buffer_alignment = OPAQUE_ALIGN,
    .probe = opaque_probe,
    .create = opaque_create,
    .destroy = opaque_destroy,
    .supports = opaque_supports,
    .buffer_alloc = opaque_alloc,
    .buffer_import = NULL,
    .buffer_free = opaque_free,
    .buffer_write = opaque_write,
    .buffer_read = opaque_read,
    .compute = opaque_compute,
    .weight_pack = NULL,
    .caps = 0,
    .probe_device = opaque_probe_device,
    .buffer_alloc_ex = opaque_alloc_ex,
    .plan_create = opaque_plan_create,
    .plan_compute = opaque_plan_compute,
    .plan_free = opaque_plan_free,
    .synchronize = opaque_synchronize,
    .buffer_write_async = opaque_write_async,
    .buffer_read_async = opaque_read_async,
    .buffer_copy = opaque_copy,
    .event_create = opaque_event_create,
    .event_record = opaque_event_record,
    .event_wait = opaque_event_wait,
    .event_synchronize = opaque_event_synchronize,
    .event_free = opaque_event_free,
};

/* The same backend presented as an ABI 3 plugin (APR_OPAQUE_ABI=3): a table that ends before the
 * ABI 4 slots, so the core must treat it as a plugin that predates them (src_ext included); or as an
 * ABI 4 plugin (APR_OPAQUE_ABI=4), which must never be given an op of ABI 5. */
static apr_plugin opaque_table_v3;

apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out, char *err, size_t err_size) {
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "opaque: entry called without an output pointer");
    *out = NULL;
    /* an older core would neither synchronize nor know that memory need not be host visible */
    if (core_abi_version < 4)
        return msg_set(err, err_size, APR_ERR_ABI, "opaque implements ABI %u and needs a core of ABI >= 4; this core speaks %u",
                       (unsigned)APR_ABI_VERSION, (unsigned)core_abi_version);
    const char *abi = getenv("APR_OPAQUE_ABI");
    if (abi && !strcmp(abi, "3")) {
        opaque_table_v3 = opaque_table;
        opaque_table_v3.struct_size = offsetof(apr_plugin, caps);
        opaque_table_v3.abi_version = 3;
        *out = &opaque_table_v3;
        return APR_OK;
    }
    if (abi && !strcmp(abi, "4")) { /* the ABI 4 table: every slot, but no op of ABI 5 */
        opaque_table_v3 = opaque_table;
        opaque_table_v3.abi_version = 4;
        *out = &opaque_table_v3;
        return APR_OK;
    }
    *out = &opaque_table;
    return APR_OK;
}

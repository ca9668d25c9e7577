/* internal.h — structures and helpers the core's files share; not part of the public API. */
#ifndef APR_CORE_INTERNAL_H
#define APR_CORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "apr/apr.h"

#define APR_API __attribute__((visibility("default")))
#define APR_NAME_MAX 64


/* ---------------------------------------------------------------- graph */

typedef enum apr_tensor_kind {
    APR_KIND_INPUT,   /* leaf; data per run */
    APR_KIND_WEIGHT,  /* leaf; caller's host memory */
    APR_KIND_OP,      /* result of an op; its own storage */
    APR_KIND_VIEW,    /* shares the storage of base */
    APR_KIND_RESIDENT, /* leaf; bytes of an apr_mem on a backend */
} apr_tensor_kind;

#define APR_SRC_LIMIT (APR_MAX_SRC + APR_MAX_SRC_EXT) /* sources a node may have */

struct apr_tensor {
    int id;                          /* index in the graph; creation order is a topological order */
    apr_tensor_kind kind;
    apr_dtype dtype;
    int64_t ne[APR_MAX_DIMS];        /* elements per dim, innermost first */
    int64_t nb[APR_MAX_DIMS];        /* byte strides */
    apr_op op;                       /* for APR_KIND_OP */
    int n_src;                       /* sources in src[], optional ones may be NULL */
    struct apr_tensor *src[APR_SRC_LIMIT];
    int32_t iparams[APR_MAX_PARAMS];
    float fparams[APR_MAX_PARAMS];
    struct apr_tensor *base;         /* storage owner (never a view); self for non-views, and for an
                                      * in-place op (SET_ROWS) the leaf it writes */
    int64_t view_offset;             /* bytes from the start of base's storage */
    struct apr_tensor *view_of;      /* APR_KIND_VIEW: the tensor it was made from (it runs first) */
    const void *data;                /* weight data (APR_KIND_WEIGHT) */
    bool is_state;                   /* APR_KIND_WEIGHT made by apr_state: data may change between runs */
    bool in_place;                   /* APR_KIND_OP writing its base leaf in place (SET_ROWS, ADAMW) */
    unsigned written;                /* in-place ops: bit i set when source i is written (its base, a
                                      * leaf, is src0's for bit 0; ADAMW also sets bits 2 and 3) */
    apr_mem *mem;                    /* APR_KIND_RESIDENT: the memory, and the offset of the leaf in it */
    uint64_t mem_offset;
    bool is_output;
    char name[APR_NAME_MAX];
};

struct apr_graph {
    struct apr_tensor **tensors;     /* [n_tensors], owned */
    int n_tensors;
    int cap_tensors;
    char error[512];                 /* first construction error, "" if none */
};

/* Graph construction helpers shared by graph.c (forward ops) and graph_grad.c (ABI 5 ops). */
/* Records the first error of g (later ones are dropped) and returns NULL. */
void *graph_fail(apr_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A new op node of the given dtype and shape over src[0..n_src); NULL after an earlier error. */
struct apr_tensor *graph_op(apr_graph *g, apr_op op, apr_dtype dtype, const int64_t ne[4], int n_src,
                            struct apr_tensor *const *src, const char *opname);
bool graph_is_float(apr_dtype t);
/* A leaf a graph may write in place: resident memory or host state, never a weight or a view. */
bool graph_is_writable_leaf(const struct apr_tensor *t);
#define GRAPH_NEED(g, cond, ...) do { if (!(cond)) return graph_fail((g), __VA_ARGS__); } while (0)

/* Bytes of the contiguous storage of a non-view tensor. */
int64_t apr_tensor_storage_bytes(const struct apr_tensor *t);

/* A message a plugin wrote into the array buf, NUL-terminated on the core's side whatever the
 * plugin did (it may fill the buffer without a terminator); use it wherever such a message is read. */
static inline char *plugin_msg(char *buf, size_t size) {
    if (size) buf[size - 1] = 0;
    return buf;
}
#define PLUGIN_MSG(buf) plugin_msg((buf), sizeof(buf))

/* ---------------------------------------------------------------- registry and backends */

typedef struct apr_plugin_slot {
    apr_plugin_record rec;           /* what callers see; strings point into the fields below */
    char name[APR_NAME_MAX];         /* "name", or "name:i" for device i of a plugin that lists devices */
    char plugin_name[APR_NAME_MAX];  /* the plugin's own name */
    char *path;
    char reason[512];
    char features[256];
    char description[256];
    void *dl;                        /* dlopen handle while usable, else NULL; device slots after the
                                      * first of a plugin share it and leave this NULL */
    const apr_plugin *api;           /* the plugin's table while usable */
} apr_plugin_slot;

struct apr_registry {
    apr_plugin_slot *slots;          /* [n_slots] in scan order */
    int n_slots;
    apr_host_info host;
    char *search_path;               /* dirs scanned, colon-separated */
};

typedef struct apr_weight_entry apr_weight_entry; /* one placed or packed weight (backend_weight.c) */

struct apr_backend {
    apr_registry *reg;
    const apr_plugin_slot *slot;
    const apr_plugin *api;
    void *inst;                      /* the plugin's instance */
    int n_threads;
    int device;                      /* the plugin's device index (0 for plugins of one device) */
    apr_weight_entry **packs;        /* [n_pack_buckets] hash chains of placed and packed weights keyed
                                      * by data pointer (backend_weight.c); NULL until the first */
    size_t n_pack_buckets;           /* a power of two, or 0 */
    size_t n_packs;                  /* entries in the chains */
    int64_t packed_bytes;            /* sum of their packed buffers' sizes */
    int64_t uploaded_bytes;          /* sum of their uploaded (not imported) plain copies */
    pthread_mutex_t arena_lock;      /* guards the two fields below (plans may run on several threads) */
    apr_buffer arena;                /* the last intermediates buffer a plan gave back (arena.c) */
    bool arena_kept;                 /* arena holds a buffer */
};

/* True when the plugin's table is long enough to hold the slot at byte offset off. */
#define APR_PLUGIN_HAS(api, field) \
    ((api)->struct_size >= offsetof(apr_plugin, field) + sizeof((api)->field) && (api)->field != NULL)
/* True when the plugin runs work asynchronously (ABI 4 synchronize). */
#define APR_PLUGIN_ASYNC(api) ((api)->abi_version >= 4 && APR_PLUGIN_HAS(api, synchronize))

/* Memory on one backend (apr_mem_new). */
struct apr_mem {
    apr_backend *be;
    apr_buffer buf;                  /* the plugin's buffer */
    char name[APR_NAME_MAX];
};

/* Whether host memory imported into be is read at full speed (so weights are imported, not uploaded). */
bool apr_backend_computes_on_host(const apr_backend *be);
/* A buffer of kind/usage from the plugin (buffer_alloc_ex, else buffer_alloc). */
apr_status apr_backend_alloc(apr_backend *be, uint64_t size, apr_memory_kind kind, apr_buffer_usage usage,
                             apr_buffer *out, char *msg, size_t msg_size);

/* ---------------------------------------------------------------- kept arenas (arena.c) */
/* A buffer of at least bytes for a plan's intermediates: the kept one when it is large enough,
 * else a new one with some headroom. Its contents are undefined. */
apr_status apr_arena_take(apr_backend *be, int64_t bytes, apr_buffer *out, char *msg, size_t msg_size);
/* Hands a plan's arena back: kept if there is none or it is larger than the kept one, else freed.
 * Clears *buf. */
void apr_arena_give(apr_backend *be, apr_buffer *buf);
/* Frees the kept arena (backend close). */
void apr_arena_release(apr_backend *be);

/* ---------------------------------------------------------------- placed and packed weights (backend_weight.c) */

/* The packed copy of weight w held by be, or NULL: w must be a weight leaf (not a view) whose data
 * pointer, dtype and shape match what was packed. Constant time, for the planner. */
const apr_buffer *apr_weight_packed(const apr_backend *be, const struct apr_tensor *w);
/* The placed copy of weight w in its own layout (imported or uploaded), or NULL, as above. */
const apr_buffer *apr_weight_placed(const apr_backend *be, const struct apr_tensor *w);
/* Frees every copy be still holds, whatever its references (apr_backend_close). */
void apr_weight_release_all(apr_backend *be);

/* ---------------------------------------------------------------- memory planning */

typedef struct apr_memplan apr_memplan;
apr_memplan *apr_memplan_new(int64_t alignment);
void apr_memplan_free(apr_memplan *mp);
/* Reserves size bytes (rounded up to the alignment) and returns their offset in the arena. */
int64_t apr_memplan_alloc(apr_memplan *mp, int64_t size);
void apr_memplan_release(apr_memplan *mp, int64_t offset, int64_t size);
int64_t apr_memplan_peak(const apr_memplan *mp);

/* ---------------------------------------------------------------- machine */

void apr_host_cpu_identify(apr_host_info *out); /* model and features from cpuid / HWCAP */

#endif

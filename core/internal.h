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
} apr_tensor_kind;

struct apr_tensor {
    int id;                          /* index in the graph; creation order is a topological order */
    apr_tensor_kind kind;
    apr_dtype dtype;
    int64_t ne[APR_MAX_DIMS];        /* elements per dim, innermost first */
    int64_t nb[APR_MAX_DIMS];        /* byte strides */
    apr_op op;                       /* for APR_KIND_OP */
    int n_src;                       /* sources in src[], optional ones may be NULL */
    struct apr_tensor *src[APR_MAX_SRC];
    int32_t iparams[APR_MAX_PARAMS];
    float fparams[APR_MAX_PARAMS];
    struct apr_tensor *base;         /* storage owner (never a view); self for non-views */
    int64_t view_offset;             /* bytes from the start of base's storage */
    const void *data;                /* weight data (APR_KIND_WEIGHT) */
    bool is_state;                   /* APR_KIND_WEIGHT made by apr_state: data may change between runs */
    bool is_output;
    char name[APR_NAME_MAX];
};

struct apr_graph {
    struct apr_tensor **tensors;     /* [n_tensors], owned */
    int n_tensors;
    int cap_tensors;
    char error[512];                 /* first construction error, "" if none */
};

/* Bytes of the contiguous storage of a non-view tensor. */
int64_t apr_tensor_storage_bytes(const struct apr_tensor *t);

/* ---------------------------------------------------------------- registry and backends */

typedef struct apr_plugin_slot {
    apr_plugin_record rec;           /* what callers see; strings point into the fields below */
    char name[APR_NAME_MAX];
    char *path;
    char reason[512];
    char features[256];
    char description[256];
    void *dl;                        /* dlopen handle while usable, else NULL */
    const apr_plugin *api;           /* the plugin's table while usable */
} apr_plugin_slot;

struct apr_registry {
    apr_plugin_slot *slots;          /* [n_slots] in scan order */
    int n_slots;
    apr_host_info host;
    char *search_path;               /* dirs scanned, colon-separated */
};

typedef struct apr_wpack_entry apr_wpack_entry; /* one packed weight (wpack.c) */

struct apr_backend {
    apr_registry *reg;
    const apr_plugin_slot *slot;
    const apr_plugin *api;
    void *inst;                      /* the plugin's instance */
    int n_threads;
    apr_wpack_entry **packs;         /* [n_pack_buckets] hash chains of packed weights keyed by data
                                      * pointer (wpack.c); NULL until the first pack */
    size_t n_pack_buckets;           /* a power of two, or 0 */
    size_t n_packs;                  /* entries in the chains */
    int64_t packed_bytes;            /* sum of their packed buffers' sizes */
    pthread_mutex_t arena_lock;      /* guards the two fields below (plans may run on several threads) */
    apr_buffer arena;                /* the last intermediates buffer a plan gave back (arena.c) */
    bool arena_kept;                 /* arena holds a buffer */
};

/* True when the plugin's table is long enough to hold the slot at byte offset off. */
#define APR_PLUGIN_HAS(api, field) \
    ((api)->struct_size >= offsetof(apr_plugin, field) + sizeof((api)->field) && (api)->field != NULL)

/* ---------------------------------------------------------------- kept arenas (arena.c) */
/* A buffer of at least bytes for a plan's intermediates: the kept one when it is large enough,
 * else a new one with some headroom. Its contents are undefined. */
apr_status apr_arena_take(apr_backend *be, int64_t bytes, apr_buffer *out, char *msg, size_t msg_size);
/* Hands a plan's arena back: kept if there is none or it is larger than the kept one, else freed.
 * Clears *buf. */
void apr_arena_give(apr_backend *be, apr_buffer *buf);
/* Frees the kept arena (backend close). */
void apr_arena_release(apr_backend *be);

/* ---------------------------------------------------------------- packed weights (wpack.c) */

/* The packed copy of weight w held by be, or NULL: w must be a weight leaf (not a view) whose data
 * pointer, dtype and shape match what was packed. Constant time, for the planner. */
const apr_buffer *apr_wpack_lookup(const apr_backend *be, const struct apr_tensor *w);
/* Frees every packed copy be still holds, whatever its references (apr_backend_close). */
void apr_wpack_release_all(apr_backend *be);

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

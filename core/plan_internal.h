/* plan_internal.h — the executor's plan, shared by planning (plan.c) and running (plan_run.c). */
#ifndef APR_CORE_PLAN_INTERNAL_H
#define APR_CORE_PLAN_INTERNAL_H

#include "internal.h"

#define PLAN_MAX_BACKENDS 8
#define PLAN_HOST (-1)

typedef enum plan_loc_kind {
    PLAN_LOC_NONE = 0,  /* the backend never touches this storage */
    PLAN_LOC_HOME,      /* produced here, in this backend's arena */
    PLAN_LOC_SHARED,    /* read in place: host memory or another backend's host-visible arena, imported */
    PLAN_LOC_UPLOADED,  /* a weight copied once, at plan time, into a buffer of its own */
    PLAN_LOC_MIRROR,    /* a copy in this backend's arena, refreshed every run before first use */
    PLAN_LOC_PLACED,    /* a weight placed on this backend for good (apr_backend_place_weight) */
    PLAN_LOC_RESIDENT,  /* the home of a resident leaf: its apr_mem, read and written in place */
} plan_loc_kind;

typedef struct plan_loc {
    plan_loc_kind kind;
    const apr_buffer *buf;   /* where the backend finds the bytes */
    uint64_t offset;         /* bytes into buf */
    int64_t arena_offset;    /* HOME and MIRROR: offset in this backend's arena */
    int first, last;         /* MIRROR: steps of the first and last use here */
    int fill_split;          /* MIRROR: the split before which it is filled */
} plan_loc;

typedef struct plan_store {
    struct apr_tensor *t;    /* the storage-owning tensor */
    int home;                /* producing backend index, or PLAN_HOST for leaves */
    int64_t bytes;           /* contiguous size */
    void *host;              /* leaves: weight data or the plan's input buffer; NULL for resident leaves */
    int writer;              /* the backend of a step that writes it in place (SET_ROWS, ADAMW), which must
                              * reach it in place; -1 when none does */
    int64_t home_offset;     /* op results: offset in the home arena */
    int first, last;         /* op results: step produced, last step read (n_steps = kept to the end) */
    plan_loc loc[PLAN_MAX_BACKENDS];
} plan_store;

typedef struct plan_split {
    int backend;             /* index into backends */
    int first_step, n_steps; /* nodes [first_step, first_step + n_steps) */
    int n_fills;             /* mirrors filled before it */
    int *fills;              /* store indices */
    bool ran;                /* its backend computed it successfully once: later runs say APR_SUBGRAPH_CHECKED */
    apr_subgraph sg;         /* the nodes as handed to the plugin (kept for its plan's life) */
    void *plugin_plan;       /* the plugin's plan of sg (plan_create), or NULL: compute every run */
} plan_split;

struct apr_plan {
    apr_graph *g;
    apr_backend *backends[PLAN_MAX_BACKENDS];
    int n_backends;
    struct apr_tensor **steps;     /* [n_steps] op nodes in execution order */
    int *step_backend;             /* [n_steps] */
    int n_steps;
    plan_store *stores;            /* [n_stores] */
    int n_stores;
    int *store_of;                 /* [g->n_tensors] store index of each tensor's base, or -1 */
    plan_split *splits;
    int n_splits;
    apr_buffer arena[PLAN_MAX_BACKENDS];     /* one per backend; size 0 when unused */
    int64_t arena_bytes[PLAN_MAX_BACKENDS];
    apr_buffer **owned_bufs;       /* imports and uploads, each freed by its backend */
    int *owned_backend;
    int n_owned, cap_owned;
    apr_node_desc *descs;          /* [n_steps] */
    int64_t unshared_bytes;
    int n_copies;
    int n_weight_uploads;          /* weights uploaded at plan time because they were not placed */
    void *staging;                 /* host bytes for copies between two backends neither of which the
                                    * host can address (one fill at a time), allocated with the plan */
    int64_t staging_bytes;
    bool pending[PLAN_MAX_BACKENDS]; /* asynchronous writes from the plan's input buffers may be in flight */
    void *event[PLAN_MAX_BACKENDS];  /* an event of each backend that sources peer copies (ABI 4), made on first use */
};

/* Source i of a node: src[i] for the first four, src_ext beyond (ABI 4). */
static inline apr_tensor_desc *plan_src_slot(apr_node_desc *n, int i) {
    return i < APR_MAX_SRC ? &n->src[i] : &n->src_ext[i - APR_MAX_SRC];
}

/* Where the bytes of store st live at home: its buffer and the offset in it (NULL for host leaves). */
const apr_buffer *plan_home_buffer(const plan_store *st, uint64_t *offset);

#endif

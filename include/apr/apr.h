/* apr.h — the public API of apr: load backend plugins, build op graphs, plan and run them. */
#ifndef APR_H
#define APR_H

/*
 * OVERVIEW
 *
 * apr runs tensor-op graphs on whatever backends a machine has. Backends are plugins (one .so
 * each, see apr_abi.h) found at run time; the core here only discovers them, plans graphs and
 * moves data between them.
 *
 *   1. apr_registry_open() scans the plugin directories (APR_PLUGIN_PATH first, then
 *      <prefix>/lib/apr/plugins next to libapr), probes every plugin against this machine and
 *      records why each file was accepted or rejected.
 *   2. apr_backend_open() creates an instance of a backend by name (NULL = the highest score).
 *      apr_backend_pack_weight() offers it a weight matrix to keep a copy of in a layout of its
 *      own (rows of blocks interleaved, say) that its matmul kernels read faster; plans built
 *      afterwards read that copy for the matmuls of that weight placed on that backend.
 *      apr_backend_place_weight() puts a weight on the backend for good (imported where the backend
 *      computes from host memory, else uploaded once; packed too on request): every plan on that
 *      backend reads the placed copy, and no plan uploads it again.
 *      apr_mem_new() allocates memory that lives on a backend (a KV cache, optimizer moments):
 *      graphs read it through apr_resident() leaves and views and write it in place (apr_set_rows).
 *   3. A graph is built with apr_graph_new() and the op constructors below. Leaves are inputs
 *      (data supplied per run), weights (host memory the caller keeps alive and unchanged),
 *      state (host memory that may change between runs) or resident (backend memory, apr_mem).
 *      Shape errors do not abort: the constructor returns NULL, later constructors pass NULL
 *      on, and apr_graph_error() says what went wrong first.
 *   4. apr_plan_new() orders the graph, places every node on the first backend in the given
 *      list that supports it, splits it into per-backend subgraphs with explicit copies between
 *      them, and plans intermediate memory by liveness. apr_plan_run() runs it.
 *
 * Example: y = W x on the default backend
 *
 *     apr_error e;
 *     apr_registry *reg; apr_backend *be; apr_plan *plan;
 *     if (apr_registry_open(NULL, &reg, &e)) die(e.msg);
 *     if (apr_backend_open(reg, NULL, 0, &be, &e)) die(e.msg);
 *     apr_graph *g = apr_graph_new();
 *     apr_tensor *w = apr_weight(g, APR_F32, 2, (int64_t[]){K, N}, w_data, "w");
 *     apr_tensor *x = apr_input(g, APR_F32, 2, (int64_t[]){K, 1}, "x");
 *     apr_tensor *y = apr_matmul(g, w, x);
 *     apr_graph_output(g, y);
 *     if (apr_plan_new(g, &be, 1, &plan, &e)) die(e.msg);
 *     apr_plan_set_input(plan, x, x_data, K * sizeof(float), &e);
 *     apr_plan_run(plan, &e);
 *     apr_plan_get_output(plan, y, y_data, N * sizeof(float), &e);
 *     apr_plan_free(plan); apr_graph_free(g); apr_backend_close(be); apr_registry_close(reg);
 *
 * Ownership: every open or new call has a matching close or free. A plan refers to its graph and
 * backends, which must outlive it. Threading: one thread at a time per registry, backend, graph
 * and plan; distinct objects may be used from distinct threads.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apr/apr_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define APR_VERSION_STRING "0.1.0"

/* An error message filled by any call that returns a status other than APR_OK. */
typedef struct apr_error {
    char msg[512];
} apr_error;

const char *apr_status_name(apr_status s);
/* Writes a printf-style message into err (which may be NULL) and returns status, so that a
 * failure reads `return apr_error_set(err, APR_ERR_FORMAT, "%s: ...", path);`. */
apr_status apr_error_set(apr_error *err, apr_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- dtypes */

const char *apr_dtype_name(apr_dtype t);          /* "f32", ...; NULL for an unknown number */
bool apr_dtype_parse(const char *name, apr_dtype *out);
int64_t apr_dtype_block_elems(apr_dtype t);       /* elements per storage block (1 for scalars); 0 = unknown */
int64_t apr_dtype_block_bytes(apr_dtype t);       /* bytes per storage block; 0 = unknown */
/* Bytes of a contiguous row of n elements; -1 when n is not a multiple of the block size. */
int64_t apr_dtype_row_bytes(apr_dtype t, int64_t n);

/* ---------------------------------------------------------------- machine topology */

/* Fills the host description plugins receive (hwloc: cores, caches, NUMA; CPU model). */
apr_status apr_host_query(apr_host_info *out, apr_error *err);

/* ---------------------------------------------------------------- plugins */

typedef struct apr_registry apr_registry;

typedef struct apr_registry_options {
    const char *plugin_path;     /* colon-separated dirs searched first; NULL = APR_PLUGIN_PATH, which a
                                  * setuid or setgid program ignores (secure_getenv) */
    bool skip_default_dir;       /* true: do not scan <prefix>/lib/apr/plugins */
    const char *backends;        /* comma-separated backends the caller will open ("cpu-avx2,reference"):
                                  * only the files providing them are loaded and listed (every file when
                                  * one of them is missing or unusable); NULL = every file */
} apr_registry_options;

typedef enum apr_plugin_state { APR_PLUGIN_OK = 0, APR_PLUGIN_REJECTED = 1 } apr_plugin_state;

/* What the registry knows of one plugin file. Strings belong to the registry. */
typedef struct apr_plugin_record {
    const char *name;            /* backend name ("cpu-avx2"; "cuda-ptx:1" for device 1 of a plugin that
                                  * reports devices), or the file's base name if unknown */
    const char *path;            /* the file scanned */
    apr_plugin_state state;
    int score;                   /* probe score; 0 when rejected */
    const char *reason;          /* why rejected, or the probe's reason when accepted */
    const char *features;        /* features the probe reported ("" if none) */
    const char *description;     /* the plugin's one-line description ("" if unknown) */
    uint32_t abi_version;        /* ABI the plugin implements (0 if unknown) */
    int device;                  /* the device index of a multi-device plugin's record, else -1 */
} apr_plugin_record;

/* Scans and probes. Fails only when nothing could be scanned at all; individual bad files are
 * recorded as rejected. opts may be NULL. A file seen for the first time is tried in a forked
 * child first (a crash there rejects it), and while plugins load, file descriptor 1 points at
 * /dev/null: call it before other threads write to stdout. */
apr_status apr_registry_open(const apr_registry_options *opts, apr_registry **out, apr_error *err);
void apr_registry_close(apr_registry *reg);
int apr_registry_count(const apr_registry *reg);
const apr_plugin_record *apr_registry_record(const apr_registry *reg, int i);
const apr_host_info *apr_registry_host(const apr_registry *reg);
/* The name of the usable backend with the highest score (earlier files win ties), or NULL. */
const char *apr_registry_default(const apr_registry *reg);
/* The directories scanned, in order, colon-separated. */
const char *apr_registry_search_path(const apr_registry *reg);

/* ---------------------------------------------------------------- backends */

typedef struct apr_backend apr_backend;

/* Opens a usable backend. name NULL = the default. A plugin that reports devices is opened by
 * "name:i" (device i) or "name" (its first usable device). An unknown or rejected name is
 * APR_ERR_NOT_FOUND with a message listing the usable backends. n_threads 0 = physical cores. */
apr_status apr_backend_open(apr_registry *reg, const char *name, int n_threads, apr_backend **out,
                            apr_error *err);
/* Frees the packed copies still held (see apr_backend_pack_weight), then the instance. */
void apr_backend_close(apr_backend *be);
const char *apr_backend_name(const apr_backend *be);
int apr_backend_threads(const apr_backend *be);
/* Offers be a weight, exactly as it will later be given to apr_weight (same dtype, shape and
 * data pointer), to keep in a layout of its own that its matmul kernels read faster. Plans built
 * afterwards read that copy wherever the weight itself (not a view of it) is the W (src0) of a
 * MATMUL placed on be; every other use reads data as usual. name (may be NULL) is for messages.
 *   APR_OK: packed. Packing the same data again only counts another reference (the dtype and
 *     shape must then be the same: APR_ERR_INVALID otherwise).
 *   APR_ERR_UNSUPPORTED (err says why): be keeps no packed layout for it (a backend without
 *     packing, a dtype or shape it does not pack, a weight of more than 2 dimensions that are
 *     not 1); nothing to undo.
 *   Anything else is an error: APR_ERR_INVALID for bad arguments, APR_ERR_NOMEM, or the
 *     backend's own failure.
 * data must stay valid and unchanged until the last matching apr_backend_unpack_weight or
 * apr_backend_close, and no plan that reads the copy may outlive that. The same threading rule
 * as for every call on be: one thread at a time, never while a plan on be runs. */
apr_status apr_backend_pack_weight(apr_backend *be, apr_dtype t, int n_dims, const int64_t *ne, const void *data,
                                   const char *name, apr_error *err);
/* Drops one reference taken by apr_backend_pack_weight; the copy is freed with the last.
 * Unknown data is ignored. */
void apr_backend_unpack_weight(apr_backend *be, const void *data);
/* Bytes the backend holds in packed copies (for reports). */
int64_t apr_backend_packed_bytes(const apr_backend *be);

/* Places a weight on be for good, exactly as it will later be given to apr_weight (same dtype,
 * shape and data pointer): a backend that computes from host memory imports it (no copy; ABI 1-3
 * plugins with buffer_import too), any other gets it uploaded once into a buffer of usage weights.
 * With APR_PLACE_PACK the backend may also keep it packed, as apr_backend_pack_weight does (a
 * backend or shape without a packed layout is not an error here). Every plan on be then reads the
 * placed copy wherever the weight (not a view of it) is read, and the packed copy for matmuls.
 * Placing the same data again only counts a reference; release it with apr_backend_release_weight.
 * data must stay valid and unchanged until the last release or apr_backend_close. */
#define APR_PLACE_PACK 1u
apr_status apr_backend_place_weight(apr_backend *be, apr_dtype t, int n_dims, const int64_t *ne, const void *data,
                                    unsigned flags, const char *name, apr_error *err);
/* Drops one reference taken by apr_backend_place_weight or apr_backend_pack_weight (the same as
 * apr_backend_unpack_weight); the copies are freed with the last. */
void apr_backend_release_weight(apr_backend *be, const void *data);
/* Bytes of weights uploaded to be (placed copies that are not imports or packs). */
int64_t apr_backend_uploaded_bytes(const apr_backend *be);
/* Whether be writes rows of dtype rows into a table of dtype table in place (APR_OP_SET_ROWS), so
 * that state of that dtype can live on it; why (may be NULL) says why not. */
bool apr_backend_can_set_rows(apr_backend *be, apr_dtype table, apr_dtype rows, char *why, size_t why_size);
/* Waits until every piece of work queued on be has finished (a no-op for synchronous plugins). */
apr_status apr_backend_synchronize(apr_backend *be, apr_error *err);

/* ---------------------------------------------------------------- backend-resident memory */

/* Memory that lives on one backend (device memory on a GPU) and outlives plans: a KV cache,
 * optimizer moments. Graphs read it through apr_resident leaves and write it in place with
 * apr_set_rows; the host reaches it only through apr_mem_write / apr_mem_read. New memory is zero.
 * The backend must outlive it. */
typedef struct apr_mem apr_mem;
apr_status apr_mem_new(apr_backend *be, uint64_t bytes, apr_buffer_usage usage, const char *name, apr_mem **out,
                       apr_error *err);
void apr_mem_free(apr_mem *m);
uint64_t apr_mem_size(const apr_mem *m);
apr_backend *apr_mem_backend(const apr_mem *m);
/* Copies between the host and m; reading waits for the work queued before it. */
apr_status apr_mem_write(apr_mem *m, uint64_t offset, const void *src, uint64_t bytes, apr_error *err);
apr_status apr_mem_read(apr_mem *m, uint64_t offset, void *dst, uint64_t bytes, apr_error *err);
/* Copies bytes between two regions of memory on one backend (a sequence's cache to another's). */
apr_status apr_mem_copy(apr_mem *dst, uint64_t dst_offset, apr_mem *src, uint64_t src_offset, uint64_t bytes,
                        apr_error *err);
/* The plugin's function table, for tests and benchmarks that drive a backend directly. */
const apr_plugin *apr_backend_plugin(const apr_backend *be);
void *apr_backend_instance(const apr_backend *be);

/* ---------------------------------------------------------------- graphs */

typedef struct apr_graph apr_graph;
typedef struct apr_tensor apr_tensor;

apr_graph *apr_graph_new(void);
void apr_graph_free(apr_graph *g);
/* The first construction error, or NULL if the graph is well formed so far. */
const char *apr_graph_error(const apr_graph *g);

/* Leaves. ne has n_dims (1..4) entries, innermost first. Inputs get their data per run through
 * apr_plan_set_input; a weight's data is read in place (zero-copy on host-visible backends) and
 * must stay valid and unchanged while any plan of the graph exists. */
apr_tensor *apr_input(apr_graph *g, apr_dtype t, int n_dims, const int64_t *ne, const char *name);
apr_tensor *apr_weight(apr_graph *g, apr_dtype t, int n_dims, const int64_t *ne, const void *data,
                       const char *name);
/* A weight whose data may change between runs of a plan (a KV cache that grows as tokens are
 * decoded): backends that read host memory in place see the data as it is at each run; others
 * copy it before every run instead of once when the plan is made. data must stay valid while
 * any plan of the graph exists, and must not change while a run is in progress. */
apr_tensor *apr_state(apr_graph *g, apr_dtype t, int n_dims, const int64_t *ne, const void *data,
                      const char *name);
/* A leaf whose storage is bytes [offset, offset + size) of m, in the given contiguous shape. Nodes on
 * m's backend read it in place, and apr_set_rows writes it in place; a node on another backend reads
 * a copy made in that run. m must outlive every plan of the graph. */
apr_tensor *apr_resident(apr_graph *g, apr_dtype t, int n_dims, const int64_t *ne, apr_mem *m, uint64_t offset,
                         const char *name);
/* Marks t as a result: it is kept alive to the end of a run and readable afterwards. */
void apr_graph_output(apr_graph *g, apr_tensor *t);

/* Shape queries. */
apr_dtype apr_tensor_dtype(const apr_tensor *t);
int64_t apr_tensor_ne(const apr_tensor *t, int dim);
int64_t apr_tensor_nb(const apr_tensor *t, int dim);
int64_t apr_tensor_nelements(const apr_tensor *t);
const char *apr_tensor_name(const apr_tensor *t);
bool apr_tensor_is_contiguous(const apr_tensor *t);

/* Views share storage with their source. reshape needs a contiguous source. permute puts
 * source dim i at position axes[i]. slice keeps [start, start+len) of dim. */
apr_tensor *apr_reshape(apr_graph *g, apr_tensor *a, int n_dims, const int64_t *ne);
apr_tensor *apr_permute(apr_graph *g, apr_tensor *a, int ax0, int ax1, int ax2, int ax3);
apr_tensor *apr_transpose(apr_graph *g, apr_tensor *a); /* swaps dims 0 and 1 */
apr_tensor *apr_slice(apr_graph *g, apr_tensor *a, int dim, int64_t start, int64_t len);

/* Ops; the definitions (shapes, dtypes, edge cases) are in apr_abi.h next to each apr_op. */
apr_tensor *apr_get_rows(apr_graph *g, apr_tensor *table, apr_tensor *ids);
apr_tensor *apr_matmul(apr_graph *g, apr_tensor *w, apr_tensor *x);
apr_tensor *apr_add(apr_graph *g, apr_tensor *a, apr_tensor *b);
apr_tensor *apr_mul(apr_graph *g, apr_tensor *a, apr_tensor *b);
apr_tensor *apr_scale(apr_graph *g, apr_tensor *a, float s);
apr_tensor *apr_rms_norm(apr_graph *g, apr_tensor *x, float eps);
typedef struct apr_rope_params {
    int n_rot;            /* dims rotated (even, <= D) */
    int layout;           /* 0 adjacent pairs, 1 split half */
    float freq_base;      /* e.g. 10000 */
    float freq_scale;     /* position multiplier; 1 = none */
} apr_rope_params;
/* freq_factors may be NULL. */
apr_tensor *apr_rope(apr_graph *g, apr_tensor *x, apr_tensor *pos, apr_tensor *freq_factors,
                     const apr_rope_params *p);
apr_tensor *apr_softmax(apr_graph *g, apr_tensor *x, apr_tensor *mask, float scale, bool causal);
apr_tensor *apr_silu(apr_graph *g, apr_tensor *x);
apr_tensor *apr_gelu(apr_graph *g, apr_tensor *x);
apr_tensor *apr_swiglu(apr_graph *g, apr_tensor *gate, apr_tensor *up);
apr_tensor *apr_attention(apr_graph *g, apr_tensor *q, apr_tensor *k, apr_tensor *v, apr_tensor *mask,
                          float scale, bool causal);
apr_tensor *apr_cast(apr_graph *g, apr_tensor *a, apr_dtype to); /* contiguous copy in dtype to */
apr_tensor *apr_concat(apr_graph *g, apr_tensor *a, apr_tensor *b, int dim);
apr_tensor *apr_argmax(apr_graph *g, apr_tensor *x);
/* Writes row n of rows into row ids[n] of table, in place (APR_OP_SET_ROWS), and returns the table
 * as it is after the write: read it through the result (and views of the result), so that every
 * reader runs after the write. table is a resident or state leaf [D, R] of f32, f16 or bf16; the
 * node runs on the backend that holds it. */
apr_tensor *apr_set_rows(apr_graph *g, apr_tensor *table, apr_tensor *rows, apr_tensor *ids);
/* One AdamW step (APR_OP_ADAMW) that writes param, m and v in place, and returns param as it is
 * after the step. param, m and v are resident or state leaves of one shape, f32; grad is an f32
 * tensor of that shape; hp is an f32 tensor of APR_ADAMW_HP_COUNT elements (apr_adamw_hp), an input
 * or a leaf, so a plan kept across steps takes each step's learning rate and bias corrections. The
 * node runs where param lives; m and v must live there too. */
apr_tensor *apr_adamw(apr_graph *g, apr_tensor *param, apr_tensor *grad, apr_tensor *m, apr_tensor *v, apr_tensor *hp);

/* ---------------------------------------------------------------- gradients and training (ABI 5)
 *
 * The backward ops, one constructor each (definitions beside their apr_op in apr_abi.h). Most
 * callers never call them directly: apr_backward() builds the whole backward graph. */
apr_tensor *apr_matmul_grad_x(apr_graph *g, apr_tensor *w, apr_tensor *dy);
/* w gives dW's shape (it is not read: a frozen weight need not be placed anywhere). */
apr_tensor *apr_matmul_grad_w(apr_graph *g, apr_tensor *x, apr_tensor *dy, const apr_tensor *w);
apr_tensor *apr_get_rows_grad(apr_graph *g, apr_tensor *dy, apr_tensor *ids, int64_t n_rows);
/* Sums a's repeats down to the shape ne[0..n_dims) (each a dim of a divisible by it). */
apr_tensor *apr_sum_repeats(apr_graph *g, apr_tensor *a, int n_dims, const int64_t *ne);
apr_tensor *apr_rms_norm_grad(apr_graph *g, apr_tensor *x, apr_tensor *dy, float eps);
apr_tensor *apr_rope_grad(apr_graph *g, apr_tensor *dy, apr_tensor *pos, apr_tensor *freq_factors,
                          const apr_rope_params *p);
apr_tensor *apr_softmax_grad(apr_graph *g, apr_tensor *y, apr_tensor *dy, float scale);
apr_tensor *apr_silu_grad(apr_graph *g, apr_tensor *x, apr_tensor *dy);
apr_tensor *apr_gelu_grad(apr_graph *g, apr_tensor *x, apr_tensor *dy);
/* The packed [dQ | dK | dV] vector of APR_OP_ATTENTION_GRAD; apr_attention_grad_part() gives the
 * view of one part (0 = dQ, 1 = dK, 2 = dV) in the shape of q, k or v. */
apr_tensor *apr_attention_grad(apr_graph *g, apr_tensor *q, apr_tensor *k, apr_tensor *v, apr_tensor *mask,
                               apr_tensor *dout, float scale, bool causal);
apr_tensor *apr_attention_grad_part(apr_graph *g, apr_tensor *packed, int part, const apr_tensor *q,
                                    const apr_tensor *k, const apr_tensor *v);
/* The summed token losses [1] (targets -1 take none) and their gradient with respect to logits,
 * scaled by dloss (an f32 [1] tensor read per run: 1/N gives the gradient of the mean). */
apr_tensor *apr_cross_entropy(apr_graph *g, apr_tensor *logits, apr_tensor *targets);
apr_tensor *apr_cross_entropy_grad(apr_graph *g, apr_tensor *logits, apr_tensor *targets, apr_tensor *dloss);
/* One SGD step with momentum (APR_OP_SGD), written in place into param and mom like apr_adamw; hp
 * is an f32 tensor of APR_SGD_HP_COUNT elements (apr_sgd_hp). */
apr_tensor *apr_sgd(apr_graph *g, apr_tensor *param, apr_tensor *grad, apr_tensor *mom, apr_tensor *hp);
/* acc += b in place (APR_OP_ACC); acc is a resident or state f32 leaf; returns acc after the add. */
apr_tensor *apr_acc(apr_graph *g, apr_tensor *acc, apr_tensor *b);

/* Reverse-mode differentiation: adds to g the nodes that compute, for each wrt[i], the gradient of
 * the sum over j of <outs[j], seeds[j]> (seeds[j] has outs[j]'s shape; for a loss of one element, an
 * f32 [1] input holding 1, or 1/N for a mean, is the usual seed) and stores it in grads[i]: a tensor of
 * wrt[i]'s shape, or NULL when no out depends on wrt[i]. wrt may be leaves or any tensors of g, and
 * every wrt is a boundary: its gradient is not passed on to the tensors it was computed from (a wrt
 * upstream of another gets only its paths that avoid the other), so that a layer recomputed from its
 * saved input is differentiated alone (gradient checkpointing). Differentiable:
 * every forward op but ARGMAX, SET_ROWS and the training ops, through reshape and permute views and
 * CPY between float dtypes. A CROSS_ENTROPY out takes its [1] seed straight into CROSS_ENTROPY_GRAD.
 * Returns false with the reason in apr_graph_error(g) when something on a path from wrt to outs
 * cannot be differentiated (a slice, argmax, a quantized weight that needs a gradient). */
bool apr_backward(apr_graph *g, int n_outs, apr_tensor *const *outs, apr_tensor *const *seeds, int n_wrt,
                  apr_tensor *const *wrt, apr_tensor **grads);

/* ---------------------------------------------------------------- plans (the executor) */

typedef struct apr_plan apr_plan;

typedef struct apr_plan_stats {
    int n_nodes;                 /* op nodes run (views excluded) */
    int n_splits;                /* per-backend subgraphs */
    int n_copies;                /* tensors copied between backends per run */
    int64_t peak_bytes;          /* sum over backends of the planned intermediate arena */
    int64_t unshared_bytes;      /* what the intermediates would need without reuse */
    int n_weight_uploads;        /* weights this plan copied to a backend because they were not placed there */
    int n_plugin_plans;          /* splits that run as a plugin-side plan (plan_create) */
} apr_plan_stats;

/* backends: in order of preference; each node goes to the first that supports it. Fails with a
 * message naming the node when none does. */
apr_status apr_plan_new(apr_graph *g, apr_backend *const *backends, int n_backends, apr_plan **out,
                        apr_error *err);
void apr_plan_free(apr_plan *p);
apr_status apr_plan_set_input(apr_plan *p, const apr_tensor *t, const void *data, size_t bytes,
                              apr_error *err);
apr_status apr_plan_run(apr_plan *p, apr_error *err);
/* Copies an output (contiguous, in its own dtype) to dst; bytes must equal its size. */
apr_status apr_plan_get_output(apr_plan *p, const apr_tensor *t, void *dst, size_t bytes, apr_error *err);
void apr_plan_stats_get(const apr_plan *p, apr_plan_stats *out);
/* The backend a node was placed on (NULL for leaves and views). */
const apr_backend *apr_plan_placement(const apr_plan *p, const apr_tensor *t);
/* Writes a human-readable description of the splits to f (a FILE *), for --verbose. */
void apr_plan_dump(const apr_plan *p, void *file);

#ifdef __cplusplus
}
#endif
#endif /* APR_H */

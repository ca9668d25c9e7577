/* tu_backend.h — drives one backend directly through its plugin table: which backends there are, one-node cases, guarded runs, result comparison. */
#ifndef TU_BACKEND_H
#define TU_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apr/apr.h"
#include "tu_tensor.h"

/* Bytes of 0xA5 before and after a tensor's storage inside every buffer the harness allocates. */
#define TU_GUARD 64
#define TU_GUARD_BYTE 0xa5

/* An open backend and its plugin table. */
typedef struct tu_backend {
    apr_backend *be;
    const apr_plugin *api;
    void *inst;
    const char *name;
} tu_backend;

/* Opens backend `name` of reg with n_threads (0 = the backend's default). false + err on failure. */
bool tu_backend_open(apr_registry *reg, const char *name, int n_threads, tu_backend *out, char *err, size_t err_size);
void tu_backend_close(tu_backend *b);

/* The backend every other one is checked against. */
#define TU_REFERENCE "reference"

/* The backends of the default registry other than the reference, for a suite's parameters. */
#define TU_MAX_BACKENDS 16
typedef struct tu_backend_list {
    int n;
    char name[TU_MAX_BACKENDS][64]; /* the usable ones (APR_PLUGIN_OK), in registry order, at most TU_MAX_BACKENDS */
    char rejected[240];             /* "name: reason; name: reason" of the unusable ones, cut to fit */
} tu_backend_list;

/* Scans apr_registry_open(NULL, ...)'s plugins into out; the same answer on every call. A registry
 * that cannot be opened gives an empty list. */
void tu_backend_list_scan(tu_backend_list *out);

/* One Criterion parameter of a backend-checking suite: the backend a test instance checks. */
typedef struct tu_backend_param {
    char backend[64]; /* "" = a placeholder: nothing to check (note says why) */
    char note[400];
} tu_backend_param;

/* The op's name in lower case ("rms_norm_grad"); "?" for a number no ABI version defines. */
const char *tu_op_name(uint32_t op);

/* Sources a node may have: src, then (ABI 4) src_ext. */
#define TU_MAX_SRC (APR_MAX_SRC + APR_MAX_SRC_EXT)

/* One op node over host tensors: dst = op(src[0..n_src-1]). */
typedef struct tu_node {
    uint32_t op;
    uint32_t n_src;                     /* sources counted, absent optional ones included */
    int32_t iparams[APR_MAX_PARAMS];
    float fparams[APR_MAX_PARAMS];
    tu_tensor src[TU_MAX_SRC];          /* src[i].present false = absent optional source */
    tu_tensor dst;                      /* its storage is only the layout; contents are ignored */
    char name[256];                     /* the case, for messages */
    bool pack_src0;                     /* hand src[0] to the plugin's weight_pack (ABI 3) and run on the packed copy */
    bool in_place;                      /* dst is src[0] itself (SET_ROWS): same buffer, offset, shape and strides;
                                           dst above is not allocated (give it src[0]'s layout for comparisons) */
    unsigned written;                   /* with in_place: bit i (i >= 1) for each further source the node writes
                                           in place (ADAMW's moments); its storage comes back in written_out[i] */
    unsigned char *written_out[TU_MAX_SRC]; /* the caller's buffers of src[i].size bytes, for the bits of written */
} tu_node;

/* Building a case: n zeroed, with op and n_src sources counted (absent optional ones included). */
void tu_node_init(tu_node *n, uint32_t op, uint32_t n_src);
/* Source i (dst): a new tensor of dtype and shape [a, b, c, d] in layout lay, unfilled; returned for filling. */
tu_tensor *tu_node_src(tu_node *n, int i, uint32_t dtype, int64_t a, int64_t b, int64_t c, int64_t d, tu_layout lay);
tu_tensor *tu_node_dst(tu_node *n, uint32_t dtype, int64_t a, int64_t b, int64_t c, int64_t d, tu_layout lay);
/* The case's name, printf-style, cut to fit n->name. */
void tu_node_name(tu_node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The case's full description for messages: "op name: src0=... src1=... -> dst", each tensor with
 * its strides when it is a view (tu_tensor_describe), absent sources as "none". */
void tu_node_text(const tu_node *n, char *out, size_t size);
/* An ATTENTION / ATTENTION_GRAD node with a mask (src[3]): the k and v rows (src[1], src[2]) of every
 * key that each query masks with -inf become NaN. The ABI says such keys are never read, so unfilled
 * cache slots never matter; a kernel that reads them puts NaN into its output. */
void tu_node_poison_masked_keys(tu_node *n);

void tu_node_free(tu_node *n);

typedef enum tu_outcome {
    TU_RAN = 0,      /* compute returned the expected status; every buffer check passed */
    TU_DECLINED = 1, /* supports() said no; msg holds its reason */
    TU_BROKEN = 2,   /* a harness call failed, compute returned the wrong status, or memory
                        outside dst's elements changed; msg says which */
} tu_outcome;

/* Runs n on b the way the core would, but with every buffer fenced: allocates one buffer per
 * tensor (TU_GUARD bytes of TU_GUARD_BYTE either side, dst storage pre-filled with its poison NaN),
 * writes them with buffer_write, asks supports(), runs compute() on a one-node subgraph and
 * reads everything back with buffer_read. Sources must come back byte-identical and dst may
 * differ only at its own elements. out (n->dst.size bytes) receives dst's storage. compute must
 * return `expect` (APR_OK for ordinary cases). With n->pack_src0, src[0] is written as usual and
 * then given to weight_pack; compute reads the packed copy (the original must still come back
 * unchanged), and a plugin without the slot or one that declines makes the case TU_DECLINED.
 * With n->in_place, dst's desc is src[0]'s (its buffer, written with src[0]'s contents): src[0]
 * may change only at its own elements, and out (n->src[0].size bytes) receives its storage. */
tu_outcome tu_node_run(const tu_backend *b, const tu_node *n, apr_status expect, unsigned char *out, char *msg,
                       size_t msg_size);

/* How a result is judged against the expected one. */
typedef enum tu_cmp_mode {
    TU_CMP_NMSE = 0,  /* float: NaN/inf agreement, then sum((a-b)^2)/sum(b^2) <= max_nmse */
    TU_CMP_EXACT = 1, /* bit equality per element (any NaN matches any NaN for float dtypes) */
} tu_cmp_mode;

typedef struct tu_cmp_result {
    bool ok;
    double nmse;       /* NMSE mode: the measured value (0 in exact mode) */
    int64_t n_bad;     /* elements that broke a NaN/inf/exactness rule */
    char msg[320];     /* why not ok: the rule and the first offending element */
} tu_cmp_result;

/* Compares the elements of two storages laid out as layout (got from the backend under test,
 * want from the oracle). */
tu_cmp_result tu_compare(const tu_tensor *layout, const unsigned char *got, const unsigned char *want,
                         tu_cmp_mode mode, double max_nmse);

/* True when every float element is finite (i32 tensors: always true); else writes the first. */
bool tu_all_finite(const tu_tensor *layout, const unsigned char *data, char *msg, size_t msg_size);

#endif

/* graph.c — graph construction: leaves, views, op nodes with their output shapes, first-error tracking. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

APR_API apr_graph *apr_graph_new(void) { return calloc(1, sizeof(apr_graph)); }

APR_API void apr_graph_free(apr_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_tensors; i++) free(g->tensors[i]);
    free(g->tensors);
    free(g);
}

APR_API const char *apr_graph_error(const apr_graph *g) { return g->error[0] ? g->error : NULL; }

void *graph_fail(apr_graph *g, const char *fmt, ...) {
    if (!g->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->error, sizeof g->error, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static void graph_contiguous_strides(struct apr_tensor *t) {
    t->nb[0] = apr_dtype_block_bytes(t->dtype);
    t->nb[1] = t->nb[0] * (t->ne[0] / apr_dtype_block_elems(t->dtype));
    for (int i = 2; i < APR_MAX_DIMS; i++) t->nb[i] = t->nb[i - 1] * t->ne[i - 1];
}

/* A new tensor with the given shape; contiguous strides; its own storage unless made a view. */
static struct apr_tensor *graph_new_tensor(apr_graph *g, apr_tensor_kind kind, apr_dtype dtype, int n_dims,
                                           const int64_t *ne, const char *name) {
    if (g->error[0]) return NULL;
    if (!apr_dtype_name(dtype)) return graph_fail(g, "%s: unknown dtype %d", name ? name : "tensor", (int)dtype);
    if (n_dims < 1 || n_dims > APR_MAX_DIMS) return graph_fail(g, "%s: %d dimensions (1..4 allowed)", name, n_dims);
    int64_t total = 1;
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] < 1 || ne[i] > (INT64_C(1) << 40) || total > INT64_MAX / ne[i])
            return graph_fail(g, "%s: dimension %d has invalid size %lld", name, i, (long long)ne[i]);
        total *= ne[i];
    }
    if (ne[0] % apr_dtype_block_elems(dtype))
        return graph_fail(g, "%s: row of %lld is not a multiple of the %s block", name, (long long)ne[0],
                          apr_dtype_name(dtype));
    if (g->n_tensors == g->cap_tensors) {
        int cap = g->cap_tensors ? 2 * g->cap_tensors : 64;
        struct apr_tensor **nt = realloc(g->tensors, (size_t)cap * sizeof *nt);
        if (!nt) return graph_fail(g, "out of memory building the graph");
        g->tensors = nt;
        g->cap_tensors = cap;
    }
    struct apr_tensor *t = calloc(1, sizeof *t);
    if (!t) return graph_fail(g, "out of memory building the graph");
    t->id = g->n_tensors;
    t->kind = kind;
    t->dtype = dtype;
    for (int i = 0; i < APR_MAX_DIMS; i++) t->ne[i] = i < n_dims ? ne[i] : 1;
    graph_contiguous_strides(t);
    t->base = t;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    if (!name || !*name) snprintf(t->name, sizeof t->name, "t%d", t->id);
    g->tensors[g->n_tensors++] = t;
    return t;
}

int64_t apr_tensor_storage_bytes(const struct apr_tensor *t) {
    return t->nb[3] * t->ne[3];
}

APR_API apr_tensor *apr_input(apr_graph *g, apr_dtype t, int n_dims, const int64_t *ne, const char *name) {
    return graph_new_tensor(g, APR_KIND_INPUT, t, n_dims, ne, name);
}

APR_API apr_tensor *apr_weight(apr_graph *g, apr_dtype t, int n_dims, const int64_t *ne, const void *data,
                               const char *name) {
    if (!data && !g->error[0]) return graph_fail(g, "weight %s has no data", name ? name : "");
    struct apr_tensor *w = graph_new_tensor(g, APR_KIND_WEIGHT, t, n_dims, ne, name);
    if (w) w->data = data;
    return w;
}

APR_API apr_tensor *apr_state(apr_graph *g, apr_dtype t, int n_dims, const int64_t *ne, const void *data,
                              const char *name) {
    struct apr_tensor *w = apr_weight(g, t, n_dims, ne, data, name);
    if (w) w->is_state = true;
    return w;
}

APR_API apr_tensor *apr_resident(apr_graph *g, apr_dtype t, int n_dims, const int64_t *ne, apr_mem *m, uint64_t offset,
                                 const char *name) {
    if (!m && !g->error[0]) return graph_fail(g, "resident %s has no memory", name ? name : "");
    struct apr_tensor *r = graph_new_tensor(g, APR_KIND_RESIDENT, t, n_dims, ne, name);
    if (!r) return NULL;
    uint64_t bytes = (uint64_t)apr_tensor_storage_bytes(r);
    if (offset > apr_mem_size(m) || bytes > apr_mem_size(m) - offset)
        return graph_fail(g, "resident %s: %llu bytes at offset %llu lie past the %llu bytes of its memory", r->name,
                          (unsigned long long)bytes, (unsigned long long)offset, (unsigned long long)apr_mem_size(m));
    r->mem = m;
    r->mem_offset = offset;
    return r;
}

APR_API void apr_graph_output(apr_graph *g, apr_tensor *t) {
    if (!t) { graph_fail(g, "output of a failed node"); return; }
    t->is_output = true;
    t->base->is_output = true;
}

APR_API apr_dtype apr_tensor_dtype(const apr_tensor *t) { return t->dtype; }
APR_API int64_t apr_tensor_ne(const apr_tensor *t, int d) { return (d >= 0 && d < APR_MAX_DIMS) ? t->ne[d] : 1; }
APR_API int64_t apr_tensor_nb(const apr_tensor *t, int d) { return (d >= 0 && d < APR_MAX_DIMS) ? t->nb[d] : 0; }
APR_API const char *apr_tensor_name(const apr_tensor *t) { return t->name; }

APR_API int64_t apr_tensor_nelements(const apr_tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

APR_API bool apr_tensor_is_contiguous(const apr_tensor *t) {
    int64_t expect = apr_dtype_block_bytes(t->dtype);
    if (t->nb[0] != expect) return false;
    expect *= t->ne[0] / apr_dtype_block_elems(t->dtype);
    for (int i = 1; i < APR_MAX_DIMS; i++) {
        if (t->ne[i] > 1 && t->nb[i] != expect) return false;
        expect *= t->ne[i];
    }
    return true;
}

/* ---------------------------------------------------------------- views */

static struct apr_tensor *graph_view(apr_graph *g, struct apr_tensor *a, const char *what) {
    if (!a) return NULL;
    struct apr_tensor *v = graph_new_tensor(g, APR_KIND_VIEW, a->dtype, 4, a->ne, NULL);
    if (!v) return NULL;
    memcpy(v->nb, a->nb, sizeof v->nb);
    v->base = a->base;
    v->view_of = a;
    v->view_offset = a->kind == APR_KIND_VIEW ? a->view_offset : 0;
    snprintf(v->name, sizeof v->name, "%.40s (%s)", a->name, what);
    return v;
}

APR_API apr_tensor *apr_reshape(apr_graph *g, apr_tensor *a, int n_dims, const int64_t *ne) {
    if (!a) return NULL;
    if (!apr_tensor_is_contiguous(a)) return graph_fail(g, "reshape of %s: source is not contiguous", a->name);
    if (n_dims < 1 || n_dims > APR_MAX_DIMS) return graph_fail(g, "reshape of %s: %d dimensions", a->name, n_dims);
    int64_t total = 1;
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] < 1) return graph_fail(g, "reshape of %s: dimension %d is %lld", a->name, i, (long long)ne[i]);
        total *= ne[i];
    }
    if (total != apr_tensor_nelements(a))
        return graph_fail(g, "reshape of %s: %lld elements into %lld", a->name, (long long)apr_tensor_nelements(a),
                          (long long)total);
    if (ne[0] % apr_dtype_block_elems(a->dtype))
        return graph_fail(g, "reshape of %s: rows must stay whole blocks", a->name);
    struct apr_tensor *v = graph_view(g, a, "reshape");
    if (!v) return NULL;
    for (int i = 0; i < APR_MAX_DIMS; i++) v->ne[i] = i < n_dims ? ne[i] : 1;
    graph_contiguous_strides(v);
    return v;
}

APR_API apr_tensor *apr_permute(apr_graph *g, apr_tensor *a, int ax0, int ax1, int ax2, int ax3) {
    if (!a) return NULL;
    int ax[4] = {ax0, ax1, ax2, ax3};
    int seen = 0;
    for (int i = 0; i < 4; i++) {
        if (ax[i] < 0 || ax[i] > 3 || (seen & (1 << ax[i])))
            return graph_fail(g, "permute of %s: axes %d %d %d %d are not a permutation", a->name, ax0, ax1, ax2, ax3);
        seen |= 1 << ax[i];
    }
    if (apr_dtype_block_elems(a->dtype) != 1 && ax[0] != 0)
        return graph_fail(g, "permute of %s: block dtype %s must keep dim 0 innermost", a->name,
                          apr_dtype_name(a->dtype));
    struct apr_tensor *v = graph_view(g, a, "permute");
    if (!v) return NULL;
    for (int i = 0; i < 4; i++) {
        v->ne[ax[i]] = a->ne[i];
        v->nb[ax[i]] = a->nb[i];
    }
    return v;
}

APR_API apr_tensor *apr_transpose(apr_graph *g, apr_tensor *a) { return apr_permute(g, a, 1, 0, 2, 3); }

APR_API apr_tensor *apr_slice(apr_graph *g, apr_tensor *a, int dim, int64_t start, int64_t len) {
    if (!a) return NULL;
    if (dim < 0 || dim > 3 || start < 0 || len < 1 || start + len > a->ne[dim])
        return graph_fail(g, "slice of %s: [%lld, %lld) of dim %d (size %lld)", a->name, (long long)start,
                          (long long)(start + len), dim, (long long)(dim >= 0 && dim < 4 ? a->ne[dim] : 0));
    int64_t be = apr_dtype_block_elems(a->dtype);
    if (dim == 0 && (start % be || len % be))
        return graph_fail(g, "slice of %s: dim 0 must be cut at %s block boundaries", a->name, apr_dtype_name(a->dtype));
    struct apr_tensor *v = graph_view(g, a, "slice");
    if (!v) return NULL;
    v->ne[dim] = len;
    v->view_offset += (dim == 0 ? start / be : start) * a->nb[dim];
    return v;
}

/* ---------------------------------------------------------------- ops */

struct apr_tensor *graph_op(apr_graph *g, apr_op op, apr_dtype dtype, const int64_t ne[4], int n_src,
                                   struct apr_tensor *const *src, const char *opname) {
    if (n_src > APR_SRC_LIMIT) return graph_fail(g, "%s: %d sources (at most %d)", opname, n_src, APR_SRC_LIMIT);
    char name[APR_NAME_MAX];
    snprintf(name, sizeof name, "%s_%d", opname, g->n_tensors);
    struct apr_tensor *t = graph_new_tensor(g, APR_KIND_OP, dtype, 4, ne, name);
    if (!t) return NULL;
    t->op = op;
    t->n_src = n_src;
    for (int i = 0; i < n_src; i++) t->src[i] = src[i];
    return t;
}

bool graph_is_float(apr_dtype t) { return t == APR_F32 || t == APR_F16 || t == APR_BF16; }

APR_API apr_tensor *apr_get_rows(apr_graph *g, apr_tensor *table, apr_tensor *ids) {
    if (!table || !ids) return NULL;
    GRAPH_NEED(g, ids->dtype == APR_I32, "get_rows: ids %s must be i32", ids->name);
    GRAPH_NEED(g, ids->ne[1] == 1 && ids->ne[2] == 1 && ids->ne[3] == 1, "get_rows: ids %s must be 1-D", ids->name);
    GRAPH_NEED(g, table->ne[2] == 1 && table->ne[3] == 1, "get_rows: table %s must be 2-D", table->name);
    return graph_op(g, APR_OP_GET_ROWS, APR_F32, (int64_t[]){table->ne[0], ids->ne[0], 1, 1}, 2,
                    (struct apr_tensor *[]){table, ids}, "get_rows");
}

APR_API apr_tensor *apr_matmul(apr_graph *g, apr_tensor *w, apr_tensor *x) {
    if (!w || !x) return NULL;
    GRAPH_NEED(g, w->ne[0] == x->ne[0], "matmul %s x %s: inner dims %lld and %lld differ", w->name, x->name,
               (long long)w->ne[0], (long long)x->ne[0]);
    GRAPH_NEED(g, x->ne[2] % w->ne[2] == 0 && x->ne[3] % w->ne[3] == 0,
               "matmul %s x %s: batch dims of x must be multiples of those of w", w->name, x->name);
    GRAPH_NEED(g, x->dtype == APR_F32, "matmul: activations %s must be f32", x->name);
    return graph_op(g, APR_OP_MATMUL, APR_F32, (int64_t[]){w->ne[1], x->ne[1], x->ne[2], x->ne[3]}, 2,
                    (struct apr_tensor *[]){w, x}, "matmul");
}

static apr_tensor *graph_binary(apr_graph *g, apr_op op, apr_tensor *a, apr_tensor *b, const char *opname) {
    if (!a || !b) return NULL;
    for (int i = 0; i < 4; i++)
        GRAPH_NEED(g, a->ne[i] % b->ne[i] == 0, "%s %s, %s: dim %d of b (%lld) does not divide a's (%lld)", opname,
                   a->name, b->name, i, (long long)b->ne[i], (long long)a->ne[i]);
    GRAPH_NEED(g, a->dtype == APR_F32 && b->dtype == APR_F32, "%s: operands must be f32", opname);
    return graph_op(g, op, APR_F32, a->ne, 2, (struct apr_tensor *[]){a, b}, opname);
}

APR_API apr_tensor *apr_add(apr_graph *g, apr_tensor *a, apr_tensor *b) { return graph_binary(g, APR_OP_ADD, a, b, "add"); }
APR_API apr_tensor *apr_mul(apr_graph *g, apr_tensor *a, apr_tensor *b) { return graph_binary(g, APR_OP_MUL, a, b, "mul"); }

static apr_tensor *graph_unary(apr_graph *g, apr_op op, apr_tensor *a, const char *opname) {
    if (!a) return NULL;
    GRAPH_NEED(g, a->dtype == APR_F32, "%s: %s must be f32", opname, a->name);
    return graph_op(g, op, APR_F32, a->ne, 1, (struct apr_tensor *[]){a}, opname);
}

APR_API apr_tensor *apr_scale(apr_graph *g, apr_tensor *a, float s) {
    struct apr_tensor *t = graph_unary(g, APR_OP_SCALE, a, "scale");
    if (t) t->fparams[0] = s;
    return t;
}

APR_API apr_tensor *apr_rms_norm(apr_graph *g, apr_tensor *x, float eps) {
    if (x && !(eps > 0)) return graph_fail(g, "rms_norm of %s: eps must be > 0", x->name);
    struct apr_tensor *t = graph_unary(g, APR_OP_RMS_NORM, x, "rms_norm");
    if (t) t->fparams[0] = eps;
    return t;
}

APR_API apr_tensor *apr_silu(apr_graph *g, apr_tensor *x) { return graph_unary(g, APR_OP_SILU, x, "silu"); }
APR_API apr_tensor *apr_gelu(apr_graph *g, apr_tensor *x) { return graph_unary(g, APR_OP_GELU, x, "gelu"); }

APR_API apr_tensor *apr_swiglu(apr_graph *g, apr_tensor *gate, apr_tensor *up) {
    if (!gate || !up) return NULL;
    for (int i = 0; i < 4; i++)
        GRAPH_NEED(g, gate->ne[i] == up->ne[i], "swiglu %s, %s: shapes differ", gate->name, up->name);
    GRAPH_NEED(g, gate->dtype == APR_F32 && up->dtype == APR_F32, "swiglu: operands must be f32");
    return graph_op(g, APR_OP_SWIGLU, APR_F32, gate->ne, 2, (struct apr_tensor *[]){gate, up}, "swiglu");
}

APR_API apr_tensor *apr_rope(apr_graph *g, apr_tensor *x, apr_tensor *pos, apr_tensor *ff, const apr_rope_params *p) {
    if (!x || !pos) return NULL;
    GRAPH_NEED(g, x->dtype == APR_F32 && x->ne[3] == 1, "rope: %s must be f32 [D, H, T]", x->name);
    GRAPH_NEED(g, pos->dtype == APR_I32 && pos->ne[0] == x->ne[2] && pos->ne[1] == 1,
               "rope: positions %s must be i32 [T] with T = %lld", pos->name, (long long)x->ne[2]);
    GRAPH_NEED(g, p->n_rot > 0 && p->n_rot % 2 == 0 && p->n_rot <= x->ne[0],
               "rope: n_rot %d must be even and at most %lld", p->n_rot, (long long)x->ne[0]);
    GRAPH_NEED(g, p->layout == 0 || p->layout == 1, "rope: layout %d (0 adjacent, 1 split half)", p->layout);
    GRAPH_NEED(g, !ff || (ff->dtype == APR_F32 && apr_tensor_nelements(ff) == p->n_rot / 2),
               "rope: freq factors must be f32 [n_rot/2]");
    struct apr_tensor *t = graph_op(g, APR_OP_ROPE, APR_F32, x->ne, 3, (struct apr_tensor *[]){x, pos, ff}, "rope");
    if (!t) return NULL;
    t->iparams[0] = p->n_rot;
    t->iparams[1] = p->layout;
    t->fparams[0] = p->freq_base;
    t->fparams[1] = p->freq_scale;
    return t;
}

APR_API apr_tensor *apr_softmax(apr_graph *g, apr_tensor *x, apr_tensor *mask, float scale, bool causal) {
    if (!x) return NULL;
    GRAPH_NEED(g, x->dtype == APR_F32, "softmax: %s must be f32", x->name);
    GRAPH_NEED(g, !mask || (mask->dtype == APR_F32 && mask->ne[0] == x->ne[0] && mask->ne[1] == x->ne[1] &&
                            mask->ne[2] == 1 && mask->ne[3] == 1),
               "softmax: mask must be f32 [%lld, %lld]", (long long)x->ne[0], (long long)x->ne[1]);
    struct apr_tensor *t = graph_op(g, APR_OP_SOFTMAX, APR_F32, x->ne, 2, (struct apr_tensor *[]){x, mask}, "softmax");
    if (!t) return NULL;
    t->fparams[0] = scale;
    t->iparams[0] = causal;
    return t;
}

APR_API apr_tensor *apr_attention(apr_graph *g, apr_tensor *q, apr_tensor *k, apr_tensor *v, apr_tensor *mask,
                                  float scale, bool causal) {
    if (!q || !k || !v) return NULL;
    GRAPH_NEED(g, q->dtype == APR_F32, "attention: q must be f32");
    GRAPH_NEED(g, graph_is_float(k->dtype) && k->dtype == v->dtype, "attention: k and v must share a float dtype");
    GRAPH_NEED(g, q->ne[0] == k->ne[0], "attention: q head dim %lld != k head dim %lld", (long long)q->ne[0],
               (long long)k->ne[0]);
    GRAPH_NEED(g, k->ne[1] == v->ne[1] && k->ne[2] == v->ne[2], "attention: k and v differ in length or heads");
    GRAPH_NEED(g, q->ne[2] % k->ne[2] == 0, "attention: %lld query heads not a multiple of %lld kv heads",
               (long long)q->ne[2], (long long)k->ne[2]);
    GRAPH_NEED(g, q->ne[3] == 1 && k->ne[3] == 1 && v->ne[3] == 1, "attention: 3-D tensors expected");
    GRAPH_NEED(g, !mask || (mask->dtype == APR_F32 && mask->ne[0] == k->ne[1] && mask->ne[1] == q->ne[1]),
               "attention: mask must be f32 [S, T]");
    struct apr_tensor *t = graph_op(g, APR_OP_ATTENTION, APR_F32, (int64_t[]){v->ne[0], q->ne[2], q->ne[1], 1}, 4,
                                    (struct apr_tensor *[]){q, k, v, mask}, "attention");
    if (!t) return NULL;
    t->fparams[0] = scale;
    t->iparams[0] = causal;
    return t;
}

APR_API apr_tensor *apr_cast(apr_graph *g, apr_tensor *a, apr_dtype to) {
    if (!a) return NULL;
    GRAPH_NEED(g, (graph_is_float(a->dtype) && graph_is_float(to)) || (a->dtype == APR_I32 && to == APR_I32),
               "cast of %s from %s to %s is not defined", a->name, apr_dtype_name(a->dtype),
               apr_dtype_name(to) ? apr_dtype_name(to) : "?");
    return graph_op(g, APR_OP_CPY, to, a->ne, 1, (struct apr_tensor *[]){a}, "cpy");
}

APR_API apr_tensor *apr_concat(apr_graph *g, apr_tensor *a, apr_tensor *b, int dim) {
    if (!a || !b) return NULL;
    GRAPH_NEED(g, dim >= 0 && dim < 4, "concat: dim %d", dim);
    GRAPH_NEED(g, a->dtype == b->dtype, "concat: %s and %s differ in dtype", a->name, b->name);
    int64_t ne[4];
    for (int i = 0; i < 4; i++) {
        GRAPH_NEED(g, i == dim || a->ne[i] == b->ne[i], "concat %s, %s: dim %d differs", a->name, b->name, i);
        ne[i] = i == dim ? a->ne[i] + b->ne[i] : a->ne[i];
    }
    struct apr_tensor *t = graph_op(g, APR_OP_CONCAT, a->dtype, ne, 2, (struct apr_tensor *[]){a, b}, "concat");
    if (t) t->iparams[0] = dim;
    return t;
}

APR_API apr_tensor *apr_argmax(apr_graph *g, apr_tensor *x) {
    if (!x) return NULL;
    GRAPH_NEED(g, x->dtype == APR_F32, "argmax: %s must be f32", x->name);
    return graph_op(g, APR_OP_ARGMAX, APR_I32, (int64_t[]){x->ne[1], x->ne[2], x->ne[3], 1}, 1,
                    (struct apr_tensor *[]){x}, "argmax");
}

APR_API apr_tensor *apr_set_rows(apr_graph *g, apr_tensor *table, apr_tensor *rows, apr_tensor *ids) {
    if (!table || !rows || !ids) return NULL;
    GRAPH_NEED(g, table->kind == APR_KIND_RESIDENT || (table->kind == APR_KIND_WEIGHT && table->is_state),
               "set_rows: %s must be a resident or state leaf (weights are never written)", table->name);
    GRAPH_NEED(g, graph_is_float(table->dtype), "set_rows: table %s must be f32, f16 or bf16", table->name);
    GRAPH_NEED(g, table->ne[2] == 1 && table->ne[3] == 1 && rows->ne[2] == 1 && rows->ne[3] == 1,
               "set_rows: table %s and rows %s must be 2-D", table->name, rows->name);
    GRAPH_NEED(g, rows->ne[0] == table->ne[0], "set_rows: rows of %lld into a table of rows of %lld",
               (long long)rows->ne[0], (long long)table->ne[0]);
    GRAPH_NEED(g, rows->dtype == APR_F32 || rows->dtype == table->dtype, "set_rows: rows %s must be f32 or %s", rows->name,
               apr_dtype_name(table->dtype));
    GRAPH_NEED(g, ids->dtype == APR_I32 && ids->ne[0] == rows->ne[1] && ids->ne[1] == 1 && ids->ne[2] == 1 && ids->ne[3] == 1,
               "set_rows: ids %s must be i32 [%lld]", ids->name, (long long)rows->ne[1]);
    GRAPH_NEED(g, rows->ne[1] <= table->ne[1], "set_rows: %lld rows into a table of %lld", (long long)rows->ne[1],
               (long long)table->ne[1]);
    struct apr_tensor *t = graph_op(g, APR_OP_SET_ROWS, table->dtype, table->ne, 3,
                                    (struct apr_tensor *[]){table, rows, ids}, "set_rows");
    if (!t) return NULL;
    /* the result is the table itself: its storage, written in place */
    t->base = table;
    t->in_place = true;
    t->written = 1u;
    return t;
}

bool graph_is_writable_leaf(const struct apr_tensor *t) {
    return t->kind == APR_KIND_RESIDENT || (t->kind == APR_KIND_WEIGHT && t->is_state);
}

APR_API apr_tensor *apr_adamw(apr_graph *g, apr_tensor *param, apr_tensor *grad, apr_tensor *m, apr_tensor *v,
                              apr_tensor *hp) {
    if (!param || !grad || !m || !v || !hp) return NULL;
    struct apr_tensor *const w[3] = {param, m, v};
    for (int i = 0; i < 3; i++) {
        GRAPH_NEED(g, graph_is_writable_leaf(w[i]), "adamw: %s must be a resident or state leaf (it is written in place)",
                   w[i]->name);
        GRAPH_NEED(g, w[i]->dtype == APR_F32, "adamw: %s must be f32", w[i]->name);
        for (int j = 0; j < i; j++) GRAPH_NEED(g, w[i] != w[j], "adamw: %s is given twice", w[i]->name);
    }
    GRAPH_NEED(g, grad->dtype == APR_F32 && hp->dtype == APR_F32, "adamw: gradient %s and hyperparameters %s must be f32",
               grad->name, hp->name);
    for (int d = 0; d < APR_MAX_DIMS; d++)
        GRAPH_NEED(g, grad->ne[d] == param->ne[d] && m->ne[d] == param->ne[d] && v->ne[d] == param->ne[d],
                   "adamw: %s, %s, %s and %s must have one shape", param->name, grad->name, m->name, v->name);
    GRAPH_NEED(g, hp->ne[0] == APR_ADAMW_HP_COUNT && hp->ne[1] == 1 && hp->ne[2] == 1 && hp->ne[3] == 1,
               "adamw: hyperparameters %s must be [%d]", hp->name, APR_ADAMW_HP_COUNT);
    GRAPH_NEED(g, grad->base != param && grad->base != m && grad->base != v && hp->base != param && hp->base != m &&
                      hp->base != v, "adamw: the gradient and hyperparameters must not be the tensors it writes");
    struct apr_tensor *t = graph_op(g, APR_OP_ADAMW, APR_F32, param->ne, 5,
                                    (struct apr_tensor *[]){param, grad, m, v, hp}, "adamw");
    if (!t) return NULL;
    t->base = param;
    t->in_place = true;
    t->written = 1u | 1u << 2 | 1u << 3;
    return t;
}

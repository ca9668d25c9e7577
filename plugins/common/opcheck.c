/* opcheck.c — validates an op node against the definitions in apr_abi.h, for any backend's supports() and compute(). */
#include "opcheck.h"

#include <stdarg.h>
#include <stdio.h>

#include "apr/apr_quant.h"
#include "msg.h"

#define DT(t) (1ull << (t))
#define DT_F (DT(APR_F32) | DT(APR_F16) | DT(APR_BF16)) /* "F" in apr_abi.h */
/* The block types a weight (MATMUL src0, GET_ROWS table) may have; Q8_K is an activation format only. */
#define DT_Q (DT(APR_Q4_0) | DT(APR_Q4_1) | DT(APR_Q5_0) | DT(APR_Q5_1) | DT(APR_Q8_0) | DT(APR_Q4_K) | DT(APR_Q5_K) | DT(APR_Q6_K))
#define ANY (-1)                                         /* want_ne: this dimension is free */

#define TRY(expr)                                      \
    do {                                               \
        apr_status try_status_ = (expr);               \
        if (try_status_ != APR_OK) return try_status_; \
    } while (0)

#define NE_FMT "[%lld,%lld,%lld,%lld]"
#define NE_ARGS(ne) (long long)(ne)[0], (long long)(ne)[1], (long long)(ne)[2], (long long)(ne)[3]

/* One validation in progress: the node, its op's name for messages, and where messages go. */
typedef struct check {
    const apr_node_desc *n;
    const char *op;
    char *why;
    size_t why_size;
} check;

typedef struct op_info {
    const char *name;
    uint32_t min_src; /* sources below this are required */
    uint32_t max_src; /* sources min_src..max_src-1 are optional */
    apr_status (*check)(const check *c);
    uint32_t optional; /* bit i: source i < min_src is optional all the same (ATTENTION_GRAD's mask before dO) */
} op_info;

static apr_status fail(const check *c, apr_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static apr_status fail(const check *c, apr_status status, const char *fmt, ...) {
    if (!c->why || !c->why_size) return status;
    int len = snprintf(c->why, c->why_size, "%s: ", c->op);
    if (len >= 0 && (size_t)len < c->why_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why + len, c->why_size - (size_t)len, fmt, ap);
        va_end(ap);
    }
    return status;
}

static const char *tname(const check *c, const apr_tensor_desc *t) {
    static const char *const names[APR_MAX_SRC + APR_MAX_SRC_EXT] = {"src0", "src1", "src2", "src3",
                                                                     "src4", "src5", "src6", "src7"};
    if (t == &c->n->dst) return "dst";
    if (t >= c->n->src_ext && t < c->n->src_ext + APR_MAX_SRC_EXT) return names[APR_MAX_SRC + (t - c->n->src_ext)];
    return names[t - c->n->src];
}

static apr_status want_dtype(const check *c, const apr_tensor_desc *t, uint64_t allowed) {
    if (allowed & DT(t->dtype)) return APR_OK;
    const char *want = allowed == DT_F ? "f32, f16 or bf16" : allowed == (DT_F | DT_Q) ? "f32, f16, bf16 or a block type other than q8_K" : opcheck_dtype_name(__builtin_ctzll(allowed));
    return fail(c, APR_ERR_INVALID, "%s dtype %s, want %s", tname(c, t), opcheck_dtype_name(t->dtype), want);
}

/* The blocks of a block-type row lie next to each other (nb[0] = block bytes), as the kernels read them. */
static apr_status want_dense_blocks(const check *c, const apr_tensor_desc *t) {
    if (opcheck_dtype_block(t->dtype) <= 1 || t->nb[0] == (int64_t)opcheck_dtype_size(t->dtype)) return APR_OK;
    return fail(c, APR_ERR_INVALID, "%s nb[0]=%lld, want %zu (the %s block size): block rows must be dense", tname(c, t),
                (long long)t->nb[0], opcheck_dtype_size(t->dtype), opcheck_dtype_name(t->dtype));
}

/* ANY leaves a dimension free; the message shows it as '*'. */
static apr_status want_ne(const check *c, const apr_tensor_desc *t, int64_t e0, int64_t e1, int64_t e2, int64_t e3) {
    const int64_t want[APR_MAX_DIMS] = {e0, e1, e2, e3};
    bool ok = true;
    for (int d = 0; d < APR_MAX_DIMS; d++) ok = ok && (want[d] == ANY || t->ne[d] == want[d]);
    if (ok) return APR_OK;
    char w[4][24];
    for (int d = 0; d < APR_MAX_DIMS; d++) {
        if (want[d] == ANY) snprintf(w[d], sizeof w[d], "*");
        else snprintf(w[d], sizeof w[d], "%lld", (long long)want[d]);
    }
    return fail(c, APR_ERR_INVALID, "%s ne=" NE_FMT ", want [%s,%s,%s,%s]", tname(c, t), NE_ARGS(t->ne), w[0], w[1],
                w[2], w[3]);
}

static apr_status want_same_ne(const check *c, const apr_tensor_desc *t, const apr_tensor_desc *like) {
    return want_ne(c, t, like->ne[0], like->ne[1], like->ne[2], like->ne[3]);
}

static apr_status want_flag(const check *c, int i, const char *what) {
    int32_t v = c->n->iparams[i];
    if (v == 0 || v == 1) return APR_OK;
    return fail(c, APR_ERR_INVALID, "%s (iparams[%d]) = %d, want 0 or 1", what, i, (int)v);
}

/* ---------------------------------------------------------------- per-op definitions */

static apr_status check_get_rows(const check *c) {
    const apr_tensor_desc *table = &c->n->src[0], *ids = &c->n->src[1], *dst = &c->n->dst;
    TRY(want_dtype(c, table, DT_F | DT_Q));
    TRY(want_dense_blocks(c, table));
    TRY(want_dtype(c, ids, DT(APR_I32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    TRY(want_ne(c, table, ANY, ANY, 1, 1));
    TRY(want_ne(c, ids, ANY, 1, 1, 1));
    return want_ne(c, dst, table->ne[0], ids->ne[0], 1, 1);
}

static apr_status check_matmul(const check *c) {
    const apr_tensor_desc *w = &c->n->src[0], *x = &c->n->src[1], *dst = &c->n->dst;
    TRY(want_dtype(c, w, DT_F | DT_Q));
    TRY(want_dense_blocks(c, w));
    TRY(want_dtype(c, x, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    if (x->ne[0] != w->ne[0])
        return fail(c, APR_ERR_INVALID, "src1 ne[0]=%lld != src0 ne[0]=%lld", (long long)x->ne[0], (long long)w->ne[0]);
    for (int d = 2; d < APR_MAX_DIMS; d++)
        if (w->ne[d] < 1 || x->ne[d] % w->ne[d])
            return fail(c, APR_ERR_INVALID, "src1 ne[%d]=%lld is not a multiple of src0 ne[%d]=%lld", d,
                        (long long)x->ne[d], d, (long long)w->ne[d]);
    return want_ne(c, dst, w->ne[1], x->ne[1], x->ne[2], x->ne[3]);
}

/* ADD and MUL: b repeats over a. */
static apr_status check_add_mul(const check *c) {
    const apr_tensor_desc *a = &c->n->src[0], *b = &c->n->src[1], *dst = &c->n->dst;
    TRY(want_dtype(c, a, DT(APR_F32)));
    TRY(want_dtype(c, b, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    for (int d = 0; d < APR_MAX_DIMS; d++)
        if (b->ne[d] < 1 || a->ne[d] % b->ne[d])
            return fail(c, APR_ERR_INVALID, "src1 ne[%d]=%lld does not divide src0 ne[%d]=%lld", d,
                        (long long)b->ne[d], d, (long long)a->ne[d]);
    return want_same_ne(c, dst, a);
}

/* SCALE, SILU, GELU: f32 in, f32 out, same shape. */
static apr_status check_unary(const check *c) {
    const apr_tensor_desc *a = &c->n->src[0], *dst = &c->n->dst;
    TRY(want_dtype(c, a, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    return want_same_ne(c, dst, a);
}

static apr_status check_rms_norm(const check *c) {
    TRY(check_unary(c));
    float eps = c->n->fparams[0];
    if (!(eps > 0.0f)) return fail(c, APR_ERR_INVALID, "eps (fparams[0]) = %g, want > 0", (double)eps);
    return APR_OK;
}

static apr_status check_swiglu(const check *c) {
    const apr_tensor_desc *a = &c->n->src[0], *b = &c->n->src[1], *dst = &c->n->dst;
    TRY(want_dtype(c, a, DT(APR_F32)));
    TRY(want_dtype(c, b, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    TRY(want_same_ne(c, b, a));
    return want_same_ne(c, dst, a);
}

static apr_status check_rope(const check *c) {
    const apr_node_desc *n = c->n;
    const apr_tensor_desc *x = &n->src[0], *pos = &n->src[1], *dst = &n->dst;
    TRY(want_dtype(c, x, DT(APR_F32)));
    TRY(want_dtype(c, pos, DT(APR_I32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    TRY(want_ne(c, x, ANY, ANY, ANY, 1));
    TRY(want_ne(c, pos, x->ne[2], 1, 1, 1));
    int32_t n_rot = n->iparams[0];
    if (n_rot < 0 || n_rot % 2 || n_rot > x->ne[0])
        return fail(c, APR_ERR_INVALID, "n_rot (iparams[0]) = %d, want even and <= D=%lld", (int)n_rot,
                    (long long)x->ne[0]);
    if (n->iparams[1] != 0 && n->iparams[1] != 1)
        return fail(c, APR_ERR_INVALID, "layout (iparams[1]) = %d, want 0 (adjacent pairs) or 1 (split half)",
                    (int)n->iparams[1]);
    if (!(n->fparams[0] > 0.0f))
        return fail(c, APR_ERR_INVALID, "frequency base (fparams[0]) = %g, want > 0", (double)n->fparams[0]);
    if (opcheck_src_present(n, 2)) {
        TRY(want_dtype(c, &n->src[2], DT(APR_F32)));
        TRY(want_ne(c, &n->src[2], n_rot / 2, 1, 1, 1));
    }
    return want_same_ne(c, dst, x);
}

static apr_status check_softmax(const check *c) {
    const apr_tensor_desc *x = &c->n->src[0], *dst = &c->n->dst;
    TRY(want_dtype(c, x, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    if (opcheck_src_present(c->n, 1)) {
        TRY(want_dtype(c, &c->n->src[1], DT(APR_F32)));
        TRY(want_ne(c, &c->n->src[1], x->ne[0], x->ne[1], 1, 1));
    }
    TRY(want_flag(c, 0, "causal"));
    return want_same_ne(c, dst, x);
}

static apr_status check_attention(const check *c) {
    const apr_node_desc *n = c->n;
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2], *dst = &n->dst;
    TRY(want_dtype(c, q, DT(APR_F32)));
    TRY(want_dtype(c, k, DT_F));
    if (v->dtype != k->dtype)
        return fail(c, APR_ERR_INVALID, "src2 (v) dtype %s != src1 (k) dtype %s", opcheck_dtype_name(v->dtype),
                    opcheck_dtype_name(k->dtype));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    TRY(want_ne(c, q, ANY, ANY, ANY, 1));
    TRY(want_ne(c, k, q->ne[0], ANY, ANY, 1));
    if (k->ne[2] < 1 || q->ne[2] % k->ne[2])
        return fail(c, APR_ERR_INVALID, "src0 (q) heads ne[2]=%lld is not a multiple of src1 (k) heads ne[2]=%lld",
                    (long long)q->ne[2], (long long)k->ne[2]);
    TRY(want_ne(c, v, ANY, k->ne[1], k->ne[2], 1));
    if (opcheck_src_present(n, 3)) {
        TRY(want_dtype(c, &n->src[3], DT(APR_F32)));
        TRY(want_ne(c, &n->src[3], k->ne[1], q->ne[1], 1, 1));
    }
    TRY(want_flag(c, 0, "causal"));
    return want_ne(c, dst, v->ne[0], q->ne[2], q->ne[1], 1);
}

static apr_status check_cpy(const check *c) {
    const apr_tensor_desc *a = &c->n->src[0], *dst = &c->n->dst;
    if (opcheck_dtype_block(a->dtype) > 1 || opcheck_dtype_block(dst->dtype) > 1)
        return fail(c, APR_ERR_UNSUPPORTED, "%s to %s: block types are not converted by cpy", opcheck_dtype_name(a->dtype),
                    opcheck_dtype_name(dst->dtype));
    if (opcheck_dtype_is_float(a->dtype) != opcheck_dtype_is_float(dst->dtype))
        return fail(c, APR_ERR_INVALID, "%s to %s is not a defined conversion (i32 copies to i32 only)",
                    opcheck_dtype_name(a->dtype), opcheck_dtype_name(dst->dtype));
    return want_same_ne(c, dst, a);
}

static apr_status check_concat(const check *c) {
    const apr_tensor_desc *a = &c->n->src[0], *b = &c->n->src[1], *dst = &c->n->dst;
    int32_t dim = c->n->iparams[0];
    if (dim < 0 || dim >= APR_MAX_DIMS)
        return fail(c, APR_ERR_INVALID, "dim (iparams[0]) = %d, want 0..%d", (int)dim, APR_MAX_DIMS - 1);
    if (opcheck_dtype_block(a->dtype) > 1)
        return fail(c, APR_ERR_UNSUPPORTED, "%s: block types are not concatenated", opcheck_dtype_name(a->dtype));
    if (b->dtype != a->dtype || dst->dtype != a->dtype)
        return fail(c, APR_ERR_INVALID, "dtypes src0 %s, src1 %s, dst %s must be equal", opcheck_dtype_name(a->dtype),
                    opcheck_dtype_name(b->dtype), opcheck_dtype_name(dst->dtype));
    int64_t want[APR_MAX_DIMS];
    for (int d = 0; d < APR_MAX_DIMS; d++) {
        if (d != dim && b->ne[d] != a->ne[d])
            return fail(c, APR_ERR_INVALID, "src1 ne[%d]=%lld != src0 ne[%d]=%lld (only dim %d may differ)", d,
                        (long long)b->ne[d], d, (long long)a->ne[d], (int)dim);
        want[d] = a->ne[d];
    }
    if (__builtin_add_overflow(a->ne[dim], b->ne[dim], &want[dim]))
        return fail(c, APR_ERR_INVALID, "joined ne[%d] overflows", (int)dim);
    return want_ne(c, dst, want[0], want[1], want[2], want[3]);
}

static apr_status check_argmax(const check *c) {
    const apr_tensor_desc *x = &c->n->src[0], *dst = &c->n->dst;
    TRY(want_dtype(c, x, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_I32)));
    if (x->ne[0] > (int64_t)INT32_MAX + 1)
        return fail(c, APR_ERR_INVALID, "src0 rows of %lld elements have indices beyond i32", (long long)x->ne[0]);
    return want_ne(c, dst, x->ne[1], x->ne[2], x->ne[3], 1);
}

/* No two elements of t share a byte: with the dims sorted by |stride|, each stride clears the
 * extent of the dims below it. Sufficient, not necessary (an interleaving of two dims that happens
 * not to collide is refused), which no real view needs. */
static bool elements_disjoint(const apr_tensor_desc *t) {
    int64_t step[APR_MAX_DIMS], ne[APR_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < APR_MAX_DIMS; d++) {
        if (t->ne[d] <= 1) continue;
        if (t->nb[d] == INT64_MIN) return false; /* no magnitude to take */
        int64_t s = t->nb[d] < 0 ? -t->nb[d] : t->nb[d];
        int j = nd++;
        for (; j > 0 && step[j - 1] > s; j--) { /* insertion by |nb|: at most four dims */
            step[j] = step[j - 1];
            ne[j] = ne[j - 1];
        }
        step[j] = s;
        ne[j] = t->ne[d];
    }
    int64_t extent = (int64_t)opcheck_dtype_size(t->dtype), span;
    for (int i = 0; i < nd; i++) {
        if (step[i] < extent) return false;
        if (__builtin_mul_overflow(ne[i] - 1, step[i], &span) || __builtin_add_overflow(extent, span, &extent)) return false;
    }
    return true;
}

/* dst names the very tensor src0 is: the node writes src0 where it lives. */
static apr_status want_in_place(const check *c) {
    const apr_tensor_desc *t = &c->n->src[0], *dst = &c->n->dst;
    bool same = dst->dtype == t->dtype && dst->buffer == t->buffer && dst->offset == t->offset && dst->data == t->data;
    for (int d = 0; d < APR_MAX_DIMS; d++) same = same && dst->ne[d] == t->ne[d] && dst->nb[d] == t->nb[d];
    if (same) return APR_OK;
    return fail(c, APR_ERR_INVALID, "dst must be src0 itself (same dtype, ne, nb, buffer and offset): it writes in place");
}

static apr_status check_set_rows(const check *c) {
    const apr_tensor_desc *table = &c->n->src[0], *rows = &c->n->src[1], *ids = &c->n->src[2];
    TRY(want_dtype(c, table, DT_F));
    if (rows->dtype != APR_F32 && rows->dtype != table->dtype)
        return fail(c, APR_ERR_INVALID, "src1 dtype %s, want f32 or the table's %s", opcheck_dtype_name(rows->dtype),
                    opcheck_dtype_name(table->dtype));
    TRY(want_dtype(c, ids, DT(APR_I32)));
    TRY(want_ne(c, table, ANY, ANY, 1, 1));
    TRY(want_ne(c, ids, ANY, 1, 1, 1));
    TRY(want_ne(c, rows, table->ne[0], ids->ne[0], 1, 1));
    if (ids->ne[0] < 1 || ids->ne[0] > table->ne[1])
        return fail(c, APR_ERR_INVALID, "src2 has %lld ids for %lld rows, want 1 <= N <= R", (long long)ids->ne[0],
                    (long long)table->ne[1]);
    TRY(want_in_place(c));
    /* Overlapping rows would make one write land in two rows (and the result depend on the order). */
    if (!elements_disjoint(table))
        return fail(c, APR_ERR_INVALID, "src0 ne=" NE_FMT " nb=" NE_FMT ": elements of the table may overlap (each |nb| must "
                    "clear the extent of the dims with smaller strides)", NE_ARGS(table->ne), NE_ARGS(table->nb));
    return APR_OK;
}

/* Written in place: w (src0, also dst), m (src2) and v (src3); read: g (src1) and hp (src4). */
static apr_status check_adamw(const check *c) {
    const apr_tensor_desc *w = &c->n->src[0];
    for (uint32_t i = 0; i < 4; i++) {
        const apr_tensor_desc *t = &c->n->src[i];
        TRY(want_dtype(c, t, DT(APR_F32)));
        if (i) TRY(want_ne(c, t, w->ne[0], w->ne[1], w->ne[2], w->ne[3]));
        if ((i == 0 || i >= 2) && !elements_disjoint(t))
            return fail(c, APR_ERR_INVALID, "%s ne=" NE_FMT " nb=" NE_FMT ": it is written in place, and its elements may "
                        "overlap", tname(c, t), NE_ARGS(t->ne), NE_ARGS(t->nb));
    }
    const apr_tensor_desc *hp = &c->n->src_ext[0];
    TRY(want_dtype(c, hp, DT(APR_F32)));
    TRY(want_ne(c, hp, APR_ADAMW_HP_COUNT, 1, 1, 1));
    return want_in_place(c);
}

/* ---------------------------------------------------------------- ABI 5: gradients and training */

/* The gradient ops whose sources are x and dY of one shape (dst too): RMS_NORM_GRAD, SOFTMAX_GRAD (src0 = y),
 * SILU_GRAD, GELU_GRAD. */
static apr_status check_grad_pointwise(const check *c) {
    const apr_tensor_desc *x = &c->n->src[0], *dy = &c->n->src[1], *dst = &c->n->dst;
    TRY(want_dtype(c, x, DT(APR_F32)));
    TRY(want_dtype(c, dy, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    TRY(want_same_ne(c, dy, x));
    return want_same_ne(c, dst, x);
}

static apr_status check_rms_norm_grad(const check *c) {
    TRY(check_grad_pointwise(c));
    float eps = c->n->fparams[0];
    if (!(eps > 0.0f)) return fail(c, APR_ERR_INVALID, "eps (fparams[0]) = %g, want > 0", (double)eps);
    return APR_OK;
}

static apr_status check_matmul_grad_x(const check *c) {
    const apr_tensor_desc *w = &c->n->src[0], *dy = &c->n->src[1], *dst = &c->n->dst;
    TRY(want_dtype(c, w, DT_F | DT_Q));
    TRY(want_dense_blocks(c, w));
    TRY(want_dtype(c, dy, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    if (dy->ne[0] != w->ne[1])
        return fail(c, APR_ERR_INVALID, "src1 ne[0]=%lld != src0 ne[1]=%lld", (long long)dy->ne[0], (long long)w->ne[1]);
    for (int d = 2; d < APR_MAX_DIMS; d++)
        if (w->ne[d] < 1 || dy->ne[d] % w->ne[d])
            return fail(c, APR_ERR_INVALID, "src1 ne[%d]=%lld is not a multiple of src0 ne[%d]=%lld", d,
                        (long long)dy->ne[d], d, (long long)w->ne[d]);
    return want_ne(c, dst, w->ne[0], dy->ne[1], dy->ne[2], dy->ne[3]);
}

static apr_status check_matmul_grad_w(const check *c) {
    const apr_tensor_desc *x = &c->n->src[0], *dy = &c->n->src[1], *dst = &c->n->dst;
    TRY(want_dtype(c, x, DT(APR_F32)));
    TRY(want_dtype(c, dy, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    TRY(want_ne(c, dy, ANY, x->ne[1], x->ne[2], x->ne[3]));
    for (int d = 2; d < APR_MAX_DIMS; d++)
        if (dst->ne[d] < 1 || x->ne[d] % dst->ne[d])
            return fail(c, APR_ERR_INVALID, "dst ne[%d]=%lld does not divide src0 ne[%d]=%lld", d, (long long)dst->ne[d], d,
                        (long long)x->ne[d]);
    return want_ne(c, dst, x->ne[0], dy->ne[0], ANY, ANY);
}

static apr_status check_get_rows_grad(const check *c) {
    const apr_tensor_desc *dy = &c->n->src[0], *ids = &c->n->src[1], *dst = &c->n->dst;
    TRY(want_dtype(c, dy, DT(APR_F32)));
    TRY(want_dtype(c, ids, DT(APR_I32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    TRY(want_ne(c, dy, ANY, ANY, 1, 1));
    TRY(want_ne(c, ids, dy->ne[1], 1, 1, 1));
    return want_ne(c, dst, dy->ne[0], ANY, 1, 1);
}

static apr_status check_sum_repeats(const check *c) {
    const apr_tensor_desc *a = &c->n->src[0], *dst = &c->n->dst;
    TRY(want_dtype(c, a, DT(APR_F32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    for (int d = 0; d < APR_MAX_DIMS; d++)
        if (dst->ne[d] < 1 || a->ne[d] % dst->ne[d])
            return fail(c, APR_ERR_INVALID, "dst ne[%d]=%lld does not divide src0 ne[%d]=%lld", d, (long long)dst->ne[d], d,
                        (long long)a->ne[d]);
    return APR_OK;
}

static apr_status check_attention_grad(const check *c) {
    const apr_node_desc *n = c->n;
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2], *dout = &n->src_ext[0], *dst = &n->dst;
    /* dO first, under its own name: it is the forward's dst [Dv, H, T] */
    TRY(want_dtype(c, dout, DT(APR_F32)));
    TRY(want_ne(c, dout, v->ne[0], q->ne[2], q->ne[1], 1));
    /* the forward's sources and parameters, judged by the forward's rule (dO, checked above, stands in
     * for the forward's dst) */
    apr_node_desc fwd = *n;
    fwd.op = APR_OP_ATTENTION;
    fwd.n_src = 4;
    fwd.dst = *dout;
    TRY(check_attention(&(check){&fwd, c->op, c->why, c->why_size}));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    /* dQ, dK and dV end to end; a size past int64 (ne from a malformed node) is refused, not wrapped */
    int64_t total = 0;
    const apr_tensor_desc *parts[3] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        int64_t part;
        if (__builtin_mul_overflow(parts[i]->ne[0], parts[i]->ne[1], &part) ||
            __builtin_mul_overflow(part, parts[i]->ne[2], &part) || __builtin_add_overflow(total, part, &total))
            return fail(c, APR_ERR_INVALID, "dQ, dK and dV hold more than 2^63 elements");
    }
    return want_ne(c, dst, total, 1, 1, 1);
}

static apr_status check_cross_entropy(const check *c) {
    const apr_node_desc *n = c->n;
    const apr_tensor_desc *logits = &n->src[0], *targets = &n->src[1], *dst = &n->dst;
    TRY(want_dtype(c, logits, DT(APR_F32)));
    TRY(want_dtype(c, targets, DT(APR_I32)));
    TRY(want_dtype(c, dst, DT(APR_F32)));
    TRY(want_ne(c, logits, ANY, ANY, 1, 1));
    TRY(want_ne(c, targets, logits->ne[1], 1, 1, 1));
    if (n->op == APR_OP_CROSS_ENTROPY) return want_ne(c, dst, 1, 1, 1, 1);
    TRY(want_dtype(c, &n->src[2], DT(APR_F32)));
    TRY(want_ne(c, &n->src[2], 1, 1, 1, 1));
    return want_same_ne(c, dst, logits);
}

/* Written in place: w (src0, also dst) and the momentum buffer (src2); read: g (src1) and hp (src3). */
static apr_status check_sgd(const check *c) {
    const apr_tensor_desc *w = &c->n->src[0];
    for (uint32_t i = 0; i < 3; i++) {
        const apr_tensor_desc *t = &c->n->src[i];
        TRY(want_dtype(c, t, DT(APR_F32)));
        if (i) TRY(want_same_ne(c, t, w));
        if (i != 1 && !elements_disjoint(t))
            return fail(c, APR_ERR_INVALID, "%s ne=" NE_FMT " nb=" NE_FMT ": it is written in place, and its elements may "
                        "overlap", tname(c, t), NE_ARGS(t->ne), NE_ARGS(t->nb));
    }
    TRY(want_dtype(c, &c->n->src[3], DT(APR_F32)));
    TRY(want_ne(c, &c->n->src[3], APR_SGD_HP_COUNT, 1, 1, 1));
    return want_in_place(c);
}

static apr_status check_acc(const check *c) {
    const apr_tensor_desc *a = &c->n->src[0], *b = &c->n->src[1];
    TRY(want_dtype(c, a, DT(APR_F32)));
    TRY(want_dtype(c, b, DT(APR_F32)));
    TRY(want_same_ne(c, b, a));
    if (!elements_disjoint(a))
        return fail(c, APR_ERR_INVALID, "src0 ne=" NE_FMT " nb=" NE_FMT ": it is written in place, and its elements may "
                    "overlap", NE_ARGS(a->ne), NE_ARGS(a->nb));
    return want_in_place(c);
}

static const op_info ops[APR_OP_COUNT_V5] = {
    [APR_OP_GET_ROWS] = {"get_rows", 2, 2, check_get_rows},
    [APR_OP_MATMUL] = {"matmul", 2, 2, check_matmul},
    [APR_OP_ADD] = {"add", 2, 2, check_add_mul},
    [APR_OP_MUL] = {"mul", 2, 2, check_add_mul},
    [APR_OP_SCALE] = {"scale", 1, 1, check_unary},
    [APR_OP_RMS_NORM] = {"rms_norm", 1, 1, check_rms_norm},
    [APR_OP_ROPE] = {"rope", 2, 3, check_rope},
    [APR_OP_SOFTMAX] = {"softmax", 1, 2, check_softmax},
    [APR_OP_SILU] = {"silu", 1, 1, check_unary},
    [APR_OP_GELU] = {"gelu", 1, 1, check_unary},
    [APR_OP_SWIGLU] = {"swiglu", 2, 2, check_swiglu},
    [APR_OP_ATTENTION] = {"attention", 3, 4, check_attention},
    [APR_OP_CPY] = {"cpy", 1, 1, check_cpy},
    [APR_OP_CONCAT] = {"concat", 2, 2, check_concat},
    [APR_OP_ARGMAX] = {"argmax", 1, 1, check_argmax},
    [APR_OP_SET_ROWS] = {"set_rows", 3, 3, check_set_rows},
    [APR_OP_ADAMW] = {"adamw", 5, 5, check_adamw},
    [APR_OP_MATMUL_GRAD_X] = {"matmul_grad_x", 2, 2, check_matmul_grad_x},
    [APR_OP_MATMUL_GRAD_W] = {"matmul_grad_w", 2, 2, check_matmul_grad_w},
    [APR_OP_GET_ROWS_GRAD] = {"get_rows_grad", 2, 2, check_get_rows_grad},
    [APR_OP_SUM_REPEATS] = {"sum_repeats", 1, 1, check_sum_repeats},
    [APR_OP_RMS_NORM_GRAD] = {"rms_norm_grad", 2, 2, check_rms_norm_grad},
    [APR_OP_ROPE_GRAD] = {"rope_grad", 2, 3, check_rope},
    [APR_OP_SOFTMAX_GRAD] = {"softmax_grad", 2, 2, check_grad_pointwise},
    [APR_OP_SILU_GRAD] = {"silu_grad", 2, 2, check_grad_pointwise},
    [APR_OP_GELU_GRAD] = {"gelu_grad", 2, 2, check_grad_pointwise},
    [APR_OP_ATTENTION_GRAD] = {"attention_grad", 5, 5, check_attention_grad, 1u << 3},
    [APR_OP_CROSS_ENTROPY] = {"cross_entropy", 2, 2, check_cross_entropy},
    [APR_OP_CROSS_ENTROPY_GRAD] = {"cross_entropy_grad", 3, 3, check_cross_entropy},
    [APR_OP_SGD] = {"sgd", 4, 4, check_sgd},
    [APR_OP_ACC] = {"acc", 2, 2, check_acc},
};

static const op_info *op_lookup(uint32_t op) {
    if (op >= APR_OP_COUNT_V5 || !ops[op].name) return NULL;
    return &ops[op];
}

/* ---------------------------------------------------------------- public */

/* What every tensor must satisfy whatever the op: readable as a v1 desc, a known dtype, no
 * negative dimension. */
static apr_status check_tensor(const check *c, const apr_tensor_desc *t) {
    if (t->struct_size < sizeof(apr_tensor_desc))
        return fail(c, APR_ERR_INVALID, "%s struct_size %u < %zu", tname(c, t), (unsigned)t->struct_size,
                    sizeof(apr_tensor_desc));
    if (!opcheck_dtype_name(t->dtype))
        return fail(c, APR_ERR_UNSUPPORTED, "%s dtype %u is unknown to ABI version %d", tname(c, t),
                    (unsigned)t->dtype, APR_ABI_VERSION);
    for (int d = 0; d < APR_MAX_DIMS; d++)
        if (t->ne[d] < 0)
            return fail(c, APR_ERR_INVALID, "%s ne[%d]=%lld is negative", tname(c, t), d, (long long)t->ne[d]);
    int64_t blk = opcheck_dtype_block(t->dtype);
    if (blk > 1 && t->ne[0] % blk)
        return fail(c, APR_ERR_INVALID, "%s ne[0]=%lld is not a multiple of the %s block (%lld)", tname(c, t),
                    (long long)t->ne[0], opcheck_dtype_name(t->dtype), (long long)blk);
    return APR_OK;
}

apr_status opcheck_node(const apr_node_desc *n, char *why, size_t why_size) {
    if (!n) return msg_set(why, why_size, APR_ERR_INVALID, "node is NULL");
    if (n->struct_size < APR_NODE_DESC_SIZE_V3)
        return msg_set(why, why_size, APR_ERR_INVALID, "node struct_size %u < %zu", (unsigned)n->struct_size,
                       (size_t)APR_NODE_DESC_SIZE_V3);
    const op_info *info = op_lookup(n->op);
    if (!info) return msg_set(why, why_size, APR_ERR_UNSUPPORTED, "unknown op %u", (unsigned)n->op);
    check c = {n, info->name, why, why_size};
    if (n->n_src > APR_MAX_SRC && n->struct_size < offsetof(apr_node_desc, src_ext) + (n->n_src - APR_MAX_SRC) * sizeof n->src_ext[0])
        return fail(&c, APR_ERR_INVALID, "node struct_size %u holds no source %u (a core before ABI 4?)",
                    (unsigned)n->struct_size, (unsigned)n->n_src - 1);
    if (n->n_src < info->min_src || n->n_src > info->max_src) {
        if (info->min_src == info->max_src)
            return fail(&c, APR_ERR_INVALID, "n_src=%u, want %u", (unsigned)n->n_src, (unsigned)info->min_src);
        return fail(&c, APR_ERR_INVALID, "n_src=%u, want %u..%u", (unsigned)n->n_src, (unsigned)info->min_src,
                    (unsigned)info->max_src);
    }
    TRY(check_tensor(&c, &n->dst));
    for (uint32_t i = 0; i < n->n_src; i++)
        if (opcheck_src_present(n, i)) TRY(check_tensor(&c, opcheck_src(n, i)));
    return info->check(&c);
}

/* Strided units along dim 0: elements, or blocks for a block type. */
static int64_t units0(const apr_tensor_desc *t) {
    int64_t blk = opcheck_dtype_block(t->dtype);
    return blk > 1 ? t->ne[0] / blk : t->ne[0];
}

/* The bytes t touches, [lo, hi) relative to its buffer, computed without overflow. */
static apr_status tensor_bounds(const check *c, const apr_tensor_desc *t) {
    if (opcheck_nelements(t) == 0) return APR_OK;
    const apr_buffer *buf = t->buffer;
    if (!buf) return fail(c, APR_ERR_INVALID, "%s has no buffer", tname(c, t));
    if (buf->struct_size < offsetof(apr_buffer, size) + sizeof buf->size)
        return fail(c, APR_ERR_INVALID, "%s buffer struct_size %u is too small", tname(c, t), (unsigned)buf->struct_size);
    bool overflow = t->offset > (uint64_t)INT64_MAX;
    int64_t lo = overflow ? 0 : (int64_t)t->offset, hi = 0;
    overflow = overflow || __builtin_add_overflow(lo, (int64_t)opcheck_dtype_size(t->dtype), &hi);
    for (int d = 0; d < APR_MAX_DIMS && !overflow; d++) {
        int64_t span;
        overflow = __builtin_mul_overflow((d == 0 ? units0(t) : t->ne[d]) - 1, t->nb[d], &span);
        if (!overflow && span < 0) overflow = __builtin_add_overflow(lo, span, &lo);
        if (!overflow && span > 0) overflow = __builtin_add_overflow(hi, span, &hi);
    }
    if (overflow) return fail(c, APR_ERR_INVALID, "%s ne and nb overflow 64-bit byte offsets", tname(c, t));
    if (lo < 0 || (uint64_t)hi > buf->size)
        return fail(c, APR_ERR_INVALID, "%s spans bytes [%lld, %lld) of a %llu-byte buffer", tname(c, t), (long long)lo,
                    (long long)hi, (unsigned long long)buf->size);
    return APR_OK;
}

apr_status opcheck_bounds(const apr_node_desc *n, char *why, size_t why_size) {
    const op_info *info = op_lookup(n->op);
    check c = {n, info ? info->name : "?", why, why_size};
    TRY(tensor_bounds(&c, &n->dst));
    for (uint32_t i = 0; i < n->n_src; i++)
        if (opcheck_src_present(n, i)) TRY(tensor_bounds(&c, opcheck_src(n, i)));
    return APR_OK;
}

bool opcheck_src_present(const apr_node_desc *n, uint32_t i) {
    const op_info *info = op_lookup(n->op);
    if (!info || i >= n->n_src || i >= APR_MAX_SRC + APR_MAX_SRC_EXT) return false;
    if (i < info->min_src && !(info->optional >> i & 1u)) return true;
    /* A zeroed slot (struct_size 0) is absent without reading further; any other slot is a real
     * desc, and check_tensor refuses it when it is too small to hold buffer. */
    const apr_tensor_desc *t = opcheck_src(n, i);
    if (t->struct_size == 0) return false;
    if (t->struct_size < offsetof(apr_tensor_desc, buffer) + sizeof t->buffer) return true;
    return t->buffer != NULL;
}

const char *opcheck_op_name(uint32_t op) {
    const op_info *info = op_lookup(op);
    return info ? info->name : NULL;
}

const char *opcheck_dtype_name(uint32_t dtype) {
    switch (dtype) {
    case APR_F32: return "f32";
    case APR_F16: return "f16";
    case APR_BF16: return "bf16";
    case APR_I32: return "i32";
    case APR_Q4_0: return "q4_0";
    case APR_Q4_1: return "q4_1";
    case APR_Q5_0: return "q5_0";
    case APR_Q5_1: return "q5_1";
    case APR_Q8_0: return "q8_0";
    case APR_Q4_K: return "q4_K";
    case APR_Q5_K: return "q5_K";
    case APR_Q6_K: return "q6_K";
    case APR_Q8_K: return "q8_K";
    default: return NULL;
    }
}

size_t opcheck_dtype_size(uint32_t dtype) {
    switch (dtype) {
    case APR_F32: return 4;
    case APR_F16: return 2;
    case APR_BF16: return 2;
    case APR_I32: return 4;
    case APR_Q4_0: return sizeof(apr_block_q4_0);
    case APR_Q4_1: return sizeof(apr_block_q4_1);
    case APR_Q5_0: return sizeof(apr_block_q5_0);
    case APR_Q5_1: return sizeof(apr_block_q5_1);
    case APR_Q8_0: return sizeof(apr_block_q8_0);
    case APR_Q4_K: return sizeof(apr_block_q4_K);
    case APR_Q5_K: return sizeof(apr_block_q5_K);
    case APR_Q6_K: return sizeof(apr_block_q6_K);
    case APR_Q8_K: return sizeof(apr_block_q8_K);
    default: return 0;
    }
}

int64_t opcheck_dtype_block(uint32_t dtype) {
    switch (dtype) {
    case APR_Q4_0: case APR_Q4_1: case APR_Q5_0: case APR_Q5_1: case APR_Q8_0: return APR_QK;
    case APR_Q4_K: case APR_Q5_K: case APR_Q6_K: case APR_Q8_K: return APR_QK_K;
    default: return opcheck_dtype_size(dtype) ? 1 : 0;
    }
}

bool opcheck_dtype_is_float(uint32_t dtype) {
    return dtype == APR_F32 || dtype == APR_F16 || dtype == APR_BF16;
}

int64_t opcheck_nelements(const apr_tensor_desc *t) {
    int64_t n = 1;
    for (int d = 0; d < APR_MAX_DIMS; d++)
        if (t->ne[d] == 0) return 0;
    for (int d = 0; d < APR_MAX_DIMS; d++)
        if (__builtin_mul_overflow(n, t->ne[d], &n)) return INT64_MAX;
    return n;
}

bool opcheck_is_contiguous(const apr_tensor_desc *t) {
    if (opcheck_nelements(t) == 0) return true;
    int64_t expect = (int64_t)opcheck_dtype_size(t->dtype);
    for (int d = 0; d < APR_MAX_DIMS; d++) {
        if (t->ne[d] != 1 && t->nb[d] != expect) return false;
        if (__builtin_mul_overflow(expect, (d == 0 ? units0(t) : t->ne[d]), &expect)) return false;
    }
    return true;
}

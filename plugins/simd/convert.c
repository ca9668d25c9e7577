/* convert.c — the data-movement ops: CPY (dtype conversion, de-striding), GET_ROWS (float and block tables), SET_ROWS, CONCAT. */
#include <string.h>

#include "../common/msg.h"
#include "../common/opcheck.h"
#include "simd_ops.h"
#include "qmatmul.h"
#include "rows.h"
#include "vec.h"

typedef struct convert_job {
    const apr_node_desc *n;
    cpu_backend *be;
} convert_job;

/* n elements of esz bytes, strided on both sides. */
static void convert_copy(char *dst, int64_t dnb0, const char *src, int64_t snb0, int64_t n, int esz) {
    if (dnb0 == esz && snb0 == esz) { memmove(dst, src, (size_t)(n * esz)); return; }
    for (int64_t i = 0; i < n; i++) memmove(dst + i * dnb0, src + i * snb0, (size_t)esz);
}

static void convert_worker(void *ctx, int ith, int nth) {
    const convert_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *a = &n->src[0], *b = &n->src[1], *d = &n->dst;
    const int64_t len = d->ne[0];
    float *tmp = (float *)j->be->scratch[ith];
    long long r0, r1;
    tpool_split(rows_count(d), ith, nth, &r0, &r1);
    for (long long r = r0; r < r1; r++) {
        int64_t i1, i2, i3;
        rows_index(d, r, &i1, &i2, &i3);
        char *drow = rows_at(d, i1, i2, i3);
        if (n->op == APR_OP_GET_ROWS) {
            int32_t id;
            memcpy(&id, (const char *)b->data + i1 * b->nb[0], 4); /* checked by convert_run */
            const char *srow = (const char *)a->data + (int64_t)id * a->nb[1];
            if (a->dtype != APR_F32 && a->dtype != APR_F16 && a->dtype != APR_BF16) {
                /* a block row: dequantized whole (tmp: the f32 row, then the plugin's scratch) */
                float *y = d->nb[0] == 4 ? (float *)drow : tmp;
                qmatmul_dequant_row(a->dtype, srow, len, y, tmp + len + 16);
                if (y == tmp) rows_store_f32(drow, tmp, len, d->nb[0], APR_F32);
            } else if (d->nb[0] == 4) rows_load_f32((float *)drow, srow, len, a->nb[0], a->dtype);
            else {
                rows_load_f32(tmp, srow, len, a->nb[0], a->dtype);
                rows_store_f32(drow, tmp, len, d->nb[0], APR_F32);
            }
        } else if (n->op == APR_OP_CPY) {
            const char *srow = rows_at(a, i1, i2, i3);
            if (a->dtype == d->dtype) convert_copy(drow, d->nb[0], srow, a->nb[0], len, rows_esize(a->dtype));
            else if (d->dtype == APR_F32 && d->nb[0] == 4) rows_load_f32((float *)drow, srow, len, a->nb[0], a->dtype);
            else {
                const float *f = rows_f32(srow, len, a->nb[0], a->dtype, tmp);
                rows_store_f32(drow, f, len, d->nb[0], d->dtype);
            }
        } else { /* CONCAT */
            const int dim = n->iparams[0], esz = rows_esize(d->dtype);
            if (dim == 0) {
                convert_copy(drow, d->nb[0], rows_at(a, i1, i2, i3), a->nb[0], a->ne[0], esz);
                convert_copy(drow + a->ne[0] * d->nb[0], d->nb[0], rows_at(b, i1, i2, i3), b->nb[0], b->ne[0], esz);
            } else {
                int64_t idx[4] = {0, i1, i2, i3};
                const apr_tensor_desc *s = a;
                if (idx[dim] >= a->ne[dim]) { idx[dim] -= a->ne[dim]; s = b; }
                convert_copy(drow, d->nb[0], rows_at(s, idx[1], idx[2], idx[3]), s->nb[0], len, esz);
            }
        }
    }
}

/* CONCAT of dense tensors: for every index above dim, a's block then b's, each one memcpy.
 * Decode joins the cached keys and values to the new token's this way, every layer and token,
 * where a copy per row spends more on its per-row overhead than on copying. */
static bool convert_concat_dense(const apr_node_desc *n) {
    const apr_tensor_desc *a = &n->src[0], *b = &n->src[1], *d = &n->dst;
    if (!opcheck_is_contiguous(a) || !opcheck_is_contiguous(b) || !opcheck_is_contiguous(d)) return false;
    const int dim = n->iparams[0];
    const size_t esz = (size_t)rows_esize(d->dtype);
    size_t ca = esz, cb = esz, outer = 1;
    for (int i = 0; i <= dim; i++) ca *= (size_t)a->ne[i], cb *= (size_t)b->ne[i];
    for (int i = dim + 1; i < APR_MAX_DIMS; i++) outer *= (size_t)d->ne[i];
    char *dst = d->data;
    for (size_t o = 0; o < outer; o++) {
        memcpy(dst, (const char *)a->data + o * ca, ca);
        memcpy(dst + ca, (const char *)b->data + o * cb, cb);
        dst += ca + cb;
    }
    return true;
}

apr_status convert_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *d = &n->dst;
    if (rows_count(d) == 0 || d->ne[0] == 0) return APR_OK;
    if (n->op == APR_OP_CONCAT && convert_concat_dense(n)) return APR_OK;
    if (n->op == APR_OP_GET_ROWS) {
        const apr_tensor_desc *ids = &n->src[1];
        for (int64_t i = 0; i < ids->ne[0]; i++) {
            int32_t id;
            memcpy(&id, (const char *)ids->data + i * ids->nb[0], 4);
            if (id < 0 || id >= n->src[0].ne[1])
                return msg_set(err, err_size, APR_ERR_INVALID, "get_rows: id %d at %lld outside [0, %lld)", id,
                               (long long)i, (long long)n->src[0].ne[1]);
        }
    }
    size_t need = (size_t)(d->ne[0] + 16) * sizeof(float);
    if (n->op == APR_OP_GET_ROWS) need += (size_t)qmatmul_dequant_scratch(d->ne[0]);
    if (cpu_backend_reserve(be, need) != 0) return msg_set(err, err_size, APR_ERR_NOMEM, "convert: cannot allocate scratch");
    convert_job j = {n, be};
    cpu_backend_run(be, convert_worker, &j, rows_count(d) * d->ne[0]);
    return APR_OK;
}

/* ---------------------------------------------------------------- SET_ROWS */

/* Worker ith writes the table rows whose id % nth == ith, walking the ids in order: every row has one
 * writer (no races, no row mixed from two sources), and of repeated ids the last one lands, as in
 * the reference. Consecutive ids (a prefill's cache slots) spread evenly over the workers. */
static void set_rows_worker(void *ctx, int ith, int nth) {
    const convert_job *j = ctx;
    const apr_tensor_desc *t = &j->n->dst, *rows = &j->n->src[1], *ids = &j->n->src[2];
    const int64_t len = t->ne[0];
    float *tmp = (float *)j->be->scratch[ith];
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        int32_t id;
        memcpy(&id, (const char *)ids->data + i * ids->nb[0], 4); /* checked by set_rows_run */
        if (id % nth != ith) continue;
        char *trow = (char *)t->data + (int64_t)id * t->nb[1];
        const char *srow = (const char *)rows->data + i * rows->nb[1];
        if (rows->dtype == t->dtype) convert_copy(trow, t->nb[0], srow, rows->nb[0], len, rows_esize(t->dtype));
        else rows_store_f32(trow, rows_f32(srow, len, rows->nb[0], APR_F32, tmp), len, t->nb[0], t->dtype);
    }
}

apr_status set_rows_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *t = &n->dst, *ids = &n->src[2];
    /* Every id first: a bad one leaves the table as it was, whatever came before it. */
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        int32_t id;
        memcpy(&id, (const char *)ids->data + i * ids->nb[0], 4);
        if (id < 0 || id >= t->ne[1])
            return msg_set(err, err_size, APR_ERR_INVALID, "set_rows: id %d at %lld outside [0, %lld)", id, (long long)i,
                           (long long)t->ne[1]);
    }
    if (t->ne[0] == 0) return APR_OK;
    if (cpu_backend_reserve(be, (size_t)t->ne[0] * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "set_rows: cannot allocate scratch");
    convert_job j = {n, be};
    cpu_backend_run(be, set_rows_worker, &j, ids->ne[0] * t->ne[0]);
    return APR_OK;
}

/* ref_copy.c — reference GET_ROWS, SET_ROWS, CPY and CONCAT: ops that move elements without arithmetic. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../common/msg.h"
#include "../common/opcheck.h"
#include "ref_ops.h"
#include "ref_tensor.h"

apr_status refcopy_get_rows(const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *table = &n->src[0], *ids = &n->src[1], *dst = &n->dst;
    int64_t D = table->ne[0], R = table->ne[1], N = ids->ne[0];
    /* Every id is checked before any row is written, so a bad id leaves dst untouched. */
    for (int64_t i = 0; i < N; i++) {
        int32_t id = reftensor_geti(ids, i, 0, 0, 0);
        if (id < 0 || id >= R)
            return msg_set(err, err_size, APR_ERR_INVALID, "get_rows: ids[%lld] = %d is outside [0, %lld)", (long long)i,
                           (int)id, (long long)R);
    }
    float *row = NULL;
    if (reftensor_is_block(table) && !(row = malloc((size_t)(D ? D : 1) * sizeof(float))))
        return msg_set(err, err_size, APR_ERR_NOMEM, "get_rows: cannot allocate a %lld-float row", (long long)D);
    for (int64_t i = 0; i < N; i++) {
        int32_t id = reftensor_geti(ids, i, 0, 0, 0);
        if (row) reftensor_dequant_row(table, id, 0, 0, row);
        for (int64_t d = 0; d < D; d++) reftensor_setf(dst, d, i, 0, 0, row ? row[d] : reftensor_getf(table, d, id, 0, 0));
    }
    free(row);
    return APR_OK;
}

apr_status refcopy_set_rows(const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *table = &n->dst, *rows = &n->src[1], *ids = &n->src[2];
    int64_t D = table->ne[0], R = table->ne[1], N = ids->ne[0];
    /* Every id is checked before any row is written, so a bad id leaves the table untouched. */
    for (int64_t i = 0; i < N; i++) {
        int32_t id = reftensor_geti(ids, i, 0, 0, 0);
        if (id < 0 || id >= R)
            return msg_set(err, err_size, APR_ERR_INVALID, "set_rows: ids[%lld] = %d is outside [0, %lld)", (long long)i,
                           (int)id, (long long)R);
    }
    /* Same dtype copies bytes (NaN payloads survive); f32 rows round once to the table's dtype. */
    bool same = rows->dtype == table->dtype;
    size_t esize = opcheck_dtype_size(table->dtype);
    for (int64_t i = 0; i < N; i++) {
        int32_t id = reftensor_geti(ids, i, 0, 0, 0);
        for (int64_t d = 0; d < D; d++) {
            const void *from = reftensor_at(rows, d, i, 0, 0);
            void *to = reftensor_at(table, d, id, 0, 0);
            if (same) memcpy(to, from, esize);
            else reftensor_store_f(table->dtype, to, reftensor_load_f(rows->dtype, from));
        }
    }
    return APR_OK;
}

void refcopy_cpy(const apr_node_desc *n) {
    const apr_tensor_desc *a = &n->src[0], *dst = &n->dst;
    /* Same dtype copies bytes, so NaN payloads and i32 survive exactly; otherwise both are floats
     * and f32 holds every f16 and bf16 value, so going through it rounds only once. */
    bool same = a->dtype == dst->dtype;
    size_t esize = opcheck_dtype_size(a->dtype);
    for (int64_t i3 = 0; i3 < dst->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < dst->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < dst->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < dst->ne[0]; i0++) {
                    const void *from = reftensor_at(a, i0, i1, i2, i3);
                    void *to = reftensor_at(dst, i0, i1, i2, i3);
                    if (same) memcpy(to, from, esize);
                    else reftensor_store_f(dst->dtype, to, reftensor_load_f(a->dtype, from));
                }
}

void refcopy_concat(const apr_node_desc *n) {
    const apr_tensor_desc *a = &n->src[0], *b = &n->src[1], *dst = &n->dst;
    int dim = n->iparams[0];
    size_t esize = opcheck_dtype_size(dst->dtype);
    for (int64_t i3 = 0; i3 < dst->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < dst->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < dst->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < dst->ne[0]; i0++) {
                    int64_t i[APR_MAX_DIMS] = {i0, i1, i2, i3};
                    const apr_tensor_desc *from = a;
                    if (i[dim] >= a->ne[dim]) {
                        from = b;
                        i[dim] -= a->ne[dim];
                    }
                    memcpy(reftensor_at(dst, i0, i1, i2, i3), reftensor_at(from, i[0], i[1], i[2], i[3]), esize);
                }
}

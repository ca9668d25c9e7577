/* gguf_tensor.c — tensor infos: reading and checking one (dims, type, size, alignment), checking
 * them all against the data section (bounds, overlaps, unique names), and looking them up. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "gguf_internal.h"

bool gguf_tensor_read_info(gguf_parse *ps, int64_t index, uint64_t alignment, gguf_tensor *t) {
    char q[GGUF_QUOTE_MAX];
    uint64_t name_len, ne[GGUF_MAX_DIMS] = {1, 1, 1, 1}, elems = 1, size;
    uint32_t n_dims, dtype;
    int64_t be, bb;

    snprintf(ps->ctx, sizeof ps->ctx, "tensor #%" PRId64, index);
    if (!gguf_parse_str(ps, "tensor name", GGUF_MAX_KEY_LEN, true, &t->name, &name_len)) return false;
    snprintf(ps->ctx, sizeof ps->ctx, "tensor '%s'", gguf_error_quote(q, sizeof q, t->name, name_len));
    if (!ps->fill) t->name = NULL; /* the first pass has no copy */
    if (!gguf_parse_u32(ps, "n_dims", &n_dims)) return false;
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return gguf_parse_fail(ps, "n_dims %" PRIu32 " is outside 1..%d", n_dims, GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < n_dims; d++) {
        if (!gguf_parse_u64(ps, "a dimension", &ne[d])) return false;
        if (ne[d] > INT64_MAX)
            return gguf_parse_fail(ps, "ne[%" PRIu32 "] = %" PRIu64 " does not fit in int64", d, ne[d]);
    }
    if (!gguf_parse_u32(ps, "the tensor type", &dtype) || !gguf_parse_u64(ps, "the data offset", &t->offset))
        return false;
    if (!apr_gguf_dtype_block(dtype, &be, &bb)) return gguf_parse_fail(ps, "unknown GGML type %" PRIu32, dtype);
    for (uint32_t d = 0; d < n_dims; d++)
        if (__builtin_mul_overflow(elems, ne[d], &elems) || elems > INT64_MAX)
            return gguf_parse_fail(ps, "element count [%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
                                   "] overflows int64", ne[0], ne[1], ne[2], ne[3]);
    if (ne[0] % (uint64_t)be)
        return gguf_parse_fail(ps, "row of %" PRIu64 " elements is not a multiple of the %s block of %" PRId64,
                               ne[0], apr_gguf_dtype_name(dtype), be);
    /* elems / be * bb can still overflow for types whose blocks are larger than their elements. */
    if (__builtin_mul_overflow(elems / (uint64_t)be, (uint64_t)bb, &size) || size > INT64_MAX)
        return gguf_parse_fail(ps, "data size of %" PRIu64 " %s elements overflows int64", elems,
                               apr_gguf_dtype_name(dtype));
    if (t->offset % alignment)
        return gguf_parse_fail(ps, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                               t->offset, alignment);
    t->dtype = dtype;
    t->n_dims = (int)n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = (int64_t)ne[d];
    t->size = size;
    t->data = NULL;
    return true;
}

static int tensor_cmp_name(const void *a, const void *b, void *ctx) {
    const gguf_tensor *t = ctx;
    return strcmp(t[*(const int64_t *)a].name, t[*(const int64_t *)b].name);
}

static int tensor_cmp_offset(const void *a, const void *b, void *ctx) {
    const gguf_tensor *t = ctx, *x = &t[*(const int64_t *)a], *y = &t[*(const int64_t *)b];
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->size < y->size ? -1 : x->size > y->size;
}

apr_status gguf_tensor_check_all(gguf_file *f, apr_error *err) {
    char q[GGUF_QUOTE_MAX], q2[GGUF_QUOTE_MAX];
    gguf_tensor *t = f->tensors;
    int64_t n = f->n_tensors, *idx = f->tensor_sorted;
    uint64_t data_size = f->size > f->data_offset ? f->size - f->data_offset : 0;

    for (int64_t i = 0; i < n; i++) {
        if (t[i].offset > data_size || t[i].size > data_size - t[i].offset)
            return apr_error_set(err, APR_ERR_FORMAT,
                                  "%s: tensor '%s': data [offset %" PRIu64 ", %" PRIu64 " bytes] runs past the end of"
                                  " the file (data section of %" PRIu64 " bytes at file offset %" PRIu64 ")",
                                  f->path, gguf_error_quote(q, sizeof q, t[i].name, strlen(t[i].name)), t[i].offset,
                                  t[i].size, data_size, f->data_offset);
        uint64_t at = f->data_offset + t[i].offset;
        t[i].data = f->base + (at < f->size ? at : f->size);
        idx[i] = i;
    }
    /* Overlaps: sorted by offset, each tensor with data must end before the next one starts. */
    qsort_r(idx, (size_t)n, sizeof *idx, tensor_cmp_offset, t);
    int64_t last = -1;
    for (int64_t k = 0; k < n; k++) {
        const gguf_tensor *b = &t[idx[k]];
        if (b->size == 0) continue;
        if (last >= 0) {
            const gguf_tensor *a = &t[last];
            if (a->offset + a->size > b->offset)
                return apr_error_set(err, APR_ERR_FORMAT,
                                      "%s: tensor '%s': data [offset %" PRIu64 ", %" PRIu64 " bytes] overlaps tensor '%s'"
                                      " [offset %" PRIu64 ", %" PRIu64 " bytes]",
                                      f->path, gguf_error_quote(q, sizeof q, b->name, strlen(b->name)), b->offset,
                                      b->size, gguf_error_quote(q2, sizeof q2, a->name, strlen(a->name)), a->offset,
                                      a->size);
        }
        last = idx[k];
    }
    /* Unique names; the sorted order then serves apr_gguf_tensor_find. */
    qsort_r(idx, (size_t)n, sizeof *idx, tensor_cmp_name, t);
    for (int64_t k = 1; k < n; k++)
        if (strcmp(t[idx[k - 1]].name, t[idx[k]].name) == 0)
            return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': duplicate tensor name (tensors #%" PRId64
                                  " and #%" PRId64 ")", f->path,
                                  gguf_error_quote(q, sizeof q, t[idx[k]].name, strlen(t[idx[k]].name)),
                                  idx[k - 1] < idx[k] ? idx[k - 1] : idx[k], idx[k - 1] < idx[k] ? idx[k] : idx[k - 1]);
    return APR_OK;
}

LLM_API int64_t apr_gguf_tensor_count(const gguf_file *f) { return f->n_tensors; }

LLM_API const gguf_tensor *apr_gguf_tensor_at(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

LLM_API const gguf_tensor *apr_gguf_tensor_find(const gguf_file *f, const char *name) {
    int64_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[f->tensor_sorted[mid]].name, name);
        if (c == 0) return &f->tensors[f->tensor_sorted[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

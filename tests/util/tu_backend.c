/* tu_backend.c — drives one backend directly through its plugin table: which backends there are, one-node cases, guarded runs, result comparison. */
#include "tu_backend.h"

#include <inttypes.h>
#include <stddef.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool tu_fail(char *msg, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool tu_fail(char *msg, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, size, fmt, ap);
    va_end(ap);
    return false;
}

bool tu_backend_open(apr_registry *reg, const char *name, int n_threads, tu_backend *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    apr_error e;
    if (apr_backend_open(reg, name, n_threads, &out->be, &e) != APR_OK)
        return tu_fail(err, err_size, "cannot open backend '%s': %s", name, e.msg);
    out->api = apr_backend_plugin(out->be);
    out->inst = apr_backend_instance(out->be);
    out->name = apr_backend_name(out->be);
    if (!out->api || !out->api->supports || !out->api->compute || !out->api->buffer_alloc || !out->api->buffer_free ||
        !out->api->buffer_write || !out->api->buffer_read) {
        apr_backend_close(out->be);
        memset(out, 0, sizeof *out);
        return tu_fail(err, err_size, "backend '%s' lacks a required plugin slot", name);
    }
    return true;
}

void tu_backend_close(tu_backend *b) {
    if (b->be) apr_backend_close(b->be);
    memset(b, 0, sizeof *b);
}

void tu_backend_list_scan(tu_backend_list *out) {
    memset(out, 0, sizeof *out);
    apr_registry *reg = NULL;
    apr_error e;
    if (apr_registry_open(NULL, &reg, &e) != APR_OK) return;
    for (int i = 0; i < apr_registry_count(reg) && out->n < TU_MAX_BACKENDS; i++) {
        const apr_plugin_record *rec = apr_registry_record(reg, i);
        if (!strcmp(rec->name, TU_REFERENCE)) continue;
        if (rec->state != APR_PLUGIN_OK) {
            size_t len = strlen(out->rejected);
            snprintf(out->rejected + len, sizeof out->rejected - len, "%s%s: %s", len ? "; " : "", rec->name, rec->reason);
            continue;
        }
        snprintf(out->name[out->n++], sizeof out->name[0], "%s", rec->name);
    }
    apr_registry_close(reg);
}

const char *tu_op_name(uint32_t op) {
    static const char *const names[] = {
        "none", "get_rows", "matmul", "add", "mul", "scale", "rms_norm", "rope", "softmax", "silu", "gelu",
        "swiglu", "attention", "cpy", "concat", "argmax", "set_rows", "adamw", "matmul_grad_x", "matmul_grad_w",
        "get_rows_grad", "sum_repeats", "rms_norm_grad", "rope_grad", "softmax_grad", "silu_grad", "gelu_grad",
        "attention_grad", "cross_entropy", "cross_entropy_grad", "sgd", "acc"};
    _Static_assert(sizeof names / sizeof names[0] == APR_OP_COUNT_V5, "a name for every op");
    return op < sizeof names / sizeof names[0] ? names[op] : "?";
}

/* ---------------------------------------------------------------- building a case */

void tu_node_init(tu_node *n, uint32_t op, uint32_t n_src) {
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_src = n_src;
}

tu_tensor *tu_node_src(tu_node *n, int i, uint32_t dtype, int64_t a, int64_t b, int64_t c, int64_t d, tu_layout lay) {
    tu_tensor_init(&n->src[i], dtype, (const int64_t[APR_MAX_DIMS]){a, b, c, d}, lay);
    return &n->src[i];
}

tu_tensor *tu_node_dst(tu_node *n, uint32_t dtype, int64_t a, int64_t b, int64_t c, int64_t d, tu_layout lay) {
    tu_tensor_init(&n->dst, dtype, (const int64_t[APR_MAX_DIMS]){a, b, c, d}, lay);
    return &n->dst;
}

void tu_node_name(tu_node *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->name, sizeof n->name, fmt, ap);
    va_end(ap);
}

void tu_node_text(const tu_node *n, char *out, size_t size) {
    int len = snprintf(out, size, "%s %s:", tu_op_name(n->op), n->name);
    for (uint32_t i = 0; i < n->n_src && len >= 0 && (size_t)len < size; i++) {
        char d[96] = "none";
        if (n->src[i].present) tu_tensor_describe(&n->src[i], d, sizeof d);
        len += snprintf(out + len, size - (size_t)len, " src%u=%s", (unsigned)i, d);
    }
    if (len >= 0 && (size_t)len < size) {
        char d[96];
        tu_tensor_describe(&n->dst, d, sizeof d);
        snprintf(out + len, size - (size_t)len, " -> %s", d);
    }
}

void tu_node_poison_masked_keys(tu_node *n) {
    const tu_tensor *m = &n->src[3];
    for (int64_t j = 0; j < m->ne[0]; j++) {
        bool all = true;
        for (int64_t t = 0; t < m->ne[1] && all; t++) all = tu_getf(m, j, t, 0, 0) == -INFINITY;
        if (!all) continue;
        for (int kv = 1; kv <= 2; kv++)
            for (int64_t h = 0; h < n->src[kv].ne[2]; h++)
                for (int64_t d = 0; d < n->src[kv].ne[0]; d++) tu_setf(&n->src[kv], d, j, h, 0, NAN);
    }
}

void tu_node_free(tu_node *n) {
    for (int i = 0; i < TU_MAX_SRC; i++) tu_tensor_free(&n->src[i]);
    tu_tensor_free(&n->dst);
}

/* ---------------------------------------------------------------- one guarded run */

/* One tensor's buffer on the backend, and the host image written into it. */
typedef struct tu_slot {
    apr_buffer buf;
    bool allocated;
    unsigned char *image; /* TU_GUARD + storage + TU_GUARD bytes */
    uint64_t total;
} tu_slot;

static void tu_desc(apr_tensor_desc *d, const tu_tensor *t, const apr_buffer *buf, uint64_t offset) {
    memset(d, 0, sizeof *d);
    d->struct_size = sizeof *d;
    d->dtype = t->dtype;
    for (int k = 0; k < APR_MAX_DIMS; k++) {
        d->ne[k] = t->ne[k];
        d->nb[k] = t->nb[k];
    }
    d->buffer = buf;
    d->offset = offset;
    /* Never assume host visibility: data exists only when the backend says so. */
    d->data = buf && (buf->flags & APR_BUFFER_HOST_VISIBLE) && buf->host_ptr ? (char *)buf->host_ptr + offset : NULL;
}

/* An absent optional source: a v1-sized desc whose buffer is NULL. */
static void tu_desc_absent(apr_tensor_desc *d) {
    memset(d, 0, sizeof *d);
    d->struct_size = sizeof *d;
    d->dtype = APR_F32;
    for (int k = 0; k < APR_MAX_DIMS; k++) {
        d->ne[k] = 1;
        d->nb[k] = 4;
    }
}

static void tu_node_desc(apr_node_desc *nd, const tu_node *n) {
    memset(nd, 0, sizeof *nd);
    nd->struct_size = sizeof *nd;
    nd->op = n->op;
    nd->n_src = n->n_src;
    memcpy(nd->iparams, n->iparams, sizeof nd->iparams);
    memcpy(nd->fparams, n->fparams, sizeof nd->fparams);
    nd->name = n->name;
    for (int i = 0; i < APR_MAX_SRC; i++) tu_desc_absent(&nd->src[i]);
    for (int i = 0; i < APR_MAX_SRC_EXT; i++) tu_desc_absent(&nd->src_ext[i]);
}

/* Source i of a node desc: src, then src_ext. */
static apr_tensor_desc *tu_src_slot(apr_node_desc *nd, int i) {
    return i < APR_MAX_SRC ? &nd->src[i] : &nd->src_ext[i - APR_MAX_SRC];
}

/* Describes the first byte that differs between a and b in [0, n), relative to the tensor. */
static int64_t tu_first_diff(const unsigned char *a, const unsigned char *b, uint64_t n, const unsigned char *skip) {
    for (uint64_t k = 0; k < n; k++)
        if (a[k] != b[k] && !(skip && skip[k])) return (int64_t)k;
    return -1;
}

tu_outcome tu_node_run(const tu_backend *b, const tu_node *n, apr_status expect, unsigned char *out, char *msg,
                       size_t msg_size) {
    const apr_plugin *api = b->api;
    apr_node_desc nd;
    tu_node_desc(&nd, n);
    msg[0] = 0;

    /* supports() sees shapes, strides and dtypes but no memory: a size-0 placeholder buffer. */
    apr_buffer placeholder = {.struct_size = sizeof placeholder};
    for (uint32_t i = 0; i < n->n_src; i++)
        if (n->src[i].present) tu_desc(tu_src_slot(&nd, (int)i), &n->src[i], &placeholder, n->src[i].offset);
    tu_desc(&nd.dst, &n->dst, &placeholder, n->dst.offset);
    nd.dst.data = NULL;
    for (uint32_t i = 0; i < n->n_src; i++) tu_src_slot(&nd, (int)i)->data = NULL;
    if (n->in_place) {
        if (n->pack_src0 || n->n_src == 0 || !n->src[0].present) {
            snprintf(msg, msg_size, "harness misuse: in_place needs a present src0 and no pack_src0");
            return TU_BROKEN;
        }
        nd.dst = nd.src[0]; /* the very same desc: the core hands an in-place node its table this way */
    }
    char why[512] = "";
    apr_status st = api->supports(b->inst, &nd, why, sizeof why);
    if (st != APR_OK) {
        snprintf(msg, msg_size, "%s (%s)", why[0] ? why : "no reason given", apr_status_name(st));
        return TU_DECLINED;
    }

    /* Slot TU_MAX_SRC is dst. */
    tu_slot slots[TU_MAX_SRC + 1];
    memset(slots, 0, sizeof slots);
    const tu_tensor *tens[TU_MAX_SRC + 1];
    for (int i = 0; i < TU_MAX_SRC; i++) tens[i] = i < (int)n->n_src && n->src[i].present ? &n->src[i] : NULL;
    tens[TU_MAX_SRC] = n->in_place ? NULL : &n->dst; /* in place: dst lives in src0's buffer */
    tu_outcome result = TU_BROKEN;
    apr_buffer packed = {.struct_size = sizeof packed};
    bool have_packed = false;
    unsigned char *readback = NULL, *mask = NULL;
    char err[512] = "";

    for (int i = 0; i <= TU_MAX_SRC; i++) {
        const tu_tensor *t = tens[i];
        if (!t) continue;
        tu_slot *s = &slots[i];
        s->total = TU_GUARD + t->size + TU_GUARD;
        s->image = malloc(s->total);
        if (!s->image) { snprintf(msg, msg_size, "harness out of memory"); goto done; }
        memset(s->image, TU_GUARD_BYTE, s->total);
        if (i == TU_MAX_SRC) tu_tensor_poison(t, s->image + TU_GUARD); /* dst: NaN everywhere */
        else memcpy(s->image + TU_GUARD, t->data, t->size);
        s->buf.struct_size = sizeof s->buf;
        st = api->buffer_alloc(b->inst, s->total, &s->buf, err, sizeof err);
        if (st != APR_OK) {
            snprintf(msg, msg_size, "buffer_alloc(%llu) failed: %s: %s", (unsigned long long)s->total, apr_status_name(st), err);
            goto done;
        }
        s->allocated = true;
        st = api->buffer_write(b->inst, &s->buf, 0, s->image, s->total, err, sizeof err);
        if (st != APR_OK) {
            snprintf(msg, msg_size, "buffer_write failed: %s: %s", apr_status_name(st), err);
            goto done;
        }
        if (i == TU_MAX_SRC) tu_desc(&nd.dst, t, &s->buf, TU_GUARD + t->offset);
        else tu_desc(tu_src_slot(&nd, i), t, &s->buf, TU_GUARD + t->offset);
    }
    if (n->in_place) nd.dst = nd.src[0];

    if (n->pack_src0) {
        if (api->struct_size < offsetof(apr_plugin, weight_pack) + sizeof api->weight_pack || api->abi_version < 3 ||
            !api->weight_pack) {
            snprintf(msg, msg_size, "the plugin has no weight_pack slot");
            result = TU_DECLINED;
            goto done;
        }
        packed.struct_size = sizeof packed;
        st = api->weight_pack(b->inst, &nd.src[0], &packed, err, sizeof err);
        if (st == APR_ERR_UNSUPPORTED) {
            snprintf(msg, msg_size, "weight_pack declined: %s", err);
            result = TU_DECLINED;
            goto done;
        }
        if (st != APR_OK) {
            snprintf(msg, msg_size, "weight_pack failed: %s: %s", apr_status_name(st), err);
            goto done;
        }
        have_packed = true;
        if (!(packed.flags & APR_BUFFER_PACKED)) {
            snprintf(msg, msg_size, "weight_pack returned a buffer without APR_BUFFER_PACKED");
            goto done;
        }
        nd.src[0].buffer = &packed;
        nd.src[0].offset = 0;
        nd.src[0].data = packed.flags & APR_BUFFER_HOST_VISIBLE ? packed.host_ptr : NULL;
    }

    apr_subgraph g = {.struct_size = sizeof g, .node_stride = sizeof nd, .n_nodes = 1, .nodes = &nd};
    err[0] = 0;
    st = api->compute(b->inst, &g, err, sizeof err);
    if (st != expect) {
        snprintf(msg, msg_size, "compute returned %s, want %s%s%s", apr_status_name(st), apr_status_name(expect),
                 err[0] ? ": " : "", err);
        goto done;
    }
    if (st != APR_OK && !err[0]) {
        snprintf(msg, msg_size, "compute returned %s without a message", apr_status_name(st));
        goto done;
    }

    /* Read everything back: sources must be untouched, dst only at its elements. */
    for (int i = 0; i <= TU_MAX_SRC; i++) {
        const tu_tensor *t = tens[i];
        if (!t) continue;
        tu_slot *s = &slots[i];
        free(readback);
        readback = malloc(s->total);
        if (!readback) { snprintf(msg, msg_size, "harness out of memory"); goto done; }
        st = api->buffer_read(b->inst, &s->buf, 0, readback, s->total, err, sizeof err);
        if (st != APR_OK) {
            snprintf(msg, msg_size, "buffer_read failed: %s: %s", apr_status_name(st), err);
            goto done;
        }
        const unsigned char *skip = NULL;
        /* The tensor written: dst, or src0 when the node writes in place; and any further source it writes. */
        const bool further = n->in_place && i > 0 && i < TU_MAX_SRC && (n->written >> i & 1u);
        const bool written = (n->in_place ? i == 0 : i == TU_MAX_SRC) || further;
        if (written) {
            free(mask);
            mask = calloc(1, s->total);
            if (!mask) { snprintf(msg, msg_size, "harness out of memory"); goto done; }
            tu_tensor_element_mask(t, mask + TU_GUARD);
            skip = mask;
        }
        int64_t k = tu_first_diff(readback, s->image, s->total, skip);
        if (k >= 0) {
            const char *where = k < TU_GUARD ? "guard before" : (uint64_t)k >= s->total - TU_GUARD ? "guard after" : "gap inside";
            if (written)
                snprintf(msg, msg_size, "%s%.0d: byte %lld of the buffer (%s the tensor, storage byte %lld) changed from 0x%02x to 0x%02x",
                         further ? "src" : n->in_place ? "src0 (dst in place)" : "dst", further ? i : 0, (long long)k, where,
                         (long long)k - TU_GUARD, s->image[k], readback[k]);
            else
                snprintf(msg, msg_size, "src%d was modified: buffer byte %lld (storage byte %lld) 0x%02x -> 0x%02x", i,
                         (long long)k, (long long)k - TU_GUARD, s->image[k], readback[k]);
            goto done;
        }
        if (further) memcpy(n->written_out[i], readback + TU_GUARD, t->size);
        else if (written) memcpy(out, readback + TU_GUARD, t->size);
    }
    result = TU_RAN;

done:
    if (have_packed) api->buffer_free(b->inst, &packed);
    for (int i = 0; i <= TU_MAX_SRC; i++) {
        if (slots[i].allocated) api->buffer_free(b->inst, &slots[i].buf);
        free(slots[i].image);
    }
    free(readback);
    free(mask);
    return result;
}

/* ---------------------------------------------------------------- comparison */

static void tu_index_text(const tu_tensor *t, int64_t k, char *out, size_t size) {
    int64_t i[APR_MAX_DIMS];
    tu_tensor_index(t, k, i);
    snprintf(out, size, "[%lld,%lld,%lld,%lld]", (long long)i[0], (long long)i[1], (long long)i[2], (long long)i[3]);
}

tu_cmp_result tu_compare(const tu_tensor *layout, const unsigned char *got, const unsigned char *want,
                         tu_cmp_mode mode, double max_nmse) {
    tu_cmp_result r = {.ok = true};
    int64_t n = tu_tensor_nelements(layout), i[APR_MAX_DIMS];
    size_t es = tu_dtype_size(layout->dtype);
    bool is_float = tu_dtype_is_float(layout->dtype);
    double sum_d2 = 0.0, sum_b2 = 0.0;
    char idx[64];
    for (int64_t k = 0; k < n; k++) {
        tu_tensor_index(layout, k, i);
        uint64_t off = tu_tensor_byte(layout, i);
        if (!is_float) {
            int32_t a, b;
            memcpy(&a, got + off, 4);
            memcpy(&b, want + off, 4);
            if (a != b && r.n_bad++ == 0) {
                tu_index_text(layout, k, idx, sizeof idx);
                snprintf(r.msg, sizeof r.msg, "element %s is %" PRId32 ", want %" PRId32, idx, a, b);
            }
            continue;
        }
        float a = tu_load_f(layout->dtype, got + off), b = tu_load_f(layout->dtype, want + off);
        const char *rule = NULL;
        if (isnan(a) != isnan(b)) rule = isnan(a) ? "NaN where the reference has a number" : "a number where the reference has NaN";
        else if (isnan(a)) continue;
        else if ((isinf(a) || isinf(b)) && a != b) rule = "inf on one side only or of opposite sign";
        else if (mode == TU_CMP_EXACT && memcmp(got + off, want + off, es) != 0) rule = "bits differ";
        if (rule) {
            if (r.n_bad++ == 0) {
                tu_index_text(layout, k, idx, sizeof idx);
                snprintf(r.msg, sizeof r.msg, "%s: element %s is %.9g, want %.9g", rule, idx, (double)a, (double)b);
            }
            continue;
        }
        if (isinf(a)) continue; /* equal infinities */
        double d = (double)a - (double)b;
        sum_d2 += d * d;
        sum_b2 += (double)b * (double)b;
    }
    if (r.n_bad) {
        r.ok = false;
        char first[320];
        snprintf(first, sizeof first, "%s", r.msg);
        snprintf(r.msg, sizeof r.msg, "%lld of %lld elements wrong; first %.250s", (long long)r.n_bad, (long long)n, first);
        return r;
    }
    if (mode == TU_CMP_EXACT || !is_float) return r;
    /* An all-zero expectation is matched only exactly. */
    r.nmse = sum_b2 > 0.0 ? sum_d2 / sum_b2 : (sum_d2 > 0.0 ? INFINITY : 0.0);
    if (!(r.nmse <= max_nmse)) {
        r.ok = false;
        /* Name the element that contributes most, which usually points at the bug. */
        double worst = -1.0;
        int64_t wk = 0;
        for (int64_t k = 0; k < n; k++) {
            tu_tensor_index(layout, k, i);
            uint64_t off = tu_tensor_byte(layout, i);
            double d = (double)tu_load_f(layout->dtype, got + off) - (double)tu_load_f(layout->dtype, want + off);
            if (d * d > worst) { worst = d * d; wk = k; }
        }
        tu_tensor_index(layout, wk, i);
        uint64_t off = tu_tensor_byte(layout, i);
        tu_index_text(layout, wk, idx, sizeof idx);
        snprintf(r.msg, sizeof r.msg, "nmse %.3g > %.3g; worst element %s is %.9g, want %.9g", r.nmse, max_nmse, idx,
                 (double)tu_load_f(layout->dtype, got + off), (double)tu_load_f(layout->dtype, want + off));
    }
    return r;
}

bool tu_all_finite(const tu_tensor *layout, const unsigned char *data, char *msg, size_t msg_size) {
    if (!tu_dtype_is_float(layout->dtype)) return true;
    int64_t n = tu_tensor_nelements(layout), i[APR_MAX_DIMS];
    for (int64_t k = 0; k < n; k++) {
        tu_tensor_index(layout, k, i);
        float v = tu_load_f(layout->dtype, data + tu_tensor_byte(layout, i));
        if (!isfinite(v)) {
            char idx[64];
            tu_index_text(layout, k, idx, sizeof idx);
            snprintf(msg, msg_size, "element %s is %g", idx, (double)v);
            return false;
        }
    }
    return true;
}

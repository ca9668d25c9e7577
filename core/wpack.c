/* wpack.c — weights a backend keeps in a layout of its own (the ABI 3 weight_pack slot): a
 * reference-counted table per backend, keyed by the weight's data pointer, that plans look up. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define WPACK_MIN_ABI 3          /* the plugin ABI that added weight_pack */
#define WPACK_MIN_BUCKETS 64     /* a model has a few hundred weights: one or two doublings */

struct apr_wpack_entry {
    const void *data;            /* the caller's weight memory: the key */
    apr_dtype dtype;             /* as packed */
    int64_t ne[APR_MAX_DIMS];    /* elements per dim as packed, unused dims 1 */
    int64_t refs;                /* apr_backend_pack_weight calls not yet undone (> 0) */
    apr_buffer packed;           /* the plugin's copy, freed with its buffer_free. Plans point at it,
                                  * so an entry is allocated on its own and never moves. */
    struct apr_wpack_entry *next; /* the next entry in the same hash chain */
};

/* Fibonacci hashing: the multiply carries the pointer's varying middle bits into the high half. */
static size_t wpack_bucket(const apr_backend *be, const void *data) {
    uint64_t h = (uint64_t)(uintptr_t)data * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (be->n_pack_buckets - 1);
}

/* The link that points at data's entry, or the NULL link that ends its chain. */
static apr_wpack_entry **wpack_link(const apr_backend *be, const void *data) {
    apr_wpack_entry **link = &be->packs[wpack_bucket(be, data)];
    while (*link && (*link)->data != data) link = &(*link)->next;
    return link;
}

static apr_wpack_entry *wpack_find(const apr_backend *be, const void *data) {
    return be->n_packs ? *wpack_link(be, data) : NULL;
}

/* Makes room for one more entry: doubles the buckets when the chains would average more than one. */
static bool wpack_reserve(apr_backend *be) {
    if (be->n_packs < be->n_pack_buckets) return true;
    size_t n = be->n_pack_buckets ? 2 * be->n_pack_buckets : WPACK_MIN_BUCKETS;
    apr_wpack_entry **buckets = calloc(n, sizeof *buckets);
    if (!buckets) return false;
    apr_wpack_entry **old = be->packs;
    size_t n_old = be->n_pack_buckets;
    be->packs = buckets;
    be->n_pack_buckets = n;
    for (size_t i = 0; i < n_old; i++) {
        for (apr_wpack_entry *e = old[i], *next; e; e = next) {
            next = e->next;
            apr_wpack_entry **head = &buckets[wpack_bucket(be, e->data)];
            e->next = *head;
            *head = e;
        }
    }
    free(old);
    return true;
}

/* Frees an entry already unlinked from its chain, and its packed copy. */
static void wpack_drop(apr_backend *be, apr_wpack_entry *e) {
    be->packed_bytes -= (int64_t)e->packed.size; /* before buffer_free, which may clear size */
    be->n_packs--;
    be->api->buffer_free(be->inst, &e->packed);
    free(e);
}

/* The shape with unused dims 1, or an error naming what is wrong with the arguments. */
static apr_status wpack_check(apr_dtype t, int n_dims, const int64_t *ne, const void *data, const char *name,
                              int64_t shape[APR_MAX_DIMS], apr_error *err) {
    if (!data) return apr_error_set(err, APR_ERR_INVALID, "pack of %s: data is NULL", name);
    if (!apr_dtype_name(t)) return apr_error_set(err, APR_ERR_INVALID, "pack of %s: unknown dtype %d", name, (int)t);
    if (!ne || n_dims < 1 || n_dims > APR_MAX_DIMS)
        return apr_error_set(err, APR_ERR_INVALID, "pack of %s: %d dimensions (1..%d allowed)", name, ne ? n_dims : 0,
                             APR_MAX_DIMS);
    int64_t total = 1;
    for (int i = 0; i < APR_MAX_DIMS; i++) {
        shape[i] = i < n_dims ? ne[i] : 1;
        if (shape[i] < 1 || shape[i] > (INT64_C(1) << 40) || total > INT64_MAX / shape[i])
            return apr_error_set(err, APR_ERR_INVALID, "pack of %s: dimension %d has invalid size %lld", name, i,
                                 (long long)shape[i]);
        total *= shape[i];
    }
    if (shape[0] % apr_dtype_block_elems(t))
        return apr_error_set(err, APR_ERR_INVALID, "pack of %s: a row of %lld is not a multiple of the %s block", name,
                             (long long)shape[0], apr_dtype_name(t));
    return APR_OK;
}

/* Hands the weight to the plugin; on APR_OK e->packed holds its copy. */
static apr_status wpack_call(apr_backend *be, apr_wpack_entry *e, const char *name, apr_error *err) {
    const apr_plugin *api = be->api;
    int64_t row = apr_dtype_row_bytes(e->dtype, e->ne[0]);
    apr_tensor_desc w;
    memset(&w, 0, sizeof w);
    w.struct_size = sizeof w;
    w.dtype = (uint32_t)e->dtype;
    memcpy(w.ne, e->ne, sizeof w.ne);
    w.nb[0] = apr_dtype_block_bytes(e->dtype); /* contiguous; blocks along dim 0 for block dtypes */
    w.nb[1] = row;
    for (int i = 2; i < APR_MAX_DIMS; i++) w.nb[i] = w.nb[i - 1] * w.ne[i - 1];
    uint64_t bytes = (uint64_t)(row * e->ne[1]);
    /* the plugin reads data through w.data; the buffer is its own import of it when it can make
     * one, else a host-visible placeholder that it must not free */
    apr_buffer src = {.struct_size = sizeof src};
    char msg[256] = "";
    bool imported = APR_PLUGIN_HAS(api, buffer_import) &&
                    api->buffer_import(be->inst, (void *)e->data, bytes, &src, msg, sizeof msg) == APR_OK;
    if (!imported) {
        src = (apr_buffer){.struct_size = sizeof src, .flags = APR_BUFFER_HOST_VISIBLE | APR_BUFFER_IMPORTED,
                           .size = bytes, .host_ptr = (void *)e->data};
    }
    w.buffer = &src;
    w.offset = 0;
    w.data = (void *)e->data;
    msg[0] = 0;
    e->packed = (apr_buffer){.struct_size = sizeof e->packed};
    apr_status s = api->weight_pack(be->inst, &w, &e->packed, msg, sizeof msg);
    if (imported) api->buffer_free(be->inst, &src);
    if (s == APR_ERR_UNSUPPORTED)
        return apr_error_set(err, s, "%s: backend %s does not pack it: %s", name, be->slot->name,
                             msg[0] ? msg : "no reason given");
    if (s != APR_OK)
        return apr_error_set(err, s, "%s: backend %s failed to pack it: %s", name, be->slot->name,
                             msg[0] ? msg : apr_status_name(s));
    if (!(e->packed.flags & APR_BUFFER_PACKED)) {
        /* without the flag the core could not tell the copy from an ordinary buffer */
        api->buffer_free(be->inst, &e->packed);
        return apr_error_set(err, APR_ERR_ABI, "%s: backend %s packed it into a buffer without APR_BUFFER_PACKED", name,
                             be->slot->name);
    }
    return APR_OK;
}

APR_API apr_status apr_backend_pack_weight(apr_backend *be, apr_dtype t, int n_dims, const int64_t *ne, const void *data,
                                           const char *name, apr_error *err) {
    if (!name || !*name) name = "weight";
    if (!be) return apr_error_set(err, APR_ERR_INVALID, "pack of %s: no backend", name);
    int64_t shape[APR_MAX_DIMS];
    apr_status s = wpack_check(t, n_dims, ne, data, name, shape, err);
    if (s != APR_OK) return s;
    apr_wpack_entry *e = wpack_find(be, data);
    if (e) {
        if (e->dtype != t || memcmp(e->ne, shape, sizeof shape) != 0)
            return apr_error_set(err, APR_ERR_INVALID,
                                 "pack of %s: its data is already packed on %s as %s [%lld, %lld, %lld, %lld]", name,
                                 be->slot->name, apr_dtype_name(e->dtype), (long long)e->ne[0], (long long)e->ne[1],
                                 (long long)e->ne[2], (long long)e->ne[3]);
        e->refs++;
        return APR_OK;
    }
    if (be->api->abi_version < WPACK_MIN_ABI || !APR_PLUGIN_HAS(be->api, weight_pack))
        return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: backend %s keeps no packed weights (its plugin, ABI %u, has no weight_pack)",
                             name, be->slot->name, be->api->abi_version);
    if (shape[2] != 1 || shape[3] != 1)
        return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: only 2-D weights are packed, not [%lld, %lld, %lld, %lld]",
                             name, (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3]);
    e = calloc(1, sizeof *e);
    if (!e || !wpack_reserve(be)) {
        free(e);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory packing %s", name);
    }
    e->data = data;
    e->dtype = t;
    memcpy(e->ne, shape, sizeof e->ne);
    e->refs = 1;
    s = wpack_call(be, e, name, err);
    if (s != APR_OK) {
        free(e);
        return s;
    }
    apr_wpack_entry **head = &be->packs[wpack_bucket(be, data)];
    e->next = *head;
    *head = e;
    be->n_packs++;
    be->packed_bytes += (int64_t)e->packed.size;
    return APR_OK;
}

APR_API void apr_backend_unpack_weight(apr_backend *be, const void *data) {
    if (!be || !data || !be->n_packs) return;
    apr_wpack_entry **link = wpack_link(be, data);
    apr_wpack_entry *e = *link;
    if (!e) return;
    assert(e->refs > 0);
    if (--e->refs > 0) return;
    *link = e->next;
    wpack_drop(be, e);
}

APR_API int64_t apr_backend_packed_bytes(const apr_backend *be) { return be ? be->packed_bytes : 0; }

const apr_buffer *apr_wpack_lookup(const apr_backend *be, const struct apr_tensor *w) {
    if (!be->n_packs || w->kind != APR_KIND_WEIGHT) return NULL; /* views never match */
    const apr_wpack_entry *e = wpack_find(be, w->data);
    if (!e || e->dtype != w->dtype || memcmp(e->ne, w->ne, sizeof e->ne) != 0) return NULL;
    /* a weight leaf is contiguous, so the same shape means the same layout as was packed */
    assert(w->base == w && apr_tensor_is_contiguous(w));
    return &e->packed;
}

void apr_wpack_release_all(apr_backend *be) {
    for (size_t i = 0; i < be->n_pack_buckets; i++) {
        for (apr_wpack_entry *e = be->packs[i], *next; e; e = next) {
            next = e->next;
            wpack_drop(be, e);
        }
    }
    assert(be->n_packs == 0 && be->packed_bytes == 0);
    free(be->packs);
    be->packs = NULL;
    be->n_pack_buckets = 0;
}

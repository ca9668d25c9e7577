/* backend_weight.c — weights that live on a backend for good: placed (imported or uploaded once) and
 * packed into a layout of the plugin's own (the ABI 3 weight_pack slot), in a reference-counted
 * table per backend keyed by the weight's data pointer, that plans look up. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define WPACK_MIN_ABI 3          /* the plugin ABI that added weight_pack */
#define WPACK_MIN_BUCKETS 64     /* a model has a few hundred weights: one or two doublings */

struct apr_weight_entry {
    const void *data;            /* the caller's weight memory: the key */
    apr_dtype dtype;             /* as placed or packed */
    int64_t ne[APR_MAX_DIMS];    /* elements per dim, unused dims 1 */
    int64_t refs;                /* place / pack calls not yet released (> 0) */
    bool has_packed, has_plain;  /* which of the two copies below exist */
    bool plain_uploaded;         /* plain is the plugin's own buffer holding a copy (not an import) */
    apr_buffer packed;           /* the plugin's packed copy, freed with its buffer_free. Plans point at
                                  * these, so an entry is allocated on its own and never moves. */
    apr_buffer plain;            /* the weight in its own layout: an import of data or an upload */
    struct apr_weight_entry *next; /* the next entry in the same hash chain */
};

/* Fibonacci hashing: the multiply carries the pointer's varying middle bits into the high half. */
static size_t wpack_bucket(const apr_backend *be, const void *data) {
    uint64_t h = (uint64_t)(uintptr_t)data * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (be->n_pack_buckets - 1);
}

/* The link that points at data's entry, or the NULL link that ends its chain. */
static apr_weight_entry **wpack_link(const apr_backend *be, const void *data) {
    apr_weight_entry **link = &be->packs[wpack_bucket(be, data)];
    while (*link && (*link)->data != data) link = &(*link)->next;
    return link;
}

static apr_weight_entry *wpack_find(const apr_backend *be, const void *data) {
    return be->n_packs ? *wpack_link(be, data) : NULL;
}

/* Makes room for one more entry: doubles the buckets when the chains would average more than one. */
static bool wpack_reserve(apr_backend *be) {
    if (be->n_packs < be->n_pack_buckets) return true;
    size_t n = be->n_pack_buckets ? 2 * be->n_pack_buckets : WPACK_MIN_BUCKETS;
    apr_weight_entry **buckets = calloc(n, sizeof *buckets);
    if (!buckets) return false;
    apr_weight_entry **old = be->packs;
    size_t n_old = be->n_pack_buckets;
    be->packs = buckets;
    be->n_pack_buckets = n;
    for (size_t i = 0; i < n_old; i++) {
        for (apr_weight_entry *e = old[i], *next; e; e = next) {
            next = e->next;
            apr_weight_entry **head = &buckets[wpack_bucket(be, e->data)];
            e->next = *head;
            *head = e;
        }
    }
    free(old);
    return true;
}

/* Frees an entry already unlinked from its chain, and its copies. */
static void wpack_drop(apr_backend *be, apr_weight_entry *e) {
    if (e->has_packed) {
        be->packed_bytes -= (int64_t)e->packed.size; /* before buffer_free, which may clear size */
        be->api->buffer_free(be->inst, &e->packed);
    }
    if (e->has_plain) {
        if (e->plain_uploaded) be->uploaded_bytes -= (int64_t)e->plain.size;
        be->api->buffer_free(be->inst, &e->plain);
    }
    be->n_packs--;
    free(e);
}

static uint64_t wpack_bytes(const apr_weight_entry *e) {
    return (uint64_t)(apr_dtype_row_bytes(e->dtype, e->ne[0]) * e->ne[1] * e->ne[2] * e->ne[3]);
}

/* Gives e its copy in its own layout: an import where the backend computes from host memory, else
 * an upload into a buffer of usage weights. */
static apr_status wpack_place(apr_backend *be, apr_weight_entry *e, const char *name, apr_error *err) {
    const apr_plugin *api = be->api;
    uint64_t bytes = wpack_bytes(e);
    char msg[256] = "";
    e->plain = (apr_buffer){.struct_size = sizeof e->plain};
    if (apr_backend_computes_on_host(be) &&
        api->buffer_import(be->inst, (void *)e->data, bytes, &e->plain, msg, sizeof msg) == APR_OK) {
        e->has_plain = true;
        return APR_OK;
    }
    /* an import the backend refuses (alignment, say) falls back to an upload */
    e->plain = (apr_buffer){.struct_size = sizeof e->plain};
    apr_status s = apr_backend_alloc(be, bytes, APR_MEM_DEVICE, APR_USAGE_WEIGHTS, &e->plain, msg, sizeof msg);
    if (s != APR_OK)
        return apr_error_set(err, s, "%s: backend %s cannot hold its %llu bytes: %s", name, be->slot->name,
                             (unsigned long long)bytes, PLUGIN_MSG(msg));
    s = api->buffer_write(be->inst, &e->plain, 0, e->data, bytes, msg, sizeof msg);
    if (s != APR_OK) {
        api->buffer_free(be->inst, &e->plain);
        return apr_error_set(err, s, "%s: upload to backend %s failed: %s", name, be->slot->name, PLUGIN_MSG(msg));
    }
    e->has_plain = e->plain_uploaded = true;
    be->uploaded_bytes += (int64_t)e->plain.size;
    return APR_OK;
}

/* Links a new entry into be's table. */
static void wpack_link_new(apr_backend *be, apr_weight_entry *e) {
    apr_weight_entry **head = &be->packs[wpack_bucket(be, e->data)];
    e->next = *head;
    *head = e;
    be->n_packs++;
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
static apr_status wpack_call(apr_backend *be, apr_weight_entry *e, const char *name, apr_error *err) {
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
                             PLUGIN_MSG(msg)[0] ? msg : "no reason given");
    if (s != APR_OK)
        return apr_error_set(err, s, "%s: backend %s failed to pack it: %s", name, be->slot->name,
                             PLUGIN_MSG(msg)[0] ? msg : apr_status_name(s));
    if (!(e->packed.flags & APR_BUFFER_PACKED)) {
        /* without the flag the core could not tell the copy from an ordinary buffer */
        api->buffer_free(be->inst, &e->packed);
        return apr_error_set(err, APR_ERR_ABI, "%s: backend %s packed it into a buffer without APR_BUFFER_PACKED", name,
                             be->slot->name);
    }
    e->has_packed = true;
    be->packed_bytes += (int64_t)e->packed.size;
    return APR_OK;
}

/* Why be cannot pack a weight of this shape at all, or NULL. */
static apr_status wpack_can_pack(const apr_backend *be, const int64_t shape[APR_MAX_DIMS], const char *name,
                                 apr_error *err) {
    if (be->api->abi_version < WPACK_MIN_ABI || !APR_PLUGIN_HAS(be->api, weight_pack))
        return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: backend %s keeps no packed weights (its plugin, ABI %u, has no weight_pack)",
                             name, be->slot->name, be->api->abi_version);
    if (shape[2] != 1 || shape[3] != 1)
        return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: only 2-D weights are packed, not [%lld, %lld, %lld, %lld]",
                             name, (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3]);
    return APR_OK;
}

/* The entry of data, checked against the dtype and shape asked for; NULL and *s = APR_OK when there is none. */
static apr_weight_entry *wpack_existing(apr_backend *be, apr_dtype t, const int64_t shape[APR_MAX_DIMS], const void *data,
                                        const char *name, apr_status *s, apr_error *err) {
    *s = APR_OK;
    apr_weight_entry *e = wpack_find(be, data);
    if (e && (e->dtype != t || memcmp(e->ne, shape, sizeof e->ne) != 0)) {
        *s = apr_error_set(err, APR_ERR_INVALID, "%s: its data is already packed or placed on %s as %s [%lld, %lld, %lld, %lld]", name,
                           be->slot->name, apr_dtype_name(e->dtype), (long long)e->ne[0], (long long)e->ne[1],
                           (long long)e->ne[2], (long long)e->ne[3]);
        return NULL;
    }
    return e;
}

static apr_weight_entry *wpack_new_entry(apr_backend *be, apr_dtype t, const int64_t shape[APR_MAX_DIMS], const void *data) {
    apr_weight_entry *e = calloc(1, sizeof *e);
    if (!e || !wpack_reserve(be)) {
        free(e);
        return NULL;
    }
    e->data = data;
    e->dtype = t;
    memcpy(e->ne, shape, sizeof e->ne);
    return e;
}

APR_API apr_status apr_backend_pack_weight(apr_backend *be, apr_dtype t, int n_dims, const int64_t *ne, const void *data,
                                           const char *name, apr_error *err) {
    if (!name || !*name) name = "weight";
    if (!be) return apr_error_set(err, APR_ERR_INVALID, "pack of %s: no backend", name);
    int64_t shape[APR_MAX_DIMS];
    apr_status s = wpack_check(t, n_dims, ne, data, name, shape, err);
    if (s != APR_OK) return s;
    apr_weight_entry *e = wpack_existing(be, t, shape, data, name, &s, err);
    if (s != APR_OK) return s;
    if (e && e->has_packed) {
        e->refs++;
        return APR_OK;
    }
    if ((s = wpack_can_pack(be, shape, name, err)) != APR_OK) return s;
    if (e) { /* placed before, not packed yet */
        if ((s = wpack_call(be, e, name, err)) != APR_OK) return s;
        e->refs++;
        return APR_OK;
    }
    if (!(e = wpack_new_entry(be, t, shape, data))) return apr_error_set(err, APR_ERR_NOMEM, "out of memory packing %s", name);
    if ((s = wpack_call(be, e, name, err)) != APR_OK) {
        free(e);
        return s;
    }
    e->refs = 1;
    wpack_link_new(be, e);
    return APR_OK;
}

APR_API apr_status apr_backend_place_weight(apr_backend *be, apr_dtype t, int n_dims, const int64_t *ne, const void *data,
                                            unsigned flags, const char *name, apr_error *err) {
    if (!name || !*name) name = "weight";
    if (!be) return apr_error_set(err, APR_ERR_INVALID, "placing %s: no backend", name);
    int64_t shape[APR_MAX_DIMS];
    apr_status s = wpack_check(t, n_dims, ne, data, name, shape, err);
    if (s != APR_OK) return s;
    apr_weight_entry *e = wpack_existing(be, t, shape, data, name, &s, err);
    if (s != APR_OK) return s;
    bool fresh = !e;
    if (fresh && !(e = wpack_new_entry(be, t, shape, data)))
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory placing %s", name);
    apr_error quiet;
    if ((flags & APR_PLACE_PACK) && !e->has_packed && wpack_can_pack(be, shape, name, &quiet) == APR_OK) {
        s = wpack_call(be, e, name, err);
        if (s == APR_ERR_UNSUPPORTED) s = APR_OK; /* no packed layout for this one: it is read as it is */
    }
    /* a packed copy serves the matmuls; a backend off the host does without a second, plain copy
     * (plans upload it for other uses), while on the host the import costs nothing */
    if (s == APR_OK && !e->has_plain && (!e->has_packed || apr_backend_computes_on_host(be))) s = wpack_place(be, e, name, err);
    if (s != APR_OK) {
        if (fresh) {
            if (e->has_packed) {
                be->packed_bytes -= (int64_t)e->packed.size;
                be->api->buffer_free(be->inst, &e->packed);
            }
            free(e);
        }
        return s;
    }
    e->refs++;
    if (fresh) wpack_link_new(be, e);
    return APR_OK;
}

APR_API void apr_backend_unpack_weight(apr_backend *be, const void *data) {
    if (!be || !data || !be->n_packs) return;
    apr_weight_entry **link = wpack_link(be, data);
    apr_weight_entry *e = *link;
    if (!e) return;
    assert(e->refs > 0);
    if (--e->refs > 0) return;
    *link = e->next;
    wpack_drop(be, e);
}

APR_API void apr_backend_release_weight(apr_backend *be, const void *data) { apr_backend_unpack_weight(be, data); }

APR_API int64_t apr_backend_packed_bytes(const apr_backend *be) { return be ? be->packed_bytes : 0; }
APR_API int64_t apr_backend_uploaded_bytes(const apr_backend *be) { return be ? be->uploaded_bytes : 0; }

static const apr_weight_entry *wpack_lookup(const apr_backend *be, const struct apr_tensor *w) {
    if (!be->n_packs || w->kind != APR_KIND_WEIGHT || w->is_state) return NULL; /* views never match */
    const apr_weight_entry *e = wpack_find(be, w->data);
    if (!e || e->dtype != w->dtype || memcmp(e->ne, w->ne, sizeof e->ne) != 0) return NULL;
    /* a weight leaf is contiguous, so the same shape means the same layout as was placed */
    assert(w->base == w && apr_tensor_is_contiguous(w));
    return e;
}

const apr_buffer *apr_weight_packed(const apr_backend *be, const struct apr_tensor *w) {
    const apr_weight_entry *e = wpack_lookup(be, w);
    return e && e->has_packed ? &e->packed : NULL;
}

const apr_buffer *apr_weight_placed(const apr_backend *be, const struct apr_tensor *w) {
    const apr_weight_entry *e = wpack_lookup(be, w);
    return e && e->has_plain ? &e->plain : NULL;
}

void apr_weight_release_all(apr_backend *be) {
    for (size_t i = 0; i < be->n_pack_buckets; i++) {
        for (apr_weight_entry *e = be->packs[i], *next; e; e = next) {
            next = e->next;
            wpack_drop(be, e);
        }
    }
    assert(be->n_packs == 0 && be->packed_bytes == 0 && be->uploaded_bytes == 0);
    free(be->packs);
    be->packs = NULL;
    be->n_pack_buckets = 0;
}

/* backend.c — instances of usable plugins, opened by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void backend_list_usable(const apr_registry *reg, char *out, size_t size) {
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < reg->n_slots; i++)
        if (reg->slots[i].api && len < size)
            len += (size_t)snprintf(out + len, size - len, "%s%s", len ? ", " : "", reg->slots[i].name);
    if (!len) snprintf(out, size, "none (run apr-probe to see why)");
}

APR_API apr_status apr_backend_open(apr_registry *reg, const char *name, int n_threads, apr_backend **out,
                                    apr_error *err) {
    *out = NULL;
    char usable[256];
    if (!name) {
        name = apr_registry_default(reg);
        if (!name) return apr_error_set(err, APR_ERR_NOT_FOUND, "no usable backend found in %s (run apr-probe to see why)",
                                      reg->search_path);
    }
    const apr_plugin_slot *slot = NULL, *rejected = NULL;
    for (int i = 0; i < reg->n_slots; i++) {
        /* "name" also opens the first usable device of a plugin that lists "name:i" */
        if (strcmp(reg->slots[i].name, name) != 0 && strcmp(reg->slots[i].plugin_name, name) != 0) continue;
        if (reg->slots[i].api) { slot = &reg->slots[i]; break; }
        if (!rejected) rejected = &reg->slots[i];
    }
    if (!slot) {
        backend_list_usable(reg, usable, sizeof usable);
        if (rejected)
            return apr_error_set(err, APR_ERR_NOT_FOUND, "backend '%s' is not usable here (%s: %s); usable backends: %s",
                               name, rejected->path, rejected->reason, usable);
        return apr_error_set(err, APR_ERR_NOT_FOUND, "unknown backend '%s'; usable backends: %s", name, usable);
    }
    if (n_threads < 0) return apr_error_set(err, APR_ERR_INVALID, "thread count %d is negative", n_threads);
    apr_backend *be = calloc(1, sizeof *be);
    if (!be) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    be->reg = reg;
    be->slot = slot;
    be->api = slot->api;
    be->n_threads = n_threads ? n_threads : reg->host.n_physical_cores;
    be->device = slot->rec.device > 0 ? slot->rec.device : 0;
    pthread_mutex_init(&be->arena_lock, NULL);
    apr_backend_config cfg = {.struct_size = sizeof cfg, .n_threads = be->n_threads, .host = &reg->host,
                              .device = be->device};
    char msg[256] = "";
    apr_status st = be->api->create(&cfg, &be->inst, msg, sizeof msg);
    msg[sizeof msg - 1] = 0; /* the plugin may have filled it without a terminator */
    if (st != APR_OK) {
        pthread_mutex_destroy(&be->arena_lock);
        free(be);
        return apr_error_set(err, st, "backend '%s' (%s) failed to start: %s", name, slot->path,
                           msg[0] ? msg : apr_status_name(st));
    }
    *out = be;
    return APR_OK;
}

APR_API void apr_backend_close(apr_backend *be) {
    if (!be) return;
    apr_weight_release_all(be); /* the plugin frees its copies while the instance still exists */
    apr_arena_release(be);
    pthread_mutex_destroy(&be->arena_lock);
    be->api->destroy(be->inst);
    free(be);
}

APR_API const char *apr_backend_name(const apr_backend *be) { return be->slot->name; }
APR_API int apr_backend_threads(const apr_backend *be) { return be->n_threads; }
APR_API const apr_plugin *apr_backend_plugin(const apr_backend *be) { return be->api; }
APR_API void *apr_backend_instance(const apr_backend *be) { return be->inst; }

bool apr_backend_computes_on_host(const apr_backend *be) {
    const apr_plugin *api = be->api;
    if (!APR_PLUGIN_HAS(api, buffer_import)) return false;
    /* before ABI 4 a plugin offering import meant host memory; since, it says so */
    if (api->abi_version < 4) return true;
    return api->struct_size >= offsetof(apr_plugin, caps) + sizeof api->caps && (api->caps & APR_CAP_HOST_MEMORY);
}

apr_status apr_backend_alloc(apr_backend *be, uint64_t size, apr_memory_kind kind, apr_buffer_usage usage,
                             apr_buffer *out, char *msg, size_t msg_size) {
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    if (be->api->abi_version >= 4 && APR_PLUGIN_HAS(be->api, buffer_alloc_ex)) {
        apr_buffer_request req = {.struct_size = sizeof req, .kind = (uint32_t)kind, .usage = (uint32_t)usage, .size = size};
        apr_status s = be->api->buffer_alloc_ex(be->inst, &req, out, msg, msg_size);
        if (s != APR_ERR_UNSUPPORTED || kind == APR_MEM_DEVICE) return s;
        memset(out, 0, sizeof *out);
        out->struct_size = sizeof *out;
    }
    return be->api->buffer_alloc(be->inst, size, out, msg, msg_size);
}

APR_API apr_status apr_backend_synchronize(apr_backend *be, apr_error *err) {
    if (!APR_PLUGIN_ASYNC(be->api)) return APR_OK;
    char msg[256] = "";
    apr_status s = be->api->synchronize(be->inst, msg, sizeof msg);
    msg[sizeof msg - 1] = 0;
    if (s != APR_OK) return apr_error_set(err, s, "%s: synchronize failed: %s", be->slot->name, msg[0] ? msg : apr_status_name(s));
    return APR_OK;
}

APR_API bool apr_backend_can_set_rows(apr_backend *be, apr_dtype table, apr_dtype rows, char *why, size_t why_size) {
    static const apr_buffer none = {.struct_size = sizeof(apr_buffer)};
    apr_node_desc n;
    memset(&n, 0, sizeof n);
    n.struct_size = sizeof n;
    n.op = APR_OP_SET_ROWS;
    n.n_src = 3;
    const apr_dtype dt[3] = {table, rows, APR_I32};
    for (int i = 0; i < 3; i++) {
        apr_tensor_desc *d = &n.src[i];
        d->struct_size = sizeof *d;
        d->dtype = (uint32_t)dt[i];
        d->ne[0] = i == 2 ? 1 : 64;
        d->ne[1] = i == 0 ? 2 : 1;
        d->ne[2] = d->ne[3] = 1;
        d->nb[0] = apr_dtype_block_bytes(dt[i]);
        for (int k = 1; k < APR_MAX_DIMS; k++) d->nb[k] = d->nb[k - 1] * d->ne[k - 1];
        d->buffer = &none;
    }
    n.dst = n.src[0];
    n.name = "set_rows";
    if (why && why_size) why[0] = 0;
    if (be->api->abi_version < 4) {
        if (why) snprintf(why, why_size, "plugin ABI %u predates SET_ROWS", be->api->abi_version);
        return false;
    }
    char msg[160] = "";
    if (be->api->supports(be->inst, &n, msg, sizeof msg) == APR_OK) return true;
    msg[sizeof msg - 1] = 0;
    if (why) snprintf(why, why_size, "%s", msg[0] ? msg : "declined");
    return false;
}

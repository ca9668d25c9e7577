/* plan_run.c — the executor's running: inputs in, copies between backends, each split's compute
 * (or its plugin-side plan), outputs out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"

/* ---------------------------------------------------------------- running */

static const plan_store *plan_find_store(const apr_plan *p, const apr_tensor *t) {
    if (!t || t->id >= p->g->n_tensors || p->g->tensors[t->id] != t) return NULL;
    int i = p->store_of[t->base->id];
    return i >= 0 ? &p->stores[i] : NULL;
}

/* Waits for the asynchronous writes the plan queued from its input buffers, before they change. */
static apr_status plan_settle(apr_plan *p, apr_error *err) {
    for (int b = 0; b < p->n_backends; b++) {
        if (!p->pending[b]) continue;
        apr_status s = apr_backend_synchronize(p->backends[b], err);
        if (s != APR_OK) return s;
        p->pending[b] = false;
    }
    return APR_OK;
}

APR_API apr_status apr_plan_set_input(apr_plan *p, const apr_tensor *t, const void *data, size_t bytes,
                                      apr_error *err) {
    const plan_store *st = plan_find_store(p, t);
    if (!st || t->kind != APR_KIND_INPUT)
        return apr_error_set(err, APR_ERR_INVALID, "%s is not an input this plan reads", t ? t->name : "(null)");
    if ((int64_t)bytes != st->bytes)
        return apr_error_set(err, APR_ERR_INVALID, "input %s takes %lld bytes, %zu given", t->name, (long long)st->bytes, bytes);
    apr_status s = plan_settle(p, err);
    if (s != APR_OK) return s;
    memcpy(st->host, data, bytes);
    return APR_OK;
}

/* Writes host bytes into backend b's arena: queued where the plugin is asynchronous and the bytes
 * stay put until the next plan_settle (stable), else at once. */
static apr_status plan_write(apr_plan *p, int b, uint64_t offset, const void *src, int64_t bytes, bool stable, char *msg,
                             size_t msg_size) {
    apr_backend *to = p->backends[b];
    if (stable && APR_PLUGIN_ASYNC(to->api) && APR_PLUGIN_HAS(to->api, buffer_write_async)) {
        p->pending[b] = true;
        return to->api->buffer_write_async(to->inst, &p->arena[b], offset, src, (uint64_t)bytes, msg, msg_size);
    }
    return to->api->buffer_write(to->inst, &p->arena[b], offset, src, (uint64_t)bytes, msg, msg_size);
}

/* Whether the plugin's events are all there (they come as a set). */
static bool plan_has_events(const apr_plugin *api) {
    return APR_PLUGIN_ASYNC(api) && APR_PLUGIN_HAS(api, event_create) && APR_PLUGIN_HAS(api, event_record) &&
           APR_PLUGIN_HAS(api, event_wait) && APR_PLUGIN_HAS(api, event_free);
}

/* A copy from backend `from` to a peer instance of the same plugin, device to device: the
 * destination waits for an event recorded on the source, so the host never waits. UNSUPPORTED
 * when the two are not peers or the plugin cannot reach the source from the destination. */
static apr_status plan_peer_copy(apr_plan *p, int from, int b, const apr_buffer *src, uint64_t src_off, uint64_t dst_off,
                                 uint64_t n, char *msg, size_t msg_size) {
    apr_backend *f = p->backends[from], *to = p->backends[b];
    if (f->api != to->api || !APR_PLUGIN_HAS(to->api, buffer_copy) || !plan_has_events(to->api)) return APR_ERR_UNSUPPORTED;
    apr_status s = APR_OK;
    if (!p->event[from]) s = f->api->event_create(f->inst, &p->event[from], msg, msg_size);
    if (s == APR_OK) s = f->api->event_record(f->inst, p->event[from], msg, msg_size);
    if (s == APR_OK) s = to->api->event_wait(to->inst, p->event[from], msg, msg_size);
    if (s == APR_OK) s = to->api->buffer_copy(to->inst, src, src_off, &p->arena[b], dst_off, n, msg, msg_size);
    return s;
}

/* Fills the mirror of store i on backend b from wherever the store lives: host memory straight in;
 * another backend's memory directly when one side can address the other, else through the plan's
 * staging buffer. */
static apr_status plan_fill(apr_plan *p, int i, int b, apr_error *err) {
    plan_store *st = &p->stores[i];
    const uint64_t dst_off = st->loc[b].offset, n = (uint64_t)st->bytes;
    apr_backend *to = p->backends[b];
    char msg[256] = "";
    apr_status s;
    uint64_t src_off;
    const apr_buffer *src = plan_home_buffer(st, &src_off);
    if (!src) {
        /* only the plan's own input buffers stay put until the next set_input (plan_settle) */
        s = plan_write(p, b, dst_off, st->host, st->bytes, st->t->kind == APR_KIND_INPUT, msg, sizeof msg);
    } else {
        apr_backend *from = p->backends[st->home];
        s = plan_peer_copy(p, st->home, b, src, src_off, dst_off, n, msg, sizeof msg);
        if (s != APR_ERR_UNSUPPORTED) goto done;
        /* the source's producer may still be running: its results are read only once it is done */
        if ((s = apr_backend_synchronize(from, err)) != APR_OK) return s;
        /* the destination's own copy from memory it can address, else the host's hands */
        s = APR_ERR_UNSUPPORTED;
        if (src->host_ptr && to->api->abi_version >= 4 && APR_PLUGIN_HAS(to->api, buffer_copy))
            s = to->api->buffer_copy(to->inst, src, src_off, &p->arena[b], dst_off, n, msg, sizeof msg);
        if (s == APR_ERR_UNSUPPORTED && src->host_ptr) {
            s = to->api->buffer_write(to->inst, &p->arena[b], dst_off, (const char *)src->host_ptr + src_off, n, msg, sizeof msg);
        } else if (s == APR_ERR_UNSUPPORTED && p->arena[b].host_ptr) {
            if ((s = apr_backend_synchronize(to, err)) != APR_OK) return s;
            s = from->api->buffer_read(from->inst, src, src_off, (char *)p->arena[b].host_ptr + dst_off, n, msg, sizeof msg);
        } else if (s == APR_ERR_UNSUPPORTED) {
            s = from->api->buffer_read(from->inst, src, src_off, p->staging, n, msg, sizeof msg);
            if (s == APR_OK) s = to->api->buffer_write(to->inst, &p->arena[b], dst_off, p->staging, n, msg, sizeof msg);
        }
    }
done:
    if (s != APR_OK) return apr_error_set(err, s, "copy of %s to %s failed: %s", st->t->name, apr_backend_name(to), PLUGIN_MSG(msg));
    return APR_OK;
}

APR_API apr_status apr_plan_run(apr_plan *p, apr_error *err) {
    for (int k = 0; k < p->n_splits; k++) {
        plan_split *sp = &p->splits[k];
        for (int f = 0; f < sp->n_fills; f++) {
            apr_status s = plan_fill(p, sp->fills[f], sp->backend, err);
            if (s) return s;
        }
        apr_backend *be = p->backends[sp->backend];
        char msg[256] = "";
        apr_status s;
        if (sp->plugin_plan) {
            s = be->api->plan_compute(be->inst, sp->plugin_plan, msg, sizeof msg);
        } else {
            sp->sg.flags = sp->ran ? APR_SUBGRAPH_CHECKED : 0;
            s = be->api->compute(be->inst, &sp->sg, msg, sizeof msg);
        }
        if (s == APR_OK) sp->ran = true;
        if (s != APR_OK)
            return apr_error_set(err, s, "%s failed running nodes %s..%s: %s", apr_backend_name(be),
                               p->steps[sp->first_step]->name, p->steps[sp->first_step + sp->n_steps - 1]->name,
                               PLUGIN_MSG(msg)[0] ? msg : apr_status_name(s));
    }
    return APR_OK;
}

APR_API apr_status apr_plan_get_output(apr_plan *p, const apr_tensor *t, void *dst, size_t bytes, apr_error *err) {
    const plan_store *st = plan_find_store(p, t);
    if (!st || !t->is_output) return apr_error_set(err, APR_ERR_INVALID, "%s is not an output of this plan", t ? t->name : "(null)");
    if (!apr_tensor_is_contiguous(t))
        return apr_error_set(err, APR_ERR_INVALID, "output %s is a strided view; make it contiguous with apr_cast", t->name);
    int64_t size = apr_dtype_row_bytes(t->dtype, t->ne[0]) * t->ne[1] * t->ne[2] * t->ne[3];
    if ((int64_t)bytes != size)
        return apr_error_set(err, APR_ERR_INVALID, "output %s has %lld bytes, %zu asked for", t->name, (long long)size, bytes);
    int64_t off = t->kind == APR_KIND_VIEW ? t->view_offset : 0;
    uint64_t home_off;
    const apr_buffer *home = plan_home_buffer(st, &home_off);
    if (!home) { memcpy(dst, (const char *)st->host + off, bytes); return APR_OK; }
    apr_backend *be = p->backends[st->home];
    char msg[256] = "";
    apr_status s = be->api->buffer_read(be->inst, home, home_off + (uint64_t)off, dst, bytes, msg, sizeof msg);
    if (s != APR_OK) return apr_error_set(err, s, "reading output %s from %s: %s", t->name, apr_backend_name(be), PLUGIN_MSG(msg));
    return APR_OK;
}

APR_API void apr_plan_stats_get(const apr_plan *p, apr_plan_stats *out) {
    memset(out, 0, sizeof *out);
    out->n_nodes = p->n_steps;
    out->n_splits = p->n_splits;
    out->n_copies = p->n_copies;
    for (int b = 0; b < p->n_backends; b++) out->peak_bytes += p->arena_bytes[b];
    out->unshared_bytes = p->unshared_bytes;
    out->n_weight_uploads = p->n_weight_uploads;
    for (int k = 0; k < p->n_splits; k++) out->n_plugin_plans += p->splits[k].plugin_plan != NULL;
}

APR_API const apr_backend *apr_plan_placement(const apr_plan *p, const apr_tensor *t) {
    for (int s = 0; s < p->n_steps; s++)
        if (p->steps[s] == t) return p->backends[p->step_backend[s]];
    return NULL;
}

APR_API void apr_plan_dump(const apr_plan *p, void *file) {
    FILE *f = file;
    apr_plan_stats st;
    apr_plan_stats_get(p, &st);
    fprintf(f, "plan: %d nodes in %d splits, %d copies per run, arena %lld bytes (%lld without reuse)\n", st.n_nodes,
            st.n_splits, st.n_copies, (long long)st.peak_bytes, (long long)st.unshared_bytes);
    for (int k = 0; k < p->n_splits; k++) {
        const plan_split *sp = &p->splits[k];
        fprintf(f, "  split %d on %s: %d nodes (%s .. %s)", k, apr_backend_name(p->backends[sp->backend]), sp->n_steps,
                p->steps[sp->first_step]->name, p->steps[sp->first_step + sp->n_steps - 1]->name);
        int n_packed = 0;
        for (int s = sp->first_step; s < sp->first_step + sp->n_steps; s++)
            if (p->descs[s].op == APR_OP_MATMUL && p->descs[s].src[0].buffer &&
                (p->descs[s].src[0].buffer->flags & APR_BUFFER_PACKED))
                n_packed++;
        if (n_packed) fprintf(f, "; %d matmuls read packed weights", n_packed);
        for (int i = 0; i < sp->n_fills; i++)
            fprintf(f, "%s%s", i ? ", " : "; copies in: ", p->stores[sp->fills[i]].t->name);
        fputc('\n', f);
    }
}

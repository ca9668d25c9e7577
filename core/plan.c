/* plan.c — the executor's planning: orders a graph, places nodes on backends, decides how each
 * backend reaches each tensor, plans memory by liveness and builds the node descriptors (running
 * them is plan_run.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"

static const apr_buffer plan_placeholder = {.struct_size = sizeof(apr_buffer)};

static apr_tensor_desc plan_shape_desc(const struct apr_tensor *t) {
    apr_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.dtype = (uint32_t)t->dtype;
    memcpy(d.ne, t->ne, sizeof d.ne);
    memcpy(d.nb, t->nb, sizeof d.nb);
    d.buffer = &plan_placeholder;
    return d;
}

static apr_node_desc plan_node_shape(const struct apr_tensor *t) {
    apr_node_desc n;
    memset(&n, 0, sizeof n);
    n.struct_size = sizeof n;
    n.op = (uint32_t)t->op;
    n.n_src = (uint32_t)t->n_src;
    memcpy(n.iparams, t->iparams, sizeof n.iparams);
    memcpy(n.fparams, t->fparams, sizeof n.fparams);
    n.dst = plan_shape_desc(t);
    for (int i = 0; i < t->n_src; i++)
        if (t->src[i]) *plan_src_slot(&n, i) = plan_shape_desc(t->src[i]);
    n.name = t->name;
    return n;
}

/* A zeroed buffer struct for backend; it joins the plan's list once plan_own_commit is called. */
static apr_buffer *plan_own_buffer(apr_plan *p, int backend) {
    if (p->n_owned == p->cap_owned) {
        int cap = p->cap_owned ? 2 * p->cap_owned : 16;
        apr_buffer **nb = realloc(p->owned_bufs, (size_t)cap * sizeof *nb);
        if (!nb) return NULL;
        for (int i = p->cap_owned; i < cap; i++) nb[i] = NULL;
        p->owned_bufs = nb;
        int *ob = realloc(p->owned_backend, (size_t)cap * sizeof *ob);
        if (!ob) return NULL;
        p->owned_backend = ob;
        p->cap_owned = cap;
    }
    apr_buffer *b = p->owned_bufs[p->n_owned] ? p->owned_bufs[p->n_owned] : calloc(1, sizeof *b);
    if (!b) return NULL;
    memset(b, 0, sizeof *b);
    b->struct_size = sizeof *b;
    p->owned_bufs[p->n_owned] = b;
    p->owned_backend[p->n_owned] = backend;
    return b;
}

/* Keeps the buffer from plan_own_buffer once the plugin has filled it; an uncommitted one is
 * reused by the next plan_own_buffer call or freed with the plan. */
static void plan_own_commit(apr_plan *p) { p->n_owned++; }

APR_API void apr_plan_free(apr_plan *p) {
    if (!p) return;
    /* queued work may still read the plan's buffers */
    for (int b = 0; b < p->n_backends; b++) apr_backend_synchronize(p->backends[b], NULL);
    for (int k = 0; k < p->n_splits; k++) {
        apr_backend *be = p->backends[p->splits[k].backend];
        if (p->splits[k].plugin_plan) be->api->plan_free(be->inst, p->splits[k].plugin_plan);
    }
    for (int b = 0; b < p->n_backends; b++)
        if (p->event[b]) p->backends[b]->api->event_free(p->backends[b]->inst, p->event[b]);
    free(p->staging);
    for (int i = 0; i < p->n_owned; i++) {
        apr_backend *be = p->backends[p->owned_backend[i]];
        be->api->buffer_free(be->inst, p->owned_bufs[i]);
    }
    for (int i = 0; i < p->cap_owned; i++) free(p->owned_bufs ? p->owned_bufs[i] : NULL);
    for (int b = 0; b < p->n_backends; b++)
        if (p->arena_bytes[b]) apr_arena_give(p->backends[b], &p->arena[b]);
    for (int i = 0; i < p->n_stores; i++)
        if (p->stores[i].t->kind == APR_KIND_INPUT) free(p->stores[i].host);
    for (int i = 0; i < p->n_splits; i++) free(p->splits[i].fills);
    free(p->splits);
    free(p->stores);
    free(p->store_of);
    free(p->steps);
    free(p->step_backend);
    free(p->owned_bufs);
    free(p->owned_backend);
    free(p->descs);
    free(p);
}

/* ---------------------------------------------------------------- planning steps */

/* Keeps the op nodes an output depends on, in creation order (a topological order). */
static apr_status plan_order(apr_plan *p, apr_error *err) {
    apr_graph *g = p->g;
    char *needed = calloc((size_t)g->n_tensors + 1, 1);
    p->steps = calloc((size_t)g->n_tensors + 1, sizeof *p->steps);
    p->step_backend = calloc((size_t)g->n_tensors + 1, sizeof *p->step_backend);
    if (!needed || !p->steps || !p->step_backend) {
        free(needed);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory planning the graph");
    }
    int n_out = 0;
    for (int i = 0; i < g->n_tensors; i++)
        if (g->tensors[i]->is_output) { needed[i] = 1; n_out++; }
    for (int i = g->n_tensors - 1; i >= 0; i--) {
        if (!needed[i]) continue;
        struct apr_tensor *t = g->tensors[i];
        needed[t->base->id] = 1;
        if (t->view_of) needed[t->view_of->id] = 1;
        for (int s = 0; s < t->n_src; s++)
            if (t->src[s]) needed[t->src[s]->id] = 1;
    }
    for (int i = 0; i < g->n_tensors; i++)
        if (needed[i] && g->tensors[i]->kind == APR_KIND_OP) p->steps[p->n_steps++] = g->tensors[i];
    free(needed);
    if (!n_out) return apr_error_set(err, APR_ERR_INVALID, "the graph has no outputs (call apr_graph_output)");
    return APR_OK;
}

/* The index of be in the plan's list, or -1. */
static int plan_backend_index(const apr_plan *p, const apr_backend *be) {
    for (int b = 0; b < p->n_backends; b++)
        if (p->backends[b] == be) return b;
    return -1;
}

/* Why backend b may not run node t whatever its supports() says, or NULL: an in-place write runs
 * where every leaf it writes lives (resident) or on a backend that reaches host memory in place
 * (state); more than four sources need a plugin whose node desc has src_ext. */
static const char *plan_forbids(const apr_plan *p, const struct apr_tensor *t, int b) {
    const apr_backend *be = p->backends[b];
    for (int i = 0; i < t->n_src; i++) {
        if (!(t->written >> i & 1u)) continue;
        const struct apr_tensor *leaf = t->src[i]->base;
        if (leaf->kind == APR_KIND_RESIDENT && leaf->mem->be != be) return "a leaf it writes lives on another backend";
        if (leaf->kind != APR_KIND_RESIDENT && !apr_backend_computes_on_host(be))
            return "it writes host state in place, which this backend cannot reach";
    }
    if (t->n_src > APR_MAX_SRC && be->api->abi_version < 4) return "more than 4 sources need a plugin of ABI >= 4";
    if (t->op >= APR_OP_COUNT_V4 && be->api->abi_version < 5) return "a gradient or training op needs a plugin of ABI >= 5";
    return NULL;
}

static apr_status plan_place(apr_plan *p, apr_error *err) {
    for (int s = 0; s < p->n_steps; s++) {
        struct apr_tensor *t = p->steps[s];
        apr_node_desc n = plan_node_shape(t);
        char reasons[400] = "";
        size_t len = 0;
        int chosen = -1;
        for (int b = 0; b < p->n_backends && chosen < 0; b++) {
            apr_backend *be = p->backends[b];
            char why[160] = "";
            const char *no = plan_forbids(p, t, b);
            if (no) snprintf(why, sizeof why, "%s", no);
            else if (be->api->supports(be->inst, &n, why, sizeof why) == APR_OK) chosen = b;
            if (chosen < 0 && len < sizeof reasons)
                len += (size_t)snprintf(reasons + len, sizeof reasons - len, "%s%s: %s", len ? "; " : "",
                                        apr_backend_name(be), PLUGIN_MSG(why)[0] ? why : "declined");
        }
        if (chosen < 0)
            return apr_error_set(err, APR_ERR_UNSUPPORTED, "no backend can run node %s: %s", t->name, reasons);
        p->step_backend[s] = chosen;
    }
    return APR_OK;
}

/* Sets up the store of base, a tensor that owns storage, at p->stores[p->n_stores]. */
static apr_status plan_new_store(apr_plan *p, struct apr_tensor *base, const int *step_of, apr_error *err) {
    plan_store *st = &p->stores[p->n_stores];
    st->t = base;
    st->bytes = apr_tensor_storage_bytes(base);
    st->writer = -1;
    st->home = PLAN_HOST;
    st->first = 0;
    if (base->kind == APR_KIND_OP) {
        st->home = p->step_backend[step_of[base->id]];
        st->first = step_of[base->id];
    } else if (base->kind == APR_KIND_RESIDENT) {
        st->home = plan_backend_index(p, base->mem->be);
        if (st->home < 0)
            return apr_error_set(err, APR_ERR_INVALID, "%s lives on backend %s, which is not among this plan's backends",
                                 base->name, apr_backend_name(base->mem->be));
        plan_loc *l = &st->loc[st->home];
        l->kind = PLAN_LOC_RESIDENT;
        l->buf = &base->mem->buf;
        l->offset = base->mem_offset;
    }
    st->last = base->is_output ? p->n_steps : st->first;
    if (base->kind == APR_KIND_WEIGHT) st->host = (void *)base->data;
    if (base->kind == APR_KIND_INPUT) {
        int64_t rounded = (st->bytes + 63) / 64 * 64;
        st->host = aligned_alloc(64, (size_t)rounded);
        if (!st->host) return apr_error_set(err, APR_ERR_NOMEM, "out of memory for input %s", base->name);
        memset(st->host, 0, (size_t)rounded);
    }
    p->store_of[base->id] = p->n_stores++;
    return APR_OK;
}

static apr_status plan_collect_stores(apr_plan *p, apr_error *err) {
    apr_graph *g = p->g;
    p->store_of = malloc((size_t)g->n_tensors * sizeof *p->store_of + 1);
    p->stores = calloc((size_t)g->n_tensors + 1, sizeof *p->stores);
    if (!p->store_of || !p->stores) return apr_error_set(err, APR_ERR_NOMEM, "out of memory planning the graph");
    for (int i = 0; i < g->n_tensors; i++) p->store_of[i] = -1;
    int *step_of = malloc((size_t)g->n_tensors * sizeof *step_of + 1);
    if (!step_of) return apr_error_set(err, APR_ERR_NOMEM, "out of memory planning the graph");
    for (int s = 0; s < p->n_steps; s++) step_of[p->steps[s]->id] = s;

    /* every storage a step reads or writes, plus outputs that no step touches */
    apr_status st = APR_OK;
    for (int s = 0; s <= p->n_steps && st == APR_OK; s++) {
        struct apr_tensor *list[APR_SRC_LIMIT + 1];
        int n = 0;
        if (s < p->n_steps) {
            list[n++] = p->steps[s];
            for (int i = 0; i < p->steps[s]->n_src; i++)
                if (p->steps[s]->src[i]) list[n++] = p->steps[s]->src[i];
        }
        for (int i = 0; i < n && st == APR_OK; i++)
            if (p->store_of[list[i]->base->id] < 0) st = plan_new_store(p, list[i]->base, step_of, err);
    }
    for (int i = 0; i < g->n_tensors && st == APR_OK; i++) {
        struct apr_tensor *t = g->tensors[i];
        if (!t->is_output || p->store_of[t->base->id] >= 0 || t->base->kind == APR_KIND_OP) continue;
        st = plan_new_store(p, t->base, step_of, err);
    }
    free(step_of);
    if (st != APR_OK) return st;
    /* lifetimes and which backend reads what */
    for (int s = 0; s < p->n_steps; s++) {
        struct apr_tensor *t = p->steps[s];
        int b = p->step_backend[s];
        if (!t->in_place) p->stores[p->store_of[t->id]].loc[b].kind = PLAN_LOC_HOME;
        for (int i = 0; i < t->n_src; i++)
            if (t->written >> i & 1u) p->stores[p->store_of[t->src[i]->base->id]].writer = b;
        for (int i = 0; i < t->n_src; i++) {
            if (!t->src[i]) continue;
            plan_store *ps = &p->stores[p->store_of[t->src[i]->base->id]];
            if (ps->t->kind == APR_KIND_OP && ps->last < s) ps->last = s;
            plan_loc *l = &ps->loc[b];
            if (ps->home == b) continue;
            if (l->kind == PLAN_LOC_NONE) { l->kind = PLAN_LOC_MIRROR; l->first = s; }
            l->last = s;
        }
    }
    return APR_OK;
}

static apr_status plan_split_graph(apr_plan *p, apr_error *err) {
    p->splits = calloc((size_t)p->n_steps + 1, sizeof *p->splits);
    if (!p->splits) return apr_error_set(err, APR_ERR_NOMEM, "out of memory planning the graph");
    for (int s = 0; s < p->n_steps; s++) {
        if (s == 0 || p->step_backend[s] != p->step_backend[s - 1]) {
            p->splits[p->n_splits].backend = p->step_backend[s];
            p->splits[p->n_splits].first_step = s;
            p->n_splits++;
        }
        p->splits[p->n_splits - 1].n_steps++;
    }
    return APR_OK;
}


/* Decides, for every storage a backend reads but does not produce, whether it reads it in place
 * or through a copy; weights that must be copied are uploaded now, once, and state before every run. */
static apr_status plan_resolve_access(apr_plan *p, apr_error *err) {
    for (int i = 0; i < p->n_stores; i++) {
        plan_store *st = &p->stores[i];
        for (int b = 0; b < p->n_backends; b++) {
            plan_loc *l = &st->loc[b];
            if (l->kind != PLAN_LOC_MIRROR) continue;
            apr_backend *be = p->backends[b];
            bool source_on_host = st->home == PLAN_HOST;
            const apr_buffer *placed = st->t->kind == APR_KIND_WEIGHT ? apr_weight_placed(be, st->t) : NULL;
            if (placed) {
                l->kind = PLAN_LOC_PLACED;
                l->buf = placed;
                l->offset = 0;
                continue;
            }
            if (source_on_host && apr_backend_computes_on_host(be)) {
                apr_buffer *buf = plan_own_buffer(p, b);
                if (!buf) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
                char msg[256] = "";
                apr_status s = be->api->buffer_import(be->inst, st->host, (uint64_t)st->bytes, buf, msg, sizeof msg);
                if (s == APR_OK) {
                    plan_own_commit(p);
                    l->kind = PLAN_LOC_SHARED;
                    l->buf = buf;
                    l->offset = 0;
                    continue;
                }
                /* an import the backend refuses (alignment, say) falls back to a copy */
            }
            if (st->writer == b)
                return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s is written in place, and backend %s cannot reach it in place",
                                     st->t->name, apr_backend_name(be));
            /* state changes between runs: it takes the refreshed copy below */
            if (source_on_host && st->t->kind == APR_KIND_WEIGHT && !st->t->is_state) {
                apr_buffer *buf = plan_own_buffer(p, b);
                if (!buf) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
                char msg[256] = "";
                apr_status s = apr_backend_alloc(be, (uint64_t)st->bytes, APR_MEM_DEVICE, APR_USAGE_WEIGHTS, buf, msg, sizeof msg);
                if (s != APR_OK)
                    return apr_error_set(err, s, "%s: cannot allocate %lld bytes for weight %s: %s", apr_backend_name(be),
                                       (long long)st->bytes, st->t->name, PLUGIN_MSG(msg));
                plan_own_commit(p);
                s = be->api->buffer_write(be->inst, buf, 0, st->host, (uint64_t)st->bytes, msg, sizeof msg);
                if (s != APR_OK)
                    return apr_error_set(err, s, "%s: upload of weight %s failed: %s", apr_backend_name(be), st->t->name, PLUGIN_MSG(msg));
                l->kind = PLAN_LOC_UPLOADED;
                l->buf = buf;
                l->offset = 0;
                p->n_weight_uploads++;
                continue;
            }
            /* inputs the backend cannot import, and results of other backends: refreshed by an
             * explicit copy before the first split that reads them */
            for (int k = 0; k < p->n_splits; k++)
                if (p->splits[k].backend == b && p->splits[k].first_step <= l->first &&
                    l->first < p->splits[k].first_step + p->splits[k].n_steps) {
                    l->fill_split = k;
                    /* the copy lands when the split starts, so the mirror lives from there */
                    l->first = p->splits[k].first_step;
                    break;
                }
        }
    }
    return APR_OK;
}

/* Events of plan_memory grouped by slot: event i (what[i], a tagged store index) happens in slot
 * at[i]; out[off[k] .. off[k + 1]) are the events of slot k in the order they were added. Slots
 * outside [0, n_slots) never come up in the walk and are dropped, as the walk would skip them. */
typedef struct plan_events {
    int n;          /* events added */
    int *at, *what; /* [2 * n_stores] */
    int *out;       /* [2 * n_stores] */
    int *off;       /* [n_slots + 1] */
} plan_events;

static void plan_events_add(plan_events *e, int slot, int what) {
    e->at[e->n] = slot;
    e->what[e->n++] = what;
}

/* Counting sort by slot, stable. */
static void plan_events_sort(plan_events *e, int n_slots) {
    memset(e->off, 0, (size_t)(n_slots + 1) * sizeof *e->off);
    for (int i = 0; i < e->n; i++)
        if (e->at[i] >= 0 && e->at[i] < n_slots) e->off[e->at[i] + 1]++;
    for (int k = 0; k < n_slots; k++) e->off[k + 1] += e->off[k];
    for (int i = 0; i < e->n; i++)
        if (e->at[i] >= 0 && e->at[i] < n_slots) e->out[e->off[e->at[i]]++] = e->what[i];
    /* the fill left off[k] at the start of slot k + 1: shift back */
    for (int k = n_slots; k > 0; k--) e->off[k] = e->off[k - 1];
    e->off[0] = 0;
}

/* Liveness: per backend arena, walk the steps allocating what starts and releasing what ends.
 * At each step: first the mirrors that start there (filled before the split's first node runs),
 * then the results produced there, then the releases, each group in store order. Events are
 * sorted by step once, so the walk is linear in steps + stores (decode plans every token). */
static apr_status plan_memory(apr_plan *p, apr_error *err) {
    const int n = p->n_stores, ns = p->n_steps + 1;
    /* allocations in slots 2 s (mirrors of step s) and 2 s + 1 (results); releases in slot s.
     * Tags: 2 i for store i's mirror, 2 i + 1 for its home result. */
    int *mem = malloc(sizeof(int) * (size_t)(2 * 6 * (n > 0 ? n : 1) + 2 * ns + 1 + ns + 1));
    if (!mem) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    plan_events al, rl;
    int *m = mem;
    al.at = m, m += 2 * n;
    al.what = m, m += 2 * n;
    al.out = m, m += 2 * n;
    rl.at = m, m += 2 * n;
    rl.what = m, m += 2 * n;
    rl.out = m, m += 2 * n;
    al.off = m, m += 2 * ns + 1;
    rl.off = m;
    apr_status status = APR_OK;
    for (int b = 0; b < p->n_backends; b++) {
        apr_memplan *mp = apr_memplan_new((int64_t)p->backends[b]->api->buffer_alignment);
        if (!mp) {
            status = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
            break;
        }
        int64_t align = p->backends[b]->api->buffer_alignment ? (int64_t)p->backends[b]->api->buffer_alignment : 64;
        al.n = rl.n = 0;
        for (int i = 0; i < n; i++) {
            const plan_store *st = &p->stores[i];
            const plan_loc *l = &st->loc[b];
            if (l->kind == PLAN_LOC_MIRROR && l->first >= 0) plan_events_add(&al, 2 * l->first, 2 * i);
            /* only op results live in the arena (leaves, resident ones included, have their own memory) */
            const bool result = st->home == b && st->t->kind == APR_KIND_OP;
            if (result && st->first >= 0) plan_events_add(&al, 2 * st->first + 1, 2 * i + 1);
            if (result) plan_events_add(&rl, st->last, 2 * i + 1);
            if (l->kind == PLAN_LOC_MIRROR) plan_events_add(&rl, l->last, 2 * i);
        }
        plan_events_sort(&al, 2 * ns);
        plan_events_sort(&rl, ns);
        for (int s = 0; s < ns; s++) {
            for (int j = al.off[2 * s]; j < al.off[2 * s + 2]; j++) {
                plan_store *st = &p->stores[al.out[j] / 2];
                int64_t off = apr_memplan_alloc(mp, st->bytes);
                if (al.out[j] % 2) st->home_offset = off;
                st->loc[b].arena_offset = off;
                p->unshared_bytes += (st->bytes + align - 1) / align * align;
            }
            for (int j = rl.off[s]; j < rl.off[s + 1]; j++) {
                plan_store *st = &p->stores[rl.out[j] / 2];
                apr_memplan_release(mp, rl.out[j] % 2 ? st->home_offset : st->loc[b].arena_offset, st->bytes);
            }
        }
        p->arena_bytes[b] = apr_memplan_peak(mp);
        apr_memplan_free(mp);
    }
    free(mem);
    return status;
}

static apr_status plan_allocate(apr_plan *p, apr_error *err) {
    for (int b = 0; b < p->n_backends; b++) {
        if (!p->arena_bytes[b]) continue;
        apr_backend *be = p->backends[b];
        char msg[256] = "";
        apr_status s = apr_arena_take(be, p->arena_bytes[b], &p->arena[b], msg, sizeof msg);
        if (s != APR_OK) {
            p->arena_bytes[b] = 0;
            return apr_error_set(err, s, "%s: cannot allocate %lld bytes for intermediates: %s", apr_backend_name(be),
                               (long long)p->arena_bytes[b], PLUGIN_MSG(msg));
        }
    }
    for (int i = 0; i < p->n_stores; i++) {
        plan_store *st = &p->stores[i];
        for (int b = 0; b < p->n_backends; b++) {
            plan_loc *l = &st->loc[b];
            if (l->kind == PLAN_LOC_HOME || l->kind == PLAN_LOC_MIRROR) {
                l->buf = &p->arena[b];
                l->offset = (uint64_t)l->arena_offset;
            }
        }
    }
    return APR_OK;
}

static apr_tensor_desc plan_desc(const apr_plan *p, const struct apr_tensor *t, int b) {
    apr_tensor_desc d = plan_shape_desc(t);
    const plan_loc *l = &p->stores[p->store_of[t->base->id]].loc[b];
    d.buffer = l->buf;
    d.offset = l->offset + (uint64_t)(t->kind == APR_KIND_VIEW ? t->view_offset : 0);
    d.data = l->buf && l->buf->host_ptr ? (char *)l->buf->host_ptr + d.offset : NULL;
    return d;
}

static apr_status plan_build_descs(apr_plan *p, apr_error *err) {
    p->descs = calloc((size_t)p->n_steps + 1, sizeof *p->descs);
    if (!p->descs) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int s = 0; s < p->n_steps; s++) {
        struct apr_tensor *t = p->steps[s];
        int b = p->step_backend[s];
        apr_node_desc *n = &p->descs[s];
        *n = plan_node_shape(t);
        n->dst = plan_desc(p, t, b);
        for (int i = 0; i < t->n_src; i++) {
            if (t->src[i]) *plan_src_slot(n, i) = plan_desc(p, t->src[i], b);
            else memset(plan_src_slot(n, i), 0, sizeof n->src[0]);
        }
        /* a weight this backend keeps packed: its matmul reads the plugin's copy (same dtype, ne and
         * nb as the weight); every other use, and other backends, read the weight's own store */
        const apr_buffer *packed = t->op == APR_OP_MATMUL ? apr_weight_packed(p->backends[b], t->src[0]) : NULL;
        if (packed) {
            n->src[0].buffer = packed;
            n->src[0].offset = 0;
            n->src[0].data = packed->host_ptr;
        }
    }
    for (int k = 0; k < p->n_splits; k++) {
        plan_split *sp = &p->splits[k];
        sp->fills = calloc((size_t)p->n_stores + 1, sizeof *sp->fills);
        if (!sp->fills) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        for (int i = 0; i < p->n_stores; i++) {
            const plan_loc *l = &p->stores[i].loc[sp->backend];
            if (l->kind == PLAN_LOC_MIRROR && l->fill_split == k) {
                sp->fills[sp->n_fills++] = i;
                p->n_copies++;
                uint64_t off;
                const apr_buffer *from = plan_home_buffer(&p->stores[i], &off);
                bool direct = !from || from->host_ptr || p->arena[sp->backend].host_ptr;
                if (!direct && p->stores[i].bytes > p->staging_bytes) p->staging_bytes = p->stores[i].bytes;
            }
        }
        sp->sg = (apr_subgraph){.struct_size = sizeof sp->sg, .node_stride = sizeof(apr_node_desc),
                                .n_nodes = (uint32_t)sp->n_steps, .nodes = &p->descs[sp->first_step]};
    }
    /* copies between two backends the host cannot address go through one buffer made now, not per run */
    if (p->staging_bytes && !(p->staging = malloc((size_t)p->staging_bytes)))
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory for %lld bytes of staging", (long long)p->staging_bytes);
    return APR_OK;
}

/* Offers every split to its plugin's plan_create (ABI 4): one that declines runs through compute. */
static apr_status plan_plugin_plans(apr_plan *p, apr_error *err) {
    for (int k = 0; k < p->n_splits; k++) {
        plan_split *sp = &p->splits[k];
        apr_backend *be = p->backends[sp->backend];
        const apr_plugin *api = be->api;
        if (api->abi_version < 4 || !APR_PLUGIN_HAS(api, plan_create) || !APR_PLUGIN_HAS(api, plan_compute) ||
            !APR_PLUGIN_HAS(api, plan_free))
            continue;
        char msg[256] = "";
        apr_status s = api->plan_create(be->inst, &sp->sg, &sp->plugin_plan, msg, sizeof msg);
        if (s == APR_ERR_UNSUPPORTED) {
            sp->plugin_plan = NULL;
            continue;
        }
        if (s != APR_OK) {
            sp->plugin_plan = NULL;
            return apr_error_set(err, s, "%s failed to plan nodes %s..%s: %s", apr_backend_name(be),
                                 p->steps[sp->first_step]->name, p->steps[sp->first_step + sp->n_steps - 1]->name,
                                 PLUGIN_MSG(msg)[0] ? msg : apr_status_name(s));
        }
    }
    return APR_OK;
}

const apr_buffer *plan_home_buffer(const plan_store *st, uint64_t *offset) {
    *offset = 0;
    if (st->home == PLAN_HOST) return NULL;
    const plan_loc *l = &st->loc[st->home];
    *offset = l->offset;
    return l->buf;
}

APR_API apr_status apr_plan_new(apr_graph *g, apr_backend *const *backends, int n_backends, apr_plan **out,
                                apr_error *err) {
    *out = NULL;
    if (apr_graph_error(g)) return apr_error_set(err, APR_ERR_INVALID, "graph is malformed: %s", apr_graph_error(g));
    if (n_backends < 1 || n_backends > PLAN_MAX_BACKENDS)
        return apr_error_set(err, APR_ERR_INVALID, "%d backends given (1..%d)", n_backends, PLAN_MAX_BACKENDS);
    apr_plan *p = calloc(1, sizeof *p);
    if (!p) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    p->g = g;
    p->n_backends = n_backends;
    for (int b = 0; b < n_backends; b++) p->backends[b] = backends[b];
    apr_status s = plan_order(p, err);
    if (!s) s = plan_place(p, err);
    if (!s) s = plan_collect_stores(p, err);
    if (!s) s = plan_split_graph(p, err);
    if (!s) s = plan_resolve_access(p, err);
    if (!s) s = plan_memory(p, err);
    if (!s) s = plan_allocate(p, err);
    if (!s) s = plan_build_descs(p, err);
    if (!s) s = plan_plugin_plans(p, err);
    if (s) { apr_plan_free(p); return s; }
    *out = p;
    return APR_OK;
}


/* arena.c — the intermediates buffer a plan returns, kept by its backend for the next plan. */
#include <string.h>

#include "internal.h"

/* Plans come and go (a batch, a new decode plan every 64 tokens). A fresh host arena is fresh
 * pages (one fault per 4 KiB, costly in a VM), a fresh device arena is a driver call, so each
 * backend keeps the last arena a plan gave back. The arena grows with the KV length: a new one
 * gets an eighth more room, so the next few plans reuse it. */
#define ARENA_GRANULE ((int64_t)64 << 10)

apr_status apr_arena_take(apr_backend *be, int64_t bytes, apr_buffer *out, char *msg, size_t msg_size) {
    apr_buffer old = {0};
    bool have_old = false;
    pthread_mutex_lock(&be->arena_lock);
    if (be->arena_kept) {
        if ((int64_t)be->arena.size >= bytes) {
            *out = be->arena;
            be->arena_kept = false;
            pthread_mutex_unlock(&be->arena_lock);
            return APR_OK;
        }
        old = be->arena;
        have_old = true;
        be->arena_kept = false;
    }
    pthread_mutex_unlock(&be->arena_lock);
    if (have_old) be->api->buffer_free(be->inst, &old); /* too small: its bytes go back before the larger one is asked for */
    int64_t want = (bytes + bytes / 8 + ARENA_GRANULE - 1) / ARENA_GRANULE * ARENA_GRANULE;
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    apr_status s = be->api->buffer_alloc(be->inst, (uint64_t)want, out, msg, msg_size);
    if (s == APR_OK) return APR_OK;
    /* no room for the headroom: the exact size may still fit */
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    return be->api->buffer_alloc(be->inst, (uint64_t)bytes, out, msg, msg_size);
}

void apr_arena_give(apr_backend *be, apr_buffer *buf) {
    apr_buffer drop = *buf;
    bool dropping = true;
    pthread_mutex_lock(&be->arena_lock);
    if (!be->arena_kept) {
        be->arena = *buf;
        be->arena_kept = true;
        dropping = false;
    } else if (be->arena.size < buf->size) { /* keep the larger of the two */
        drop = be->arena;
        be->arena = *buf;
    }
    pthread_mutex_unlock(&be->arena_lock);
    if (dropping) be->api->buffer_free(be->inst, &drop);
    memset(buf, 0, sizeof *buf);
}

void apr_arena_release(apr_backend *be) {
    if (be->arena_kept) be->api->buffer_free(be->inst, &be->arena);
    be->arena_kept = false;
}

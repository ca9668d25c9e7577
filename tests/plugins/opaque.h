/* opaque.h — what the opaque test plugin (opaque.c) shares with its tests: the counters of what
 * crossed its boundary, read through apr_backend_instance(be). */
#ifndef APR_OPAQUE_H
#define APR_OPAQUE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * opaque.so is an ABI 4 backend whose memory the host cannot address: no buffer is ever
 * APR_BUFFER_HOST_VISIBLE and none has a host_ptr, and it has no buffer_import, so every byte
 * the core moves in or out goes through buffer_write / buffer_read (or their *_async forms), and
 * every copy between two of its buffers through buffer_copy. It runs every op with the reference
 * kernels. Its work is queued: compute, plan_compute, the *_async calls and buffer_copy only
 * enqueue (an async write reads the caller's memory, an async read fills it, when the queue is
 * drained), and synchronize, event_synchronize, buffer_write and buffer_read drain it in order. A
 * core that reads host memory before synchronize sees stale bytes.
 *
 * Peer copies: buffer_copy also takes, as src, a live buffer of ANOTHER live opaque instance of the
 * same process (the other device, or another instance of the same one), as a CUDA peer copy would.
 * The copy is queued on the destination instance like any other and reads the peer's memory when
 * that queue is drained; nothing goes through the host. The core orders it with an event recorded on
 * the source and waited for by the destination: event_wait on another instance's event drains that
 * instance up to the marker, so the copy reads the source as the work before the marker left it. A
 * core that skips the event reads whatever the source's queue has not yet written (stale bytes), and
 * one that lets the source overwrite the buffer before the destination's queue has run the copy
 * reads the newer bytes (a race, as on a device). A source buffer freed before the queued copy ran
 * fails that copy (APR_ERR_INVALID, counted in n_async_errors); its memory stays valid until then.
 * refuse_peer_copy (set on either instance) makes the two unable to reach each other: such a copy is
 * APR_ERR_UNSUPPORTED and the core stages it through the host.
 *
 * It serves two devices (probe's n_devices = 2: backends "opaque:0" and "opaque:1"), scores 1 and
 * states no caps. With APR_OPAQUE_ABI=3 in the environment when the registry loads it, its table
 * says ABI 3 and ends before the ABI 4 slots (one device, synchronous as far as the core knows: its
 * buffer_read and buffer_write drain the queue).
 *
 * Each instance has its own counters, the first member of the instance, so
 *     opaque_counters *c = apr_backend_instance(be);   // check c->magic == OPAQUE_MAGIC
 * Counts grow from create; a test resets them with opaque_counters_reset (or by writing zeros:
 * the plugin rewrites magic, device and the gauges after every call, so a memset of the whole
 * struct is harmless too, though it also clears refuse_peer_copy, which the plugin never rewrites).
 */

#define OPAQUE_MAGIC 0x4f504151u /* "OPAQ": heads the counters */
#define OPAQUE_N_DEVICES 2       /* probe's n_devices; apr_backend_config.device must be 0 or 1 */

/* Index of the *_by_usage arrays: the apr_buffer_usage of buffer_alloc_ex (0 compute, 1 weights,
 * 2 state, 3 staging), and OPAQUE_USAGE_UNTOLD for buffers from plain buffer_alloc. A copy counts
 * under its destination's usage. */
#define OPAQUE_USAGE_UNTOLD 4
#define OPAQUE_N_USAGES 5
#define OPAQUE_N_OPS 32          /* size of nodes_by_op (op numbers below it) */

typedef struct opaque_counters {
    uint32_t magic;               /* OPAQUE_MAGIC */
    int32_t device;               /* apr_backend_config.device this instance was created for */

    /* control: set by a test, read by the plugin at each buffer_copy from a peer; neither rewritten
     * by the plugin nor zeroed by opaque_counters_reset */
    uint32_t refuse_peer_copy;    /* nonzero: this instance and its peers cannot reach each other, so a
                                   * buffer_copy from a peer's buffer (into this instance, or into a peer
                                   * from this one) is APR_ERR_UNSUPPORTED and counts n_copies_refused
                                   * on the destination */
    uint32_t reserved0;

    /* gauges: the plugin's state right now (not reset) */
    uint64_t live_buffers;        /* buffers allocated and not yet freed */
    uint64_t live_bytes;          /* their bytes */
    uint64_t live_plans;          /* plans created and not yet freed */
    uint64_t queue_depth;         /* queued items not yet run */

    /* counts: everything from here on is zeroed by opaque_counters_reset */
    /* memory */
    uint64_t n_allocs;            /* buffer_alloc calls that succeeded */
    uint64_t n_allocs_ex;         /* buffer_alloc_ex calls that succeeded */
    uint64_t n_allocs_refused;    /* buffer_alloc_ex calls for host-visible or staging memory (APR_ERR_UNSUPPORTED) */
    uint64_t n_frees;             /* buffer_free calls on its buffers */
    uint64_t bytes_allocated;     /* bytes of the successful allocations */
    uint64_t n_allocs_by_usage[OPAQUE_N_USAGES];
    uint64_t bytes_allocated_by_usage[OPAQUE_N_USAGES];

    /* traffic across the boundary, counted when the call is made */
    uint64_t bytes_in;            /* host -> plugin: buffer_write + buffer_write_async */
    uint64_t bytes_out;           /* plugin -> host: buffer_read + buffer_read_async */
    uint64_t bytes_copied;        /* plugin -> plugin: buffer_copy between two of this instance's buffers */
    uint64_t bytes_peer_copied;   /* peer -> this instance: buffer_copy from another instance's buffer (on the destination) */
    uint64_t n_writes;            /* buffer_write + buffer_write_async calls that were accepted */
    uint64_t n_writes_async;      /* of those, buffer_write_async */
    uint64_t n_reads;             /* buffer_read + buffer_read_async calls that were accepted */
    uint64_t n_reads_async;       /* of those, buffer_read_async */
    uint64_t n_copies;            /* buffer_copy calls between two of this instance's buffers that were accepted */
    uint64_t n_peer_copies;       /* buffer_copy calls from a peer's buffer that were accepted (on the destination) */
    uint64_t n_copies_refused;    /* buffer_copy calls refused with APR_ERR_UNSUPPORTED: from a buffer of no live
                                   * opaque instance (a freed one included), or from a peer's while
                                   * refuse_peer_copy is set on either side */
    uint64_t bytes_in_by_usage[OPAQUE_N_USAGES];
    uint64_t bytes_out_by_usage[OPAQUE_N_USAGES];
    uint64_t bytes_copied_by_usage[OPAQUE_N_USAGES]; /* by the destination's usage; same-instance copies only */
    uint64_t n_writes_by_usage[OPAQUE_N_USAGES];
    uint64_t n_reads_by_usage[OPAQUE_N_USAGES];

    /* work */
    uint64_t n_supports;          /* supports() calls */
    uint64_t n_computes;          /* compute calls that were accepted (queued) */
    uint64_t n_plans_created;     /* plan_create calls that succeeded */
    uint64_t n_plan_runs;         /* plan_compute calls that were accepted (queued) */
    uint64_t n_plans_freed;       /* plan_free calls */
    uint64_t n_nodes_run;         /* nodes run (when the queue is drained) */
    uint64_t nodes_by_op[OPAQUE_N_OPS];

    /* queue and events */
    uint64_t n_enqueued;          /* items queued (writes, reads, copies, computes, plan runs, event markers) */
    uint64_t n_synchronize;       /* synchronize calls */
    uint64_t n_implicit_drains;   /* drains by buffer_write / buffer_read / buffer_free / plan_free that found work queued */
    uint64_t n_async_errors;      /* queued items that failed when run (reported by the call that drained them) */
    uint64_t n_events_created;
    uint64_t n_event_records;
    uint64_t n_event_waits;
    uint64_t n_event_syncs;
    uint64_t n_events_freed;
} opaque_counters;

/* Zeroes the counts, keeping magic, device, refuse_peer_copy and the gauges. */
static inline void opaque_counters_reset(opaque_counters *c) {
    memset(&c->n_allocs, 0, sizeof *c - offsetof(opaque_counters, n_allocs));
}

#endif

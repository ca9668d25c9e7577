/* tpool.h — a persistent worker pool for CPU plugins: one dispatch per op, low overhead. */
#ifndef APR_PLUGIN_TPOOL_H
#define APR_PLUGIN_TPOOL_H

/* The caller of tpool_run is worker 0; the pool owns n_threads - 1 helper threads that live
 * until tpool_destroy. A dispatch publishes (fn, ctx) by bumping a generation counter; helpers
 * spin on it briefly (decode runs hundreds of small ops per token) and then sleep on a condvar.
 * tpool_run returns only after every worker has returned from fn or left it (tpool_leave: a
 * helper that then only prefetches), so no helper touches the caller's data afterwards. One
 * thread at a time may call tpool_run on a pool. */

#include <assert.h>
#include <stdatomic.h>

typedef struct tpool tpool;

/* Work function: ith in [0, nth) names this worker; nth is the pool size. */
typedef void (*tpool_fn)(void *ctx, int ith, int nth);

/* Creates a pool of n_threads workers (>= 1) including the caller; NULL when threads or memory
 * cannot be had. */
tpool *tpool_create(int n_threads);
void tpool_destroy(tpool *pool);
int tpool_size(const tpool *pool);
/* Runs fn(ctx, ith, nth) on every worker and waits for all of them (or for tpool_leave). */
void tpool_run(tpool *pool, tpool_fn fn, void *ctx);

/* For a helper (ith > 0) inside fn that is done with the job: tpool_run stops waiting for it and
 * may return, and the caller may go on to run small ops alone. fn may then only touch memory no
 * one writes (it prefetches what a later job reads, from addresses it copied before leaving: ctx
 * and the caller's data may be gone), must stop soon after tpool_superseded(pool, ticket) turns
 * true (the next job or destroy has come) and return. At most once per fn; never from worker 0. */
unsigned tpool_leave(tpool *pool);
int tpool_superseded(tpool *pool, unsigned ticket);

/* The contiguous share [*begin, *end) of n items that worker ith of nth takes (balanced). */
static inline void tpool_split(long long n, int ith, int nth, long long *begin, long long *end) {
    *begin = n * ith / nth;
    *end = n * (ith + 1) / nth;
}

/* Owned shares with stealing, for memory-bound decode: worker ith first takes the items of its
 * own contiguous share (tpool_split) from the front, so it reads one stream, as a static split
 * does; one that runs out then takes single items from the back of another's share, so a
 * preempted or slower worker delays the op by one item at most, as claims do. Claims of small
 * chunks instead interleave the workers' items, and every claim restarts the hardware
 * prefetcher's stream. The job's context holds one tpool_steal, set with tpool_steal_init
 * before tpool_run; each worker calls tpool_steal_next until it returns 0. Every item is handed
 * out exactly once. n < 2^32. */
#define TPOOL_STEAL_SLOTS 64
typedef struct tpool_steal {
    /* per share: next item (low 32 bits) | end (high 32), each on its own cache line: an owner
     * takes every item with a compare-exchange, and shares packed together would make every
     * take miss */
    struct {
        _Alignas(64) _Atomic unsigned long long v;
    } range[TPOOL_STEAL_SLOTS];
    int slots; /* shares: min(nth, TPOOL_STEAL_SLOTS) */
} tpool_steal;

static inline void tpool_steal_init(tpool_steal *s, long long n, int nth) {
    assert(n >= 0 && n < (1ll << 32));
    s->slots = nth < 1 ? 1 : nth < TPOOL_STEAL_SLOTS ? nth : TPOOL_STEAL_SLOTS;
    for (int i = 0; i < s->slots; i++) {
        long long b, e;
        tpool_split(n, i, s->slots, &b, &e);
        atomic_init(&s->range[i].v, (unsigned long long)b | (unsigned long long)e << 32);
    }
}

/* The next item for worker ith in *item; 0 when all items are taken. */
static inline int tpool_steal_next(tpool_steal *s, int ith, long long *item) {
    const int own = ith % s->slots;
    unsigned long long r = atomic_load_explicit(&s->range[own].v, memory_order_relaxed);
    while ((r & 0xffffffffu) < (r >> 32))
        if (atomic_compare_exchange_weak_explicit(&s->range[own].v, &r, r + 1, memory_order_relaxed, memory_order_relaxed)) {
            *item = (long long)(r & 0xffffffffu);
            return 1;
        }
    for (int k = 1; k < s->slots; k++) {
        _Atomic unsigned long long *v = &s->range[(own + k) % s->slots].v;
        r = atomic_load_explicit(v, memory_order_relaxed);
        while ((r & 0xffffffffu) < (r >> 32))
            if (atomic_compare_exchange_weak_explicit(v, &r, r - (1ull << 32), memory_order_relaxed, memory_order_relaxed)) {
                *item = (long long)(r >> 32) - 1;
                return 1;
            }
    }
    return 0;
}

#endif

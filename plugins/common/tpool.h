/* tpool.h — a persistent worker pool for CPU plugins: one dispatch per op, low overhead. */
#ifndef APR_PLUGIN_TPOOL_H
#define APR_PLUGIN_TPOOL_H

/* The caller of tpool_run is worker 0; the pool owns n_threads - 1 helper threads that live
 * until tpool_destroy. A dispatch publishes (fn, ctx) by bumping a generation counter; helpers
 * spin on it briefly (decode runs hundreds of small ops per token) and then sleep on a condvar.
 * tpool_run returns only after every worker has returned from fn, so no helper touches the
 * caller's data afterwards. One thread at a time may call tpool_run on a pool. */

#include <stdatomic.h>

typedef struct tpool tpool;

/* Work function: ith in [0, nth) names this worker; nth is the pool size. */
typedef void (*tpool_fn)(void *ctx, int ith, int nth);

/* Creates a pool of n_threads workers (>= 1) including the caller; NULL when threads or memory
 * cannot be had. */
tpool *tpool_create(int n_threads);
void tpool_destroy(tpool *pool);
int tpool_size(const tpool *pool);
/* Runs fn(ctx, ith, nth) on every worker and waits for all of them. */
void tpool_run(tpool *pool, tpool_fn fn, void *ctx);

/* The contiguous share [*begin, *end) of n items that worker ith of nth takes (balanced). */
static inline void tpool_split(long long n, int ith, int nth, long long *begin, long long *end) {
    *begin = n * ith / nth;
    *end = n * (ith + 1) / nth;
}

/* Claimed shares: workers that finish early take more, where static shares leave one worker
 * waiting on the other (memory-bound decode, where two streams seldom progress at one rate).
 * The job's context holds one tpool_claim, set with tpool_claim_init before tpool_run; each
 * worker calls tpool_claim_next until it returns 0. Every item is handed out exactly once. */
typedef struct tpool_claim {
    _Atomic long long next;   /* first item not yet handed out */
    long long n;              /* items */
    long long chunk;          /* items per claim, >= 1 */
} tpool_claim;

static inline void tpool_claim_init(tpool_claim *c, long long n, long long chunk) {
    atomic_init(&c->next, 0);
    c->n = n;
    c->chunk = chunk > 0 ? chunk : 1;
}

/* The next share [*begin, *end); 0 when all items are taken. */
static inline int tpool_claim_next(tpool_claim *c, long long *begin, long long *end) {
    long long b = atomic_fetch_add_explicit(&c->next, c->chunk, memory_order_relaxed);
    if (b >= c->n) return 0;
    *begin = b;
    *end = b + c->chunk < c->n ? b + c->chunk : c->n;
    return 1;
}

#endif

/* tpool.h — a persistent worker pool for CPU plugins: one dispatch per op, low overhead. */
#ifndef APR_PLUGIN_TPOOL_H
#define APR_PLUGIN_TPOOL_H

/* The caller of tpool_run is worker 0; the pool owns n_threads - 1 helper threads that live
 * until tpool_destroy. A dispatch publishes (fn, ctx) by bumping a generation counter; helpers
 * spin on it briefly (decode runs hundreds of small ops per token) and then sleep on a condvar.
 * tpool_run returns only after every worker has returned from fn, so no helper touches the
 * caller's data afterwards. One thread at a time may call tpool_run on a pool. */

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

#endif

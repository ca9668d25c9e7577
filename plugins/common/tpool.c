/* tpool.c — a persistent worker pool for CPU plugins: spin-then-sleep dispatch on a generation counter. */
#include "tpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Pause iterations a helper spins before it sleeps: long enough to bridge the gap between the
 * small ops of one decode step, short enough not to burn a core between tokens. */
#define TPOOL_SPIN 20000

struct tpool {
    int n;                        /* workers including the caller */
    pthread_t *threads;           /* [n - 1] helpers */
    _Atomic unsigned gen;         /* bumped once per dispatch */
    _Atomic int pending;          /* helpers still inside the current fn */
    _Atomic int sleepers;         /* helpers blocked (or about to block) on wake */
    _Atomic int stop;             /* set by destroy */
    tpool_fn fn;                  /* the current job; written before gen is bumped */
    void *ctx;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

struct tpool_arg { tpool *pool; int ith; };

/* Set by tpool_leave on the helper that called it, for the job it is in. */
static _Thread_local int tpool_left;

static inline void tpool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *tpool_main(void *p) {
    struct tpool_arg a = *(struct tpool_arg *)p;
    free(p);
    tpool *pool = a.pool;
    /* gen is 0 until create returns; reading it here instead would miss a job dispatched
     * before this thread got scheduled */
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen && spins < TPOOL_SPIN) {
            tpool_pause();
            spins++;
        }
        if (g == seen) {
            /* Sleep. sleepers is raised (seq_cst) before gen is re-read, and the dispatcher reads
             * sleepers (seq_cst) after bumping gen, so one of the two always sees the other. */
            pthread_mutex_lock(&pool->lock);
            atomic_fetch_add(&pool->sleepers, 1);
            while ((g = atomic_load(&pool->gen)) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->lock);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->lock);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = g;
        tpool_left = 0;
        pool->fn(pool->ctx, a.ith, pool->n);
        if (!tpool_left) atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

tpool *tpool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    tpool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n = n_threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!pool->threads) { free(pool); return NULL; }
    for (int i = 1; i < n_threads; i++) {
        struct tpool_arg *a = malloc(sizeof *a);
        if (!a) { pool->n = i; tpool_destroy(pool); return NULL; }
        a->pool = pool;
        a->ith = i;
        if (pthread_create(&pool->threads[i - 1], NULL, tpool_main, a) != 0) {
            free(a);
            pool->n = i; /* destroy joins only the helpers that started */
            tpool_destroy(pool);
            return NULL;
        }
    }
    return pool;
}

void tpool_destroy(tpool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->gen, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i - 1], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}

int tpool_size(const tpool *pool) { return pool->n; }

unsigned tpool_leave(tpool *pool) {
    assert(!tpool_left);
    /* read before pending drops: the caller bumps gen for its next job only after that */
    const unsigned ticket = atomic_load(&pool->gen);
    tpool_left = 1;
    atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    return ticket;
}

int tpool_superseded(tpool *pool, unsigned ticket) { return atomic_load_explicit(&pool->gen, memory_order_relaxed) != ticket; }

void tpool_run(tpool *pool, tpool_fn fn, void *ctx) {
    if (pool->n == 1) { fn(ctx, 0, 1); return; }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->pending, pool->n - 1, memory_order_relaxed);
    atomic_fetch_add(&pool->gen, 1); /* seq_cst: publishes fn/ctx/pending, orders before sleepers */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    fn(ctx, 0, pool->n);
    int spins = 0;
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) {
        /* Helpers finish their share soon; yield only if the machine is oversubscribed. */
        if (++spins < TPOOL_SPIN) tpool_pause();
        else sched_yield();
    }
}

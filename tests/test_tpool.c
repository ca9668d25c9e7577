/* test_tpool.c — the CPU plugins' worker pool: every worker runs, tpool_steal hands out every item exactly once, owned shares first, and a helper that leaves a job early does not hold up the caller. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* The pool is compiled into each plugin, not into libapr: the test builds its own copy. */
#include "../plugins/common/tpool.c"

#define TP_MAX_ITEMS 5000

typedef struct tp_job {
    tpool_steal steal;
    long long n;
    _Atomic int taken[TP_MAX_ITEMS];  /* times item i was handed out */
    int taker[TP_MAX_ITEMS];          /* the worker that got it */
    long long order[8][TP_MAX_ITEMS]; /* the items of each worker, in the order it got them */
    int count[8];
    int slow;                         /* worker 0 sleeps this many microseconds per item */
} tp_job;

static void tp_worker(void *ctx, int ith, int nth) {
    tp_job *j = ctx;
    cr_assert(ith >= 0 && ith < nth && nth <= 8);
    long long it;
    while (tpool_steal_next(&j->steal, ith, &it)) {
        cr_assert(it >= 0 && it < j->n, "item %lld of %lld", it, j->n);
        atomic_fetch_add(&j->taken[it], 1);
        j->taker[it] = ith;
        j->order[ith][j->count[ith]++] = it;
        if (ith == 0 && j->slow) nanosleep(&(struct timespec){.tv_nsec = 1000L * j->slow}, NULL);
    }
}

static tp_job *tp_run(tpool *pool, long long n, int slow) {
    tp_job *j = calloc(1, sizeof *j);
    cr_assert_not_null(j);
    j->n = n;
    j->slow = slow;
    tpool_steal_init(&j->steal, n, tpool_size(pool));
    tpool_run(pool, tp_worker, j);
    for (long long i = 0; i < n; i++) cr_assert_eq(atomic_load(&j->taken[i]), 1, "item %lld of %lld taken %d times", i, n, atomic_load(&j->taken[i]));
    return j;
}

Test(tpool, steal_hands_out_every_item_exactly_once) {
    static const int threads[] = {1, 2, 3, 5, 8};
    static const long long sizes[] = {0, 1, 2, 7, 64, 1000, TP_MAX_ITEMS};
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        tpool *pool = tpool_create(threads[t]);
        cr_assert_not_null(pool);
        for (int rep = 0; rep < 20; rep++)
            for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) free(tp_run(pool, sizes[s], 0));
        tpool_destroy(pool);
    }
}

Test(tpool, an_owner_walks_its_own_share_from_the_front) {
    tpool *pool = tpool_create(3);
    cr_assert_not_null(pool);
    tp_job *j = tp_run(pool, 999, 0);
    for (int w = 0; w < 3; w++) {
        long long b, e;
        tpool_split(999, w, 3, &b, &e);
        /* whatever was stolen came off the back: the owner's items are a prefix of its share, in order */
        int own = 0; /* (a worker that starts late may find its whole share stolen) */
        for (int k = 0; k < j->count[w]; k++)
            if (j->order[w][k] >= b && j->order[w][k] < e) {
                cr_assert_eq(j->order[w][k], b + own, "worker %d got item %lld, expected %lld", w, j->order[w][k], b + own);
                own++;
            }
    }
    free(j);
    tpool_destroy(pool);
}

Test(tpool, a_slow_worker_has_the_back_of_its_share_stolen) {
    tpool *pool = tpool_create(2);
    cr_assert_not_null(pool);
    tp_job *j = tp_run(pool, 200, 1000); /* worker 0: 1 ms per item, 100 ms for its share alone */
    long long b, e;
    tpool_split(200, 0, 2, &b, &e);
    int stolen = 0;
    for (long long i = b; i < e; i++) stolen += j->taker[i] == 1;
    cr_assert_gt(stolen, 0, "worker 1 took none of the slow worker's items");
    /* and the stolen ones are the share's back: once worker 1 has an item, it has every later one */
    int seen1 = 0;
    for (long long i = b; i < e; i++) {
        if (j->taker[i] == 1) seen1 = 1;
        else cr_assert(!seen1, "item %lld went back to its owner after a later one was stolen", i);
    }
    free(j);
    tpool_destroy(pool);
}

/* A job whose helpers leave as soon as they start and then wait, inside fn, for the next job. Kept
 * in static storage: after tpool_leave a helper may touch only what outlives the caller's frame. */
typedef struct tp_leave_job {
    tpool *pool;
    _Atomic int ran[4];    /* times each worker entered fn */
    _Atomic int waiting;   /* helpers that left and wait for the next job */
    _Atomic int released;  /* helpers that saw the next job come and returned */
} tp_leave_job;

static tp_leave_job tp_leave;

static void tp_leave_worker(void *ctx, int ith, int nth) {
    tp_leave_job *j = ctx;
    cr_assert(ith >= 0 && ith < nth && nth <= 4);
    atomic_fetch_add(&j->ran[ith], 1);
    if (ith == 0) return;
    const unsigned ticket = tpool_leave(j->pool);
    atomic_fetch_add(&j->waiting, 1);
    while (!tpool_superseded(j->pool, ticket)) tpool_pause();
    atomic_fetch_add(&j->released, 1);
}

static void tp_count_worker(void *ctx, int ith, int nth) {
    tp_leave_job *j = ctx;
    cr_assert(ith >= 0 && ith < nth && nth <= 4);
    atomic_fetch_add(&j->ran[ith], 1);
}

/* Spins until *v reaches want or a second has passed; returns the last value read. */
static int tp_wait_for(_Atomic int *v, int want) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int x;
    do {
        x = atomic_load(v);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (x < want && (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 1000000000L);
    return x;
}

Test(tpool, a_helper_that_leaves_early_lets_the_caller_go_on, .timeout = 30) {
    tp_leave_job *j = &tp_leave;
    j->pool = tpool_create(3);
    cr_assert_not_null(j->pool);
    for (int round = 1; round <= 3; round++) {
        /* tpool_run returns while both helpers are still inside fn, waiting for what comes next */
        tpool_run(j->pool, tp_leave_worker, j);
        cr_assert_eq(tp_wait_for(&j->waiting, 2 * round), 2 * round, "round %d: the helpers did not both leave", round);
        cr_assert_eq(atomic_load(&j->released), 2 * (round - 1), "round %d: a helper returned before the next job came", round);
        /* the next job releases them, and still runs once on every worker */
        tpool_run(j->pool, tp_count_worker, j);
        cr_assert_eq(atomic_load(&j->released), 2 * round, "round %d: the next job ran before a helper had returned", round);
        for (int w = 0; w < 3; w++) cr_assert_eq(atomic_load(&j->ran[w]), 2 * round, "round %d: worker %d ran %d times", round, w, atomic_load(&j->ran[w]));
    }
    /* destroy releases helpers that left and still wait */
    tpool_run(j->pool, tp_leave_worker, j);
    cr_assert_eq(tp_wait_for(&j->waiting, 8), 8);
    tpool_destroy(j->pool);
    cr_assert_eq(atomic_load(&j->released), 8);
}

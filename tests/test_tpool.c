/* test_tpool.c — the CPU plugins' worker pool: every worker runs, and tpool_steal hands out every item exactly once, owned shares first. */
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

/* tu_suite.h — one (backend, op) test of the backend-checking suites: oracle and backend under test, case seeds, counts, FAIL lines, verdict, watchdog. */
#ifndef TU_SUITE_H
#define TU_SUITE_H

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr.h"
#include "tu_backend.h"
#include "tu_rand.h"

/*
 * A suite's test opens the reference (the oracle) and the backend under test (tu_suite_open), builds
 * its cases with inputs from tu_suite_next, counts each case once as passed, failed (tu_suite_fail,
 * which prints the FAIL line with the run's seed) or unsupported (tu_suite_unsupported), closes
 * (tu_suite_close) and ends with tu_suite_verdict. APR_TEST_SEED=<seed> replays a run's inputs;
 * APR_TEST_THREADS sets the worker count of the backend under test (default 3, so work splits
 * unevenly).
 *
 * The watchdog: a backend that deadlocks would otherwise only show up as Criterion's bare "Timed
 * out". Before each run the suite records the case (tu_suite_watch); if the alarm goes off first,
 * "HANG: no result after 30 s (deadlock or livelock?) in: <backend> <case> [APR_TEST_SEED=<seed>]"
 * is printed and the test process exits with status 3.
 */

/* Seconds the watchdog gives a test (or, per case, each run). */
#define TU_SUITE_WATCHDOG 30

/* One test's run; a suite's own run struct embeds it. */
typedef struct tu_suite_run {
    uint32_t op;
    bool self_check;     /* the backend under test is the reference: test is a copy of ref (one handle) */
    tu_backend ref;      /* the oracle */
    tu_backend test;     /* the backend under test */
    uint64_t seed;       /* the run's seed (tu_seed) */
    uint64_t n_cases;    /* cases built so far, also the index of the next case's input stream */
    long passed, failed, unsupported;
} tu_suite_run;

/* Takes the run's seed, arms the watchdog, and opens the default registry, the reference as r->ref
 * (1 thread) and `backend` as r->test (APR_TEST_THREADS threads; the same handle when it is the
 * reference). watch_per_case: each tu_suite_watch gives the run after it TU_SUITE_WATCHDOG seconds of
 * its own; otherwise the whole test has them. r->op and the counts are left as they are. A failure
 * to open is a test failure. Returns the registry for tu_suite_close. */
apr_registry *tu_suite_open(tu_suite_run *r, const char *backend, bool watch_per_case);
void tu_suite_close(apr_registry *reg, tu_suite_run *r);

/* The next case's input stream, derived from (seed, op, n_cases) so that a case's data never depends
 * on how many numbers earlier cases drew; counts the case in n_cases. */
tu_rng tu_suite_next(tu_suite_run *r);

/* Prints "FAIL: <test backend> <text>: <why> [APR_TEST_SEED=<seed>]" to stderr and counts a failure. */
void tu_suite_fail(tu_suite_run *r, const char *text, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prints "unsupported: <test backend> <text>: <why>" to stderr and counts an unsupported case. */
void tu_suite_unsupported(tu_suite_run *r, const char *text, const char *why);

/* Records the run about to start on `backend` (text: the case), for the watchdog's HANG line. */
void tu_suite_watch(const char *backend, const char *text);

/* The verdict after tu_suite_close, as Criterion assertions: some case was built, every case was
 * counted once, none failed (naming the seed); a test whose every case was declined is skipped,
 * "nothing was <what>". backend: the backend's name, copied before the close. */
void tu_suite_verdict(const tu_suite_run *r, const char *backend, const char *what);

#endif

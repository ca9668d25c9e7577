/* tu_suite.c — one (backend, op) test of the backend-checking suites: oracle and backend under test, case seeds, counts, FAIL lines, verdict, watchdog. */
#include "tu_suite.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- watchdog */

#define TU_SUITE_STR_(x) #x
#define TU_SUITE_STR(x) TU_SUITE_STR_(x)

static char watch_text[1024];
static uint64_t watch_seed;
static bool watch_per_case;

static void watch_fire(int sig) {
    (void)sig;
    static const char head[] = "HANG: no result after " TU_SUITE_STR(TU_SUITE_WATCHDOG) " s (deadlock or livelock?) in: ";
    if (write(2, head, sizeof head - 1) < 0 || write(2, watch_text, strnlen(watch_text, sizeof watch_text)) < 0 ||
        write(2, "\n", 1) < 0) { /* nothing more can be done in a signal handler */ }
    _exit(3);
}

void tu_suite_watch(const char *backend, const char *text) {
    snprintf(watch_text, sizeof watch_text, "%s %s [APR_TEST_SEED=%llu]", backend, text, (unsigned long long)watch_seed);
    if (watch_per_case) alarm(TU_SUITE_WATCHDOG);
}

/* ---------------------------------------------------------------- one test's run */

static int suite_threads(void) {
    const char *env = getenv("APR_TEST_THREADS");
    return env && *env ? atoi(env) : 3;
}

apr_registry *tu_suite_open(tu_suite_run *r, const char *backend, bool per_case) {
    r->seed = watch_seed = tu_seed();
    watch_per_case = per_case;
    signal(SIGALRM, watch_fire);
    tu_suite_watch(backend, "opening the registry and backends");
    alarm(TU_SUITE_WATCHDOG);
    apr_registry *reg = NULL;
    apr_error e;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "apr_registry_open: %s", e.msg);
    char err[512];
    cr_assert(tu_backend_open(reg, TU_REFERENCE, 1, &r->ref, err, sizeof err), "the oracle is missing: %s", err);
    r->self_check = !strcmp(backend, TU_REFERENCE);
    if (r->self_check) r->test = r->ref;
    else cr_assert(tu_backend_open(reg, backend, suite_threads(), &r->test, err, sizeof err), "%s", err);
    return reg;
}

void tu_suite_close(apr_registry *reg, tu_suite_run *r) {
    if (!r->self_check) tu_backend_close(&r->test);
    tu_backend_close(&r->ref);
    apr_registry_close(reg);
}

tu_rng tu_suite_next(tu_suite_run *r) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed_mix(r->seed, ((uint64_t)r->op << 32) | r->n_cases));
    r->n_cases++;
    return rng;
}

void tu_suite_fail(tu_suite_run *r, const char *text, const char *fmt, ...) {
    char why[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL: %s %s: %s [APR_TEST_SEED=%llu]\n", r->test.name, text, why, (unsigned long long)r->seed);
    r->failed++;
}

void tu_suite_unsupported(tu_suite_run *r, const char *text, const char *why) {
    fprintf(stderr, "unsupported: %s %s: %s\n", r->test.name, text, why);
    r->unsupported++;
}

void tu_suite_verdict(const tu_suite_run *r, const char *backend, const char *what) {
    const char *op = tu_op_name(r->op);
    cr_assert_gt(r->n_cases, 0, "%s: no cases were built", op);
    cr_assert_eq(r->passed + r->failed + r->unsupported, (long)r->n_cases, "%s %s: cases lost", backend, op);
    cr_assert_eq(r->failed, 0, "%s %s: %ld of %llu cases failed (see FAIL lines; APR_TEST_SEED=%llu replays)", backend, op,
                 r->failed, (unsigned long long)r->n_cases, (unsigned long long)r->seed);
    if (r->passed == 0)
        cr_skip_test("%s %s: every one of %llu cases was declined (unsupported), nothing was %s", backend, op,
                     (unsigned long long)r->n_cases, what);
}

/* criterion_shim.c — the runner of the Criterion shim: registration, one forked child per test, the closing "N passed, N failed, N skipped" line. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fnmatch.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "criterion/criterion.h"

/* Exit codes of a test child. */
#define SHIM_PASS 0
#define SHIM_FAIL 1
#define SHIM_SKIP 77

static cr_shim_test *shim_tests;
static cr_shim_suite *shim_suites;
static void (*shim_hooks[2])(void *);

/* State of the test running in this (child) process. */
static jmp_buf shim_jmp;
static int shim_in_test;
static int shim_failed;

void cr_shim_register(cr_shim_test *t) {
    t->next = shim_tests;
    shim_tests = t;
}

void cr_shim_register_suite(cr_shim_suite *s) {
    s->next = shim_suites;
    shim_suites = s;
}

void cr_shim_set_hook(int kind, void (*fn)(void *)) {
    if (kind >= 0 && kind < 2) shim_hooks[kind] = fn;
}

static void shim_vreport(const char *head, const char *fmt, va_list ap) {
    fprintf(stderr, "%s", head);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void cr_shim_fail(int fatal, const char *file, int line, const char *cond, const char *fmt, ...) {
    char head[512];
    snprintf(head, sizeof head, "%s:%d: %s: ", file, line, fatal ? "Assertion failed" : "Expectation failed");
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        shim_vreport(head, fmt, ap);
        va_end(ap);
    } else {
        fprintf(stderr, "%s%s\n", head, cond);
        fflush(stderr);
    }
    shim_failed = 1;
    if (fatal) {
        if (shim_in_test) longjmp(shim_jmp, SHIM_FAIL);
        exit(SHIM_FAIL); /* outside a test body (a hook or a parameter function) */
    }
}

_Noreturn void cr_shim_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    shim_vreport("skipped: ", fmt, ap);
    va_end(ap);
    if (shim_in_test) longjmp(shim_jmp, SHIM_SKIP);
    exit(SHIM_SKIP);
}

void cr_shim_log(const char *level, const char *fmt, ...) {
    char head[32];
    snprintf(head, sizeof head, "[%s] ", level);
    va_list ap;
    va_start(ap, fmt);
    shim_vreport(head, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- running */

static const struct cr_shim_opts *shim_suite_opts(const char *suite) {
    for (cr_shim_suite *s = shim_suites; s; s = s->next)
        if (!strcmp(s->name, suite)) return &s->opts;
    return NULL;
}

/* In the child: init, body (left by longjmp on a fatal failure or a skip), fini. */
static _Noreturn void shim_child(const cr_shim_test *t, void *param) {
    const struct cr_shim_opts *so = shim_suite_opts(t->suite);
    /* volatile: read again after longjmp */
    void (*volatile init)(void) = t->opts.init ? t->opts.init : so ? so->init : NULL;
    void (*volatile fini)(void) = t->opts.fini ? t->opts.fini : so ? so->fini : NULL;
    volatile int code = SHIM_PASS;
    shim_in_test = 1;
    int jumped = setjmp(shim_jmp);
    if (!jumped) {
        if (init) init();
        if (t->pfn) t->pfn(param);
        else t->fn();
    } else {
        code = jumped;
    }
    if (fini) {
        int again = setjmp(shim_jmp); /* a failing assert inside fini ends fini */
        if (!again) fini();
    }
    fflush(stdout);
    fflush(stderr);
    _exit(code == SHIM_SKIP ? SHIM_SKIP : (code == SHIM_FAIL || shim_failed) ? SHIM_FAIL : SHIM_PASS);
}

static double shim_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs one test instance in a child; returns SHIM_PASS, SHIM_FAIL or SHIM_SKIP. */
static int shim_run_one(const cr_shim_test *t, void *param, const char *label, double timeout) {
    fflush(stdout);
    fflush(stderr);
    double t0 = shim_now();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "[FAIL] %s: fork: %s\n", label, strerror(errno));
        return SHIM_FAIL;
    }
    if (pid == 0) shim_child(t, param);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) { status = -1; break; }
        if (timeout > 0 && shim_now() - t0 > timeout) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            printf("[FAIL] %s: timed out after %.0f s\n", label, timeout);
            return SHIM_FAIL;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    double dt = shim_now() - t0;
    if (status != -1 && WIFEXITED(status)) {
        int c = WEXITSTATUS(status);
        if (c == SHIM_PASS) { printf("[PASS] %s (%.2f s)\n", label, dt); return SHIM_PASS; }
        if (c == SHIM_SKIP) { printf("[SKIP] %s\n", label); return SHIM_SKIP; }
        printf("[FAIL] %s (exit %d, %.2f s)\n", label, c, dt);
        return SHIM_FAIL;
    }
    if (status != -1 && WIFSIGNALED(status)) printf("[FAIL] %s: crashed (%s)\n", label, strsignal(WTERMSIG(status)));
    else printf("[FAIL] %s: lost the child\n", label);
    return SHIM_FAIL;
}

static int shim_cmp(const void *a, const void *b) {
    const cr_shim_test *x = *(cr_shim_test *const *)a, *y = *(cr_shim_test *const *)b;
    int c = strcmp(x->suite, y->suite);
    return c ? c : strcmp(x->name, y->name);
}

static void shim_usage(const char *argv0) {
    printf("usage: %s [--filter GLOB] [--exclude GLOB]... [--list] [-jN]\n"
           "Criterion-compatible shim runner: tests run one at a time, each in a forked child.\n", argv0);
}

int main(int argc, char **argv) {
    const char *filter = NULL;
    const char *exclude[64];
    int n_exclude = 0, list = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strncmp(a, "--filter=", 9)) filter = a + 9;
        else if (!strcmp(a, "--exclude") && i + 1 < argc) { if (n_exclude < 64) exclude[n_exclude++] = argv[++i]; }
        else if (!strncmp(a, "--exclude=", 10)) { if (n_exclude < 64) exclude[n_exclude++] = a + 10; }
        else if (!strcmp(a, "--list") || !strcmp(a, "-l")) list = 1;
        else if (!strncmp(a, "-j", 2) || !strncmp(a, "--jobs", 6) || !strcmp(a, "--verbose") || !strncmp(a, "--verbose=", 10)) {
            if ((!strcmp(a, "-j") || !strcmp(a, "--jobs")) && i + 1 < argc) i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { shim_usage(argv[0]); return 0; }
        else { fprintf(stderr, "%s: unknown option %s\n", argv[0], a); shim_usage(argv[0]); return 2; }
    }
    size_t n = 0;
    for (cr_shim_test *t = shim_tests; t; t = t->next) n++;
    cr_shim_test **v = calloc(n ? n : 1, sizeof *v);
    if (!v) return 1;
    n = 0;
    for (cr_shim_test *t = shim_tests; t; t = t->next) v[n++] = t;
    qsort(v, n, sizeof *v, shim_cmp);

    double scale = 1.0;
    const char *sc = getenv("CR_SHIM_TIMEOUT_SCALE");
    if (sc && atof(sc) > 0) scale = atof(sc);

    struct criterion_test_set set = {n};
    if (!list && shim_hooks[CR_SHIM_PRE_ALL]) shim_hooks[CR_SHIM_PRE_ALL](&set);
    long passed = 0, failed = 0, skipped = 0, excluded = 0;
    double t_all = shim_now();
    for (size_t k = 0; k < n; k++) {
        const cr_shim_test *t = v[k];
        char id[256];
        snprintf(id, sizeof id, "%s/%s", t->suite, t->name);
        if (filter && fnmatch(filter, id, 0) != 0) continue;
        int ex = 0;
        for (int e = 0; e < n_exclude; e++) ex |= fnmatch(exclude[e], id, 0) == 0;
        const struct cr_shim_opts *so = shim_suite_opts(t->suite);
        double timeout = t->opts.timeout > 0 ? t->opts.timeout : so && so->timeout > 0 ? so->timeout : 0;
        if (list) { printf("%s\n", id); continue; }
        if (ex) { printf("[EXCLUDED] %s (--exclude)\n", id); excluded++; continue; }
        if (t->opts.disabled || (so && so->disabled)) { printf("[SKIP] %s (disabled)\n", id); skipped++; continue; }
        if (!t->pfn) {
            int r = shim_run_one(t, NULL, id, timeout * scale);
            passed += r == SHIM_PASS, failed += r == SHIM_FAIL, skipped += r == SHIM_SKIP;
            continue;
        }
        struct criterion_test_params p = t->params();
        for (size_t i = 0; i < p.length; i++) {
            char label[300];
            snprintf(label, sizeof label, "%s [param %zu]", id, i);
            int r = shim_run_one(t, (char *)p.params + i * p.size, label, timeout * scale);
            passed += r == SHIM_PASS, failed += r == SHIM_FAIL, skipped += r == SHIM_SKIP;
        }
        if (p.cleanup) p.cleanup(&p);
    }
    free(v);
    if (list) return 0;
    struct criterion_global_stats st = {(size_t)(passed + failed + skipped), (size_t)passed, (size_t)failed, (size_t)skipped};
    fflush(stdout);
    if (shim_hooks[CR_SHIM_POST_ALL]) shim_hooks[CR_SHIM_POST_ALL](&st);
    fflush(stderr);
    if (excluded) printf("(%ld excluded by --exclude, %.1f s)\n", excluded, shim_now() - t_all);
    else printf("(%.1f s)\n", shim_now() - t_all);
    printf("%ld passed, %ld failed, %ld skipped\n", passed, failed, skipped);
    fflush(stdout);
    return failed ? 1 : 0;
}

/* tu_tally.h — per-backend totals (passed, failed, unsupported) summed across Criterion's test processes through a file. */
#ifndef TU_TALLY_H
#define TU_TALLY_H

/*
 * Criterion runs every test in its own process, so a suite's per-backend totals travel through a
 * file: the runner creates it before any test starts and names it in an environment variable that
 * the test processes inherit (tu_tally_start, from ReportHook(PRE_ALL)); each test appends one line
 * (tu_tally_add); after the last test the runner sums the lines per backend, prints one line each
 * and removes the file (tu_tally_finish, from ReportHook(POST_ALL)). The two hooks live in the test
 * program: every test program links tests/util, and only the suites that tally want them.
 *
 * Best effort throughout: a file that cannot be made, written or read shortens or drops the
 * summary and fails nothing.
 */

/* One suite's tally: which variable names the file, and how its lines read. */
typedef struct tu_tally {
    const char *env;    /* the environment variable naming the file, e.g. "APR_CONFORMANCE_TALLY" */
    const char *tag;    /* the file is /tmp/apr-<tag>-XXXXXX */
    const char *prefix; /* printed before each summary line's backend name: "" or e.g. "gradcheck " */
} tu_tally;

/* Backends summed at most; lines naming further ones are dropped. Names are at most 63 bytes. */
#define TU_TALLY_MAX_BACKENDS 16

/* In the runner, before any test: creates the empty file and sets t->env to its path. */
void tu_tally_start(const tu_tally *t);

/* In a test: appends "backend passed failed unsupported" in one O_APPEND write (atomic, so lines of
 * parallel tests never interleave). Does nothing when t->env is unset. */
void tu_tally_add(const tu_tally *t, const char *backend, long passed, long failed, long unsupported);

/* In the runner, after every test: prints "<prefix><backend>: P passed, F failed, U unsupported" to
 * stderr for each backend, in the order the lines first name them, and removes the file. */
void tu_tally_finish(const tu_tally *t);

#endif

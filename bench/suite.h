/* suite.h — runs the selected cases over thread counts and backends, peer first, into the report. */
#ifndef BENCH_SUITE_H
#define BENCH_SUITE_H

#include "apr/apr.h"
#include "cases.h"
#include "ceiling.h"
#include "peer.h"
#include "report.h"
#include "sampler.h"

typedef struct suite_cfg {
    apr_registry *reg;
    const char *const *backends;     /* names of the backends to run */
    int n_backends;
    const int *threads;              /* thread counts, in order */
    int n_threads;
    const ceiling *ceilings;         /* ceilings[i] belongs to thread count ceil_threads_of(i) */
    int n_ceilings;
    const cases_case *const *cases;  /* the selected cases, in order */
    int n_cases;
    peer *peer;                      /* NULL: no peer */
    sampler_opts sampling;
    double ref_cap_gflop;            /* reference backend: skip cases above this work */
    long long cache_bytes;           /* last-level cache, for the operand copies */
    unsigned timeout_s;              /* one benchmark longer than this ends the run; 0 = no limit */
} suite_cfg;

/* Returns 0 when everything that ran succeeded (skipped and unsupported cases are fine), 1 when
 * something failed or disagreed with the peer. */
int suite_run(const suite_cfg *cfg, report *rep);

#endif

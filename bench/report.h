/* report.h — the results: a table on stdout as rows arrive, or one JSON document at the end. */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdbool.h>

#include "apr/apr.h"
#include "cases.h"
#include "ceiling.h"
#include "peer.h"

typedef enum report_status { REPORT_OK, REPORT_UNSUPPORTED, REPORT_SKIPPED, REPORT_FAILED } report_status;

/* One measured (or skipped) case on one backend at one thread count. */
typedef struct report_row {
    const cases_case *c;
    const char *backend;      /* apr backend name, or "OpenBLAS" for the peer */
    bool is_peer;
    int threads;
    report_status status;
    char note[600];           /* why skipped/unsupported/failed, or a remark */
    double median_s, min_s;   /* per run */
    int samples, runs_per_sample, copies;
    double gflops;            /* 0 when flops are not the measure */
    double gbps;
    double ceiling;           /* the ceiling it is held to (GB/s or GFLOP/s, per c->bound) */
    double of_ceiling;        /* achieved / ceiling */
    double vs_peer;           /* peer time / our time (> 1: faster than OpenBLAS); 0 = no peer */
    double max_rel_err;       /* vs the peer's result: max |ours - peer| / max |peer|; < 0 = not checked */
} report_row;

typedef struct report report;

/* Everything the header states. */
typedef struct report_setup {
    bool json, quick;
    int repeat;
    const apr_host_info *host;
    const char *simd;                 /* ISA of the ceiling kernels */
    const ceiling *ceilings;
    int n_ceilings;
    size_t bw_array_bytes;
    const peer_info *peer;
    const char *const *backends;
    int n_backends;
    double ref_cap_gflop;
    double loadavg;                   /* 1-minute load average before the run; < 0 = unknown */
} report_setup;

/* Starts the report (the table mode prints the header now). NULL when out of memory. */
report *report_begin(const report_setup *s);
/* Adds a row (the table mode prints it now). */
void report_row_add(report *r, const report_row *row);
/* Ends the report: the table mode prints the headline summary, the JSON mode the document.
 * Frees r. Returns 0, or -1 when the JSON could not be produced. */
int report_end(report *r);

#endif

/* main.c — apr-bench: times single ops on apr backends against this machine's ceilings and OpenBLAS.
 *
 * Reading order: opts (command line), ceiling + simd (the machine's limits), peer (OpenBLAS),
 * cases (what is measured), operands + oprun + sampler (how one measurement is made), suite (the
 * loop over cases, threads and backends), report (table or JSON). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr.h"
#include "cases.h"
#include "ceiling.h"
#include "common/cli.h"
#include "modelbench.h"
#include "opts.h"
#include "peer.h"
#include "report.h"
#include "simd.h"
#include "suite.h"
#include "trainbench.h"

#define MAIN_MAX_BACKENDS 16

/* The 1-minute load average, or -1. */
static double main_loadavg(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static void main_list_cases(void) {
    int n;
    const cases_case *all = cases_all(&n);
    for (int i = 0; i < n; i++) {
        char desc[64];
        cases_describe(&all[i], desc, sizeof desc);
        printf("%-24s %-30s %-4s %s%s\n", all[i].id, desc, apr_dtype_name(all[i].dtype),
               all[i].bound == CASES_BOUND_READ ? "memory-bound" : "compute-bound", all[i].quick ? ", quick" : "");
    }
}

/* The backends to run: the one named (checked by opening it), or every usable one. Returns an
 * exit code. */
static int main_backends(apr_registry *reg, const char *name, const char **names, int *n) {
    *n = 0;
    if (name) {
        apr_backend *be;
        apr_error e;
        apr_status s = apr_backend_open(reg, name, 1, &be, &e);
        if (s != APR_OK) {
            fprintf(stderr, "error: %s\n", e.msg);
            return s == APR_ERR_NOT_FOUND ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
        apr_backend_close(be);
        names[(*n)++] = name;
        return CLI_EXIT_OK;
    }
    for (int i = 0; i < apr_registry_count(reg) && *n < MAIN_MAX_BACKENDS; i++) {
        const apr_plugin_record *r = apr_registry_record(reg, i);
        if (r->state == APR_PLUGIN_OK) names[(*n)++] = r->name;
    }
    if (!*n) {
        fprintf(stderr, "error: no usable backend in %s (run apr-probe to see why)\n", apr_registry_search_path(reg));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/* Thread counts for the ceilings: 1, all physical cores, and every count that is run, ascending. */
static int main_ceiling_threads(const opts *o, int cores, int *out) {
    int n = 0;
    int want[OPTS_MAX_THREADS + 2];
    want[n++] = 1;
    want[n++] = cores;
    for (int i = 0; i < o->n_threads; i++) want[n++] = o->threads[i];
    int m = 0;
    for (int i = 0; i < n; i++) {
        bool dup = false;
        for (int j = 0; j < m; j++) dup |= out[j] == want[i];
        if (!dup) out[m++] = want[i];
    }
    for (int i = 1; i < m; i++) /* insertion sort */
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            int t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return m;
}

int main(int argc, char **argv) {
    opts o;
    if (opts_parse(argc, argv, &o)) {
        opts_free(&o);
        return CLI_EXIT_USAGE;
    }
    if (o.help || o.list) {
        if (o.help) opts_help(stdout);
        else main_list_cases();
        opts_free(&o);
        return CLI_EXIT_OK;
    }

    int rc = CLI_EXIT_FAIL;
    apr_registry *reg = NULL;
    modelbench_model *model = NULL;
    peer *pe = NULL;
    ceiling_reader *reader = NULL;
    apr_error e;
    if (apr_registry_open(NULL, &reg, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto out;
    }
    const apr_host_info *host = apr_registry_host(reg);
    const char *backends[MAIN_MAX_BACKENDS];
    int n_backends;
    /* --train without --backend: the default backend alone (a step of a real model takes tens of seconds) */
    const char *backend = o.backend;
    if (o.train && !backend && !(backend = apr_registry_default(reg))) {
        fprintf(stderr, "error: no usable backend in %s (run apr-probe to see why)\n", apr_registry_search_path(reg));
        goto out;
    }
    if ((rc = main_backends(reg, backend, backends, &n_backends)) != CLI_EXIT_OK) goto out;
    rc = CLI_EXIT_FAIL;
    /* the arguments are checked before the ceilings, which take seconds to measure */
    if (o.model && !(model = modelbench_load(o.model))) goto out;
    if (o.train && (!(model = modelbench_load(o.train)) || trainbench_check(&o, modelbench_llama(model)))) goto out;
    int cores = host->n_physical_cores > 0 ? host->n_physical_cores : 1;
    if (!o.n_threads) o.threads[o.n_threads++] = cores;

    /* the cases */
    const cases_case *selected[OPTS_MAX_CASES];
    int n_sel = 0, n_all;
    const cases_case *all = cases_all(&n_all);
    bool any_peer = false;
    if (o.n_cases) {
        for (int i = 0; i < o.n_cases; i++) selected[n_sel++] = cases_find(o.cases[i]);
    } else {
        for (int i = 0; i < n_all && n_sel < OPTS_MAX_CASES; i++)
            if (!o.quick || all[i].quick) selected[n_sel++] = &all[i];
    }
    for (int i = 0; i < n_sel; i++) any_peer |= cases_has_peer(selected[i]);

    /* the ceilings */
    double loadavg = main_loadavg();
    int ceil_threads[OPTS_MAX_THREADS + 2];
    int n_ceil = main_ceiling_threads(&o, cores, ceil_threads);
    ceiling ceilings[OPTS_MAX_THREADS + 2];
    size_t bw_bytes = (size_t)(o.bw_mib ? o.bw_mib : 1024) << 20;
    if (!o.bw_mib && (size_t)host->l3_bytes * 8 > bw_bytes) bw_bytes = (size_t)host->l3_bytes * 8;
    fprintf(stderr, "apr-bench: measuring ceilings (read bandwidth over %zu MiB, FMA peak) for", bw_bytes >> 20);
    for (int i = 0; i < n_ceil; i++) fprintf(stderr, " %d", ceil_threads[i]);
    fprintf(stderr, " thread(s), %s kernels\n", simd_isa());
    char err[256];
    int max_ceil_threads = 1;
    for (int i = 0; i < n_ceil; i++)
        if (ceil_threads[i] > max_ceil_threads) max_ceil_threads = ceil_threads[i];
    if (ceiling_reader_new(bw_bytes, max_ceil_threads, &reader, err, sizeof err) ||
        ceiling_measure(reader, ceil_threads, n_ceil, o.quick ? 3 : 5, o.quick ? 0.03 : 0.08, ceilings, err,
                        sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        goto out;
    }

    if (o.model || o.train) {
        if (!o.json)
            printf("apr-bench %s: %s, %d physical cores; ceilings measured in this run:\n", APR_VERSION_STRING, host->cpu_model, cores);
        for (int i = 0; i < n_ceil && !o.json; i++)
            printf("  %d thread(s): read %.1f GB/s, f32 FMA %.1f GFLOP/s\n", ceilings[i].threads, ceilings[i].read_gbps,
                   ceilings[i].fma_gflops);
        if (o.train)
            rc = trainbench_run(&o, modelbench_llama(model), reg, backends, n_backends, ceilings, n_ceil, loadavg) ? CLI_EXIT_FAIL
                                                                                                               : CLI_EXIT_OK;
        else
            rc = modelbench_run(&o, model, reg, backends, n_backends, ceilings, n_ceil, reader) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
        goto out;
    }

    ceiling_reader_free(reader); /* only the model benchmark measures again */
    reader = NULL;

    /* the peer */
    peer_info pinfo = {.why_not = o.no_peer ? "--no-peer" : "no selected case has an OpenBLAS equivalent"};
    if (!o.no_peer && any_peer) pe = peer_open(&pinfo);

    report_setup setup = {.json = o.json, .quick = o.quick, .repeat = o.repeat, .host = host, .simd = simd_isa(),
                          .ceilings = ceilings, .n_ceilings = n_ceil, .bw_array_bytes = bw_bytes, .peer = &pinfo,
                          .backends = backends, .n_backends = n_backends, .ref_cap_gflop = o.ref_cap_gflop, .loadavg = loadavg};
    report *rep = report_begin(&setup);
    if (!rep) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    suite_cfg cfg = {.reg = reg, .backends = backends, .n_backends = n_backends, .threads = o.threads,
                     .n_threads = o.n_threads, .ceilings = ceilings, .n_ceilings = n_ceil, .cases = selected,
                     .n_cases = n_sel, .peer = pe,
                     .sampling = {.repeat = o.repeat, .min_sample_s = o.quick ? 0.01 : 0.02, .slow_run_s = 1.0},
                     .ref_cap_gflop = o.ref_cap_gflop, .cache_bytes = host->l3_bytes,
                     .timeout_s = (unsigned)o.timeout_s};
    rc = suite_run(&cfg, rep) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    if (report_end(rep)) {
        fprintf(stderr, "error: could not produce the JSON document\n");
        rc = CLI_EXIT_FAIL;
    }
out:
    modelbench_free(model);
    ceiling_reader_free(reader);
    peer_close(pe);
    if (reg) apr_registry_close(reg);
    opts_free(&o);
    return rc;
}

/* report.c — the results: a table on stdout as rows arrive, or one JSON document at the end. */
#include "report.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct report {
    report_setup s;
    cJSON *root;            /* JSON mode */
    cJSON *results;
    report_row *rows;       /* table mode: kept for the summary */
    int n_rows, cap_rows;
};

static const char *const report_status_names[] = {"ok", "unsupported", "skipped", "failed"};

static const char *report_bound_name(const cases_case *c) { return c->bound == CASES_BOUND_READ ? "read" : "fma"; }

/* ---------------------------------------------------------------- table */

#define REPORT_COLS "%-32s %-5s %-11s %3s %10s %9s %8s %5s %7s %11s  %s\n"

static void report_table_head(void) {
    printf(REPORT_COLS, "case", "dtype", "backend", "thr", "median ms", "GFLOP/s", "GB/s", "bound", "of ceil",
           "vs OpenBLAS", "note");
}

static void report_num(char *buf, size_t n, double v, const char *fmt) {
    if (v > 0) snprintf(buf, n, fmt, v);
    else snprintf(buf, n, "-");
}

static void report_table_row(const report_row *r) {
    char desc[64], thr[16], ms[32] = "-", gf[32] = "-", gb[32] = "-", of[32] = "-", vs[32] = "-";
    cases_describe(r->c, desc, sizeof desc);
    snprintf(thr, sizeof thr, "%d", r->threads);
    if (r->status == REPORT_OK) {
        report_num(ms, sizeof ms, r->median_s * 1e3, r->median_s < 1e-2 ? "%.4f" : "%.2f");
        report_num(gf, sizeof gf, r->gflops, "%.1f");
        if (r->c->bound == CASES_BOUND_READ) report_num(gb, sizeof gb, r->gbps, "%.2f");
        report_num(of, sizeof of, r->of_ceiling, "%.2f");
        report_num(vs, sizeof vs, r->vs_peer, "%.2f");
    }
    char note[700];
    if (r->status == REPORT_OK) snprintf(note, sizeof note, "%s", r->note);
    else snprintf(note, sizeof note, "%s: %s", report_status_names[r->status], r->note);
    printf(REPORT_COLS, desc, apr_dtype_name(r->c->dtype), r->backend, thr, ms, gf, gb,
           report_bound_name(r->c), of, vs, note);
}

static void report_table_header(const report_setup *s) {
    const apr_host_info *h = s->host;
    printf("apr-bench %s: %s, %d physical cores, L3 %lld MiB; %s run, median of %d samples after a warm-up\n",
           APR_VERSION_STRING, h->cpu_model[0] ? h->cpu_model : "unknown CPU", h->n_physical_cores,
           (long long)(h->l3_bytes >> 20), s->quick ? "quick" : "full", s->repeat);
    if (s->loadavg >= 0) {
        printf("load average before the run: %.2f", s->loadavg);
        if (s->loadavg > 0.5) printf(" -- other work is running on this machine: expect noisy figures");
        printf("\n");
    }
    printf("\nceilings measured in this run (%s kernels):\n", s->simd);
    printf("  %7s  %28s  %22s\n", "threads", "read GB/s (sum, best of N)", "f32 FMA GFLOP/s (peak)");
    for (int i = 0; i < s->n_ceilings; i++)
        printf("  %7d  %28.1f  %22.1f\n", s->ceilings[i].threads, s->ceilings[i].read_gbps, s->ceilings[i].fma_gflops);
    printf("  (read: sum over a %zu MiB f32 array; FMA: 16 independent vector chains per thread)\n",
           s->bw_array_bytes >> 20);
    const peer_info *p = s->peer;
    if (p->loaded)
        printf("\npeer: OpenBLAS (%s), core %s%s%s%s\n", p->library, p->corename,
               p->coretype[0] ? ", OPENBLAS_CORETYPE=" : "", p->coretype,
               p->coretype_set_by_us ? " (set by apr-bench)" : p->coretype[0] ? " (from the environment)" : "");
    else printf("\npeer: none (%s)\n", p->why_not ? p->why_not : "not loaded");
    printf("backends:");
    for (int i = 0; i < s->n_backends; i++) printf(" %s", s->backends[i]);
    printf("\n\nGFLOP/s for matmul and attention; GB/s = bytes of weights + activations read and results written,\n"
           "once each. 'of ceil' = achieved / the ceiling above at the same thread count: GB/s / read for\n"
           "bound 'read' (GEMV, row ops, decode attention), GFLOP/s / FMA for bound 'fma' (GEMM, prefill\n"
           "attention). 'vs OpenBLAS' = OpenBLAS time / our time on the same shape and threads (> 1: faster).\n\n");
    report_table_head();
}

/* ---------------------------------------------------------------- JSON */

static cJSON *report_json_header(const report_setup *s) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "tool", "apr-bench");
    cJSON_AddStringToObject(root, "version", APR_VERSION_STRING);
    cJSON_AddBoolToObject(root, "quick", s->quick);
    cJSON_AddNumberToObject(root, "repeat", s->repeat);
    cJSON *host = cJSON_AddObjectToObject(root, "host");
    cJSON_AddStringToObject(host, "cpu_model", s->host->cpu_model);
    cJSON_AddNumberToObject(host, "physical_cores", s->host->n_physical_cores);
    cJSON_AddNumberToObject(host, "logical_cpus", s->host->n_logical_cpus);
    cJSON_AddNumberToObject(host, "l3_bytes", (double)s->host->l3_bytes);
    cJSON_AddStringToObject(host, "cpu_features", s->host->cpu_features);
    cJSON *ce = cJSON_AddArrayToObject(root, "ceilings");
    for (int i = 0; i < s->n_ceilings; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "threads", s->ceilings[i].threads);
        cJSON_AddNumberToObject(o, "read_gbps", s->ceilings[i].read_gbps);
        cJSON_AddNumberToObject(o, "fma_gflops", s->ceilings[i].fma_gflops);
        cJSON_AddItemToArray(ce, o);
    }
    cJSON_AddStringToObject(root, "ceiling_simd", s->simd);
    cJSON_AddNumberToObject(root, "bandwidth_array_bytes", (double)s->bw_array_bytes);
    const peer_info *p = s->peer;
    if (p->loaded) {
        cJSON *po = cJSON_AddObjectToObject(root, "peer");
        cJSON_AddStringToObject(po, "name", "OpenBLAS");
        cJSON_AddStringToObject(po, "library", p->library);
        cJSON_AddStringToObject(po, "corename", p->corename);
        cJSON_AddStringToObject(po, "config", p->config);
        cJSON_AddStringToObject(po, "coretype_env", p->coretype);
        cJSON_AddBoolToObject(po, "coretype_set_by_apr_bench", p->coretype_set_by_us);
    } else {
        cJSON_AddNullToObject(root, "peer");
        cJSON_AddStringToObject(root, "peer_missing", p->why_not ? p->why_not : "not loaded");
    }
    cJSON *be = cJSON_AddArrayToObject(root, "backends");
    for (int i = 0; i < s->n_backends; i++) cJSON_AddItemToArray(be, cJSON_CreateString(s->backends[i]));
    cJSON_AddNumberToObject(root, "reference_cap_gflop", s->ref_cap_gflop);
    if (s->loadavg >= 0) cJSON_AddNumberToObject(root, "loadavg_before", s->loadavg);
    return root;
}

static void report_json_row(cJSON *arr, const report_row *r) {
    const cases_case *c = r->c;
    char desc[64];
    cases_describe(c, desc, sizeof desc);
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    cJSON_AddStringToObject(o, "case", c->id);
    cJSON_AddStringToObject(o, "shape", desc);
    cJSON_AddStringToObject(o, "dtype", apr_dtype_name(c->dtype));
    cJSON_AddStringToObject(o, "backend", r->backend);
    cJSON_AddBoolToObject(o, "peer", r->is_peer);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddStringToObject(o, "status", report_status_names[r->status]);
    cJSON_AddStringToObject(o, "note", r->note);
    cJSON_AddBoolToObject(o, "headline", c->headline);
    cJSON_AddStringToObject(o, "bound", report_bound_name(c));
    cJSON_AddNumberToObject(o, "flops", cases_flops(c));
    cJSON_AddNumberToObject(o, "bytes", cases_bytes(c));
    if (r->status == REPORT_OK) {
        cJSON_AddNumberToObject(o, "median_ms", r->median_s * 1e3);
        cJSON_AddNumberToObject(o, "min_ms", r->min_s * 1e3);
        cJSON_AddNumberToObject(o, "samples", r->samples);
        cJSON_AddNumberToObject(o, "runs_per_sample", r->runs_per_sample);
        cJSON_AddNumberToObject(o, "copies", r->copies);
        if (r->gflops > 0) cJSON_AddNumberToObject(o, "gflops", r->gflops);
        else cJSON_AddNullToObject(o, "gflops");
        cJSON_AddNumberToObject(o, "gbps", r->gbps);
        cJSON_AddNumberToObject(o, "ceiling", r->ceiling);
        cJSON_AddNumberToObject(o, "of_ceiling", r->of_ceiling);
        if (r->vs_peer > 0) cJSON_AddNumberToObject(o, "vs_peer", r->vs_peer);
        else cJSON_AddNullToObject(o, "vs_peer");
        if (r->max_rel_err >= 0) cJSON_AddNumberToObject(o, "max_rel_err_vs_peer", r->max_rel_err);
    }
    cJSON_AddItemToArray(arr, o);
}

/* ---------------------------------------------------------------- entry points */

report *report_begin(const report_setup *s) {
    report *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->s = *s;
    if (s->json) {
        r->root = report_json_header(s);
        r->results = r->root ? cJSON_AddArrayToObject(r->root, "results") : NULL;
        if (!r->results) {
            cJSON_Delete(r->root);
            free(r);
            return NULL;
        }
    } else {
        report_table_header(s);
        fflush(stdout);
    }
    return r;
}

void report_row_add(report *r, const report_row *row) {
    if (r->s.json) {
        report_json_row(r->results, row);
        return;
    }
    report_table_row(row);
    fflush(stdout);
    if (r->n_rows == r->cap_rows) {
        int cap = r->cap_rows ? 2 * r->cap_rows : 64;
        report_row *n = realloc(r->rows, (size_t)cap * sizeof *n);
        if (!n) return; /* the summary just lacks this row */
        r->rows = n;
        r->cap_rows = cap;
    }
    r->rows[r->n_rows++] = *row;
}

int report_end(report *r) {
    int rc = 0;
    if (r->s.json) {
        char *text = cJSON_Print(r->root);
        if (text) {
            printf("%s\n", text);
            free(text);
        } else {
            rc = -1;
        }
        cJSON_Delete(r->root);
    } else {
        int shown = 0, above = 0;
        for (int i = 0; i < r->n_rows; i++) above += r->rows[i].status == REPORT_OK && r->rows[i].of_ceiling > 1.05;
        if (above)
            printf("\nnote: %d figure%s above its ceiling: the machine was busier while the ceilings were measured\n"
                   "than later (or data stayed in cache); re-run on a quiet machine for ratios to trust.\n",
                   above, above == 1 ? " is" : "s are");
        for (int i = 0; i < r->n_rows; i++) {
            const report_row *row = &r->rows[i];
            if (!row->c->headline || row->is_peer) continue;
            if (!shown++)
            {
                printf("\nheadline (f32; 'of ceil': GEMM / FMA peak, GEMV / read bandwidth, at the same threads):\n");
                report_table_head();
            }
            report_table_row(row);
        }
    }
    free(r->rows);
    free(r);
    return rc;
}

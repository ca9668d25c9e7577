/* suite.c — runs the selected cases over thread counts and backends, peer first, into the report.
 *
 * For each case the operands are made once; for each thread count OpenBLAS runs first, then (after
 * a pause that lets its spinning workers go idle) each backend, opened for that thread count and
 * closed afterwards, so no idle thread pool competes with the one being timed. */
#include "suite.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hostbuf.h"
#include "operands.h"
#include "oprun.h"
#include "timing.h"
#include "watchdog.h"

#define SUITE_MAX_REL_ERR 1e-4   /* f32 matmul vs OpenBLAS: both accumulate f32, K <= 4096 */
#define SUITE_PEER_COOLDOWN_S 0.3

typedef struct suite_state {
    const suite_cfg *cfg;
    report *rep;
    int done, total;
    int rc;
} suite_state;

/* Announces a benchmark on stderr and arms the watchdog for it. */
static void suite_progress(suite_state *st, const cases_case *c, const char *backend, int threads) {
    char desc[64], what[160];
    cases_describe(c, desc, sizeof desc);
    snprintf(what, sizeof what, "%s %s on %s, %d thread%s", desc, apr_dtype_name(c->dtype), backend, threads,
             threads == 1 ? "" : "s");
    fprintf(stderr, "apr-bench: [%d/%d] %s\n", ++st->done, st->total, what);
    watchdog_arm(st->cfg->timeout_s, what);
}

static const ceiling *suite_ceiling(const suite_cfg *cfg, int threads) {
    for (int i = 0; i < cfg->n_ceilings; i++)
        if (cfg->ceilings[i].threads == threads) return &cfg->ceilings[i];
    return NULL;
}

/* Fills the derived figures of a row that has its times. */
static void suite_rates(const suite_cfg *cfg, report_row *row) {
    const cases_case *c = row->c;
    double flops = cases_flops(c);
    row->gflops = flops > 0 ? flops / row->median_s * 1e-9 : 0;
    row->gbps = cases_bytes(c) / row->median_s * 1e-9;
    const ceiling *ce = suite_ceiling(cfg, row->threads);
    if (ce) {
        row->ceiling = c->bound == CASES_BOUND_READ ? ce->read_gbps : ce->fma_gflops;
        double got = c->bound == CASES_BOUND_READ ? row->gbps : row->gflops;
        row->of_ceiling = row->ceiling > 0 ? got / row->ceiling : 0;
    }
}

/* ---------------------------------------------------------------- the peer */

typedef struct suite_peer_ctx {
    peer *p;
    const operands *o;
    float *out;
} suite_peer_ctx;

static int suite_peer_once(void *ctx, int copy, char *err, size_t err_size) {
    (void)err;
    (void)err_size;
    suite_peer_ctx *x = ctx;
    const cases_case *c = x->o->c;
    peer_matmul(x->p, (int)c->m, (int)c->n, (int)c->k, x->o->w[copy], x->o->x, x->out);
    return 0;
}

/* Times OpenBLAS on the case; returns its median time per run (0 when it did not run) and leaves
 * its result for copy 0 in out. */
static double suite_peer(suite_state *st, const operands *o, int threads, float *out) {
    const suite_cfg *cfg = st->cfg;
    report_row row = {.c = o->c, .backend = "OpenBLAS", .is_peer = true, .threads = threads, .copies = o->copies,
                      .max_rel_err = -1};
    suite_progress(st, o->c, "OpenBLAS", threads);
    peer_set_threads(cfg->peer, threads);
    suite_peer_ctx x = {.p = cfg->peer, .o = o, .out = out};
    sampler_result r;
    sampler_run(suite_peer_once, &x, o->copies, &cfg->sampling, &r, row.note, sizeof row.note);
    snprintf(row.note, sizeof row.note, "the peer (%s)", o->c->m == 1 ? "cblas_sgemv" : "cblas_sgemm");
    suite_peer_once(&x, 0, NULL, 0);
    row.median_s = r.median_s;
    row.min_s = r.min_s;
    row.samples = r.samples;
    row.runs_per_sample = r.runs_per_sample;
    suite_rates(cfg, &row);
    report_row_add(st->rep, &row);
    timing_sleep(SUITE_PEER_COOLDOWN_S);
    return r.median_s;
}

/* ---------------------------------------------------------------- our backends */

static double suite_rel_err(const float *a, const float *b, size_t n) {
    double diff = 0, mag = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), m = fabs((double)b[i]);
        if (!(d <= diff)) diff = d; /* NaN propagates */
        if (m > mag) mag = m;
    }
    return mag > 0 ? diff / mag : diff;
}

static void suite_backend(suite_state *st, const operands *o, const char *name, int threads, double peer_s,
                          const float *peer_out, float *out) {
    const suite_cfg *cfg = st->cfg;
    const cases_case *c = o->c;
    report_row row = {.c = c, .backend = name, .threads = threads, .copies = o->copies, .max_rel_err = -1};
    double gflop = cases_flops(c) * 1e-9;
    if (!strcmp(name, "reference") && gflop > cfg->ref_cap_gflop) {
        row.status = REPORT_SKIPPED;
        snprintf(row.note, sizeof row.note, "naive backend, %.1f GFLOP per run > cap %.1f (--ref-cap)", gflop,
                 cfg->ref_cap_gflop);
        suite_progress(st, c, name, threads);
        fprintf(stderr, "apr-bench:   skipped: %s\n", row.note);
        report_row_add(st->rep, &row);
        return;
    }
    suite_progress(st, c, name, threads);
    apr_backend *be = NULL;
    apr_error e;
    if (apr_backend_open(cfg->reg, name, threads, &be, &e) != APR_OK) {
        row.status = REPORT_FAILED;
        snprintf(row.note, sizeof row.note, "%s", e.msg);
        st->rc = 1;
        report_row_add(st->rep, &row);
        return;
    }
    sampler_result r;
    oprun_status s = oprun_case(be, o, &cfg->sampling, &r, peer_out ? out : NULL, row.note, sizeof row.note);
    apr_backend_close(be);
    if (s == OPRUN_UNSUPPORTED) {
        row.status = REPORT_UNSUPPORTED;
    } else if (s == OPRUN_FAILED) {
        row.status = REPORT_FAILED;
        st->rc = 1;
        fprintf(stderr, "apr-bench: %s on %s failed: %s\n", c->id, name, row.note);
    } else {
        row.median_s = r.median_s;
        row.min_s = r.min_s;
        row.samples = r.samples;
        row.runs_per_sample = r.runs_per_sample;
        suite_rates(cfg, &row);
        if (peer_s > 0) row.vs_peer = peer_s / r.median_s;
        if (peer_out) {
            row.max_rel_err = suite_rel_err(out, peer_out, o->out_bytes / sizeof(float));
            if (!(row.max_rel_err <= SUITE_MAX_REL_ERR)) {
                snprintf(row.note, sizeof row.note, "WRONG: max rel err %.2g vs OpenBLAS", row.max_rel_err);
                fprintf(stderr, "apr-bench: %s on %s disagrees with OpenBLAS: max rel err %.3g\n", c->id, name,
                        row.max_rel_err);
                st->rc = 1;
            }
        }
    }
    report_row_add(st->rep, &row);
}

/* ---------------------------------------------------------------- the loop */

int suite_run(const suite_cfg *cfg, report *rep) {
    suite_state st = {.cfg = cfg, .rep = rep};
    for (int i = 0; i < cfg->n_cases; i++)
        st.total += cfg->n_threads * (cfg->n_backends + (cfg->peer && cases_has_peer(cfg->cases[i])));
    for (int i = 0; i < cfg->n_cases; i++) {
        const cases_case *c = cfg->cases[i];
        operands o;
        char err[256];
        if (operands_new(&o, c, operands_copies(c, cfg->cache_bytes), err, sizeof err)) {
            fprintf(stderr, "apr-bench: %s\n", err);
            st.rc = 1;
            st.done += cfg->n_threads * cfg->n_backends;
            continue;
        }
        bool with_peer = cfg->peer && cases_has_peer(c);
        float *peer_out = with_peer ? hostbuf_alloc(o.out_bytes) : NULL;
        float *out = with_peer ? hostbuf_alloc(o.out_bytes) : NULL;
        if (with_peer && (!peer_out || !out)) with_peer = false;
        for (int t = 0; t < cfg->n_threads; t++) {
            double peer_s = with_peer ? suite_peer(&st, &o, cfg->threads[t], peer_out) : 0;
            for (int b = 0; b < cfg->n_backends; b++)
                suite_backend(&st, &o, cfg->backends[b], cfg->threads[t], peer_s, with_peer ? peer_out : NULL, out);
        }
        if (peer_out) hostbuf_free(peer_out, o.out_bytes);
        if (out) hostbuf_free(out, o.out_bytes);
        operands_free(&o);
    }
    watchdog_disarm();
    return st.rc;
}

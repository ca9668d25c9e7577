/* test_executor.c — the graph executor: ordering, memory reuse by liveness, placement across two
 * backends with explicit copies, and results equal to a single-backend run. */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apr/apr.h"

static apr_registry *exec_reg;
static apr_backend *exec_ref;     /* the reference backend */
static apr_backend *exec_partial; /* tests/plugins/partial.so: add, mul, scale, silu; memory not host visible */

static void exec_setup(void) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = 0;
    *strrchr(exe, '/') = 0;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/plugins", exe); /* <build>/tests/plugins holds partial.so */
    apr_registry_options o = {.plugin_path = dir};
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, &exec_reg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(exec_reg, "reference", 1, &exec_ref, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(exec_reg, "partial", 1, &exec_partial, &e), APR_OK, "%s", e.msg);
}

static void exec_teardown(void) {
    apr_backend_close(exec_partial);
    apr_backend_close(exec_ref);
    apr_registry_close(exec_reg);
}

static float *exec_random(int64_t n, unsigned *seed) {
    float *p = malloc((size_t)n * sizeof *p);
    cr_assert(p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)rand_r(seed) / (float)RAND_MAX * 2.0f - 1.0f;
    return p;
}

TestSuite(executor, .init = exec_setup, .fini = exec_teardown);

Test(executor, intermediates_reuse_memory_by_liveness) {
    enum { N = 1000, CHAIN = 12 };
    apr_graph *g = apr_graph_new();
    apr_tensor *x = apr_input(g, APR_F32, 1, (int64_t[]){N}, "x");
    apr_tensor *t = x;
    for (int i = 0; i < CHAIN; i++) t = apr_scale(g, t, 1.5f);
    apr_graph_output(g, t);
    cr_assert_null(apr_graph_error(g));
    apr_plan *p;
    apr_error e;
    cr_assert_eq(apr_plan_new(g, &exec_ref, 1, &p, &e), APR_OK, "%s", e.msg);
    apr_plan_stats st;
    apr_plan_stats_get(p, &st);
    int64_t one = (N * 4 + 63) / 64 * 64;
    cr_expect_eq(st.n_nodes, CHAIN);
    cr_expect_eq(st.unshared_bytes, CHAIN * one);
    /* a chain needs only its live pair at any step */
    cr_expect_leq(st.peak_bytes, 2 * one, "peak %lld for a chain of %d", (long long)st.peak_bytes, CHAIN);
    unsigned seed = (unsigned)time(NULL);
    float *in = exec_random(N, &seed), out[N];
    cr_assert_eq(apr_plan_set_input(p, x, in, sizeof(float) * N, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_get_output(p, t, out, sizeof out, &e), APR_OK, "%s", e.msg);
    float f = 1;
    for (int i = 0; i < CHAIN; i++) f *= 1.5f;
    for (int i = 0; i < N; i++) cr_assert_float_eq(out[i], in[i] * f, 1e-4f * fabsf(in[i] * f) + 1e-6f);
    free(in);
    apr_plan_free(p);
    apr_graph_free(g);
}

Test(executor, unused_nodes_are_not_run_and_branches_share_memory) {
    apr_graph *g = apr_graph_new();
    apr_tensor *x = apr_input(g, APR_F32, 2, (int64_t[]){64, 8}, "x");
    apr_tensor *dead = apr_silu(g, x); /* not an output, feeds nothing */
    (void)dead;
    apr_tensor *a = apr_scale(g, x, 2.0f);
    apr_tensor *b = apr_silu(g, a);
    apr_tensor *c = apr_add(g, a, b);
    apr_graph_output(g, c);
    apr_plan *p;
    apr_error e;
    cr_assert_eq(apr_plan_new(g, &exec_ref, 1, &p, &e), APR_OK, "%s", e.msg);
    apr_plan_stats st;
    apr_plan_stats_get(p, &st);
    cr_expect_eq(st.n_nodes, 3);
    cr_expect_eq(st.n_splits, 1);
    cr_expect_eq(st.n_copies, 0);
    cr_expect_null(apr_plan_placement(p, dead));
    apr_plan_free(p);
    apr_graph_free(g);
}

/* x -> matmul (reference only) -> add bias (partial) -> silu (partial) -> rms_norm (reference)
 *   -> mul by gate (partial) -> output: three switches between backends. */
static apr_graph *exec_mixed_graph(const float *w, const float *bias, apr_tensor **x, apr_tensor **gate,
                                   apr_tensor **out) {
    apr_graph *g = apr_graph_new();
    *x = apr_input(g, APR_F32, 2, (int64_t[]){48, 5}, "x");
    *gate = apr_input(g, APR_F32, 2, (int64_t[]){32, 5}, "gate");
    apr_tensor *wt = apr_weight(g, APR_F32, 2, (int64_t[]){48, 32}, w, "w");
    apr_tensor *bt = apr_weight(g, APR_F32, 2, (int64_t[]){32, 5}, bias, "bias");
    apr_tensor *h = apr_matmul(g, wt, *x);
    h = apr_add(g, h, bt);
    h = apr_silu(g, h);
    h = apr_rms_norm(g, h, 1e-5f);
    *out = apr_mul(g, h, *gate);
    apr_graph_output(g, *out);
    cr_assert_null(apr_graph_error(g), "%s", apr_graph_error(g));
    return g;
}

Test(executor, split_across_backends_with_copies_equals_single_backend) {
    unsigned seed = (unsigned)time(NULL);
    float *w = exec_random(48 * 32, &seed), *bias = exec_random(32 * 5, &seed);
    float *xin = exec_random(48 * 5, &seed), *gin = exec_random(32 * 5, &seed);
    float got[2][32 * 5];
    for (int run = 0; run < 2; run++) {
        apr_tensor *x, *gate, *out;
        apr_graph *g = exec_mixed_graph(w, bias, &x, &gate, &out);
        apr_backend *both[2] = {exec_partial, exec_ref};
        apr_plan *p;
        apr_error e;
        if (run == 0) cr_assert_eq(apr_plan_new(g, &exec_ref, 1, &p, &e), APR_OK, "%s", e.msg);
        else cr_assert_eq(apr_plan_new(g, both, 2, &p, &e), APR_OK, "%s", e.msg);
        apr_plan_stats st;
        apr_plan_stats_get(p, &st);
        if (run == 1) {
            cr_expect_eq(st.n_splits, 4, "splits %d", st.n_splits);
            /* per run: the matmul result to partial, silu's to reference, the norm and the gate input
             * to partial; the bias is a weight, uploaded to partial once when the plan is made */
            cr_expect_eq(st.n_copies, 4, "copies %d", st.n_copies);
            cr_expect_str_eq(apr_backend_name(apr_plan_placement(p, out)), "partial");
            apr_plan_dump(p, stderr);
        } else {
            cr_expect_eq(st.n_splits, 1);
            cr_expect_eq(st.n_copies, 0);
        }
        cr_assert_eq(apr_plan_set_input(p, x, xin, sizeof(float) * 48 * 5, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_set_input(p, gate, gin, sizeof(float) * 32 * 5, &e), APR_OK, "%s", e.msg);
        /* twice: the second run must reuse the plan and its copies */
        for (int rep = 0; rep < 2; rep++) cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_get_output(p, out, got[run], sizeof got[run], &e), APR_OK, "%s", e.msg);
        apr_plan_free(p);
        apr_graph_free(g);
    }
    for (int i = 0; i < 32 * 5; i++)
        cr_assert_float_eq(got[1][i], got[0][i], 1e-5f * fabsf(got[0][i]) + 1e-6f, "element %d seed %u", i, seed);
    /* and against a direct computation, so neither run can be wrong in the same way */
    for (int m = 0; m < 5; m++) {
        double h[32], ss = 0;
        for (int n = 0; n < 32; n++) {
            double acc = 0;
            for (int k = 0; k < 48; k++) acc += (double)w[n * 48 + k] * xin[m * 48 + k];
            acc += bias[m * 32 + n];
            h[n] = acc / (1 + exp(-acc));
            ss += h[n] * h[n];
        }
        double inv = 1 / sqrt(ss / 32 + 1e-5);
        for (int n = 0; n < 32; n++) {
            double want = h[n] * inv * gin[m * 32 + n];
            cr_assert(fabs(got[1][m * 32 + n] - want) < 1e-4 * fabs(want) + 1e-5, "m %d n %d: %g vs %g", m, n,
                      got[1][m * 32 + n], want);
        }
    }
    free(w); free(bias); free(xin); free(gin);
}

Test(executor, a_node_no_backend_supports_is_an_error_naming_it) {
    apr_graph *g = apr_graph_new();
    apr_tensor *x = apr_input(g, APR_F32, 2, (int64_t[]){8, 2}, "x");
    apr_tensor *y = apr_rms_norm(g, x, 1e-6f);
    apr_graph_output(g, y);
    apr_plan *p = NULL;
    apr_error e;
    cr_expect_eq(apr_plan_new(g, &exec_partial, 1, &p, &e), APR_ERR_UNSUPPORTED);
    cr_expect_null(p);
    cr_expect(strstr(e.msg, "rms_norm") && strstr(e.msg, "partial"), "%s", e.msg);
    apr_graph_free(g);
}

Test(executor, shape_errors_are_reported_not_fatal) {
    apr_graph *g = apr_graph_new();
    apr_tensor *a = apr_input(g, APR_F32, 2, (int64_t[]){8, 2}, "a");
    apr_tensor *b = apr_input(g, APR_F32, 2, (int64_t[]){7, 2}, "b");
    apr_tensor *bad = apr_matmul(g, a, b);
    cr_expect_null(bad);
    cr_expect(apr_graph_error(g) && strstr(apr_graph_error(g), "inner dims 8 and 7"), "%s", apr_graph_error(g));
    apr_tensor *later = apr_silu(g, bad); /* errors propagate as NULL */
    cr_expect_null(later);
    apr_graph_output(g, later);
    apr_plan *p = NULL;
    apr_error e;
    cr_expect_eq(apr_plan_new(g, &exec_ref, 1, &p, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "malformed"), "%s", e.msg);
    apr_graph_free(g);
}

Test(executor, views_feed_ops_and_io_sizes_are_checked) {
    /* y = W x where x arrives as [K=6, M=3] but is stored transposed ([3, 6]) */
    unsigned seed = (unsigned)time(NULL);
    float *w = exec_random(6 * 4, &seed), *xt = exec_random(3 * 6, &seed);
    apr_graph *g = apr_graph_new();
    apr_tensor *xin = apr_input(g, APR_F32, 2, (int64_t[]){3, 6}, "xt");
    apr_tensor *x = apr_transpose(g, xin);
    cr_expect_not(apr_tensor_is_contiguous(x));
    apr_tensor *xc = apr_cast(g, x, APR_F32);
    apr_tensor *wt = apr_weight(g, APR_F32, 2, (int64_t[]){6, 4}, w, "w");
    apr_tensor *y = apr_matmul(g, wt, xc);
    apr_tensor *ys = apr_slice(g, y, 1, 1, 2); /* rows m = 1, 2 */
    apr_graph_output(g, y);
    apr_graph_output(g, ys);
    cr_assert_null(apr_graph_error(g), "%s", apr_graph_error(g));
    apr_plan *p;
    apr_error e;
    cr_assert_eq(apr_plan_new(g, &exec_ref, 1, &p, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_plan_set_input(p, xin, xt, 5, &e), APR_ERR_INVALID);
    cr_expect_eq(apr_plan_set_input(p, y, xt, sizeof(float) * 18, &e), APR_ERR_INVALID);
    cr_assert_eq(apr_plan_set_input(p, xin, xt, sizeof(float) * 18, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
    float out[12], part[8];
    cr_assert_eq(apr_plan_get_output(p, y, out, sizeof out, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_get_output(p, ys, part, sizeof part, &e), APR_OK, "%s", e.msg);
    for (int m = 0; m < 3; m++)
        for (int n = 0; n < 4; n++) {
            double acc = 0;
            for (int k = 0; k < 6; k++) acc += (double)w[n * 6 + k] * xt[k * 3 + m];
            cr_assert_float_eq(out[m * 4 + n], acc, 1e-5);
            if (m >= 1) cr_assert_float_eq(part[(m - 1) * 4 + n], acc, 1e-5);
        }
    apr_plan_free(p);
    apr_graph_free(g);
    free(w);
    free(xt);
}

/* A state leaf (a KV cache, say) changes between runs: a backend reading host memory in place and
 * one that can only copy (partial: no import) must both see the data as it is at each run, where
 * a weight is uploaded once. */
Test(executor, state_is_read_as_it_is_at_every_run) {
    apr_backend *order[2][2] = {{exec_ref, NULL}, {exec_partial, exec_ref}};
    for (int c = 0; c < 2; c++) {
        float st[8], wt[8], xin[8], got[8];
        for (int i = 0; i < 8; i++) st[i] = (float)i, wt[i] = 100.0f + (float)i, xin[i] = 0.5f;
        apr_graph *g = apr_graph_new();
        apr_tensor *s = apr_state(g, APR_F32, 1, (int64_t[]){8}, st, "state");
        apr_tensor *w = apr_weight(g, APR_F32, 1, (int64_t[]){8}, wt, "weight");
        apr_tensor *x = apr_input(g, APR_F32, 1, (int64_t[]){8}, "x");
        apr_tensor *y = apr_add(g, apr_add(g, s, x), w);
        apr_graph_output(g, y);
        cr_assert_null(apr_graph_error(g));
        apr_plan *p;
        apr_error e;
        cr_assert_eq(apr_plan_new(g, order[c], c + 1, &p, &e), APR_OK, "%s", e.msg);
        cr_assert_str_eq(apr_backend_name(apr_plan_placement(p, y)), apr_backend_name(order[c][0]));
        for (int run = 0; run < 3; run++) {
            for (int i = 0; i < 8; i++) st[i] = (float)(run * 10 + i);
            cr_assert_eq(apr_plan_set_input(p, x, xin, sizeof xin, &e), APR_OK, "%s", e.msg);
            cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
            cr_assert_eq(apr_plan_get_output(p, y, got, sizeof got, &e), APR_OK, "%s", e.msg);
            for (int i = 0; i < 8; i++)
                cr_assert_eq(got[i], (float)(run * 10 + i) + 0.5f + 100.0f + (float)i, "%s run %d element %d: %g",
                             apr_backend_name(order[c][0]), run, i, got[i]);
        }
        apr_plan_free(p);
        apr_graph_free(g);
    }
}

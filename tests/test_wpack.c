/* test_wpack.c — packed weights: apr_backend_pack_weight's reference counts and errors, and plans
 * that read a backend's packed copy for exactly the matmuls of that weight placed on it. */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apr/apr.h"
#include "plugins/packtest.h"

static apr_registry *wp_reg;
static apr_backend *wp_pack;    /* tests/plugins/packtest.so: packs f32 weights whose row count is a multiple of 4 */
static apr_backend *wp_old;     /* tests/plugins/packold.so: the same code as an ABI 2 plugin, without the slot */
static apr_backend *wp_partial; /* tests/plugins/partial.so: ABI 3 with no weight_pack */
static apr_backend *wp_ref;     /* the reference backend */

static void wp_setup(void) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = 0;
    *strrchr(exe, '/') = 0;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/plugins", exe); /* <build>/tests/plugins */
    apr_registry_options o = {.plugin_path = dir};
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, &wp_reg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(wp_reg, "packtest", 1, &wp_pack, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(wp_reg, "packold", 1, &wp_old, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(wp_reg, "partial", 1, &wp_partial, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(wp_reg, "reference", 1, &wp_ref, &e), APR_OK, "%s", e.msg);
}

static void wp_teardown(void) {
    apr_backend_close(wp_ref);
    apr_backend_close(wp_partial);
    apr_backend_close(wp_old);
    apr_backend_close(wp_pack);
    apr_registry_close(wp_reg);
}

TestSuite(wpack, .init = wp_setup, .fini = wp_teardown);

/* The counters a packtest-family backend keeps (its instance, see packtest.h). */
static packtest_counters *wp_counters(apr_backend *be) {
    packtest_counters *c = apr_backend_instance(be);
    cr_assert(c && c->magic == PACKTEST_MAGIC, "%s is not a packtest backend", apr_backend_name(be));
    return c;
}

/* Deterministic values in [-1, 1), never PACKTEST_FAIL_BITS. */
static float *wp_values(int64_t n, unsigned seed) {
    float *p = malloc((size_t)n * sizeof *p);
    cr_assert(p);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    return p;
}

/* got [N, M] against W [K, N] times x [K, M], in double. */
static void wp_expect_matmul(const float *w, const float *x, int64_t K, int64_t N, int64_t M, const float *got,
                             const char *what) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)w[n * K + k] * x[m * K + k];
            cr_assert(fabs(got[m * N + n] - acc) < 1e-5 * (1 + fabs(acc)), "%s: [%lld, %lld] %g, want %g", what,
                      (long long)n, (long long)m, got[m * N + n], acc);
        }
}

/* Plans g on the backends, sets x, runs it once and returns output y. */
static void wp_run(apr_graph *g, apr_backend *const *bes, int n_bes, apr_tensor *x, const float *xd, apr_tensor *y,
                   float *out) {
    apr_plan *p;
    apr_error e;
    cr_assert_null(apr_graph_error(g), "%s", apr_graph_error(g));
    cr_assert_eq(apr_plan_new(g, bes, n_bes, &p, &e), APR_OK, "%s", e.msg);
    size_t xbytes = (size_t)apr_tensor_nelements(x) * sizeof(float);
    cr_assert_eq(apr_plan_set_input(p, x, xd, xbytes, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
    size_t ybytes = (size_t)apr_tensor_nelements(y) * sizeof(float);
    cr_assert_eq(apr_plan_get_output(p, y, out, ybytes, &e), APR_OK, "%s", e.msg);
    apr_plan_free(p);
}

/* y = W x for W [K, N] at data w, planned on one backend; the packtest counters of be as they
 * moved. */
static void wp_matmul_on(apr_backend *be, const float *w, int64_t K, int64_t N, packtest_counters *delta) {
    enum { M = 3 };
    float *x = wp_values(K * M, 7), *y = malloc(sizeof(float) * (size_t)(N * M));
    packtest_counters before = *wp_counters(be);
    apr_graph *g = apr_graph_new();
    apr_tensor *wt = apr_weight(g, APR_F32, 2, (int64_t[]){K, N}, w, "w");
    apr_tensor *xt = apr_input(g, APR_F32, 2, (int64_t[]){K, M}, "x");
    apr_tensor *yt = apr_matmul(g, wt, xt);
    apr_graph_output(g, yt);
    wp_run(g, &be, 1, xt, x, yt, y);
    wp_expect_matmul(w, x, K, N, M, y, apr_backend_name(be));
    const packtest_counters *c = wp_counters(be);
    *delta = (packtest_counters){.pack_calls = c->pack_calls - before.pack_calls, .packs = c->packs - before.packs,
                                 .packed_frees = c->packed_frees - before.packed_frees,
                                 .packed_matmuls = c->packed_matmuls - before.packed_matmuls,
                                 .plain_matmuls = c->plain_matmuls - before.plain_matmuls,
                                 .get_rows = c->get_rows - before.get_rows};
    apr_graph_free(g);
    free(x);
    free(y);
}

Test(wpack, matmul_reads_the_packed_copy_and_get_rows_the_original) {
    enum { K = 8, N = 12, M = 3 };
    float *w = wp_values(K * N, 1), *x = wp_values(K * M, 2), *keep = malloc(sizeof(float) * K * N);
    memcpy(keep, w, sizeof(float) * K * N);
    packtest_counters *c = wp_counters(wp_pack), before = *c;
    apr_error e;
    cr_assert_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){K, N}, w, "w", &e), APR_OK, "%s", e.msg);
    cr_expect_eq(c->packs, before.packs + 1);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), (int64_t)sizeof(float) * K * N);
    cr_expect_eq(memcmp(w, keep, sizeof(float) * K * N), 0, "packing changed the weight");

    /* one weight, two uses: a matmul (packed) and a row lookup (the original), as a tied embedding */
    apr_graph *g = apr_graph_new();
    apr_tensor *wt = apr_weight(g, APR_F32, 2, (int64_t[]){K, N}, w, "w");
    apr_tensor *xt = apr_input(g, APR_F32, 2, (int64_t[]){K, M}, "x");
    apr_tensor *ids = apr_input(g, APR_I32, 1, (int64_t[]){3}, "ids");
    apr_tensor *y = apr_matmul(g, wt, xt), *r = apr_get_rows(g, wt, ids);
    apr_graph_output(g, y);
    apr_graph_output(g, r);
    cr_assert_null(apr_graph_error(g), "%s", apr_graph_error(g));
    apr_plan *p;
    cr_assert_eq(apr_plan_new(g, &wp_pack, 1, &p, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_plan_placement(p, r), wp_pack);
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *f = open_memstream(&dump, &dump_len);
    cr_assert(f);
    apr_plan_dump(p, f);
    fclose(f);
    cr_expect(strstr(dump, "1 matmuls read packed weights"), "%s", dump);
    free(dump);
    const int32_t id[3] = {11, 0, 5};
    cr_assert_eq(apr_plan_set_input(p, xt, x, sizeof(float) * K * M, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_set_input(p, ids, id, sizeof id, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
    float got[N * M], rows[K * 3];
    cr_assert_eq(apr_plan_get_output(p, y, got, sizeof got, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_get_output(p, r, rows, sizeof rows, &e), APR_OK, "%s", e.msg);
    wp_expect_matmul(w, x, K, N, M, got, "packed matmul");
    for (int i = 0; i < 3; i++)
        cr_expect_eq(memcmp(rows + K * i, w + K * id[i], sizeof(float) * K), 0, "get_rows row %d is not the original", id[i]);
    cr_expect_eq(c->packed_matmuls, before.packed_matmuls + 1);
    cr_expect_eq(c->plain_matmuls, before.plain_matmuls);
    cr_expect_eq(c->get_rows, before.get_rows + 1);
    apr_plan_free(p);
    apr_graph_free(g);

    apr_backend_unpack_weight(wp_pack, w);
    cr_expect_eq(c->packed_frees, before.packed_frees + 1);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), 0);
    free(w); free(x); free(keep);
}

Test(wpack, references_count_and_the_last_unpack_or_close_frees_the_copy) {
    enum { K = 8, N = 4 };
    float *w = wp_values(K * N, 3), *w2 = wp_values(K * 2 * N, 4);
    packtest_counters *c = wp_counters(wp_pack), before = *c, d;
    apr_error e;
    for (int i = 0; i < 2; i++)
        cr_assert_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){K, N}, w, NULL, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(c->pack_calls, before.pack_calls + 1, "packing the same data again must only count a reference");
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), (int64_t)sizeof(float) * K * N);

    apr_backend_unpack_weight(wp_pack, w);
    cr_expect_eq(c->packed_frees, before.packed_frees, "one reference is left");
    wp_matmul_on(wp_pack, w, K, N, &d);
    cr_expect_eq(d.packed_matmuls, 1);
    cr_expect_eq(d.plain_matmuls, 0);

    apr_backend_unpack_weight(wp_pack, w);
    cr_expect_eq(c->packed_frees, before.packed_frees + 1);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), 0);
    wp_matmul_on(wp_pack, w, K, N, &d);
    cr_expect_eq(d.packed_matmuls, 0, "a plan made after the last unpack read the freed copy");
    cr_expect_eq(d.plain_matmuls, 1);
    apr_backend_unpack_weight(wp_pack, w);  /* gone already */
    apr_backend_unpack_weight(wp_pack, w2); /* never packed */
    apr_backend_unpack_weight(wp_pack, NULL);
    cr_expect_eq(c->packed_frees, before.packed_frees + 1);

    /* close frees whatever is still packed, whatever its count */
    apr_backend *be2;
    cr_assert_eq(apr_backend_open(wp_reg, "packtest", 1, &be2, &e), APR_OK, "%s", e.msg);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(apr_backend_pack_weight(be2, APR_F32, 2, (int64_t[]){K, N}, w, "w", &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_pack_weight(be2, APR_F32, 2, (int64_t[]){K, 2 * N}, w2, "w2", &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_backend_packed_bytes(be2), (int64_t)sizeof(float) * 3 * K * N);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), 0, "the other instance holds nothing");
    int frees = c->packed_frees; /* every packtest instance shares the counters */
    apr_backend_close(be2);
    cr_expect_eq(c->packed_frees, frees + 2);
    free(w); free(w2);
}

Test(wpack, declined_packs_leave_plans_reading_the_original) {
    enum { K = 8 };
    apr_error e;
    packtest_counters *c = wp_counters(wp_pack), before = *c, d;
    /* the plugin declines 6 rows (it groups by 4) */
    float *w6 = wp_values(K * 6, 5);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){K, 6}, w6, "w6", &e), APR_ERR_UNSUPPORTED);
    cr_expect(strstr(e.msg, "w6") && strstr(e.msg, "packtest") && strstr(e.msg, "do not group by 4"), "%s", e.msg);
    cr_expect_eq(c->pack_calls, before.pack_calls + 1);
    cr_expect_eq(c->packs, before.packs);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), 0);
    wp_matmul_on(wp_pack, w6, K, 6, &d);
    cr_expect_eq(d.plain_matmuls, 1);
    cr_expect_eq(d.packed_matmuls, 0);
    apr_backend_unpack_weight(wp_pack, w6); /* nothing to undo */
    cr_expect_eq(c->packed_frees, before.packed_frees);

    /* the core declines more than two dimensions without asking the plugin */
    float *w3 = wp_values(K * 4 * 2, 6);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 3, (int64_t[]){K, 4, 2}, w3, "w3", &e), APR_ERR_UNSUPPORTED);
    cr_expect(strstr(e.msg, "2-D"), "%s", e.msg);
    cr_expect_eq(c->pack_calls, before.pack_calls + 1);

    /* ABI 2 (the table ends before the slot) and ABI 3 with an empty slot: the core never calls it */
    float *w4 = wp_values(K * 4, 7);
    packtest_counters *old = wp_counters(wp_old);
    int old_calls = old->pack_calls;
    cr_expect_eq(apr_backend_pack_weight(wp_old, APR_F32, 2, (int64_t[]){K, 4}, w4, "w4", &e), APR_ERR_UNSUPPORTED);
    cr_expect(strstr(e.msg, "packold") && strstr(e.msg, "no weight_pack"), "%s", e.msg);
    cr_expect_eq(old->pack_calls, old_calls, "the core called a slot past the plugin's struct_size");
    cr_expect_eq(apr_backend_packed_bytes(wp_old), 0);
    wp_matmul_on(wp_old, w4, K, 4, &d);
    cr_expect_eq(d.plain_matmuls, 1);
    cr_expect_eq(d.packed_matmuls, 0);
    cr_expect_eq(apr_backend_pack_weight(wp_partial, APR_F32, 2, (int64_t[]){K, 4}, w4, "w4", &e), APR_ERR_UNSUPPORTED);
    cr_expect(strstr(e.msg, "partial"), "%s", e.msg);

    /* a failure of the plugin's own is an error, and leaves nothing behind: the next pack asks again */
    const uint32_t fail = PACKTEST_FAIL_BITS;
    float first = w4[0];
    memcpy(&w4[0], &fail, sizeof fail);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){K, 4}, w4, "w4", &e), APR_ERR_DEVICE);
    cr_expect(strstr(e.msg, "asks to fail"), "%s", e.msg);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), 0);
    w4[0] = first;
    int calls = c->pack_calls;
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){K, 4}, w4, "w4", &e), APR_OK, "%s", e.msg);
    cr_expect_eq(c->pack_calls, calls + 1);
    apr_backend_unpack_weight(wp_pack, w4);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), 0);
    free(w6); free(w3); free(w4);
}

/* Plans g on be, runs it with inputs x [K, M] and x2 [2K, M], and checks the five products of
 * only_the_packed_weight_itself_is_redirected against their weights. */
static void wp_run_five(apr_graph *g, apr_backend *be, apr_tensor *const in[2], const float *const xd[2],
                        apr_tensor *const y[5], const float *const w[5], const int64_t kn[5][2]) {
    apr_plan *p;
    apr_error e;
    cr_assert_eq(apr_plan_new(g, &be, 1, &p, &e), APR_OK, "%s", e.msg);
    for (int i = 0; i < 2; i++) {
        size_t bytes = (size_t)apr_tensor_nelements(in[i]) * sizeof(float);
        cr_assert_eq(apr_plan_set_input(p, in[i], xd[i], bytes, &e), APR_OK, "%s", e.msg);
    }
    cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
    for (int i = 0; i < 5; i++) {
        int64_t K = kn[i][0], N = kn[i][1], M = apr_tensor_ne(y[i], 1);
        float got[64];
        cr_assert_eq(apr_plan_get_output(p, y[i], got, sizeof(float) * (size_t)(N * M), &e), APR_OK, "%s", e.msg);
        char what[64];
        snprintf(what, sizeof what, "product %d on %s", i, apr_backend_name(be));
        wp_expect_matmul(w[i], xd[K == kn[0][0] ? 0 : 1], K, N, M, got, what);
    }
    apr_plan_free(p);
}

Test(wpack, only_the_packed_weight_itself_is_redirected) {
    enum { K = 8, N = 8, M = 2 };
    float *a = wp_values(K * N, 8), *b = malloc(sizeof(float) * K * N);
    memcpy(b, a, sizeof(float) * K * N); /* the same values at another address */
    float *x = wp_values(K * M, 9), *x2 = wp_values(2 * K * M, 10);
    apr_error e;
    cr_assert_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){K, N}, a, "a", &e), APR_OK, "%s", e.msg);
    packtest_counters *c = wp_counters(wp_pack), before = *c;

    apr_graph *g = apr_graph_new();
    apr_tensor *in[2] = {apr_input(g, APR_F32, 2, (int64_t[]){K, M}, "x"),
                         apr_input(g, APR_F32, 2, (int64_t[]){2 * K, M}, "x2")};
    apr_tensor *wa = apr_weight(g, APR_F32, 2, (int64_t[]){K, N}, a, "a");
    apr_tensor *y[5] = {
        apr_matmul(g, wa, in[0]),                                                      /* the packed weight */
        apr_matmul(g, apr_weight(g, APR_F32, 2, (int64_t[]){K, N}, b, "b"), in[0]),    /* another address */
        apr_matmul(g, apr_slice(g, wa, 1, 4, 4), in[0]),                               /* a view: rows 4..7 */
        apr_matmul(g, apr_reshape(g, wa, 2, (int64_t[]){K, N}), in[0]),                /* a view of the same shape */
        apr_matmul(g, apr_weight(g, APR_F32, 2, (int64_t[]){2 * K, N / 2}, a, "a16"), in[1]), /* same data, other shape */
    };
    for (int i = 0; i < 5; i++) apr_graph_output(g, y[i]);
    cr_assert_null(apr_graph_error(g), "%s", apr_graph_error(g));
    const float *w[5] = {a, b, a + 4 * K, a, a};
    const int64_t kn[5][2] = {{K, N}, {K, N}, {K, 4}, {K, N}, {2 * K, N / 2}};
    const float *xd[2] = {x, x2};

    wp_run_five(g, wp_pack, in, xd, y, w, kn);
    cr_expect_eq(c->packed_matmuls, before.packed_matmuls + 1);
    cr_expect_eq(c->plain_matmuls, before.plain_matmuls + 4);
    /* another backend reads the original even for the packed weight's own matmul */
    wp_run_five(g, wp_ref, in, xd, y, w, kn);
    cr_expect_eq(c->packed_matmuls, before.packed_matmuls + 1);

    apr_graph_free(g);
    apr_backend_unpack_weight(wp_pack, a);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), 0);
    free(a); free(b); free(x); free(x2);
}

Test(wpack, bad_arguments_are_errors_that_say_what_is_wrong) {
    float w[64] = {0};
    apr_error e;
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){8, 4}, NULL, "w", &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "data is NULL"), "%s", e.msg);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 0, (int64_t[]){8}, w, "w", &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "0 dimensions"), "%s", e.msg);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 5, (int64_t[]){8, 1, 1, 1, 1}, w, "w", &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "5 dimensions"), "%s", e.msg);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, NULL, w, "w", &e), APR_ERR_INVALID);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, (apr_dtype)99, 2, (int64_t[]){8, 4}, w, "w", &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "unknown dtype 99"), "%s", e.msg);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){8, 0}, w, "w", &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "dimension 1"), "%s", e.msg);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_Q4_0, 2, (int64_t[]){16, 4}, w, "q", &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "q4_0 block"), "%s", e.msg);
    cr_expect_eq(apr_backend_pack_weight(NULL, APR_F32, 2, (int64_t[]){8, 4}, w, "w", &e), APR_ERR_INVALID);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), 0);
    /* the same data again under another shape is a caller's mistake, and takes no reference */
    packtest_counters *c = wp_counters(wp_pack), before = *c;
    cr_assert_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){8, 4}, w, "w", &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_backend_pack_weight(wp_pack, APR_F32, 2, (int64_t[]){4, 8}, w, "w", &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "already packed") && strstr(e.msg, "[8, 4, 1, 1]"), "%s", e.msg);
    apr_backend_unpack_weight(wp_pack, w);
    cr_expect_eq(c->packed_frees, before.packed_frees + 1);
    cr_expect_eq(apr_backend_packed_bytes(wp_pack), 0);
    cr_expect_eq(apr_backend_packed_bytes(NULL), 0);
}

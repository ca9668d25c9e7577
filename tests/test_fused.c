/* test_fused.c — matmuls that read the same X one after another in a plan (a layer's q, k and v; its
 * gate and up), which CPU plugins may run as one pass: on every usable backend they give exactly
 * the bits each gives planned alone, and the reference's values within a stated bound. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr.h"
#include "apr/apr_quant.h"
#include "util/tu_rand.h"

/* Each weight rounds to its format; X is rounded to 8-bit blocks by CPU plugins (about 1.5e-5 of
 * NMSE), the reference keeps it in f32. */
#define FUSED_NMSE_LIMIT 2e-4
/* With only a handful of outputs (8: a k or v of one 16-row group) the NMSE of the activations' 8-bit
 * rounding has a heavy tail (2.4e-4 seen on cpu-neon); one wrong output would still give ~1/8. */
#define FUSED_FEW_OUTPUTS 32
#define FUSED_NMSE_LIMIT_FEW 2e-3

#define FUSED_MAX 5

/* One group of matmuls over one X [K, M]: weight i is [K, N[i]] of dtype t[i]. */
typedef struct fused_case {
    const char *what;
    int n;
    apr_dtype t[FUSED_MAX];
    int64_t N[FUSED_MAX];
    int64_t M;
} fused_case;

/* K = 512 suits every block format. */
#define FUSED_K 512

static const fused_case fused_cases[] = {
    {"q4_0 as a layer's q, k and v (k and v under one 16-row group each)", 3, {APR_Q4_0, APR_Q4_0, APR_Q4_0}, {96, 8, 8}, 1},
    {"q4_0, four weights with short last groups", 4, {APR_Q4_0, APR_Q4_0, APR_Q4_0, APR_Q4_0}, {72, 8, 300, 17}, 1},
    {"q5_0 as gate and up", 2, {APR_Q5_0, APR_Q5_0}, {1000, 1000}, 1},
    {"q8_0, two", 2, {APR_Q8_0, APR_Q8_0}, {130, 33}, 1},
    {"q5_0, q5_0 then q8_0 (two formats)", 3, {APR_Q5_0, APR_Q5_0, APR_Q8_0}, {64, 64, 48}, 1},
    {"q4_k then q6_k", 2, {APR_Q4_K, APR_Q6_K}, {256, 40}, 1},
    {"q4_0 with two rows of X", 3, {APR_Q4_0, APR_Q4_0, APR_Q4_0}, {64, 16, 16}, 2},
    {"q4_0, five weights (more than one group takes)", 5, {APR_Q4_0, APR_Q4_0, APR_Q4_0, APR_Q4_0, APR_Q4_0}, {16, 16, 16, 16, 40}, 1},
    {"f32, two", 2, {APR_F32, APR_F32}, {48, 40}, 1},
};

/* Weight bytes of dtype t, [K, N], from uniform values in [-1, 1). */
static void *fused_weight(apr_dtype t, int64_t N, tu_rng *rng) {
    float *f = malloc(sizeof(float) * FUSED_K * (size_t)N);
    cr_assert(f);
    for (int64_t i = 0; i < FUSED_K * N; i++) f[i] = (float)tu_rng_uniform(rng, -1, 1);
    if (t == APR_F32) return f;
    const int64_t rb = apr_dtype_row_bytes(t, FUSED_K);
    char *q = malloc((size_t)(rb * N));
    cr_assert(q);
    for (int64_t r = 0; r < N; r++) cr_assert_eq(apr_quant_row(t, f + r * FUSED_K, q + r * rb, FUSED_K), rb);
    free(f);
    return q;
}

/* Runs the matmuls of c on be, all in one plan (together) or each in its own; out[i] gets N[i] x M floats. */
static void fused_run(apr_backend *be, const fused_case *c, void *const *w, const float *x, bool together, float **out) {
    apr_error e;
    const int64_t xne[2] = {FUSED_K, c->M};
    for (int i0 = 0; i0 < c->n; i0 += together ? c->n : 1) {
        const int i1 = together ? c->n : i0 + 1;
        apr_graph *g = apr_graph_new();
        cr_assert(g);
        apr_tensor *xt = apr_input(g, APR_F32, 2, xne, "x"), *y[FUSED_MAX];
        for (int i = i0; i < i1; i++) {
            const int64_t wne[2] = {FUSED_K, c->N[i]};
            y[i] = apr_matmul(g, apr_weight(g, c->t[i], 2, wne, w[i], "w"), xt);
            apr_graph_output(g, y[i]);
        }
        apr_plan *p;
        cr_assert_eq(apr_plan_new(g, &be, 1, &p, &e), APR_OK, "%s: %s", c->what, e.msg);
        cr_assert_eq(apr_plan_set_input(p, xt, x, sizeof(float) * FUSED_K * (size_t)c->M, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s on %s: %s", c->what, apr_backend_name(be), e.msg);
        for (int i = i0; i < i1; i++)
            cr_assert_eq(apr_plan_get_output(p, y[i], out[i], sizeof(float) * (size_t)(c->N[i] * c->M), &e), APR_OK, "%s", e.msg);
        apr_plan_free(p);
        apr_graph_free(g);
    }
}

static double fused_nmse(const float *got, const float *want, int64_t n) {
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; i++) {
        err += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        ref += (double)want[i] * want[i];
    }
    return ref > 0 ? err / ref : err;
}

Test(fused, matmuls_sharing_x_give_the_bits_they_give_apart) {
    apr_error e;
    apr_registry *reg;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    apr_backend *ref;
    cr_assert_eq(apr_backend_open(reg, "reference", 1, &ref, &e), APR_OK, "%s", e.msg);
    const uint64_t seed = tu_seed();
    int checked = 0;
    for (int b = 0; b < apr_registry_count(reg); b++) {
        const apr_plugin_record *r = apr_registry_record(reg, b);
        if (r->state != APR_PLUGIN_OK) continue;
        for (int threads = 1; threads <= 2; threads++) {
            apr_backend *be;
            cr_assert_eq(apr_backend_open(reg, r->name, threads, &be, &e), APR_OK, "%s", e.msg);
            for (size_t ci = 0; ci < sizeof fused_cases / sizeof *fused_cases; ci++) {
                const fused_case *c = &fused_cases[ci];
                tu_rng rng;
                tu_rng_init(&rng, tu_seed_mix(seed, ci));
                void *w[FUSED_MAX];
                float *sep[FUSED_MAX], *tog[FUSED_MAX], *want[FUSED_MAX];
                float *x = malloc(sizeof(float) * FUSED_K * (size_t)c->M);
                cr_assert(x);
                for (int64_t i = 0; i < FUSED_K * c->M; i++) x[i] = (float)tu_rng_uniform(&rng, -1, 1);
                for (int i = 0; i < c->n; i++) {
                    w[i] = fused_weight(c->t[i], c->N[i], &rng);
                    const int64_t wne[2] = {FUSED_K, c->N[i]};
                    apr_status st = apr_backend_pack_weight(be, c->t[i], 2, wne, w[i], "w", &e);
                    cr_assert(st == APR_OK || st == APR_ERR_UNSUPPORTED, "%s: packing: %s", r->name, e.msg);
                    const size_t bytes = sizeof(float) * (size_t)(c->N[i] * c->M);
                    sep[i] = malloc(bytes);
                    tog[i] = malloc(bytes);
                    want[i] = malloc(bytes);
                    cr_assert(sep[i] && tog[i] && want[i]);
                }
                fused_run(be, c, w, x, false, sep);
                fused_run(be, c, w, x, true, tog);
                fused_run(ref, c, w, x, true, want);
                for (int i = 0; i < c->n; i++) {
                    const int64_t n = c->N[i] * c->M;
                    for (int64_t k = 0; k < n; k++) {
                        cr_assert(isfinite(tog[i][k]), "%s, %d threads, %s: weight %d output %lld is %g", r->name,
                                  threads, c->what, i, (long long)k, tog[i][k]);
                        cr_assert(memcmp(&tog[i][k], &sep[i][k], sizeof(float)) == 0,
                                  "%s, %d threads, %s: weight %d output %lld is %.9g in one plan, %.9g alone (seed %llu)",
                                  r->name, threads, c->what, i, (long long)k, tog[i][k], sep[i][k], (unsigned long long)seed);
                    }
                    const double nmse = fused_nmse(tog[i], want[i], n);
                    const double limit = n < FUSED_FEW_OUTPUTS ? FUSED_NMSE_LIMIT_FEW : FUSED_NMSE_LIMIT;
                    cr_assert_leq(nmse, limit, "%s, %d threads, %s: weight %d has NMSE %.3g against the reference (limit %g, seed %llu)",
                                  r->name, threads, c->what, i, nmse, limit, (unsigned long long)seed);
                    apr_backend_unpack_weight(be, w[i]);
                    free(w[i]);
                    free(sep[i]);
                    free(tog[i]);
                    free(want[i]);
                }
                free(x);
                checked++;
            }
            apr_backend_close(be);
        }
    }
    fprintf(stderr, "fused: %d groups compared (seed %llu)\n", checked, (unsigned long long)seed);
    cr_assert_geq(checked, (int)(2 * sizeof fused_cases / sizeof *fused_cases));
    apr_backend_close(ref);
    apr_registry_close(reg);
}

/* test_optim.c — the AdamW step (APR_OP_ADAMW) through the executor: the first op of five sources,
 * writing parameters and both moments in place where they live (backend-resident memory or host
 * state), with one kept plan that takes each step's hyperparameters as an input; a plugin whose
 * table predates ABI 4 never gets it; graph construction refuses what the op cannot write. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr.h"
#include "plugins/opaque.h"
#include "util/tu_paths.h"
#include "util/tu_rand.h"

#define OPT_D0 37
#define OPT_D1 29
#define OPT_N (OPT_D0 * OPT_D1)
#define OPT_STEPS 6
#define OPT_NMSE 1e-12 /* the conformance bound of ADAMW: a few ulps per element */

static apr_registry *opt_registry(void) {
    apr_registry_options o = {.plugin_path = tu_test_plugins_dir()};
    apr_registry *reg;
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, &reg, &e), APR_OK, "%s", e.msg);
    return reg;
}

/* Step t's hyperparameters (a decaying learning rate, bias corrections of step t). */
static void opt_hp(int t, float hp[APR_ADAMW_HP_COUNT]) {
    const double b1 = 0.9, b2 = 0.999;
    hp[APR_ADAMW_LR] = (float)(1e-2 / t);
    hp[APR_ADAMW_BETA1] = (float)b1;
    hp[APR_ADAMW_BETA2] = (float)b2;
    hp[APR_ADAMW_EPS] = 1e-8f;
    hp[APR_ADAMW_WEIGHT_DECAY] = 0.05f;
    hp[APR_ADAMW_C1] = (float)(1 / (1 - pow(b1, t)));
    hp[APR_ADAMW_C2] = (float)(1 / (1 - pow(b2, t)));
    hp[APR_ADAMW_GSCALE] = t % 2 ? 1.0f : 0.5f;
}

/* One step in double from f32 state, as apr_abi.h defines it; then each of w, m, v against it. */
static void opt_expect(const float *w, const float *m, const float *v, const float *g, const float *hp, double *ew,
                       double *em, double *ev) {
    for (int i = 0; i < OPT_N; i++) {
        double gi = (double)g[i] * hp[APR_ADAMW_GSCALE];
        em[i] = hp[APR_ADAMW_BETA1] * (double)m[i] + (1.0 - hp[APR_ADAMW_BETA1]) * gi;
        ev[i] = hp[APR_ADAMW_BETA2] * (double)v[i] + (1.0 - hp[APR_ADAMW_BETA2]) * gi * gi;
        ew[i] = w[i] - hp[APR_ADAMW_LR] * (hp[APR_ADAMW_WEIGHT_DECAY] * w[i] +
                                           em[i] * hp[APR_ADAMW_C1] / (sqrt(ev[i] * hp[APR_ADAMW_C2]) + hp[APR_ADAMW_EPS]));
    }
}

static void opt_check(const char *what, int t, const float *got, const double *want) {
    double d2 = 0, b2 = 0;
    for (int i = 0; i < OPT_N; i++) {
        cr_assert(isfinite(got[i]), "step %d: %s[%d] = %g", t, what, i, (double)got[i]);
        d2 += (got[i] - want[i]) * (got[i] - want[i]);
        b2 += want[i] * want[i];
    }
    cr_assert(b2 > 0, "step %d: %s is all zeros", t, what);
    cr_assert_leq(d2 / b2, OPT_NMSE, "step %d: %s differs from the double-precision step (nmse %.3g)", t, what, d2 / b2);
}

/* Runs OPT_STEPS steps of one plan whose w, m and v are resident on be, checking every step
 * against the host; on the opaque backend also what crossed its boundary per step. */
static void opt_resident(const char *backend) {
    apr_registry *reg = opt_registry();
    apr_backend *be;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, backend, 2, &be, &e), APR_OK, "%s", e.msg);
    const uint64_t bytes = OPT_N * sizeof(float);
    apr_mem *mw, *mm, *mv;
    cr_assert_eq(apr_mem_new(be, bytes, APR_USAGE_WEIGHTS, "w", &mw, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_mem_new(be, bytes, APR_USAGE_STATE, "m", &mm, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_mem_new(be, bytes, APR_USAGE_STATE, "v", &mv, &e), APR_OK, "%s", e.msg);
    float *w = malloc(bytes), *m = calloc(OPT_N, sizeof(float)), *v = calloc(OPT_N, sizeof(float)), *g = malloc(bytes);
    double *ew = malloc(OPT_N * sizeof(double)), *em = malloc(OPT_N * sizeof(double)), *ev = malloc(OPT_N * sizeof(double));
    cr_assert(w && m && v && g && ew && em && ev);
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    for (int i = 0; i < OPT_N; i++) w[i] = (float)tu_rng_uniform(&rng, -1, 1);
    cr_assert_eq(apr_mem_write(mw, 0, w, bytes, &e), APR_OK, "%s", e.msg);

    const int64_t ne[2] = {OPT_D0, OPT_D1};
    apr_graph *gr = apr_graph_new();
    apr_tensor *tw = apr_resident(gr, APR_F32, 2, ne, mw, 0, "w"), *tm = apr_resident(gr, APR_F32, 2, ne, mm, 0, "m");
    apr_tensor *tv = apr_resident(gr, APR_F32, 2, ne, mv, 0, "v");
    apr_tensor *tg = apr_input(gr, APR_F32, 2, ne, "grad");
    apr_tensor *th = apr_input(gr, APR_F32, 1, (int64_t[]){APR_ADAMW_HP_COUNT}, "hp");
    apr_tensor *after = apr_adamw(gr, tw, tg, tm, tv, th);
    cr_assert_null(apr_graph_error(gr), "%s", apr_graph_error(gr));
    apr_graph_output(gr, after);
    apr_plan *p;
    cr_assert_eq(apr_plan_new(gr, &be, 1, &p, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_placement(p, after), be, "adamw runs where its leaves live");

    opaque_counters *c = apr_backend_instance(be);
    const bool opaque = !strncmp(backend, "opaque", 6);
    fprintf(stderr, "optim: adamw on %s\n", backend);
    if (opaque) cr_assert_eq(c->magic, OPAQUE_MAGIC);
    uint64_t plans = opaque ? c->n_plans_created : 0;
    for (int t = 1; t <= OPT_STEPS; t++) {
        float hp[APR_ADAMW_HP_COUNT];
        opt_hp(t, hp);
        for (int i = 0; i < OPT_N; i++) g[i] = (float)tu_rng_uniform(&rng, -2, 2);
        opt_expect(w, m, v, g, hp, ew, em, ev);
        opaque_counters before;
        memset(&before, 0, sizeof before);
        if (opaque) before = *c;
        cr_assert_eq(apr_plan_set_input(p, tg, g, bytes, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_set_input(p, th, hp, sizeof hp, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_run(p, &e), APR_OK, "step %d: %s", t, e.msg);
        if (opaque) {
            cr_assert_eq(apr_backend_synchronize(be, &e), APR_OK, "%s", e.msg);
            /* the gradient and the hyperparameters go in; parameters and moments never cross */
            cr_assert_eq(c->bytes_in - before.bytes_in, bytes + sizeof hp, "step %d: %llu bytes in", t,
                         (unsigned long long)(c->bytes_in - before.bytes_in));
            cr_assert_eq(c->bytes_out, before.bytes_out, "step %d: bytes came out", t);
            cr_assert_eq(c->bytes_copied, before.bytes_copied, "step %d: bytes were copied", t);
            cr_assert_eq(c->nodes_by_op[APR_OP_ADAMW] - before.nodes_by_op[APR_OP_ADAMW], 1);
        }
        cr_assert_eq(apr_mem_read(mw, 0, w, bytes, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_mem_read(mm, 0, m, bytes, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_mem_read(mv, 0, v, bytes, &e), APR_OK, "%s", e.msg);
        opt_check("w", t, w, ew);
        opt_check("m", t, m, em);
        opt_check("v", t, v, ev);
    }
    if (opaque) cr_expect_leq(c->n_plans_created - plans, 1, "a kept plan made a plugin plan per step");
    apr_plan_free(p);
    apr_graph_free(gr);
    apr_mem_free(mw);
    apr_mem_free(mm);
    apr_mem_free(mv);
    free(w), free(m), free(v), free(g), free(ew), free(em), free(ev);
    apr_backend_close(be);
    apr_registry_close(reg);
}

/* Every usable backend that implements ADAMW: the opaque one (memory the host cannot address), the
 * reference and each CPU plugin this machine runs. */
Test(optim, resident_on_every_backend) {
    static const char *const names[] = {"opaque:0", "reference", "cpu-avx2", "cpu-avx512", "cpu-neon"};
    apr_registry *reg = opt_registry();
    int n = 0;
    for (int i = 0; i < apr_registry_count(reg); i++) {
        const apr_plugin_record *rec = apr_registry_record(reg, i);
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (rec->state == APR_PLUGIN_OK && !strcmp(rec->name, names[k])) {
                opt_resident(rec->name);
                n++;
            }
    }
    apr_registry_close(reg);
    cr_assert_geq(n, 2, "the reference and the opaque test plugin at least (%d ran)", n);
    fprintf(stderr, "optim: %d backends ran %d steps each\n", n, OPT_STEPS);
}

/* Host state written in place by a CPU backend: the caller's arrays hold the step afterwards. */
Test(optim, host_state_in_place) {
    apr_registry *reg = opt_registry();
    apr_backend *be;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, NULL, 1, &be, &e), APR_OK, "%s", e.msg);
    static float w[OPT_N], m[OPT_N], v[OPT_N], g[OPT_N], w0[OPT_N], m0[OPT_N], v0[OPT_N];
    static double ew[OPT_N], em[OPT_N], ev[OPT_N];
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    for (int i = 0; i < OPT_N; i++) {
        w[i] = (float)tu_rng_uniform(&rng, -1, 1);
        m[i] = (float)tu_rng_uniform(&rng, -0.1, 0.1);
        v[i] = (float)tu_rng_uniform(&rng, 0, 0.1);
        g[i] = (float)tu_rng_uniform(&rng, -1, 1);
    }
    memcpy(w0, w, sizeof w), memcpy(m0, m, sizeof m), memcpy(v0, v, sizeof v);
    float hp[APR_ADAMW_HP_COUNT];
    opt_hp(7, hp);
    opt_expect(w0, m0, v0, g, hp, ew, em, ev);
    const int64_t ne[2] = {OPT_D0, OPT_D1};
    apr_graph *gr = apr_graph_new();
    apr_tensor *after = apr_adamw(gr, apr_state(gr, APR_F32, 2, ne, w, "w"), apr_weight(gr, APR_F32, 2, ne, g, "g"),
                                  apr_state(gr, APR_F32, 2, ne, m, "m"), apr_state(gr, APR_F32, 2, ne, v, "v"),
                                  apr_weight(gr, APR_F32, 1, (int64_t[]){APR_ADAMW_HP_COUNT}, hp, "hp"));
    cr_assert_null(apr_graph_error(gr), "%s", apr_graph_error(gr));
    apr_graph_output(gr, after);
    apr_plan *p;
    cr_assert_eq(apr_plan_new(gr, &be, 1, &p, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
    opt_check("w", 1, w, ew);
    opt_check("m", 1, m, em);
    opt_check("v", 1, v, ev);
    float out[OPT_N];
    cr_assert_eq(apr_plan_get_output(p, after, out, sizeof out, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(memcmp(out, w, sizeof out), 0, "the result is the parameters as written");
    apr_plan_free(p);
    apr_graph_free(gr);
    apr_backend_close(be);
    apr_registry_close(reg);
}

/* Builds w, m, v on the given memories and plans on the given backends; returns apr_plan_new's
 * status with its message in e. */
static apr_status opt_try_plan(apr_mem *mw, apr_mem *mm, apr_mem *mv, apr_backend *const *bes, int n_bes, apr_error *e) {
    const int64_t ne[1] = {64};
    apr_graph *gr = apr_graph_new();
    apr_tensor *after = apr_adamw(gr, apr_resident(gr, APR_F32, 1, ne, mw, 0, "w"), apr_input(gr, APR_F32, 1, ne, "g"),
                                  apr_resident(gr, APR_F32, 1, ne, mm, 0, "m"), apr_resident(gr, APR_F32, 1, ne, mv, 0, "v"),
                                  apr_input(gr, APR_F32, 1, (int64_t[]){APR_ADAMW_HP_COUNT}, "hp"));
    cr_assert_null(apr_graph_error(gr), "%s", apr_graph_error(gr));
    apr_graph_output(gr, after);
    apr_plan *p = NULL;
    apr_status st = apr_plan_new(gr, bes, n_bes, &p, e);
    if (p) apr_plan_free(p);
    apr_graph_free(gr);
    return st;
}

/* A moment on another device than the parameters: no backend can write all three in place. */
Test(optim, leaves_on_two_devices_refused) {
    apr_registry *reg = opt_registry();
    apr_backend *d0, *d1;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, "opaque:0", 1, &d0, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(reg, "opaque:1", 1, &d1, &e), APR_OK, "%s", e.msg);
    apr_mem *mw, *mm, *mv;
    cr_assert_eq(apr_mem_new(d0, 256, APR_USAGE_WEIGHTS, "w", &mw, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_mem_new(d0, 256, APR_USAGE_STATE, "m", &mm, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_mem_new(d1, 256, APR_USAGE_STATE, "v", &mv, &e), APR_OK, "%s", e.msg);
    apr_backend *bes[2] = {d0, d1};
    cr_assert_eq(opt_try_plan(mw, mm, mv, bes, 2, &e), APR_ERR_UNSUPPORTED);
    cr_assert(strstr(e.msg, "a leaf it writes lives on another backend"), "message: %s", e.msg);
    apr_mem_free(mw), apr_mem_free(mm), apr_mem_free(mv);
    apr_backend_close(d0);
    apr_backend_close(d1);
    apr_registry_close(reg);
}

/* A plugin whose table predates ABI 4 has no src_ext: the five-source node never reaches it, and the
 * failure says why, even though its supports() (the reference's checks) would say yes. */
Test(optim, abi3_plugin_gets_no_five_source_node) {
    setenv("APR_OPAQUE_ABI", "3", 1);
    apr_registry *reg = opt_registry();
    unsetenv("APR_OPAQUE_ABI");
    apr_backend *be;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, "opaque", 1, &be, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_plugin(be)->abi_version, 3, "APR_OPAQUE_ABI=3 did not take");
    apr_mem *mw, *mm, *mv;
    cr_assert_eq(apr_mem_new(be, 256, APR_USAGE_WEIGHTS, "w", &mw, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_mem_new(be, 256, APR_USAGE_STATE, "m", &mm, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_mem_new(be, 256, APR_USAGE_STATE, "v", &mv, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(opt_try_plan(mw, mm, mv, &be, 1, &e), APR_ERR_UNSUPPORTED);
    cr_assert(strstr(e.msg, "more than 4 sources need a plugin of ABI >= 4"), "message: %s", e.msg);
    apr_mem_free(mw), apr_mem_free(mm), apr_mem_free(mv);
    apr_backend_close(be);
    apr_registry_close(reg);
}

/* An ABI 4 plugin still loads under an ABI 5 core, and no op of ABI 5 (here ACC, in place into its
 * memory) is placed on it, even though its supports() (the reference's checks, which know the op)
 * would say yes; the same plugin stamped 5 runs the node. */
static apr_status opt_acc_on(const char *abi, float *out, apr_error *e) {
    setenv("APR_OPAQUE_ABI", abi, 1);
    apr_registry *reg = opt_registry();
    unsetenv("APR_OPAQUE_ABI");
    apr_backend *be;
    cr_assert_eq(apr_backend_open(reg, "opaque", 1, &be, e), APR_OK, "%s", e->msg);
    cr_assert_eq(apr_backend_plugin(be)->abi_version, (uint32_t)atoi(abi), "APR_OPAQUE_ABI=%s did not take", abi);
    apr_mem *acc;
    const float a[4] = {1, 2, 3, 4}, b[4] = {0.5f, 0.25f, -3, 8};
    cr_assert_eq(apr_mem_new(be, sizeof a, APR_USAGE_STATE, "acc", &acc, e), APR_OK, "%s", e->msg);
    cr_assert_eq(apr_mem_write(acc, 0, a, sizeof a, e), APR_OK, "%s", e->msg);
    apr_graph *g = apr_graph_new();
    apr_tensor *x = apr_input(g, APR_F32, 1, (int64_t[]){4}, "b");
    apr_graph_output(g, apr_acc(g, apr_resident(g, APR_F32, 1, (int64_t[]){4}, acc, 0, "acc"), x));
    cr_assert_null(apr_graph_error(g));
    apr_plan *p = NULL;
    apr_status st = apr_plan_new(g, &be, 1, &p, e);
    if (st == APR_OK) {
        cr_assert_eq(apr_plan_set_input(p, x, b, sizeof b, e), APR_OK, "%s", e->msg);
        cr_assert_eq(apr_plan_run(p, e), APR_OK, "%s", e->msg);
        cr_assert_eq(apr_mem_read(acc, 0, out, sizeof a, e), APR_OK, "%s", e->msg);
    }
    apr_plan_free(p);
    apr_graph_free(g);
    apr_mem_free(acc);
    apr_backend_close(be);
    apr_registry_close(reg);
    return st;
}

Test(optim, an_abi4_plugin_loads_and_gets_no_abi5_op) {
    apr_error e;
    float out[4] = {0};
    cr_assert_eq(opt_acc_on("4", out, &e), APR_ERR_UNSUPPORTED);
    cr_expect(strstr(e.msg, "needs a plugin of ABI >= 5"), "message: %s", e.msg);
    cr_assert_eq(opt_acc_on("5", out, &e), APR_OK, "%s", e.msg);
    const float want[4] = {1.5f, 2.25f, 0, 12};
    for (int i = 0; i < 4; i++) cr_expect_eq(out[i], want[i], "acc[%d] = %g, want %g", i, out[i], want[i]);
}

/* What the graph refuses to write, each with a message naming the tensor. */
Test(optim, graph_refuses_what_it_cannot_write) {
    static float data[64], hp[APR_ADAMW_HP_COUNT];
    const int64_t ne[1] = {64}, ne2[1] = {32}, nh[1] = {APR_ADAMW_HP_COUNT}, nh7[1] = {7};
    struct { const char *want; int kind; } cases[] = {
        {"w must be a resident or state leaf", 0}, {"must have one shape", 1}, {"hyperparameters hp must be", 2},
        {"is given twice", 3},                     {"must be f32", 4},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        apr_graph *g = apr_graph_new();
        apr_tensor *w = cases[k].kind == 0 ? apr_weight(g, APR_F32, 1, ne, data, "w") : apr_state(g, APR_F32, 1, ne, data, "w");
        apr_tensor *m = apr_state(g, cases[k].kind == 4 ? APR_F16 : APR_F32, 1, ne, data, "m");
        apr_tensor *v = cases[k].kind == 3 ? m : apr_state(g, APR_F32, 1, cases[k].kind == 1 ? ne2 : ne, data, "v");
        apr_tensor *gr = apr_input(g, APR_F32, 1, ne, "g");
        apr_tensor *h = apr_weight(g, APR_F32, 1, cases[k].kind == 2 ? nh7 : nh, hp, "hp");
        cr_expect_null(apr_adamw(g, w, gr, m, v, h), "case %zu built", k);
        const char *err = apr_graph_error(g);
        cr_expect(err && strstr(err, cases[k].want), "case %zu: '%s', want '%s'", k, err ? err : "(none)", cases[k].want);
        apr_graph_free(g);
    }
}

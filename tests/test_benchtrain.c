/* test_benchtrain.c — apr-bench --train: the FLOPs it counts from the model's shapes equal those of the
 * matmul, matmul_grad_x and matmul_grad_w nodes in the trainer's step graph; the option checks; and a
 * one-step run on stories260K with the JSON fields a reader of the benchmark uses. No timings are
 * checked. */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "internal.h" /* core: the step graph's nodes */
#include "llama.h"
#include "llama_train_internal.h"
#include "util/tu_run.h"
#include "util/tu_paths.h"

#include "../bench/trainflops.c" /* the FLOP model apr-bench prints, compiled in here */

static const char *bt_model(void) {
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", tu_fixtures_dir());
    if (access(path, R_OK) != 0) cr_skip_test("fixtures not found at %s", path);
    return path;
}

/* <build>/bin/apr-bench, beside this test's build tree. */
static const char *bt_bench(void) {
    static char path[PATH_MAX + 32];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0, "cannot read /proc/self/exe");
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* <build>/tests */
    *strrchr(exe, '/') = 0; /* <build> */
    snprintf(path, sizeof path, "%s/bin/apr-bench", exe);
    if (access(path, X_OK) != 0) cr_skip_test("%s is not built here (the bench is x86-only)", path);
    return path;
}

/* ---------------------------------------------------------------- the FLOP model against the graph */

typedef struct bt_graph_flops {
    double fwd, dx, dw;
    int n_fwd, n_dx, n_dw, n_attn_grad;
} bt_graph_flops;

static double bt_nelem(const struct apr_tensor *t) { return (double)t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

static bt_graph_flops bt_walk(const apr_graph *g) {
    bt_graph_flops r = {0};
    for (int i = 0; i < g->n_tensors; i++) {
        const struct apr_tensor *t = g->tensors[i];
        if (t->kind != APR_KIND_OP) continue;
        switch (t->op) {
        case APR_OP_MATMUL: /* W [K, N], out [N, M, ...]: 2 K per output */
            r.fwd += 2.0 * (double)t->src[0]->ne[0] * bt_nelem(t);
            r.n_fwd++;
            break;
        case APR_OP_MATMUL_GRAD_X: /* W [K, N], dX [K, M, ...]: 2 N per element of dX */
            r.dx += 2.0 * (double)t->src[0]->ne[1] * bt_nelem(t);
            r.n_dx++;
            break;
        case APR_OP_MATMUL_GRAD_W: /* X [K, M, ...], dY [N, M, ...]: 2 N per element of X */
            r.dw += 2.0 * (double)t->src[1]->ne[0] * bt_nelem(t->src[0]);
            r.n_dw++;
            break;
        case APR_OP_ATTENTION_GRAD:
            r.n_attn_grad++;
            break;
        default:
            break;
        }
    }
    return r;
}

static void bt_compare(const llama_model *m, apr_backend *be, llama_train_params p, const char *what) {
    llama_train *tr;
    apr_error e;
    cr_assert_eq(apr_llama_train_new(m, &p, &be, 1, &tr, &e), APR_OK, "%s: %s", what, e.msg);
    const bt_graph_flops g = bt_walk(tr->step.g);
    trainflops f;
    trainflops_count(m, &p, &f);
    const double fwd = f.fwd_base + f.fwd_output + f.fwd_lora;
    cr_expect(fabs(fwd - g.fwd) <= 1e-9 * g.fwd, "%s: forward %.0f counted, %.0f in the graph", what, fwd, g.fwd);
    cr_expect(fabs(f.bwd_dx - g.dx) <= 1e-9 * g.dx, "%s: dX %.0f counted, %.0f in the graph", what, f.bwd_dx, g.dx);
    cr_expect(fabs(f.bwd_dw - g.dw) <= 1e-9 * g.dw, "%s: dW %.0f counted, %.0f in the graph", what, f.bwd_dw, g.dw);
    cr_expect_eq(f.n_fwd, g.n_fwd, "%s: %d forward matmuls counted, %d in the graph", what, f.n_fwd, g.n_fwd);
    cr_expect_eq(f.n_dx, g.n_dx, "%s: %d dX counted, %d in the graph", what, f.n_dx, g.n_dx);
    cr_expect_eq(f.n_dw, g.n_dw, "%s: %d dW counted, %d in the graph", what, f.n_dw, g.n_dw);
    cr_expect_eq(f.n_attn_bwd, g.n_attn_grad, "%s: %d attention gradients counted, %d in the graph", what, f.n_attn_bwd,
                 g.n_attn_grad);
    apr_llama_train_free(tr);
}

Test(benchtrain, the_flops_counted_from_the_shapes_are_those_of_the_step_graph, .timeout = 120) {
    const char *path = bt_model();
    gguf_file *f;
    llama_model *m;
    apr_registry *reg;
    apr_backend *be;
    apr_error e;
    cr_assert_eq(apr_gguf_open(path, &f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_model_load(f, &m, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(reg, "reference", 1, &be, &e), APR_OK, "%s", e.msg);
    static const struct {
        const char *what;
        int method;
        unsigned targets;
        int rank, seq;
    } cases[] = {
        {"lora q,v", LLAMA_TRAIN_LORA, LLAMA_LORA_Q | LLAMA_LORA_V, 8, 32},
        {"lora all", LLAMA_TRAIN_LORA, 0x7fu, 4, 17},
        {"lora o (no attention gradient in layer 0)", LLAMA_TRAIN_LORA, LLAMA_LORA_O, 8, 16},
        {"lora down", LLAMA_TRAIN_LORA, LLAMA_LORA_DOWN, 2, 16},
        {"lora k,up", LLAMA_TRAIN_LORA, LLAMA_LORA_K | LLAMA_LORA_UP, 3, 8},
        {"full", LLAMA_TRAIN_FULL, 0, 8, 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        llama_train_params p = apr_llama_train_defaults();
        p.method = (llama_train_method)cases[i].method;
        if (cases[i].targets) p.lora_targets = cases[i].targets;
        p.lora_rank = cases[i].rank;
        p.seq_len = cases[i].seq;
        bt_compare(m, be, p, cases[i].what);
    }
    apr_backend_close(be);
    apr_registry_close(reg);
    apr_llama_model_free(m);
    apr_gguf_close(f);
}

/* ---------------------------------------------------------------- the tool */

static tu_run_result bt_run(const char *const *args) { return tu_run(bt_bench(), NULL, args, 0); }

Test(benchtrain, options_that_do_not_fit_are_usage_errors_before_any_measurement, .timeout = 60) {
    const char *path = bt_model();
    static const struct {
        const char *args[8];
        const char *says;
    } cases[] = {
        {{"--steps", "2", NULL}, "--steps only applies to --train"},
        {{"--lora-rank", "4", NULL}, "--lora-rank only applies to --train"},
        {{"--train", "M", "--model", "M", NULL}, "--train and --model"},
        {{"--train", "M", "--method", "sgd", NULL}, "--method sgd: lora, qlora or full"},
        {{"--train", "M", "--lora-targets", "q,x", NULL}, "--lora-targets q,x"},
        {{"--train", "M", "--method", "full", "--lora-targets", "q", NULL}, "does not apply to --method full"},
        {{"--train", "M", "--seq-len", "1", NULL}, "--seq-len"},
        {{"--train", "M", "--steps", "0", NULL}, "--steps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *args[8];
        for (int k = 0; k < 8; k++) args[k] = cases[i].args[k] && !strcmp(cases[i].args[k], "M") ? path : cases[i].args[k];
        tu_run_result r = bt_run(args);
        cr_expect_eq(r.status, 2, "case %zu: exit %d: %s", i, r.status, r.err);
        cr_expect(strstr(r.err, cases[i].says), "case %zu: stderr lacks '%s': %s", i, cases[i].says, r.err);
        cr_expect(!strstr(r.err, "measuring ceilings"), "case %zu: measured before refusing: %s", i, r.err);
        tu_run_free(&r);
    }
    /* stories260K is f32: QLoRA wants a quantized base, said before the ceilings are measured */
    tu_run_result r = bt_run((const char *[]){"--train", path, "--method", "qlora", NULL});
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "QLoRA trains over a quantized base"), "%s", r.err);
    cr_expect(!strstr(r.err, "measuring ceilings"), "%s", r.err);
    tu_run_free(&r);
    r = bt_run((const char *[]){"--help", NULL});
    cr_expect(strstr(r.out, "--train FILE") && strstr(r.out, "2*K*N*T"), "--help does not describe --train: %s", r.out);
    tu_run_free(&r);
}

static double bt_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return v->valuedouble;
}

Test(benchtrain, a_one_step_run_on_stories260k_reports_every_field, .timeout = 300) {
    const char *path = bt_model();
    tu_run_result r = bt_run((const char *[]){"--train", path, "--seq-len", "32", "--steps", "1", "--threads", "1", "--quick",
                                              "--backend", "reference", "--json", NULL});
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cJSON *root = cJSON_Parse(r.out);
    cr_assert(root, "not JSON: %s", r.out);
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "train_runs");
    cr_assert(cJSON_IsArray(runs) && cJSON_GetArraySize(runs) == 1, "%s", r.out);
    const cJSON *row = cJSON_GetArrayItem(runs, 0);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(row, "backend")->valuestring, "reference");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(row, "method")->valuestring, "lora");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(row, "lora_targets")->valuestring, "q,v");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(row, "ratio_covers")->valuestring, "whole step");
    cr_expect_eq(bt_num(row, "threads"), 1);
    cr_expect_eq(bt_num(row, "seq_len"), 32);
    cr_expect_eq(bt_num(row, "lora_rank"), 8);
    cr_expect_eq(bt_num(row, "steps"), 1);
    const double step = bt_num(row, "step_s"), tps = bt_num(row, "tokens_per_s"), gflop = bt_num(row, "matmul_gflop");
    const double gflops = bt_num(row, "gflops"), peak = bt_num(row, "fma_peak_gflops");
    cr_expect_gt(step, 0);
    cr_expect(fabs(tps - 32 / step) <= 1e-6 * tps, "tokens/s %g, step %g s", tps, step);
    cr_expect(fabs(gflop - bt_num(row, "matmul_gflop_forward") - bt_num(row, "matmul_gflop_backward_dx") -
                   bt_num(row, "matmul_gflop_backward_dw")) <= 1e-9 * gflop, "the parts do not add up");
    cr_expect(fabs(gflops - gflop / step) <= 1e-6 * gflops, "GFLOP/s %g, %g GFLOP in %g s", gflops, gflop, step);
    cr_expect_gt(peak, 0);
    cr_expect_geq(peak, bt_num(row, "fma_peak_start_gflops"));
    const cJSON *peaks = cJSON_GetObjectItemCaseSensitive(row, "fma_peak_samples_gflops");
    cr_expect(cJSON_IsArray(peaks) && cJSON_GetArraySize(peaks) == 2, "one before the step, one after");
    for (int i = 0; i < cJSON_GetArraySize(peaks); i++) {
        cr_expect_gt(cJSON_GetArrayItem(peaks, i)->valuedouble, 0);
        cr_expect_geq(peak, cJSON_GetArrayItem(peaks, i)->valuedouble);
    }
    cr_expect(fabs(bt_num(row, "of_peak") - gflops / peak) <= 1e-6, "of_peak");
    cr_expect_gt(bt_num(row, "attention_gflop_forward"), 0);
    cr_expect_gt(bt_num(row, "attention_gflop_backward"), 0);
    cr_expect(isfinite(bt_num(row, "loss")) && bt_num(row, "loss") > 0);
    const cJSON *times = cJSON_GetObjectItemCaseSensitive(row, "step_times_s");
    cr_expect(cJSON_IsArray(times) && cJSON_GetArraySize(times) == 1);
    cr_expect(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "ceilings")));
    cJSON_Delete(root);
    tu_run_free(&r);
}

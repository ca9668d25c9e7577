/* test_cli.c — the argument and input checks every frontend shares: missing values, non-finite
 * numbers, thread and count limits, special token ids, files that are not what they should be. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "util/tu_paths.h"
#include "util/tu_run.h"

/* <repo>/<build>/bin/NAME, beside this test's build tree. */
static const char *cli_bin(const char *name) {
    static char path[8][PATH_MAX + 64];
    static int next;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0, "cannot read /proc/self/exe");
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* <build>/tests */
    *strrchr(exe, '/') = 0; /* <build> */
    char *p = path[next++ % 8];
    snprintf(p, PATH_MAX + 64, "%s/bin/%s", exe, name);
    return p;
}

/* stories260K.gguf, or a skip when the fixtures are missing. */
static const char *cli_model(void) {
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", tu_fixtures_dir());
    if (access(path, R_OK) != 0) cr_skip_test("fixtures not found at %s", path);
    return path;
}

static tu_run_result cli_run(const char *tool, const char *const *args) { return tu_run(cli_bin(tool), NULL, args, 0); }

static int cli_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void cli_tmpdir(char *dir, size_t n) {
    snprintf(dir, n, "/tmp/apr-test-cli-XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void cli_rmdir(const char *dir) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

static void cli_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

/* ---------------------------------------------------------------- option values */

typedef struct cli_case {
    const char *tool;
    const char *pre[3]; /* arguments before the option, NULL-terminated */
    const char *opts[24];
} cli_case;

/* Every option that takes a value, in every tool, given last with no value. */
static const cli_case cli_value_opts[] = {
    {"apr-run", {NULL}, {"--model", "--tokens", "--prompt", "--file", "--dump-logits", "--system", "--batch-jsonl", "-n",
                         "--n-predict", "--ctx", "--kv-type", "--seed", "--top-k", "--temp", "--top-p", "--min-p",
                         "--repeat-penalty", "--backend", "--threads", NULL}},
    {"apr-tokenize", {NULL}, {"--model", "--prompt", "--file", "--backend", "--threads", NULL}},
    {"apr-perplexity", {NULL}, {"--model", "--file", "--kl-base", "--ctx", "--chunks", "--backend", "--threads", NULL}},
    {"apr-probe", {NULL}, {"--backend", "--threads", NULL}},
    {"apr-bench", {NULL}, {"--threads", "--repeat", "--timeout", "--bw-mib", "--ref-cap", "--model", "--prefill", "--decode",
                           "--case", "--backend", NULL}},
    {"apr-import", {"in.bin", "out.gguf", NULL}, {"--tokenizer", NULL}},
    {"apr-quantize", {"in.gguf", "out.gguf", NULL}, {"--type", "--keep", "--backend", "--threads", NULL}},
    {"apr-genmodel", {"out.gguf", NULL}, {"--shape", "--dtype", "--vocab-from", "--seed", NULL}},
};

Test(cli, an_option_without_its_value_is_a_usage_error_in_every_tool) {
    for (size_t c = 0; c < sizeof cli_value_opts / sizeof *cli_value_opts; c++) {
        const cli_case *cc = &cli_value_opts[c];
        for (int k = 0; cc->opts[k]; k++) {
            const char *args[6];
            int n = 0;
            for (int j = 0; cc->pre[j]; j++) args[n++] = cc->pre[j];
            args[n++] = cc->opts[k];
            args[n] = NULL;
            tu_run_result r = cli_run(cc->tool, args);
            char want[64];
            snprintf(want, sizeof want, "%s needs a value", cc->opts[k]);
            cr_expect_eq(r.status, 2, "%s %s: exit %d: %s", cc->tool, cc->opts[k], r.status, r.err);
            cr_expect(strstr(r.err, want), "%s %s: stderr lacks '%s': %s", cc->tool, cc->opts[k], want, r.err);
            cr_expect_eq(cli_lines(r.err), 1, "%s %s: want one line: %s", cc->tool, cc->opts[k], r.err);
            tu_run_free(&r);
        }
    }
}

static const char *const cli_nonfinite[] = {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "1e999", "-1e999", NULL};

Test(cli, non_finite_numbers_are_refused_in_every_float_option) {
    static const char *const run_floats[] = {"--temp", "--top-p", "--min-p", "--repeat-penalty", NULL};
    for (int k = 0; run_floats[k]; k++)
        for (int j = 0; cli_nonfinite[j]; j++) {
            tu_run_result r = cli_run("apr-run", (const char *[]){"--model", "x.gguf", run_floats[k], cli_nonfinite[j], NULL});
            cr_expect_eq(r.status, 2, "apr-run %s %s: exit %d: %s", run_floats[k], cli_nonfinite[j], r.status, r.err);
            cr_expect(strstr(r.err, run_floats[k]) && strstr(r.err, "finite"), "apr-run %s %s: %s", run_floats[k], cli_nonfinite[j],
                      r.err);
            tu_run_free(&r);
        }
    tu_run_result r = cli_run("apr-run", (const char *[]){"--model", "x.gguf", "--temp=nan", NULL});
    cr_expect_eq(r.status, 2, "--temp=nan: exit %d: %s", r.status, r.err);
    tu_run_free(&r);
    for (int j = 0; cli_nonfinite[j]; j++) {
        r = cli_run("apr-bench", (const char *[]){"--ref-cap", cli_nonfinite[j], "--list", NULL});
        cr_expect_eq(r.status, 2, "apr-bench --ref-cap %s: exit %d: %s", cli_nonfinite[j], r.status, r.err);
        cr_expect(strstr(r.err, "--ref-cap") && strstr(r.err, "finite"), "apr-bench --ref-cap %s: %s", cli_nonfinite[j], r.err);
        tu_run_free(&r);
    }
    /* finite values in range still pass the parser (the made-up model then fails to open: exit 1) */
    r = cli_run("apr-run", (const char *[]){"--model", "/nonexistent/x.gguf", "--temp", "0.7", "--top-p", "1", "--min-p", "0",
                                            "--repeat-penalty", "1.1", NULL});
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    tu_run_free(&r);
}

Test(cli, threads_are_capped_at_four_per_logical_cpu_and_the_help_says_so) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long cap = 4 * (cpus > 0 ? cpus : 1);
    if (cap < 8) cap = 8;
    char ok[32], over[32], list[48];
    snprintf(ok, sizeof ok, "%ld", cap);
    snprintf(over, sizeof over, "%ld", cap + 1);
    snprintf(list, sizeof list, "1,%ld", cap + 1);
    tu_run_result r = cli_run("apr-probe", (const char *[]){"--threads", ok, "--help", NULL});
    cr_expect_eq(r.status, 0, "--threads %s: exit %d: %s", ok, r.status, r.err);
    cr_expect(strstr(r.out, "at most 4 x the logical CPUs"), "the help does not state the cap: %s", r.out);
    tu_run_free(&r);
    const char *tools[] = {"apr-probe", "apr-run", "apr-perplexity", "apr-tokenize", "apr-quantize", "apr-genmodel"};
    for (size_t t = 0; t < sizeof tools / sizeof *tools; t++) {
        r = cli_run(tools[t], (const char *[]){"--threads", over, "--help", NULL});
        cr_expect_eq(r.status, 2, "%s --threads %s: exit %d: %s", tools[t], over, r.status, r.err);
        cr_expect(strstr(r.err, "--threads") && strstr(r.err, ok), "%s: the message does not state the cap %s: %s", tools[t], ok, r.err);
        cr_expect_eq(cli_lines(r.err), 1, "%s: want one line: %s", tools[t], r.err);
        tu_run_free(&r);
    }
    r = cli_run("apr-bench", (const char *[]){"--threads", list, "--list", NULL});
    cr_expect_eq(r.status, 2, "apr-bench --threads %s: exit %d: %s", list, r.status, r.err);
    cr_expect(strstr(r.err, ok), "apr-bench: the message does not state the cap %s: %s", ok, r.err);
    tu_run_free(&r);
    r = cli_run("apr-bench", (const char *[]){"--help", NULL});
    cr_expect(strstr(r.out, "4 x the logical CPUs"), "apr-bench --help does not state the cap: %s", r.out);
    tu_run_free(&r);
}

Test(cli, a_count_out_of_range_says_too_large_or_too_small_with_the_limit) {
    struct { const char *tool, *opt, *val, *want, *limit; } cases[] = {
        {"apr-run", "--ctx", "2000000000", "too large", "16777216"},
        {"apr-run", "--ctx", "99999999999999999999999", "too large", "16777216"},
        {"apr-run", "--ctx", "0", "too small", "at least 1"},
        {"apr-run", "-n", "-1", "too small", "at least 0"},
        {"apr-run", "--ctx", "12x", "whole number", "'12x'"},
        {"apr-perplexity", "--ctx", "2000000000", "too large", "1048576"},
        {"apr-perplexity", "--ctx", "2", "too small", "at least 4"},
        {"apr-bench", "--repeat", "5000", "too large", "1000"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tu_run_result r = cli_run(cases[k].tool, (const char *[]){"--model", "x.gguf", "--file", "x.txt", cases[k].opt, cases[k].val, NULL});
        if (!strcmp(cases[k].tool, "apr-bench")) {
            tu_run_free(&r);
            r = cli_run(cases[k].tool, (const char *[]){cases[k].opt, cases[k].val, "--list", NULL});
        }
        cr_expect_eq(r.status, 2, "%s %s %s: exit %d: %s", cases[k].tool, cases[k].opt, cases[k].val, r.status, r.err);
        cr_expect(strstr(r.err, cases[k].opt) && strstr(r.err, cases[k].want) && strstr(r.err, cases[k].limit),
                  "%s %s %s: want '%s' and '%s': %s", cases[k].tool, cases[k].opt, cases[k].val, cases[k].want, cases[k].limit, r.err);
        cr_expect(!strstr(r.err, "positive count"), "%s", r.err);
        tu_run_free(&r);
    }
}

/* ---------------------------------------------------------------- special token ids */

/* A copy of src with key set to value (as uint32, or as int32 when signed_). */
static void cli_model_with(const char *src, const char *dst, const char *key, int64_t value, bool signed_) {
    gguf_file *f;
    apr_error e;
    cr_assert_eq(apr_gguf_open(src, &f, &e), APR_OK, "%s", e.msg);
    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_copy_kv(w, f);
    if (signed_) apr_gguf_writer_set_i32(w, key, (int32_t)value);
    else apr_gguf_writer_set_u32(w, key, (uint32_t)value);
    for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) {
        const gguf_tensor *t = apr_gguf_tensor_at(f, i);
        apr_gguf_writer_add_tensor(w, t->name, t->dtype, t->n_dims, t->ne, t->data, t->size);
    }
    cr_assert_eq(apr_gguf_writer_write(w, dst, &e), APR_OK, "%s", e.msg);
    apr_gguf_writer_free(w);
    apr_gguf_close(f);
}

/* The error names the file and the key, on one line, with exit status 1. */
static void cli_expect_id_error(const char *what, tu_run_result *r, const char *path, const char *key) {
    cr_expect_eq(r->status, 1, "%s: exit %d: %s", what, r->status, r->err);
    cr_expect(strstr(r->err, path) && strstr(r->err, key) && strstr(r->err, "100000"), "%s: stderr names not %s and %s: %s", what,
              path, key, r->err);
    cr_expect_eq(cli_lines(r->err), 1, "%s: want one line: %s", what, r->err);
    tu_run_free(r);
}

Test(cli, a_special_id_outside_the_vocabulary_names_the_file_and_the_key_in_every_tool, .timeout = 120) {
    const char *model = cli_model();
    char dir[64], path[128], text[128];
    cli_tmpdir(dir, sizeof dir);
    snprintf(text, sizeof text, "%s/text.txt", dir);
    char words[4096] = "";
    for (int i = 0; i < 60; i++) strcat(words, "Once upon a time there was a little girl. ");
    cli_write(text, words, strlen(words));
    const char *tok_keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                              "tokenizer.ggml.padding_token_id"};
    for (size_t k = 0; k < sizeof tok_keys / sizeof *tok_keys; k++) {
        snprintf(path, sizeof path, "%s/bad%zu.gguf", dir, k);
        cli_model_with(model, path, tok_keys[k], 100000, false);
        tu_run_result r = cli_run("apr-tokenize", (const char *[]){"--model", path, "--prompt", "Once upon a time", NULL});
        cli_expect_id_error("apr-tokenize", &r, path, tok_keys[k]);
        r = cli_run("apr-perplexity", (const char *[]){"--model", path, "--file", text, "--ctx", "16", "--chunks", "1", NULL});
        cli_expect_id_error("apr-perplexity", &r, path, tok_keys[k]);
        r = cli_run("apr-run", (const char *[]){"--model", path, "--prompt", "Once", "-n", "2", NULL});
        cli_expect_id_error("apr-run --prompt", &r, path, tok_keys[k]);
        r = cli_run("apr-run", (const char *[]){"--model", path, "--tokens", "1 403", "-n", "2", NULL});
        cli_expect_id_error("apr-run --tokens", &r, path, tok_keys[k]);
    }
    const char *gen_keys[] = {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    for (size_t k = 0; k < sizeof gen_keys / sizeof *gen_keys; k++) {
        snprintf(path, sizeof path, "%s/gen%zu.gguf", dir, k);
        cli_model_with(model, path, gen_keys[k], 100000, false);
        tu_run_result r = cli_run("apr-run", (const char *[]){"--model", path, "--tokens", "1 403", "-n", "2", NULL});
        cli_expect_id_error("apr-run", &r, path, gen_keys[k]);
    }
    /* all ones means "none", as llama.cpp writes it, and stays accepted */
    snprintf(path, sizeof path, "%s/none.gguf", dir);
    cli_model_with(model, path, "tokenizer.ggml.padding_token_id", 0xFFFFFFFF, false);
    tu_run_result r = cli_run("apr-tokenize", (const char *[]){"--model", path, "--prompt", "Once", "--ids", NULL});
    cr_expect_eq(r.status, 0, "padding 0xFFFFFFFF: exit %d: %s", r.status, r.err);
    tu_run_free(&r);
    cli_model_with(model, path, "tokenizer.ggml.padding_token_id", -1, true);
    r = cli_run("apr-tokenize", (const char *[]){"--model", path, "--prompt", "Once", "--ids", NULL});
    cr_expect_eq(r.status, 0, "padding -1: exit %d: %s", r.status, r.err);
    tu_run_free(&r);
    cli_rmdir(dir);
}

/* ---------------------------------------------------------------- files that are not what they should be */

Test(cli, apr_tokenize_says_what_a_model_file_is_not) {
    char dir[64], path[128];
    cli_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/blob.bin", dir);
    unsigned char blob[512];
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = (unsigned char)(i * 37 + 11);
    cli_write(path, blob, sizeof blob);
    tu_run_result r = cli_run("apr-tokenize", (const char *[]){"--model", path, "--prompt", "hi", NULL});
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, path) && strstr(r.err, "not") && strstr(r.err, "GGUF"), "%s", r.err);
    cr_expect(!strstr(r.err, "not valid JSON"), "a binary file is called bad JSON: %s", r.err);
    cr_expect_eq(cli_lines(r.err), 1, "%s", r.err);
    tu_run_free(&r);
    cli_rmdir(dir);
}

/* Opening a FIFO for reading blocks until a writer comes: the tool must look before it opens. */
Test(cli, apr_tokenize_refuses_a_fifo_as_model_without_blocking, .timeout = 20) {
    char dir[64], path[128];
    cli_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo: %s", strerror(errno));
    tu_run_result r = cli_run("apr-tokenize", (const char *[]){"--model", path, "--prompt", "hi", NULL});
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, path) && strstr(r.err, "not a regular file"), "%s", r.err);
    tu_run_free(&r);
    r = cli_run("apr-tokenize", (const char *[]){"--model", "/dev/zero", "--prompt", "hi", NULL});
    cr_expect_eq(r.status, 1, "/dev/zero: exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "not a regular file"), "%s", r.err);
    tu_run_free(&r);
    cli_rmdir(dir);
}

Test(cli, apr_tokenize_refuses_an_unknown_backend_like_the_other_tools) {
    tu_run_result r = cli_run("apr-tokenize", (const char *[]){"--backend", "no-such-backend", "--model", "x.gguf", "--prompt", "hi", NULL});
    cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "no-such-backend"), "%s", r.err);
    tu_run_free(&r);
    r = cli_run("apr-run", (const char *[]){"--backend", "no-such-backend", "--model", "x.gguf", NULL});
    cr_expect_neq(r.status, 0, "apr-run accepted it: %s", r.err);
    tu_run_free(&r);
}

Test(cli, a_directory_or_an_endless_file_as_text_input_is_one_clear_line) {
    const char *model = cli_model();
    char dir[64];
    cli_tmpdir(dir, sizeof dir);
    tu_run_result r = cli_run("apr-tokenize", (const char *[]){"--model", model, "--file", dir, NULL});
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, dir) && strstr(r.err, "directory"), "%s", r.err);
    cr_expect(!strstr(r.err, "Input/output error") && !strstr(r.err, "read failed"), "%s", r.err);
    tu_run_free(&r);
    r = cli_run("apr-perplexity", (const char *[]){"--model", model, "--file", dir, NULL});
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, dir) && strstr(r.err, "directory"), "%s", r.err);
    cr_expect(!strstr(r.err, "Input/output error"), "%s", r.err);
    tu_run_free(&r);
    cli_rmdir(dir);
}

/* ---------------------------------------------------------------- apr-bench */

Test(cli, apr_bench_checks_the_model_before_measuring_anything, .timeout = 60) {
    const char *path = "/nonexistent/apr-bench-model.gguf";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tu_run_result r = cli_run("apr-bench", (const char *[]){"--model", path, "--quick", NULL});
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, path), "the error does not name the file: %s", r.err);
    cr_expect(!strstr(r.err, "measuring ceilings"), "measured before checking the model: %s", r.err);
    cr_expect_lt(secs, 10.0, "took %.1f s", secs);
    tu_run_free(&r);
    r = cli_run("apr-bench", (const char *[]){"--model", path, "--backend", "no-such-backend", NULL});
    cr_expect_eq(r.status, 2, "unknown backend: exit %d: %s", r.status, r.err);
    cr_expect(!strstr(r.err, "measuring ceilings"), "%s", r.err);
    tu_run_free(&r);
}

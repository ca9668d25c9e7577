/* test_genmodel.c — apr-genmodel --vocab-from with a vocabulary smaller than the shape's embedding: padded with
 * [PAD<id>] placeholders (type unused, the lowest score) that llama.cpp and apr-run both load; a larger one refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr.h"
#include "gguf.h"
#include "util/tu_dir.h"
#include "util/tu_paths.h"
#include "util/tu_run.h"
#include "util/tu_spawn.h"

/* ---------------------------------------------------------------- scratch folders and vocabularies */

static void gm_mkdir(char *dir, size_t n) {
    snprintf(dir, n, "/tmp/apr-test-genmodel-XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void gm_rmdir(const char *dir) {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* <fixtures>/vocab/NAME, or skips the test when the shared fixtures are absent. */
static const char *gm_fixture(const char *name) {
    static char path[PATH_MAX];
    if (!tu_have_fixtures()) cr_skip_test("no fixtures at %s", tu_fixtures_dir());
    snprintf(path, sizeof path, "%s/vocab/%s", tu_fixtures_dir(), name);
    return path;
}

static bool gm_per_token(const char *key) {
    return !strcmp(key, "tokenizer.ggml.tokens") || !strcmp(key, "tokenizer.ggml.scores") ||
           !strcmp(key, "tokenizer.ggml.token_type");
}

/* Writes dst: the tokenizer of src cut to its first n tokens and n_merges merges; special ids past
 * n are dropped. The fixtures of real size are larger than the "tiny" shape; a cut one is smaller. */
static void gm_cut_vocab(const char *src, const char *dst, uint64_t n, uint64_t n_merges) {
    gguf_file *f;
    apr_error e;
    cr_assert_eq(apr_gguf_open(src, &f, &e), APR_OK, "%s", e.msg);
    gguf_writer *w = apr_gguf_writer_new();
    cr_assert(w);
    for (int64_t i = 0; i < apr_gguf_kv_count(f); i++) {
        const char *key = apr_gguf_kv_key(f, i);
        const gguf_value *v = apr_gguf_kv_value(f, i);
        if (strncmp(key, "tokenizer.", 10)) continue;
        gguf_value cut = *v;
        if (gm_per_token(key)) cut.arr.n = n;
        else if (!strcmp(key, "tokenizer.ggml.merges")) cut.arr.n = n_merges;
        else if (strstr(key, "_token_id") && (v->type == GGUF_INT32 ? (uint64_t)v->i : v->u) >= n) continue;
        cr_assert(cut.type != GGUF_ARRAY || cut.arr.n <= v->arr.n, "%s: %s has fewer than %llu", src, key,
                  (unsigned long long)cut.arr.n);
        apr_gguf_writer_set_value(w, key, &cut);
    }
    cr_assert_eq(apr_gguf_writer_write(w, dst, &e), APR_OK, "%s", e.msg);
    apr_gguf_writer_free(w);
    apr_gguf_close(f);
}

/* ---------------------------------------------------------------- running the tools */

/* apr-genmodel --shape tiny --vocab-from voc out; returns the result for the caller to free. */
static tu_run_result gm_genmodel(const char *voc, const char *out) {
    const char *args[] = {"--shape", "tiny", "--vocab-from", voc, out, NULL};
    return tu_run(tu_tool("apr-genmodel"), NULL, args, 0);
}

/* The padded model's tokenizer matches the source's first n tokens and pads the rest to 32000. */
static void gm_expect_padded(const char *src, const char *model, uint64_t n) {
    gguf_file *a, *b;
    apr_error e;
    cr_assert_eq(apr_gguf_open(src, &a, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_gguf_open(model, &b, &e), APR_OK, "%s", e.msg);
    gguf_type et;
    uint64_t m = 0, na = 0, nb = 0;
    cr_assert(apr_gguf_get_arr(b, "tokenizer.ggml.tokens", &et, &m) && m == 32000, "%llu tokens", (unsigned long long)m);
    for (uint64_t i = 0; i < m; i++) {
        char want[32];
        if (i >= n) snprintf(want, sizeof want, "[PAD%llu]", (unsigned long long)i);
        const char *got = apr_gguf_get_arr_str(b, "tokenizer.ggml.tokens", i);
        cr_assert_str_eq(got, i < n ? apr_gguf_get_arr_str(a, "tokenizer.ggml.tokens", i) : want, "token %llu",
                         (unsigned long long)i);
    }
    if (apr_gguf_get_arr(a, "tokenizer.ggml.token_type", &et, &na)) {
        cr_assert(apr_gguf_get_arr(b, "tokenizer.ggml.token_type", &et, &nb) && nb == m && et == GGUF_INT32);
        const int32_t *ta = apr_gguf_get_arr_data(a, "tokenizer.ggml.token_type"),
                      *tb = apr_gguf_get_arr_data(b, "tokenizer.ggml.token_type");
        for (uint64_t i = 0; i < m; i++) cr_assert_eq(tb[i], i < n ? ta[i] : 5, "token_type %llu", (unsigned long long)i);
    }
    if (apr_gguf_get_arr(a, "tokenizer.ggml.scores", &et, &na)) {
        cr_assert(apr_gguf_get_arr(b, "tokenizer.ggml.scores", &et, &nb) && nb == m && et == GGUF_FLOAT32);
        const float *sa = apr_gguf_get_arr_data(a, "tokenizer.ggml.scores"), *sb = apr_gguf_get_arr_data(b, "tokenizer.ggml.scores");
        float lo = sa[0];
        for (uint64_t i = 1; i < n; i++) lo = sa[i] < lo ? sa[i] : lo;
        for (uint64_t i = 0; i < m; i++) cr_assert_eq(sb[i], i < n ? sa[i] : lo, "score %llu", (unsigned long long)i);
    }
    if (apr_gguf_get_arr(a, "tokenizer.ggml.merges", &et, &na)) {
        cr_assert(apr_gguf_get_arr(b, "tokenizer.ggml.merges", &et, &nb) && nb == na, "merges %llu of %llu",
                  (unsigned long long)nb, (unsigned long long)na);
        for (uint64_t i = 0; i < na; i++)
            cr_assert_str_eq(apr_gguf_get_arr_str(b, "tokenizer.ggml.merges", i), apr_gguf_get_arr_str(a, "tokenizer.ggml.merges", i));
    }
    const char *pa = apr_gguf_get_str(a, "tokenizer.ggml.model"), *pb = apr_gguf_get_str(b, "tokenizer.ggml.model");
    cr_expect(pa && pb && !strcmp(pa, pb));
    apr_gguf_close(b);
    apr_gguf_close(a);
}

/* apr-run loads model, reads text through its tokenizer and writes text back. */
static void gm_expect_runs(const char *model) {
    const char *args[] = {"--model", model, "--backend", "reference", "--prompt", "Hello world", "-n", "4", "--temp", "0", NULL};
    tu_run_result r = tu_run(tu_tool("apr-run"), NULL, args, 0);
    cr_expect_eq(r.status, 0, "apr-run: %s", r.err);
    cr_expect(strstr(r.err, "decode"), "apr-run printed no statistics: %s", r.err);
    tu_run_free(&r);
}

/* Generates a tiny model from src cut to n tokens, checks the padding and that apr-run runs it. */
static void gm_pad_and_run(const char *fixture, uint64_t n, uint64_t n_merges) {
    char dir[64], voc[128], out[128], line[512];
    const char *src = gm_fixture(fixture);
    gm_mkdir(dir, sizeof dir);
    snprintf(voc, sizeof voc, "%s/v.gguf", dir);
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    gm_cut_vocab(src, voc, n, n_merges);
    tu_run_result r = gm_genmodel(voc, out);
    cr_assert_eq(r.status, 0, "apr-genmodel: %s", r.err);
    snprintf(line, sizeof line,
             "apr-genmodel: padded the vocabulary of %s from %llu to 32000 tokens with [PAD<id>] placeholders\n", voc,
             (unsigned long long)n);
    cr_expect(strstr(r.err, line), "no line '%s' in: %s", line, r.err);
    tu_run_free(&r);
    gm_expect_padded(voc, out, n);
    gm_expect_runs(out);
    gm_rmdir(dir);
}

/* ---------------------------------------------------------------- the tests */

Test(genmodel, a_smaller_spm_vocabulary_is_padded_and_runs, .timeout = 120) {
    gm_pad_and_run("ggml-vocab-llama-spm.gguf", 31990, 0);
}

/* gpt-2's tokens 256 and up are its merges' results in order, so n tokens go with n - 256 merges. */
Test(genmodel, a_smaller_bpe_vocabulary_is_padded_and_runs, .timeout = 120) {
    gm_pad_and_run("ggml-vocab-gpt-2.gguf", 20000, 20000 - 256);
}

Test(genmodel, a_vocabulary_of_the_shapes_size_is_copied_unpadded, .timeout = 120) {
    char dir[64], out[128];
    const char *src = gm_fixture("ggml-vocab-llama-spm.gguf");
    gm_mkdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    tu_run_result r = gm_genmodel(src, out);
    cr_assert_eq(r.status, 0, "apr-genmodel: %s", r.err);
    cr_expect(!strstr(r.err, "padded"), "%s", r.err);
    cr_expect(strstr(r.err, "tokenizer from"), "%s", r.err);
    tu_run_free(&r);
    gm_expect_padded(src, out, 32000);
    gm_rmdir(dir);
}

Test(genmodel, a_larger_vocabulary_is_refused_naming_the_file_and_both_counts, .timeout = 60) {
    char dir[64], out[128], want[PATH_MAX + 128], names[256];
    const char *src = gm_fixture("ggml-vocab-gpt-2.gguf");
    gm_mkdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    tu_run_result r = gm_genmodel(src, out);
    cr_expect_eq(r.status, 1, "status %d: %s", r.status, r.err);
    snprintf(want, sizeof want, "apr-genmodel: %s: its vocabulary has 50257 tokens, more than the 32000 rows of the shape's embedding\n",
             src);
    cr_expect(strstr(r.err, want), "no line '%s' in: %s", want, r.err);
    tu_run_free(&r);
    cr_expect_str_eq(tu_dir_list(dir, names, sizeof names), "", "a refused vocabulary left a file behind");
    gm_rmdir(dir);
}

Test(genmodel, a_file_without_a_vocabulary_is_refused, .timeout = 60) {
    char dir[64], voc[128], out[128];
    gm_mkdir(dir, sizeof dir);
    snprintf(voc, sizeof voc, "%s/v.gguf", dir);
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    gguf_writer *w = apr_gguf_writer_new();
    apr_error e;
    apr_gguf_writer_set_str(w, "general.name", "no tokenizer");
    cr_assert_eq(apr_gguf_writer_write(w, voc, &e), APR_OK, "%s", e.msg);
    apr_gguf_writer_free(w);
    tu_run_result r = gm_genmodel(voc, out);
    cr_expect_eq(r.status, 1, "status %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "has no vocabulary"), "%s", r.err);
    tu_run_free(&r);
    gm_rmdir(dir);
}

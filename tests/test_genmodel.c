/* test_genmodel.c — apr-genmodel --vocab-from with a vocabulary smaller than the shape's embedding: padded with
 * [PAD<id>] placeholders (type unused, the lowest score) that llama.cpp and apr-run both load; a larger one refused.
 * And the library under it (model_init.h): custom shape specs written and loaded back, bad specs refused by name,
 * a tokenizer added by the caller's callback, --shape-spec on the command line. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apr/apr.h"
#include "apr/apr_float16.h"
#include "bpe_train.h"
#include "gguf.h"
#include "llama.h"
#include "model_init.h"
#include "tokenizer.h"
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

/* ---------------------------------------------------------------- the library: model_init.h */

/* The float value i of t (f32, f16 or bf16). */
static float gm_value(const gguf_tensor *t, int64_t i) {
    if (t->dtype == APR_F32) return ((const float *)t->data)[i];
    uint16_t h = ((const uint16_t *)t->data)[i];
    return t->dtype == APR_F16 ? apr_f16_to_f32(h) : apr_bf16_to_f32(h);
}

/* t has shape [ne0, ne1] and dtype dt. */
static void gm_expect_tensor(const gguf_tensor *t, const char *name, int64_t ne0, int64_t ne1, uint32_t dt) {
    cr_assert(t, "%s is missing", name);
    cr_expect(t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1, "%s: [%lld, %lld], expected [%lld, %lld]",
              name, (long long)t->ne[0], (long long)t->ne[1], (long long)ne0, (long long)ne1);
    cr_expect_eq(t->dtype, dt, "%s: dtype %u, expected %u", name, t->dtype, dt);
}

/* Every value of t is 1 (a norm). */
static void gm_expect_ones(const gguf_tensor *t) {
    for (int64_t i = 0; i < t->ne[0] * t->ne[1]; i++) cr_assert_eq(gm_value(t, i), 1.0f, "%s[%lld]", t->name, (long long)i);
}

/* t looks normal with std 0.02: mean near 0, std within 10 %. */
static void gm_expect_normal(const gguf_tensor *t) {
    const int64_t n = t->ne[0] * t->ne[1];
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = gm_value(t, i);
        sum += x;
        sq += x * x;
    }
    const double mean = sum / (double)n, sd = sqrt(sq / (double)n - mean * mean);
    cr_expect(fabs(mean) < 0.02 * 5 / sqrt((double)n) + 1e-6, "%s: mean %g", t->name, mean);
    cr_expect(sd > 0.018 && sd < 0.022, "%s: std %g", t->name, sd);
}

/* path loads as a model of shape sh with n_vocab rows, matrices in dt: every hyperparameter, every tensor's shape
 * and type, the norms 1 and the matrices normal. */
static void gm_expect_model(const char *path, const apr_model_init_shape *sh, int n_vocab, uint32_t dt) {
    gguf_file *f;
    llama_model *m;
    apr_error e;
    cr_assert_eq(apr_gguf_open(path, &f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_model_load(f, &m, &e), APR_OK, "%s", e.msg);
    const llama_hparams *hp = &m->hp;
    const int hd = sh->head_dim ? sh->head_dim : sh->n_embd / sh->n_head;
    cr_expect_str_eq(hp->arch, sh->arch);
    cr_expect_eq(hp->n_layer, sh->n_layer);
    cr_expect_eq(hp->n_embd, sh->n_embd);
    cr_expect_eq(hp->n_head, sh->n_head);
    cr_expect_eq(hp->n_head_kv, sh->n_head_kv);
    cr_expect_eq(hp->head_dim, hd);
    cr_expect_eq(hp->n_rot, hd);
    cr_expect_eq(hp->n_ff, sh->n_ff);
    cr_expect_eq(hp->n_vocab, n_vocab);
    cr_expect_eq(hp->n_ctx_train, sh->n_ctx_train);
    cr_expect_eq(hp->rope_base, sh->rope_base);
    cr_expect_eq(hp->rms_eps, sh->rms_eps);
    cr_expect_eq(hp->rope_layout, strcmp(sh->arch, "llama") ? 1 : 0);
    uint32_t u;
    char key[64];
    snprintf(key, sizeof key, "%s.vocab_size", sh->arch);
    cr_expect(apr_gguf_get_u32(f, key, &u) && u == (uint32_t)n_vocab, "%s", key);

    const int64_t E = sh->n_embd, Q = (int64_t)sh->n_head * hd, KV = (int64_t)sh->n_head_kv * hd, F = sh->n_ff;
    const bool qk_norm = !strcmp(sh->arch, "qwen3");
    gm_expect_tensor(m->tok_embd, "token_embd", E, n_vocab, dt);
    gm_expect_normal(m->tok_embd);
    gm_expect_tensor(m->out_norm, "output_norm", E, 1, APR_F32);
    gm_expect_ones(m->out_norm);
    if (sh->tied) cr_expect(m->output == m->tok_embd && !apr_gguf_tensor_find(f, "output.weight"), "not tied");
    else {
        cr_expect(m->output != m->tok_embd, "tied");
        gm_expect_tensor(m->output, "output", E, n_vocab, dt);
    }
    cr_expect_eq(m->rope_freqs != NULL, sh->llama3_rope);
    for (int l = 0; l < sh->n_layer; l++) {
        const llama_layer *L = &m->layers[l];
        gm_expect_tensor(L->attn_norm, "attn_norm", E, 1, APR_F32);
        gm_expect_tensor(L->wq, "attn_q", E, Q, dt);
        gm_expect_tensor(L->wk, "attn_k", E, KV, dt);
        gm_expect_tensor(L->wv, "attn_v", E, KV, dt);
        gm_expect_tensor(L->wo, "attn_output", Q, E, dt);
        gm_expect_tensor(L->ffn_norm, "ffn_norm", E, 1, APR_F32);
        gm_expect_tensor(L->w_gate, "ffn_gate", E, F, dt);
        gm_expect_tensor(L->w_up, "ffn_up", E, F, dt);
        gm_expect_tensor(L->w_down, "ffn_down", F, E, dt);
        cr_expect_eq(L->bq != NULL, sh->qkv_bias, "block %d: q bias", l);
        cr_expect_eq(L->bk != NULL && L->bv != NULL, sh->qkv_bias, "block %d: k/v bias", l);
        if (sh->qkv_bias) {
            gm_expect_tensor(L->bq, "attn_q.bias", Q, 1, APR_F32);
            gm_expect_tensor(L->bk, "attn_k.bias", KV, 1, APR_F32);
            gm_expect_tensor(L->bv, "attn_v.bias", KV, 1, APR_F32);
        }
        cr_expect_eq(L->q_norm != NULL, qk_norm, "block %d: q norm", l);
        if (qk_norm) {
            gm_expect_tensor(L->q_norm, "attn_q_norm", hd, 1, APR_F32);
            gm_expect_tensor(L->k_norm, "attn_k_norm", hd, 1, APR_F32);
            gm_expect_ones(L->q_norm);
            gm_expect_ones(L->k_norm);
        }
        gm_expect_ones(L->attn_norm);
        gm_expect_ones(L->ffn_norm);
        gm_expect_normal(L->wq);
        gm_expect_normal(L->w_down);
    }
    const int64_t n_tensors = 2 + !sh->tied + sh->llama3_rope + (int64_t)sh->n_layer * (9 + 3 * sh->qkv_bias + 2 * qk_norm);
    cr_expect_eq(apr_gguf_tensor_count(f), n_tensors);
    apr_llama_model_free(m);
    apr_gguf_close(f);
}

/* Parses spec, writes it (no tokenizer) and loads it back. */
static void gm_round_trip(const char *spec, apr_dtype dt, int n_vocab) {
    char dir[64], out[128];
    apr_model_init_shape sh;
    apr_error e;
    cr_assert_eq(apr_model_init_shape_parse(spec, &sh, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(sh.name, "custom");
    gm_mkdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    cr_assert_eq(apr_model_init_write(&sh, dt, 3, NULL, NULL, out, &e), APR_OK, "%s", e.msg);
    gm_expect_model(out, &sh, n_vocab, dt);
    gm_rmdir(dir);
}

Test(genmodel, a_custom_llama_shape_round_trips, .timeout = 60) {
    gm_round_trip("layers=3,embd=192,heads=6,kv_heads=2,ff=512,vocab=2048,ctx=256", APR_F32, 2048);
}

/* qwen2 from a named base: its bias and tied output, its rope base and epsilon; vocab not given is 32000 here */
Test(genmodel, a_custom_shape_from_a_named_base_keeps_its_other_keys, .timeout = 60) {
    apr_model_init_shape sh;
    apr_error e;
    cr_assert_eq(apr_model_init_shape_parse("base=qwen2.5-0.5b,layers=2,embd=128,heads=4,kv_heads=1,ff=256", &sh, &e), APR_OK,
                 "%s", e.msg);
    cr_expect(!strcmp(sh.arch, "qwen2") && sh.qkv_bias && sh.tied && sh.rope_base == 1e6f && sh.rms_eps == 1e-6f &&
              sh.n_ctx_train == 32768 && sh.n_vocab == 0);
    gm_round_trip("base=qwen2.5-0.5b,layers=2,embd=128,heads=4,kv_heads=1,ff=256", APR_F16, 32000);
}

/* qwen3: per-head q/k norms, a head size that is not embd / heads (written as key_length), no bias */
Test(genmodel, a_custom_qwen3_shape_with_its_own_head_size_round_trips, .timeout = 60) {
    gm_round_trip("arch=qwen3,layers=2,embd=128,heads=4,kv_heads=2,head_dim=48,ff=256,vocab=512,ctx=128,tied=1,"
                  "rope_base=1000000,rms_eps=1e-6",
                  APR_BF16, 512);
}

Test(genmodel, llama3_rope_scaling_writes_rope_freqs, .timeout = 60) {
    gm_round_trip("base=llama-3.2-1b,layers=1,embd=128,heads=2,kv_heads=1,ff=256,vocab=300,ctx=512", APR_F16, 300);
}

Test(genmodel, the_named_shapes_are_found_and_valid) {
    const char *names[] = {"tiny", "tinyllama-1.1b", "qwen2.5-0.5b", "llama-3.2-1b"};
    apr_error e;
    for (int i = 0; i < 4; i++) {
        const apr_model_init_shape *sh = apr_model_init_shape_find(names[i]);
        cr_assert(sh && sh == apr_model_init_shape_at(i), "%s", names[i]);
        cr_expect_str_eq(sh->name, names[i]);
        cr_expect_eq(apr_model_init_shape_check(sh, &e), APR_OK, "%s", e.msg);
    }
    cr_expect_null(apr_model_init_shape_at(4));
    cr_expect_null(apr_model_init_shape_at(-1));
    cr_expect_null(apr_model_init_shape_find("tiny2"));
    /* the examples of model_init.h, apr-genmodel --help and README */
    const char *examples[] = {"layers=4,embd=192,heads=6,kv_heads=2,ff=512,vocab=2048", "layers=4,embd=192,heads=6,kv_heads=2,ff=512,ctx=256",
                              "layers=4,embd=192,heads=6,kv_heads=2,ff=512", "layers=4,embd=192,heads=6,kv_heads=6,ff=512,vocab=2048,ctx=256"};
    for (int i = 0; i < 4; i++) {
        apr_model_init_shape sh;
        cr_expect_eq(apr_model_init_shape_parse(examples[i], &sh, &e), APR_OK, "%s", e.msg);
    }
    const apr_model_init_shape *t = apr_model_init_shape_find("tiny");
    cr_expect(t->n_layer == 4 && t->n_embd == 256 && t->n_head == 8 && t->n_head_kv == 4 && t->n_ff == 688 &&
              t->n_vocab == 32000 && t->n_ctx_train == 2048 && !t->tied);
}

Test(genmodel, bad_specs_are_refused_naming_the_problem) {
    const struct { const char *spec, *want; } bad[] = {
        {"", "shape spec is empty"},
        {"layers=4,colour=3", "unknown key 'colour' (keys: base, arch,"},
        {"layers=four", "layers takes a non-negative integer"},
        {"layers=-1", "layers takes a non-negative integer"},
        {"layers= 4", "layers takes a non-negative integer"},
        {"layers=4x", "layers takes a non-negative integer"},
        {"layers=99999999999", "layers takes a non-negative integer"},
        {"layers=0", "layers = 0 is out of range (1 to 16777216)"},
        {"layers", "'layers' is not key=value"},
        {"layers=4,", "'' is not key=value"},
        {"=4", "'=4' is not key=value"},
        {"layers=2,layers=3", "key 'layers' is given twice"},
        {"embd=190", "heads (8) do not divide embd (190); give head_dim"},
        {"embd=192,heads=6,kv_heads=4", "kv_heads (4) do not divide heads (6)"},
        {"embd=8,heads=8,kv_heads=4", "the head size 1 is not even"},
        {"head_dim=33", "the head size 33 is not even"},
        {"arch=gpt2", "arch takes llama, qwen2 or qwen3, not 'gpt2'"},
        {"base=nope", "base takes a shape name"},
        {"rope_base=0", "rope_base takes a positive number"},
        {"rms_eps=nan", "rms_eps takes a positive number"},
        {"rms_eps=1e99", "rms_eps takes a positive number"},
        {"tied=yes", "tied takes 0 or 1, not 'yes'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        apr_model_init_shape sh, before;
        memset(&sh, 0xab, sizeof sh);
        before = sh;
        apr_error e = {{0}};
        cr_expect_eq(apr_model_init_shape_parse(bad[i].spec, &sh, &e), APR_ERR_INVALID, "'%s' was taken", bad[i].spec);
        cr_expect(strstr(e.msg, bad[i].want), "'%s': no '%s' in: %s", bad[i].spec, bad[i].want, e.msg);
        if (*bad[i].spec) {
            char quoted[128];
            snprintf(quoted, sizeof quoted, "shape spec '%s': ", bad[i].spec);
            cr_expect(!strncmp(e.msg, quoted, strlen(quoted)), "'%s': %s", bad[i].spec, e.msg);
        }
        cr_expect(!memcmp(&sh, &before, sizeof sh), "'%s': the shape was written", bad[i].spec);
    }
}

Test(genmodel, a_bad_shape_dtype_or_tokenizer_source_is_refused_before_writing, .timeout = 30) {
    char dir[64], out[128], names[256];
    apr_model_init_shape sh = *apr_model_init_shape_find("tiny");
    apr_error e;
    gm_mkdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    sh.n_head_kv = 3;
    cr_expect_eq(apr_model_init_write(&sh, APR_F16, 1, NULL, NULL, out, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "shape tiny: kv_heads (3) do not divide heads (8)"), "%s", e.msg);
    sh = *apr_model_init_shape_find("tiny");
    snprintf(sh.arch, sizeof sh.arch, "gpt2");
    cr_expect_eq(apr_model_init_write(&sh, APR_F16, 1, NULL, NULL, out, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "architecture 'gpt2'"), "%s", e.msg);
    sh = *apr_model_init_shape_find("tiny");
    cr_expect_eq(apr_model_init_write(&sh, APR_Q8_0, 1, NULL, NULL, out, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "f32, f16 or bf16"), "%s", e.msg);
    apr_model_init_tok both = {.gguf_path = "x.gguf", .keys = (apr_model_init_keys_fn)1};
    cr_expect_eq(apr_model_init_write(&sh, APR_F16, 1, &both, NULL, out, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "give one"), "%s", e.msg);
    cr_expect_str_eq(tu_dir_list(dir, names, sizeof names), "", "a refused write left a file behind");
    gm_rmdir(dir);
}

/* ---------------------------------------------------------------- a tokenizer from the caller */

/* An SPM vocabulary with byte fallback: <unk> <s> </s>, the 256 byte tokens, then a few pieces. */
static const char *const gm_pieces[] = {"▁", "▁H", "ello", "▁w", "orld", "e", "l", "o", "r", "d", "H", "w"};
#define GM_N_PIECES (int)(sizeof gm_pieces / sizeof *gm_pieces)
#define GM_N_TOKENS (3 + 256 + GM_N_PIECES)

typedef struct gm_hook {
    int calls;
    apr_status fail; /* return this (with a message) instead of setting keys */
} gm_hook;

static apr_status gm_set_keys(void *ctx, gguf_writer *w, apr_error *err) {
    gm_hook *h = ctx;
    h->calls++;
    if (h->fail) return apr_error_set(err, h->fail, "the hook failed on purpose");
    char bytes[256][8];
    const char *tokens[GM_N_TOKENS];
    float scores[GM_N_TOKENS];
    int32_t types[GM_N_TOKENS];
    tokens[0] = "<unk>", tokens[1] = "<s>", tokens[2] = "</s>";
    types[0] = TOK_TYPE_UNKNOWN, types[1] = types[2] = TOK_TYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
        types[3 + b] = TOK_TYPE_BYTE;
    }
    for (int i = 0; i < GM_N_PIECES; i++) tokens[259 + i] = gm_pieces[i], types[259 + i] = TOK_TYPE_NORMAL;
    for (int i = 0; i < GM_N_TOKENS; i++) scores[i] = i < 259 ? 0.0f : -(float)(i - 259);
    apr_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    apr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, GM_N_TOKENS);
    apr_gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, scores, GM_N_TOKENS);
    apr_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, types, GM_N_TOKENS);
    apr_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    apr_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    apr_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    apr_gguf_writer_set_str(w, "general.name", "from the hook"); /* replaces the writer's own */
    return APR_OK;
}

/* With vocab left out of the spec, the rows are the hook's n_tokens; its keys are in the file, the tokenizer
 * loads from them and round-trips text, and apr-run runs the model. */
Test(genmodel, a_tokenizer_from_the_callback_loads_and_sets_the_rows, .timeout = 120) {
    char dir[64], out[128];
    apr_model_init_shape sh;
    apr_error e;
    cr_assert_eq(apr_model_init_shape_parse("layers=2,embd=64,heads=4,kv_heads=2,ff=128,ctx=64", &sh, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(sh.n_vocab, 0);
    gm_mkdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    gm_hook h = {0};
    apr_model_init_tok tok = {.keys = gm_set_keys, .keys_ctx = &h, .n_tokens = GM_N_TOKENS};
    cr_assert_eq(apr_model_init_write(&sh, APR_F32, 1, &tok, NULL, out, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(h.calls, 1);
    gm_expect_model(out, &sh, GM_N_TOKENS, APR_F32);

    gguf_file *f;
    cr_assert_eq(apr_gguf_open(out, &f, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(apr_gguf_get_str(f, "tokenizer.ggml.model"), "llama");
    cr_expect_str_eq(apr_gguf_get_str(f, "general.name"), "from the hook");
    gguf_type et;
    uint64_t n;
    cr_expect(apr_gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n) && n == GM_N_TOKENS);
    tok_vocab *v;
    cr_assert_eq(apr_tok_load_gguf(f, &v, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_tok_n_vocab(v), GM_N_TOKENS);
    cr_expect_eq(apr_tok_bos(v), 1);
    cr_expect_eq(apr_tok_eos(v), 2);
    cr_expect_eq(apr_tok_find(v, "▁H", strlen("▁H")), 260);
    int32_t ids[64];
    const char *text = "Hello world";
    int64_t k = apr_tok_encode(v, text, strlen(text), 0, ids, 64);
    cr_assert(k > 0 && k <= 64, "%lld ids", (long long)k);
    cr_expect_eq(ids[0], 260, "'▁H' first, got %d", ids[0]); /* the space prefix, then the longest pieces */
    char *back = apr_tok_decode(v, ids, (size_t)k, TOK_DECODE_STRIP_FIRST, NULL);
    cr_expect_str_eq(back, text);
    free(back);
    apr_tok_free(v);
    apr_gguf_close(f);
    gm_expect_runs(out);
    gm_rmdir(dir);
}

/* What apr-finetune --from-scratch does: a vocabulary trained by bpe_train.h set through the callback, the rows
 * its token count (less than asked when the text runs out of pairs). */
static apr_status gm_set_bpe(void *ctx, gguf_writer *w, apr_error *err) {
    (void)err;
    apr_bpe_gguf_set(ctx, w);
    return APR_OK;
}

Test(genmodel, a_trained_bpe_vocabulary_through_the_callback_loads, .timeout = 120) {
    char dir[64], out[128];
    const char *text = "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
                       "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters.";
    apr_bpe_options o = {.vocab_size = 300};
    apr_bpe_vocab *bv;
    apr_error e;
    cr_assert_eq(apr_bpe_train(text, strlen(text), &o, &bv, &e), APR_OK, "%s", e.msg);
    apr_model_init_shape sh;
    cr_assert_eq(apr_model_init_shape_parse("arch=qwen2,layers=1,embd=64,heads=4,kv_heads=4,ff=128,ctx=64", &sh, &e), APR_OK,
                 "%s", e.msg);
    gm_mkdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    apr_model_init_tok tok = {.keys = gm_set_bpe, .keys_ctx = bv, .n_tokens = bv->n_tokens};
    cr_assert_eq(apr_model_init_write(&sh, APR_F16, 1, &tok, NULL, out, &e), APR_OK, "%s", e.msg);
    gm_expect_model(out, &sh, bv->n_tokens, APR_F16);
    gguf_file *f;
    tok_vocab *v;
    cr_assert_eq(apr_gguf_open(out, &f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_tok_load_gguf(f, &v, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_tok_n_vocab(v), bv->n_tokens);
    cr_expect_eq(apr_tok_model_kind(v), TOK_MODEL_BPE);
    int32_t ids[256];
    int64_t k = apr_tok_encode(v, text, strlen(text), 0, ids, 256);
    cr_assert(k > 0 && k < (int64_t)strlen(text) / 2, "%lld ids for %zu bytes: the merges were not used", (long long)k,
              strlen(text));
    char *back = apr_tok_decode(v, ids, (size_t)k, 0, NULL);
    cr_expect_str_eq(back, text);
    free(back);
    apr_tok_free(v);
    apr_gguf_close(f);
    apr_bpe_free(bv);
    gm_expect_runs(out);
    gm_rmdir(dir);
}

Test(genmodel, a_callback_failure_or_a_token_count_that_does_not_fit_fails_the_write, .timeout = 30) {
    char dir[64], out[128], names[256];
    apr_model_init_shape sh;
    apr_error e;
    cr_assert_eq(apr_model_init_shape_parse("layers=1,embd=64,heads=4,ff=128,vocab=300", &sh, &e), APR_OK, "%s", e.msg);
    gm_mkdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    gm_hook h = {.fail = APR_ERR_IO};
    apr_model_init_tok tok = {.keys = gm_set_keys, .keys_ctx = &h, .n_tokens = 300};
    cr_expect_eq(apr_model_init_write(&sh, APR_F16, 1, &tok, NULL, out, &e), APR_ERR_IO);
    cr_expect_str_eq(e.msg, "the hook failed on purpose");
    cr_expect_eq(h.calls, 1);
    h = (gm_hook){0};
    tok.n_tokens = GM_N_TOKENS; /* 271 tokens for 300 rows */
    cr_expect_eq(apr_model_init_write(&sh, APR_F16, 1, &tok, NULL, out, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "writes 271 tokens (n_tokens) for 300 embedding rows"), "%s", e.msg);
    sh.n_vocab = 0;
    tok.n_tokens = 0;
    cr_expect_eq(apr_model_init_write(&sh, APR_F16, 1, &tok, NULL, out, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "n_tokens must be given"), "%s", e.msg);
    cr_expect_eq(h.calls, 0);
    cr_expect_str_eq(tu_dir_list(dir, names, sizeof names), "", "a failed write left a file behind");
    gm_rmdir(dir);
}

/* Progress: once at the start with nothing done, then rising to the total; the same seed gives the same bytes. */
typedef struct gm_prog {
    int calls;
    uint64_t last, total;
    bool started_at_zero, rising;
} gm_prog;

static void gm_progress(void *ctx, const apr_model_init_info *in) {
    gm_prog *p = ctx;
    if (p->calls++ == 0) p->started_at_zero = in->done == 0 && in->total > 0 && in->shape->n_vocab == 300;
    else p->rising &= in->done > p->last && in->done <= in->total;
    p->last = in->done;
    p->total = in->total;
}

Test(genmodel, progress_is_told_and_the_same_seed_writes_the_same_bytes, .timeout = 60) {
    char dir[64], a[128], b[128], c[128], cmd[512];
    apr_model_init_shape sh;
    apr_error e;
    cr_assert_eq(apr_model_init_shape_parse("layers=2,embd=64,heads=4,ff=128,vocab=300", &sh, &e), APR_OK, "%s", e.msg);
    gm_mkdir(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/a.gguf", dir);
    snprintf(b, sizeof b, "%s/b.gguf", dir);
    snprintf(c, sizeof c, "%s/c.gguf", dir);
    gm_prog p = {.rising = true};
    const apr_model_init_opts o = {.producer = "test", .progress = gm_progress, .progress_ctx = &p};
    cr_assert_eq(apr_model_init_write(&sh, APR_F16, 9, NULL, &o, a, &e), APR_OK, "%s", e.msg);
    cr_expect(p.calls > 2 && p.started_at_zero && p.rising && p.last == p.total, "%d calls, %llu of %llu", p.calls,
              (unsigned long long)p.last, (unsigned long long)p.total);
    cr_assert_eq(apr_model_init_write(&sh, APR_F16, 9, NULL, NULL, b, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_model_init_write(&sh, APR_F16, 10, NULL, &o, c, &e), APR_OK, "%s", e.msg);
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, c);
    cr_expect_neq(system(cmd), 0, "another seed wrote the same bytes");
    gguf_file *fa, *fb;
    cr_assert_eq(apr_gguf_open(a, &fa, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_gguf_open(b, &fb, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(apr_gguf_get_str(fa, "general.name"), "random weights — not a trained model (test custom, seed 9)");
    cr_expect_str_eq(apr_gguf_get_str(fb, "general.name"), "random weights — not a trained model (apr custom, seed 9)");
    cr_assert_eq(apr_gguf_tensor_count(fa), apr_gguf_tensor_count(fb));
    for (int64_t i = 0; i < apr_gguf_tensor_count(fa); i++) {
        const gguf_tensor *ta = apr_gguf_tensor_at(fa, i), *tb = apr_gguf_tensor_at(fb, i);
        cr_assert(ta->size == tb->size && !memcmp(ta->data, tb->data, ta->size), "%s differs", ta->name);
    }
    apr_gguf_close(fb);
    apr_gguf_close(fa);
    gm_rmdir(dir);
}

/* ---------------------------------------------------------------- apr-genmodel --shape-spec */

/* Without vocab= the rows are the --vocab-from file's tokens (a cut one: no padding); --json names the spec. */
Test(genmodel, shape_spec_takes_its_rows_from_the_vocabulary_file, .timeout = 120) {
    char dir[64], voc[128], out[128];
    const char *src = gm_fixture("ggml-vocab-llama-spm.gguf");
    gm_mkdir(dir, sizeof dir);
    snprintf(voc, sizeof voc, "%s/v.gguf", dir);
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    gm_cut_vocab(src, voc, 1000, 0);
    const char *spec = "layers=2,embd=64,heads=4,kv_heads=2,ff=128,ctx=128";
    const char *args[] = {"--shape-spec", spec, "--vocab-from", voc, "--dtype", "f32", "--json", out, NULL};
    tu_run_result r = tu_run(tu_tool("apr-genmodel"), NULL, args, 0);
    cr_assert_eq(r.status, 0, "apr-genmodel: %s", r.err);
    cr_expect(strstr(r.err, "apr-genmodel: tokenizer from") && !strstr(r.err, "padded"), "%s", r.err);
    cr_expect(strstr(r.err, "(custom, f32, "), "%s", r.err);
    char want[512];
    snprintf(want, sizeof want, "\"shape\":\"custom\",\"spec\":\"%s\",\"dtype\":\"f32\",\"seed\":1,\"tokenizer\":true}", spec);
    cr_expect(strstr(r.out, want), "no '%s' in: %s", want, r.out);
    tu_run_free(&r);
    apr_model_init_shape sh;
    apr_error e;
    cr_assert_eq(apr_model_init_shape_parse(spec, &sh, &e), APR_OK, "%s", e.msg);
    gm_expect_model(out, &sh, 1000, APR_F32);
    gguf_file *a, *b;
    cr_assert_eq(apr_gguf_open(voc, &a, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_gguf_open(out, &b, &e), APR_OK, "%s", e.msg);
    gguf_type et;
    uint64_t n = 0;
    cr_expect(apr_gguf_get_arr(b, "tokenizer.ggml.tokens", &et, &n) && n == 1000, "%llu tokens", (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++)
        cr_assert_str_eq(apr_gguf_get_arr_str(b, "tokenizer.ggml.tokens", i), apr_gguf_get_arr_str(a, "tokenizer.ggml.tokens", i));
    apr_gguf_close(b);
    apr_gguf_close(a);
    gm_expect_runs(out);
    gm_rmdir(dir);
}

Test(genmodel, a_bad_shape_spec_or_both_shape_options_are_usage_errors, .timeout = 30) {
    const char *a1[] = {"--shape-spec", "layers=2,colour=3", "/tmp/apr-test-genmodel-never.gguf", NULL};
    tu_run_result r = tu_run(tu_tool("apr-genmodel"), NULL, a1, 0);
    cr_expect_eq(r.status, 2, "status %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "apr-genmodel: shape spec 'layers=2,colour=3': unknown key 'colour'"), "%s", r.err);
    tu_run_free(&r);
    const char *a2[] = {"--shape", "tiny", "--shape-spec", "layers=2", "/tmp/apr-test-genmodel-never.gguf", NULL};
    r = tu_run(tu_tool("apr-genmodel"), NULL, a2, 0);
    cr_expect_eq(r.status, 2, "status %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "--shape and --shape-spec contradict each other"), "%s", r.err);
    tu_run_free(&r);
    cr_expect_neq(access("/tmp/apr-test-genmodel-never.gguf", F_OK), 0);
}

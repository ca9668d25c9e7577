/* test_llama.c — a real trained model end to end: stories260K's greedy generation from BOS must equal
 * the published llama2.c output token for token, on every usable backend. */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apr/apr.h"
#include "util/tu_paths.h"
#include "gguf.h"
#include "llama.h"
#include "sampler.h"

/* <repo>/../shared/fixtures */
static char llama_fixtures[PATH_MAX + 32];

static bool llama_find_fixtures(void) {
    snprintf(llama_fixtures, sizeof llama_fixtures, "%s", tu_fixtures_dir());
    return tu_have_fixtures();
}

/* The published greedy ids: cases[0].generated_ids of expected_generation.json. */
static int llama_expected(int32_t *ids, int cap) {
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/stories260K/expected_generation.json", llama_fixtures);
    char *buf = tu_read_file(path, NULL);
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    cr_assert(root, "%s is not JSON", path);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), 0);
    cJSON *g = cJSON_GetObjectItem(c0, "generated_ids");
    cr_assert(cJSON_GetNumberValue(cJSON_GetObjectItem(c0, "temperature")) == 0.0, "case 0 is not the greedy one");
    int n = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, g) if (n < cap) ids[n++] = (int32_t)cJSON_GetNumberValue(it);
    cJSON_Delete(root);
    return n;
}

/* stories260K.gguf of the fixtures, opened and loaded (the test fails if it cannot be). */
static void llama_open_stories(gguf_file **f, llama_model **m) {
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", llama_fixtures);
    apr_error e;
    cr_assert_eq(apr_gguf_open(path, f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_model_load(*f, m, &e), APR_OK, "%s", e.msg);
}

Test(llama, stories260K_greedy_generation_matches_the_reference_on_every_backend, .timeout = 300) {
    if (!llama_find_fixtures()) cr_skip_test("fixtures not found at %s", llama_fixtures);
    int32_t want[512];
    int n_want = llama_expected(want, 512);
    cr_assert_geq(n_want, 200, "expected ids missing");
    apr_error e;
    gguf_file *f;
    llama_model *m;
    llama_open_stories(&f, &m);
    cr_expect_eq(m->hp.n_layer, 5);
    cr_expect_eq(m->hp.n_head_kv, 4);
    apr_registry *reg;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    int tested = 0;
    for (int b = 0; b < apr_registry_count(reg); b++) {
        const apr_plugin_record *r = apr_registry_record(reg, b);
        if (r->state != APR_PLUGIN_OK) continue;
        apr_backend *be;
        cr_assert_eq(apr_backend_open(reg, r->name, 2, &be, &e), APR_OK, "%s", e.msg);
        llama_session *s;
        cr_assert_eq(apr_llama_session_new(m, n_want + 1, &be, 1, &s, &e), APR_OK, "%s", e.msg);
        sampler_params sp = apr_sampler_defaults();
        sp.temperature = 0;
        sampler *smp = apr_sampler_new(&sp, m->hp.n_vocab);
        float *logits = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
        int32_t tok = 1; /* BOS */
        int match = 0;
        for (int i = 0; i < n_want; i++) {
            cr_assert_eq(apr_llama_session_eval(s, &tok, 1, false, logits, &e), APR_OK, "%s: %s", r->name, e.msg);
            tok = apr_sampler_sample(smp, logits);
            if (tok != want[i]) break;
            match++;
        }
        cr_expect_eq(match, n_want, "%s: first difference at generated token %d (got %d, want %d)", r->name, match, tok,
                     match < n_want ? want[match] : -1);
        fprintf(stderr, "%s: %d of %d greedy tokens equal the reference\n", r->name, match, n_want);
        free(logits);
        apr_sampler_free(smp);
        apr_llama_session_free(s);
        apr_backend_close(be);
        tested++;
    }
    cr_expect_geq(tested, 1);
    apr_registry_close(reg);
    apr_llama_model_free(m);
    apr_gguf_close(f);
}

Test(llama, context_overflow_and_bad_ids_are_errors) {
    if (!llama_find_fixtures()) cr_skip_test("fixtures not found at %s", llama_fixtures);
    apr_error e;
    gguf_file *f;
    llama_model *m;
    llama_open_stories(&f, &m);
    apr_registry *reg;
    apr_backend *be;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(reg, "reference", 1, &be, &e), APR_OK, "%s", e.msg);
    llama_session *s;
    cr_assert_eq(apr_llama_session_new(m, 4, &be, 1, &s, &e), APR_OK, "%s", e.msg);
    float logits[512 * 5];
    int32_t ids[5] = {1, 403, 407, 261, 378};
    cr_expect_eq(apr_llama_session_eval(s, ids, 5, false, logits, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "context overflow"), "%s", e.msg);
    int32_t bad = 512;
    cr_expect_eq(apr_llama_session_eval(s, &bad, 1, false, logits, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "outside the vocabulary"), "%s", e.msg);
    /* a batch and the same tokens one by one give the same logits */
    cr_assert_eq(apr_llama_session_eval(s, ids, 4, true, logits, &e), APR_OK, "%s", e.msg);
    llama_session *s1;
    cr_assert_eq(apr_llama_session_new(m, 4, &be, 1, &s1, &e), APR_OK, "%s", e.msg);
    float one[512];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(apr_llama_session_eval(s1, &ids[i], 1, false, one, &e), APR_OK, "%s", e.msg);
        for (int v = 0; v < 512; v++)
            cr_assert_float_eq(one[v], logits[i * 512 + v], 1e-3f, "position %d id %d", i, v);
    }
    apr_llama_session_free(s1);
    apr_llama_session_free(s);
    apr_backend_close(be);
    apr_registry_close(reg);
    apr_llama_model_free(m);
    apr_gguf_close(f);
}

/* Decode reruns one kept graph over the cache rounded up to a step of positions, the unfilled
 * slots masked. Tokens fed one by one, with batches in between, over more than two steps and up
 * to a context that is not a whole number of steps, must give the logits of one batch of all. */
Test(llama, kept_decode_graphs_give_the_logits_of_one_batch, .timeout = 120) {
    if (!llama_find_fixtures()) cr_skip_test("fixtures not found at %s", llama_fixtures);
    apr_error e;
    gguf_file *f;
    llama_model *m;
    llama_open_stories(&f, &m);
    apr_registry *reg;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    enum { N = 150, V = 512 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = i ? (int32_t)(3 + (i * 37) % 500) : 1;
    float *all = malloc(sizeof(float) * N * V), *one = malloc(sizeof(float) * N * V);
    cr_assert(all && one);
    const char *names[2] = {"reference", NULL}; /* NULL: the default backend */
    for (int b = 0; b < 2; b++) {
        apr_backend *be;
        cr_assert_eq(apr_backend_open(reg, names[b], 2, &be, &e), APR_OK, "%s", e.msg);
        llama_session *s;
        cr_assert_eq(apr_llama_session_new(m, N, &be, 1, &s, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_llama_session_eval(s, ids, N, true, all, &e), APR_OK, "%s", e.msg);
        apr_llama_session_free(s);
        cr_assert_eq(apr_llama_session_new(m, N, &be, 1, &s, &e), APR_OK, "%s", e.msg);
        /* 5 as a batch, one by one to 70, 3 as a batch, then one by one to the end of the context */
        for (int i = 0; i < N;) {
            int n = i == 0 ? 5 : i == 70 ? 3 : 1;
            cr_assert_eq(apr_llama_session_eval(s, &ids[i], n, false, &one[(i + n - 1) * V], &e), APR_OK, "%s", e.msg);
            i += n;
        }
        cr_expect_eq(apr_llama_session_pos(s), N);
        /* The reference gives the batch's logits bit for bit. Other backends' batch attention
         * may round q and partial sums to f16 (the conformance bound admits it): 0.006 of
         * (1 + |logit|) at worst on cpu-avx512, against 4.7 when the unfilled slots are left
         * unmasked. */
        const double bound = strcmp(apr_backend_name(be), "reference") ? 0.05 : 0.0;
        double worst = 0;
        int wi = 0, wv = 0;
        for (int i = 4; i < N; i++) {
            if (i == 70 || i == 71) continue; /* inside the batch at 70: only its last row is returned */
            for (int v = 0; v < V; v++) {
                double d = fabs(one[i * V + v] - all[i * V + v]) / (1 + fabs(all[i * V + v]));
                if (d > worst) worst = d, wi = i, wv = v;
            }
        }
        fprintf(stderr, "%s: one by one against one batch: worst |difference| / (1 + |logit|) %.2g (bound %g)\n",
                apr_backend_name(be), worst, bound);
        cr_expect_leq(worst, bound, "%s: position %d id %d: %g one by one, %g in the batch", apr_backend_name(be), wi, wv,
                      one[wi * V + wv], all[wi * V + wv]);
        apr_llama_session_free(s);
        apr_backend_close(be);
    }
    free(all);
    free(one);
    apr_registry_close(reg);
    apr_llama_model_free(m);
    apr_gguf_close(f);
}

/* test_resident.c — backend-resident memory end to end: on a backend whose memory the host cannot
 * address (tests/plugins/opaque.c, which counts every byte across its boundary), a model's weights
 * cross once at load, and each decoded token moves only its inputs in and its logits out, never a
 * weight or the KV cache; decode makes no plan per token; greedy output equals the reference
 * backend's, for one sequence and for two decoded in one batch. */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apr/apr.h"
#include "llama_gen.h"
#include "gguf.h"
#include "llama.h"
#include "plugins/opaque.h"
#include "sampler.h"
#include "util/tu_paths.h"

#define RES_N_DECODE 70 /* crosses a 64-position step, so one decode plan is replaced */

static apr_registry *res_registry(void) {
    apr_registry_options o = {.plugin_path = tu_test_plugins_dir()};
    apr_registry *reg;
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, &reg, &e), APR_OK, "%s", e.msg);
    return reg;
}

static apr_backend *res_open(apr_registry *reg, const char *name) {
    apr_backend *be;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, name, 1, &be, &e), APR_OK, "%s", e.msg);
    return be;
}

/* The fixture model rel (under ../shared/fixtures), or a skip when the fixtures are missing. */
static bool res_model(const char *rel, gguf_file **f, llama_model **m) {
    if (!tu_have_fixtures()) return false;
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", tu_fixtures_dir(), rel);
    apr_error e;
    cr_assert_eq(apr_gguf_open(path, f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_model_load(*f, m, &e), APR_OK, "%s", e.msg);
    return true;
}

static int32_t res_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Greedy tokens after prompt, n of them, decoding one token per call. */
static void res_greedy(llama_session *s, const int32_t *prompt, int n_prompt, int n_vocab, int n, int32_t *out) {
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    apr_error e;
    cr_assert_eq(apr_llama_session_eval(s, prompt, n_prompt, false, logits, &e), APR_OK, "%s", e.msg);
    for (int i = 0; i < n; i++) {
        out[i] = res_argmax(logits, n_vocab);
        if (i + 1 < n) cr_assert_eq(apr_llama_session_eval(s, &out[i], 1, false, logits, &e), APR_OK, "%s", e.msg);
    }
    free(logits);
}

/* Bytes of every tensor of the file (what placing the weights uploads). */
static uint64_t res_weight_bytes(const gguf_file *f) {
    uint64_t n = 0;
    for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) n += apr_gguf_tensor_at(f, i)->size;
    return n;
}

static const int32_t res_prompt[] = {1, 403, 407, 261, 378, 284}; /* BOS and five ids below every test vocab's size */
#define RES_N_PROMPT ((int)(sizeof res_prompt / sizeof res_prompt[0]))

/* The single-sequence proof on model rel: load, prefill, RES_N_DECODE greedy tokens, counting. */
static void res_single(const char *rel) {
    gguf_file *f;
    llama_model *m;
    if (!res_model(rel, &f, &m)) cr_skip_test("fixtures not found at %s", tu_fixtures_dir());
    const int V = m->hp.n_vocab, n_ctx = 128;
    apr_registry *reg = res_registry();
    apr_backend *ref = res_open(reg, "reference"), *op = res_open(reg, "opaque");
    opaque_counters *c = apr_backend_instance(op);
    cr_assert_eq(c->magic, OPAQUE_MAGIC, "the opaque test plugin is not the backend opened");
    apr_error e;
    int32_t want[RES_N_DECODE], got[RES_N_DECODE];
    llama_session *s;
    cr_assert_eq(apr_llama_session_new(m, n_ctx, &ref, 1, &s, &e), APR_OK, "%s", e.msg);
    res_greedy(s, res_prompt, RES_N_PROMPT, V, RES_N_DECODE, want);
    apr_llama_session_free(s);

    opaque_counters_reset(c);
    cr_assert_eq(apr_llama_session_new(m, n_ctx, &op, 1, &s, &e), APR_OK, "%s", e.msg);
    /* load: every weight crosses once, into weights buffers; the cache is allocated there, zero bytes moved */
    cr_expect_eq(c->bytes_in_by_usage[APR_USAGE_WEIGHTS], res_weight_bytes(f));
    cr_expect_eq(c->n_allocs_by_usage[APR_USAGE_STATE], 2 * (uint64_t)m->hp.n_layer, "a K and a V table per layer");
    cr_expect_eq(c->bytes_in_by_usage[APR_USAGE_STATE], 0);
    float *logits = malloc(sizeof(float) * (size_t)V);
    cr_assert_eq(apr_llama_session_eval(s, res_prompt, RES_N_PROMPT, false, logits, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(c->bytes_in_by_usage[APR_USAGE_WEIGHTS], res_weight_bytes(f), "prefill uploaded a weight");
    int new_plans = 0;
    for (int i = 0; i < RES_N_DECODE; i++) {
        got[i] = res_argmax(logits, V);
        if (i + 1 == RES_N_DECODE) break;
        const int pos = apr_llama_session_pos(s);
        const opaque_counters before = *c;
        cr_assert_eq(apr_llama_session_eval(s, &got[i], 1, false, logits, &e), APR_OK, "%s", e.msg);
        /* in: id, position, a cache row per kv head and the mask row over the 64-rounded slots read;
         * out: the logits */
        const uint64_t S = (uint64_t)((pos + 1 + 63) / 64 * 64 < n_ctx ? (pos + 1 + 63) / 64 * 64 : n_ctx);
        cr_assert_eq(c->bytes_in - before.bytes_in, 4 * (2 + (uint64_t)m->hp.n_head_kv) + 4 * S, "token %d: %llu bytes in", i,
                     (unsigned long long)(c->bytes_in - before.bytes_in));
        cr_assert_eq(c->bytes_out - before.bytes_out, 4 * (uint64_t)V, "token %d: bytes out", i);
        cr_assert_eq(c->bytes_copied, before.bytes_copied);
        cr_assert_eq(c->bytes_in_by_usage[APR_USAGE_WEIGHTS], before.bytes_in_by_usage[APR_USAGE_WEIGHTS]);
        cr_assert_eq(c->bytes_in_by_usage[APR_USAGE_STATE] + c->bytes_out_by_usage[APR_USAGE_STATE],
                     before.bytes_in_by_usage[APR_USAGE_STATE] + before.bytes_out_by_usage[APR_USAGE_STATE],
                     "the KV cache crossed the boundary");
        new_plans += (int)(c->n_plans_created - before.n_plans_created);
    }
    cr_expect_eq(new_plans, 2, "decode made %d plugin plans over %d tokens (one per 64 positions expected)", new_plans,
                 RES_N_DECODE - 1);
    cr_expect_eq(c->n_computes, 0, "every split runs as a plugin plan");
    for (int i = 0; i < RES_N_DECODE; i++) cr_expect_eq(got[i], want[i], "token %d: %d, reference %d", i, got[i], want[i]);
    apr_llama_session_free(s);

    /* the generation loop apr-run uses, on the opaque backend: the same tokens */
    cr_assert_eq(apr_llama_session_new(m, n_ctx, &op, 1, &s, &e), APR_OK, "%s", e.msg);
    sampler_params sp = apr_sampler_defaults();
    sp.temperature = 0;
    sampler *smp = apr_sampler_new(&sp, V);
    cr_assert_eq(apr_llama_session_eval(s, res_prompt, RES_N_PROMPT, false, logits, &e), APR_OK, "%s", e.msg);
    llama_gen_params gp = apr_llama_gen_defaults(n_ctx);
    gp.n_predict = RES_N_DECODE;
    llama_gen_result r;
    const opaque_counters before = *c;
    cr_assert_eq(apr_llama_gen_run(s, smp, NULL, logits, logits, &gp, &r, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(c->bytes_out - before.bytes_out, 4 * (uint64_t)V * (uint64_t)r.n_decoded);
    cr_expect_eq(c->bytes_in_by_usage[APR_USAGE_WEIGHTS], before.bytes_in_by_usage[APR_USAGE_WEIGHTS]);
    apr_sampler_free(smp);
    apr_llama_session_free(s);
    cr_expect_eq(apr_backend_uploaded_bytes(op), 0, "weights still placed after every session ended");
    cr_expect_eq(c->live_buffers, 1, "%llu buffers left after every session ended: only the arena the backend keeps for the next plan should be",
                 (unsigned long long)c->live_buffers);

    free(logits);
    apr_backend_close(op);
    apr_backend_close(ref);
    apr_registry_close(reg);
    apr_llama_model_free(m);
    apr_gguf_close(f);
}

Test(resident, stories260K_decodes_moving_only_ids_and_logits, .timeout = 300) { res_single("stories260K/stories260K.gguf"); }

Test(resident, tiny_model_decodes_moving_only_ids_and_logits, .timeout = 300) { res_single("tiny/llama-2-tiny-random.gguf"); }

/* Two sequences decoded in one batch give each the tokens it gets alone, on be. */
static void res_two(apr_backend *be, const llama_model *m, const int32_t *alone_a, const int32_t *alone_b, int n,
                    opaque_counters *c) {
    const int V = m->hp.n_vocab;
    const int32_t pa[] = {1, 403, 407, 261}, pb[] = {1, 284, 378, 261, 403, 407};
    const int na = 4, nb = 6;
    llama_ctx_params cp = apr_llama_ctx_defaults(64);
    cp.n_seq = 2;
    llama_ctx *ctx;
    apr_error e;
    cr_assert_eq(apr_llama_ctx_new(m, &cp, &be, 1, &ctx, &e), APR_OK, "%s", e.msg);
    /* both prompts in one batch, each wanting its last logits */
    int32_t ids[10], seq[10];
    bool want[10] = {0};
    for (int i = 0; i < na; i++) ids[i] = pa[i], seq[i] = 0;
    for (int i = 0; i < nb; i++) ids[na + i] = pb[i], seq[na + i] = 1;
    want[na - 1] = want[na + nb - 1] = true;
    float *logits = malloc(sizeof(float) * 2 * (size_t)V);
    llama_batch b = {.n = na + nb, .ids = ids, .seq = seq, .logits = want};
    cr_assert_eq(apr_llama_ctx_decode(ctx, &b, logits, &e), APR_OK, "%s", e.msg);
    for (int t = 0; t < n; t++) {
        int32_t next[2] = {res_argmax(logits, V), res_argmax(logits + V, V)}, both[2] = {0, 1};
        cr_expect_eq(next[0], alone_a[t], "sequence 0, token %d: %d batched, %d alone", t, next[0], alone_a[t]);
        cr_expect_eq(next[1], alone_b[t], "sequence 1, token %d: %d batched, %d alone", t, next[1], alone_b[t]);
        if (t + 1 == n) break;
        const uint64_t out_before = c ? c->bytes_out : 0, state_before = c ? c->bytes_out_by_usage[APR_USAGE_STATE] : 0;
        llama_batch d = {.n = 2, .ids = next, .seq = both, .logits = (bool[]){true, true}};
        cr_assert_eq(apr_llama_ctx_decode(ctx, &d, logits, &e), APR_OK, "%s", e.msg);
        if (c) {
            cr_assert_eq(c->bytes_out - out_before, 8 * (uint64_t)V, "step %d: only the two rows of logits come out", t);
            cr_assert_eq(c->bytes_out_by_usage[APR_USAGE_STATE], state_before);
        }
    }
    cr_expect_eq(apr_llama_ctx_kv(ctx)->len[0], na + n - 1);
    cr_expect_eq(apr_llama_ctx_kv(ctx)->len[1], nb + n - 1);
    free(logits);
    apr_llama_ctx_free(ctx);
}

Test(resident, two_sequences_in_one_batch_equal_each_alone, .timeout = 300) {
    gguf_file *f;
    llama_model *m;
    if (!res_model("stories260K/stories260K.gguf", &f, &m)) cr_skip_test("fixtures not found at %s", tu_fixtures_dir());
    enum { N = 24 };
    const int V = m->hp.n_vocab;
    apr_registry *reg = res_registry();
    apr_backend *ref = res_open(reg, "reference"), *op = res_open(reg, "opaque");
    apr_backend *cpu;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, NULL, 1, &cpu, &e), APR_OK, "%s", e.msg);
    const int32_t pa[] = {1, 403, 407, 261}, pb[] = {1, 284, 378, 261, 403, 407};
    int32_t a[N], b[N];
    llama_session *s;
    cr_assert_eq(apr_llama_session_new(m, 64, &ref, 1, &s, &e), APR_OK, "%s", e.msg);
    res_greedy(s, pa, 4, V, N, a);
    apr_llama_session_free(s);
    cr_assert_eq(apr_llama_session_new(m, 64, &ref, 1, &s, &e), APR_OK, "%s", e.msg);
    res_greedy(s, pb, 6, V, N, b);
    apr_llama_session_free(s);
    cr_expect(memcmp(a, b, sizeof a) != 0, "the two prompts should lead to different text");
    res_two(ref, m, a, b, N, NULL);
    res_two(op, m, a, b, N, apr_backend_instance(op));
    res_two(cpu, m, a, b, N, NULL);
    apr_backend_close(cpu);
    apr_backend_close(op);
    apr_backend_close(ref);
    apr_registry_close(reg);
    apr_llama_model_free(m);
    apr_gguf_close(f);
}

Test(resident, a_plugin_lists_each_device_as_a_backend) {
    apr_registry *reg = res_registry();
    int seen = 0;
    for (int i = 0; i < apr_registry_count(reg); i++) {
        const apr_plugin_record *r = apr_registry_record(reg, i);
        if (strncmp(r->name, "opaque:", 7) != 0) continue;
        cr_expect_eq(r->device, atoi(r->name + 7));
        cr_expect_eq(r->state, APR_PLUGIN_OK, "%s: %s", r->name, r->reason);
        seen++;
    }
    cr_expect_eq(seen, OPAQUE_N_DEVICES);
    for (int d = 0; d < OPAQUE_N_DEVICES; d++) {
        char name[32];
        snprintf(name, sizeof name, "opaque:%d", d);
        apr_backend *be = res_open(reg, name);
        cr_expect_eq(((opaque_counters *)apr_backend_instance(be))->device, d, "%s got another device", name);
        apr_backend_close(be);
    }
    apr_backend *be = res_open(reg, "opaque");
    cr_expect_eq(((opaque_counters *)apr_backend_instance(be))->device, 0, "the plain name opens the first device");
    apr_backend_close(be);
    cr_expect_neq(strncmp(apr_registry_default(reg), "opaque", 6), 0, "a score-1 test plugin became the default");
    apr_registry_close(reg);
}

/* A resident table written in place on the opaque backend and read by a node on the reference
 * backend: the executor copies it across in the same run, after the write. */
Test(resident, set_rows_writes_in_place_and_other_backends_read_the_result) {
    apr_registry *reg = res_registry();
    apr_backend *op = res_open(reg, "opaque"), *ref = res_open(reg, "reference");
    apr_error e;
    apr_mem *mem;
    enum { D = 8, R = 5 };
    cr_assert_eq(apr_mem_new(op, sizeof(float) * D * R, APR_USAGE_STATE, "table", &mem, &e), APR_OK, "%s", e.msg);
    float init[D * R];
    for (int i = 0; i < D * R; i++) init[i] = (float)i;
    cr_assert_eq(apr_mem_write(mem, 0, init, sizeof init, &e), APR_OK, "%s", e.msg);
    apr_graph *g = apr_graph_new();
    apr_tensor *table = apr_resident(g, APR_F32, 2, (int64_t[]){D, R}, mem, 0, "table");
    apr_tensor *rows = apr_input(g, APR_F32, 2, (int64_t[]){D, 2}, "rows");
    apr_tensor *ids = apr_input(g, APR_I32, 1, (int64_t[]){2}, "ids");
    apr_tensor *after = apr_set_rows(g, table, rows, ids);
    apr_tensor *y = apr_scale(g, after, 2.0f); /* on the reference, the first backend listed */
    apr_graph_output(g, y);
    cr_assert_null(apr_graph_error(g), "%s", apr_graph_error(g));
    apr_plan *p;
    cr_assert_eq(apr_plan_new(g, (apr_backend *[]){ref, op}, 2, &p, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_plan_placement(p, after), op, "set_rows runs where its table lives");
    cr_expect_eq(apr_plan_placement(p, y), ref);
    float r[2 * D], out[D * R];
    for (int i = 0; i < 2 * D; i++) r[i] = -1.0f - (float)i;
    cr_assert_eq(apr_plan_set_input(p, rows, r, sizeof r, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_set_input(p, ids, (int32_t[]){3, 1}, 8, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_get_output(p, y, out, sizeof out, &e), APR_OK, "%s", e.msg);
    float now[D * R];
    cr_assert_eq(apr_mem_read(mem, 0, now, sizeof now, &e), APR_OK, "%s", e.msg);
    for (int row = 0; row < R; row++)
        for (int d = 0; d < D; d++) {
            float want = row == 3 ? r[d] : row == 1 ? r[D + d] : init[row * D + d];
            cr_expect_eq(now[row * D + d], want, "table[%d, %d]", d, row);
            cr_expect_eq(out[row * D + d], 2 * want, "y[%d, %d]", d, row);
        }
    /* writing a weight is refused when the graph is built */
    apr_graph *g2 = apr_graph_new();
    float wdata[D * R] = {0};
    apr_tensor *w = apr_weight(g2, APR_F32, 2, (int64_t[]){D, R}, wdata, "w");
    cr_expect_null(apr_set_rows(g2, w, apr_input(g2, APR_F32, 2, (int64_t[]){D, 1}, "r"), apr_input(g2, APR_I32, 1, (int64_t[]){1}, "i")));
    cr_expect(apr_graph_error(g2) && strstr(apr_graph_error(g2), "never written"), "%s", apr_graph_error(g2));
    apr_graph_free(g2);
    apr_plan_free(p);
    apr_graph_free(g);
    apr_mem_free(mem);
    apr_backend_close(ref);
    apr_backend_close(op);
    apr_registry_close(reg);
}

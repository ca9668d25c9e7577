/* test_generate.c — the shared generation loop (llm/llama_gen.h) on stories260K: its ids against eval + argmax by hand, and every way it stops. */
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apr/apr.h"
#include "llama_gen.h"
#include "gguf.h"
#include "llama.h"
#include "sampler.h"
#include "tokenizer.h"
#include "util/tu_paths.h"

#define GEN_MAX 128

/* stories260K loaded on the reference backend, with its vocabulary. */
typedef struct gen_fix {
    gguf_file *f;
    llama_model *m;
    apr_registry *reg;
    apr_backend *be;
    tok_vocab *vocab;
    int n_vocab;
} gen_fix;

static char gen_model_path[PATH_MAX + 64];

/* Skips the test when the fixture is missing; fails it when the fixture does not load. */
static void gen_open(gen_fix *x) {
    snprintf(gen_model_path, sizeof gen_model_path, "%s/stories260K/stories260K.gguf", tu_fixtures_dir());
    if (access(gen_model_path, R_OK) != 0) cr_skip_test("fixture not found at %s", gen_model_path);
    apr_error e;
    cr_assert_eq(apr_gguf_open(gen_model_path, &x->f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_model_load(x->f, &x->m, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_tok_load_gguf(x->f, &x->vocab, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_registry_open(NULL, &x->reg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(x->reg, "reference", 1, &x->be, &e), APR_OK, "%s", e.msg);
    x->n_vocab = x->m->hp.n_vocab;
}

static void gen_close(gen_fix *x) {
    apr_backend_close(x->be);
    apr_registry_close(x->reg);
    apr_tok_free(x->vocab);
    apr_llama_model_free(x->m);
    apr_gguf_close(x->f);
}

/* "Once upon a time" with BOS; returns the count. */
static int gen_prompt(const gen_fix *x, int32_t *ids) {
    const char *text = "Once upon a time";
    int64_t n = apr_tok_encode(x->vocab, text, strlen(text), TOK_ADD_BOS, ids, 16);
    cr_assert(n > 1 && n <= 16, "prompt tokenized to %lld ids", (long long)n);
    cr_assert_eq(ids[0], apr_tok_bos(x->vocab));
    return (int)n;
}

/* One session with the prompt evaluated, a greedy sampler that saw the prompt, the prompt's logits. */
typedef struct gen_run {
    llama_session *s;
    sampler *smp;
    tok_stream *stream;
    float *logits;
    int32_t prompt[16];
    int n_prompt;
} gen_run;

static void gen_start(const gen_fix *x, int n_ctx, gen_run *r) {
    apr_error e;
    r->n_prompt = gen_prompt(x, r->prompt);
    cr_assert_eq(apr_llama_session_new(x->m, n_ctx, &x->be, 1, &r->s, &e), APR_OK, "%s", e.msg);
    sampler_params sp = apr_sampler_defaults();
    sp.temperature = 0;
    r->smp = apr_sampler_new(&sp, x->n_vocab);
    r->stream = apr_tok_stream_new(x->vocab, 0);
    r->logits = malloc(sizeof(float) * (size_t)x->n_vocab);
    cr_assert(r->smp && r->stream && r->logits);
    cr_assert_eq(apr_llama_session_eval(r->s, r->prompt, r->n_prompt, false, r->logits, &e), APR_OK, "%s", e.msg);
    for (int i = 0; i < r->n_prompt; i++) {
        apr_sampler_accept(r->smp, r->prompt[i]);
        apr_tok_stream_push(r->stream, r->prompt[i], NULL);
    }
}

static void gen_end(gen_run *r) {
    free(r->logits);
    apr_tok_stream_free(r->stream);
    apr_sampler_free(r->smp);
    apr_llama_session_free(r->s);
}

/* What the callbacks saw. */
typedef struct gen_seen {
    int32_t ids[GEN_MAX];
    int n_ids;
    char text[4096];
    size_t text_len;
    int n_flush;            /* calls with id -1 */
    bool token_after_flush; /* a kept id came after the flush */
    int stop_after;         /* on_token returns false at this many ids (0: never) */
    int flag_after;         /* sets *flag at this many ids (0: never) */
    volatile sig_atomic_t *flag;
    int n_logits;
    int fail_logits_at;     /* on_logits fails at this call (0: never) */
} gen_seen;

static bool gen_on_token(void *user, int32_t id, const char *piece, size_t len) {
    gen_seen *g = user;
    cr_assert(piece, "a stream was given, so every call has a piece");
    cr_assert_lt(g->text_len + len, sizeof g->text);
    memcpy(g->text + g->text_len, piece, len);
    g->text_len += len;
    if (id < 0) {
        g->n_flush++;
        return true;
    }
    if (g->n_flush) g->token_after_flush = true;
    cr_assert_lt(g->n_ids, GEN_MAX);
    g->ids[g->n_ids++] = id;
    if (g->flag_after && g->n_ids == g->flag_after) *g->flag = 1;
    return !(g->stop_after && g->n_ids == g->stop_after);
}

static apr_status gen_on_logits(void *user, const float *logits, apr_error *err) {
    gen_seen *g = user;
    (void)logits;
    if (++g->n_logits == g->fail_logits_at) return apr_error_set(err, APR_ERR_IO, "logits sink full");
    return APR_OK;
}

static llama_gen_params gen_params(int n_ctx, int n_predict, gen_seen *seen) {
    llama_gen_params p = apr_llama_gen_defaults(n_ctx);
    p.n_predict = n_predict;
    p.on_token = gen_on_token;
    p.on_logits = gen_on_logits;
    p.user = seen;
    return p;
}

/* The greedy continuation computed by hand: eval, then the largest logit (ties to the lowest id). */
static void gen_by_hand(const gen_fix *x, int n, int32_t *out) {
    gen_run r;
    gen_start(x, 64, &r);
    apr_error e;
    for (int i = 0; i < n; i++) {
        int32_t best = 0;
        for (int32_t v = 1; v < x->n_vocab; v++)
            if (r.logits[v] > r.logits[best]) best = v;
        out[i] = best;
        cr_assert_eq(apr_llama_session_eval(r.s, &best, 1, false, r.logits, &e), APR_OK, "%s", e.msg);
    }
    gen_end(&r);
}

/* Runs the loop on a fresh session; returns its status. */
static apr_status gen_loop(const gen_fix *x, int n_ctx, const llama_gen_params *p, gen_run *r, llama_gen_result *res,
                           apr_error *e) {
    gen_start(x, n_ctx, r);
    return apr_llama_gen_run(r->s, r->smp, r->stream, r->logits, r->logits, p, res, e);
}

Test(generate, greedy_ids_equal_eval_and_argmax_by_hand, .timeout = 120) {
    gen_fix x;
    gen_open(&x);
    enum { N = 40 };
    int32_t want[N];
    gen_by_hand(&x, N, want);
    gen_seen seen = {0};
    llama_gen_params p = gen_params(64, N, &seen);
    gen_run r;
    llama_gen_result res;
    apr_error e;
    cr_assert_eq(gen_loop(&x, 64, &p, &r, &res, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(res.stop, LLAMA_GEN_STOP_LENGTH);
    cr_expect_str_eq(apr_llama_gen_stop_name(res.stop), "length");
    cr_assert_eq(res.n_gen, N);
    cr_assert_eq(seen.n_ids, N);
    for (int i = 0; i < N; i++) cr_expect_eq(seen.ids[i], want[i], "generated id %d: %d, by hand %d", i, seen.ids[i], want[i]);
    /* the last kept id is not run without eval_all */
    cr_expect_eq(res.n_decoded, N - 1);
    cr_expect_eq(seen.n_logits, N - 1);
    cr_expect_eq(apr_llama_session_pos(r.s), r.n_prompt + N - 1);
    cr_expect_geq(res.t_decode, 0.0);
    /* the pieces, the flush included, are the decoded text after the prompt's */
    cr_expect_eq(seen.n_flush, 1);
    cr_expect_not(seen.token_after_flush);
    int32_t all[16 + N];
    memcpy(all, r.prompt, sizeof(int32_t) * (size_t)r.n_prompt);
    memcpy(all + r.n_prompt, want, sizeof want);
    char *whole = apr_tok_decode(x.vocab, all, (size_t)(r.n_prompt + N), 0, NULL);
    char *head = apr_tok_decode(x.vocab, r.prompt, (size_t)r.n_prompt, 0, NULL);
    cr_assert(whole && head);
    seen.text[seen.text_len] = 0;
    cr_expect_eq(strncmp(whole, head, strlen(head)), 0, "the prompt's text '%s' does not begin '%s'", head, whole);
    cr_expect_str_eq(seen.text, whole + strlen(head));
    free(whole);
    free(head);
    gen_end(&r);
    gen_close(&x);
}

Test(generate, eval_all_runs_every_kept_token, .timeout = 120) {
    gen_fix x;
    gen_open(&x);
    gen_seen seen = {0};
    llama_gen_params p = gen_params(64, 12, &seen);
    p.eval_all = true;
    gen_run r;
    llama_gen_result res;
    apr_error e;
    cr_assert_eq(gen_loop(&x, 64, &p, &r, &res, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(res.stop, LLAMA_GEN_STOP_LENGTH);
    cr_expect_eq(res.n_gen, 12);
    cr_expect_eq(res.n_decoded, 12);
    cr_expect_eq(seen.n_logits, 12);
    cr_expect_eq(apr_llama_session_pos(r.s), r.n_prompt + 12);
    gen_end(&r);
    gen_close(&x);
}

Test(generate, n_predict_limits_the_tokens, .timeout = 120) {
    gen_fix x;
    gen_open(&x);
    const int limits[] = {0, 1, 5};
    for (size_t k = 0; k < sizeof limits / sizeof *limits; k++) {
        gen_seen seen = {0};
        llama_gen_params p = gen_params(64, limits[k], &seen);
        gen_run r;
        llama_gen_result res;
        apr_error e;
        cr_assert_eq(gen_loop(&x, 64, &p, &r, &res, &e), APR_OK, "%s", e.msg);
        cr_expect_eq(res.stop, LLAMA_GEN_STOP_LENGTH, "n_predict %d", limits[k]);
        cr_expect_eq(res.n_gen, limits[k]);
        cr_expect_eq(seen.n_ids, limits[k]);
        cr_expect_eq(res.n_decoded, limits[k] ? limits[k] - 1 : 0);
        cr_expect_eq(seen.n_flush, 1, "the stream is flushed even when nothing was generated");
        gen_end(&r);
    }
    gen_close(&x);
}

Test(generate, an_end_of_generation_id_ends_it_unkept, .timeout = 120) {
    gen_fix x;
    gen_open(&x);
    int32_t want[20];
    gen_by_hand(&x, 20, want);
    /* the first greedy id from the third on that did not occur before it */
    int k = 2;
    for (bool seen_before = true; seen_before && k < 20; k += seen_before) {
        seen_before = false;
        for (int i = 0; i < k; i++) seen_before |= want[i] == want[k];
    }
    cr_assert_lt(k, 20, "no fresh id among the first 20");
    int32_t eog[2] = {apr_tok_eos(x.vocab), want[k]};
    gen_seen seen = {0};
    llama_gen_params p = gen_params(64, 20, &seen);
    p.eog = eog;
    p.n_eog = 2;
    gen_run r;
    llama_gen_result res;
    apr_error e;
    cr_assert_eq(gen_loop(&x, 64, &p, &r, &res, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(res.stop, LLAMA_GEN_STOP_EOS);
    cr_expect_str_eq(apr_llama_gen_stop_name(res.stop), "eos");
    cr_expect_eq(res.n_gen, k);
    cr_assert_eq(seen.n_ids, k);
    for (int i = 0; i < k; i++) cr_expect_eq(seen.ids[i], want[i]);
    cr_expect_eq(res.n_decoded, k, "every kept id was run before the end id was sampled");
    cr_expect_eq(seen.n_flush, 1);
    gen_end(&r);
    gen_close(&x);
}

Test(generate, a_callback_returning_false_stops_it, .timeout = 120) {
    gen_fix x;
    gen_open(&x);
    for (int eval_all = 0; eval_all < 2; eval_all++) {
        gen_seen seen = {.stop_after = 3};
        llama_gen_params p = gen_params(64, 20, &seen);
        p.eval_all = eval_all;
        gen_run r;
        llama_gen_result res;
        apr_error e;
        cr_assert_eq(gen_loop(&x, 64, &p, &r, &res, &e), APR_OK, "%s", e.msg);
        cr_expect_eq(res.stop, LLAMA_GEN_STOP_CALLBACK, "eval_all %d", eval_all);
        cr_expect_str_eq(apr_llama_gen_stop_name(res.stop), "callback");
        cr_expect_eq(res.n_gen, 3);
        cr_expect_eq(seen.n_ids, 3);
        /* with eval_all the cache still holds every kept id */
        cr_expect_eq(res.n_decoded, eval_all ? 3 : 2, "eval_all %d", eval_all);
        cr_expect_eq(apr_llama_session_pos(r.s), r.n_prompt + res.n_decoded);
        cr_expect_eq(seen.n_flush, 1);
        cr_expect_not(seen.token_after_flush);
        gen_end(&r);
    }
    gen_close(&x);
}

Test(generate, the_stop_flag_interrupts_it, .timeout = 120) {
    gen_fix x;
    gen_open(&x);
    volatile sig_atomic_t flag = 0;
    gen_seen seen = {.flag_after = 4, .flag = &flag};
    llama_gen_params p = gen_params(64, 20, &seen);
    p.stop = &flag;
    gen_run r;
    llama_gen_result res;
    apr_error e;
    cr_assert_eq(gen_loop(&x, 64, &p, &r, &res, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(res.stop, LLAMA_GEN_STOP_INTERRUPTED);
    cr_expect_str_eq(apr_llama_gen_stop_name(res.stop), "interrupted");
    cr_expect_eq(res.n_gen, 4);
    cr_expect_eq(res.n_decoded, 4, "the flag is seen before sampling, after the last kept id ran");
    cr_expect_eq(seen.n_flush, 1);
    gen_end(&r);
    gen_close(&x);
}

Test(generate, reaching_the_context_ends_it, .timeout = 120) {
    gen_fix x;
    gen_open(&x);
    int32_t want[20];
    gen_by_hand(&x, 20, want);
    for (int eval_all = 0; eval_all < 2; eval_all++) {
        gen_seen seen = {0};
        int32_t prompt[16];
        int n_ctx = gen_prompt(&x, prompt) + 6;
        llama_gen_params p = gen_params(n_ctx, 100, &seen);
        p.eval_all = eval_all;
        gen_run r;
        llama_gen_result res;
        apr_error e;
        cr_assert_eq(gen_loop(&x, n_ctx, &p, &r, &res, &e), APR_OK, "%s", e.msg);
        cr_expect_eq(res.stop, LLAMA_GEN_STOP_CONTEXT, "eval_all %d", eval_all);
        cr_expect_str_eq(apr_llama_gen_stop_name(res.stop), "context");
        /* 6 ids fill the cache; a 7th comes from the last position's logits and cannot be run */
        cr_expect_eq(res.n_decoded, 6);
        cr_expect_eq(res.n_gen, 7);
        cr_expect_eq(apr_llama_session_pos(r.s), n_ctx);
        cr_assert_eq(seen.n_ids, 7);
        for (int i = 0; i < 7; i++) cr_expect_eq(seen.ids[i], want[i]);
        gen_end(&r);
    }
    gen_close(&x);
}

Test(generate, a_logits_callback_error_ends_it_with_that_status, .timeout = 120) {
    gen_fix x;
    gen_open(&x);
    gen_seen seen = {.fail_logits_at = 3};
    llama_gen_params p = gen_params(64, 20, &seen);
    gen_run r;
    llama_gen_result res;
    apr_error e;
    cr_assert_eq(gen_loop(&x, 64, &p, &r, &res, &e), APR_ERR_IO);
    cr_expect_str_eq(e.msg, "logits sink full");
    cr_expect_eq(res.n_decoded, 3);
    cr_expect_eq(res.n_gen, 3);
    cr_expect_eq(seen.n_flush, 0, "no flush after an error");
    gen_end(&r);
    gen_close(&x);
}

Test(generate, bad_parameters_are_refused, .timeout = 120) {
    gen_fix x;
    gen_open(&x);
    gen_run r;
    gen_start(&x, 64, &r);
    llama_gen_result res;
    apr_error e;
    llama_gen_params bad[3] = {apr_llama_gen_defaults(0), apr_llama_gen_defaults(64), apr_llama_gen_defaults(64)};
    bad[1].n_predict = -1;
    bad[2].n_eog = 1; /* and no ids */
    for (int i = 0; i < 3; i++)
        cr_expect_eq(apr_llama_gen_run(r.s, r.smp, r.stream, r.logits, r.logits, &bad[i], &res, &e), APR_ERR_INVALID, "case %d", i);
    cr_expect_eq(apr_llama_session_pos(r.s), r.n_prompt, "nothing ran");
    gen_end(&r);
    gen_close(&x);
}

Test(generate, collect_eog_gives_the_eos_of_stories260K) {
    gen_fix x;
    gen_open(&x);
    int32_t eog[LLAMA_GEN_MAX_EOG];
    int n = apr_llama_gen_collect_eog(x.f, x.vocab, x.n_vocab, eog, LLAMA_GEN_MAX_EOG);
    uint32_t eos;
    cr_assert(apr_gguf_get_u32(x.f, "tokenizer.ggml.eos_token_id", &eos));
    cr_expect_eq(n, 1);
    cr_expect_eq(eog[0], (int32_t)eos);
    cr_expect_eq(apr_llama_gen_collect_eog(x.f, NULL, x.n_vocab, eog, LLAMA_GEN_MAX_EOG), 1, "the file alone names EOS");
    cr_expect_eq(apr_llama_gen_collect_eog(x.f, x.vocab, x.n_vocab, eog, 0), 0);
    cr_expect_eq(apr_llama_gen_collect_eog(x.f, x.vocab, (int)eos, eog, LLAMA_GEN_MAX_EOG), 0, "ids past n_vocab are left out");
    gen_close(&x);
}

/* Phi-3 ends a turn with <|end|> besides <|endoftext|>; ordinary tokens are not listed. */
Test(generate, collect_eog_finds_the_chat_end_markers) {
    int32_t eog[LLAMA_GEN_MAX_EOG];
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-phi-3.gguf", tu_fixtures_dir());
    if (access(path, R_OK) != 0) cr_skip_test("fixture not found at %s", path);
    apr_error e;
    gguf_file *f;
    tok_vocab *v;
    cr_assert_eq(apr_gguf_open(path, &f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_tok_load_gguf(f, &v, &e), APR_OK, "%s", e.msg);
    int n = apr_llama_gen_collect_eog(f, v, apr_tok_n_vocab(v), eog, LLAMA_GEN_MAX_EOG);
    const char *marks[] = {"<|end|>", "<|endoftext|>"};
    for (size_t k = 0; k < 2; k++) {
        int32_t id = apr_tok_find(v, marks[k], strlen(marks[k]));
        cr_assert_geq(id, 0, "%s is in the Phi-3 vocabulary", marks[k]);
        bool found = false;
        for (int i = 0; i < n; i++) found |= eog[i] == id;
        cr_expect(found, "%s (%d) is an end-of-generation id", marks[k], id);
    }
    for (int i = 0; i < n; i++) {
        cr_expect_eq(apr_tok_token_type(v, eog[i]), TOK_TYPE_CONTROL, "id %d", eog[i]);
        for (int j = 0; j < i; j++) cr_expect_neq(eog[i], eog[j], "listed twice");
    }
    cr_expect_eq(apr_llama_gen_collect_eog(f, v, apr_tok_n_vocab(v), eog, 1), 1, "cap bounds the count");
    apr_tok_free(v);
    apr_gguf_close(f);
}

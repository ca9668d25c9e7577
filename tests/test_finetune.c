/* test_finetune.c — apr-finetune as a user runs it on stories260K: LoRA learns, full training overfits, a killed
 * run resumes bit for bit, an adapter steers apr-run, and a merged model equals base + adapter. */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/tu_paths.h"
#include "util/tu_run.h"
#include "util/tu_spawn.h"

static char ft_model[PATH_MAX];
static char ft_dir[64];

static void ft_setup(void) {
    snprintf(ft_model, sizeof ft_model, "%s/stories260K/stories260K.gguf", tu_fixtures_dir());
    if (access(ft_model, R_OK) != 0) cr_skip_test("fixtures not found at %s", ft_model);
    snprintf(ft_dir, sizeof ft_dir, "/tmp/apr-ft-XXXXXX");
    cr_assert(mkdtemp(ft_dir), "mkdtemp");
}

static void ft_teardown(void) {
    if (!ft_dir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", ft_dir);
    cr_expect_eq(system(cmd), 0);
}

/* A path in the test's folder; each call gets its own buffer (a test makes fewer than 32). */
static char *ft_path(const char *name) {
    static char buf[32][PATH_MAX];
    static int k;
    char *p = buf[k++ & 31];
    snprintf(p, PATH_MAX, "%s/%s", ft_dir, name);
    return p;
}

/* Lines of a small made-up world, a different one per index: enough regularity for a model to learn. */
static void ft_line(int i, char *buf, size_t size) {
    static const char *const who[] = {"Tim", "Lily", "the cat", "a little bird", "Ben", "the old dog"};
    static const char *const what[] = {"a red ball", "a big box", "a shiny stone", "a blue hat", "a warm cake"};
    static const char *const where[] = {"in the park", "under the tree", "near the river", "at home"};
    snprintf(buf, size, "One day %s found %s %s. %s was very happy and smiled.", who[i % 6], what[(i / 6) % 5],
             where[(i / 30) % 4], who[i % 6]);
}

/* Writes n JSON lines {"text": line i} for i in [first, first + n). */
static void ft_write_jsonl(const char *path, int first, int n) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    for (int i = first; i < first + n; i++) {
        char line[256];
        ft_line(i, line, sizeof line);
        fprintf(f, "{\"text\": \"%s\"}\n", line);
    }
    cr_assert_eq(fclose(f), 0);
}

/* Runs apr-finetune (NULL-terminated args) and fails the test on a non-zero exit. */
static void ft_run_ok(const char *const *args) {
    tu_run_result r = tu_run(tu_tool("apr-finetune"), NULL, args, 0);
    cr_assert_eq(r.status, 0, "apr-finetune exited %d:\n%s", r.status, r.err);
    tu_run_free(&r);
}

/* The values of key in the log's lines that have it, in order. */
static int ft_log_values(const char *log, const char *key, double *vals, int cap) {
    char *text = tu_read_file(log, NULL);
    int n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        cr_assert(o, "%s: not JSON: %s", log, line);
        cJSON *v = cJSON_GetObjectItem(o, key);
        if (cJSON_IsNumber(v) && n < cap) vals[n++] = v->valuedouble;
        cJSON_Delete(o);
    }
    free(text);
    return n;
}

TestSuite(finetune, .init = ft_setup, .fini = ft_teardown, .timeout = 600);

/* LoRA on every projection over ~300 lines of a small world: the validation loss on held-out lines
 * must drop by at least 0.5 nats per token (measured: from ~5.2 to ~2). */
Test(finetune, lora_lowers_the_validation_loss_of_stories260K) {
    ft_write_jsonl(ft_path("train.jsonl"), 0, 300);
    ft_write_jsonl(ft_path("val.jsonl"), 300, 40);
    ft_run_ok((const char *const[]){"--model", ft_model, "--data", ft_path("train.jsonl"), "--val-file", ft_path("val.jsonl"),
                                    "--lora-targets", "all", "--lora-rank", "8", "--lr", "5e-3", "--seq-len", "64",
                                    "--steps", "120", "--eval-every", "40", "--threads", "1", "--log", ft_path("log.jsonl"),
                                    "--out", ft_path("a.gguf"), NULL});
    double val[16];
    const int n = ft_log_values(ft_path("log.jsonl"), "val_loss", val, 16);
    cr_assert_geq(n, 2, "the log has %d validation losses", n);
    cr_expect_lt(val[n - 1], val[0] - 0.5, "validation loss %.4f -> %.4f: want a drop of at least 0.5", val[0], val[n - 1]);
    double loss[200];
    cr_expect_eq(ft_log_values(ft_path("log.jsonl"), "loss", loss, 200), 120);
    struct stat sb;
    cr_expect_eq(stat(ft_path("a.gguf"), &sb), 0, "no adapter written");
}

/* Every weight trained on 10 lines until the training loss is under 0.05: the model memorises them. */
Test(finetune, full_training_overfits_ten_lines) {
    ft_write_jsonl(ft_path("ten.jsonl"), 0, 10);
    ft_run_ok((const char *const[]){"--model", ft_model, "--data", ft_path("ten.jsonl"), "--method", "full", "--lr", "3e-3",
                                    "--seq-len", "64", "--steps", "300", "--clip", "0", "--schedule", "constant", "--threads", "1",
                                    "--log", ft_path("log.jsonl"), "--out", ft_path("full.gguf"), NULL});
    double loss[400];
    const int n = ft_log_values(ft_path("log.jsonl"), "loss", loss, 400);
    cr_assert_eq(n, 300);
    cr_expect_lt(loss[n - 1], 0.05, "training loss after %d steps: %.4f (first %.4f)", n, loss[n - 1], loss[0]);
}

/* 20 steps in one go, and 10 steps + SIGKILL + --resume + 10 more, give the same adapter bit for bit. */
Test(finetune, a_killed_run_resumes_to_the_same_weights) {
    ft_write_jsonl(ft_path("train.jsonl"), 0, 120);
    const char *common[] = {"--model", ft_model, "--data", ft_path("train.jsonl"), "--lora-targets", "q,k,v,o", "--lora-dropout", "0.1",
                            "--lr", "3e-3", "--seq-len", "32", "--batch", "2", "--grad-accum", "2", "--steps", "20",
                            "--save-every", "5", "--warmup", "3", "--threads", "1"};
    const int nc = (int)(sizeof common / sizeof *common);
    const char *a[40], *b[40];
    for (int i = 0; i < nc; i++) a[i] = b[i] = common[i];
    int na = nc, nb = nc;
    a[na++] = "--out", a[na++] = ft_path("straight.gguf"), a[na++] = "--checkpoint-dir", a[na++] = ft_path("ck1"), a[na] = NULL;
    ft_run_ok(a);
    b[nb++] = "--out", b[nb++] = ft_path("resumed.gguf"), b[nb++] = "--checkpoint-dir", b[nb++] = ft_path("ck2"), b[nb] = NULL;
    tu_proc p = tu_spawn(tu_tool("apr-finetune"), b, (const char *const[]){"APR_FINETUNE_KILL_AFTER=10", NULL}, 300);
    cr_assert(!tu_proc_wait(&p));
    char *out = tu_proc_output(&p);
    cr_assert(WIFSIGNALED(p.status) && WTERMSIG(p.status) == SIGKILL, "the run was not killed:\n%s", out);
    free(out);
    struct stat sb;
    cr_assert_neq(stat(ft_path("resumed.gguf"), &sb), 0, "a killed run wrote its output");
    b[nb++] = "--resume", b[nb++] = ft_path("ck2"), b[nb] = NULL;
    ft_run_ok(b);
    size_t la, lb;
    char *fa = tu_read_file(ft_path("straight.gguf"), &la), *fb = tu_read_file(ft_path("resumed.gguf"), &lb);
    cr_expect_eq(la, lb);
    cr_expect(la == lb && memcmp(fa, fb, la) == 0, "the resumed adapter differs from the straight run's");
    free(fa);
    free(fb);
}

/* A run resumed with other options is refused, naming both. */
Test(finetune, resuming_with_other_options_is_refused) {
    ft_write_jsonl(ft_path("train.jsonl"), 0, 40);
    ft_run_ok((const char *const[]){"--model", ft_model, "--data", ft_path("train.jsonl"), "--seq-len", "32", "--steps", "2",
                                    "--save-every", "1", "--threads", "1", "--checkpoint-dir", ft_path("ck"), "--out",
                                    ft_path("a.gguf"), NULL});
    tu_run_result r = tu_run(tu_tool("apr-finetune"), NULL,
                             (const char *const[]){"--model", ft_model, "--data", ft_path("train.jsonl"), "--seq-len", "32",
                                                   "--steps", "4", "--lr", "1e-2", "--threads", "1", "--resume", ft_path("ck"),
                                                   "--out", ft_path("b.gguf"), NULL}, 0);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "other options"), "%s", r.err);
    tu_run_free(&r);
}

/* Greedy text of apr-run with the given extra arguments (NULL-terminated, at most 8). */
static char *ft_greedy(const char *model, const char *const *extra) {
    const char *args[24] = {"--model", model, "--prompt", "One day", "-n", "24", "--temp", "0", "--threads", "1"};
    int n = 10;
    for (int i = 0; extra && extra[i]; i++) args[n++] = extra[i];
    args[n] = NULL;
    tu_run_result r = tu_run(tu_tool("apr-run"), NULL, args, 0);
    cr_assert_eq(r.status, 0, "apr-run exited %d: %s", r.status, r.err);
    char *out = strdup(r.out);
    tu_run_free(&r);
    return out;
}

/* An adapter trained on one sentence makes apr-run continue the prompt with it; a merged model gives
 * the logits of base + adapter. */
Test(finetune, an_adapter_steers_apr_run_and_merges_into_the_same_logits) {
    FILE *f = fopen(ft_path("one.jsonl"), "w");
    cr_assert(f);
    for (int i = 0; i < 20; i++) fprintf(f, "{\"text\": \"One day a purple fox sang to the moon.\"}\n");
    fclose(f);
    ft_run_ok((const char *const[]){"--model", ft_model, "--data", ft_path("one.jsonl"), "--lora-targets", "all", "--lr", "1e-2",
                                    "--seq-len", "32", "--steps", "80", "--threads", "1", "--out", ft_path("fox.gguf"), NULL});
    char *base = ft_greedy(ft_model, NULL);
    char *tuned = ft_greedy(ft_model, (const char *const[]){"--lora", ft_path("fox.gguf"), NULL});
    cr_expect(!strstr(base, "purple fox"), "the base model already says it: %s", base);
    cr_expect(strstr(tuned, "a purple fox sang to the moon"), "the adapter did not take: %s", tuned);
    free(base);
    free(tuned);
    /* merged: W + alpha/r B A written as the base's f32; its logits against base + --lora */
    ft_run_ok((const char *const[]){"merge", ft_model, ft_path("fox.gguf"), ft_path("merged.gguf"), NULL});
    char *m1 = ft_greedy(ft_path("merged.gguf"), (const char *const[]){"--dump-logits", ft_path("l1.bin"), NULL});
    char *m2 = ft_greedy(ft_model, (const char *const[]){"--lora", ft_path("fox.gguf"), "--dump-logits", ft_path("l2.bin"), NULL});
    cr_expect_str_eq(m1, m2);
    size_t n1, n2;
    float *l1 = (float *)tu_read_file(ft_path("l1.bin"), &n1), *l2 = (float *)tu_read_file(ft_path("l2.bin"), &n2);
    cr_assert_eq(n1, n2);
    double worst = 0;
    for (size_t i = 0; i < n1 / 4; i++) worst = fmax(worst, fabs((double)l1[i] - l2[i]));
    /* both compute W + s B A in f32 from the same values: equal up to the order of the f32 sums (bound 1e-4) */
    cr_expect_leq(worst, 1e-4, "merged and applied logits differ by %g", worst);
    free(l1);
    free(l2);
    free(m1);
    free(m2);
}

/* A quantized base is QLoRA's, a float base LoRA's: each refusal says which method fits. */
Test(finetune, the_method_must_fit_the_base) {
    char q4[PATH_MAX];
    snprintf(q4, sizeof q4, "%s/stories260K/stories260K-q4_0.gguf", tu_fixtures_dir());
    ft_write_jsonl(ft_path("t.jsonl"), 0, 20);
    tu_run_result r = tu_run(tu_tool("apr-finetune"), NULL,
                             (const char *const[]){"--model", q4, "--data", ft_path("t.jsonl"), "--steps", "1", "--seq-len", "32",
                                                   "--out", ft_path("x.gguf"), NULL}, 0);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "--method qlora"), "%s", r.err);
    tu_run_free(&r);
    ft_run_ok((const char *const[]){"--model", q4, "--data", ft_path("t.jsonl"), "--method", "qlora", "--steps", "3",
                                    "--seq-len", "32", "--threads", "1", "--out", ft_path("q.gguf"), NULL});
}

/* A vocabulary apr learns from a text, and a new model trained on it from scratch: the loss falls from
 * about ln(vocabulary) and apr-run writes text with the result. */
Test(finetune, a_model_from_scratch_on_a_vocabulary_apr_builds) {
    FILE *f = fopen(ft_path("corpus.txt"), "w");
    cr_assert(f);
    for (int i = 0; i < 240; i++) {
        char line[256];
        ft_line(i, line, sizeof line);
        fprintf(f, "%s\n", line);
    }
    fclose(f);
    ft_run_ok((const char *const[]){"vocab", ft_path("corpus.txt"), ft_path("v.gguf"), "--size", "320", NULL});
    ft_run_ok((const char *const[]){"--from-scratch", "layers=2,embd=64,heads=4,kv_heads=4,ff=128,ctx=64", "--tokenizer",
                                    ft_path("v.gguf"), "--data", ft_path("corpus.txt"), "--seq-len", "32", "--steps", "60",
                                    "--lr", "3e-3", "--threads", "1", "--log", ft_path("log.jsonl"), "--out", ft_path("m.gguf"),
                                    NULL});
    double loss[100];
    const int n = ft_log_values(ft_path("log.jsonl"), "loss", loss, 100);
    cr_assert_eq(n, 60);
    /* from ~ln(320) = 5.8 at random weights; a corpus this regular falls well below 3 in 60 steps */
    cr_expect_gt(loss[0], 5.0, "first loss %.3f", loss[0]);
    cr_expect_lt(loss[n - 1], 3.0, "last loss %.3f", loss[n - 1]);
    tu_run_result r = tu_run(tu_tool("apr-run"), NULL,
                             (const char *const[]){"--model", ft_path("m.gguf"), "--prompt", "One day", "-n", "12", "--temp", "0",
                                                   "--threads", "1", "--json", NULL}, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"text\""), "%s", r.out);
    tu_run_free(&r);
    char *bytes = tu_read_file(ft_path("m.gguf"), NULL);
    cr_expect(memmem(bytes, 4096, "trained from scratch by apr-finetune", 36), "general.name does not say how it was made");
    free(bytes);
}

/* Gradient checkpointing recomputes each layer but runs the same ops on the same values: the same
 * adapter bit for bit. */
Test(finetune, checkpointing_gives_the_same_adapter) {
    ft_write_jsonl(ft_path("train.jsonl"), 0, 60);
    const char *a[] = {"--model", ft_model, "--data", ft_path("train.jsonl"), "--lora-targets", "all", "--seq-len", "64",
                       "--steps", "5", "--threads", "1", "--out", ft_path("plain.gguf"), NULL, NULL};
    ft_run_ok(a);
    a[13] = ft_path("recomputed.gguf");
    a[14] = "--checkpointing";
    ft_run_ok(a);
    size_t la, lb;
    char *fa = tu_read_file(ft_path("plain.gguf"), &la), *fb = tu_read_file(ft_path("recomputed.gguf"), &lb);
    cr_expect(la == lb && memcmp(fa, fb, la) == 0, "--checkpointing changed the adapter");
    free(fa);
    free(fb);
}

/* A run that diverges stops at the first step whose gradient is not finite, naming the step and the
 * tensor, and its last checkpoint still resumes. */
Test(finetune, a_diverging_run_stops_naming_the_step_and_tensor) {
    ft_write_jsonl(ft_path("train.jsonl"), 0, 300); /* SGD at lr 10 overflows at step 9 on these lines */
    tu_run_result r = tu_run(tu_tool("apr-finetune"), NULL,
                             (const char *const[]){"--model", ft_model, "--data", ft_path("train.jsonl"), "--method", "full",
                                                   "--optimizer", "sgd", "--lr", "10", "--momentum", "0.99", "--clip", "0",
                                                   "--seq-len", "32", "--steps", "60", "--save-every", "2", "--threads", "1",
                                                   "--checkpoint-dir", ft_path("ck"), "--out", ft_path("x.gguf"), NULL}, 0);
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect(strstr(r.err, "is not finite") && strstr(r.err, "step "), "%s", r.err);
    cr_expect(strstr(r.err, "the last good checkpoint stays in"), "%s", r.err);
    tu_run_free(&r);
    struct stat sb;
    cr_expect_neq(stat(ft_path("x.gguf"), &sb), 0, "a diverged run wrote its output");
    cr_expect_eq(stat(ft_path("ck/checkpoint.gguf"), &sb), 0, "no checkpoint left");
}

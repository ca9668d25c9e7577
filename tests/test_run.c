/* test_run.c — apr-run as a user runs it: a subprocess on stories260K, checked by its output and exit status. */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/tu_paths.h"
#include "util/tu_run.h"

static char run_repo[PATH_MAX];      /* <repo> */
static char run_bin[PATH_MAX + 32];  /* <repo>/<build>/bin/apr-run, beside this test's build tree */
static char run_model[PATH_MAX + 64];

/* <repo>/<build>/tests/X -> <repo>/<build>/bin/apr-run and <repo>/../shared/fixtures/...; false when
 * the fixtures are missing. */
static bool run_locate(void) {
    char exe[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0, "cannot read /proc/self/exe");
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* <repo>/<build>/tests */
    *strrchr(exe, '/') = 0; /* <repo>/<build> */
    snprintf(run_bin, sizeof run_bin, "%s/bin/apr-run", exe);
    *strrchr(exe, '/') = 0;
    snprintf(run_repo, sizeof run_repo, "%s", exe);
    snprintf(run_model, sizeof run_model, "%s/../shared/fixtures/stories260K/stories260K.gguf", run_repo);
    cr_assert(access(run_bin, X_OK) == 0, "%s is missing (make builds it)", run_bin);
    return access(run_model, R_OK) == 0;
}

#define RUN_NEED_MODEL() \
    do { if (!run_locate()) cr_skip_test("fixtures not found at %s", run_model); } while (0)

typedef tu_run_result run_result;

/* Runs apr-run with args (NULL-terminated) and input on stdin. */
static run_result run_tool(const char *input, const char *const *args) { return tu_run(run_bin, input, args, 0); }

static void run_free(run_result *r) { tu_run_free(r); }

/* cases[0].text of expected_generation.json: the published greedy generation from BOS. */
static char *run_expected_text(void) {
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/../shared/fixtures/stories260K/expected_generation.json", run_repo);
    char *buf = tu_read_file(path, NULL);
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    cr_assert(root, "%s is not JSON", path);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), 0);
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(c0, "text"));
    cr_assert(text, "cases[0].text missing");
    char *dup = strdup(text);
    cJSON_Delete(root);
    return dup;
}

static int run_count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* The published run takes 256 positions from BOS and keeps all 256 sampled tokens, so -n 256. */
Test(run, greedy_text_equals_the_published_generation, .timeout = 120) {
    RUN_NEED_MODEL();
    char *want = run_expected_text();
    run_result r = run_tool(NULL, (const char *[]){"--model", run_model, "-n", "256", "--temp", "0", NULL});
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    size_t n = strlen(r.out);
    cr_assert(n > 0 && r.out[n - 1] == '\n', "output does not end in a newline");
    r.out[n - 1] = 0;
    cr_expect_str_eq(r.out, want);
    run_result j = run_tool(NULL, (const char *[]){"--model", run_model, "-n", "256", "--temp", "0", "--json", NULL});
    cr_assert_eq(j.status, 0, "exit %d: %s", j.status, j.err);
    cJSON *root = cJSON_Parse(j.out);
    cr_assert(root, "--json printed no JSON: %s", j.out);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(root, "text")), want);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "generated_ids")), 256);
    cJSON_Delete(root);
    run_free(&j);
    run_free(&r);
    free(want);
}

/* --no-pack: every matmul reads the weights in the file's layout, with the same greedy text. */
Test(run, no_pack_reads_the_file_layout_and_keeps_the_published_text, .timeout = 120) {
    RUN_NEED_MODEL();
    char *want = run_expected_text();
    run_result r = run_tool(NULL, (const char *[]){"--model", run_model, "-n", "256", "--temp", "0", "--no-pack", NULL});
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    size_t n = strlen(r.out);
    cr_assert(n > 0 && r.out[n - 1] == '\n', "output does not end in a newline");
    r.out[n - 1] = 0;
    cr_expect_str_eq(r.out, want);
    cr_expect(!strstr(r.err, "packed"), "--no-pack still packed: %s", r.err);
    run_result h = run_tool(NULL, (const char *[]){"--help", NULL});
    cr_expect(strstr(h.out, "--no-pack") && strstr(h.out, "no repacking for faster kernels"), "%s", h.out);
    run_free(&h);
    run_free(&r);
    free(want);
}

Test(run, batch_jsonl_answers_every_line_and_reports_a_bad_one, .timeout = 120) {
    RUN_NEED_MODEL();
    const char *in = "{\"prompt\": \"Once upon a time\", \"n_predict\": 12, \"temperature\": 0}\n"
                     "{\"prompt\": 42}\n"
                     "{\"prompt\": \"Lily\", \"n_predict\": 8, \"seed\": 5, \"top_k\": 10, \"top_p\": 0.9, \"min_p\": 0.01, "
                     "\"repeat_penalty\": 1.1, \"id\": \"c\"}\n";
    run_result r = run_tool(in, (const char *[]){"--model", run_model, "--batch-jsonl", "-", NULL});
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_assert_eq(run_count_lines(r.out), 3, "want 3 lines, got:\n%s", r.out);
    char *save, *line = strtok_r(r.out, "\n", &save);
    for (int i = 0; i < 3; i++, line = strtok_r(NULL, "\n", &save)) {
        cr_assert(line);
        cJSON *o = cJSON_Parse(line);
        cr_assert(o, "line %d is not JSON: %s", i + 1, line);
        if (i == 1) {
            cr_expect(cJSON_IsString(cJSON_GetObjectItem(o, "error")), "line 2 should be an error: %s", line);
        } else {
            cr_expect_null(cJSON_GetObjectItem(o, "error"), "line %d: %s", i + 1, line);
            cr_expect(cJSON_IsString(cJSON_GetObjectItem(o, "text")), "line %d: %s", i + 1, line);
            cr_expect(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "prompt_tokens")) >= 2, "line %d: %s", i + 1, line);
            cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(o, "decode_tok_s")), "line %d: %s", i + 1, line);
            int n = cJSON_GetArraySize(cJSON_GetObjectItem(o, "generated_ids"));
            cr_expect(n >= 1 && n <= (i == 0 ? 12 : 8), "line %d: %d ids", i + 1, n);
        }
        if (i == 0) /* greedy from the same words as the published story */
            cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "text")), ", there was a little girl named Lily. She");
        if (i == 2) cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "id")), "c");
        cJSON_Delete(o);
    }
    run_free(&r);
}

Test(run, the_same_seed_gives_the_same_text, .timeout = 120) {
    RUN_NEED_MODEL();
    const char *args[] = {"--model", run_model, "-n", "60", "--temp", "0.8", "--seed", "1234", NULL};
    run_result a = run_tool(NULL, args), b = run_tool(NULL, args);
    cr_assert_eq(a.status, 0, "exit %d: %s", a.status, a.err);
    cr_assert_eq(b.status, 0, "exit %d: %s", b.status, b.err);
    cr_expect_gt(strlen(a.out), 20);
    cr_expect_str_eq(a.out, b.out);
    run_free(&a);
    run_free(&b);
}

Test(run, a_missing_model_is_one_line_naming_the_file_and_exit_1) {
    run_locate();
    const char *path = "/nonexistent/apr-test-model.gguf";
    run_result r = run_tool(NULL, (const char *[]){"--model", path, NULL});
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, path), "stderr does not name the file: %s", r.err);
    cr_expect_eq(run_count_lines(r.err), 1, "want one line: %s", r.err);
    run_free(&r);
}

Test(run, an_unknown_option_is_a_usage_error) {
    run_locate();
    run_result r = run_tool(NULL, (const char *[]){"--model", "x.gguf", "--no-such-option", NULL});
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "--no-such-option"), "%s", r.err);
    run_free(&r);
    r = run_tool(NULL, (const char *[]){"--model", "x.gguf", "--chat", "--prompt", "hi", NULL});
    cr_expect_eq(r.status, 2, "--chat with --prompt: %s", r.err);
    run_free(&r);
}

/* stories260K has no chat template: a warning, then plain-text turns; EOF ends the chat. */
Test(run, chat_from_a_pipe_answers_and_ends_at_eof, .timeout = 120) {
    RUN_NEED_MODEL();
    run_result r = run_tool("Once upon a time\n", (const char *[]){"--model", run_model, "--chat", "-n", "12", "--temp", "0", NULL});
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "warning") && strstr(r.err, "plain text"), "no fallback warning: %s", r.err);
    cr_expect(strstr(r.out, ", there was a little girl"), "answer: %s", r.out);
    cr_expect(!strstr(r.err, "> "), "no prompt when stdin is not a terminal: %s", r.err);
    run_free(&r);
    /* a second turn continues the cached conversation; /exit ends before the third */
    r = run_tool("Once upon a time\nThe dog\n/exit\nignored\n",
                 (const char *[]){"--model", run_model, "--chat", "-n", "8", "--temp", "0", NULL});
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    cr_expect_eq(run_count_lines(r.out), 2, "want 2 answers: %s", r.out);
    cr_expect(strstr(r.err, "2 turns"), "%s", r.err);
    run_free(&r);
}

/* A prompt file is read only as far as a context of --ctx tokens could hold: more is refused with
 * the bound, and /dev/zero ends there instead of filling memory. */
Test(run, a_prompt_file_is_bounded_by_the_context, .timeout = 60) {
    RUN_NEED_MODEL();
    char path[] = "/tmp/apr-test-run-prompt-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    static char words[1 << 20];
    for (size_t i = 0; i + 1 < sizeof words; i++) words[i] = "Once upon a time "[i % 17];
    cr_assert_eq(write(fd, words, sizeof words - 1), (ssize_t)(sizeof words - 1));
    close(fd);
    run_result r = run_tool(NULL, (const char *[]){"--model", run_model, "--file", path, "--ctx", "64", "-n", "1", NULL});
    unlink(path);
    cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_assert(strstr(r.err, path) && strstr(r.err, "bytes") && strstr(r.err, "context of 64 tokens"), "%s", r.err);
    cr_expect_eq(run_count_lines(r.err), 1, "want one line: %s", r.err);
    run_free(&r);
    r = run_tool(NULL, (const char *[]){"--model", run_model, "--file", "/dev/zero", "--ctx", "64", "-n", "1", NULL});
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "/dev/zero") && strstr(r.err, "context of 64 tokens"), "%s", r.err);
    run_free(&r);
    /* a prompt that fits is still read whole */
    r = run_tool(NULL, (const char *[]){"--model", run_model, "--file", "/dev/null", "-n", "1", NULL});
    cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    run_free(&r);
}

Test(run, a_directory_as_prompt_file_says_it_is_a_directory) {
    RUN_NEED_MODEL();
    run_result r = run_tool(NULL, (const char *[]){"--model", run_model, "--file", "/tmp", "-n", "1", NULL});
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "/tmp") && strstr(r.err, "directory"), "%s", r.err);
    cr_expect(!strstr(r.err, "Input/output error"), "%s", r.err);
    cr_expect_eq(run_count_lines(r.err), 1, "want one line: %s", r.err);
    run_free(&r);
}

/* stdout and stderr into one file, as `apr-run ... > log 2>&1` does: the statistics line must not
 * run on from the generated text, which stays in stdout's buffer unless flushed. */
Test(run, the_statistics_line_starts_on_its_own_line, .timeout = 60) {
    RUN_NEED_MODEL();
    FILE *out = tmpfile();
    cr_assert(out);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(fileno(out), 1);
        dup2(fileno(out), 2);
        execl(run_bin, run_bin, "--model", run_model, "--prompt", "Once upon a time", "-n", "8", "--temp", "0", (char *)NULL);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "apr-run failed (status %d)", st);
    fseek(out, 0, SEEK_END);
    long n = ftell(out);
    rewind(out);
    char *buf = calloc((size_t)n + 1, 1);
    cr_assert(buf && fread(buf, 1, (size_t)n, out) == (size_t)n);
    fclose(out);
    char want[PATH_MAX + 80];
    snprintf(want, sizeof want, "%s: load ", run_model);
    const char *stats = strstr(buf, want);
    cr_assert(stats, "no statistics line in: %s", buf);
    cr_expect(stats > buf && stats[-1] == '\n', "the statistics follow the text on its line: %s", buf);
    cr_expect(strstr(buf, "Once upon a time"), "%s", buf);
    free(buf);
}

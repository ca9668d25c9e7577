/* test_ftdata.c — the fine-tuning data layer: every input format, the exact window / target layout, loss masks, shuffling, the validation split and every error path. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft_data.h"
#include "tokenizer.h"
#include "util/tu_paths.h"

static char fd_tmp[PATH_MAX];    /* a fresh folder per test */
static tok_vocab *fd_v;          /* the llama SPM vocabulary: BOS 1, EOS 2, no pad */

static void fd_setup(void) {
    snprintf(fd_tmp, sizeof fd_tmp, "/tmp/apr-ftdata-XXXXXX");
    cr_assert(mkdtemp(fd_tmp), "mkdtemp: %s", strerror(errno));
    fd_v = NULL;
}

static void fd_teardown(void) {
    if (fd_v) apr_tok_free(fd_v);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fd_tmp);
    cr_assert(system(cmd) == 0);
}

TestSuite(ftdata, .init = fd_setup, .fini = fd_teardown, .timeout = 120);

/* ---------------------------------------------------------------- helpers */

static tok_vocab *fd_vocab(void) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", tu_fixtures_dir());
    if (access(path, R_OK)) cr_skip_test("fixture %s is missing (shared/ must sit beside the checkout)", path);
    apr_error e;
    cr_assert_eq(apr_tok_load_file(path, &fd_v, &e), APR_OK, "%s", e.msg);
    return fd_v;
}

/* Writes n bytes of text to <tmp>/name; returns the path (static, one of 16). */
static const char *fd_write_n(const char *name, const char *text, size_t n) {
    static char paths[16][PATH_MAX + 64];
    static int which;
    char *p = paths[which++ % 16];
    snprintf(p, PATH_MAX + 64, "%s/%s", fd_tmp, name);
    FILE *f = fopen(p, "wb");
    cr_assert(f, "cannot write %s", p);
    cr_assert_eq(fwrite(text, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
    return p;
}

static const char *fd_write(const char *name, const char *text) { return fd_write_n(name, text, strlen(text)); }

static apr_ftdata_opts fd_opts(int seq_len) {
    return (apr_ftdata_opts){.seq_len = seq_len, .seed = 1, .chat = CHAT_PLAIN};
}

static apr_ftdata *fd_open(const char *path, const apr_ftdata_opts *o) {
    apr_ftdata *d = NULL;
    apr_error e = {{0}};
    apr_status st = apr_ftdata_open(path, fd_v, o, &d, &e);
    cr_assert_eq(st, APR_OK, "apr_ftdata_open(%s): %s", path, e.msg);
    cr_assert(d);
    return d;
}

/* The status apr_ftdata_open returns for path (which must fail) and its message in msg. */
static apr_status fd_fail(const char *path, const apr_ftdata_opts *o, char *msg, size_t cap) {
    apr_ftdata *d = (apr_ftdata *)&d;   /* must be set to NULL */
    apr_error e = {{0}};
    apr_status st = apr_ftdata_open(path, fd_v, o, &d, &e);
    cr_assert_neq(st, APR_OK, "apr_ftdata_open(%s) should fail", path);
    cr_assert_null(d);
    snprintf(msg, cap, "%s", e.msg);
    return st;
}

/* The ids of text, no BOS / EOS, no special tokens parsed. */
static int64_t fd_encode(const char *text, unsigned flags, int32_t *ids, int64_t cap) {
    int64_t n = apr_tok_encode(fd_v, text, strlen(text), flags, ids, cap);
    cr_assert(n >= 0 && n <= cap, "encode(%s) gave %lld ids", text, (long long)n);
    return n;
}

/* The targets >= 0 of every window of split, in window order (epoch 0), malloc'd; *n their number. */
static int32_t *fd_targets(const apr_ftdata *d, int split, int64_t *n) {
    int L = apr_ftdata_seq_len(d);
    int64_t w = apr_ftdata_count(d, split);
    int32_t *out = malloc((size_t)(w * L + 1) * sizeof *out), ids[256], tg[256];
    cr_assert(out && L <= 256);
    *n = 0;
    for (int64_t i = 0; i < w; i++) {
        apr_ftdata_window(d, split, 0, i, ids, tg);
        for (int t = 0; t < L; t++)
            if (tg[t] >= 0) out[(*n)++] = tg[t];
    }
    return out;
}

/* The text of ids[0, n). */
static char *fd_decode(const int32_t *ids, int64_t n) {
    char *s = apr_tok_decode(fd_v, ids, (size_t)n, 0, NULL);
    cr_assert(s);
    return s;
}

/* The loss tokens of d split at EOS (which ends every example): the text of segment k. */
static char *fd_loss_segment(const apr_ftdata *d, int k) {
    int64_t n;
    int32_t *t = fd_targets(d, APR_FTDATA_VAL, &n);
    int64_t at = 0;
    for (int seg = 0; seg < k; seg++) {
        while (at < n && t[at] != apr_tok_eos(fd_v)) at++;
        cr_assert(at < n, "fewer than %d loss segments", k + 1);
        at++;
    }
    int64_t end = at;
    while (end < n && t[end] != apr_tok_eos(fd_v)) end++;
    cr_assert(end < n, "loss segment %d does not end with EOS", k);
    char *s = fd_decode(t + at, end - at);
    free(t);
    return s;
}

/* FNV-1a of a window, to tell windows apart. */
static uint64_t fd_hash(const int32_t *ids, const int32_t *tg, int L) {
    uint64_t h = 1469598103934665603ull;
    for (int t = 0; t < L; t++) {
        h = (h ^ (uint32_t)ids[t]) * 1099511628211ull;
        h = (h ^ (uint32_t)tg[t]) * 1099511628211ull;
    }
    return h;
}

/* The hashes of split's windows in epoch `epoch`'s order, malloc'd. */
static uint64_t *fd_order(const apr_ftdata *d, int split, int64_t epoch) {
    int L = apr_ftdata_seq_len(d);
    int64_t w = apr_ftdata_count(d, split);
    uint64_t *h = malloc((size_t)w * sizeof *h);
    int32_t ids[256], tg[256];
    cr_assert(h && L <= 256);
    for (int64_t i = 0; i < w; i++) {
        apr_ftdata_window(d, split, epoch, i, ids, tg);
        h[i] = fd_hash(ids, tg, L);
    }
    return h;
}

static int fd_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* True when a and b hold the same n values (in any order); the values of a are distinct. */
static bool fd_same_set(const uint64_t *a, const uint64_t *b, int64_t n) {
    uint64_t *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    memcpy(x, a, (size_t)n * sizeof *x);
    memcpy(y, b, (size_t)n * sizeof *y);
    qsort(x, (size_t)n, sizeof *x, fd_cmp_u64);
    qsort(y, (size_t)n, sizeof *y, fd_cmp_u64);
    bool same = !memcmp(x, y, (size_t)n * sizeof *x);
    for (int64_t i = 1; i < n; i++) cr_assert_neq(x[i - 1], x[i], "two windows hash alike");
    free(x);
    free(y);
    return same;
}

/* A JSON-lines file of n distinct texts, each a few dozen tokens. */
static const char *fd_many(const char *name, int n) {
    size_t cap = (size_t)n * 160 + 1, k = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(buf + k, cap - k, "{\"text\": \"Example number %d talks about item %d and colour %d.\"}\n",
                              i, i * 7 + 3, i % 13);
    const char *p = fd_write_n(name, buf, k);
    free(buf);
    return p;
}

/* ---------------------------------------------------------------- formats and layout */

/* The stream BOS + text + EOS cut into windows of L + 1 tokens overlapping by one, checked id by id. */
Test(ftdata, text_window_layout) {
    fd_vocab();
    const char *text = "The quick brown fox jumps over the lazy dog.";
    int32_t want[64];
    want[0] = apr_tok_bos(fd_v);
    int64_t n = 1 + fd_encode(text, 0, want + 1, 60);
    want[n++] = apr_tok_eos(fd_v);
    cr_assert_eq(want[0], 1);
    cr_assert_eq(want[n - 1], 2);
    cr_assert_geq(n, 10, "the text should give several windows");
    const char *p = fd_write("t.jsonl", "{\"text\": \"The quick brown fox jumps over the lazy dog.\"}\n");
    const int L = 4;
    apr_ftdata_opts o = fd_opts(L);
    o.val_file = p;   /* the same file as validation: its windows in file order */
    apr_ftdata *d = fd_open(p, &o);
    int64_t nw = (n - 1 + L - 1) / L;
    cr_assert_eq(apr_ftdata_count(d, APR_FTDATA_VAL), nw);
    cr_assert_eq(apr_ftdata_count(d, APR_FTDATA_TRAIN), nw);
    int32_t ids[L], tg[L];
    for (int64_t k = 0; k < nw; k++) {
        apr_ftdata_window(d, APR_FTDATA_VAL, 0, k, ids, tg);
        for (int t = 0; t < L; t++) {
            int64_t p0 = k * L + t;
            int32_t wid = p0 < n ? want[p0] : apr_tok_eos(fd_v);   /* no pad token: EOS pads */
            int32_t wtg = p0 + 1 < n ? want[p0 + 1] : -1;          /* every token after BOS has loss */
            cr_assert_eq(ids[t], wid, "window %lld position %d: id %d, want %d", (long long)k, t, ids[t], wid);
            cr_assert_eq(tg[t], wtg, "window %lld position %d: target %d, want %d", (long long)k, t, tg[t], wtg);
        }
    }
    /* the last window is padded: n - 1 targets in all, the rest -1 */
    cr_assert_neq((n - 1) % L, 0, "pick a text whose last window is partial");
    apr_ftdata_window(d, APR_FTDATA_VAL, 0, nw - 1, ids, tg);
    cr_assert_eq(tg[L - 1], -1);
    cr_assert_eq(ids[L - 1], 2);
    apr_ftdata_free(d);

    o.val_file = NULL;
    d = fd_open(p, &o);
    apr_ftdata_stats s;
    apr_ftdata_stats_get(d, &s);
    cr_assert_eq(s.examples, 1);
    cr_assert_eq(s.skipped, 0);
    cr_assert_eq(s.tokens, n);
    cr_assert_eq(s.loss_tokens, n - 1, "everything but BOS carries loss");
    cr_assert_eq(apr_ftdata_count(d, APR_FTDATA_VAL), 0);
    cr_assert_eq(apr_ftdata_count(d, 7), 0);
    apr_ftdata_free(d);
}

/* Two examples back to back: the second's BOS follows the first's EOS, and BOS is never a target. */
Test(ftdata, text_examples_concatenate) {
    fd_vocab();
    const char *p = fd_write("two.json", "{\"text\": \"Hello world\"}\n\n   \n{\"text\": \"Hello world\"}\r\n");
    apr_ftdata_opts o = fd_opts(16);
    o.val_file = p;
    apr_ftdata *d = fd_open(p, &o);
    int32_t ids[16], tg[16];
    cr_assert_eq(apr_ftdata_count(d, APR_FTDATA_VAL), 1);
    apr_ftdata_window(d, APR_FTDATA_VAL, 0, 0, ids, tg);
    const int32_t wid[8] = {1, 15043, 3186, 2, 1, 15043, 3186, 2}, wtg[8] = {15043, 3186, 2, -1, 15043, 3186, 2, -1};
    for (int t = 0; t < 8; t++) {
        cr_assert_eq(ids[t], wid[t], "position %d", t);
        cr_assert_eq(tg[t], wtg[t], "position %d", t);
    }
    for (int t = 8; t < 16; t++) {
        cr_assert_eq(ids[t], 2, "padding is EOS (the vocab has no pad)");
        cr_assert_eq(tg[t], -1);
    }
    apr_ftdata_stats s;
    apr_ftdata_stats_get(d, &s);
    cr_assert_eq(s.examples, 4, "two in the file, two in the same file as val_file");
    cr_assert_eq(s.tokens, 16);
    cr_assert_eq(s.loss_tokens, 12);
    apr_ftdata_free(d);
}

/* Any other file is one document: the whole text, newlines and all, loss everywhere. */
Test(ftdata, plain_text_file) {
    fd_vocab();
    const char *text = "First line of a plain file.\nSecond line, {\"text\": \"not JSON here\"}\n";
    const char *p = fd_write("doc.txt", text);
    int32_t want[128];
    want[0] = 1;
    int64_t n = 1 + fd_encode(text, 0, want + 1, 120);
    want[n++] = 2;
    apr_ftdata_opts o = fd_opts(8);
    o.val_file = p;
    apr_ftdata *d = fd_open(p, &o);
    int64_t nt;
    int32_t *t = fd_targets(d, APR_FTDATA_VAL, &nt);
    cr_assert_eq(nt, n - 1);
    for (int64_t i = 0; i < nt; i++) cr_assert_eq(t[i], want[i + 1], "target %lld", (long long)i);
    char *s = apr_tok_decode(fd_v, t, (size_t)nt - 1, TOK_DECODE_STRIP_FIRST, NULL);   /* it follows BOS */
    cr_assert_str_eq(s, text);
    free(s);
    free(t);
    apr_ftdata_stats st;
    apr_ftdata_stats_get(d, &st);
    cr_assert_eq(st.examples, 2);
    cr_assert_eq(st.tokens, 2 * n);
    apr_ftdata_free(d);
}

/* Loss on the completion only: the loss tokens of each example decode to exactly its completion. */
Test(ftdata, prompt_completion_mask) {
    fd_vocab();
    const char *p = fd_write("pc.jsonl",
                             "{\"prompt\": \"Question: what is two plus two?\\nAnswer:\", \"completion\": \" four.\"}\n"
                             "{\"prompt\": \"Translate to French: cat =\", \"completion\": \" chat\"}\n"
                             "{\"prompt\": \"Say nothing:\", \"completion\": \"\"}\n");
    apr_ftdata_opts o = fd_opts(8);
    o.val_file = p;
    apr_ftdata *d = fd_open(p, &o);
    char *s0 = fd_loss_segment(d, 0), *s1 = fd_loss_segment(d, 1), *s2 = fd_loss_segment(d, 2);
    cr_assert_str_eq(s0, " four.");
    cr_assert_str_eq(s1, " chat");
    cr_assert_str_eq(s2, "", "an empty completion leaves only EOS with loss");
    free(s0);
    free(s1);
    free(s2);
    /* the prompt's tokens are in the stream (as inputs) without being targets */
    int32_t w[64];
    int64_t n0 = fd_encode("Question: what is two plus two?\nAnswer: four.", 0, w, 64);
    int64_t n1 = fd_encode("Translate to French: cat = chat", 0, w, 64);
    int64_t n2 = fd_encode("Say nothing:", 0, w, 64);
    int64_t c0 = fd_encode(" four.", 0, w, 64) - 1, c1 = fd_encode(" chat", 0, w, 64) - 1;   /* less the prefix "▁" */
    apr_ftdata_stats st;
    apr_ftdata_free(d);
    o.val_file = NULL;
    d = fd_open(p, &o);
    apr_ftdata_stats_get(d, &st);
    cr_assert_eq(st.examples, 3);
    cr_assert_eq(st.tokens, n0 + n1 + n2 + 6);
    cr_assert_eq(st.loss_tokens, c0 + c1 + 3);
    apr_ftdata_free(d);
}

/* Windows that hold only prompt tokens are dropped; every remaining window has a target. */
Test(ftdata, windows_without_loss_dropped) {
    fd_vocab();
    const char *prompt = "This long prompt goes on and on for many words so that several windows hold nothing but "
                         "prompt tokens and must be dropped from training entirely:";
    char line[512];
    snprintf(line, sizeof line, "{\"prompt\": \"%s\", \"completion\": \" yes\"}\n", prompt);
    const char *p = fd_write("drop.jsonl", line);
    int32_t w[128];
    int64_t np = fd_encode(prompt, 0, w, 128);
    const int L = 4;
    apr_ftdata_opts o = fd_opts(L);
    apr_ftdata *d = fd_open(p, &o);
    /* stream: BOS, np prompt tokens, "▁yes", EOS; targets with loss at positions np+1 and np+2 */
    int64_t n = np + 3;
    int64_t first = np / L, last = (n - 2) / L;   /* the windows holding those targets */
    cr_assert_eq(apr_ftdata_count(d, APR_FTDATA_TRAIN), last - first + 1);
    cr_assert_lt(apr_ftdata_count(d, APR_FTDATA_TRAIN), (n - 1 + L - 1) / L);
    int32_t ids[L], tg[L];
    for (int64_t i = 0; i < apr_ftdata_count(d, APR_FTDATA_TRAIN); i++) {
        apr_ftdata_window(d, APR_FTDATA_TRAIN, 0, i, ids, tg);
        int with = 0;
        for (int t = 0; t < L; t++) with += tg[t] >= 0;
        cr_assert_gt(with, 0, "window %lld has no target", (long long)i);
    }
    apr_ftdata_free(d);
}

/* Assistant turns only: with ChatML (plain text in this vocab) each turn's loss tokens are its
 * content and the template's "<|im_end|>\n"; the last turn is followed by EOS with loss. */
Test(ftdata, messages_chatml_mask) {
    fd_vocab();
    const char *p = fd_write("chat.jsonl",
                             "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
                             " {\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello there\"},"
                             " {\"role\": \"user\", \"content\": \"How are you?\"}, {\"role\": \"assistant\", \"content\": \"Fine, thanks.\"}]}\n");
    apr_ftdata_opts o = fd_opts(8);
    o.chat = CHAT_CHATML;
    o.val_file = p;
    apr_ftdata *d = fd_open(p, &o);
    char *s = fd_loss_segment(d, 0);
    cr_assert_str_eq(s, "Hello there<|im_end|>\nFine, thanks.<|im_end|>\n");
    free(s);
    apr_ftdata_free(d);
}

/* Mistral's turns end with </s> (EOS): each loss segment is exactly one assistant text; the
 * template's own BOS and EOS are not doubled. */
Test(ftdata, messages_mistral_mask) {
    fd_vocab();
    const char *p = fd_write("m.jsonl",
                             "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello there\"},"
                             " {\"role\": \"user\", \"content\": \"And you?\"}, {\"role\": \"assistant\", \"content\": \"Fine.\"}]}\n");
    apr_ftdata_opts o = fd_opts(64);   /* one window: the prompt alone would fill a short one, which is dropped */
    o.chat = CHAT_MISTRAL;
    o.val_file = p;
    apr_ftdata *d = fd_open(p, &o);
    char *s0 = fd_loss_segment(d, 0), *s1 = fd_loss_segment(d, 1);
    cr_assert_str_eq(s0, "Hello there");
    cr_assert_str_eq(s1, "Fine.");
    free(s0);
    free(s1);
    /* the stream is exactly the rendered conversation's tokens */
    int32_t want[128];
    int64_t n = fd_encode("<s>[INST] Hi [/INST]Hello there</s>[INST] And you? [/INST]Fine.</s>", TOK_PARSE_SPECIAL, want, 128);
    cr_assert_eq(want[0], 1);
    cr_assert_eq(want[n - 1], 2);
    int32_t ids[64], tg[64];
    cr_assert_eq(apr_ftdata_count(d, APR_FTDATA_VAL), 1);
    apr_ftdata_window(d, APR_FTDATA_VAL, 0, 0, ids, tg);
    for (int64_t t = 0; t < n; t++) cr_assert_eq(ids[t], want[t], "position %lld", (long long)t);
    cr_assert_eq(tg[n - 2], 2, "the last turn's </s> is a target");
    apr_ftdata_stats st;
    apr_ftdata_stats_get(d, &st);
    cr_assert_eq(st.tokens, 2 * n);
    apr_ftdata_free(d);
}

/* A turn after the last assistant turn stays in the stream without loss, and no EOS loss follows it. */
Test(ftdata, messages_trailing_user_turn) {
    fd_vocab();
    const char *p = fd_write("tr.jsonl",
                             "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yo\"},"
                             " {\"role\": \"user\", \"content\": \"Bye\"}]}\n");
    apr_ftdata_opts o = fd_opts(64);
    o.val_file = p;
    apr_ftdata *d = fd_open(p, &o);
    int64_t nt;
    int32_t *t = fd_targets(d, APR_FTDATA_VAL, &nt);
    char *s = fd_decode(t, nt);
    cr_assert_str_eq(s, "Yo", "plain template: the answer only, no EOS target at the end");
    free(s);
    free(t);
    int32_t ids[64], tg[64];
    apr_ftdata_window(d, APR_FTDATA_VAL, 0, 0, ids, tg);
    int32_t want[64];
    int64_t n = fd_encode("HiYo\nBye", 0, want, 64);   /* CHAT_PLAIN: answers continue the line, users start one */
    cr_assert_eq(ids[0], 1);
    for (int64_t i = 0; i < n; i++) cr_assert_eq(ids[i + 1], want[i], "position %lld", (long long)i + 1);
    cr_assert_eq(ids[n + 1], 2);
    cr_assert_eq(tg[n], -1, "EOS after a user turn carries no loss");
    apr_ftdata_free(d);
}

/* ---------------------------------------------------------------- order and splits */

/* Each epoch visits every training window once; the order depends on (seed, epoch) only. */
Test(ftdata, shuffle_is_seeded_permutation) {
    fd_vocab();
    const char *p = fd_many("many.jsonl", 60);
    apr_ftdata_opts o = fd_opts(8);
    o.val_file = p;   /* file order, to compare with */
    apr_ftdata *a = fd_open(p, &o), *b = fd_open(p, &o);
    o.seed = 2;
    apr_ftdata *c = fd_open(p, &o);
    int64_t w = apr_ftdata_count(a, APR_FTDATA_TRAIN);
    cr_assert_gt(w, 50);
    cr_assert_eq(apr_ftdata_count(a, APR_FTDATA_VAL), w);
    uint64_t *file = fd_order(a, APR_FTDATA_VAL, 0);
    uint64_t *a0 = fd_order(a, APR_FTDATA_TRAIN, 0), *a1 = fd_order(a, APR_FTDATA_TRAIN, 1);
    uint64_t *b0 = fd_order(b, APR_FTDATA_TRAIN, 0), *b1 = fd_order(b, APR_FTDATA_TRAIN, 1);
    uint64_t *c0 = fd_order(c, APR_FTDATA_TRAIN, 0);
    size_t bytes = (size_t)w * sizeof *file;
    cr_assert(fd_same_set(file, a0, w), "epoch 0 is not a permutation of the windows");
    cr_assert(fd_same_set(file, a1, w), "epoch 1 is not a permutation of the windows");
    cr_assert(fd_same_set(file, c0, w), "seed 2's epoch 0 is not a permutation of the windows");
    cr_assert(!memcmp(a0, b0, bytes), "same seed, same epoch: same order");
    cr_assert(!memcmp(a1, b1, bytes));
    cr_assert(memcmp(a0, a1, bytes), "epochs 0 and 1 in the same order");
    cr_assert(memcmp(a0, c0, bytes), "seeds 1 and 2 give the same order");
    cr_assert(memcmp(a0, file, bytes), "epoch 0 is file order");
    /* the order is not just rotated: count positions where the file's neighbours stay neighbours */
    int64_t kept = 0;
    for (int64_t i = 0; i + 1 < w; i++) {
        int64_t j = 0;
        while (file[j] != a0[i]) j++;
        kept += j + 1 < w && file[j + 1] == a0[i + 1];
    }
    cr_assert_lt(kept, w / 4, "%lld of %lld neighbours kept", (long long)kept, (long long)w);
    /* validation keeps file order in every epoch */
    uint64_t *v5 = fd_order(a, APR_FTDATA_VAL, 5);
    cr_assert(!memcmp(v5, file, bytes));
    free(file); free(a0); free(a1); free(b0); free(b1); free(c0); free(v5);
    apr_ftdata_free(a);
    apr_ftdata_free(b);
    apr_ftdata_free(c);
}

/* Small counts too: 1, 2 and 3 windows give permutations in every epoch. */
Test(ftdata, shuffle_small_counts) {
    fd_vocab();
    const char *p = fd_many("small.jsonl", 1);
    apr_ftdata_opts o = fd_opts(2);
    apr_ftdata *d = fd_open(p, &o);
    apr_ftdata_stats st;
    apr_ftdata_stats_get(d, &st);
    apr_ftdata_free(d);
    for (int64_t want = 1; want <= 3; want++) {
        o.seq_len = (int)((st.tokens - 1 + want - 1) / want);   /* want windows of one example */
        o.val_file = p;
        d = fd_open(p, &o);
        int64_t w = apr_ftdata_count(d, APR_FTDATA_TRAIN);
        cr_assert_eq(w, want, "seq_len %d", o.seq_len);
        uint64_t *file = fd_order(d, APR_FTDATA_VAL, 0);
        bool moved = false;
        for (int64_t e = 0; e < 16; e++) {
            uint64_t *ord = fd_order(d, APR_FTDATA_TRAIN, e);
            cr_assert(fd_same_set(file, ord, w), "%lld windows, epoch %lld", (long long)w, (long long)e);
            moved = moved || memcmp(ord, file, (size_t)w * sizeof *ord);
            free(ord);
        }
        cr_assert_eq(moved, w > 1, "16 epochs of %lld windows never left file order", (long long)w);
        free(file);
        apr_ftdata_free(d);
    }
}

/* val_split holds out round(val_split * W) windows chosen by the seed, disjoint from training. */
Test(ftdata, val_split_holds_out) {
    fd_vocab();
    const char *p = fd_many("vs.jsonl", 40);
    apr_ftdata_opts o = fd_opts(8);
    apr_ftdata *all = fd_open(p, &o);
    int64_t w = apr_ftdata_count(all, APR_FTDATA_TRAIN);
    cr_assert_eq(apr_ftdata_count(all, APR_FTDATA_VAL), 0);
    uint64_t *every = fd_order(all, APR_FTDATA_TRAIN, 0);

    o.val_split = 0.25;
    apr_ftdata *d = fd_open(p, &o), *d2 = fd_open(p, &o);
    int64_t nv = apr_ftdata_count(d, APR_FTDATA_VAL), nt = apr_ftdata_count(d, APR_FTDATA_TRAIN);
    cr_assert_eq(nv, llround(0.25 * (double)w));
    cr_assert_eq(nv + nt, w);
    uint64_t *val = fd_order(d, APR_FTDATA_VAL, 0), *tr = fd_order(d, APR_FTDATA_TRAIN, 3);
    uint64_t *both = malloc((size_t)w * sizeof *both);
    memcpy(both, val, (size_t)nv * sizeof *both);
    memcpy(both + nv, tr, (size_t)nt * sizeof *both);
    cr_assert(fd_same_set(every, both, w), "training and validation together are not every window, once");
    uint64_t *val2 = fd_order(d2, APR_FTDATA_VAL, 0), *val9 = fd_order(d, APR_FTDATA_VAL, 9);
    cr_assert(!memcmp(val, val2, (size_t)nv * sizeof *val), "same seed, same held-out windows");
    cr_assert(!memcmp(val, val9, (size_t)nv * sizeof *val), "validation order does not change with the epoch");
    o.seed = 99;
    apr_ftdata *d3 = fd_open(p, &o);
    uint64_t *val3 = fd_order(d3, APR_FTDATA_VAL, 0);
    cr_assert_eq(apr_ftdata_count(d3, APR_FTDATA_VAL), nv);
    cr_assert(memcmp(val, val3, (size_t)nv * sizeof *val), "another seed holds out other windows");

    /* a tiny fraction still holds one out; one window alone is never held out */
    o.val_split = 0.001;
    apr_ftdata *d4 = fd_open(p, &o);
    cr_assert_eq(apr_ftdata_count(d4, APR_FTDATA_VAL), 1);
    cr_assert_eq(apr_ftdata_count(d4, APR_FTDATA_TRAIN), w - 1);
    const char *one = fd_write("one.jsonl", "{\"text\": \"Hi\"}\n");
    o.val_split = 0.5;
    apr_ftdata *d5 = fd_open(one, &o);
    cr_assert_eq(apr_ftdata_count(d5, APR_FTDATA_TRAIN), 1);
    cr_assert_eq(apr_ftdata_count(d5, APR_FTDATA_VAL), 0);
    free(every); free(val); free(tr); free(both); free(val2); free(val9); free(val3);
    apr_ftdata_free(all);
    apr_ftdata_free(d);
    apr_ftdata_free(d2);
    apr_ftdata_free(d3);
    apr_ftdata_free(d4);
    apr_ftdata_free(d5);
}

/* Validation windows held out come in file order: they match the file's windows in sequence. */
Test(ftdata, val_split_file_order) {
    fd_vocab();
    const char *p = fd_many("vo.jsonl", 40);
    apr_ftdata_opts o = fd_opts(8);
    o.val_file = p;
    apr_ftdata *ref = fd_open(p, &o);
    uint64_t *file = fd_order(ref, APR_FTDATA_VAL, 0);
    int64_t w = apr_ftdata_count(ref, APR_FTDATA_VAL);
    o.val_file = NULL;
    o.val_split = 0.3;
    apr_ftdata *d = fd_open(p, &o);
    uint64_t *val = fd_order(d, APR_FTDATA_VAL, 0);
    int64_t nv = apr_ftdata_count(d, APR_FTDATA_VAL), j = 0;
    cr_assert_gt(nv, 5);
    for (int64_t i = 0; i < nv; i++) {
        while (j < w && file[j] != val[i]) j++;
        cr_assert_lt(j, w, "held-out window %lld out of file order", (long long)i);
        j++;
    }
    free(file);
    free(val);
    apr_ftdata_free(ref);
    apr_ftdata_free(d);
}

/* A separate validation file: its windows, in its order; every training-file window trains. */
Test(ftdata, val_file_separate) {
    fd_vocab();
    const char *tp = fd_many("train.jsonl", 20);
    const char *vp = fd_write("val.txt", "Held out text for validation only.");
    apr_ftdata_opts o = fd_opts(4);
    apr_ftdata *t = fd_open(tp, &o);
    int64_t w = apr_ftdata_count(t, APR_FTDATA_TRAIN);
    apr_ftdata_free(t);
    o.val_file = vp;
    o.val_split = 0.5;   /* ignored with a val_file */
    apr_ftdata *d = fd_open(tp, &o);
    cr_assert_eq(apr_ftdata_count(d, APR_FTDATA_TRAIN), w);
    int32_t want[64];
    want[0] = 1;
    int64_t n = 1 + fd_encode("Held out text for validation only.", 0, want + 1, 60);
    want[n++] = 2;
    cr_assert_eq(apr_ftdata_count(d, APR_FTDATA_VAL), (n - 1 + 3) / 4);
    int32_t ids[4], tg[4];
    for (int64_t k = 0; k < apr_ftdata_count(d, APR_FTDATA_VAL); k++) {
        apr_ftdata_window(d, APR_FTDATA_VAL, 7, k, ids, tg);
        for (int i = 0; i < 4; i++) {
            int64_t at = k * 4 + i;
            cr_assert_eq(ids[i], at < n ? want[at] : 2);
            cr_assert_eq(tg[i], at + 1 < n ? want[at + 1] : -1);
        }
    }
    apr_ftdata_stats st;
    apr_ftdata_stats_get(d, &st);
    cr_assert_eq(st.examples, 21);
    apr_ftdata_free(d);
}

/* A long plain text is tokenized in pieces (cut after newlines, or before spaces in a long line):
 * the stream is still exactly the whole text's tokens. */
Test(ftdata, long_plain_text_same_tokens) {
    fd_vocab();
    static const char *const words[] = {"alpha", "beta,", "gamma", "delta.", "épsilon", "zeta", "eta;", "théta", "iota", "kappa"};
    size_t cap = 900000, k = 0;
    char *text = malloc(cap);
    uint32_t r = 12345;
    while (k < 300000) {   /* short lines, some blank, some indented */
        r = r * 1103515245u + 12345u;
        const char *w = words[(r >> 16) % 10];
        k += (size_t)sprintf(text + k, "%s%s", w, (r >> 8) % 7 == 0 ? "\n" : (r >> 8) % 31 == 1 ? "\n\n  " : " ");
    }
    text[k++] = '\n';
    while (k < 820000) {   /* then one long line */
        r = r * 1103515245u + 12345u;
        k += (size_t)sprintf(text + k, "%s ", words[(r >> 16) % 10]);
    }
    text[k] = 0;
    const char *p = fd_write_n("long.txt", text, k);
    int32_t *want = malloc((k + 8) * sizeof *want);
    int64_t n = apr_tok_encode(fd_v, text, k, 0, want, (int64_t)k + 8);
    cr_assert_gt(n, 1000);
    apr_ftdata_opts o = fd_opts(128);
    o.val_file = p;
    apr_ftdata *d = fd_open(p, &o);
    int64_t nt;
    int32_t *t = fd_targets(d, APR_FTDATA_VAL, &nt);
    cr_assert_eq(nt, n + 1, "the text's tokens and EOS");
    for (int64_t i = 0; i < n; i++) cr_assert_eq(t[i], want[i], "token %lld: %d, want %d", (long long)i, t[i], want[i]);
    cr_assert_eq(t[n], 2);
    free(t);
    free(want);
    free(text);
    apr_ftdata_free(d);
}

/* ---------------------------------------------------------------- malformed lines */

static const char fd_bad_lines[] =
    "{\"text\": \"good one\"}\n"                                                             /* 1 */
    "\n"                                                                                      /* 2 */
    "not json\n"                                                                              /* 3 */
    "[1, 2]\n"                                                                                /* 4 */
    "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\"}]}\n" /* 5 */
    "{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}\n"                             /* 6 */
    "{\"prompt\": \"p\"}\n"                                                                   /* 7 */
    "{\"text\": 5}\n"                                                                         /* 8 */
    "{\"text\": \"good two\"}\n"                                                             /* 9 */
    "{\"foo\": 1}\n"                                                                          /* 10 */
    "{\"text\": \"a\"} trailing\n"                                                            /* 11 */
    "{\"messages\": [{\"role\": \"user\", \"content\": \"only a question\"}]}\n"              /* 12 */
    "{\"text\": \"x\", \"prompt\": \"y\", \"completion\": \"z\"}\n"                           /* 13 */
    "{\"text\": \"unterminated\n";                                                            /* 14 */

Test(ftdata, malformed_lines_skipped) {
    fd_vocab();
    const char *p = fd_write("bad.jsonl", fd_bad_lines);
    char *log = NULL;
    size_t loglen = 0;
    FILE *warn = open_memstream(&log, &loglen);
    cr_assert(warn);
    apr_ftdata_opts o = fd_opts(8);
    o.warn = warn;
    apr_ftdata *d = fd_open(p, &o);
    cr_assert_eq(fclose(warn), 0);
    char want[4096];
    snprintf(want, sizeof want,
             "%1$s:3: invalid JSON at column 1 (skipped)\n"
             "%1$s:4: not a JSON object (skipped)\n"
             "%1$s:5: \"messages\"[1] has no \"content\" string (skipped)\n"
             "%1$s:6: \"messages\"[0]: unknown role \"bot\" (skipped)\n"
             "%1$s:7: no \"completion\" string (skipped)\n"
             "%1$s:8: \"text\" is not a string (skipped)\n"
             "%1$s:10: no \"text\", \"prompt\"/\"completion\" or \"messages\" (skipped)\n"
             "%1$s:11: invalid JSON at column 14: text after the value (skipped)\n"
             "%1$s:12: \"messages\" has no assistant turn (skipped)\n"
             "%1$s:13: more than one of \"text\", \"prompt\"/\"completion\", \"messages\" (skipped)\n"
             "%1$s:14: invalid JSON at column 11 (skipped)\n",
             p);
    cr_assert_str_eq(log, want);
    apr_ftdata_stats st;
    apr_ftdata_stats_get(d, &st);
    cr_assert_eq(st.examples, 2);
    cr_assert_eq(st.skipped, 11);
    /* only the good lines are in the stream */
    int32_t a[16], b[16];
    int64_t na = fd_encode("good one", 0, a, 16), nb = fd_encode("good two", 0, b, 16);
    cr_assert_eq(st.tokens, na + nb + 4);
    free(log);
    apr_ftdata_free(d);
}

/* strict: the first malformed line fails the open with its file, line and problem. */
Test(ftdata, malformed_line_fatal_when_strict) {
    fd_vocab();
    const char *p = fd_write("bad.jsonl", fd_bad_lines);
    apr_ftdata_opts o = fd_opts(8);
    o.strict = true;
    char msg[512], want[PATH_MAX + 64];
    cr_assert_eq(fd_fail(p, &o, msg, sizeof msg), APR_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:3: invalid JSON at column 1", p);
    cr_assert_str_eq(msg, want);
    const char *q = fd_write("bad2.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n\n"
                                           "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"bot\", \"content\": \"x\"}]}\n");
    cr_assert_eq(fd_fail(q, &o, msg, sizeof msg), APR_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:4: \"messages\"[1]: unknown role \"bot\"", q);
    cr_assert_str_eq(msg, want);
    /* the same file without strict only warns */
    o.strict = false;
    o.warn = fopen("/dev/null", "w");
    apr_ftdata *d = fd_open(q, &o);
    fclose(o.warn);
    apr_ftdata_stats st;
    apr_ftdata_stats_get(d, &st);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.examples, 2);
    apr_ftdata_free(d);
}

/* A line longer than max_line is one malformed line; reading goes on after it. */
Test(ftdata, long_line) {
    fd_vocab();
    size_t big = 3000;
    char *buf = malloc(big + 1024);
    size_t k = (size_t)sprintf(buf, "{\"text\": \"first\"}\n{\"text\": \"");
    memset(buf + k, 'x', big);
    k += big;
    k += (size_t)sprintf(buf + k, "\"}\n{\"text\": \"third\"}\n{\"text\": \"");
    memset(buf + k, 'y', 500);   /* the last line, no newline, also too long */
    k += 500;
    const char *p = fd_write_n("long.jsonl", buf, k);
    free(buf);
    char *log = NULL;
    size_t loglen = 0;
    apr_ftdata_opts o = fd_opts(8);
    o.max_line = 100;
    o.warn = open_memstream(&log, &loglen);
    apr_ftdata *d = fd_open(p, &o);
    fclose(o.warn);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "%1$s:2: line longer than 100 bytes (skipped)\n%1$s:4: line longer than 100 bytes (skipped)\n", p);
    cr_assert_str_eq(log, want);
    free(log);
    apr_ftdata_stats st;
    apr_ftdata_stats_get(d, &st);
    cr_assert_eq(st.examples, 2);
    cr_assert_eq(st.skipped, 2);
    apr_ftdata_free(d);

    /* sizes in whole MiB read as MiB; strict makes it fatal */
    size_t mib = (size_t)1 << 20, n = mib + mib / 2;
    buf = malloc(n + 32);
    k = (size_t)sprintf(buf, "{\"text\": \"");
    memset(buf + k, 'z', n);
    k += n;
    k += (size_t)sprintf(buf + k, "\"}\n");
    p = fd_write_n("mib.jsonl", buf, k);
    free(buf);
    o.max_line = mib;
    o.strict = true;
    o.warn = NULL;
    char msg[512];
    cr_assert_eq(fd_fail(p, &o, msg, sizeof msg), APR_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:1: line longer than 1 MiB", p);
    cr_assert_str_eq(msg, want);
}

/* ---------------------------------------------------------------- files that give nothing */

Test(ftdata, empty_file) {
    fd_vocab();
    apr_ftdata_opts o = fd_opts(8);
    char msg[512], want[PATH_MAX + 64];
    const char *paths[] = {fd_write("empty.jsonl", ""), fd_write("blank.jsonl", "\n  \n\r\n"), fd_write("empty.txt", "")};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(fd_fail(paths[i], &o, msg, sizeof msg), APR_ERR_FORMAT, "%s", paths[i]);
        snprintf(want, sizeof want, "%s: no training examples", paths[i]);
        cr_assert_str_eq(msg, want);
    }
    /* every line skipped is empty too */
    const char *bad = fd_write("allbad.jsonl", "{\"nope\": 1}\n");
    o.warn = fopen("/dev/null", "w");
    cr_assert_eq(fd_fail(bad, &o, msg, sizeof msg), APR_ERR_FORMAT);
    fclose(o.warn);
    snprintf(want, sizeof want, "%s: no training examples", bad);
    cr_assert_str_eq(msg, want);
    /* both empty: the training file is named */
    o.warn = NULL;
    o.val_file = paths[0];
    cr_assert_eq(fd_fail(paths[1], &o, msg, sizeof msg), APR_ERR_FORMAT);
    snprintf(want, sizeof want, "%s: no training examples", paths[1]);
    cr_assert_str_eq(msg, want);
    /* an empty validation file */
    o.val_file = paths[0];
    const char *good = fd_write("good.jsonl", "{\"text\": \"fine\"}\n");
    cr_assert_eq(fd_fail(good, &o, msg, sizeof msg), APR_ERR_FORMAT);
    snprintf(want, sizeof want, "%s: no validation examples", paths[0]);
    cr_assert_str_eq(msg, want);
}

Test(ftdata, missing_file) {
    fd_vocab();
    apr_ftdata_opts o = fd_opts(8);
    char path[PATH_MAX + 32], msg[512], want[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/nope.jsonl", fd_tmp);
    cr_assert_eq(fd_fail(path, &o, msg, sizeof msg), APR_ERR_IO);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    cr_assert_str_eq(msg, want);
    /* a missing validation file, named as such */
    o.val_file = path;
    const char *good = fd_write("good.jsonl", "{\"text\": \"fine\"}\n");
    cr_assert_eq(fd_fail(good, &o, msg, sizeof msg), APR_ERR_IO);
    cr_assert_str_eq(msg, want);
}

Test(ftdata, directory) {
    fd_vocab();
    char dir[PATH_MAX + 32], msg[512], want[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/data.jsonl", fd_tmp);
    cr_assert_eq(mkdir(dir, 0755), 0);
    apr_ftdata_opts o = fd_opts(8);
    cr_assert_eq(fd_fail(dir, &o, msg, sizeof msg), APR_ERR_IO);
    snprintf(want, sizeof want, "%s: is a directory", dir);
    cr_assert_str_eq(msg, want);
    cr_assert_eq(fd_fail(fd_tmp, &o, msg, sizeof msg), APR_ERR_IO, "a plain-text path that is a directory");
    cr_assert(strstr(msg, "is a directory"), "%s", msg);
}

Test(ftdata, bad_options) {
    fd_vocab();
    const char *p = fd_write("ok.jsonl", "{\"text\": \"fine\"}\n");
    char msg[512];
    apr_ftdata_opts o = fd_opts(1);
    cr_assert_eq(fd_fail(p, &o, msg, sizeof msg), APR_ERR_INVALID);
    cr_assert(strstr(msg, "seq_len 1"), "%s", msg);
    o = fd_opts(8);
    o.val_split = 1.0;
    cr_assert_eq(fd_fail(p, &o, msg, sizeof msg), APR_ERR_INVALID);
    o.val_split = NAN;
    cr_assert_eq(fd_fail(p, &o, msg, sizeof msg), APR_ERR_INVALID);
    o.val_split = -0.1;
    cr_assert_eq(fd_fail(p, &o, msg, sizeof msg), APR_ERR_INVALID);
    apr_ftdata *d = NULL;
    o = fd_opts(8);
    cr_assert_eq(apr_ftdata_open(p, NULL, &o, &d, NULL), APR_ERR_INVALID);
    cr_assert_eq(apr_ftdata_open(p, fd_v, NULL, &d, NULL), APR_ERR_INVALID);
    cr_assert_null(d);
    apr_ftdata_free(NULL);
}

/* ---------------------------------------------------------------- size */

/* Thousands of lines, some longer than the read buffer: every example arrives, tokens add up. */
Test(ftdata, many_lines_and_long_ones) {
    fd_vocab();
    const int n = 3000;
    size_t cap = (size_t)n * 100 + 3 * 200000, k = 0;
    char *buf = malloc(cap);
    int64_t want_tokens = 0;
    int32_t *ids = malloc(200000 * sizeof *ids);
    for (int i = 0; i < n; i++) {
        char text[200100];
        if (i % 1000 == 500) {   /* a 150 KB line: the reader's buffer grows */
            size_t m = 0;
            while (m < 150000) m += (size_t)sprintf(text + m, "word%d ", (int)m);
            text[m] = 0;
        } else {
            snprintf(text, sizeof text, "line %d says hello", i);
        }
        k += (size_t)snprintf(buf + k, cap - k, "{\"text\": \"%s\"}\n", text);
        want_tokens += apr_tok_encode(fd_v, text, strlen(text), 0, ids, 200000) + 2;
    }
    const char *p = fd_write_n("big.jsonl", buf, k);
    free(buf);
    free(ids);
    apr_ftdata_opts o = fd_opts(256);
    apr_ftdata *d = fd_open(p, &o);
    apr_ftdata_stats st;
    apr_ftdata_stats_get(d, &st);
    cr_assert_eq(st.examples, n);
    cr_assert_eq(st.skipped, 0);
    cr_assert_eq(st.tokens, want_tokens);
    cr_assert_eq(st.loss_tokens, want_tokens - n);
    cr_assert_eq(apr_ftdata_count(d, APR_FTDATA_TRAIN), (want_tokens - 1 + 255) / 256);
    apr_ftdata_free(d);
}

/* test_tokenizer.c — the tokenizers against reference ids: every .inp/.out pair of
 * ../shared/fixtures/vocab (GGUF vocab files and Hugging Face tokenizer.json), the stories260K
 * greedy text decoded from its ids, and the streaming decoder's UTF-8 guarantee. */
#include <criterion/criterion.h>
#include <cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "tok_internal.h"
#include "tokenizer.h"
#include "util/tu_paths.h"

static char tt_fix[PATH_MAX + 64];   /* <repo>/../shared/fixtures */
static char tt_tmp[PATH_MAX];   /* a temporary folder for decompressed tokenizer.json files */

/* ---------------------------------------------------------------- helpers */

static void tt_find_fixtures(void) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = 0;
    for (int i = 0; i < 3; i++) *strrchr(exe, '/') = 0;   /* <repo>/build/tests/test_tokenizer -> <repo> */
    snprintf(tt_fix, sizeof tt_fix, "%s/../shared/fixtures", exe);
}

static void tt_need(const char *rel) {
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", tt_fix, rel);
    if (access(p, R_OK)) cr_skip_test("fixture %s is missing (shared/ must sit beside the checkout)", p);
}

static bool tt_valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int need = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!need || i + (size_t)need > n) return false;
        for (int k = 1; k < need; k++)
            if (((unsigned char)s[i + (size_t)k] & 0xC0) != 0x80) return false;
        unsigned char c1 = (unsigned char)s[i + 1];
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F))
            return false;
        i += (size_t)need;
    }
    return true;
}

/* Decodes ids through a stream, checking that every chunk handed out is valid UTF-8. */
static char *tt_stream_decode(const tok_vocab *v, const int32_t *ids, size_t n, unsigned flags, size_t *len) {
    tok_stream *s = apr_tok_stream_new(v, flags);
    cr_assert(s);
    size_t cap = 256, k = 0;
    char *out = malloc(cap);
    for (size_t i = 0; i <= n; i++) {
        size_t l;
        const char *t = i < n ? apr_tok_stream_push(s, ids[i], &l) : apr_tok_stream_flush(s, &l);
        cr_assert(tt_valid_utf8(t, l), "stream chunk after id %zu is not valid UTF-8", i);
        cr_assert_eq(strlen(t), l);
        while (k + l + 1 > cap) out = realloc(out, cap *= 2);
        memcpy(out + k, t, l);
        k += l;
    }
    out[k] = 0;
    apr_tok_stream_free(s);
    *len = k;
    return out;
}

static void tt_show(const char *s, size_t n, char *buf, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') k += (size_t)snprintf(buf + k, cap - k, "\\n");
        else if (c == '\t') k += (size_t)snprintf(buf + k, cap - k, "\\t");
        else if (c < 0x20) k += (size_t)snprintf(buf + k, cap - k, "\\x%02x", c);
        else buf[k++] = (char)c;
    }
    buf[k] = 0;
}

/* Every input of inp encodes (no BOS, no special parsing) to the ids on the same line of out,
 * and decoding those ids gives the input back. */
static void tt_vectors(const tok_vocab *v, const char *inp_path, const char *out_path) {
    size_t il;
    char *inp = tu_read_file(inp_path, &il), *outs = tu_read_file(out_path, NULL);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *op = outs;
    int total = 0, bad = 0, bad_rt = 0;
    int32_t *ids = malloc(65536 * sizeof *ids);
    for (char *p = inp; p < inp + il;) {
        char *end = strstr(p, sep);
        if (!end) break;
        size_t n = (size_t)(end - p);
        char *nl = strchr(op, '\n');
        cr_assert(nl, "%s: fewer output lines than inputs", out_path);
        *nl = 0;
        int32_t want[4096];
        int nw = 0;
        for (char *q = op, *e; *q; q = e) {
            long x = strtol(q, &e, 10);
            if (e == q) break;
            cr_assert(nw < 4096);
            want[nw++] = (int32_t)x;
        }
        int64_t got = apr_tok_encode(v, p, n, 0, ids, 65536);
        cr_assert(got >= 0 && got <= 65536);
        bool ok = got == nw && !memcmp(ids, want, (size_t)nw * sizeof *ids);
        if (!ok && bad++ < 4) {
            char shown[512], gs[1024] = "", ws[1024] = "";
            tt_show(p, n, shown, sizeof shown);
            for (int64_t i = 0, k = 0; i < got && k < 1000; i++) k += snprintf(gs + k, sizeof gs - (size_t)k, " %d", ids[i]);
            for (int i = 0, k = 0; i < nw && k < 1000; i++) k += snprintf(ws + k, sizeof ws - (size_t)k, " %d", want[i]);
            cr_log_error("%s: input %d \"%s\"\n  expected:%s\n  got:     %s", inp_path, total, shown, ws, gs);
        }
        size_t dl;
        char *dec = tt_stream_decode(v, want, (size_t)nw, TOK_DECODE_STRIP_FIRST, &dl);
        if ((dl != n || memcmp(dec, p, n)) && bad_rt++ < 4) {
            char a[512], b[512];
            tt_show(p, n, a, sizeof a);
            tt_show(dec, dl, b, sizeof b);
            cr_log_error("%s: input %d decodes back as \"%s\", not \"%s\"", inp_path, total, b, a);
        }
        free(dec);
        total++;
        op = nl + 1;
        p = end + sizeof sep - 1;
    }
    cr_log_info("%s: %d of %d vectors match", inp_path, total - bad, total);
    free(ids);
    free(inp);
    free(outs);
    cr_assert_gt(total, 0, "%s: no test inputs", inp_path);
    cr_assert_eq(bad, 0, "%s: %d of %d inputs tokenize differently", inp_path, bad, total);
    cr_assert_eq(bad_rt, 0, "%s: %d of %d id lists decode to other text", inp_path, bad_rt, total);
}

static tok_vocab *tt_load(const char *rel) {
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", tt_fix, rel);
    tok_vocab *v;
    apr_error e;
    apr_status st = apr_tok_load_file(p, &v, &e);
    cr_assert_eq(st, APR_OK, "%s: %s", p, e.msg);
    return v;
}

static void tt_gguf_vectors(const char *name) {
    char rel[256], inp[PATH_MAX * 2], out[PATH_MAX * 2];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    tt_need(rel);
    tok_vocab *v = tt_load(rel);
    snprintf(inp, sizeof inp, "%s/%s.inp", tt_fix, rel);
    snprintf(out, sizeof out, "%s/%s.out", tt_fix, rel);
    tt_vectors(v, inp, out);
    apr_tok_free(v);
}

/* tokenizer.json.gz is decompressed by the test into a temporary folder, beside a copy of
 * tokenizer_config.json, and loaded from there. */
static tok_vocab *tt_hf_load(const char *name) {
    char rel[256], cmd[PATH_MAX * 8];
    snprintf(rel, sizeof rel, "vocab/%s/tokenizer.json.gz", name);
    tt_need(rel);
    snprintf(tt_tmp, sizeof tt_tmp, "/tmp/apr-tok-XXXXXX");
    cr_assert(mkdtemp(tt_tmp));
    snprintf(cmd, sizeof cmd, "gzip -dc '%s/%s' > '%s/tokenizer.json' && cp '%s/vocab/%s/tokenizer_config.json' '%s/'",
             tt_fix, rel, tt_tmp, tt_fix, name, tt_tmp);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    tok_vocab *v;
    apr_error e;
    apr_status st = apr_tok_load_hf(tt_tmp, &v, &e);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tt_tmp);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(st, APR_OK, "%s: %s", name, e.msg);
    return v;
}

static void tt_hf_vectors(const char *name) {
    char inp[PATH_MAX * 2], out[PATH_MAX * 2];
    tok_vocab *v = tt_hf_load(name);
    snprintf(inp, sizeof inp, "%s/vocab/%s/tokenizer.inp", tt_fix, name);
    snprintf(out, sizeof out, "%s/vocab/%s/tokenizer.out", tt_fix, name);
    tt_vectors(v, inp, out);
    apr_tok_free(v);
}

TestSuite(tokenizer, .init = tt_find_fixtures, .timeout = 60);

/* ---------------------------------------------------------------- reference vectors */

Test(tokenizer, gguf_llama_spm) { tt_gguf_vectors("llama-spm"); }
Test(tokenizer, gguf_gpt_2) { tt_gguf_vectors("gpt-2"); }
Test(tokenizer, gguf_phi_3) { tt_gguf_vectors("phi-3"); }
Test(tokenizer, gguf_starcoder) { tt_gguf_vectors("starcoder"); }
Test(tokenizer, gguf_deepseek_coder) { tt_gguf_vectors("deepseek-coder"); }
Test(tokenizer, hf_llama3) { tt_hf_vectors("hf-llama3"); }
Test(tokenizer, hf_qwen2) { tt_hf_vectors("hf-qwen2"); }
Test(tokenizer, hf_gpt2) { tt_hf_vectors("hf-gpt2"); }

/* Qwen2's tokenizer.json normalizes to NFC before pre-tokenizing, so text written decomposed
 * gets the ids of its composed form: every fixture input s that is in NFC, given as NFD(s),
 * must give the Hugging Face tokenizer's ids for s. */
Test(tokenizer, hf_qwen2_nfd_input_gets_the_ids_of_its_nfc_form) {
    tok_vocab *v = tt_hf_load("hf-qwen2");
    char inp_path[PATH_MAX * 2], out_path[PATH_MAX * 2];
    snprintf(inp_path, sizeof inp_path, "%s/vocab/hf-qwen2/tokenizer.inp", tt_fix);
    snprintf(out_path, sizeof out_path, "%s/vocab/hf-qwen2/tokenizer.out", tt_fix);
    size_t il;
    char *inp = tu_read_file(inp_path, &il), *outs = tu_read_file(out_path, NULL), *op = outs;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int total = 0, decomposed = 0, bad = 0;
    int32_t ids[4096], want[4096];
    for (char *p = inp, *end; p < inp + il && (end = strstr(p, sep)); p = end + sizeof sep - 1) {
        char *nl = strchr(op, '\n');
        cr_assert(nl, "%s: fewer output lines than inputs", out_path);
        *nl = 0;
        int nw = 0;
        for (char *q = op, *e; nw < 4096; q = e) {
            long x = strtol(q, &e, 10);
            if (e == q) break;
            want[nw++] = (int32_t)x;
        }
        op = nl + 1;
        *end = 0;
        char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)p), *nfd = (char *)utf8proc_NFD((const utf8proc_uint8_t *)p);
        cr_assert(nfc && nfd, "%s: input %d is not valid UTF-8", inp_path, total);
        if (!strcmp(nfc, p)) {
            total++;
            decomposed += strcmp(nfd, p) != 0;
            int64_t got = apr_tok_encode(v, nfd, strlen(nfd), 0, ids, 4096);
            if ((got != nw || memcmp(ids, want, (size_t)nw * sizeof *ids)) && bad++ < 4) {
                char shown[512];
                tt_show(p, strlen(p), shown, sizeof shown);
                cr_log_error("NFD of \"%s\": %lld ids where Hugging Face gives %d", shown, (long long)got, nw);
            }
        }
        free(nfc);
        free(nfd);
    }
    free(inp);
    free(outs);
    cr_assert_gt(decomposed, 0, "no fixture input changes under NFD: the test checks nothing");
    cr_assert_eq(bad, 0, "%d of %d NFD inputs tokenize differently from their NFC form", bad, total);
    /* "café" with U+0301: 2 tokens ("caf" + "é"), as for the composed U+00E9 */
    int32_t a[8], b[8];
    int64_t na = apr_tok_encode(v, "cafe\xCC\x81", 6, 0, a, 8), nb = apr_tok_encode(v, "caf\xC3\xA9", 5, 0, b, 8);
    cr_assert_eq(nb, 2);
    cr_assert_eq(na, nb, "cafe + U+0301 gives %lld tokens, caf\u00e9 %lld", (long long)na, (long long)nb);
    cr_assert_eq(memcmp(a, b, sizeof *a * 2), 0);
    apr_tok_free(v);
}

/* A GGUF vocabulary carries no normalizer, and none is applied: llama.cpp's BPE and SPM sessions
 * tokenize the raw text (its converter writes no normalizer, even for Qwen2's NFC), so a GGUF
 * gives llama.cpp's ids for decomposed text, not the composed form's. */
Test(tokenizer, gguf_applies_no_normalizer) {
    tt_need("vocab/ggml-vocab-gpt-2.gguf");
    tok_vocab *v = tt_load("vocab/ggml-vocab-gpt-2.gguf");
    static const char nfd[] = "cafe\xCC\x81 \xC4\xB0";
    size_t n;
    char *t = apr_tok_normalize(v, nfd, sizeof nfd - 1, &n);
    cr_assert(t && n == sizeof nfd - 1 && !memcmp(t, nfd, n), "a GGUF vocabulary changed the text");
    free(t);
    int32_t a[16], b[16];
    int64_t na = apr_tok_encode(v, nfd, 6, 0, a, 16), nb = apr_tok_encode(v, "caf\xC3\xA9", 5, 0, b, 16);
    cr_assert(na > 0 && nb > 0 && (na != nb || memcmp(a, b, (size_t)na * sizeof *a)), "the GGUF composed cafe + U+0301");
    apr_tok_free(v);
}

/* The loader also reads a folder holding only tokenizer.json.gz (through gzip). */
Test(tokenizer, hf_folder_with_gz) {
    tt_need("vocab/hf-gpt2/tokenizer.json.gz");
    tok_vocab *v = tt_load("vocab/hf-gpt2");
    cr_assert_eq(apr_tok_model_kind(v), TOK_MODEL_BPE);
    cr_assert_eq(apr_tok_n_vocab(v), 50257);
    cr_assert_eq(apr_tok_eos(v), 50256);
    int32_t ids[8];
    cr_assert_eq(apr_tok_encode(v, "Hello world", 11, 0, ids, 8), 2);
    cr_assert_eq(ids[0], 15496);
    cr_assert_eq(ids[1], 995);
    apr_tok_free(v);
}

/* ---------------------------------------------------------------- specials and flags */

Test(tokenizer, spm_bos_and_special_parsing) {
    tt_need("vocab/ggml-vocab-llama-spm.gguf");
    tok_vocab *v = tt_load("vocab/ggml-vocab-llama-spm.gguf");
    cr_assert_eq(apr_tok_bos(v), 1);
    cr_assert_eq(apr_tok_eos(v), 2);
    cr_assert(apr_tok_add_bos(v));
    int32_t ids[32];
    int64_t n = apr_tok_encode(v, "Hello world", 11, TOK_ADD_SPECIAL, ids, 32);
    cr_assert_eq(n, 3);
    cr_assert_eq(ids[0], 1);
    /* "<s>" is text unless special parsing is asked for */
    n = apr_tok_encode(v, "<s>Hi", 5, 0, ids, 32);
    cr_assert_gt(n, 2);
    n = apr_tok_encode(v, "<s>Hi", 5, TOK_PARSE_SPECIAL, ids, 32);
    cr_assert_eq(ids[0], 1);
    int32_t hi[8];
    cr_assert_eq(apr_tok_encode(v, "Hi", 2, 0, hi, 8), n - 1);
    cr_assert_eq(memcmp(ids + 1, hi, (size_t)(n - 1) * sizeof *hi), 0);
    /* a too-small array gets the count anyway */
    cr_assert_eq(apr_tok_encode(v, "Hello world", 11, 0, ids, 1), 2);
    apr_tok_free(v);
}

/* A long input stays fast (the merge loop is O(n log n)) and round-trips. */
Test(tokenizer, long_input) {
    tt_need("vocab/ggml-vocab-llama-spm.gguf");
    tt_need("vocab/ggml-vocab-gpt-2.gguf");
    const char *models[] = {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-gpt-2.gguf"};
    size_t n = 200000;
    char *text = malloc(n + 1);
    for (size_t i = 0; i < n; i++) text[i] = "ab  cdefg\nhij \xC3\xA9 klm"[i % 21];
    text[n] = 0;
    n = strlen(text);   /* keep the é whole at the end */
    while (n && ((unsigned char)text[n - 1] & 0xC0) == 0x80) n--;
    if (n && (unsigned char)text[n - 1] >= 0xC0) n--;
    for (int m = 0; m < 2; m++) {
        tok_vocab *v = tt_load(models[m]);
        int64_t k = apr_tok_encode(v, text, n, 0, NULL, 0);
        cr_assert_gt(k, 0);
        int32_t *ids = malloc((size_t)k * sizeof *ids);
        cr_assert_eq(apr_tok_encode(v, text, n, 0, ids, k), k);
        size_t dl;
        char *dec = apr_tok_decode(v, ids, (size_t)k, TOK_DECODE_STRIP_FIRST, &dl);
        cr_assert(dec && dl == n && !memcmp(dec, text, n), "%s: a long text does not round-trip", models[m]);
        free(dec);
        free(ids);
        apr_tok_free(v);
    }
    free(text);
}

/* ---------------------------------------------------------------- decoding */

/* stories260K's published greedy generation: BOS + the generated ids decode to its text. */
Test(tokenizer, stories260k_expected_generation) {
    tt_need("stories260K/stories260K.gguf");
    tt_need("stories260K/expected_generation.json");
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/stories260K/expected_generation.json", tt_fix);
    char *js = tu_read_file(p, NULL);
    cJSON *root = cJSON_Parse(js);
    cr_assert(root, "%s: not JSON", p);
    tok_vocab *v = tt_load("stories260K/stories260K.gguf");
    cr_assert_eq(apr_tok_n_vocab(v), 512);
    cr_assert_eq(apr_tok_model_kind(v), TOK_MODEL_SPM);
    int cases = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const cJSON *start = cJSON_GetObjectItem(c, "start_ids"), *gen = cJSON_GetObjectItem(c, "generated_ids");
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(c, "text"));
        cr_assert(start && gen && text);
        size_t n = 0;
        int32_t ids[1024];
        const cJSON *x;
        cJSON_ArrayForEach(x, start) ids[n++] = x->valueint;
        cJSON_ArrayForEach(x, gen) if (n < 1024) ids[n++] = x->valueint;
        size_t dl;
        char *dec = tt_stream_decode(v, ids, n, 0, &dl);
        cr_assert_str_eq(dec, text, "case %d decodes differently", cases);
        char *all = apr_tok_decode(v, ids, n, 0, NULL);
        cr_assert_str_eq(all, text);
        free(all);
        free(dec);
        cases++;
    }
    cr_assert_gt(cases, 0);
    apr_tok_free(v);
    cJSON_Delete(root);
    free(js);
}

static const char *tt_push(tok_stream *s, const tok_vocab *v, const char *piece) {
    int32_t id = apr_tok_find(v, piece, strlen(piece));
    cr_assert_geq(id, 0, "no token %s", piece);
    size_t l;
    const char *t = apr_tok_stream_push(s, id, &l);
    cr_assert(tt_valid_utf8(t, l));
    return t;
}

/* Byte-fallback tokens that split one character: nothing comes out until the last byte. */
Test(tokenizer, stream_split_character) {
    tt_need("stories260K/stories260K.gguf");
    tok_vocab *v = tt_load("stories260K/stories260K.gguf");
    tok_stream *s = apr_tok_stream_new(v, 0);
    /* U+1F999 🦙 = F0 9F A6 99, then "é" = C3 A9 */
    cr_assert_str_eq(tt_push(s, v, "<0xF0>"), "");
    cr_assert_str_eq(tt_push(s, v, "<0x9F>"), "");
    cr_assert_str_eq(tt_push(s, v, "<0xA6>"), "");
    cr_assert_str_eq(tt_push(s, v, "<0x99>"), "\xF0\x9F\xA6\x99");
    cr_assert_str_eq(tt_push(s, v, "<0xC3>"), "");
    cr_assert_str_eq(tt_push(s, v, "<0xA9>"), "\xC3\xA9");
    /* a byte that can never start a character, and a broken sequence, become U+FFFD */
    cr_assert_str_eq(tt_push(s, v, "<0xFF>"), "\xEF\xBF\xBD");
    cr_assert_str_eq(tt_push(s, v, "<0xE2>"), "");
    cr_assert_str_eq(tt_push(s, v, "<0x41>"), "\xEF\xBF\xBD" "A");
    /* an unfinished character at the end comes out as U+FFFD on flush */
    cr_assert_str_eq(tt_push(s, v, "<0xE2>"), "");
    cr_assert_str_eq(tt_push(s, v, "<0x82>"), "");
    size_t l;
    cr_assert_str_eq(apr_tok_stream_flush(s, &l), "\xEF\xBF\xBD");
    cr_assert_eq(l, 3);
    /* the leading space of the piece after BOS is dropped, later ones are kept */
    size_t k;
    apr_tok_stream_push(s, apr_tok_bos(v), &k);
    cr_assert_eq(k, 0);
    int32_t ids[16];
    int64_t n = apr_tok_encode(v, "Once upon", 9, 0, ids, 16);
    cr_assert_gt(n, 1);
    char got[64] = "";
    for (int64_t i = 0; i < n; i++) strcat(got, apr_tok_stream_push(s, ids[i], NULL));
    cr_assert_str_eq(got, "Once upon");
    apr_tok_stream_free(s);
    apr_tok_free(v);
}

Test(tokenizer, bad_inputs) {
    tok_vocab *v;
    apr_error e;
    cr_assert_eq(apr_tok_load_file("/nonexistent/tokenizer", &v, &e), APR_ERR_NOT_FOUND);
    cr_assert(strstr(e.msg, "/nonexistent/tokenizer"), "%s", e.msg);
    tt_need("stories260K/stories260K.gguf");
    v = tt_load("stories260K/stories260K.gguf");
    cr_assert_null(apr_tok_piece(v, 512));
    cr_assert_eq(apr_tok_token_bytes(v, -1, 0, NULL, 0), -1);
    size_t l = 99;
    tok_stream *s = apr_tok_stream_new(v, 0);
    cr_assert_str_eq(apr_tok_stream_push(s, 100000, &l), "");
    cr_assert_eq(l, 0);
    /* invalid UTF-8 in the text is tokenized (byte fallback), never rejected */
    int32_t ids[16];
    cr_assert_gt(apr_tok_encode(v, "\xFF\xFE" "a", 3, 0, ids, 16), 0);
    apr_tok_stream_free(s);
    apr_tok_free(v);
}

/* ---------------------------------------------------------------- SentencePiece-style tokenizer.json */

typedef struct tt_merge {
    float score;                 /* the score of the joined piece: higher merges first */
    int32_t left, right;         /* ids of the two pieces */
} tt_merge;

static int tt_merge_cmp(const void *a, const void *b) {
    const tt_merge *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->left != y->left ? (x->left > y->left) - (x->left < y->left) : (x->right > y->right) - (x->right < y->right);
}

/* Writes dir/tokenizer.json the way Hugging Face converts a SentencePiece BPE model (Llama 2,
 * Mistral): the pieces as vocab, every split of a piece into two pieces as a merge, ordered by the
 * joined piece's score, byte fallback, and the Prepend + Replace normalizer. */
static void tt_write_spm_json(const tok_vocab *v, const char *dir) {
    int32_t n = apr_tok_n_vocab(v);
    size_t cap = 1 << 16, nm = 0;
    tt_merge *m = malloc(cap * sizeof *m);
    cr_assert(m);
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "byte_fallback", true);
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab"), *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int32_t id = 0; id < n; id++) {
        const char *p = apr_tok_piece(v, id);
        tok_type t = apr_tok_token_type(v, id);
        cJSON_AddNumberToObject(vocab, p, id);
        if (t == TOK_TYPE_CONTROL || t == TOK_TYPE_UNKNOWN) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", id);
            cJSON_AddStringToObject(a, "content", p);
            cJSON_AddBoolToObject(a, "special", true);
            cJSON_AddItemToArray(added, a);
        }
        if (t != TOK_TYPE_NORMAL) continue;
        size_t len = strlen(p);
        for (size_t cut = 1; cut < len; cut++) {
            if (((unsigned char)p[cut] & 0xc0) == 0x80) continue; /* inside a character */
            int32_t l = apr_tok_find(v, p, cut), r = apr_tok_find(v, p + cut, len - cut);
            if (l < 0 || r < 0) continue;
            if (nm == cap) cr_assert((m = realloc(m, (cap *= 2) * sizeof *m)));
            m[nm++] = (tt_merge){v->score[id], l, r};
        }
    }
    qsort(m, nm, sizeof *m, tt_merge_cmp);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (size_t i = 0; i < nm; i++) {
        const char *l = apr_tok_piece(v, m[i].left), *r = apr_tok_piece(v, m[i].right);
        char *s = malloc(strlen(l) + strlen(r) + 2);
        cr_assert(s);
        sprintf(s, "%s %s", l, r);
        cJSON_AddItemToArray(merges, cJSON_CreateString(s));
        free(s);
    }
    free(m);
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer"), *steps = cJSON_AddArrayToObject(norm, "normalizers");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON *pre = cJSON_CreateObject(), *rep = cJSON_CreateObject(), *pat = cJSON_AddObjectToObject(rep, "pattern");
    cJSON_AddStringToObject(pre, "type", "Prepend");
    cJSON_AddStringToObject(pre, "prepend", "\xe2\x96\x81");
    cJSON_AddStringToObject(rep, "type", "Replace");
    cJSON_AddStringToObject(pat, "String", " ");
    cJSON_AddStringToObject(rep, "content", "\xe2\x96\x81");
    cJSON_AddItemToArray(steps, pre);
    cJSON_AddItemToArray(steps, rep);
    cJSON_AddNullToObject(root, "pre_tokenizer");
    char *js = cJSON_PrintUnformatted(root), path[PATH_MAX + 32];
    cr_assert(js);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *fp = fopen(path, "w");
    cr_assert(fp && fputs(js, fp) >= 0 && fclose(fp) == 0, "cannot write %s", path);
    free(js);
    cJSON_Delete(root);
}

/* A Llama 2 / Mistral Hugging Face folder carries its SentencePiece model as a BPE tokenizer.json
 * with byte fallback; built here from the GGUF vocab, it must give the GGUF's reference ids. */
Test(tokenizer, hf_sentencepiece_style_json_matches_the_gguf_vectors) {
    tt_need("vocab/ggml-vocab-llama-spm.gguf");
    tok_vocab *g = tt_load("vocab/ggml-vocab-llama-spm.gguf");
    char dir[] = "/tmp/apr-tok-spm-XXXXXX", inp[PATH_MAX * 2], out[PATH_MAX * 2], cmd[PATH_MAX];
    cr_assert(mkdtemp(dir));
    tt_write_spm_json(g, dir);
    tok_vocab *v;
    apr_error e;
    apr_status st = apr_tok_load_hf(dir, &v, &e);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(st, APR_OK, "%s", e.msg);
    cr_expect_eq(apr_tok_model_kind(v), TOK_MODEL_SPM);
    cr_expect_eq(apr_tok_n_vocab(v), apr_tok_n_vocab(g));
    cr_expect_eq(apr_tok_bos(v), apr_tok_bos(g));
    cr_expect_eq(apr_tok_token_type(v, apr_tok_find(v, "<0x0A>", 6)), TOK_TYPE_BYTE);
    snprintf(inp, sizeof inp, "%s/vocab/ggml-vocab-llama-spm.gguf.inp", tt_fix);
    snprintf(out, sizeof out, "%s/vocab/ggml-vocab-llama-spm.gguf.out", tt_fix);
    tt_vectors(v, inp, out);
    apr_tok_free(v);
    apr_tok_free(g);
}

/* test_bpetrain.c — apr_bpe_train (llm/bpe_train.h): merges checked by hand on a tiny corpus and
 * against a slow trainer written here (every pair recounted from scratch at every step), the
 * vocabulary written to a vocab-only GGUF and loaded by apr's tokenizer, whose encoding must be
 * what the merges imply (an independent greedy BPE here: this file's own PCRE2 split, byte map
 * and rank lookup) and whose decoding must give back any UTF-8 text; determinism, the requested
 * size, a corpus too small for it, bad arguments; and, when Debian's bible-kjv-text is installed,
 * the whole King James Bible to 4096 tokens. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bpe_train.h"
#include "tokenizer.h"

/* ---------------------------------------------------------------- a string -> int map */

typedef struct bp_map {
    char **key;
    size_t *klen;
    int32_t *val;
    size_t cap, n;
} bp_map;

static uint64_t bp_hash(const char *s, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static void bp_map_put(bp_map *m, const char *k, size_t n, int32_t v);

static void bp_map_grow(bp_map *m) {
    bp_map o = *m;
    m->cap = o.cap ? o.cap * 2 : 256;
    m->n = 0;
    m->key = calloc(m->cap, sizeof *m->key);
    m->klen = calloc(m->cap, sizeof *m->klen);
    m->val = calloc(m->cap, sizeof *m->val);
    cr_assert(m->key && m->klen && m->val);
    for (size_t i = 0; i < o.cap; i++)
        if (o.key[i]) { bp_map_put(m, o.key[i], o.klen[i], o.val[i]); free(o.key[i]); }
    free(o.key);
    free(o.klen);
    free(o.val);
}

static int32_t *bp_map_slot(bp_map *m, const char *k, size_t n, bool add) {
    if (add && (m->n + 1) * 2 > m->cap) bp_map_grow(m);
    if (!m->cap) return NULL;
    for (size_t h = bp_hash(k, n) & (m->cap - 1);; h = (h + 1) & (m->cap - 1)) {
        if (!m->key[h]) {
            if (!add) return NULL;
            m->key[h] = malloc(n + 1);
            memcpy(m->key[h], k, n);
            m->key[h][n] = 0;
            m->klen[h] = n;
            m->n++;
            return &m->val[h];
        }
        if (m->klen[h] == n && !memcmp(m->key[h], k, n)) return &m->val[h];
    }
}

/* Sets k -> v unless k is there already (the first value stays). */
static void bp_map_put(bp_map *m, const char *k, size_t n, int32_t v) {
    size_t before = m->n;
    int32_t *s = bp_map_slot(m, k, n, true);
    if (m->n != before) *s = v;
}

static int32_t bp_map_get(const bp_map *m, const char *k, size_t n) {
    int32_t *s = bp_map_slot((bp_map *)m, k, n, false);
    return s ? *s : -1;
}

static void bp_map_free(bp_map *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->key[i]);
    free(m->key);
    free(m->klen);
    free(m->val);
}

/* ---------------------------------------------------------------- GPT-2's byte map and split, again */

/* The character GPT-2's bytes_to_unicode gives byte b, as UTF-8 into out; its length. */
static int bp_byte_char(unsigned b, char *out) {
    bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    unsigned cp = b;
    if (!direct) {
        unsigned k = 0;
        for (unsigned c = 0; c < b; c++)
            k += !((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF));
        cp = 256 + k;
    }
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

#define BP_GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef struct bp_piece { size_t off, len; } bp_piece;

/* text split by the GPT-2 regex into its matches and the gaps between them; *n pieces. */
static bp_piece *bp_split(const char *text, size_t len, size_t *n) {
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)BP_GPT2_RE, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                                   &code, &at, NULL);
    cr_assert(re);
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    size_t cap = 1024, k = 0, pos = 0, last = 0;
    bp_piece *p = malloc(cap * sizeof *p);
#define BP_ADD(o, l) do { if (l) { if (k == cap) p = realloc(p, (cap *= 2) * sizeof *p); p[k++] = (bp_piece){o, l}; } } while (0)
    while (pos < len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)text, len, pos, 0, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] <= ov[0]) {
            pos = ov[0] + 1;
            while (pos < len && ((uint8_t)text[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        BP_ADD(last, ov[0] - last);
        BP_ADD(ov[0], ov[1] - ov[0]);
        last = pos = ov[1];
    }
    BP_ADD(last, len - last);
#undef BP_ADD
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    *n = k;
    return p;
}

/* ---------------------------------------------------------------- greedy BPE by rank */

typedef struct bp_ref {
    bp_map rank;      /* "left right" -> rank */
    bp_map id;        /* token text -> id */
} bp_ref;

static bp_ref bp_ref_new(const apr_bpe_vocab *v) {
    bp_ref r = {0};
    for (int32_t i = 0; i < v->n_merges; i++) bp_map_put(&r.rank, v->merges[i], strlen(v->merges[i]), i);
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->token_type[i] != TOK_TYPE_CONTROL) bp_map_put(&r.id, v->tokens[i], strlen(v->tokens[i]), i);
    return r;
}

static void bp_ref_free(bp_ref *r) {
    bp_map_free(&r->rank);
    bp_map_free(&r->id);
}

/* Appends to ids the tokens of one piece: its bytes' characters, then the adjacent pair of lowest
 * rank merged (leftmost on ties) until no pair has a merge. */
static void bp_ref_piece(const bp_ref *r, const char *s, size_t n, int32_t *ids, size_t *k) {
    char **sym = malloc(n * sizeof *sym);
    size_t m = n;
    for (size_t i = 0; i < n; i++) {
        sym[i] = calloc(3, 1);
        bp_byte_char((uint8_t)s[i], sym[i]);
    }
    char buf[4096];
    for (;;) {
        int32_t best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            int l = snprintf(buf, sizeof buf, "%s %s", sym[i], sym[i + 1]);
            cr_assert(l < (int)sizeof buf);
            int32_t rk = bp_map_get(&r->rank, buf, (size_t)l);
            if (rk >= 0 && (best < 0 || rk < best)) { best = rk; at = i; }
        }
        if (best < 0) break;
        char *joined = malloc(strlen(sym[at]) + strlen(sym[at + 1]) + 1);
        strcpy(joined, sym[at]);
        strcat(joined, sym[at + 1]);
        free(sym[at]);
        free(sym[at + 1]);
        sym[at] = joined;
        memmove(sym + at + 1, sym + at + 2, (m - at - 2) * sizeof *sym);
        m--;
    }
    for (size_t i = 0; i < m; i++) {
        int32_t id = bp_map_get(&r->id, sym[i], strlen(sym[i]));
        cr_assert(id >= 0, "no token for '%s'", sym[i]);
        ids[(*k)++] = id;
        free(sym[i]);
    }
    free(sym);
}

/* The ids the merges of v imply for text (no BOS); *n of them. */
static int32_t *bp_ref_encode(const apr_bpe_vocab *v, const char *text, size_t len, size_t *n) {
    bp_ref r = bp_ref_new(v);
    size_t np, k = 0;
    bp_piece *p = bp_split(text, len, &np);
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    for (size_t i = 0; i < np; i++) bp_ref_piece(&r, text + p[i].off, p[i].len, ids, &k);
    free(p);
    bp_ref_free(&r);
    *n = k;
    return ids;
}

/* ---------------------------------------------------------------- the slow trainer */

/* Merges learned by recounting every pair of every word at every step: the same rules as
 * apr_bpe_train (most frequent pair, lowest (left, right) ids on ties, never a pair twice, a text
 * already a token reuses it, never a second "<s>" / "</s>" / "<pad>"), none of its machinery. */
static char **bp_slow_train(const char *text, size_t len, int32_t vocab_size, int32_t n_special, int32_t *n_merges,
                            int64_t **counts) {
    size_t np;
    bp_piece *p = bp_split(text, len, &np);
    bp_map wmap = {0};
    size_t nw = 0;
    int32_t **w = malloc((np + 1) * sizeof *w);
    size_t *wn = malloc((np + 1) * sizeof *wn);
    int64_t *wf = calloc(np + 1, sizeof *wf);
    for (size_t i = 0; i < np; i++) {
        int32_t at = bp_map_get(&wmap, text + p[i].off, p[i].len);
        if (at >= 0) { wf[at]++; continue; }
        bp_map_put(&wmap, text + p[i].off, p[i].len, (int32_t)nw);
        w[nw] = malloc(p[i].len * sizeof **w);
        for (size_t k = 0; k < p[i].len; k++) w[nw][k] = n_special + (uint8_t)text[p[i].off + k];
        wn[nw] = p[i].len;
        wf[nw++] = 1;
    }
    int32_t V = vocab_size;
    char **raw = calloc((size_t)V, sizeof *raw);   /* raw bytes of each token (NUL-free corpora here) */
    for (int32_t b = 0; b < 256; b++) { raw[n_special + b] = calloc(2, 1); raw[n_special + b][0] = (char)b; }
    int32_t nt = n_special + 256;
    int64_t *cnt = malloc((size_t)V * (size_t)V * sizeof *cnt);
    bool *done = calloc((size_t)V * (size_t)V, 1);
    char **merges = malloc((size_t)V * sizeof *merges);
    *counts = malloc((size_t)V * sizeof **counts);
    int32_t nm = 0;
    while (nt < V) {
        memset(cnt, 0, (size_t)V * (size_t)V * sizeof *cnt);
        for (size_t i = 0; i < nw; i++)
            for (size_t k = 0; k + 1 < wn[i]; k++) cnt[(size_t)w[i][k] * (size_t)V + (size_t)w[i][k + 1]] += wf[i];
        int64_t best = 0;
        int32_t bl = -1, br = -1;
        for (int32_t l = 0; l < nt; l++)
            for (int32_t r = 0; r < nt; r++) {
                int64_t c = cnt[(size_t)l * (size_t)V + (size_t)r];
                if (c > best && !done[(size_t)l * (size_t)V + (size_t)r]) { best = c; bl = l; br = r; }
            }
        if (bl < 0) break;
        done[(size_t)bl * (size_t)V + (size_t)br] = true;
        char *cat = malloc(strlen(raw[bl]) + strlen(raw[br]) + 1);
        strcpy(cat, raw[bl]);
        strcat(cat, raw[br]);
        if (!strcmp(cat, "<s>") || !strcmp(cat, "</s>") || !strcmp(cat, "<pad>")) { free(cat); continue; }
        int32_t x = -1;
        for (int32_t t = n_special; t < nt && x < 0; t++)
            if (!strcmp(raw[t], cat)) x = t;
        if (x < 0) raw[x = nt++] = cat;
        else free(cat);
        /* the merge as GPT-2 text */
        char buf[1024], *o = buf;
        for (const char *c = raw[bl]; *c; c++) o += bp_byte_char((uint8_t)*c, o);
        *o++ = ' ';
        for (const char *c = raw[br]; *c; c++) o += bp_byte_char((uint8_t)*c, o);
        *o = 0;
        (*counts)[nm] = best;
        merges[nm++] = strdup(buf);
        for (size_t i = 0; i < nw; i++) {
            size_t j = 0;
            for (size_t k = 0; k < wn[i]; j++) {
                if (k + 1 < wn[i] && w[i][k] == bl && w[i][k + 1] == br) { w[i][j] = x; k += 2; }
                else w[i][j] = w[i][k++];
            }
            wn[i] = j;
        }
    }
    for (size_t i = 0; i < nw; i++) free(w[i]);
    for (int32_t t = 0; t < V; t++) free(raw[t]);
    free(w); free(wn); free(wf); free(raw); free(cnt); free(done); free(p);
    bp_map_free(&wmap);
    *n_merges = nm;
    return merges;
}

/* ---------------------------------------------------------------- corpora and helpers */

static uint64_t bp_rng = 88172645463325252ull;
static uint32_t bp_rand(void) {
    bp_rng ^= bp_rng << 13;
    bp_rng ^= bp_rng >> 7;
    bp_rng ^= bp_rng << 17;
    return (uint32_t)(bp_rng >> 11);
}

/* About n bytes of word-like text: syllables, spaces, punctuation, digits, newlines, some UTF-8. */
static char *bp_corpus(size_t n, uint64_t seed, size_t *len) {
    static const char *const syl[] = {"th", "e", "an", "d", "in", "er", "o", "s", "a", "t", "re", "ou", "ing", "l", "y",
                                      "é", "日本", "语", "ß", "ö"};
    static const char *const sep[] = {" ", " ", " ", " ", ", ", ". ", "\n", "; ", " 12", " 7", "! ", "'s ", "\n\n", "  "};
    bp_rng = seed;
    char *t = malloc(n + 64);
    size_t k = 0;
    while (k < n) {
        int ns = 1 + (int)(bp_rand() % 4);
        for (int i = 0; i < ns; i++) {
            uint32_t r = bp_rand() % 100;
            const char *s = syl[r < 90 ? r % 15 : 15 + r % 5];
            k += (size_t)sprintf(t + k, "%s", s);
        }
        k += (size_t)sprintf(t + k, "%s", sep[bp_rand() % (sizeof sep / sizeof sep[0])]);
    }
    *len = k;
    return t;
}

static apr_bpe_vocab *bp_train(const char *text, size_t len, int32_t vocab_size, bool pad) {
    apr_bpe_options o = {.vocab_size = vocab_size, .pad = pad};
    apr_bpe_vocab *v = NULL;
    apr_error e;
    apr_status st = apr_bpe_train(text, len, &o, &v, &e);
    cr_assert_eq(st, APR_OK, "apr_bpe_train: %s", e.msg);
    cr_assert(v);
    return v;
}

static char bp_dir[64];

static void bp_tmp(void) {
    snprintf(bp_dir, sizeof bp_dir, "/tmp/apr-bpetrain-XXXXXX");
    cr_assert(mkdtemp(bp_dir), "mkdtemp: %s", strerror(errno));
}

static void bp_untmp(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/vocab.gguf", bp_dir);
    unlink(p);
    rmdir(bp_dir);
}

/* v written as a vocab-only GGUF and loaded by apr's tokenizer. */
static tok_vocab *bp_load(const apr_bpe_vocab *v) {
    char p[128];
    apr_error e;
    snprintf(p, sizeof p, "%s/vocab.gguf", bp_dir);
    cr_assert_eq(apr_bpe_write_gguf(v, p, &e), APR_OK, "apr_bpe_write_gguf: %s", e.msg);
    tok_vocab *tv;
    cr_assert_eq(apr_tok_load_file(p, &tv, &e), APR_OK, "apr_tok_load_file: %s", e.msg);
    return tv;
}

static int32_t *bp_encode(const tok_vocab *tv, const char *s, size_t len, unsigned flags, size_t *n) {
    int32_t *ids = malloc((len + 3) * sizeof *ids);
    int64_t k = apr_tok_encode(tv, s, len, flags, ids, (int64_t)len + 3);
    cr_assert(k >= 0 && k <= (int64_t)len + 2, "apr_tok_encode: %lld", (long long)k);
    *n = (size_t)k;
    return ids;
}

/* apr's encoding of text is what the merges imply, and decodes back to text. */
static void bp_check_text(const apr_bpe_vocab *v, const tok_vocab *tv, const char *text, size_t len, size_t *n_ids) {
    size_t n, nr;
    int32_t *ids = bp_encode(tv, text, len, 0, &n);
    int32_t *ref = bp_ref_encode(v, text, len, &nr);
    cr_assert_eq(n, nr, "apr_tok_encode gave %zu tokens, the merges imply %zu", n, nr);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ids[i], ref[i], "token %zu: apr_tok_encode %d ('%s'), the merges imply %d ('%s')", i, ids[i],
                     v->tokens[ids[i]], ref[i], v->tokens[ref[i]]);
    size_t dl;
    char *d = apr_tok_decode(tv, ids, n, 0, &dl);
    cr_assert(d);
    cr_assert(dl == len && !memcmp(d, text, len), "decode(encode(text)) differs (%zu bytes for %zu)", dl, len);
    free(d);
    free(ids);
    free(ref);
    if (n_ids) *n_ids = n;
}

static bool bp_same(const apr_bpe_vocab *a, const apr_bpe_vocab *b) {
    if (a->n_tokens != b->n_tokens || a->n_merges != b->n_merges) return false;
    for (int32_t i = 0; i < a->n_tokens; i++)
        if (strcmp(a->tokens[i], b->tokens[i]) || a->token_type[i] != b->token_type[i]) return false;
    for (int32_t i = 0; i < a->n_merges; i++)
        if (strcmp(a->merges[i], b->merges[i]) || a->merge_count[i] != b->merge_count[i]) return false;
    return true;
}

static void bp_unique_texts(const apr_bpe_vocab *v) {
    bp_map m = {0};
    for (int32_t i = 0; i < v->n_tokens; i++) {
        cr_assert_eq(bp_map_get(&m, v->tokens[i], strlen(v->tokens[i])), -1, "token %d '%s' is also token %d", i,
                     v->tokens[i], bp_map_get(&m, v->tokens[i], strlen(v->tokens[i])));
        bp_map_put(&m, v->tokens[i], strlen(v->tokens[i]), i);
    }
    bp_map_free(&m);
}

TestSuite(bpetrain, .timeout = 600);

/* ---------------------------------------------------------------- merges by hand */

/* Pieces "ab", " ab" x2, " cd" x2. Pairs: (a,b) 3, (Ġ,a) 2, (Ġ,c) 2, (c,d) 2 -> "a b" first. Then
 * (Ġ,ab) 2 [ids 34, 258], (Ġ,c) 2 [34, 101], (c,d) 2 [101, 102]: the lowest pair is (Ġ,c). Then
 * (Ġ,ab) [34, 258] before (Ġc,d) [259, 102], then (Ġc,d); nothing is left after 4 merges. */
Test(bpetrain, merges_by_hand) {
    const char *text = "ab ab ab cd cd";
    for (int pad = 0; pad <= 1; pad++) {
        apr_bpe_vocab *v = bp_train(text, strlen(text), 1000, pad);
        static const char *const want[] = {"a b", "Ġ c", "Ġ ab", "Ġc d"};
        static const int64_t want_count[] = {3, 2, 2, 2};
        cr_assert_eq(v->n_merges, 4);
        for (int i = 0; i < 4; i++) {
            cr_expect_str_eq(v->merges[i], want[i], "merge %d", i);
            cr_expect_eq(v->merge_count[i], want_count[i], "merge %d count", i);
        }
        int32_t s = pad ? 3 : 2;
        cr_assert_eq(v->n_special, s);
        cr_assert_eq(v->n_tokens, s + 256 + 4);
        cr_expect_str_eq(v->tokens[0], "<s>");
        cr_expect_str_eq(v->tokens[1], "</s>");
        if (pad) cr_expect_str_eq(v->tokens[2], "<pad>");
        cr_expect_eq(v->bos, 0);
        cr_expect_eq(v->eos, 1);
        cr_expect_eq(v->pad, pad ? 2 : -1);
        cr_expect_str_eq(v->tokens[s + 'a'], "a");
        cr_expect_str_eq(v->tokens[s + ' '], "Ġ");
        cr_expect_str_eq(v->tokens[s + '\n'], "Ċ");
        cr_expect_str_eq(v->tokens[s + 0], "Ā");
        cr_expect_str_eq(v->tokens[s + 0xFF], "ÿ");
        static const char *const made[] = {"ab", "Ġc", "Ġab", "Ġcd"};
        for (int i = 0; i < 4; i++) cr_expect_str_eq(v->tokens[s + 256 + i], made[i]);
        for (int32_t i = 0; i < v->n_tokens; i++)
            cr_expect_eq(v->token_type[i], i < s ? TOK_TYPE_CONTROL : TOK_TYPE_NORMAL, "type of token %d", i);
        /* ran out of pairs: still a result, and it says so */
        cr_expect(!v->complete);
        cr_expect_eq(v->n_requested, 1000);
        cr_expect(strstr(v->note, "262") || strstr(v->note, "263"), "note: %s", v->note);
        cr_expect(strstr(v->note, "4 merges"), "note: %s", v->note);
        cr_expect_eq(v->n_pieces, 5);
        cr_expect_eq(v->n_words, 3);
        cr_expect_str_eq(v->pre, "gpt-2");
        apr_bpe_free(v);
    }
}

/* min_count: with 3, only "a b" (3 occurrences) qualifies. */
Test(bpetrain, min_count) {
    const char *text = "ab ab ab cd cd";
    apr_bpe_options o = {.vocab_size = 1000, .min_count = 3};
    apr_bpe_vocab *v;
    apr_error e;
    cr_assert_eq(apr_bpe_train(text, strlen(text), &o, &v, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(v->n_merges, 1);
    cr_expect_str_eq(v->merges[0], "a b");
    cr_expect(strstr(v->note, "at least 3 times") && strstr(v->note, "after 1 merges"), "note: %s", v->note);
    apr_bpe_free(v);
}

/* A vocabulary of exactly the size asked for stops there: the first merges are those of a
 * larger one, and the result says it is complete. */
Test(bpetrain, exact_size) {
    size_t len;
    char *text = bp_corpus(20000, 7, &len);
    apr_bpe_vocab *big = bp_train(text, len, 2 + 256 + 300, false);
    apr_bpe_vocab *v = bp_train(text, len, 2 + 256 + 100, false);
    cr_assert(big->complete, "%s", big->note);
    cr_assert_eq(big->n_tokens, 2 + 256 + 300);
    cr_assert(v->complete, "%s", v->note);
    cr_assert_eq(v->n_tokens, 2 + 256 + 100);
    cr_expect_str_eq(v->note, "");
    cr_assert(v->n_merges >= 100);
    for (int32_t i = 0; i < v->n_merges; i++) cr_assert_str_eq(v->merges[i], big->merges[i]);
    for (int32_t i = 0; i < v->n_tokens; i++) cr_assert_str_eq(v->tokens[i], big->tokens[i]);
    for (int32_t i = 1; i < big->n_merges; i++)   /* a new pair never occurs more often than the pair merged */
        cr_assert(big->merge_count[i] <= big->merge_count[i - 1], "merge %d: count %lld after %lld", i,
                  (long long)big->merge_count[i], (long long)big->merge_count[i - 1]);
    bp_unique_texts(big);
    apr_bpe_free(v);
    apr_bpe_free(big);
    free(text);
}

/* Runs of one or two letters and of symbols, where merge sites touch ("a a a a", "ab ab ab"). */
static char *bp_runs(size_t n, uint64_t seed, size_t *len) {
    static const char *const unit[] = {"a", "b", "ab", "ba", "=", "-=", "aab"};
    bp_rng = seed;
    char *t = malloc(n + 256);
    size_t k = 0;
    while (k < n) {
        const char *u = unit[bp_rand() % 7];
        int reps = 1 + (int)(bp_rand() % 12);
        for (int i = 0; i < reps; i++) k += (size_t)sprintf(t + k, "%s", u);
        k += (size_t)sprintf(t + k, "%s", bp_rand() % 3 ? " " : "\n");
    }
    *len = k;
    return t;
}

/* The incremental trainer learns exactly what recounting every pair at every step learns. */
Test(bpetrain, against_slow_trainer) {
    for (uint64_t seed = 1; seed <= 5; seed++) {
        size_t len;
        char *text = seed <= 3 ? bp_corpus(8000 * seed, seed * 977, &len) : bp_runs(1500, seed, &len);
        int32_t want = 2 + 256 + (seed <= 3 ? 150 * (int32_t)seed : 600);   /* the runs: until no pair is left */
        apr_bpe_vocab *v = bp_train(text, len, want, seed == 2);
        int32_t nm;
        int64_t *counts;
        char **m = bp_slow_train(text, len, want, seed == 2 ? 3 : 2, &nm, &counts);
        cr_assert_eq(v->n_merges, nm, "seed %llu: %d merges, the slow trainer %d", (unsigned long long)seed, v->n_merges, nm);
        if (seed > 3) cr_assert(!v->complete && nm > 50, "seed %llu: %d merges", (unsigned long long)seed, nm);
        for (int32_t i = 0; i < nm; i++) {
            cr_assert_str_eq(v->merges[i], m[i], "seed %llu merge %d", (unsigned long long)seed, i);
            cr_assert_eq(v->merge_count[i], counts[i], "seed %llu merge %d ('%s') count", (unsigned long long)seed, i, m[i]);
            free(m[i]);
        }
        free(m);
        free(counts);
        apr_bpe_free(v);
        free(text);
    }
}

Test(bpetrain, deterministic) {
    size_t len;
    char *text = bp_corpus(30000, 42, &len);
    apr_bpe_vocab *a = bp_train(text, len, 700, true), *b = bp_train(text, len, 700, true);
    cr_assert(bp_same(a, b), "two runs on the same text differ");
    apr_bpe_free(a);
    apr_bpe_free(b);
    free(text);
}

/* ---------------------------------------------------------------- through a GGUF file */

Test(bpetrain, gguf_keys, .init = bp_tmp, .fini = bp_untmp) {
    size_t len;
    char *text = bp_corpus(5000, 3, &len);
    apr_bpe_vocab *v = bp_train(text, len, 400, true);
    char p[128];
    apr_error e;
    snprintf(p, sizeof p, "%s/vocab.gguf", bp_dir);
    cr_assert_eq(apr_bpe_write_gguf(v, p, &e), APR_OK, "%s", e.msg);
    gguf_file *f;
    cr_assert_eq(apr_gguf_open(p, &f, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(apr_gguf_get_str(f, "tokenizer.ggml.model"), "gpt2");
    cr_expect_str_eq(apr_gguf_get_str(f, "tokenizer.ggml.pre"), "gpt-2");
    gguf_type t;
    uint64_t n;
    cr_assert(apr_gguf_get_arr(f, "tokenizer.ggml.tokens", &t, &n));
    cr_expect(t == GGUF_STRING && n == 400);
    for (uint64_t i = 0; i < n; i++) cr_assert_str_eq(apr_gguf_get_arr_str(f, "tokenizer.ggml.tokens", i), v->tokens[i]);
    cr_assert(apr_gguf_get_arr(f, "tokenizer.ggml.token_type", &t, &n));
    cr_expect(t == GGUF_INT32 && n == 400);
    cr_expect(!memcmp(apr_gguf_get_arr_data(f, "tokenizer.ggml.token_type"), v->token_type, 400 * sizeof(int32_t)));
    cr_assert(apr_gguf_get_arr(f, "tokenizer.ggml.merges", &t, &n));
    cr_expect(t == GGUF_STRING && n == (uint64_t)v->n_merges);
    for (uint64_t i = 0; i < n; i++) cr_assert_str_eq(apr_gguf_get_arr_str(f, "tokenizer.ggml.merges", i), v->merges[i]);
    uint32_t id;
    cr_expect(apr_gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &id) && id == 0);
    cr_expect(apr_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &id) && id == 1);
    cr_expect(apr_gguf_get_u32(f, "tokenizer.ggml.padding_token_id", &id) && id == 2);
    bool b = false;
    cr_expect(apr_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b) && b);
    cr_expect(apr_gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &b) && !b);
    apr_gguf_close(f);

    tok_vocab *tv = bp_load(v);
    cr_expect_eq(apr_tok_model_kind(tv), TOK_MODEL_BPE);
    cr_expect_str_eq(apr_tok_pre_name(tv), "gpt-2");
    cr_expect_eq(apr_tok_n_vocab(tv), 400);
    cr_expect_eq(apr_tok_bos(tv), 0);
    cr_expect_eq(apr_tok_eos(tv), 1);
    cr_expect_eq(apr_tok_pad(tv), 2);
    cr_expect_eq(apr_tok_unk(tv), -1);
    cr_expect(apr_tok_add_bos(tv));
    cr_expect(!apr_tok_add_eos(tv));
    cr_expect_eq(apr_tok_token_type(tv, 1), TOK_TYPE_CONTROL);
    apr_tok_free(tv);
    apr_bpe_free(v);
    free(text);
}

/* The tokenizer loaded from the file encodes the training text as the merges imply and decodes
 * it back; BOS comes first with TOK_ADD_SPECIAL; "<s>" written in text is text unless parsed. */
Test(bpetrain, encode_as_merges_imply, .init = bp_tmp, .fini = bp_untmp) {
    size_t len;
    char *text = bp_corpus(40000, 11, &len);
    apr_bpe_vocab *v = bp_train(text, len, 1024, false);
    cr_assert(v->complete, "%s", v->note);
    tok_vocab *tv = bp_load(v);
    size_t n;
    bp_check_text(v, tv, text, len, &n);
    cr_log_info("bpetrain: %zu bytes -> %zu tokens (%.2f bytes/token) with %d tokens", len, n, (double)len / (double)n,
                v->n_tokens);
    const char *s = "the <s> and </s>";
    size_t k;
    int32_t *ids = bp_encode(tv, s, strlen(s), TOK_ADD_SPECIAL, &k);
    cr_assert(k > 2);
    cr_expect_eq(ids[0], 0);
    for (size_t i = 1; i < k; i++) cr_expect(ids[i] > 1, "the text's <s> became a control token");
    free(ids);
    ids = bp_encode(tv, s, strlen(s), TOK_PARSE_SPECIAL, &k);
    int found = 0;
    for (size_t i = 0; i < k; i++) found += ids[i] == 0 || ids[i] == 1;
    cr_expect_eq(found, 2, "TOK_PARSE_SPECIAL: <s> and </s> are their ids");
    free(ids);
    bp_check_text(v, tv, s, strlen(s), NULL);
    apr_tok_free(tv);
    apr_bpe_free(v);
    free(text);
}

/* Any UTF-8 text comes back exactly, whatever the training text held: emoji, CJK, controls, NUL,
 * characters of every length; and bytes that are not UTF-8 come back from the tokens' bytes. */
Test(bpetrain, decode_roundtrip, .init = bp_tmp, .fini = bp_untmp) {
    const char *train = "plain ascii words only, plain words and more words.\n";
    apr_bpe_vocab *v = bp_train(train, strlen(train), 300, false);
    tok_vocab *tv = bp_load(v);
    static const char *const fixed[] = {
        "🙂 emoji 👩‍👩‍👧 and flags 🇫🇷",
        "日本語のテキストと中文文本",
        "tab\there\r\nCRLF\x01\x7f control",
        "Ελληνικά, русский, עברית, العربية",
        "   leading and trailing   ",
        "ʼ’ quotes 's 'll 're",
        "",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) bp_check_text(v, tv, fixed[i], strlen(fixed[i]), NULL);
    const char nul[] = "a\0b\0\0c";
    bp_check_text(v, tv, nul, sizeof nul - 1, NULL);
    /* random valid UTF-8: code points of 1 to 4 bytes (no surrogates) */
    bp_rng = 12345;
    for (int round = 0; round < 200; round++) {
        char s[512];
        size_t k = 0;
        int nc = (int)(bp_rand() % 60);
        for (int c = 0; c < nc; c++) {
            uint32_t r = bp_rand(), cp;
            switch (r % 4) {
            case 0: cp = r >> 8 & 0x7F; break;
            case 1: cp = 0x80 + (r >> 8) % (0x800 - 0x80); break;
            case 2: cp = 0x800 + (r >> 8) % (0x10000 - 0x800); if (cp >= 0xD800 && cp < 0xE000) cp = 0x4E2D; break;
            default: cp = 0x10000 + (r >> 8) % (0x110000 - 0x10000); break;
            }
            if (cp < 0x80) s[k++] = (char)cp;
            else if (cp < 0x800) { s[k++] = (char)(0xC0 | cp >> 6); s[k++] = (char)(0x80 | (cp & 0x3F)); }
            else if (cp < 0x10000) {
                s[k++] = (char)(0xE0 | cp >> 12); s[k++] = (char)(0x80 | (cp >> 6 & 0x3F)); s[k++] = (char)(0x80 | (cp & 0x3F));
            } else {
                s[k++] = (char)(0xF0 | cp >> 18); s[k++] = (char)(0x80 | (cp >> 12 & 0x3F));
                s[k++] = (char)(0x80 | (cp >> 6 & 0x3F)); s[k++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        bp_check_text(v, tv, s, k, NULL);
    }
    /* arbitrary bytes: the tokens' bytes put together are the bytes */
    for (int round = 0; round < 100; round++) {
        char s[128];
        size_t k = bp_rand() % sizeof s, n;
        for (size_t i = 0; i < k; i++) s[i] = (char)bp_rand();
        int32_t *ids = bp_encode(tv, s, k, 0, &n);
        char out[128 * 4];
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            int b = apr_tok_token_bytes(tv, ids[i], 0, out + o, (int)(sizeof out - o));
            cr_assert(b > 0 && o + (size_t)b <= sizeof out);
            o += (size_t)b;
        }
        cr_assert(o == k && !memcmp(out, s, k), "round %d: bytes did not come back", round);
        free(ids);
    }
    apr_tok_free(tv);
    apr_bpe_free(v);
}

/* apr_bpe_gguf_set puts the keys on a caller's writer beside its own. */
Test(bpetrain, gguf_set_on_writer, .init = bp_tmp, .fini = bp_untmp) {
    const char *text = "in the beginning was the word, and the word was with the text";
    apr_bpe_vocab *v = bp_train(text, strlen(text), 280, false);
    gguf_writer *w = apr_gguf_writer_new();
    cr_assert(w);
    apr_gguf_writer_set_str(w, "general.architecture", "llama");
    apr_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)v->n_tokens);
    apr_bpe_gguf_set(v, w);
    char p[128];
    apr_error e;
    snprintf(p, sizeof p, "%s/vocab.gguf", bp_dir);
    cr_assert_eq(apr_gguf_writer_write(w, p, &e), APR_OK, "%s", e.msg);
    apr_gguf_writer_free(w);
    tok_vocab *tv;
    cr_assert_eq(apr_tok_load_file(p, &tv, &e), APR_OK, "%s", e.msg);
    bp_check_text(v, tv, text, strlen(text), NULL);
    apr_tok_free(tv);
    apr_bpe_free(v);
}

/* ---------------------------------------------------------------- edges and errors */

Test(bpetrain, empty_and_tiny) {
    apr_bpe_vocab *v = bp_train("", 0, 300, false);
    cr_expect_eq(v->n_tokens, 258);
    cr_expect_eq(v->n_merges, 0);
    cr_expect(!v->complete);
    cr_expect(v->note[0]);
    apr_bpe_free(v);
    v = bp_train(NULL, 0, 258, false);   /* just the bytes and the specials: complete */
    cr_expect(v->complete);
    apr_bpe_free(v);
    /* "<s>" written in the corpus is text: no second "<s>" token */
    v = bp_train("<s><s><s>", 9, 300, false);
    bp_unique_texts(v);
    for (int32_t i = 0; i < v->n_merges; i++) cr_expect_str_neq(v->merges[i], "<s >");
    apr_bpe_free(v);
}

Test(bpetrain, errors) {
    apr_bpe_vocab *v = (apr_bpe_vocab *)&v;
    apr_error e;
    apr_bpe_options o = {.vocab_size = 257};
    cr_expect_eq(apr_bpe_train("x", 1, &o, &v, &e), APR_ERR_INVALID);
    cr_expect(v == NULL);
    cr_expect(strstr(e.msg, "vocab_size 257"), "%s", e.msg);
    o.vocab_size = 258;
    o.pad = true;
    cr_expect_eq(apr_bpe_train("x", 1, &o, &v, &e), APR_ERR_INVALID, "258 tokens cannot hold <pad> too");
    o = (apr_bpe_options){.vocab_size = 1 << 23};
    cr_expect_eq(apr_bpe_train("x", 1, &o, &v, &e), APR_ERR_INVALID);
    o = (apr_bpe_options){.vocab_size = 512, .pre = "no-such-family"};
    cr_expect_eq(apr_bpe_train("x", 1, &o, &v, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "no-such-family"), "%s", e.msg);
    cr_expect_eq(apr_bpe_train("x", 1, NULL, &v, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "opts"), "%s", e.msg);
    o = (apr_bpe_options){.vocab_size = 512};
    cr_expect_eq(apr_bpe_train_file("/nonexistent/kjv.txt", &o, &v, &e), APR_ERR_IO);
    cr_expect(strstr(e.msg, "/nonexistent/kjv.txt"), "%s", e.msg);
    cr_expect_eq(apr_bpe_write_gguf(NULL, "/tmp/x.gguf", &e), APR_ERR_INVALID);
    /* another family apr knows is taken and named in the file */
    o = (apr_bpe_options){.vocab_size = 300, .pre = "qwen2"};
    cr_assert_eq(apr_bpe_train("hello world 123", 15, &o, &v, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(v->pre, "qwen2");
    apr_bpe_free(v);
    apr_bpe_free(NULL);
}

/* ---------------------------------------------------------------- the King James Bible */

/* The KJV text: $APR_KJV_TEXT (a plain text file), else Debian's bible-kjv-text read through the
 * bible program of bible-kjv ("Gen1:1-Rev22:21" dumps the whole text, one verse a line). */
static char *bp_kjv(size_t *len, char *why, size_t n_why) {
    const char *env = getenv("APR_KJV_TEXT");
    FILE *f = NULL;
    bool pipe = false;
    if (env && *env) f = fopen(env, "rb");
    else if (!access("/usr/lib/bible.data", R_OK) && !access("/usr/bin/bible", X_OK)) {
        f = popen("cd / && /usr/bin/bible -f Gen1:1-Rev22:21 2>/dev/null", "r");
        pipe = true;
    }
    if (!f) {
        snprintf(why, n_why, env && *env ? "APR_KJV_TEXT=%s cannot be read" :
                 "the King James Bible is missing: Debian's bible-kjv-text package (/usr/lib/bible.data, read by "
                 "/usr/bin/bible of bible-kjv) is not installed and APR_KJV_TEXT is not set",
                 env);
        return NULL;
    }
    size_t cap = 8 << 20, k = 0, r;
    char *t = malloc(cap);
    while ((r = fread(t + k, 1, cap - k, f)) > 0)
        if ((k += r) == cap) t = realloc(t, cap *= 2);
    if (pipe) pclose(f);
    else fclose(f);
    *len = k;
    if (k < 1000000) {
        snprintf(why, n_why, "the King James Bible text read is only %zu bytes", k);
        free(t);
        return NULL;
    }
    return t;
}

static double bp_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

Test(bpetrain, kjv_4096, .init = bp_tmp, .fini = bp_untmp) {
    char why[256];
    size_t len;
    char *text = bp_kjv(&len, why, sizeof why);
    if (!text) cr_skip_test("%s", why);
    double t0 = bp_now();
    apr_bpe_vocab *v = bp_train(text, len, 4096, false);
    double t1 = bp_now();
    cr_assert(v->complete, "%s", v->note);
    cr_assert_eq(v->n_tokens, 4096);
    bp_unique_texts(v);
    tok_vocab *tv = bp_load(v);
    size_t n;
    double t2 = bp_now();
    bp_check_text(v, tv, text, len, &n);
    double t3 = bp_now();
    double bpt = (double)len / (double)n;
    cr_log_info("bpetrain: KJV %zu bytes, %lld pieces, %lld distinct: 4096 tokens (%d merges) in %.2f s; "
                "%zu tokens, %.2f bytes/token; encode+check+decode %.2f s",
                len, (long long)v->n_pieces, (long long)v->n_words, v->n_merges, t1 - t0, n, bpt, t3 - t2);
    cr_expect(bpt > 3.0, "%.2f bytes per token", bpt);
    apr_tok_free(tv);
    apr_bpe_free(v);
    free(text);
}

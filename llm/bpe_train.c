/* bpe_train.c — apr_bpe_train (bpe_train.h): the text split by apr's own pre-tokenizer
 * (tok_pre.c) into pieces, every distinct piece counted once as a word with its frequency, the
 * words started as their bytes' tokens, merges learned (bpe_train_merge.c), and the result
 * written out in GPT-2 characters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_train_internal.h"
#include "tok_internal.h"

#define BT_MAX_VOCAB (1 << 22)

uint64_t bt_hash(const void *s, size_t n) {
    const uint8_t *b = s;
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

bool bt_grow(bt *b, void **v, size_t n, size_t *cap, size_t size, size_t first) {
    if (n < *cap) return true;
    if (b->oom) return false;
    size_t c = *cap ? *cap * 2 : first;
    void *p = c <= SIZE_MAX / size ? realloc(*v, c * size) : NULL;
    if (!p) { b->oom = true; return false; }
    *v = p;
    *cap = c;
    return true;
}

bool bt_rehash(bt *b, uint32_t **tab, size_t *cap, size_t n, uint64_t (*key)(const bt *, size_t)) {
    size_t c = *cap ? *cap * 2 : 1024;
    uint32_t *t = calloc(c, sizeof *t);
    if (!t) { b->oom = true; return false; }
    for (size_t i = 0; i < n; i++) {
        size_t h = key(b, i) & (c - 1);
        while (t[h]) h = (h + 1) & (c - 1);
        t[h] = (uint32_t)i + 1;
    }
    free(*tab);
    *tab = t;
    *cap = c;
    return true;
}

/* ---------------------------------------------------------------- counting the words */

static uint64_t bt_word_key(const bt *b, size_t i) { return bt_hash(b->bytes + b->w[i].off, b->w[i].n); }

static void bt_piece(const char *piece, size_t n, void *ctx) {
    bt *b = ctx;
    if (b->oom) return;
    b->pieces++;
    uint64_t hk = bt_hash(piece, n);
    if (b->whash_cap) {
        for (size_t h = hk & (b->whash_cap - 1); b->whash[h]; h = (h + 1) & (b->whash_cap - 1)) {
            bt_word *w = &b->w[b->whash[h] - 1];
            if (w->n == n && !memcmp(b->bytes + w->off, piece, n)) { w->freq++; return; }
        }
    }
    if (b->n_w >= UINT32_MAX - 1) { b->oom = true; return; }
    if ((b->n_w + 1) * 2 > b->whash_cap && !bt_rehash(b, &b->whash, &b->whash_cap, b->n_w, bt_word_key)) return;
    while (b->n_bytes + n > b->cap_bytes) {
        size_t c = b->cap_bytes ? b->cap_bytes * 2 : 65536;
        char *p = realloc(b->bytes, c);
        if (!p) { b->oom = true; return; }
        b->bytes = p;
        b->cap_bytes = c;
    }
    if (!bt_grow(b, (void **)&b->w, b->n_w, &b->cap_w, sizeof *b->w, 1024)) return;
    memcpy(b->bytes + b->n_bytes, piece, n);
    b->w[b->n_w] = (bt_word){b->n_bytes, n, 1, 0};
    b->n_bytes += n;
    size_t h = hk & (b->whash_cap - 1);
    while (b->whash[h]) h = (h + 1) & (b->whash_cap - 1);
    b->whash[h] = (uint32_t)++b->n_w;
}

/* ---------------------------------------------------------------- tokens (raw bytes <-> id) */

static uint64_t bt_tok_key(const bt *b, size_t i) { return bt_hash(b->tok_bytes + b->tok[i].off, b->tok[i].len); }

int32_t bt_tok_find(const bt *b, const char *s, size_t n) {
    for (size_t h = bt_hash(s, n) & (b->thash_cap - 1); b->thash[h]; h = (h + 1) & (b->thash_cap - 1)) {
        const bt_tok *t = &b->tok[b->thash[h] - 1];
        if (t->len == n && !memcmp(b->tok_bytes + t->off, s, n)) return (int32_t)(b->thash[h] - 1) + b->n_special;
    }
    return -1;
}

int32_t bt_tok_add(bt *b, const char *s, size_t n) {
    if ((b->n_tok + 1) * 2 > b->thash_cap && !bt_rehash(b, &b->thash, &b->thash_cap, b->n_tok, bt_tok_key)) return -1;
    if (!bt_grow(b, (void **)&b->tok, b->n_tok, &b->cap_tok, sizeof *b->tok, 512)) return -1;
    while (b->n_tok_bytes + n > b->cap_tok_bytes) {
        size_t c = b->cap_tok_bytes ? b->cap_tok_bytes * 2 : 4096;
        char *p = realloc(b->tok_bytes, c);
        if (!p) return b->oom = true, -1;
        b->tok_bytes = p;
        b->cap_tok_bytes = c;
    }
    memcpy(b->tok_bytes + b->n_tok_bytes, s, n);
    b->tok[b->n_tok] = (bt_tok){b->n_tok_bytes, n};
    b->n_tok_bytes += n;
    size_t h = bt_tok_key(b, b->n_tok) & (b->thash_cap - 1);
    while (b->thash[h]) h = (h + 1) & (b->thash_cap - 1);
    b->thash[h] = (uint32_t)++b->n_tok;
    return (int32_t)b->n_tok - 1 + b->n_special;
}

/* ---------------------------------------------------------------- the result */

/* Appends the raw bytes of token id as GPT-2 characters at o; returns the end. */
static char *bt_put(const bt *b, int32_t id, char *o) {
    const bt_tok *t = &b->tok[id - b->n_special];
    for (size_t i = 0; i < t->len; i++) o += bytemap_encode((uint8_t)b->tok_bytes[t->off + i], o);
    return o;
}

/* The GGUF text of token id, or of merge "id id2" (id2 >= 0); malloc'd. */
static char *bt_text(const bt *b, int32_t id, int32_t id2) {
    size_t n = b->tok[id - b->n_special].len + (id2 >= 0 ? 1 + b->tok[id2 - b->n_special].len : 0);
    char *s = malloc(2 * n + 1), *o = s;
    if (!s) return NULL;
    o = bt_put(b, id, o);
    if (id2 >= 0) {
        *o++ = ' ';
        o = bt_put(b, id2, o);
    }
    *o = 0;
    return s;
}

static apr_status bt_result(const bt *b, const apr_bpe_options *o, const char *pre, apr_bpe_vocab **out, apr_error *err) {
    apr_bpe_vocab *v = calloc(1, sizeof *v);
    if (!v) return apr_error_set(err, APR_ERR_NOMEM, "apr_bpe_train: out of memory for the result");
    v->n_special = b->n_special;
    v->n_tokens = b->n_special + (int32_t)b->n_tok;
    v->n_merges = (int32_t)b->n_merge;
    v->bos = 0;
    v->eos = 1;
    v->pad = o->pad ? 2 : -1;
    snprintf(v->pre, sizeof v->pre, "%s", pre);
    v->n_requested = o->vocab_size;
    v->complete = v->n_tokens == o->vocab_size;
    v->n_pieces = b->pieces;
    v->n_words = (int64_t)b->n_w;
    if (!v->complete && o->min_count > 1)
        snprintf(v->note, sizeof v->note, "no pair occurring at least %lld times is left after %d merges: %d of the %d tokens asked for",
                 (long long)o->min_count, (int)v->n_merges, (int)v->n_tokens, (int)o->vocab_size);
    else if (!v->complete)
        snprintf(v->note, sizeof v->note,
                 "no pair is left to merge after %d merges (%lld distinct pieces in the text): %d of the %d tokens asked for",
                 (int)v->n_merges, (long long)v->n_words, (int)v->n_tokens, (int)o->vocab_size);
    v->tokens = calloc((size_t)v->n_tokens, sizeof *v->tokens);
    v->token_type = calloc((size_t)v->n_tokens, sizeof *v->token_type);
    v->merges = calloc((size_t)v->n_merges + 1, sizeof *v->merges);
    v->merge_count = calloc((size_t)v->n_merges + 1, sizeof *v->merge_count);
    bool ok = v->tokens && v->token_type && v->merges && v->merge_count;
    static const char *const special[] = {"<s>", "</s>", "<pad>"};
    for (int32_t i = 0; ok && i < v->n_tokens; i++) {
        v->token_type[i] = i < b->n_special ? TOK_TYPE_CONTROL : TOK_TYPE_NORMAL;
        v->tokens[i] = i < b->n_special ? strdup(special[i]) : bt_text(b, i, -1);
        ok = v->tokens[i] != NULL;
    }
    for (int32_t i = 0; ok && i < v->n_merges; i++) {
        v->merges[i] = bt_text(b, b->merge[i].l, b->merge[i].r);
        v->merge_count[i] = b->merge[i].count;
        ok = v->merges[i] != NULL;
    }
    if (!ok) {
        apr_bpe_free(v);
        return apr_error_set(err, APR_ERR_NOMEM, "apr_bpe_train: out of memory for the result");
    }
    *out = v;
    return APR_OK;
}

/* ---------------------------------------------------------------- public */

apr_status apr_bpe_train(const char *text, size_t len, const apr_bpe_options *opts, apr_bpe_vocab **out, apr_error *err) {
    if (out) *out = NULL;
    if (!opts || !out || (!text && len))
        return apr_error_set(err, APR_ERR_INVALID, "apr_bpe_train: %s is NULL", !opts ? "opts" : !out ? "out" : "text");
    apr_bpe_options o = *opts;
    const char *pre = o.pre ? o.pre : "gpt-2";
    int32_t n_special = o.pad ? 3 : 2;
    if (o.min_count < 1) o.min_count = 1;
    if (o.vocab_size < 256 + n_special || o.vocab_size > BT_MAX_VOCAB)
        return apr_error_set(err, APR_ERR_INVALID, "apr_bpe_train: vocab_size %d is outside %d..%d (%d special tokens + 256 bytes + merges)",
                             (int)o.vocab_size, 256 + n_special, BT_MAX_VOCAB, (int)n_special);
    const char *const *re;
    int n_re;
    if (!pre_family(pre, &re, &n_re))
        return apr_error_set(err, APR_ERR_INVALID, "apr_bpe_train: pre-tokenizer '%.60s' is not one apr knows (tok_pre.c)", pre);
    pre_tokenizer *pt;
    apr_status st = pre_compile(re, n_re, &pt, err);
    if (st) return st;

    bt b = {.n_special = n_special};
    bool ok = pre_split(pt, text, len, bt_piece, &b) && !b.oom;
    pre_free(pt);
    free(b.whash);
    b.whash = NULL;
    if (ok) {   /* the words' symbols start as their bytes' tokens */
        b.sym = malloc((b.n_bytes ? b.n_bytes : 1) * sizeof *b.sym);
        ok = b.sym != NULL;
        for (size_t i = 0; ok && i < b.n_bytes; i++) b.sym[i] = n_special + (uint8_t)b.bytes[i];
        free(b.bytes);
        b.bytes = NULL;
    }
    for (int c = 0; ok && c < 256; c++) {
        char byte = (char)c;
        ok = bt_tok_add(&b, &byte, 1) == n_special + c;
    }
    if (ok) ok = bt_learn(&b, o.vocab_size, o.min_count);
    if (ok) st = bt_result(&b, &o, pre, out, err);
    else st = apr_error_set(err, APR_ERR_NOMEM, "apr_bpe_train: out of memory (%zu distinct pieces, %zu pairs)", b.n_w, b.n_p);
    bt_free(&b);
    return st;
}

/* tok_vocab.c — the vocabulary: token texts and types, the text -> id hash, the merge table,
 * the special-token list, and the public queries. Loaders (tok_load_*.c) fill it through the
 * vocab_* calls; after vocab_finish it is never written again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static uint64_t vocab_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint32_t vocab_pow2(uint64_t n) {
    uint32_t c = 16;
    while (c < 2 * n && c < (1u << 31)) c *= 2;
    return c;
}

tok_vocab *vocab_new(tok_model model, int32_t n) {
    tok_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->model = model;
    v->n = n;
    v->bos = v->eos = v->unk = v->pad = -1;
    v->text = calloc((size_t)n ? (size_t)n : 1, sizeof *v->text);
    v->len = calloc((size_t)n ? (size_t)n : 1, sizeof *v->len);
    v->score = calloc((size_t)n ? (size_t)n : 1, sizeof *v->score);
    v->type = malloc((size_t)n ? (size_t)n : 1);
    v->strip = calloc((size_t)n ? (size_t)n : 1, 1);
    if (!v->text || !v->len || !v->score || !v->type || !v->strip) { apr_tok_free(v); return NULL; }
    memset(v->type, TOK_TYPE_NORMAL, (size_t)n);
    for (int i = 0; i < 256; i++) v->byte_id[i] = -1;
    return v;
}

apr_status vocab_set_texts(tok_vocab *v, const char *const *texts, const uint32_t *lens, apr_error *err) {
    size_t total = 0;
    for (int32_t i = 0; i < v->n; i++) {
        v->len[i] = lens ? lens[i] : (texts[i] ? (uint32_t)strlen(texts[i]) : 0);
        total += v->len[i] + 1;
    }
    v->arena = malloc(total ? total : 1);
    v->hash_cap = vocab_pow2((uint64_t)v->n);
    v->hash = malloc((size_t)v->hash_cap * sizeof *v->hash);
    if (!v->arena || !v->hash) return apr_error_set(err, APR_ERR_NOMEM, "out of memory for %d tokens", v->n);
    memset(v->hash, 0xff, (size_t)v->hash_cap * sizeof *v->hash);
    char *p = v->arena;
    for (int32_t i = 0; i < v->n; i++) {
        if (v->len[i]) memcpy(p, texts[i], v->len[i]);
        p[v->len[i]] = 0;
        v->text[i] = p;
        p += v->len[i] + 1;
        if (!v->len[i]) continue;
        /* A text that occurs twice maps to its last id, as in llama.cpp. */
        uint32_t h = (uint32_t)vocab_hash(v->text[i], v->len[i]) & (v->hash_cap - 1);
        for (;; h = (h + 1) & (v->hash_cap - 1)) {
            int32_t o = v->hash[h];
            if (o < 0) { v->hash[h] = i; break; }
            if (v->len[o] == v->len[i] && !memcmp(v->text[o], v->text[i], v->len[i])) { v->hash[h] = i; break; }
        }
    }
    return APR_OK;
}

int32_t vocab_find(const tok_vocab *v, const char *s, size_t len) {
    if (!len || !v->hash) return -1;
    uint32_t h = (uint32_t)vocab_hash(s, len) & (v->hash_cap - 1);
    for (;; h = (h + 1) & (v->hash_cap - 1)) {
        int32_t o = v->hash[h];
        if (o < 0) return -1;
        if (v->len[o] == len && !memcmp(v->text[o], s, len)) return o;
    }
}

apr_status vocab_merges_alloc(tok_vocab *v, uint64_t n_merges, apr_error *err) {
    if (n_merges > (1u << 28)) return apr_error_set(err, APR_ERR_FORMAT, "%llu merges is too many", (unsigned long long)n_merges);
    v->merge_cap = vocab_pow2(n_merges);
    v->merges = malloc((size_t)v->merge_cap * sizeof *v->merges);
    if (!v->merges) return apr_error_set(err, APR_ERR_NOMEM, "out of memory for %llu merges", (unsigned long long)n_merges);
    for (uint32_t i = 0; i < v->merge_cap; i++) v->merges[i].key = UINT64_MAX;
    return APR_OK;
}

static uint32_t vocab_merge_slot(uint64_t key, uint32_t cap) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & (cap - 1);
}

void vocab_add_merge(tok_vocab *v, const char *left, size_t llen, const char *right, size_t rlen, int32_t rank) {
    int32_t l = vocab_find(v, left, llen), r = vocab_find(v, right, rlen);
    if (l < 0 || r < 0) return;
    char buf[512];
    char *cat = llen + rlen <= sizeof buf ? buf : malloc(llen + rlen);
    if (!cat) return;
    memcpy(cat, left, llen);
    memcpy(cat + llen, right, rlen);
    int32_t res = vocab_find(v, cat, llen + rlen);
    if (cat != buf) free(cat);
    if (res < 0) return;
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    for (uint32_t h = vocab_merge_slot(key, v->merge_cap);; h = (h + 1) & (v->merge_cap - 1)) {
        if (v->merges[h].key == key) return;   /* the first (lowest) rank of a pair wins */
        if (v->merges[h].key == UINT64_MAX) {
            v->merges[h] = (tok_merge){key, rank, res};
            return;
        }
    }
}

bool vocab_merge_find(const tok_vocab *v, int32_t left, int32_t right, int32_t *rank, int32_t *result) {
    if (!v->merges || left < 0 || right < 0) return false;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (uint32_t h = vocab_merge_slot(key, v->merge_cap);; h = (h + 1) & (v->merge_cap - 1)) {
        if (v->merges[h].key == key) { *rank = v->merges[h].rank; *result = v->merges[h].result; return true; }
        if (v->merges[h].key == UINT64_MAX) return false;
    }
}

static int vocab_special_cmp(const void *a, const void *b, void *ctx) {
    const tok_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = v->len[x], ly = v->len[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

apr_status vocab_finish(tok_vocab *v, const char *const *regexes, int n_regex, apr_error *err) {
    for (int b = 0; b < 256; b++) {
        char s[8];
        int n;
        if (v->model == TOK_MODEL_SPM) n = snprintf(s, sizeof s, "<0x%02X>", b);
        else n = bytemap_encode((uint8_t)b, s);
        v->byte_id[b] = vocab_find(v, s, (size_t)n);
    }
    int32_t k = 0;
    for (int32_t i = 0; i < v->n; i++) {
        uint8_t t = v->type[i];
        k += v->len[i] && (t == TOK_TYPE_CONTROL || t == TOK_TYPE_USER_DEFINED || t == TOK_TYPE_UNKNOWN);
    }
    v->specials = malloc(((size_t)k + 1) * sizeof *v->specials);
    if (!v->specials) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < v->n; i++) {
        uint8_t t = v->type[i];
        if (v->len[i] && (t == TOK_TYPE_CONTROL || t == TOK_TYPE_USER_DEFINED || t == TOK_TYPE_UNKNOWN))
            v->specials[v->n_specials++] = i;
    }
    qsort_r(v->specials, (size_t)v->n_specials, sizeof *v->specials, vocab_special_cmp, v);
    if (v->model == TOK_MODEL_BPE) return pre_compile(regexes, n_regex, &v->pre, err);
    return APR_OK;
}

/* ---------------------------------------------------------------- public */

void apr_tok_free(tok_vocab *v) {
    if (!v) return;
    pre_free(v->pre);
    norm_free(v->norm);
    for (int32_t i = 0; i < v->n_nspecials; i++) free(v->nspecials[i].text);
    free(v->nspecials);
    free(v->text);
    free(v->len);
    free(v->score);
    free(v->type);
    free(v->strip);
    free(v->arena);
    free(v->hash);
    free(v->merges);
    free(v->specials);
    free(v);
}

tok_model apr_tok_model_kind(const tok_vocab *v) { return v->model; }
const char *apr_tok_pre_name(const tok_vocab *v) { return v->pre_name; }
int32_t apr_tok_n_vocab(const tok_vocab *v) { return v->n; }
int32_t apr_tok_bos(const tok_vocab *v) { return v->bos; }
int32_t apr_tok_eos(const tok_vocab *v) { return v->eos; }
int32_t apr_tok_unk(const tok_vocab *v) { return v->unk; }
int32_t apr_tok_pad(const tok_vocab *v) { return v->pad; }
bool apr_tok_add_bos(const tok_vocab *v) { return v->add_bos && v->bos >= 0; }
bool apr_tok_add_eos(const tok_vocab *v) { return v->add_eos && v->eos >= 0; }

const char *apr_tok_piece(const tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->n ? v->text[id] : NULL;
}

tok_type apr_tok_token_type(const tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->n ? (tok_type)v->type[id] : TOK_TYPE_UNUSED;
}

int32_t apr_tok_find(const tok_vocab *v, const char *text, size_t len) { return vocab_find(v, text, len); }

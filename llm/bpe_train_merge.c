/* bpe_train_merge.c — the merge loop of apr_bpe_train: pair counts, the heap, rewriting words.
 *
 * Every adjacent pair of symbols in every word is counted (weighted by the word's frequency) in a
 * hash table, each pair remembering the words it occurs in. A max-heap of (count, pair) with lazy
 * deletion picks the most frequent pair (lowest ids on ties); only the words on that pair's list
 * are rewritten, and their pairs' counts are taken out before and put back after, so one merge
 * costs what the affected words hold, not the corpus.
 *
 * The heap holds, for every pair, at least one entry whose count is >= the pair's true count:
 * counts only grow for pairs holding the token just made, and those are pushed again after each
 * merge. A popped entry whose count is not the true one is pushed again with the true count; the
 * first popped entry that matches is therefore the true maximum, and the lowest pair among
 * those of that count. */
#include <stdlib.h>
#include <string.h>

#include "bpe_train_internal.h"

static uint64_t bt_mix(uint64_t k) {
    k *= 0x9E3779B97F4A7C15ull;
    return k ^ (k >> 31);
}

/* ---------------------------------------------------------------- pairs and the heap */

static uint64_t bt_pair_key(const bt *b, size_t i) { return bt_mix(b->p[i].key); }

/* The index of pair (l, r), created with count 0 when absent; UINT32_MAX when memory ran out. */
static uint32_t bt_pair_get(bt *b, int32_t l, int32_t r) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t h = 0;
    if (b->phash_cap)
        for (h = bt_mix(key) & (b->phash_cap - 1); b->phash[h]; h = (h + 1) & (b->phash_cap - 1))
            if (b->p[b->phash[h] - 1].key == key) return b->phash[h] - 1;
    if (b->n_p >= UINT32_MAX - 1) return b->oom = true, UINT32_MAX;
    if ((b->n_p + 1) * 2 > b->phash_cap) {
        if (!bt_rehash(b, &b->phash, &b->phash_cap, b->n_p, bt_pair_key)) return UINT32_MAX;
        for (h = bt_mix(key) & (b->phash_cap - 1); b->phash[h]; h = (h + 1) & (b->phash_cap - 1)) {}
    }
    if (!bt_grow(b, (void **)&b->p, b->n_p, &b->cap_p, sizeof *b->p, 4096)) return UINT32_MAX;
    b->p[b->n_p] = (bt_pair){.key = key};
    b->phash[h] = (uint32_t)++b->n_p;
    return (uint32_t)b->n_p - 1;
}

static void bt_pair_word(bt *b, uint32_t pi, uint32_t word) {
    bt_pair *p = &b->p[pi];
    if (p->n_words && p->words[p->n_words - 1] == word) return;
    if (p->n_words == p->cap_words) {
        uint32_t c = p->cap_words ? p->cap_words * 2 : 4;
        uint32_t *v = c > p->cap_words ? realloc(p->words, (size_t)c * sizeof *v) : NULL;
        if (!v) { b->oom = true; return; }
        p->words = v;
        p->cap_words = c;
    }
    p->words[p->n_words++] = word;
}

/* Heap order: higher count first, then the lower key (left id, then right id). */
static bool bt_before(const bt_ent *a, const bt_ent *c) {
    return a->count > c->count || (a->count == c->count && a->key < c->key);
}

static void bt_push(bt *b, uint32_t pi) {
    if (!bt_grow(b, (void **)&b->heap, b->n_heap, &b->cap_heap, sizeof *b->heap, 4096)) return;
    bt_ent e = {b->p[pi].count, b->p[pi].key, pi};
    size_t i = b->n_heap++;
    while (i > 0 && bt_before(&e, &b->heap[(i - 1) / 2])) {
        b->heap[i] = b->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    b->heap[i] = e;
}

static bt_ent bt_pop(bt *b) {
    bt_ent top = b->heap[0], last = b->heap[--b->n_heap];
    size_t i = 0, n = b->n_heap;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= n) break;
        if (k + 1 < n && bt_before(&b->heap[k + 1], &b->heap[k])) k++;
        if (!bt_before(&b->heap[k], &last)) break;
        b->heap[i] = b->heap[k];
        i = k;
    }
    if (n) b->heap[i] = last;
    return top;
}

/* ---------------------------------------------------------------- merging */

/* Adds delta to the count of pair (l, r); a pair holding the new token x (delta > 0) also gets
 * word wi on its list and goes on this step's changed list, to be pushed on the heap. */
static void bt_add(bt *b, int32_t l, int32_t r, int64_t delta, uint32_t wi, uint32_t step) {
    uint32_t pi = bt_pair_get(b, l, r);
    if (pi == UINT32_MAX) return;
    b->p[pi].count += delta;
    if (delta < 0) return;
    bt_pair_word(b, pi, wi);
    if (b->p[pi].stamp == step) return;
    b->p[pi].stamp = step;
    if (!bt_grow(b, (void **)&b->changed, b->n_changed, &b->cap_changed, sizeof *b->changed, 256)) return;
    b->changed[b->n_changed++] = pi;
}

/* Merges every (l, r) of word wi into x, leftmost first, in place, and updates the counts of the
 * pairs around each merge site only: (prev, l), (l, r) and (r, next) go, (prev', x) and (x, next)
 * come, where prev' is what now precedes (x itself after an adjacent site). A pair between two
 * adjacent sites is taken out once, by the first, and (x, x) put in once, by the second. */
static void bt_merge_word(bt *b, uint32_t wi, int32_t l, int32_t r, int32_t x, uint32_t step) {
    bt_word *w = &b->w[wi];
    int32_t *s = b->sym + w->off;
    size_t n = w->n, j = 0;
    int64_t f = w->freq;
    bool after_site = false;     /* the symbol before i was the r of a site */
    for (size_t i = 0; i < n;) {
        if (!(i + 1 < n && s[i] == l && s[i + 1] == r)) {
            s[j++] = s[i++];
            after_site = false;
            continue;
        }
        bool next_site = i + 3 < n && s[i + 2] == l && s[i + 3] == r;
        bt_add(b, l, r, -f, wi, step);
        if (i > 0 && !after_site) bt_add(b, s[j - 1], l, -f, wi, step);
        if (i + 2 < n) bt_add(b, r, s[i + 2], -f, wi, step);
        if (j > 0) bt_add(b, s[j - 1], x, f, wi, step);
        if (i + 2 < n && !next_site) bt_add(b, x, s[i + 2], f, wi, step);
        s[j++] = x;
        i += 2;
        after_site = true;
    }
    w->n = j;
}

/* Merges pair pi (l, r) into token x in every word holding it. */
static void bt_apply(bt *b, uint32_t pi, int32_t l, int32_t r, int32_t x, uint32_t step) {
    const uint32_t *words = b->p[pi].words;    /* never appended to here: new pairs all hold x */
    uint32_t n_words = b->p[pi].n_words;
    b->n_changed = 0;
    for (uint32_t k = 0; k < n_words && !b->oom; k++) {
        bt_word *w = &b->w[words[k]];
        if (w->stamp == step) continue;        /* listed twice */
        w->stamp = step;
        bt_merge_word(b, words[k], l, r, x, step);   /* nothing to do for a stale entry */
    }
    for (size_t k = 0; k < b->n_changed && !b->oom; k++)
        if (b->p[b->changed[k]].count > 0 && !b->p[b->changed[k]].done) bt_push(b, b->changed[k]);
}

static bool bt_is_special(const char *s, size_t n) {
    return (n == 3 && !memcmp(s, "<s>", 3)) || (n == 4 && !memcmp(s, "</s>", 4)) || (n == 5 && !memcmp(s, "<pad>", 5));
}

bool bt_learn(bt *b, int32_t target, int64_t min_count) {
    for (size_t i = 0; i < b->n_w && !b->oom; i++) {   /* every pair counted, its words listed in order */
        const int32_t *s = b->sym + b->w[i].off;
        for (size_t k = 0; k + 1 < b->w[i].n && !b->oom; k++) {
            uint32_t pi = bt_pair_get(b, s[k], s[k + 1]);
            if (pi == UINT32_MAX) break;
            b->p[pi].count += b->w[i].freq;
            bt_pair_word(b, pi, (uint32_t)i);
        }
    }
    for (size_t i = 0; i < b->n_p && !b->oom; i++) bt_push(b, (uint32_t)i);
    uint32_t step = 0;
    while ((int64_t)b->n_tok + b->n_special < target && b->n_heap && !b->oom) {
        bt_ent e = bt_pop(b);
        bt_pair *p = &b->p[e.pair];
        if (p->done || p->count <= 0) continue;
        if (e.count != p->count) { bt_push(b, e.pair); continue; }
        if (p->count < min_count) break;
        int32_t l = (int32_t)(p->key >> 32), r = (int32_t)(uint32_t)p->key;
        int64_t count = p->count;
        bt_tok tl = b->tok[l - b->n_special], tr = b->tok[r - b->n_special];
        p->done = true;
        char *joined = malloc(tl.len + tr.len);
        if (!joined) return b->oom = true, false;
        memcpy(joined, b->tok_bytes + tl.off, tl.len);
        memcpy(joined + tl.len, b->tok_bytes + tr.off, tr.len);
        if (bt_is_special(joined, tl.len + tr.len)) { free(joined); continue; }   /* never a second "<s>" */
        int32_t x = bt_tok_find(b, joined, tl.len + tr.len);
        if (x < 0) x = bt_tok_add(b, joined, tl.len + tr.len);
        free(joined);
        if (x < 0) return false;
        if (!bt_grow(b, (void **)&b->merge, b->n_merge, &b->cap_merge, sizeof *b->merge, 256)) return false;
        b->merge[b->n_merge++] = (bt_merge){l, r, count};
        bt_apply(b, e.pair, l, r, x, ++step);
    }
    return !b->oom;
}

void bt_free(bt *b) {
    for (size_t i = 0; i < b->n_p; i++) free(b->p[i].words);
    free(b->w); free(b->bytes); free(b->whash); free(b->sym);
    free(b->tok); free(b->tok_bytes); free(b->thash);
    free(b->p); free(b->phash); free(b->heap); free(b->changed);
    free(b->merge);
}

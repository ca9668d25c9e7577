/* bpe_train_internal.h — the trainer's state, shared by bpe_train.c (words, tokens, the result)
 * and bpe_train_merge.c (pair counts, the heap, the merge loop). Internal: prefix bt_. */
#ifndef APR_BPE_TRAIN_INTERNAL_H
#define APR_BPE_TRAIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpe_train.h"

typedef struct bt_word {
    size_t off;             /* first symbol in bt.sym; during counting: first byte in bt.bytes */
    size_t n;               /* symbols (during counting: bytes) */
    int64_t freq;
    uint32_t stamp;         /* the last merge step that rewrote it */
} bt_word;

typedef struct bt_pair {
    uint64_t key;           /* (left id << 32) | right id */
    int64_t count;          /* occurrences, weighted by word frequency */
    uint32_t *words;        /* words it occurs or occurred in (stale entries allowed) */
    uint32_t n_words, cap_words;
    uint32_t stamp;         /* the last merge step that put it on the changed list */
    bool done;              /* merged already: never again */
} bt_pair;

typedef struct bt_ent {
    int64_t count;
    uint64_t key;
    uint32_t pair;
} bt_ent;

typedef struct bt_tok {
    size_t off, len;        /* bytes in bt.tok_bytes */
} bt_tok;

typedef struct bt_merge {
    int32_t l, r;
    int64_t count;
} bt_merge;

/* The whole trainer. Token ids: 0 .. n_special - 1 the specials, then tok[id - n_special]. */
typedef struct bt {
    /* words */
    bt_word *w;
    size_t n_w, cap_w;
    char *bytes;            /* counting: the words' bytes */
    size_t n_bytes, cap_bytes;
    uint32_t *whash;        /* word index + 1, 0 = empty */
    size_t whash_cap;
    int64_t pieces;
    int32_t *sym;           /* merging: every word's symbols */
    /* tokens: the raw bytes of every non-special token, by id - n_special */
    bt_tok *tok;
    char *tok_bytes;
    size_t n_tok, cap_tok, n_tok_bytes, cap_tok_bytes;
    uint32_t *thash;        /* token index + 1 */
    size_t thash_cap;
    /* pairs */
    bt_pair *p;
    size_t n_p, cap_p;
    uint32_t *phash;        /* pair index + 1 */
    size_t phash_cap;
    bt_ent *heap;
    size_t n_heap, cap_heap;
    uint32_t *changed;
    size_t n_changed, cap_changed;
    bt_merge *merge;        /* the merges learned, in rank order */
    size_t n_merge, cap_merge;
    int32_t n_special;
    bool oom;
} bt;

/* bpe_train.c */
uint64_t bt_hash(const void *s, size_t n);
/* Makes room for one more element in *v (n used of *cap, each size bytes; first: the first capacity). */
bool bt_grow(bt *b, void **v, size_t n, size_t *cap, size_t size, size_t first);
/* A table of index + 1 (0 = empty) at twice the size, rehashed by key(b, i) for i < n. */
bool bt_rehash(bt *b, uint32_t **tab, size_t *cap, size_t n, uint64_t (*key)(const bt *, size_t));
/* The id of the token of raw bytes s[0, n), or -1. */
int32_t bt_tok_find(const bt *b, const char *s, size_t n);
/* Appends a token of raw bytes s[0, n) (not pointing into tok_bytes); returns its id or -1. */
int32_t bt_tok_add(bt *b, const char *s, size_t n);

/* bpe_train_merge.c */
/* Learns merges until the vocabulary has target tokens or no pair of min_count is left.
 * Returns false when memory ran out. */
bool bt_learn(bt *b, int32_t target, int64_t min_count);
void bt_free(bt *b);

#endif

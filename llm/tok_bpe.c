/* tok_bpe.c — GPT-2-style byte-level BPE: the text is split by the pre-tokenizer, every byte of
 * a piece starts as the token of its GPT-2 byte character, and the adjacent pair with the lowest
 * merge rank is merged (leftmost first on ties) until no pair has a merge.
 *
 * Pairs sit in a binary heap; a popped pair whose symbols changed since it was pushed is stale
 * and skipped (a symbol's id only ever grows into a longer token, so comparing ids is enough).
 * With ignore_merges (Llama 3) a piece that is itself a token is taken whole. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct bpe_sym {
    int prev, next;
    int32_t id;           /* -1 once merged into its left neighbour, or a byte with no token */
    bool alive;
} bpe_sym;

typedef struct bpe_pair {
    int32_t rank, result, lid, rid;
    int left, right;
} bpe_pair;

typedef struct bpe_ctx {
    const tok_vocab *v;
    tok_ids *out;
    bpe_sym *sym;
    size_t sym_cap;
    bpe_pair *heap;
    size_t heap_n, heap_cap;
    char *mapped;         /* the piece in GPT-2 characters (ignore_merges) */
    size_t mapped_cap;
} bpe_ctx;

static bool bpe_before(const bpe_pair *a, const bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void bpe_push(bpe_ctx *c, int left, int right) {
    if (left < 0 || right < 0) return;
    bpe_pair p = {0, 0, c->sym[left].id, c->sym[right].id, left, right};
    if (!vocab_merge_find(c->v, p.lid, p.rid, &p.rank, &p.result)) return;
    if (c->heap_n == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        bpe_pair *h = realloc(c->heap, cap * sizeof *h);
        if (!h) { c->out->oom = true; return; }
        c->heap = h;
        c->heap_cap = cap;
    }
    size_t i = c->heap_n++;
    while (i > 0 && bpe_before(&p, &c->heap[(i - 1) / 2])) {
        c->heap[i] = c->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    c->heap[i] = p;
}

static bpe_pair bpe_pop(bpe_ctx *c) {
    bpe_pair top = c->heap[0], last = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= n) break;
        if (k + 1 < n && bpe_before(&c->heap[k + 1], &c->heap[k])) k++;
        if (!bpe_before(&c->heap[k], &last)) break;
        c->heap[i] = c->heap[k];
        i = k;
    }
    if (n) c->heap[i] = last;
    return top;
}

static bool bpe_whole(bpe_ctx *c, const char *piece, size_t n) {
    if (c->mapped_cap < 2 * n) {
        char *m = realloc(c->mapped, 2 * n);
        if (!m) { c->out->oom = true; return false; }
        c->mapped = m;
        c->mapped_cap = 2 * n;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)bytemap_encode((uint8_t)piece[i], c->mapped + k);
    int32_t id = vocab_find(c->v, c->mapped, k);
    if (id < 0) return false;
    ids_push(c->out, id);
    return true;
}

static void bpe_word(const char *piece, size_t n, void *ctx) {
    bpe_ctx *c = ctx;
    if (c->out->oom) return;
    if (c->v->ignore_merges && bpe_whole(c, piece, n)) return;
    if (c->sym_cap < n) {
        bpe_sym *s = realloc(c->sym, n * sizeof *s);
        if (!s) { c->out->oom = true; return; }
        c->sym = s;
        c->sym_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        c->sym[i] = (bpe_sym){(int)i - 1, i + 1 < n ? (int)i + 1 : -1, c->v->byte_id[(uint8_t)piece[i]], true};
    c->heap_n = 0;
    for (size_t i = 1; i < n; i++) bpe_push(c, (int)i - 1, (int)i);
    while (c->heap_n) {
        bpe_pair p = bpe_pop(c);
        bpe_sym *l = &c->sym[p.left], *r = &c->sym[p.right];
        if (!l->alive || !r->alive || l->next != p.right || l->id != p.lid || r->id != p.rid) continue;
        l->id = p.result;
        r->alive = false;
        l->next = r->next;
        if (r->next >= 0) c->sym[r->next].prev = p.left;
        bpe_push(c, l->prev, p.left);
        bpe_push(c, p.left, l->next);
    }
    for (int i = 0; i >= 0 && n > 0; i = c->sym[i].next) {
        int32_t id = c->sym[i].id >= 0 ? c->sym[i].id : c->v->unk;
        if (id >= 0) ids_push(c->out, id);
    }
}

void bpe_tokenize(const tok_vocab *v, const char *text, size_t len, tok_ids *out) {
    bpe_ctx c = {.v = v, .out = out};
    if (!pre_split(v->pre, text, len, bpe_word, &c)) out->oom = true;
    free(c.sym);
    free(c.heap);
    free(c.mapped);
}

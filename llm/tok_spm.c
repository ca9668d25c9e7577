/* tok_spm.c — SentencePiece-style BPE: merge the adjacent pair whose joined text is the token
 * with the highest score, until no adjacent pair is a token; characters left uncovered fall
 * back to their <0xXX> byte tokens (or <unk>).
 *
 * A space becomes "▁" (U+2581) and, with add_space_prefix, the run gets a leading "▁". Candidate
 * pairs sit in a binary heap (best score first, leftmost first on ties); a popped pair whose
 * symbols changed since it was pushed is stale and skipped, so a run of n characters costs
 * O(n log n). */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct spm_sym {
    int prev, next;       /* neighbours in the chain; -1 = none */
    size_t off, n;        /* bytes of the text; n = 0 once merged into its left neighbour */
} spm_sym;

typedef struct spm_pair {
    float score;
    int left, right;
    size_t size;          /* bytes of the joined text when pushed */
} spm_pair;

typedef struct spm_heap {
    spm_pair *v;
    size_t n, cap;
    bool oom;
} spm_heap;

static bool spm_before(const spm_pair *a, const spm_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void spm_heap_push(spm_heap *h, spm_pair p) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_pair *v = realloc(h->v, cap * sizeof *v);
        if (!v) { h->oom = true; return; }
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && spm_before(&p, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = p;
}

static spm_pair spm_heap_pop(spm_heap *h) {
    spm_pair top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && spm_before(&h->v[c + 1], &h->v[c])) c++;
        if (!spm_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static void spm_try_pair(const tok_vocab *v, const char *text, const spm_sym *sym, int left, int right, spm_heap *h) {
    if (left < 0 || right < 0) return;
    size_t size = sym[left].n + sym[right].n;
    int32_t id = vocab_find(v, text + sym[left].off, size);
    if (id < 0) return;
    spm_heap_push(h, (spm_pair){v->score[id], left, right, size});
}

static void spm_emit(const tok_vocab *v, const char *text, const spm_sym *s, tok_ids *out) {
    int32_t id = vocab_find(v, text + s->off, s->n);
    if (id >= 0) { ids_push(out, id); return; }
    for (size_t i = 0; i < s->n; i++) {
        int32_t b = v->byte_id[(uint8_t)text[s->off + i]];
        if (b < 0) b = v->unk;
        if (b >= 0) ids_push(out, b);
    }
}

void spm_tokenize(const tok_vocab *v, const char *raw, size_t len, bool prefix_space, tok_ids *out) {
    static const char space[] = "\xE2\x96\x81";   /* ▁ */
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += raw[i] == ' ';
    size_t tlen = len + spaces * 2 + (prefix_space ? 3 : 0);   /* a space (1 byte) becomes 3 */
    if (!tlen) return;
    char *text = malloc(tlen);
    spm_sym *sym = malloc(tlen * sizeof *sym);
    spm_heap h = {0};
    if (!text || !sym) { out->oom = true; goto done; }
    size_t t = 0;
    if (prefix_space) { memcpy(text, space, 3); t = 3; }
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') { memcpy(text + t, space, 3); t += 3; }
        else text[t++] = raw[i];
    }
    int n = 0;
    for (size_t off = 0; off < tlen; n++) {
        size_t cl = (size_t)utf8_len((uint8_t)text[off]);
        if (cl > tlen - off) cl = tlen - off;
        sym[n] = (spm_sym){n - 1, -1, off, cl};
        off += cl;
        if (off < tlen) sym[n].next = n + 1;
    }
    for (int i = 1; i < n; i++) spm_try_pair(v, text, sym, i - 1, i, &h);
    while (h.n) {
        spm_pair p = spm_heap_pop(&h);
        spm_sym *l = &sym[p.left], *r = &sym[p.right];
        if (!l->n || !r->n || l->n + r->n != p.size) continue;   /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        spm_try_pair(v, text, sym, l->prev, p.left, &h);
        spm_try_pair(v, text, sym, p.left, l->next, &h);
    }
    if (h.oom) { out->oom = true; goto done; }
    for (int i = 0; i >= 0 && n > 0; i = sym[i].next) spm_emit(v, text, &sym[i], out);
done:
    free(h.v);
    free(sym);
    free(text);
}

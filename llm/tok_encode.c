/* tok_encode.c — apr_tok_encode: cut special and added tokens out of the text, normalize the raw
 * runs between them (tokenizer.json normalizers), run the model's algorithm on each, add BOS / EOS.
 *
 * Specials are tried longest first; each one splits every raw run it occurs in. A token marked
 * lstrip / rstrip (Hugging Face added tokens) also swallows the whitespace before / after it.
 * As in Hugging Face, added tokens marked normalized are looked for in the normalized text, the
 * others in the raw text; fragment offsets index the text they were cut from. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct encode_frag {
    int32_t id;           /* >= 0: a special token; -1: raw text */
    size_t off, len;
} encode_frag;

typedef struct encode_frags {
    encode_frag *v;
    size_t n, cap;
    bool oom;
} encode_frags;

static void encode_add(encode_frags *f, int32_t id, size_t off, size_t len) {
    if (id < 0 && !len) return;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        encode_frag *v = realloc(f->v, cap * sizeof *v);
        if (!v) { f->oom = true; return; }
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = (encode_frag){id, off, len};
}

static bool encode_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Splits every raw fragment of *f at the occurrences of s[0, sl), the text of special token id
 * (its TOK_ADDED_* bits in strip). */
static void encode_cut(const char *text, int32_t id, const char *s, size_t sl, uint8_t strip, encode_frags *f,
                       encode_frags *tmp) {
    bool any = false;
    for (size_t i = 0; i < f->n && !any; i++)
        any = f->v[i].id < 0 && f->v[i].len >= sl && memmem(text + f->v[i].off, f->v[i].len, s, sl);
    if (!any) return;
    tmp->n = 0;
    for (size_t i = 0; i < f->n; i++) {
        encode_frag fr = f->v[i];
        if (fr.id >= 0) { encode_add(tmp, fr.id, fr.off, fr.len); continue; }
        size_t pos = fr.off, end = fr.off + fr.len;
        while (pos < end) {
            const char *hit = memmem(text + pos, end - pos, s, sl);
            if (!hit) break;
            size_t at = (size_t)(hit - text), left_end = at, next = at + sl;
            if (strip & TOK_ADDED_LSTRIP)
                while (left_end > pos && encode_is_space(text[left_end - 1])) left_end--;
            if (strip & TOK_ADDED_RSTRIP)
                while (next < end && encode_is_space(text[next])) next++;
            encode_add(tmp, -1, pos, left_end - pos);
            encode_add(tmp, id, at, sl);
            pos = next;
        }
        encode_add(tmp, -1, pos, end - pos);
    }
    encode_frags t = *f;
    *f = *tmp;
    *tmp = t;
}

/* Whether special id is cut out with these flags (control tokens only when parsing specials). */
static bool encode_wanted(const tok_vocab *v, int32_t id, unsigned flags) {
    uint8_t t = v->type[id];
    return (flags & TOK_PARSE_SPECIAL) || (t != TOK_TYPE_CONTROL && t != TOK_TYPE_UNKNOWN);
}

static void encode_bpe_run(const tok_vocab *v, const char *text, size_t len, bool at_start, tok_ids *out) {
    if (!(v->add_space_prefix && at_start && text[0] != ' ')) { bpe_tokenize(v, text, len, out); return; }
    char *t = malloc(len + 1);   /* Hugging Face ByteLevel add_prefix_space */
    if (!t) { out->oom = true; return; }
    t[0] = ' ';
    memcpy(t + 1, text, len);
    bpe_tokenize(v, t, len + 1, out);
    free(t);
}

/* One run of text with no special token in it, through the model's algorithm. */
static void encode_run(const tok_vocab *v, const char *text, size_t len, bool at_start, bool *prev_special, tok_ids *out) {
    if (!len) return;
    if (v->model == TOK_MODEL_SPM) spm_tokenize(v, text, len, v->add_space_prefix && *prev_special, out);
    else encode_bpe_run(v, text, len, at_start, out);
    *prev_special = false;
}

/* A raw run through the normalizer, as Hugging Face does before pre-tokenizing; the added tokens
 * marked normalized are then cut out of the normalized text, by their normalized contents. */
static void encode_normalized(const tok_vocab *v, const char *raw, size_t len, bool at_start, unsigned flags,
                              bool *prev_special, tok_ids *out) {
    size_t n;
    char *t = norm_apply(v->norm, raw, len, &n);
    if (!t) { out->oom = true; return; }
    encode_frags g = {0}, tmp = {0};
    encode_add(&g, -1, 0, n);
    for (int32_t k = 0; k < v->n_nspecials && !g.oom && !tmp.oom; k++) {
        const tok_nspecial *ns = &v->nspecials[k];
        if (encode_wanted(v, ns->id, flags)) encode_cut(t, ns->id, ns->text, ns->len, v->strip[ns->id], &g, &tmp);
    }
    for (size_t i = 0; i < g.n && !g.oom && !tmp.oom; i++) {
        encode_frag fr = g.v[i];
        if (fr.id >= 0) { ids_push(out, fr.id); *prev_special = true; continue; }
        encode_run(v, t + fr.off, fr.len, at_start && fr.off == 0, prev_special, out);
    }
    if (g.oom || tmp.oom) out->oom = true;
    free(g.v);
    free(tmp.v);
    free(t);
}

int64_t apr_tok_encode(const tok_vocab *v, const char *text, size_t len, unsigned flags, int32_t *ids, int64_t cap) {
    tok_ids out = {0};
    encode_frags f = {0}, tmp = {0};
    if ((flags & TOK_ADD_BOS) && apr_tok_add_bos(v)) ids_push(&out, v->bos);
    encode_add(&f, -1, 0, len);
    for (int32_t k = 0; k < v->n_specials && !f.oom && !tmp.oom; k++) {
        int32_t id = v->specials[k];
        if (v->norm && (v->strip[id] & TOK_ADDED_NORMALIZED)) continue;   /* matched after normalizing */
        if (encode_wanted(v, id, flags)) encode_cut(text, id, v->text[id], v->len[id], v->strip[id], &f, &tmp);
    }
    bool prev_special = true;   /* SPM: a raw run at the start or after a special gets the "▁" */
    for (size_t i = 0; i < f.n && !f.oom && !tmp.oom; i++) {
        encode_frag fr = f.v[i];
        if (fr.id >= 0) { ids_push(&out, fr.id); prev_special = true; continue; }
        if (v->norm) encode_normalized(v, text + fr.off, fr.len, fr.off == 0, flags, &prev_special, &out);
        else encode_run(v, text + fr.off, fr.len, fr.off == 0, &prev_special, &out);
    }
    if ((flags & TOK_ADD_EOS) && apr_tok_add_eos(v)) ids_push(&out, v->eos);
    int64_t n = f.oom || tmp.oom || out.oom ? -1 : (int64_t)out.n;
    if (n > 0 && ids && cap > 0) memcpy(ids, out.v, (size_t)(n < cap ? n : cap) * sizeof *ids);
    free(out.v);
    free(f.v);
    free(tmp.v);
    return n;
}

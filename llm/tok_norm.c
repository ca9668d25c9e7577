/* tok_norm.c — the normalizer of a Hugging Face tokenizer.json: its steps, parsed once, and
 * applied in order to each run of text between special tokens before pre-tokenization.
 *
 * Types: NFC, NFD, NFKC, NFKD, Lowercase, Strip (strip_left / strip_right), Replace (a String or
 * Regex pattern and a content), Prepend, and Sequence of any of these (flattened into one list).
 * Unicode work is utf8proc's (tok_norm_unicode.c), Replace's tok_norm_replace.c. Any other type
 * (BertNormalizer, StripAccents, Nmt, Precompiled, ByteLevel, ...) is refused, naming the file,
 * rather than skipped, since skipping it would silently change the ids. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef enum norm_kind { NORMK_FORM, NORMK_LOWER, NORMK_STRIP, NORMK_REPLACE, NORMK_PREPEND } norm_kind;

typedef struct norm_step {
    norm_kind kind;
    norm_form form;           /* NORMK_FORM */
    bool left, right;         /* NORMK_STRIP */
    norm_replace *replace;    /* NORMK_REPLACE */
    char *prepend;            /* NORMK_PREPEND */
} norm_step;

struct tok_norm {
    norm_step *steps;
    int n, cap;
};

/* ---------------------------------------------------------------- the output buffer */

void norm_buf_put(norm_buf *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* ---------------------------------------------------------------- parsing */

static apr_status norm_add(tok_norm *t, norm_step st, const char *path, apr_error *err) {
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 4;
        norm_step *s = realloc(t->steps, (size_t)cap * sizeof *s);
        if (!s) {
            norm_replace_free(st.replace);
            free(st.prepend);
            return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
        }
        t->steps = s;
        t->cap = cap;
    }
    t->steps[t->n++] = st;
    return APR_OK;
}

static bool norm_bool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(b) ? cJSON_IsTrue(b) : dflt;
}

static apr_status norm_node(const cJSON *node, tok_norm *t, const char *path, int depth, apr_error *err) {
    if (!node || cJSON_IsNull(node)) return APR_OK;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "type"));
    if (!type) return apr_error_set(err, APR_ERR_FORMAT, "%s: a normalizer without a type", path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(node, "normalizers"), *it;
        if (!cJSON_IsArray(list)) return apr_error_set(err, APR_ERR_FORMAT, "%s: normalizer Sequence without a \"normalizers\" list", path);
        if (depth > 16) return apr_error_set(err, APR_ERR_FORMAT, "%s: normalizer Sequences nested too deeply", path);
        apr_status st;
        cJSON_ArrayForEach(it, list)
            if ((st = norm_node(it, t, path, depth + 1, err))) return st;
        return APR_OK;
    }
    static const struct { const char *name; norm_form form; } forms[] = {
        {"NFC", NORM_NFC}, {"NFD", NORM_NFD}, {"NFKC", NORM_NFKC}, {"NFKD", NORM_NFKD},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        if (!strcmp(type, forms[i].name)) return norm_add(t, (norm_step){.kind = NORMK_FORM, .form = forms[i].form}, path, err);
    if (!strcmp(type, "Lowercase")) return norm_add(t, (norm_step){.kind = NORMK_LOWER}, path, err);
    if (!strcmp(type, "Strip"))
        return norm_add(t, (norm_step){.kind = NORMK_STRIP, .left = norm_bool(node, "strip_left", true), .right = norm_bool(node, "strip_right", true)}, path, err);
    if (!strcmp(type, "Prepend")) {
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "prepend"));
        if (!p) return apr_error_set(err, APR_ERR_FORMAT, "%s: normalizer Prepend without a \"prepend\" string", path);
        norm_step st = {.kind = NORMK_PREPEND, .prepend = strdup(p)};
        if (!st.prepend) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
        return norm_add(t, st, path, err);
    }
    if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(node, "pattern");
        const char *re = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pat, "Regex"));
        const char *lit = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pat, "String"));
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "content"));
        if ((!re && !lit) || !content)
            return apr_error_set(err, APR_ERR_FORMAT, "%s: normalizer Replace needs a String or Regex pattern and a content", path);
        norm_step st = {.kind = NORMK_REPLACE};
        apr_status s = norm_replace_new(re ? re : lit, re != NULL, content, &st.replace, err);
        if (s) {
            char m[sizeof err->msg];
            snprintf(m, sizeof m, "%s", err ? err->msg : "");
            return apr_error_set(err, s, "%s: normalizer Replace: %s", path, m);
        }
        return norm_add(t, st, path, err);
    }
    return apr_error_set(err, APR_ERR_UNSUPPORTED,
                         "%s: normalizer '%s' is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend and Sequence are)",
                         path, type);
}

apr_status norm_parse(const cJSON *node, const char *path, tok_norm **out, apr_error *err) {
    *out = NULL;
    tok_norm *t = calloc(1, sizeof *t);
    if (!t) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
    apr_status st = norm_node(node, t, path, 0, err);
    if (st || !t->n) { norm_free(t); return st; }
    *out = t;
    return APR_OK;
}

void norm_free(tok_norm *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) {
        norm_replace_free(t->steps[i].replace);
        free(t->steps[i].prepend);
    }
    free(t->steps);
    free(t);
}

/* ---------------------------------------------------------------- applying */

static void norm_step_run(const norm_step *st, const char *s, size_t len, norm_buf *out) {
    switch (st->kind) {
    case NORMK_FORM: norm_unicode_form(st->form, s, len, out); return;
    case NORMK_LOWER: norm_unicode_lower(s, len, out); return;
    case NORMK_STRIP: norm_unicode_strip(s, len, st->left, st->right, out); return;
    case NORMK_REPLACE: norm_replace_run(st->replace, s, len, out); return;
    case NORMK_PREPEND:
        if (len) norm_buf_put(out, st->prepend, strlen(st->prepend));   /* Hugging Face: never onto empty text */
        norm_buf_put(out, s, len);
        return;
    }
}

char *norm_apply(const tok_norm *t, const char *s, size_t len, size_t *out_len) {
    norm_buf a = {0}, b = {0};
    norm_buf_put(&a, s, len);
    for (int i = 0; t && i < t->n && !a.oom; i++) {
        b.n = 0;
        b.oom = false;
        norm_buf_put(&b, "", 0);   /* allocated even when the step leaves nothing */
        norm_step_run(&t->steps[i], a.p, a.n, &b);
        norm_buf x = a; a = b; b = x;
    }
    free(b.p);
    if (a.oom) { free(a.p); return NULL; }
    if (out_len) *out_len = a.n;
    return a.p;
}

/* ---------------------------------------------------------------- normalized added tokens */

static int norm_nspecial_cmp(const void *x, const void *y) {
    const tok_nspecial *a = x, *b = y;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

apr_status norm_specials(tok_vocab *v, apr_error *err) {
    int32_t k = 0;
    for (int32_t i = 0; i < v->n_specials; i++) k += (v->strip[v->specials[i]] & TOK_ADDED_NORMALIZED) != 0;
    if (!v->norm || !k) return APR_OK;
    v->nspecials = calloc((size_t)k, sizeof *v->nspecials);
    if (!v->nspecials) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < v->n_specials; i++) {
        int32_t id = v->specials[i];
        if (!(v->strip[id] & TOK_ADDED_NORMALIZED)) continue;
        size_t n;
        char *t = norm_apply(v->norm, v->text[id], v->len[id], &n);
        if (!t) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        if (!n) { free(t); continue; }   /* normalized away: it can never match */
        v->nspecials[v->n_nspecials++] = (tok_nspecial){id, (uint32_t)n, t};
    }
    qsort(v->nspecials, (size_t)v->n_nspecials, sizeof *v->nspecials, norm_nspecial_cmp);
    return APR_OK;
}

/* ---------------------------------------------------------------- public */

char *apr_tok_normalize(const tok_vocab *v, const char *text, size_t len, size_t *out_len) {
    return norm_apply(v->norm, text, len, out_len);
}

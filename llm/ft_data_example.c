/* ft_data_example.c — one training example (text, prompt/completion or a conversation) into token ids with loss flags. */
#include <stdlib.h>
#include <string.h>

#include "ft_data_internal.h"

/* ---------------------------------------------------------------- the stream */

bool ftd_stream_put(ftd_stream *s, const int32_t *ids, const uint8_t *loss, int64_t n, bool all_loss) {
    if (n <= 0) return true;
    if (s->n + n > s->cap) {
        int64_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + n) cap *= 2;
        int32_t *ni = realloc(s->ids, (size_t)cap * sizeof *ni);
        if (!ni) return false;
        s->ids = ni;
        uint8_t *nl = realloc(s->loss, (size_t)cap);
        if (!nl) return false;
        s->loss = nl;
        s->cap = cap;
    }
    memcpy(s->ids + s->n, ids, (size_t)n * sizeof *ids);
    if (loss) memcpy(s->loss + s->n, loss, (size_t)n);
    else memset(s->loss + s->n, all_loss ? 1 : 0, (size_t)n);
    s->n += n;
    return true;
}

void ftd_stream_free(ftd_stream *s) {
    free(s->ids);
    free(s->loss);
    *s = (ftd_stream){0};
}

static bool ex_put_id(ftd_stream *s, int32_t id, bool loss) { return ftd_stream_put(s, &id, NULL, 1, loss); }

/* ---------------------------------------------------------------- helpers */

/* The tokens of text[0, len): malloc'd into *out, their number in *n. false when out of memory. */
static bool ex_encode(const tok_vocab *v, const char *text, size_t len, unsigned flags, int32_t **out, int64_t *n) {
    int64_t cap = (int64_t)len + 8;   /* at most one token a byte, plus a prefix space and specials */
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return false;
    int64_t k = apr_tok_encode(v, text, len, flags, ids, cap);
    if (k > cap) {
        int32_t *more = realloc(ids, (size_t)k * sizeof *ids);
        if (!more) { free(ids); return false; }
        ids = more;
        k = apr_tok_encode(v, text, len, flags, ids, k);
    }
    if (k < 0) { free(ids); return false; }
    *out = ids;
    *n = k;
    return true;
}

/* The length of the common prefix of a[0, na) and b[0, nb). */
static int64_t ex_lcp(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    int64_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

/* Returns the error for a malformed example (s cut back to n0) or for memory. */
static apr_status ex_fail(ftd_stream *s, int64_t n0, apr_status st, apr_error *err, const char *msg) {
    s->n = n0;
    return apr_error_set(err, st, "%s", msg);
}

/* BOS (no loss) unless ids already opens with it, ids with their flags, EOS (flagged eos_loss)
 * unless ids already ends with it. */
static bool ex_put_example(ftd_stream *s, const tok_vocab *v, const int32_t *ids, const uint8_t *loss, int64_t n,
                           bool all_loss, bool eos_loss) {
    int32_t bos = apr_tok_bos(v), eos = apr_tok_eos(v);
    if (bos >= 0 && !(n > 0 && ids[0] == bos) && !ex_put_id(s, bos, false)) return false;
    if (!ftd_stream_put(s, ids, loss, n, all_loss)) return false;
    if (eos >= 0 && !(n > 0 && ids[n - 1] == eos) && !ex_put_id(s, eos, eos_loss)) return false;
    return true;
}

/* ---------------------------------------------------------------- text */

/* A long text is tokenized in pieces of about EX_PIECE bytes, so that the tokenizer's working
 * memory (tens of bytes per byte of text) stays small: cut where tokenizers do not merge (after
 * a newline, before a space), each piece tokenized behind the text before it back to a newline
 * (at most EX_CTX bytes) as context, and the context's own tokens dropped. When a context's
 * tokens are not a prefix of context + piece (a token straddles the cut), the whole text is
 * tokenized in one go instead. */
#define EX_PIECE ((size_t)256 << 10)
#define EX_CTX ((size_t)4096)

static bool ex_space(char c) { return c == 0 || strchr(" \t\n\r\f\v", c); }

/* The first cut at or after from: just after a '\n' followed by a non-space, else (none in the
 * next EX_PIECE bytes) just before a space between two non-spaces; len when there is neither. */
static size_t ex_next_cut(const char *t, size_t len, size_t from) {
    size_t lim = len - from > EX_PIECE ? from + EX_PIECE : len;
    for (size_t i = from - 1; i + 1 < lim; i++)
        if (t[i] == '\n' && !ex_space(t[i + 1])) return i + 1;
    for (size_t i = from; i + 1 < len; i++)
        if (t[i] == ' ' && !ex_space(t[i - 1]) && !ex_space(t[i + 1])) return i;
    return len;
}

/* Where the context of a piece starting at cut > 0 begins: just after the '\n' before cut - 1, or
 * EX_CTX bytes back from the start of a UTF-8 character. */
static size_t ex_context(const char *t, size_t cut) {
    size_t lo = cut > EX_CTX ? cut - EX_CTX : 0, k = cut - 1;
    while (k > lo && t[k - 1] != '\n') k--;
    while (k < cut - 1 && ((unsigned char)t[k] & 0xC0) == 0x80) k++;
    return k;
}

/* Appends piece [start, end) of t's tokens to *ids (n, cap); *clean false when the cut at start
 * is not clean. false when out of memory. */
static bool ex_encode_piece(const tok_vocab *v, const char *t, size_t start, size_t end, int32_t **ids, int64_t *n,
                            int64_t *cap, bool *clean) {
    int32_t *c = NULL, *w = NULL;
    int64_t nc = 0, nw = 0, k = 0;
    size_t cs = start ? ex_context(t, start) : start;
    bool ok = start == 0 || ex_encode(v, t + cs, start - cs, 0, &c, &nc);
    ok = ok && ex_encode(v, t + cs, end - cs, 0, &w, &nw);
    if (ok && start) {
        k = ex_lcp(c, nc, w, nw);
        *clean = k == nc;
    }
    if (ok && *clean && *n + (nw - k) > *cap) {
        int64_t ncap = *cap ? *cap : 4096;
        while (ncap < *n + (nw - k)) ncap *= 2;
        int32_t *more = realloc(*ids, (size_t)ncap * sizeof *more);
        ok = more != NULL;
        if (ok) { *ids = more; *cap = ncap; }
    }
    if (ok && *clean) {
        memcpy(*ids + *n, w + k, (size_t)(nw - k) * sizeof *w);
        *n += nw - k;
    }
    free(c);
    free(w);
    return ok;
}

/* The tokens of a text of any length (no special tokens parsed); see EX_PIECE. */
static bool ex_encode_text(const tok_vocab *v, const char *t, size_t len, int32_t **out, int64_t *n) {
    if (len <= 2 * EX_PIECE) return ex_encode(v, t, len, 0, out, n);
    int32_t *ids = NULL;
    int64_t k = 0, cap = 0;
    bool clean = true, ok = true;
    for (size_t start = 0; ok && clean && start < len;) {
        size_t end = len - start <= 2 * EX_PIECE ? len : ex_next_cut(t, len, start + EX_PIECE);
        ok = ex_encode_piece(v, t, start, end, &ids, &k, &cap, &clean);
        start = end;
    }
    if (ok && clean) {
        *out = ids;
        *n = k;
        return true;
    }
    free(ids);
    return ok && ex_encode(v, t, len, 0, out, n);
}

apr_status ftd_example_text(const char *text, size_t len, const tok_vocab *v, ftd_stream *s, apr_error *err) {
    int64_t n0 = s->n, n;
    int32_t *ids;
    if (!ex_encode_text(v, text, len, &ids, &n)) return ex_fail(s, n0, APR_ERR_NOMEM, err, "out of memory tokenizing");
    /* a text's own tokens never open with BOS (no TOK_ADD_BOS, no special parsing): BOS always goes in */
    bool ok = ex_put_example(s, v, ids, NULL, n, true, true);
    free(ids);
    return ok ? APR_OK : ex_fail(s, n0, APR_ERR_NOMEM, err, "out of memory");
}

/* ---------------------------------------------------------------- prompt / completion */

/* The completion's ids are those of prompt + completion after the prompt's own ids (see ft_data.h). */
static apr_status ex_completion(const char *prompt, const char *completion, const tok_vocab *v, ftd_stream *s,
                                apr_error *err) {
    int64_t n0 = s->n, np = 0, nw = 0;
    size_t lp = strlen(prompt), lc = strlen(completion);
    int32_t *p = NULL, *w = NULL;
    uint8_t *loss = NULL;
    char *whole = malloc(lp + lc + 1);
    bool ok = whole != NULL;
    if (ok) {
        memcpy(whole, prompt, lp);
        memcpy(whole + lp, completion, lc + 1);
    }
    ok = ok && ex_encode(v, prompt, lp, 0, &p, &np);
    ok = ok && ex_encode(v, whole, lp + lc, 0, &w, &nw);
    ok = ok && (loss = malloc((size_t)nw + 1)) != NULL;
    if (ok) {
        int64_t k = ex_lcp(p, np, w, nw);
        memset(loss, 0, (size_t)k);
        memset(loss + k, 1, (size_t)(nw - k));
        ok = ex_put_example(s, v, w, loss, nw, false, true);
    }
    free(whole);
    free(p);
    free(w);
    free(loss);
    return ok ? APR_OK : ex_fail(s, n0, APR_ERR_NOMEM, err, "out of memory");
}

/* ---------------------------------------------------------------- messages */

/* The conversation msgs[0, n) rendered and tokenized (TOK_PARSE_SPECIAL). */
static bool ex_render(const apr_ftdata_opts *o, const tok_vocab *v, const chat_msg *m, size_t n, bool gen,
                      int32_t **ids, int64_t *nids) {
    char *t = apr_chat_format(o->chat, m, n, gen, o->bos_text, o->eos_text);
    if (!t) return false;
    bool ok = ex_encode(v, t, strlen(t), TOK_PARSE_SPECIAL, ids, nids);
    free(t);
    return ok;
}

/* Checks the "messages" array: *out gets its n turns (pointing into the JSON). APR_ERR_FORMAT
 * with the problem (a bad turn, no assistant turn) or APR_ERR_NOMEM. */
static apr_status ex_messages_check(const cJSON *arr, chat_msg **out, size_t *n, apr_error *err) {
    if (!cJSON_IsArray(arr)) return apr_error_set(err, APR_ERR_FORMAT, "\"messages\" is not an array");
    int cnt = cJSON_GetArraySize(arr);
    if (cnt <= 0) return apr_error_set(err, APR_ERR_FORMAT, "\"messages\" is empty");
    chat_msg *m = calloc((size_t)cnt, sizeof *m);
    if (!m) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    apr_status st = APR_OK;
    bool asst = false;
    int i = 0;
    for (const cJSON *e = arr->child; e && !st; e = e->next, i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsObject(e)) st = apr_error_set(err, APR_ERR_FORMAT, "\"messages\"[%d] is not an object", i);
        else if (!cJSON_IsString(role))
            st = apr_error_set(err, APR_ERR_FORMAT, "\"messages\"[%d] has no \"role\" string", i);
        else if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                 strcmp(role->valuestring, "assistant"))
            st = apr_error_set(err, APR_ERR_FORMAT, "\"messages\"[%d]: unknown role \"%.64s\"", i, role->valuestring);
        else if (!cJSON_IsString(content))
            st = apr_error_set(err, APR_ERR_FORMAT, "\"messages\"[%d] has no \"content\" string", i);
        else {
            m[i] = (chat_msg){role->valuestring, content->valuestring};
            asst = asst || !strcmp(role->valuestring, "assistant");
        }
    }
    if (!st && !asst) st = apr_error_set(err, APR_ERR_FORMAT, "\"messages\" has no assistant turn");
    if (st) { free(m); return st; }
    *out = m;
    *n = (size_t)cnt;
    return APR_OK;
}

/* Loss on each assistant turn: F[lcp(A, F), lcp(B, F)) with A the conversation before the turn
 * plus the generation prompt and B the conversation through the turn (see ft_data.h). */
static apr_status ex_messages(const cJSON *arr, const tok_vocab *v, const apr_ftdata_opts *o, ftd_stream *s,
                              apr_error *err) {
    int64_t n0 = s->n;
    chat_msg *m = NULL;
    size_t n = 0;
    apr_status st = ex_messages_check(arr, &m, &n, err);
    if (st) return st;
    int32_t *f = NULL;
    int64_t nf = 0;
    uint8_t *loss = NULL;
    bool ok = ex_render(o, v, m, n, false, &f, &nf) && (loss = calloc((size_t)nf + 1, 1)) != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        if (strcmp(m[i].role, "assistant")) continue;
        int32_t *a = NULL, *b = NULL;
        int64_t na = 0, nb = 0;
        ok = ex_render(o, v, m, i, true, &a, &na) && ex_render(o, v, m, i + 1, false, &b, &nb);
        if (ok) {
            int64_t lo = ex_lcp(a, na, f, nf), hi = ex_lcp(b, nb, f, nf);
            if (hi > lo) memset(loss + lo, 1, (size_t)(hi - lo));
        }
        free(a);
        free(b);
    }
    ok = ok && ex_put_example(s, v, f, loss, nf, false, !strcmp(m[n - 1].role, "assistant"));
    free(f);
    free(loss);
    free(m);
    return ok ? APR_OK : ex_fail(s, n0, APR_ERR_NOMEM, err, "out of memory");
}

/* ---------------------------------------------------------------- one JSON line */

apr_status ftd_example_json(const cJSON *obj, const tok_vocab *v, const apr_ftdata_opts *o, ftd_stream *s,
                            apr_error *err) {
    if (!cJSON_IsObject(obj)) return apr_error_set(err, APR_ERR_FORMAT, "not a JSON object");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    const cJSON *completion = cJSON_GetObjectItemCaseSensitive(obj, "completion");
    int forms = (msgs != NULL) + (text != NULL) + (prompt || completion);
    if (!forms) return apr_error_set(err, APR_ERR_FORMAT, "no \"text\", \"prompt\"/\"completion\" or \"messages\"");
    if (forms > 1)
        return apr_error_set(err, APR_ERR_FORMAT, "more than one of \"text\", \"prompt\"/\"completion\", \"messages\"");
    if (msgs) return ex_messages(msgs, v, o, s, err);
    if (text) {
        if (!cJSON_IsString(text)) return apr_error_set(err, APR_ERR_FORMAT, "\"text\" is not a string");
        return ftd_example_text(text->valuestring, strlen(text->valuestring), v, s, err);
    }
    if (!cJSON_IsString(prompt)) return apr_error_set(err, APR_ERR_FORMAT, "no \"prompt\" string");
    if (!cJSON_IsString(completion)) return apr_error_set(err, APR_ERR_FORMAT, "no \"completion\" string");
    return ex_completion(prompt->valuestring, completion->valuestring, v, s, err);
}

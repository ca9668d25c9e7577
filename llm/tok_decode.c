/* tok_decode.c — ids back to text: the bytes of one token, and the streaming decoder that only
 * ever hands out complete, valid UTF-8.
 *
 * SPM: "▁" is a space, <0xXX> is the byte XX, and the leading space of the first piece after BOS
 * is dropped. BPE: each character of a token is the byte the GPT-2 map gives it. Control and
 * unknown tokens are empty unless TOK_DECODE_SPECIAL; user-defined tokens are their text. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static int decode_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int apr_tok_token_bytes(const tok_vocab *v, int32_t id, unsigned flags, char *buf, int cap) {
    if (id < 0 || id >= v->n) return -1;
    const char *t = v->text[id];
    size_t n = v->len[id];
    int k = 0;
#define DECODE_PUT(c) do { if (k < cap) buf[k] = (char)(c); k++; } while (0)
    switch (v->type[id]) {
    case TOK_TYPE_CONTROL:
    case TOK_TYPE_UNKNOWN:
        if (!(flags & TOK_DECODE_SPECIAL)) return 0;
        /* fall through */
    case TOK_TYPE_USER_DEFINED:
        for (size_t i = 0; i < n; i++) DECODE_PUT(t[i]);
        return k;
    case TOK_TYPE_UNUSED:
        return 0;
    case TOK_TYPE_BYTE:
        if (n == 6 && !memcmp(t, "<0x", 3) && t[5] == '>' && decode_hex(t[3]) >= 0 && decode_hex(t[4]) >= 0) {
            DECODE_PUT(decode_hex(t[3]) * 16 + decode_hex(t[4]));
            return k;
        }
        break;
    default:
        break;
    }
    if (v->model == TOK_MODEL_SPM) {
        for (size_t i = 0; i < n; i++) {
            if (i + 3 <= n && !memcmp(t + i, "\xE2\x96\x81", 3)) { DECODE_PUT(' '); i += 2; }
            else DECODE_PUT(t[i]);
        }
        return k;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        bool inc;
        int l = utf8_decode((const uint8_t *)t + i, n - i, &cp, &inc);
        int b = l > 0 ? bytemap_decode(cp) : -1;
        if (b >= 0) { DECODE_PUT(b); i += (size_t)l; continue; }
        int m = l > 0 ? l : 1;   /* not a map character: copy it as it is */
        for (int j = 0; j < m; j++) DECODE_PUT(t[i + (size_t)j]);
        i += (size_t)m;
    }
    return k;
#undef DECODE_PUT
}

/* ---------------------------------------------------------------- streaming */

struct tok_stream {
    const tok_vocab *v;
    unsigned flags;
    uint8_t pend[4];      /* the start of a character still missing bytes */
    int npend;
    bool strip;           /* drop the leading space of the next non-empty piece */
    char *buf;            /* the text handed out */
    size_t cap;
    char *piece;          /* scratch for one token's bytes */
    size_t piece_cap;
};

static bool stream_reserve(char **p, size_t *cap, size_t need) {
    if (*cap >= need) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    char *q = realloc(*p, c);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

tok_stream *apr_tok_stream_new(const tok_vocab *v, unsigned flags) {
    tok_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->v = v;
    s->flags = flags;
    s->strip = (flags & TOK_DECODE_STRIP_FIRST) && v->model == TOK_MODEL_SPM && v->add_space_prefix;
    if (!stream_reserve(&s->buf, &s->cap, 64)) { free(s); return NULL; }
    s->buf[0] = 0;
    return s;
}

void apr_tok_stream_free(tok_stream *s) {
    if (!s) return;
    free(s->buf);
    free(s->piece);
    free(s);
}

static const char *stream_empty(tok_stream *s, size_t *len) {
    if (len) *len = 0;
    if (s->buf) s->buf[0] = 0;
    return s->buf ? s->buf : "";
}

static void stream_fffd(char *out, size_t *k) {
    memcpy(out + *k, "\xEF\xBF\xBD", 3);
    *k += 3;
}

const char *apr_tok_stream_push(tok_stream *s, int32_t id, size_t *len) {
    const tok_vocab *v = s->v;
    if (id < 0 || id >= v->n) return stream_empty(s, len);
    if (id == v->bos && v->model == TOK_MODEL_SPM && v->add_space_prefix) s->strip = true;
    int n = apr_tok_token_bytes(v, id, s->flags, s->piece, (int)s->piece_cap);
    if (n > (int)s->piece_cap) {
        if (!stream_reserve(&s->piece, &s->piece_cap, (size_t)n)) return stream_empty(s, len);
        n = apr_tok_token_bytes(v, id, s->flags, s->piece, (int)s->piece_cap);
    }
    const char *p = s->piece;
    if (n > 0 && s->strip) {
        s->strip = false;
        if (p[0] == ' ') { p++; n--; }
    }
    /* pending bytes + the piece, decoded character by character */
    size_t total = (size_t)s->npend + (size_t)(n > 0 ? n : 0);
    uint8_t local[64];
    uint8_t *in = total <= sizeof local ? local : malloc(total);
    if (!in || !stream_reserve(&s->buf, &s->cap, total * 3 + 1)) {
        if (in != local) free(in);
        return stream_empty(s, len);
    }
    memcpy(in, s->pend, (size_t)s->npend);
    if (n > 0) memcpy(in + s->npend, p, (size_t)n);
    size_t k = 0, i = 0;
    s->npend = 0;
    while (i < total) {
        uint32_t cp;
        bool inc;
        int l = utf8_decode(in + i, total - i, &cp, &inc);
        if (l > 0) { memcpy(s->buf + k, in + i, (size_t)l); k += (size_t)l; i += (size_t)l; continue; }
        if (inc) {   /* a valid start that the next token may finish */
            s->npend = (int)(total - i);
            memcpy(s->pend, in + i, (size_t)s->npend);
            break;
        }
        stream_fffd(s->buf, &k);
        i++;
    }
    if (in != local) free(in);
    s->buf[k] = 0;
    if (len) *len = k;
    return s->buf;
}

const char *apr_tok_stream_flush(tok_stream *s, size_t *len) {
    size_t k = 0;
    if (s->npend) stream_fffd(s->buf, &k);   /* buf always holds at least 64 bytes */
    s->npend = 0;
    s->buf[k] = 0;
    s->strip = (s->flags & TOK_DECODE_STRIP_FIRST) && s->v->model == TOK_MODEL_SPM && s->v->add_space_prefix;
    if (len) *len = k;
    return s->buf;
}

char *apr_tok_decode(const tok_vocab *v, const int32_t *ids, size_t n, unsigned flags, size_t *len) {
    tok_stream *s = apr_tok_stream_new(v, flags);
    char *out = NULL;
    size_t k = 0, cap = 0;
    bool ok = s && stream_reserve(&out, &cap, 64);
    for (size_t i = 0; ok && i <= n; i++) {
        size_t l;
        const char *t = i < n ? apr_tok_stream_push(s, ids[i], &l) : apr_tok_stream_flush(s, &l);
        ok = stream_reserve(&out, &cap, k + l + 1);
        if (ok) { memcpy(out + k, t, l); k += l; }
    }
    apr_tok_stream_free(s);
    if (!ok) { free(out); return NULL; }
    out[k] = 0;
    if (len) *len = k;
    return out;
}

/* tok_internal.h — the tok_vocab structure and the helpers the tok_*.c files share. */
#ifndef APR_TOK_INTERNAL_H
#define APR_TOK_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

#define TOK_MAX_REGEX 8

/* A growable array of ids. */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
    bool oom;                      /* an append failed; the array is incomplete */
} tok_ids;

/* One entry of the merge table: the pair (left id, right id) -> its rank and the merged id. */
typedef struct tok_merge {
    uint64_t key;                  /* (left << 32) | right; UINT64_MAX = empty slot */
    int32_t rank;
    int32_t result;
} tok_merge;

typedef struct pre_tokenizer pre_tokenizer;   /* tok_pre.c */
typedef struct tok_norm tok_norm;             /* tok_norm.c */

/* Bits of tok_vocab.strip: how a Hugging Face added token is matched. */
enum {
    TOK_ADDED_LSTRIP = 1,          /* swallows the whitespace before it */
    TOK_ADDED_RSTRIP = 2,          /* swallows the whitespace after it */
    TOK_ADDED_NORMALIZED = 4,      /* matched in the normalized text (listed in nspecials), not the raw text */
};

/* An added token matched after normalization, by its content as the normalizer leaves it. */
typedef struct tok_nspecial {
    int32_t id;
    uint32_t len;
    char *text;                    /* malloc'd, NUL-terminated */
} tok_nspecial;

struct tok_vocab {
    tok_model model;
    int32_t n;                     /* tokens */
    char **text;                   /* [n] NUL-terminated token texts (in one arena) */
    uint32_t *len;                 /* [n] byte lengths */
    float *score;                  /* [n] SPM scores (0 for BPE) */
    uint8_t *type;                 /* [n] tok_type */
    uint8_t *strip;                /* [n] TOK_ADDED_* bits (added tokens) */
    char *arena;

    int32_t *hash;                 /* [hash_cap] text -> id, open addressing, -1 = empty */
    uint32_t hash_cap;             /* power of two */

    tok_merge *merges;             /* [merge_cap] open addressing */
    uint32_t merge_cap;

    int32_t *specials;             /* ids cut out before tokenizing, longest text first */
    int32_t n_specials;
    tok_norm *norm;                /* tokenizer.json's normalizer, applied to the text between specials; NULL = none */
    tok_nspecial *nspecials;       /* TOK_ADDED_NORMALIZED specials (when norm is set), longest first */
    int32_t n_nspecials;

    int32_t bos, eos, unk, pad;    /* -1 = none */
    bool add_bos, add_eos;
    bool add_space_prefix;         /* SPM: "▁" in front of the text; BPE: a space (HF ByteLevel) */
    bool ignore_merges;            /* BPE: a pre-token that is a whole token is taken as is */
    int32_t byte_id[256];          /* SPM: <0xXX>; BPE: the token of the byte's GPT-2 character; -1 = none */

    char pre_name[64];
    pre_tokenizer *pre;            /* BPE only */
};

/* ---- tok_vocab.c: building and looking up a vocab */
tok_vocab *vocab_new(tok_model model, int32_t n);    /* arrays allocated, texts unset */
/* Sets every token text from texts[i] (lens may be NULL = strlen); builds the hash. */
apr_status vocab_set_texts(tok_vocab *v, const char *const *texts, const uint32_t *lens, apr_error *err);
/* Adds merge rank r of "left right"; silently skips pairs whose parts or result are not tokens. */
void vocab_add_merge(tok_vocab *v, const char *left, size_t llen, const char *right, size_t rlen, int32_t rank);
apr_status vocab_merges_alloc(tok_vocab *v, uint64_t n_merges, apr_error *err);
bool vocab_merge_find(const tok_vocab *v, int32_t left, int32_t right, int32_t *rank, int32_t *result);
/* Fills byte_id and the special-token list from the texts and types; sets pre (BPE). */
apr_status vocab_finish(tok_vocab *v, const char *const *regexes, int n_regex, apr_error *err);
int32_t vocab_find(const tok_vocab *v, const char *s, size_t len);

/* ---- tok_pre.c: the pre-tokenizer regexes */
/* The regexes of a named family (tokenizer.ggml.pre); n = 0 and false for an unknown name. */
bool pre_family(const char *name, const char *const **regexes, int *n);
apr_status pre_compile(const char *const *regexes, int n, pre_tokenizer **out, apr_error *err);
void pre_free(pre_tokenizer *p);
/* Splits text[0, len) into pieces; calls fn(piece, piece_len, ctx) for each, in order.
 * Returns false when memory ran out. */
bool pre_split(const pre_tokenizer *p, const char *text, size_t len,
               void (*fn)(const char *piece, size_t n, void *ctx), void *ctx);

/* ---- tok_norm.c: Hugging Face normalizers (NFC/NFD/NFKC/NFKD, Lowercase, Strip, Replace, Prepend, Sequence) */
struct cJSON;
/* The normalizer a tokenizer.json's "normalizer" node describes; *out = NULL for null or none.
 * A type not implemented is APR_ERR_UNSUPPORTED, with a message naming path and the type. */
apr_status norm_parse(const struct cJSON *node, const char *path, tok_norm **out, apr_error *err);
/* s[0, len) normalized: malloc'd and NUL-terminated, *out_len bytes; NULL when memory ran out.
 * Bytes that are not valid UTF-8 pass through unchanged. */
char *norm_apply(const tok_norm *n, const char *s, size_t len, size_t *out_len);
void norm_free(tok_norm *n);
/* Fills v->nspecials with the TOK_ADDED_NORMALIZED specials' normalized texts (v->norm set). */
apr_status norm_specials(tok_vocab *v, apr_error *err);

/* A growable output string of the normalizer steps. */
typedef struct norm_buf {
    char *p;
    size_t n, cap;
    bool oom;                      /* an append failed; the text is incomplete */
} norm_buf;
void norm_buf_put(norm_buf *b, const void *s, size_t n);

/* ---- tok_norm_unicode.c: the steps that need Unicode data (utf8proc) */
typedef enum norm_form { NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD } norm_form;
void norm_unicode_form(norm_form form, const char *s, size_t len, norm_buf *out);
/* Every character replaced by its full lowercase mapping (Rust's char::to_lowercase). */
void norm_unicode_lower(const char *s, size_t len, norm_buf *out);
/* Leading (left) and / or trailing (right) White_Space characters removed. */
void norm_unicode_strip(const char *s, size_t len, bool left, bool right, norm_buf *out);
bool norm_unicode_is_space(uint32_t cp);

/* ---- tok_norm_replace.c: Replace with a literal string or a PCRE2 regex */
typedef struct norm_replace norm_replace;
apr_status norm_replace_new(const char *pattern, bool regex, const char *content, norm_replace **out, apr_error *err);
/* s[0, len) with every match replaced by the content, appended to out. */
void norm_replace_run(const norm_replace *r, const char *s, size_t len, norm_buf *out);
void norm_replace_free(norm_replace *r);

/* ---- tok_spm.c / tok_bpe.c: one run of raw text */
void spm_tokenize(const tok_vocab *v, const char *text, size_t len, bool prefix_space, tok_ids *out);
void bpe_tokenize(const tok_vocab *v, const char *text, size_t len, tok_ids *out);

/* ---- tok_bytemap.c: the GPT-2 byte <-> character map */
int bytemap_encode(uint8_t byte, char out[2]);        /* UTF-8 of the character for byte; its length */
int bytemap_decode(uint32_t cp);                      /* the byte of character cp, or -1 */

/* ---- tok_utf8.c */
int utf8_len(uint8_t lead);                           /* bytes of a sequence led by lead (1 if invalid) */
/* Decodes one character at s[0, n): returns its length, or 0 when s does not start with a
 * complete valid sequence (*incomplete set when it is a valid but unfinished prefix). */
int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp, bool *incomplete);

/* ---- tok_ids.c */
bool ids_grow(tok_ids *a);
static inline void ids_push(tok_ids *a, int32_t id) {
    if (a->n == a->cap && !ids_grow(a)) return;
    a->v[a->n++] = id;
}

/* ---- tok_vocab.c: the error message helper */

#endif

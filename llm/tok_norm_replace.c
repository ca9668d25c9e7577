/* tok_norm_replace.c — the Replace normalizer: every match of a literal string or of a regex
 * (PCRE2, compiled as the pre-tokenizer's are: UTF, Unicode properties, JIT) becomes the content.
 *
 * Matches are found as Hugging Face's find_iter (Oniguruma) finds them: left to right, each
 * search starting where the last match ended, and an empty match right at the end of the previous
 * match skipped by moving on one character. An empty literal matches nothing, as there. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

struct norm_replace {
    char *pattern;            /* the literal (re == NULL) */
    size_t pattern_len;
    pcre2_code *re;
    char *content;
    size_t content_len;
};

apr_status norm_replace_new(const char *pattern, bool regex, const char *content, norm_replace **out, apr_error *err) {
    *out = NULL;
    norm_replace *r = calloc(1, sizeof *r);
    if (!r || !(r->content = strdup(content)) || (!regex && !(r->pattern = strdup(pattern)))) {
        norm_replace_free(r);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    r->content_len = strlen(content);
    if (!regex) r->pattern_len = strlen(pattern);
    else {
        int code;
        PCRE2_SIZE at;
        r->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
        if (!r->re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            norm_replace_free(r);
            return apr_error_set(err, APR_ERR_FORMAT, "regex '%.200s': %s at offset %zu", pattern, (const char *)msg, (size_t)at);
        }
        pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE);   /* without JIT, the interpreter runs it */
    }
    *out = r;
    return APR_OK;
}

void norm_replace_free(norm_replace *r) {
    if (!r) return;
    pcre2_code_free(r->re);
    free(r->pattern);
    free(r->content);
    free(r);
}

static void normre_literal(const norm_replace *r, const char *s, size_t len, norm_buf *out) {
    size_t pos = 0;
    while (r->pattern_len && pos < len) {
        const char *hit = memmem(s + pos, len - pos, r->pattern, r->pattern_len);
        if (!hit) break;
        norm_buf_put(out, s + pos, (size_t)(hit - s) - pos);
        norm_buf_put(out, r->content, r->content_len);
        pos = (size_t)(hit - s) + r->pattern_len;
    }
    norm_buf_put(out, s + pos, len - pos);
}

void norm_replace_run(const norm_replace *r, const char *s, size_t len, norm_buf *out) {
    if (!r->re) { normre_literal(r, s, len, out); return; }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
    if (!md) { out->oom = true; return; }
    size_t from = 0, copied = 0, last_end = 0;
    bool any = false;
    uint32_t opts = 0;
    while (from <= len) {
        int rc = pcre2_match(r->re, (PCRE2_SPTR)s, len, from, opts, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !(opts & PCRE2_NO_JIT)) { opts |= PCRE2_NO_JIT; continue; }
        if (rc == PCRE2_ERROR_NOMEMORY) { out->oom = true; break; }
        if (rc < 0) break;   /* no more matches (or a matching error): the rest stays */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t start = ov[0], end = ov[1];
        if (start == end && any && end == last_end) {   /* empty, right after the last match */
            if (from >= len) break;
            size_t step = (size_t)utf8_len((uint8_t)s[from]);
            from += from + step <= len ? step : 1;
            continue;
        }
        norm_buf_put(out, s + copied, start - copied);
        norm_buf_put(out, r->content, r->content_len);
        copied = from = last_end = end;
        any = true;
    }
    norm_buf_put(out, s + copied, len - copied);
    pcre2_match_data_free(md);
}

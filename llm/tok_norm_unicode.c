/* tok_norm_unicode.c — the normalizer steps that need Unicode data, from utf8proc: the four
 * normalization forms, lowercasing and whitespace stripping, as Hugging Face tokenizers does them.
 *
 * Hugging Face works on Rust strings, which are always valid UTF-8; here text may hold bytes that
 * are not, and those pass through every step unchanged (a normalization form runs on each valid
 * stretch between them). */
#include <utf8proc.h>

#include "tok_internal.h"

/* Calls fn on each maximal stretch of valid UTF-8 in s[0, len) and copies the other bytes to out. */
static void normu_valid_runs(const char *s, size_t len, norm_buf *out, const void *ctx,
                             void (*fn)(const char *run, size_t n, bool ascii, norm_buf *out, const void *ctx)) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        bool ascii = true;
        for (;;) {
            uint32_t cp;
            bool incomplete;
            int k = j < len ? utf8_decode(u + j, len - j, &cp, &incomplete) : 0;
            if (!k) break;
            ascii = ascii && k == 1;
            j += (size_t)k;
        }
        if (j > i) fn(s + i, j - i, ascii, out, ctx);
        if (j < len) norm_buf_put(out, s + j, 1);   /* a byte that starts no valid character */
        i = j + (j < len);
    }
}

static void normu_form_run(const char *run, size_t n, bool ascii, norm_buf *out, const void *ctx) {
    if (ascii) { norm_buf_put(out, run, n); return; }   /* ASCII is the same in every form */
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)run, (utf8proc_ssize_t)n, &dst, *(const utf8proc_option_t *)ctx);
    if (k == UTF8PROC_ERROR_NOMEM) out->oom = true;
    else if (k < 0) norm_buf_put(out, run, n);   /* cannot happen for valid UTF-8; keep the text */
    else norm_buf_put(out, dst, (size_t)k);
    free(dst);
}

void norm_unicode_form(norm_form form, const char *s, size_t len, norm_buf *out) {
    static const utf8proc_option_t opts[] = {
        [NORM_NFC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE,
        [NORM_NFD] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
        [NORM_NFKC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
        [NORM_NFKD] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
    };
    normu_valid_runs(s, len, out, &opts[form], normu_form_run);
}

/* utf8proc_tolower is the simple (one character) mapping; SpecialCasing.txt's only unconditional
 * lowercase mapping to more characters is U+0130 -> i + U+0307, which Rust's to_lowercase applies. */
#define NORMU_CAPITAL_I_DOT 0x130

static void normu_lower_run(const char *run, size_t n, bool ascii, norm_buf *out, const void *ctx) {
    (void)ctx;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        bool incomplete;
        int k = utf8_decode((const uint8_t *)run + i, n - i, &cp, &incomplete);
        i += (size_t)k;
        if (ascii || cp < 0x80) {
            char c = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            norm_buf_put(out, &c, 1);
            continue;
        }
        if (cp == NORMU_CAPITAL_I_DOT) { norm_buf_put(out, "i\xCC\x87", 3); continue; }
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t m = utf8proc_encode_char(utf8proc_tolower((utf8proc_int32_t)cp), enc);
        norm_buf_put(out, enc, (size_t)m);
    }
}

void norm_unicode_lower(const char *s, size_t len, norm_buf *out) { normu_valid_runs(s, len, out, NULL, normu_lower_run); }

/* Unicode's White_Space property (Rust's char::is_whitespace): the separators Zs, Zl, Zp and the
 * controls TAB, LF, VT, FF, CR and NEL. */
bool norm_unicode_is_space(uint32_t cp) {
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

void norm_unicode_strip(const char *s, size_t len, bool left, bool right, norm_buf *out) {
    const uint8_t *u = (const uint8_t *)s;
    size_t start = 0, end = 0;   /* end: just past the last character that is not White_Space */
    bool leading = left;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        bool incomplete;
        int k = utf8_decode(u + i, len - i, &cp, &incomplete);
        bool space = k > 0 && norm_unicode_is_space(cp);
        i += k > 0 ? (size_t)k : 1;
        if (space && leading) start = i;
        else if (!space) { leading = false; end = i; }
    }
    if (!right || end < start) end = right ? start : len;
    norm_buf_put(out, s + start, end - start);
}

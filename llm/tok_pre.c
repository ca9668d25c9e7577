/* tok_pre.c — pre-tokenizers: the split regexes of each BPE model family, run with PCRE2.
 *
 * A family is a list of regexes applied in turn, as llama.cpp and Hugging Face's Split
 * pre-tokenizer ("Isolated") do: each regex splits every piece left by the one before into its
 * matches and the text between them, so the pieces always cover the whole text. Patterns are
 * compiled with PCRE2_UTF | PCRE2_UCP (\s, \p{L}, \p{N} by Unicode properties) and JIT; text that
 * is not valid UTF-8 is matched anyway (PCRE2_MATCH_INVALID_UTF) and never crashes. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

struct pre_tokenizer {
    int n;
    pcre2_code *re[TOK_MAX_REGEX];
};

/* ---------------------------------------------------------------- the families */

/* GPT-2 (tiktoken r50k): contractions, letters, numbers, other symbols, whitespace. */
#define PRE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
/* cl100k-style (Llama 3, Qwen2): case-insensitive contractions, a letter run with one leading
 * non-letter, digits in threes (Qwen2: one by one), newlines kept with the symbols before them. */
#define PRE_CL100K(DIGITS)                                                                          \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" DIGITS                             \
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* CJK ideographs and Hangul, as written in DeepSeek's tokenizer.json. */
#define PRE_CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

static const char *const pre_gpt2[] = {PRE_GPT2};
static const char *const pre_llama3[] = {PRE_CL100K("\\p{N}{1,3}")};
static const char *const pre_qwen2[] = {PRE_CL100K("\\p{N}")};
static const char *const pre_starcoder[] = {"\\p{N}", PRE_GPT2};
static const char *const pre_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", PRE_GPT2, "[0-9][0-9][0-9]"};
static const char *const pre_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", PRE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"};
static const char *const pre_deepseek_coder[] = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", PRE_CJK, "\\p{N}"};
static const char *const pre_deepseek_llm[] = {
    "[\\r\\n]",
    /* the Latin, Greek, Cyrillic, Armenian, Georgian, Cherokee, ... letters of DeepSeek's list */
    "\\s?["
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-"
    "\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"
    "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-"
    "\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}"
    "\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-"
    "\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}"
    "\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}"
    "\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}"
    "\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
    "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}"
    "\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"
    "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-"
    "\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"
    "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
    "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
    "\\x{1E900}-\\x{1E943}"
    "]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    PRE_CJK,
    "\\p{N}+",
};

#define PRE_N(a) (int)(sizeof a / sizeof a[0])

static const struct {
    const char *name;   /* tokenizer.ggml.pre */
    const char *const *re;
    int n;
} pre_families[] = {
    {"default", pre_default, PRE_N(pre_default)},
    {"gpt-2", pre_gpt2, PRE_N(pre_gpt2)},
    {"gpt2", pre_gpt2, PRE_N(pre_gpt2)},
    {"phi-2", pre_gpt2, PRE_N(pre_gpt2)},
    {"mpt", pre_gpt2, PRE_N(pre_gpt2)},
    {"olmo", pre_gpt2, PRE_N(pre_gpt2)},
    {"jais", pre_gpt2, PRE_N(pre_gpt2)},
    {"jina-es", pre_gpt2, PRE_N(pre_gpt2)},
    {"jina-de", pre_gpt2, PRE_N(pre_gpt2)},
    {"llama3", pre_llama3, PRE_N(pre_llama3)},
    {"llama-v3", pre_llama3, PRE_N(pre_llama3)},
    {"llama-bpe", pre_llama3, PRE_N(pre_llama3)},
    {"falcon3", pre_llama3, PRE_N(pre_llama3)},
    {"dbrx", pre_llama3, PRE_N(pre_llama3)},
    {"smaug-bpe", pre_llama3, PRE_N(pre_llama3)},
    {"qwen2", pre_qwen2, PRE_N(pre_qwen2)},
    {"qwen2.5", pre_qwen2, PRE_N(pre_qwen2)},
    {"stablelm2", pre_qwen2, PRE_N(pre_qwen2)},
    {"deepseek-r1-qwen", pre_qwen2, PRE_N(pre_qwen2)},
    {"starcoder", pre_starcoder, PRE_N(pre_starcoder)},
    {"refact", pre_starcoder, PRE_N(pre_starcoder)},
    {"command-r", pre_starcoder, PRE_N(pre_starcoder)},
    {"smollm", pre_starcoder, PRE_N(pre_starcoder)},
    {"codeshell", pre_starcoder, PRE_N(pre_starcoder)},
    {"exaone", pre_starcoder, PRE_N(pre_starcoder)},
    {"falcon", pre_falcon, PRE_N(pre_falcon)},
    {"deepseek-llm", pre_deepseek_llm, PRE_N(pre_deepseek_llm)},
    {"deepseek-coder", pre_deepseek_coder, PRE_N(pre_deepseek_coder)},
};

bool pre_family(const char *name, const char *const **regexes, int *n) {
    for (size_t i = 0; i < sizeof pre_families / sizeof pre_families[0]; i++)
        if (!strcmp(pre_families[i].name, name)) {
            *regexes = pre_families[i].re;
            *n = pre_families[i].n;
            return true;
        }
    *n = 0;
    return false;
}

/* ---------------------------------------------------------------- compiling */

apr_status pre_compile(const char *const *regexes, int n, pre_tokenizer **out, apr_error *err) {
    *out = NULL;
    if (n < 1 || n > TOK_MAX_REGEX) return apr_error_set(err, APR_ERR_UNSUPPORTED, "%d pre-tokenizer regexes (1..%d supported)", n, TOK_MAX_REGEX);
    pre_tokenizer *p = calloc(1, sizeof *p);
    if (!p) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        int code;
        PCRE2_SIZE at;
        p->re[i] = pcre2_compile((PCRE2_SPTR)regexes[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
        if (!p->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            pre_free(p);
            return apr_error_set(err, APR_ERR_FORMAT, "pre-tokenizer regex '%.200s': %s at offset %zu", regexes[i],
                              (const char *)msg, (size_t)at);
        }
        p->n = i + 1;
        pcre2_jit_compile(p->re[i], PCRE2_JIT_COMPLETE);   /* without JIT, the interpreter runs it */
    }
    *out = p;
    return APR_OK;
}

void pre_free(pre_tokenizer *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->re[i]);
    free(p);
}

/* ---------------------------------------------------------------- splitting */

typedef struct pre_spans {
    size_t *v;          /* (offset, length) pairs */
    size_t n, cap;      /* pairs */
    bool oom;
} pre_spans;

static void pre_push(pre_spans *s, size_t off, size_t len) {
    if (!len || s->oom) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        size_t *v = realloc(s->v, cap * 2 * sizeof *v);
        if (!v) { s->oom = true; return; }
        s->v = v;
        s->cap = cap;
    }
    s->v[2 * s->n] = off;
    s->v[2 * s->n + 1] = len;
    s->n++;
}

/* Splits text[off, off + len) by re into out: matches and the gaps between them. */
static void pre_split_one(const pcre2_code *re, pcre2_match_data *md, const char *text, size_t off, size_t len,
                          pre_spans *out) {
    const uint8_t *subj = (const uint8_t *)text + off;
    size_t pos = 0, last = 0;
    uint32_t opts = 0;
    while (pos < len) {
        int rc = pcre2_match(re, subj, len, pos, opts, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !(opts & PCRE2_NO_JIT)) { opts |= PCRE2_NO_JIT; continue; }
        if (rc < 0) break;   /* no match (or a matching error): the rest is one gap */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1];
        if (e <= s) {        /* an empty match: move on by one character */
            pos = s + 1;
            while (pos < len && (subj[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        pre_push(out, off + last, s - last);
        pre_push(out, off + s, e - s);
        last = pos = e;
    }
    pre_push(out, off + last, len - last);
}

bool pre_split(const pre_tokenizer *p, const char *text, size_t len,
               void (*fn)(const char *piece, size_t n, void *ctx), void *ctx) {
    if (!len) return true;
    pre_spans a = {0}, b = {0};
    pre_push(&a, 0, len);
    bool ok = true;
    for (int i = 0; i < p->n && ok; i++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re[i], NULL);
        if (!md) { ok = false; break; }
        b.n = 0;
        for (size_t k = 0; k < a.n; k++) pre_split_one(p->re[i], md, text, a.v[2 * k], a.v[2 * k + 1], &b);
        pcre2_match_data_free(md);
        pre_spans t = a; a = b; b = t;
        ok = !a.oom;
    }
    if (ok)
        for (size_t k = 0; k < a.n; k++) fn(text + a.v[2 * k], a.v[2 * k + 1], ctx);
    free(a.v);
    free(b.v);
    return ok;
}

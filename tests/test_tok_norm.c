/* test_tok_norm.c — the normalizers of a tokenizer.json, on small files written here: Replace,
 * Prepend, Strip, Lowercase and Sequence with the results the Hugging Face documentation gives
 * for each, normalized added tokens, text that is not UTF-8, and the refusal of normalizers apr
 * does not implement. (test_tok_unicode.c checks them against Unicode's own data files.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "util/tu_tokjson.h"

static tok_vocab *tn_load(const char *normalizer, const char *added) {
    tok_vocab *v;
    apr_error e;
    apr_status st = tu_tokjson_load(normalizer, added, &v, &e, NULL);
    cr_assert_eq(st, APR_OK, "%s: %s", normalizer, e.msg);
    return v;
}

/* s normalized by v and, through encode and decode, tokenized: both must be want. */
static void tn_expect(const tok_vocab *v, const char *s, const char *want) {
    char *n = tu_tokjson_norm(v, s), *r = tu_tokjson_roundtrip(v, s);
    cr_expect_str_eq(n, want, "normalize(\"%s\")", s);
    cr_expect_str_eq(r, want, "decode(encode(\"%s\"))", s);
    free(n);
    free(r);
}

TestSuite(tok_norm, .timeout = 30);

/* "Replace("a", "e") will behave like this: Input: "banana" Output: "benene"" */
Test(tok_norm, replace_string) {
    tok_vocab *v = tn_load("{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\"},\"content\":\"e\"}", NULL);
    tn_expect(v, "banana", "benene");
    tn_expect(v, "", "");
    apr_tok_free(v);
    /* the SentencePiece conversion's Replace(" ", "▁"): each space, a longer content */
    v = tn_load("{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}", NULL);
    tn_expect(v, "Hello world  x", "Hello\xe2\x96\x81world\xe2\x96\x81\xe2\x96\x81x");
    apr_tok_free(v);
}

/* Replace with a Regex pattern: every match of the regex becomes the content. */
Test(tok_norm, replace_regex) {
    tok_vocab *v = tn_load("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"}", NULL);
    tn_expect(v, "a \t\n b\r\nc", "a b c");
    tn_expect(v, "  lead", " lead");
    apr_tok_free(v);
    /* Unicode properties, as the pre-tokenizer regexes use them */
    v = tn_load("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\p{N}+\"},\"content\":\"#\"}", NULL);
    tn_expect(v, "x12y\xd9\xa3\xd9\xa4z", "x#y#z");   /* U+0663 U+0664: Arabic-Indic digits */
    apr_tok_free(v);
}

/* Prepend: the string in front of the text ("Hello" -> "▁Hello"), never in front of nothing. */
Test(tok_norm, prepend) {
    tok_vocab *v = tn_load("{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"}", NULL);
    tn_expect(v, "Hello", "\xe2\x96\x81Hello");
    tn_expect(v, "", "");
    apr_tok_free(v);
}

/* Strip: "Removes all whitespace characters on the specified sides (left, right or both)". */
Test(tok_norm, strip) {
    tok_vocab *v = tn_load("{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}", NULL);
    tn_expect(v, " hi", "hi");
    tn_expect(v, "\t hi \xe3\x80\x80\n", "hi");   /* U+3000 ideographic space is White_Space */
    tn_expect(v, "   ", "");
    apr_tok_free(v);
    v = tn_load("{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":false}", NULL);
    tn_expect(v, "  a b  ", "a b  ");
    apr_tok_free(v);
    v = tn_load("{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true}", NULL);
    tn_expect(v, "  a b  ", "  a b");
    apr_tok_free(v);
}

/* Lowercase: Rust's char::to_lowercase, one character at a time (Σ is always σ). */
Test(tok_norm, lowercase) {
    tok_vocab *v = tn_load("{\"type\":\"Lowercase\"}", NULL);
    tn_expect(v, "Hello World", "hello world");
    tn_expect(v, "\xc3\x84\xc3\x96\xc3\x9c \xce\xa3\xce\xa3", "\xc3\xa4\xc3\xb6\xc3\xbc \xcf\x83\xcf\x83");
    tn_expect(v, "\xc4\xb0", "i\xcc\x87");   /* U+0130 -> i + U+0307 (SpecialCasing.txt) */
    apr_tok_free(v);
}

/* "Composes multiple normalizers that will run in the provided order." */
Test(tok_norm, sequence_in_order) {
    const char *rep = "{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\"},\"content\":\"e\"}", *low = "{\"type\":\"Lowercase\"}";
    char js[512];
    snprintf(js, sizeof js, "{\"type\":\"Sequence\",\"normalizers\":[%s,%s]}", low, rep);
    tok_vocab *v = tn_load(js, NULL);
    tn_expect(v, "BANANA", "benene");
    apr_tok_free(v);
    snprintf(js, sizeof js, "{\"type\":\"Sequence\",\"normalizers\":[%s,%s]}", rep, low);
    v = tn_load(js, NULL);
    tn_expect(v, "BANANA", "banana");
    apr_tok_free(v);
    /* Llama 2's: Prepend("▁") then Replace(" ", "▁"), nested in a Sequence of its own, then NFC */
    v = tn_load("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Sequence\",\"normalizers\":["
                "{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
                "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},{\"type\":\"NFC\"}]}",
                NULL);
    tn_expect(v, "Hello cafe\xcc\x81", "\xe2\x96\x81Hello\xe2\x96\x81" "caf\xc3\xa9");
    apr_tok_free(v);
}

/* An added token marked normalized is found in the normalized text ("with the added token
 * "yesterday", and a normalizer in charge of lowercasing the text, the token could be extracted
 * from the input "I saw a lion Yesterday""); one not normalized only in the raw text. Each run
 * between specials is normalized on its own (Prepend goes in front of every one). */
Test(tok_norm, added_tokens_normalized_or_not) {
    const char *added = "[{\"id\":256,\"content\":\"yesterday\",\"special\":false,\"normalized\":true},"
                        "{\"id\":257,\"content\":\"<SEP>\",\"special\":false,\"normalized\":false}]";
    tok_vocab *v = tn_load("{\"type\":\"Lowercase\"}", added);
    int32_t ids[64];
    int64_t n = apr_tok_encode(v, "I saw a lion Yesterday", 22, 0, ids, 64);
    cr_assert_eq(n, 14);   /* "i saw a lion " byte by byte, then the token */
    cr_assert_eq(ids[13], 256);
    n = apr_tok_encode(v, "a<SEP>b<sep>", 12, 0, ids, 64);
    cr_assert_eq(n, 8);   /* a, <SEP>, b, <, s, e, p, > */
    cr_assert_eq(ids[1], 257);
    cr_assert_eq(ids[3], '<');
    apr_tok_free(v);
    v = tn_load("{\"type\":\"Prepend\",\"prepend\":\"_\"}", added);
    char *r = tu_tokjson_roundtrip(v, "a<SEP>b");
    cr_assert_str_eq(r, "_a<SEP>_b");
    free(r);
    apr_tok_free(v);
}

/* Bytes that are not UTF-8 pass through every step; the valid text around them is normalized
 * (the ids are those of the normalized bytes: this vocabulary's id of a byte is the byte). */
Test(tok_norm, invalid_utf8_passes_through) {
    tok_vocab *v = tn_load("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Lowercase\"},"
                           "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}]}", NULL);
    const char *in = " \xff" "E\xcc\x81\xc3 \xe2\x82", *want = "\xff\xc3\xa9\xc3 \xe2\x82";
    char *n = tu_tokjson_norm(v, in);
    cr_expect_str_eq(n, want);
    free(n);
    int32_t ids[16];
    int64_t k = apr_tok_encode(v, in, strlen(in), 0, ids, 16);
    cr_assert_eq(k, (int64_t)strlen(want));
    for (int64_t i = 0; i < k; i++) cr_expect_eq(ids[i], (uint8_t)want[i], "id %lld", (long long)i);
    apr_tok_free(v);
}

/* No normalizer (or null): the text is untouched; GGUF vocabularies have none either. */
Test(tok_norm, none_leaves_the_text) {
    tok_vocab *v = tn_load("null", NULL);
    tn_expect(v, "Cafe\xcc\x81 \xc4\xb0", "Cafe\xcc\x81 \xc4\xb0");
    apr_tok_free(v);
}

/* A normalizer apr does not implement is refused, naming the file and the type, also inside a
 * Sequence; so is a Replace whose regex PCRE2 cannot compile. */
Test(tok_norm, unknown_normalizers_are_refused) {
    static const char *const bad[][2] = {
        {"{\"type\":\"BertNormalizer\",\"clean_text\":true}", "BertNormalizer"},
        {"{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},{\"type\":\"StripAccents\"}]}", "StripAccents"},
        {"{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"}", "Precompiled"},
        {"{\"type\":\"Nmt\"}", "Nmt"},
        {"{\"type\":\"ByteLevel\"}", "ByteLevel"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tok_vocab *v = NULL;
        apr_error e;
        char path[256];
        apr_status st = tu_tokjson_load(bad[i][0], NULL, &v, &e, path);
        cr_expect_eq(st, APR_ERR_UNSUPPORTED, "%s was accepted", bad[i][0]);
        cr_expect(strstr(e.msg, path) && strstr(e.msg, bad[i][1]), "message: %s", e.msg);
        cr_expect_null(strchr(e.msg, '\n'));
        if (!st) apr_tok_free(v);
    }
    tok_vocab *v = NULL;
    apr_error e;
    char path[256];
    apr_status st = tu_tokjson_load("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(a\"},\"content\":\"\"}", NULL, &v, &e, path);
    cr_expect_eq(st, APR_ERR_FORMAT);
    cr_expect(strstr(e.msg, path) && strstr(e.msg, "Replace"), "message: %s", e.msg);
    if (!st) apr_tok_free(v);
}

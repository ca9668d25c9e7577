/* tu_tokjson.c — small Hugging Face tokenizer.json files written by a test (see tu_tokjson.h). */
#include "util/tu_tokjson.h"

#include <cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* GPT-2's printable character for byte b: printable Latin-1 bytes stand for themselves, the
 * others for U+0100 onwards in byte order. */
static unsigned tu_tokjson_byte_char(unsigned b) {
    bool self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    if (self) return b;
    unsigned k = 0;
    for (unsigned c = 0; c < b; c++) k += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174);
    return 256 + k;
}

apr_status tu_tokjson_load(const char *normalizer, const char *added, tok_vocab **v, apr_error *err, char path[256]) {
    char dir[] = "/tmp/apr-tokjson-XXXXXX", file[256], cmd[300];
    cr_assert(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/tokenizer.json", dir);
    if (path) snprintf(path, 256, "%s", file);
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (unsigned b = 0; b < 256; b++) {
        unsigned c = tu_tokjson_byte_char(b);
        char s[3] = {(char)c, 0, 0};
        if (c >= 0x80) { s[0] = (char)(0xC0 | c >> 6); s[1] = (char)(0x80 | (c & 0x3F)); }
        cJSON_AddNumberToObject(vocab, s, b);
    }
    cJSON_AddArrayToObject(model, "merges");
    cJSON *norm = cJSON_Parse(normalizer), *add = added ? cJSON_Parse(added) : cJSON_CreateArray();
    cr_assert(norm && add, "bad JSON in the test: %s / %s", normalizer, added ? added : "");
    cJSON_AddItemToObject(root, "normalizer", norm);
    cJSON_AddItemToObject(root, "added_tokens", add);
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddBoolToObject(pre, "add_prefix_space", false);
    cJSON_AddBoolToObject(pre, "use_regex", false);
    char *js = cJSON_PrintUnformatted(root);
    FILE *fp = fopen(file, "w");
    cr_assert(js && fp && fputs(js, fp) >= 0 && fclose(fp) == 0, "cannot write %s", file);
    free(js);
    cJSON_Delete(root);
    apr_status st = apr_tok_load_hf(file, v, err);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    return st;
}

char *tu_tokjson_norm(const tok_vocab *v, const char *s) {
    size_t n;
    char *t = apr_tok_normalize(v, s, strlen(s), &n);
    cr_assert(t, "apr_tok_normalize: out of memory");
    cr_assert_eq(strlen(t), n);
    return t;
}

char *tu_tokjson_roundtrip(const tok_vocab *v, const char *s) {
    int64_t k = apr_tok_encode(v, s, strlen(s), 0, NULL, 0);
    cr_assert_geq(k, 0);
    int32_t *ids = malloc((size_t)(k ? k : 1) * sizeof *ids);
    cr_assert_eq(apr_tok_encode(v, s, strlen(s), 0, ids, k), k);
    char *d = apr_tok_decode(v, ids, (size_t)k, 0, NULL);
    cr_assert(d);
    free(ids);
    return d;
}

/* hf_vocab.c — a Hugging Face tokenizer (tokenizer.json, tokenizer_config.json, generation_config.json) into tokenizer.ggml.* keys. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_internal.h"
#include "tok_internal.h"

/* tokenizer.json itself, or tokenizer.json.gz through the system's gzip (as apr_tok_load_hf reads it). */
static cJSON *hf_vocab_json(const char *dir, apr_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *js = NULL;
    if (access(path, F_OK) == 0) js = hf_import_slurp(path, 512u << 20, NULL, err);
    else {
        snprintf(path, sizeof path, "%s/tokenizer.json.gz", dir);
        if (strchr(path, '\'')) { apr_error_set(err, APR_ERR_INVALID, "%s: quote in the path", path); return NULL; }
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "gzip -dc -- '%s'", path);
        FILE *p = popen(cmd, "r");
        size_t len = 0, cap = 1 << 20;
        js = p ? malloc(cap) : NULL;
        while (js) {
            if (len + 65537 > cap) {
                char *b = cap < (512u << 20) ? realloc(js, cap *= 2) : NULL;
                if (!b) { free(js); js = NULL; break; }
                js = b;
            }
            size_t got = fread(js + len, 1, 65536, p);
            len += got;
            if (!got) { js[len] = 0; break; }
        }
        if (p && pclose(p) != 0) { free(js); js = NULL; }
        if (!js) apr_error_set(err, APR_ERR_IO, "%s: cannot read it (gzip failed or out of memory)", path);
    }
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    if (js && !root) apr_error_set(err, APR_ERR_FORMAT, "%s: not valid JSON", path);
    free(js);
    return root;
}

/* llama.cpp's tokenizer.ggml.pre name for the pre_tokenizer of tokenizer.json; NULL if none fits. */
static const char *hf_vocab_pre(const cJSON *pre) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    const cJSON *one = pre, *it;
    const char *pattern = NULL;
    bool byte_level = false;
    for (it = cJSON_IsArray(list) ? list->child : one; it; it = cJSON_IsArray(list) ? it->next : NULL) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        if (!strcmp(t, "ByteLevel")) byte_level |= !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(it, "use_regex"));
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it, "pattern"), "Regex");
        if (!strcmp(t, "Split") && cJSON_IsString(re)) pattern = re->valuestring;
    }
    if (!pattern) return byte_level ? "gpt-2" : NULL;
    if (strstr(pattern, "\\p{N}{1,3}")) return "llama3";
    if (strstr(pattern, "\\p{L}+|\\p{N}|")) return "qwen2";
    return NULL;
}

static void hf_vocab_id(hf_import *im, const char *key, int32_t id) {
    if (id >= 0) apr_gguf_writer_set_u32(im->w, key, (uint32_t)id);
}

/* bos_token_id / eos_token_id of generation_config.json (an id or a list whose first entry counts). */
static void hf_vocab_generation(hf_import *im, const char *dir, int64_t n_vocab) {
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (access(path, F_OK) != 0) return;
    char *js = hf_import_slurp(path, 1u << 20, NULL, NULL);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    free(js);
    const char *keys[2][2] = {{"bos_token_id", "tokenizer.ggml.bos_token_id"}, {"eos_token_id", "tokenizer.ggml.eos_token_id"}};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[k][0]);
        if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
        if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < (double)n_vocab)
            apr_gguf_writer_set_u32(im->w, keys[k][1], (uint32_t)v->valuedouble);
    }
    cJSON_Delete(root);
}

/* A SentencePiece-style vocabulary (tokenizer.json with byte fallback) as llama.cpp's "llama"
 * tokenizer keys: pieces, scores and types; rows of a padded embedding become unused [PADi]. */
static apr_status hf_vocab_write_spm(hf_import *im, const char *dir, const tok_vocab *v, int64_t n_vocab, apr_error *err) {
    if (apr_tok_n_vocab(v) > n_vocab)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: the tokenizer has %d tokens but the embedding only %lld rows", dir,
                             apr_tok_n_vocab(v), (long long)n_vocab);
    const char **texts = calloc((size_t)n_vocab, sizeof *texts);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    apr_status st = texts && types && scores ? APR_OK : apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; !st && i < n_vocab; i++) {
        if (i < apr_tok_n_vocab(v)) {
            texts[i] = apr_tok_piece(v, (int32_t)i);
            types[i] = (int32_t)apr_tok_token_type(v, (int32_t)i);
            scores[i] = v->score[i];
            continue;
        }
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
        if (!(texts[i] = hf_import_alloc(im, strlen(pad) + 1))) st = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        else strcpy((char *)texts[i], pad);
        types[i] = TOK_TYPE_UNUSED;
    }
    if (!st) {
        apr_gguf_writer_set_str(im->w, "tokenizer.ggml.model", "llama");
        apr_gguf_writer_set_arr_str(im->w, "tokenizer.ggml.tokens", texts, (uint64_t)n_vocab);
        apr_gguf_writer_set_arr(im->w, "tokenizer.ggml.scores", GGUF_FLOAT32, scores, (uint64_t)n_vocab);
        apr_gguf_writer_set_arr(im->w, "tokenizer.ggml.token_type", GGUF_INT32, types, (uint64_t)n_vocab);
        apr_gguf_writer_set_bool(im->w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix);
        hf_vocab_id(im, "tokenizer.ggml.bos_token_id", apr_tok_bos(v));
        hf_vocab_id(im, "tokenizer.ggml.eos_token_id", apr_tok_eos(v));
        hf_vocab_id(im, "tokenizer.ggml.unknown_token_id", apr_tok_unk(v));
        hf_vocab_id(im, "tokenizer.ggml.padding_token_id", apr_tok_pad(v));
        apr_gguf_writer_set_bool(im->w, "tokenizer.ggml.add_bos_token", apr_tok_add_bos(v));
        apr_gguf_writer_set_bool(im->w, "tokenizer.ggml.add_eos_token", apr_tok_add_eos(v));
        hf_vocab_generation(im, dir, n_vocab);
    }
    free(texts);
    free(types);
    free(scores);
    return st;
}

apr_status hf_vocab_write(hf_import *im, const char *dir, int64_t n_vocab, apr_error *err) {
    tok_vocab *v = NULL;
    apr_status st = apr_tok_load_hf(dir, &v, err);
    if (st) return st;
    if (apr_tok_model_kind(v) == TOK_MODEL_SPM) {
        st = hf_vocab_write_spm(im, dir, v, n_vocab, err);
        apr_tok_free(v);
        return st;
    }
    cJSON *root = hf_vocab_json(dir, err);
    const char *pre = root ? hf_vocab_pre(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) : NULL;
    if (!root) st = APR_ERR_FORMAT;
    else if (!pre) st = apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: the pre_tokenizer of tokenizer.json is none apr can name (gpt-2, llama3, qwen2)", dir);
    else if (apr_tok_n_vocab(v) > n_vocab)
        st = apr_error_set(err, APR_ERR_FORMAT, "%s: the tokenizer has %d tokens but the embedding only %lld rows", dir,
                            apr_tok_n_vocab(v), (long long)n_vocab);
    /* the embedding may have more rows than tokens (padded): llama.cpp names them [PADi], unused */
    const char **texts = st ? NULL : calloc((size_t)n_vocab, sizeof *texts);
    int32_t *types = st ? NULL : calloc((size_t)n_vocab, sizeof *types);
    char **merges = st ? NULL : calloc((size_t)v->merge_cap + 1, sizeof *merges);
    if (!st && (!texts || !types || !merges)) st = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; !st && i < n_vocab; i++) {
        if (i < apr_tok_n_vocab(v)) {
            texts[i] = apr_tok_piece(v, (int32_t)i);
            types[i] = (int32_t)apr_tok_token_type(v, (int32_t)i);
        } else {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
            if (!(texts[i] = hf_import_alloc(im, strlen(pad) + 1))) st = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
            else strcpy((char *)texts[i], pad);
            types[i] = TOK_TYPE_UNUSED;
        }
    }
    /* the merge table is a hash keyed by (left, right) with ranks: list it back in rank order */
    uint32_t n_merges = 0;
    for (uint32_t s = 0; !st && s < v->merge_cap; s++) {
        const tok_merge *m = &v->merges[s];
        if (m->key == UINT64_MAX || m->rank < 0 || (uint32_t)m->rank >= v->merge_cap) continue;
        const char *l = apr_tok_piece(v, (int32_t)(m->key >> 32)), *r = apr_tok_piece(v, (int32_t)(m->key & 0xffffffffu));
        char *s2 = l && r ? hf_import_alloc(im, strlen(l) + strlen(r) + 2) : NULL;
        if (!s2) { st = apr_error_set(err, APR_ERR_NOMEM, "out of memory"); break; }
        sprintf(s2, "%s %s", l, r);
        merges[m->rank] = s2;
    }
    for (uint32_t s = 0; !st && s < v->merge_cap; s++)
        if (merges[s]) merges[n_merges++] = merges[s];
    if (!st) {
        apr_gguf_writer_set_str(im->w, "tokenizer.ggml.model", "gpt2");
        apr_gguf_writer_set_str(im->w, "tokenizer.ggml.pre", pre);
        apr_gguf_writer_set_arr_str(im->w, "tokenizer.ggml.tokens", texts, (uint64_t)n_vocab);
        apr_gguf_writer_set_arr(im->w, "tokenizer.ggml.token_type", GGUF_INT32, types, (uint64_t)n_vocab);
        apr_gguf_writer_set_arr_str(im->w, "tokenizer.ggml.merges", (const char *const *)merges, n_merges);
        hf_vocab_id(im, "tokenizer.ggml.bos_token_id", apr_tok_bos(v));
        hf_vocab_id(im, "tokenizer.ggml.eos_token_id", apr_tok_eos(v));
        hf_vocab_id(im, "tokenizer.ggml.unknown_token_id", apr_tok_unk(v));
        hf_vocab_id(im, "tokenizer.ggml.padding_token_id", apr_tok_pad(v));
        apr_gguf_writer_set_bool(im->w, "tokenizer.ggml.add_bos_token", apr_tok_add_bos(v));
        apr_gguf_writer_set_bool(im->w, "tokenizer.ggml.add_eos_token", apr_tok_add_eos(v));
        hf_vocab_generation(im, dir, n_vocab);
    }
    free(texts);
    free(types);
    free(merges);
    cJSON_Delete(root);
    apr_tok_free(v);
    return st;
}

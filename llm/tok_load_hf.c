/* tok_load_hf.c — a tok_vocab from a Hugging Face tokenizer.json (+ tokenizer_config.json).
 *
 * Supported: model BPE with a ByteLevel pre-tokenizer, alone (GPT-2 regex) or after Split
 * (Regex or String, behavior Isolated), Digits and Punctuation steps in a Sequence; added tokens
 * (special -> control, otherwise user-defined; lstrip / rstrip kept); ignore_merges; merges as
 * "a b" strings or [a, b] pairs; the normalizer (tok_norm.c: NFC, NFD, NFKC, NFKD, Lowercase, Strip,
 * Replace, Prepend, Sequence), applied before pre-tokenization. Other normalizers, Metaspace
 * (outside the SentencePiece form below) and non-BPE models are refused with APR_ERR_UNSUPPORTED.
 * tokenizer.json.gz is read through the system's gzip (no zlib dependency). */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tok_internal.h"

extern char **environ;

/* ---------------------------------------------------------------- reading files */

static apr_status loadhf_slurp_fd(int fd, const char *path, char **out, size_t *len, apr_error *err) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
    for (;;) {
        if (n == cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) { free(buf); return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path); }
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { free(buf); return apr_error_set(err, APR_ERR_IO, "%s: read failed: %s", path, strerror(errno)); }
        if (r == 0) break;
        n += (size_t)r;
    }
    *out = buf;
    *len = n;
    return APR_OK;
}

static apr_status loadhf_read(const char *path, char **out, size_t *len, apr_error *err) {
    size_t pl = strlen(path);
    if (pl < 3 || strcmp(path + pl - 3, ".gz")) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return apr_error_set(err, errno == ENOENT ? APR_ERR_NOT_FOUND : APR_ERR_IO, "%s: %s", path, strerror(errno));
        apr_status st = loadhf_slurp_fd(fd, path, out, len, err);
        close(fd);
        return st;
    }
    if (access(path, R_OK)) return apr_error_set(err, errno == ENOENT ? APR_ERR_NOT_FOUND : APR_ERR_IO, "%s: %s", path, strerror(errno));
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC)) return apr_error_set(err, APR_ERR_IO, "%s: pipe: %s", path, strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    char *argv[] = {"gzip", "-dc", "--", (char *)path, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gzip", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc) { close(pipefd[0]); return apr_error_set(err, APR_ERR_IO, "%s: cannot run gzip: %s", path, strerror(rc)); }
    apr_status st = loadhf_slurp_fd(pipefd[0], path, out, len, err);
    close(pipefd[0]);
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    if (!st && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
        free(*out);
        *out = NULL;
        st = apr_error_set(err, APR_ERR_FORMAT, "%s: gzip could not decompress it", path);
    }
    return st;
}

static cJSON *loadhf_parse(const char *path, bool required, apr_status *st, apr_error *err) {
    char *buf;
    size_t len;
    *st = loadhf_read(path, &buf, &len, err);
    if (*st) {
        if (!required && *st == APR_ERR_NOT_FOUND) *st = APR_OK;
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (!j) *st = apr_error_set(err, APR_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", path, end ? (size_t)(end - buf) : (size_t)0);
    free(buf);
    return j;
}

/* ---------------------------------------------------------------- the pre-tokenizer */

typedef struct loadhf_pre {
    char *re[TOK_MAX_REGEX];
    int n;
    bool byte_level, prefix_space;
    bool metaspace;                /* a Metaspace step: SentencePiece-style "▁" words */
} loadhf_pre;

static apr_status loadhf_add_re(loadhf_pre *p, const char *re, size_t len, const char *path, apr_error *err) {
    if (p->n == TOK_MAX_REGEX) return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer splits", path, TOK_MAX_REGEX);
    if (!(p->re[p->n] = strndup(re, len))) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
    p->n++;
    return APR_OK;
}

static bool loadhf_bool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(b) ? cJSON_IsTrue(b) : dflt;
}

static apr_status loadhf_pre_node(const cJSON *node, loadhf_pre *p, const char *path, apr_error *err) {
    if (!node || cJSON_IsNull(node)) return APR_OK;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "type"));
    if (!type) return apr_error_set(err, APR_ERR_FORMAT, "%s: pre_tokenizer without a type", path);
    apr_status st = APR_OK;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(node, "pretokenizers"))
            if ((st = loadhf_pre_node(it, p, path, err))) return st;
        return APR_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        p->byte_level = true;
        p->prefix_space = loadhf_bool(node, "add_prefix_space", false);
        if (loadhf_bool(node, "use_regex", true)) {
            const char *const *re;
            int n;
            pre_family("gpt2", &re, &n);
            return loadhf_add_re(p, re[0], strlen(re[0]), path, err);
        }
        return APR_OK;
    }
    if (!strcmp(type, "Metaspace")) {
        const char *scheme = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "prepend_scheme"));
        p->metaspace = true;
        p->prefix_space = scheme ? strcmp(scheme, "never") != 0 : loadhf_bool(node, "add_prefix_space", true);
        return APR_OK;
    }
    if (!strcmp(type, "Digits"))
        return loadhf_bool(node, "individual_digits", false) ? loadhf_add_re(p, "\\p{N}", 5, path, err)
                                                            : loadhf_add_re(p, "\\p{N}+", 6, path, err);
    const char *beh = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "behavior"));
    if (!strcmp(type, "Punctuation")) {
        if (beh && strcmp(beh, "Isolated")) return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: Punctuation behavior '%s' is not supported", path, beh);
        return loadhf_add_re(p, "\\p{P}", 5, path, err);
    }
    if (!strcmp(type, "Split")) {
        if (!beh || strcmp(beh, "Isolated") || loadhf_bool(node, "invert", false))
            return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: Split with behavior '%s'%s is not supported (Isolated is)", path,
                              beh ? beh : "?", loadhf_bool(node, "invert", false) ? " and invert" : "");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(node, "pattern");
        const char *re = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pat, "Regex"));
        if (re) return loadhf_add_re(p, re, strlen(re), path, err);
        const char *lit = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pat, "String"));
        if (!lit) return apr_error_set(err, APR_ERR_FORMAT, "%s: Split without a Regex or String pattern", path);
        size_t l = strlen(lit);
        char *q = malloc(2 * l + 1), *o = q;
        if (!q) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
        for (size_t i = 0; i < l; i++) {   /* escape every ASCII non-alphanumeric character */
            unsigned char c = (unsigned char)lit[i];
            if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) *o++ = '\\';
            *o++ = (char)c;
        }
        st = loadhf_add_re(p, q, (size_t)(o - q), path, err);
        free(q);
        return st;
    }
    return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' is not supported (ByteLevel BPE only)", path, type);
}

/* ---------------------------------------------------------------- tokens */

/* The id of a token named in tokenizer_config.json: "text", {"content": "text"} or null. */
static int32_t loadhf_token_ref(const tok_vocab *v, const cJSON *cfg, const char *key, int32_t dflt) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(t)) t = cJSON_GetObjectItemCaseSensitive(t, "content");
    if (cJSON_IsNull(t)) return -1;
    const char *s = cJSON_GetStringValue(t);
    return s ? vocab_find(v, s, strlen(s)) : dflt;
}

/* The first special token of a TemplateProcessing post-processor's "single" template, if it
 * comes before the sequence: the BOS the model expects. */
static const char *loadhf_template_bos(const cJSON *pp) {
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pp, "type"));
    if (!type) return NULL;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
            const char *b = loadhf_template_bos(it);
            if (b) return b;
        }
        return NULL;
    }
    if (strcmp(type, "TemplateProcessing")) return NULL;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sp, "id"));
}

/* ---------------------------------------------------------------- SentencePiece-style tokenizer.json */

/* The normalizer of an SPM-converted tokenizer.json (Llama 2, Mistral, TinyLlama): nothing,
 * or a Sequence of Prepend("▁") and Replace(" " -> "▁"), the two steps SentencePiece applies
 * itself. *prefix says whether Prepend is among them. False for anything else. */
static bool loadhf_str_is(const cJSON *s, const char *want) {
    const char *v = cJSON_GetStringValue(s);
    return v && !strcmp(v, want);
}

static bool loadhf_spm_normalizer(const cJSON *norm, bool *prefix) {
    *prefix = false;
    if (!norm || cJSON_IsNull(norm)) return true;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(norm, "type"));
    if (!type || strcmp(type, "Sequence")) return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(norm, "normalizers")) {
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "type"));
        if (t && !strcmp(t, "Prepend") && loadhf_str_is(cJSON_GetObjectItemCaseSensitive(it, "prepend"), "\xe2\x96\x81")) {
            *prefix = true;
            continue;
        }
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(it, "pattern");
        const char *from = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pat, "String"));
        const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content"));
        if (!t || strcmp(t, "Replace") || !from || !to || strcmp(from, " ") || strcmp(to, "\xe2\x96\x81")) return false;
    }
    return true;
}

/* A SentencePiece vocabulary from a BPE tokenizer.json with byte fallback. SentencePiece merges
 * the adjacent pair whose joined piece scores highest; tokenizer.json lists the same merges in
 * priority order, so a piece's score is minus the rank of the first merge that makes it. Pieces
 * no merge makes (single characters, <0xXX> bytes, added tokens) are never a merge result and
 * keep a score that loses to every merge. */
static apr_status loadhf_build_spm(const char *path, const cJSON *root, const cJSON *cfg, bool prefix, tok_vocab **out,
                                   apr_error *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int64_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (1 << 30))
            return apr_error_set(err, APR_ERR_FORMAT, "%s: bad id for token '%.40s'", path, it->string);
        if (it->valueint + 1 > n) n = it->valueint + 1;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (1 << 30) ||
            !cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content")))
            return apr_error_set(err, APR_ERR_FORMAT, "%s: an added token without a valid id and content", path);
        if (id->valueint + 1 > n) n = id->valueint + 1;
    }
    if (!n) return apr_error_set(err, APR_ERR_FORMAT, "%s: the vocabulary is empty", path);
    tok_vocab *v = vocab_new(TOK_MODEL_SPM, (int32_t)n);
    const char **texts = calloc((size_t)n, sizeof *texts);
    apr_status st = APR_OK;
    if (!v || !texts) { st = apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path); goto done; }
    memset(v->type, TOK_TYPE_UNUSED, (size_t)n);
    cJSON_ArrayForEach(it, vocab) {
        unsigned b;
        char tail;
        texts[it->valueint] = it->string;
        bool is_byte = strlen(it->string) == 6 && sscanf(it->string, "<0x%2X%c", &b, &tail) == 2 && tail == '>';
        v->type[it->valueint] = is_byte ? TOK_TYPE_BYTE : TOK_TYPE_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        int id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        texts[id] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content"));
        v->type[id] = loadhf_bool(it, "special", false) ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
    }
    if ((st = vocab_set_texts(v, texts, NULL, err))) goto done;
    for (int64_t i = 0; i < n; i++) v->score[i] = -1e9f;
    int32_t rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *s = cJSON_GetStringValue(it), *a = s, *b = NULL;
        size_t la = 0;
        if (s) {
            const char *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (sp) { la = (size_t)(sp - s); b = sp + 1; }
        } else if (cJSON_GetArraySize(it) == 2) {
            a = cJSON_GetStringValue(cJSON_GetArrayItem(it, 0));
            b = cJSON_GetStringValue(cJSON_GetArrayItem(it, 1));
            la = a ? strlen(a) : 0;
        }
        if (a && b) {
            size_t lb = strlen(b);
            char *joined = malloc(la + lb + 1);
            if (!joined) { st = apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path); goto done; }
            memcpy(joined, a, la);
            memcpy(joined + la, b, lb + 1);
            int32_t id = vocab_find(v, joined, la + lb);
            free(joined);
            if (id >= 0 && v->score[id] < (float)-rank) v->score[id] = (float)-rank;
        }
        rank++;
    }
    const char *unk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "unk_token"));
    v->unk = unk ? vocab_find(v, unk, strlen(unk)) : -1;
    if (v->unk >= 0) v->type[v->unk] = TOK_TYPE_UNKNOWN;
    const char *tbos = loadhf_template_bos(cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    v->bos = tbos ? vocab_find(v, tbos, strlen(tbos)) : vocab_find(v, "<s>", 3);
    v->eos = vocab_find(v, "</s>", 4);
    v->add_bos = true; /* SentencePiece models start with BOS unless the config says otherwise */
    v->add_space_prefix = prefix;
    if (cfg) {
        v->bos = loadhf_token_ref(v, cfg, "bos_token", v->bos);
        v->eos = loadhf_token_ref(v, cfg, "eos_token", v->eos);
        v->unk = loadhf_token_ref(v, cfg, "unk_token", v->unk);
        v->pad = loadhf_token_ref(v, cfg, "pad_token", -1);
        v->add_bos = loadhf_bool(cfg, "add_bos_token", v->add_bos);
        v->add_eos = loadhf_bool(cfg, "add_eos_token", false);
    }
    snprintf(v->pre_name, sizeof v->pre_name, "tokenizer.json");
    st = vocab_finish(v, NULL, 0, err);
done:
    free(texts);
    if (st) apr_tok_free(v);
    else *out = v;
    return st;
}

static apr_status loadhf_build(const char *path, const cJSON *root, const cJSON *cfg, tok_vocab **out, apr_error *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "type"));
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(model)) return apr_error_set(err, APR_ERR_FORMAT, "%s: not a tokenizer.json (no \"model\" object)", path);
    if (mtype ? strcmp(mtype, "BPE") : !merges)
        return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (BPE is)", path, mtype ? mtype : "?");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) return apr_error_set(err, APR_ERR_FORMAT, "%s: model.vocab or model.merges is missing", path);

    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    /* SentencePiece converted to tokenizer.json: byte fallback, no ByteLevel step, "▁" for spaces */
    loadhf_pre spm_pre = {0};
    bool spm_prefix = false;
    if (loadhf_bool(model, "byte_fallback", false) && loadhf_spm_normalizer(norm, &spm_prefix) &&
        loadhf_pre_node(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &spm_pre, path, NULL) == APR_OK &&
        !spm_pre.byte_level && spm_pre.n == 0) {
        bool prefix = spm_prefix || (spm_pre.metaspace && spm_pre.prefix_space);
        return loadhf_build_spm(path, root, cfg, prefix, out, err);
    }
    for (int i = 0; i < spm_pre.n; i++) free(spm_pre.re[i]);

    loadhf_pre pre = {0};
    tok_vocab *v = NULL;
    const char **texts = NULL;
    tok_norm *normalizer = NULL;
    apr_status st = norm_parse(norm, path, &normalizer, err);
    if (st) goto done;
    if ((st = loadhf_pre_node(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &pre, path, err))) goto done;
    if (!pre.byte_level) {
        st = apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: BPE without a ByteLevel pre-tokenizer (SentencePiece-style) is not supported; use the GGUF", path);
        goto done;
    }
    if (!pre.n && (st = loadhf_add_re(&pre, "[\\s\\S]+", 8, path, err))) goto done;

    /* ids: the vocab and the added tokens */
    int64_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (1 << 30)) { st = apr_error_set(err, APR_ERR_FORMAT, "%s: bad id for token '%.40s'", path, it->string); goto done; }
        if (it->valueint + 1 > n) n = it->valueint + 1;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (1 << 30) ||
            !cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content"))) {
            st = apr_error_set(err, APR_ERR_FORMAT, "%s: an added token without a valid id and content", path);
            goto done;
        }
        if (id->valueint + 1 > n) n = id->valueint + 1;
    }
    if (!n) { st = apr_error_set(err, APR_ERR_FORMAT, "%s: the vocabulary is empty", path); goto done; }
    v = vocab_new(TOK_MODEL_BPE, (int32_t)n);
    texts = calloc((size_t)n, sizeof *texts);
    if (!v || !texts) { st = apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path); goto done; }
    memset(v->type, TOK_TYPE_UNUSED, (size_t)n);
    cJSON_ArrayForEach(it, vocab) {
        texts[it->valueint] = it->string;
        v->type[it->valueint] = TOK_TYPE_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        int id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        texts[id] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content"));
        bool special = loadhf_bool(it, "special", false);
        v->type[id] = special ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
        v->strip[id] = (uint8_t)((loadhf_bool(it, "lstrip", false) ? TOK_ADDED_LSTRIP : 0) |
                                 (loadhf_bool(it, "rstrip", false) ? TOK_ADDED_RSTRIP : 0) |
                                 (loadhf_bool(it, "normalized", !special) ? TOK_ADDED_NORMALIZED : 0));
    }
    if ((st = vocab_set_texts(v, texts, NULL, err))) goto done;

    if ((st = vocab_merges_alloc(v, (uint64_t)cJSON_GetArraySize(merges), err))) goto done;
    int32_t rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *s = cJSON_GetStringValue(it);
        if (s) {
            const char *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (sp) vocab_add_merge(v, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank);
        } else if (cJSON_GetArraySize(it) == 2) {
            const char *a = cJSON_GetStringValue(cJSON_GetArrayItem(it, 0)), *b = cJSON_GetStringValue(cJSON_GetArrayItem(it, 1));
            if (a && b) vocab_add_merge(v, a, strlen(a), b, strlen(b), rank);
        }
        rank++;
    }

    v->ignore_merges = loadhf_bool(model, "ignore_merges", false);
    v->add_space_prefix = pre.prefix_space;
    const char *unk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "unk_token"));
    v->unk = unk ? vocab_find(v, unk, strlen(unk)) : -1;
    const char *tbos = loadhf_template_bos(cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    v->bos = tbos ? vocab_find(v, tbos, strlen(tbos)) : -1;
    v->add_bos = tbos != NULL;
    if (cfg) {
        v->bos = loadhf_token_ref(v, cfg, "bos_token", v->bos);
        v->eos = loadhf_token_ref(v, cfg, "eos_token", -1);
        v->unk = loadhf_token_ref(v, cfg, "unk_token", v->unk);
        v->pad = loadhf_token_ref(v, cfg, "pad_token", -1);
        v->add_bos = loadhf_bool(cfg, "add_bos_token", v->add_bos);
        v->add_eos = loadhf_bool(cfg, "add_eos_token", false);
    }
    snprintf(v->pre_name, sizeof v->pre_name, "tokenizer.json");
    v->norm = normalizer;
    normalizer = NULL;
    if ((st = vocab_finish(v, (const char *const *)pre.re, pre.n, err)) || (st = norm_specials(v, err))) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err ? err->msg : "");
        apr_error_set(err, st, "%s: %s", path, m);
    }
done:
    norm_free(normalizer);
    for (int i = 0; i < pre.n; i++) free(pre.re[i]);
    free(texts);
    if (st) apr_tok_free(v);
    else *out = v;
    return st;
}

/* ---------------------------------------------------------------- public */

apr_status apr_tok_load_hf(const char *path, tok_vocab **out, apr_error *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb)) return apr_error_set(err, errno == ENOENT ? APR_ERR_NOT_FOUND : APR_ERR_IO, "%s: %s", path, strerror(errno));
    size_t pl = strlen(path);
    char *json = malloc(pl + 64), *cfgp = malloc(pl + 64);
    if (!json || !cfgp) { free(json); free(cfgp); return apr_error_set(err, APR_ERR_NOMEM, "out of memory"); }
    if (S_ISDIR(sb.st_mode)) {
        sprintf(json, "%s/tokenizer.json", path);
        if (access(json, F_OK)) sprintf(json, "%s/tokenizer.json.gz", path);
        sprintf(cfgp, "%s/tokenizer_config.json", path);
    } else {
        strcpy(json, path);
        const char *slash = strrchr(path, '/');
        sprintf(cfgp, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0, path);
    }
    apr_status st;
    cJSON *root = loadhf_parse(json, true, &st, err), *cfg = NULL;
    if (!st) cfg = loadhf_parse(cfgp, false, &st, err);
    if (!st) st = loadhf_build(json, root, cfg, out, err);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    free(json);
    free(cfgp);
    return st;
}

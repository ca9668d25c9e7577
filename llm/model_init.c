/* model_init.c — random-weight Llama-family models in named or custom shapes, streamed to GGUF
 * (model_init.h); apr-genmodel and apr-finetune --from-scratch are its frontends. */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr_float16.h"
#include "model_init.h"

/* ---------------------------------------------------------------- shapes */

#define INIT_MAX (1 << 24) /* the largest count apr_llama_model_load takes */
#define INIT_TINY_VOCAB 32000

static const apr_model_init_shape init_shapes[] = {
    {"tiny", "llama", 4, 256, 8, 4, 0, 688, 32000, 2048, 10000.0f, 1e-5f, false, false, false},
    {"tinyllama-1.1b", "llama", 22, 2048, 32, 4, 0, 5632, 32000, 2048, 10000.0f, 1e-5f, false, false, false},
    {"qwen2.5-0.5b", "qwen2", 24, 896, 14, 2, 0, 4864, 151936, 32768, 1000000.0f, 1e-6f, true, true, false},
    {"llama-3.2-1b", "llama", 16, 2048, 32, 8, 0, 8192, 128256, 131072, 500000.0f, 1e-5f, true, false, true},
};
#define INIT_N_SHAPES ((int)(sizeof init_shapes / sizeof *init_shapes))

const apr_model_init_shape *apr_model_init_shape_at(int i) {
    return i >= 0 && i < INIT_N_SHAPES ? &init_shapes[i] : NULL;
}

const apr_model_init_shape *apr_model_init_shape_find(const char *name) {
    for (int i = 0; name && i < INIT_N_SHAPES; i++)
        if (!strcmp(name, init_shapes[i].name)) return &init_shapes[i];
    return NULL;
}

static bool init_known_arch(const char *arch) {
    return !strcmp(arch, "llama") || !strcmp(arch, "qwen2") || !strcmp(arch, "qwen3");
}

/* The checks of apr_model_init_shape_check, each message starting with label. */
static apr_status init_check(const apr_model_init_shape *sh, const char *label, apr_error *err) {
    if (!memchr(sh->arch, 0, sizeof sh->arch) || !init_known_arch(sh->arch))
        return apr_error_set(err, APR_ERR_INVALID, "%s: architecture '%.*s' is not one of llama, qwen2, qwen3", label,
                             (int)sizeof sh->arch, sh->arch);
    const struct { const char *what; int v, min; } n[] = {
        {"layers", sh->n_layer, 1}, {"embd", sh->n_embd, 1}, {"heads", sh->n_head, 1}, {"kv_heads", sh->n_head_kv, 1},
        {"head_dim", sh->head_dim, 0}, {"ff", sh->n_ff, 1}, {"vocab", sh->n_vocab, 0}, {"ctx", sh->n_ctx_train, 1},
    };
    for (size_t i = 0; i < sizeof n / sizeof *n; i++)
        if (n[i].v < n[i].min || n[i].v > INIT_MAX)
            return apr_error_set(err, APR_ERR_INVALID, "%s: %s = %d is out of range (%d to %d)", label, n[i].what,
                                 n[i].v, n[i].min, INIT_MAX);
    if (sh->n_head % sh->n_head_kv)
        return apr_error_set(err, APR_ERR_INVALID, "%s: kv_heads (%d) do not divide heads (%d)", label, sh->n_head_kv,
                             sh->n_head);
    if (!sh->head_dim && sh->n_embd % sh->n_head)
        return apr_error_set(err, APR_ERR_INVALID, "%s: heads (%d) do not divide embd (%d); give head_dim", label,
                             sh->n_head, sh->n_embd);
    const int hd = sh->head_dim ? sh->head_dim : sh->n_embd / sh->n_head;
    if (hd < 2 || hd % 2)
        return apr_error_set(err, APR_ERR_INVALID, "%s: the head size %d is not even (rope turns pairs)", label, hd);
    if (!(sh->rope_base > 0) || !isfinite(sh->rope_base) || !(sh->rms_eps > 0) || !isfinite(sh->rms_eps))
        return apr_error_set(err, APR_ERR_INVALID, "%s: rope_base (%g) and rms_eps (%g) must be positive and finite",
                             label, (double)sh->rope_base, (double)sh->rms_eps);
    return APR_OK;
}

apr_status apr_model_init_shape_check(const apr_model_init_shape *sh, apr_error *err) {
    char label[64];
    snprintf(label, sizeof label, "shape %.*s", (int)sizeof sh->name, sh->name);
    return init_check(sh, label, err);
}

/* ---------------------------------------------------------------- custom shapes: key=value,... */

typedef enum init_key_kind { INIT_INT, INIT_FLOAT, INIT_BOOL, INIT_ARCH, INIT_BASE } init_key_kind;

typedef struct init_key {
    const char *name;
    init_key_kind kind;
    size_t off; /* into apr_model_init_shape */
} init_key;

#define INIT_KEY(n, k, f) {n, k, offsetof(apr_model_init_shape, f)}
static const init_key init_keys[] = {
    INIT_KEY("base", INIT_BASE, name),        INIT_KEY("arch", INIT_ARCH, arch),
    INIT_KEY("layers", INIT_INT, n_layer),    INIT_KEY("embd", INIT_INT, n_embd),
    INIT_KEY("heads", INIT_INT, n_head),      INIT_KEY("kv_heads", INIT_INT, n_head_kv),
    INIT_KEY("head_dim", INIT_INT, head_dim), INIT_KEY("ff", INIT_INT, n_ff),
    INIT_KEY("vocab", INIT_INT, n_vocab),     INIT_KEY("ctx", INIT_INT, n_ctx_train),
    INIT_KEY("rope_base", INIT_FLOAT, rope_base), INIT_KEY("rms_eps", INIT_FLOAT, rms_eps),
    INIT_KEY("tied", INIT_BOOL, tied),        INIT_KEY("qkv_bias", INIT_BOOL, qkv_bias),
    INIT_KEY("llama3_rope", INIT_BOOL, llama3_rope),
};
#define INIT_N_KEYS (sizeof init_keys / sizeof *init_keys)
#define INIT_KEY_LIST "base, arch, layers, embd, heads, kv_heads, head_dim, ff, vocab, ctx, rope_base, rms_eps, tied, qkv_bias, llama3_rope"

/* One pair of the spec, pointing into it (not NUL-terminated). */
typedef struct init_pair {
    const char *key, *val;
    size_t key_len, val_len;
} init_pair;

static const init_key *init_key_find(const init_pair *p) {
    for (size_t k = 0; k < INIT_N_KEYS; k++)
        if (strlen(init_keys[k].name) == p->key_len && !memcmp(init_keys[k].name, p->key, p->key_len)) return &init_keys[k];
    return NULL;
}

/* Sets key k of sh from the value text v; false when it does not parse. */
static bool init_set(apr_model_init_shape *sh, const init_key *k, const char *v) {
    char *end;
    void *dst = (char *)sh + k->off;
    switch (k->kind) {
    case INIT_INT: {
        if (*v < '0' || *v > '9') return false; /* no sign, no spaces */
        errno = 0;
        long x = strtol(v, &end, 10);
        if (*end || errno || x > INIT_MAX) return false;
        *(int *)dst = (int)x;
        return true;
    }
    case INIT_FLOAT: {
        if (!*v || *v == ' ') return false;
        errno = 0;
        double x = strtod(v, &end);
        if (*end || errno || !(x > 0) || !isfinite(x) || !isfinite((float)x) || !((float)x > 0)) return false;
        *(float *)dst = (float)x;
        return true;
    }
    case INIT_BOOL:
        if (strcmp(v, "0") && strcmp(v, "1")) return false;
        *(bool *)dst = *v == '1';
        return true;
    case INIT_ARCH:
        if (!init_known_arch(v)) return false; /* so it fits */
        memset(sh->arch, 0, sizeof sh->arch);
        memcpy(sh->arch, v, strlen(v));
        return true;
    case INIT_BASE: {
        const apr_model_init_shape *b = apr_model_init_shape_find(v);
        if (!b) return false;
        *sh = *b;
        return true;
    }
    }
    return false;
}

static const char *init_expect(init_key_kind k) {
    switch (k) {
    case INIT_INT: return "a non-negative integer up to 16777216";
    case INIT_FLOAT: return "a positive number";
    case INIT_BOOL: return "0 or 1";
    case INIT_ARCH: return "llama, qwen2 or qwen3";
    case INIT_BASE: return "a shape name (tiny, tinyllama-1.1b, qwen2.5-0.5b, llama-3.2-1b)";
    }
    return "";
}

apr_status apr_model_init_shape_parse(const char *spec, apr_model_init_shape *out, apr_error *err) {
    enum { MAX_PAIRS = 32 };
    init_pair pairs[MAX_PAIRS];
    const init_key *keys[MAX_PAIRS];
    int n = 0;
    if (!spec || !*spec) return apr_error_set(err, APR_ERR_INVALID, "shape spec is empty (key=value pairs: " INIT_KEY_LIST ")");
    for (const char *p = spec;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p)
            return apr_error_set(err, APR_ERR_INVALID, "shape spec '%s': '%.*s' is not key=value", spec, (int)len, p);
        if (n == MAX_PAIRS) return apr_error_set(err, APR_ERR_INVALID, "shape spec '%s': more than %d pairs", spec, MAX_PAIRS);
        pairs[n] = (init_pair){p, eq + 1, (size_t)(eq - p), len - (size_t)(eq - p) - 1};
        if (!(keys[n] = init_key_find(&pairs[n])))
            return apr_error_set(err, APR_ERR_INVALID, "shape spec '%s': unknown key '%.*s' (keys: " INIT_KEY_LIST ")", spec,
                                 (int)pairs[n].key_len, p);
        for (int i = 0; i < n; i++)
            if (keys[i] == keys[n])
                return apr_error_set(err, APR_ERR_INVALID, "shape spec '%s': key '%s' is given twice", spec, keys[n]->name);
        n++;
        if (!end) break;
        p = end;
    }
    /* the base first, then arch (which sets qkv_bias's default), then the rest in order */
    apr_model_init_shape sh = *apr_model_init_shape_find("tiny");
    bool vocab_given = false, bias_given = false, arch_given = false;
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < n; i++) {
            const init_key_kind kind = keys[i]->kind;
            if ((pass == 0) != (kind == INIT_BASE) || (pass == 1) != (kind == INIT_ARCH)) continue;
            char val[64];
            if (pairs[i].val_len >= sizeof val ||
                (snprintf(val, sizeof val, "%.*s", (int)pairs[i].val_len, pairs[i].val), !init_set(&sh, keys[i], val)))
                return apr_error_set(err, APR_ERR_INVALID, "shape spec '%s': %s takes %s, not '%.*s'", spec, keys[i]->name,
                                     init_expect(kind), (int)pairs[i].val_len, pairs[i].val);
            vocab_given |= !strcmp(keys[i]->name, "vocab");
            bias_given |= !strcmp(keys[i]->name, "qkv_bias");
            arch_given |= kind == INIT_ARCH;
        }
    if (!vocab_given) sh.n_vocab = 0;
    if (arch_given && !bias_given) sh.qkv_bias = !strcmp(sh.arch, "qwen2");
    snprintf(sh.name, sizeof sh.name, "custom");
    char label[128];
    snprintf(label, sizeof label, "shape spec '%.80s%s'", spec, strlen(spec) > 80 ? "..." : "");
    apr_status st = init_check(&sh, label, err);
    if (st) return st;
    *out = sh;
    return APR_OK;
}

/* ---------------------------------------------------------------- random tensor data, produced while writing */

typedef enum init_fill { INIT_NORMAL, INIT_ONES, INIT_DATA } init_fill;

typedef struct init_job init_job;

typedef struct init_tensor {
    init_fill kind;
    uint32_t dtype;
    uint64_t seed;      /* per tensor, so each tensor's values do not depend on the others */
    uint64_t state;     /* the generator, restarted at offset 0 */
    const float *data;  /* INIT_DATA: f32 values */
    init_job *job;      /* progress, shared by all tensors */
} init_tensor;

struct init_job {
    gguf_writer *w;
    init_tensor *t;
    int n, cap;
    uint64_t seed;
    apr_model_init_info info;
    const apr_model_init_opts *opts;
};

static uint64_t init_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Box-Muller, one value per call (the second is dropped: simpler, and speed is ample). */
static float init_normal(uint64_t *s, float std) {
    double u1 = ((double)(init_next(s) >> 11) + 1.0) * 0x1p-53, u2 = (double)(init_next(s) >> 11) * 0x1p-53;
    return (float)(std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int init_fill_cb(void *ctx, uint64_t offset, void *buf, size_t n) {
    init_tensor *t = ctx;
    size_t es = t->dtype == APR_F32 ? 4 : 2;
    if (offset == 0) t->state = t->seed;
    for (size_t i = 0; i < n / es; i++) {
        float v = t->kind == INIT_ONES ? 1.0f : t->kind == INIT_DATA ? t->data[offset / es + i] : init_normal(&t->state, 0.02f);
        if (t->dtype == APR_F32) memcpy((char *)buf + 4 * i, &v, 4);
        else {
            uint16_t h = t->dtype == APR_F16 ? apr_f32_to_f16(v) : apr_f32_to_bf16(v);
            memcpy((char *)buf + 2 * i, &h, 2);
        }
    }
    init_job *j = t->job;
    j->info.done += n;
    if (j->opts && j->opts->progress) j->opts->progress(j->opts->progress_ctx, &j->info);
    return 0;
}

static void init_add(init_job *j, const char *name, init_fill kind, uint32_t dtype, int64_t ne0, int64_t ne1, const float *data) {
    if (j->n == j->cap) return; /* cannot happen: cap counts every tensor */
    init_tensor *t = &j->t[j->n++];
    uint64_t s = j->seed * 1000003u + (uint64_t)j->n;
    *t = (init_tensor){kind, dtype, init_next(&s), 0, data, j};
    uint64_t size = (uint64_t)(ne0 * ne1) * (dtype == APR_F32 ? 4 : 2);
    j->info.total += size;
    apr_gguf_writer_add_tensor_fn(j->w, name, dtype, ne1 > 1 ? 2 : 1, (int64_t[]){ne0, ne1}, size, init_fill_cb, t);
}

/* Llama 3 rope scaling as convert_hf_to_gguf writes it: a divisor per rotated pair (factor 32,
 * low/high frequency factors 1 and 4, original context 8192). */
static void init_llama3_factors(float *ff, int n_rot, float base) {
    const double factor = 32, lo = 1, hi = 4, old_ctx = 8192;
    for (int i = 0; i < n_rot / 2; i++) {
        double freq = pow(base, -2.0 * i / n_rot), wavelen = 2 * M_PI / freq;
        if (wavelen < old_ctx / hi) ff[i] = 1;
        else if (wavelen > old_ctx / lo) ff[i] = (float)factor;
        else {
            double smooth = (old_ctx / wavelen - lo) / (hi - lo);
            ff[i] = (float)(1 / ((1 - smooth) / factor + smooth));
        }
    }
}

/* ---------------------------------------------------------------- the tokenizer, copied and padded */

/* llama.cpp's token type for a slot that holds no real token (its LLAMA_TOKEN_TYPE_UNUSED). */
#define INIT_TOKEN_UNUSED 5

/* Sets key to the per-token array v (n entries) padded to m: tokens get "[PAD<id>]", as Hugging
 * Face's converter names the embedding rows past a smaller vocabulary; token types get "unused";
 * scores get the lowest score present, so a placeholder never outranks a real piece. Fails when
 * the element type is not the one llama.cpp reads. */
static apr_status init_pad_array(gguf_writer *w, const char *path, const char *key, const gguf_value *v, uint64_t n,
                                 uint64_t m, apr_error *err) {
    const bool tokens = !strcmp(key, "tokenizer.ggml.tokens"), scores = !strcmp(key, "tokenizer.ggml.scores");
    const gguf_type want = tokens ? GGUF_STRING : scores ? GGUF_FLOAT32 : GGUF_INT32;
    if (v->type != GGUF_ARRAY || v->arr.type != want || v->arr.n != n)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: %s is not an array of %llu %s values; cannot pad it", path, key,
                             (unsigned long long)n, apr_gguf_type_name(want));
    bool ok = false;
    if (tokens) {
        gguf_value *items = calloc(m, sizeof *items);
        char *names = malloc((m - n) * 24);
        if (items && names) {
            memcpy(items, v->arr.items, n * sizeof *items);
            for (uint64_t i = n; i < m; i++) {
                char *s = names + (i - n) * 24;
                int len = snprintf(s, 24, "[PAD%llu]", (unsigned long long)i);
                items[i] = (gguf_value){.type = GGUF_STRING, .str = {s, (uint64_t)len}};
            }
            apr_gguf_writer_set_value(w, key, &(gguf_value){.type = GGUF_ARRAY, .arr = {GGUF_STRING, m, NULL, items}});
            ok = true;
        }
        free(names);
        free(items);
    } else {
        uint32_t *data = malloc(m * 4); /* FLOAT32 and INT32 alike: 4-byte elements */
        if (data) {
            memcpy(data, v->arr.data, n * 4);
            uint32_t fill;
            if (scores) {
                float lo, x;
                memcpy(&lo, &data[0], 4);
                for (uint64_t i = 1; i < n; i++) {
                    memcpy(&x, &data[i], 4);
                    if (x < lo) lo = x;
                }
                memcpy(&fill, &lo, 4);
            } else fill = INIT_TOKEN_UNUSED;
            for (uint64_t i = n; i < m; i++) data[i] = fill;
            apr_gguf_writer_set_arr(w, key, want, data, m);
            ok = true;
        }
        free(data);
    }
    return ok ? APR_OK : apr_error_set(err, APR_ERR_NOMEM, "out of memory padding %s", key);
}

/* Opens the tokenizer file and counts its tokens: none, or more than n_vocab rows (when not 0), fail. */
static apr_status init_vocab_open(const char *path, int n_vocab, gguf_file **f, uint64_t *n, apr_error *err) {
    apr_status st = apr_gguf_open(path, f, err);
    if (st) return st;
    gguf_type et;
    *n = 0;
    const uint64_t rows = n_vocab ? (uint64_t)n_vocab : INIT_MAX;
    if (apr_gguf_get_arr(*f, "tokenizer.ggml.tokens", &et, n) && *n > 0 && *n <= rows) return APR_OK;
    if (*n == 0) st = apr_error_set(err, APR_ERR_FORMAT, "%s has no vocabulary (tokenizer.ggml.tokens)", path);
    else if (n_vocab)
        st = apr_error_set(err, APR_ERR_FORMAT, "%s: its vocabulary has %llu tokens, more than the %d rows of the shape's embedding",
                           path, (unsigned long long)*n, n_vocab);
    else st = apr_error_set(err, APR_ERR_FORMAT, "%s: its vocabulary has %llu tokens, more than %d", path, (unsigned long long)*n, INIT_MAX);
    apr_gguf_close(*f);
    *f = NULL;
    return st;
}

/* Copies the tokenizer.* keys of f (n tokens), padding the per-token arrays to n_vocab. Merges and
 * special ids stay as they are. */
static apr_status init_vocab_copy(gguf_writer *w, const gguf_file *f, const char *path, uint64_t n, int n_vocab, apr_error *err) {
    const bool pad = n < (uint64_t)n_vocab;
    for (int64_t i = 0; i < apr_gguf_kv_count(f); i++) {
        const char *key = apr_gguf_kv_key(f, i);
        if (strncmp(key, "tokenizer.", 10)) continue;
        if (pad && (!strcmp(key, "tokenizer.ggml.tokens") || !strcmp(key, "tokenizer.ggml.scores") ||
                    !strcmp(key, "tokenizer.ggml.token_type"))) {
            apr_status st = init_pad_array(w, path, key, apr_gguf_kv_value(f, i), n, (uint64_t)n_vocab, err);
            if (st) return st;
        } else apr_gguf_writer_set_value(w, key, apr_gguf_kv_value(f, i)); /* deep-copied */
    }
    return APR_OK;
}

/* ---------------------------------------------------------------- the model */

static void init_write_keys(gguf_writer *w, const apr_model_init_shape *sh, const char *producer, uint64_t seed, int hd) {
    const char *a = sh->arch;
    char key[128], name[160];
    snprintf(name, sizeof name, "random weights — not a trained model (%s %s, seed %llu)", producer, sh->name,
             (unsigned long long)seed);
    apr_gguf_writer_set_str(w, "general.architecture", a);
    apr_gguf_writer_set_str(w, "general.name", name);
#define INIT_U32(k, v) (snprintf(key, sizeof key, "%s." k, a), apr_gguf_writer_set_u32(w, key, (uint32_t)(v)))
#define INIT_F32(k, v) (snprintf(key, sizeof key, "%s." k, a), apr_gguf_writer_set_f32(w, key, (v)))
    INIT_U32("block_count", sh->n_layer);
    INIT_U32("context_length", sh->n_ctx_train);
    INIT_U32("embedding_length", sh->n_embd);
    INIT_U32("feed_forward_length", sh->n_ff);
    INIT_U32("attention.head_count", sh->n_head);
    INIT_U32("attention.head_count_kv", sh->n_head_kv);
    if (sh->n_embd % sh->n_head || hd != sh->n_embd / sh->n_head) { /* the loader's default otherwise */
        INIT_U32("attention.key_length", hd);
        INIT_U32("attention.value_length", hd);
    }
    INIT_U32("rope.dimension_count", hd);
    INIT_F32("rope.freq_base", sh->rope_base);
    INIT_F32("attention.layer_norm_rms_epsilon", sh->rms_eps);
    INIT_U32("vocab_size", sh->n_vocab);
#undef INIT_U32
#undef INIT_F32
}

static void init_add_tensors(init_job *j, const apr_model_init_shape *sh, uint32_t dtype, int hd, float *rope_factors) {
    char name[96];
    const bool qk_norm = !strcmp(sh->arch, "qwen3");
    const int64_t E = sh->n_embd, Q = (int64_t)sh->n_head * hd, KV = (int64_t)sh->n_head_kv * hd, F = sh->n_ff;
    init_add(j, "token_embd.weight", INIT_NORMAL, dtype, E, sh->n_vocab, NULL);
    if (sh->llama3_rope) {
        init_llama3_factors(rope_factors, hd, sh->rope_base);
        init_add(j, "rope_freqs.weight", INIT_DATA, APR_F32, hd / 2, 1, rope_factors);
    }
    for (int l = 0; l < sh->n_layer; l++) {
        struct { const char *name; init_fill kind; int64_t ne0, ne1; bool on; } blk[] = {
            {"attn_norm.weight", INIT_ONES, E, 1, true},
            {"attn_q.weight", INIT_NORMAL, E, Q, true},
            {"attn_q.bias", INIT_NORMAL, Q, 1, sh->qkv_bias},
            {"attn_q_norm.weight", INIT_ONES, hd, 1, qk_norm},
            {"attn_k.weight", INIT_NORMAL, E, KV, true},
            {"attn_k.bias", INIT_NORMAL, KV, 1, sh->qkv_bias},
            {"attn_k_norm.weight", INIT_ONES, hd, 1, qk_norm},
            {"attn_v.weight", INIT_NORMAL, E, KV, true},
            {"attn_v.bias", INIT_NORMAL, KV, 1, sh->qkv_bias},
            {"attn_output.weight", INIT_NORMAL, Q, E, true},
            {"ffn_norm.weight", INIT_ONES, E, 1, true},
            {"ffn_gate.weight", INIT_NORMAL, E, F, true},
            {"ffn_up.weight", INIT_NORMAL, E, F, true},
            {"ffn_down.weight", INIT_NORMAL, F, E, true},
        };
        for (size_t i = 0; i < sizeof blk / sizeof *blk; i++) {
            if (!blk[i].on) continue;
            snprintf(name, sizeof name, "blk.%d.%s", l, blk[i].name);
            /* vectors stay f32, as llama.cpp's converter keeps them */
            init_add(j, name, blk[i].kind, blk[i].ne1 > 1 ? dtype : APR_F32, blk[i].ne0, blk[i].ne1, NULL);
        }
    }
    init_add(j, "output_norm.weight", INIT_ONES, APR_F32, E, 1, NULL);
    if (!sh->tied) init_add(j, "output.weight", INIT_NORMAL, dtype, E, sh->n_vocab, NULL);
}

apr_status apr_model_init_write(const apr_model_init_shape *shape, apr_dtype dtype, uint64_t seed, const apr_model_init_tok *tok,
                                const apr_model_init_opts *opts, const char *out, apr_error *err) {
    static const apr_model_init_tok no_tok;
    if (!tok) tok = &no_tok;
    apr_status st = apr_model_init_shape_check(shape, err);
    if (st) return st;
    if (dtype != APR_F32 && dtype != APR_F16 && dtype != APR_BF16)
        return apr_error_set(err, APR_ERR_INVALID, "model weights must be f32, f16 or bf16, not %s",
                             apr_dtype_name(dtype) ? apr_dtype_name(dtype) : "an unknown type");
    if (tok->gguf_path && tok->keys)
        return apr_error_set(err, APR_ERR_INVALID, "a tokenizer from %s and from a callback: give one", tok->gguf_path);
    if (tok->keys && (tok->n_tokens < 0 || tok->n_tokens > INIT_MAX || (!shape->n_vocab && !tok->n_tokens) ||
                      (shape->n_vocab && tok->n_tokens && tok->n_tokens != shape->n_vocab)))
        return apr_error_set(err, APR_ERR_INVALID,
                             "shape %s: the tokenizer callback writes %d tokens (n_tokens) for %d embedding rows; with vocab 0 "
                             "n_tokens must be given, else the two must match",
                             shape->name, tok->n_tokens, shape->n_vocab);
    if (!out) return apr_error_set(err, APR_ERR_INVALID, "no output file given");

    apr_model_init_shape sh = *shape;
    sh.head_dim = sh.head_dim ? sh.head_dim : sh.n_embd / sh.n_head;
    const int hd = sh.head_dim;
    gguf_file *vf = NULL;
    uint64_t n_tok = 0;
    if (tok->gguf_path && (st = init_vocab_open(tok->gguf_path, sh.n_vocab, &vf, &n_tok, err))) return st;
    if (!sh.n_vocab) sh.n_vocab = vf ? (int)n_tok : tok->keys ? tok->n_tokens : INIT_TINY_VOCAB;

    init_job j = {.cap = 3 + 1 + sh.n_layer * (9 + (sh.qkv_bias ? 3 : 0) + (!strcmp(sh.arch, "qwen3") ? 2 : 0)), .seed = seed,
                  .opts = opts};
    j.info = (apr_model_init_info){&sh, dtype, tok->gguf_path, vf ? (int64_t)n_tok : tok->keys ? tok->n_tokens : 0,
                                   vf && n_tok < (uint64_t)sh.n_vocab, 0, 0};
    j.w = apr_gguf_writer_new();
    j.t = calloc((size_t)j.cap, sizeof *j.t);
    float *rope_factors = calloc((size_t)hd / 2, sizeof *rope_factors);
    if (!j.w || !j.t || !rope_factors) {
        st = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        goto done;
    }
    init_write_keys(j.w, &sh, opts && opts->producer ? opts->producer : "apr", seed, hd);
    if (vf) st = init_vocab_copy(j.w, vf, tok->gguf_path, n_tok, sh.n_vocab, err);
    else if (tok->keys) st = tok->keys(tok->keys_ctx, j.w, err);
    apr_gguf_close(vf); /* the writer deep-copies values */
    vf = NULL;
    if (st) goto done;
    init_add_tensors(&j, &sh, (uint32_t)dtype, hd, rope_factors);
    if (opts && opts->progress) opts->progress(opts->progress_ctx, &j.info);
    st = apr_gguf_writer_write(j.w, out, err);
done:
    apr_gguf_close(vf);
    free(rope_factors);
    free(j.t);
    apr_gguf_writer_free(j.w);
    return st;
}

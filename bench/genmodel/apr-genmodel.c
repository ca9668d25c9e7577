/* apr-genmodel.c — writes a GGUF model of random weights in the exact shape of a real one, for demos and benchmarks. */
#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apr/apr_float16.h"
#include "common/cli.h"
#include "common/cli_signal.h"
#include "gguf.h"
#include "hf_import.h"

static const char *genmodel_usage =
    "usage: apr-genmodel [--shape NAME] [--dtype f16|f32|bf16] [--seed S] [--vocab-from FILE.gguf | --no-vocab] OUT.gguf\n"
    "\n"
    "Writes a model of random weights (normal, std 0.02; norms 1) in the exact shape of a real one,\n"
    "so that the runtime can be run and timed without a trained checkpoint. The text it generates\n"
    "is gibberish: general.name says these are random weights. OUT is written atomically: an unnamed\n"
    "file linked into place when done (where the filesystem lacks that, a temporary file renamed\n"
    "over OUT, removed on Ctrl-C, TERM or HUP).\n"
    "\n"
    "shapes:\n"
    "  tiny            llama: 4 layers, width 256, 8 heads / 4 KV heads, ffn 688, vocab 32000 (default)\n"
    "  tinyllama-1.1b  llama: 22 layers, width 2048, 32 / 4 heads, ffn 5632, vocab 32000\n"
    "  qwen2.5-0.5b    qwen2: 24 layers, width 896, 14 / 2 heads, ffn 4864, vocab 151936, tied, q/k/v bias\n"
    "  llama-3.2-1b    llama: 16 layers, width 2048, 32 / 8 heads, ffn 8192, vocab 128256, tied, Llama 3 rope scaling\n"
    "\n"
    "options:\n"
    "  --dtype T         weight type of the matrices (norms, biases and rope factors stay f32); default f16\n"
    "  --seed S          random seed (default 1)\n"
    "  --vocab-from F    copy the tokenizer.* keys of F, so that apr-run can print text and llama.cpp can load\n"
    "                    the model; a vocabulary smaller than the shape's is padded with [PAD<id>] tokens (type\n"
    "                    unused, the lowest score), as Hugging Face's converter pads embedding rows past the\n"
    "                    tokenizer; a larger one is refused. Without it no tokenizer is written (apr-run then\n"
    "                    prints ids and takes --tokens)\n"
    "  --no-vocab        write no tokenizer (the default; kept for scripts); not with --vocab-from\n"
    "  --json            a JSON summary on stdout when done\n"
    "  -h, --help        this text (--backend and --threads are accepted and ignored)\n"
    "\n"
    "exit status: 0 ok, 1 failure, 2 usage error\n";

typedef struct genmodel_shape {
    const char *name, *arch;
    int n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_base, rms_eps;
    bool tied, qkv_bias, llama3_rope;
} genmodel_shape;

static const genmodel_shape genmodel_shapes[] = {
    {"tiny", "llama", 4, 256, 8, 4, 688, 32000, 2048, 10000.0f, 1e-5f, false, false, false},
    {"tinyllama-1.1b", "llama", 22, 2048, 32, 4, 5632, 32000, 2048, 10000.0f, 1e-5f, false, false, false},
    {"qwen2.5-0.5b", "qwen2", 24, 896, 14, 2, 4864, 151936, 32768, 1000000.0f, 1e-6f, true, true, false},
    {"llama-3.2-1b", "llama", 16, 2048, 32, 8, 8192, 128256, 131072, 500000.0f, 1e-5f, true, false, true},
};

/* ---------------------------------------------------------------- random tensor data, produced while writing */

typedef enum genmodel_fill { GENMODEL_NORMAL, GENMODEL_ONES, GENMODEL_DATA } genmodel_fill;

typedef struct genmodel_tensor {
    genmodel_fill kind;
    uint32_t dtype;
    uint64_t seed;          /* per tensor, so each tensor's values do not depend on the others */
    uint64_t state;         /* the generator, restarted at offset 0 */
    const float *data;      /* GENMODEL_DATA: f32 values */
    uint64_t *done, total;  /* progress shared by all tensors */
} genmodel_tensor;

static uint64_t genmodel_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Box-Muller, one value per call (the second is dropped: simpler, and speed is ample). */
static float genmodel_normal(uint64_t *s, float std) {
    double u1 = ((double)(genmodel_next(s) >> 11) + 1.0) * 0x1p-53, u2 = (double)(genmodel_next(s) >> 11) * 0x1p-53;
    return (float)(std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int genmodel_fill_cb(void *ctx, uint64_t offset, void *buf, size_t n) {
    genmodel_tensor *t = ctx;
    size_t es = t->dtype == APR_F32 ? 4 : 2;
    if (offset == 0) t->state = t->seed;
    for (size_t i = 0; i < n / es; i++) {
        float v = t->kind == GENMODEL_ONES ? 1.0f
                  : t->kind == GENMODEL_DATA ? t->data[offset / es + i]
                                             : genmodel_normal(&t->state, 0.02f);
        if (t->dtype == APR_F32) memcpy((char *)buf + 4 * i, &v, 4);
        else {
            uint16_t h = t->dtype == APR_F16 ? apr_f32_to_f16(v) : apr_f32_to_bf16(v);
            memcpy((char *)buf + 2 * i, &h, 2);
        }
    }
    /* progress: a line rewritten in place on a terminal, else one line per 10% */
    const bool tty = isatty(2);
    const uint64_t steps = tty ? 200 : 10;
    uint64_t before = *t->done * steps / t->total;
    *t->done += n;
    if (*t->done * steps / t->total != before)
        fprintf(stderr, "%sapr-genmodel: %llu of %llu MiB%s", tty ? "\r" : "", (unsigned long long)(*t->done >> 20),
                (unsigned long long)(t->total >> 20), tty && *t->done < t->total ? "" : "\n");
    return 0;
}

/* ---------------------------------------------------------------- the model */

/* Llama 3 rope scaling as convert_hf_to_gguf writes it: a divisor per rotated pair (factor 32,
 * low/high frequency factors 1 and 4, original context 8192). */
static void genmodel_llama3_factors(float *ff, int n_rot, float base) {
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
#define GENMODEL_TOKEN_UNUSED 5

/* Sets key to the per-token array v (n entries) padded to n_vocab: tokens get "[PAD<id>]", as
 * Hugging Face's converter names the embedding rows past a smaller vocabulary; token types get
 * "unused"; scores get the lowest score present, so a placeholder never outranks a real piece.
 * Returns false with a message when the element type is not the one llama.cpp reads. */
static bool genmodel_pad_array(gguf_writer *w, const char *path, const char *key, const gguf_value *v, uint64_t n,
                               int n_vocab) {
    const uint64_t m = (uint64_t)n_vocab;
    const bool tokens = !strcmp(key, "tokenizer.ggml.tokens"), scores = !strcmp(key, "tokenizer.ggml.scores");
    const gguf_type want = tokens ? GGUF_STRING : scores ? GGUF_FLOAT32 : GGUF_INT32;
    if (v->type != GGUF_ARRAY || v->arr.type != want || v->arr.n != n) {
        fprintf(stderr, "apr-genmodel: %s: %s is not an array of %llu %s values; cannot pad it\n", path, key,
                (unsigned long long)n, apr_gguf_type_name(want));
        return false;
    }
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
            } else fill = GENMODEL_TOKEN_UNUSED;
            for (uint64_t i = n; i < m; i++) data[i] = fill;
            apr_gguf_writer_set_arr(w, key, want, data, m);
            ok = true;
        }
        free(data);
    }
    if (!ok) fprintf(stderr, "apr-genmodel: out of memory padding %s\n", key);
    return ok;
}

/* Copies the tokenizer.* keys of path. A vocabulary smaller than the shape's n_vocab embedding rows
 * is padded with placeholders (tokens, scores and token types; merges and special ids stay), which is
 * what llama.cpp needs, since it requires one token per row; a larger one is refused. */
static int genmodel_copy_vocab(gguf_writer *w, const char *path, int n_vocab) {
    gguf_file *f;
    apr_error e;
    if (apr_gguf_open(path, &f, &e) != APR_OK) {
        fprintf(stderr, "apr-genmodel: %s\n", e.msg);
        return CLI_EXIT_FAIL;
    }
    gguf_type et;
    uint64_t n = 0;
    if (!apr_gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n) || n == 0 || n > (uint64_t)n_vocab) {
        if (n == 0) fprintf(stderr, "apr-genmodel: %s has no vocabulary (tokenizer.ggml.tokens)\n", path);
        else
            fprintf(stderr, "apr-genmodel: %s: its vocabulary has %llu tokens, more than the %d rows of the shape's embedding\n",
                    path, (unsigned long long)n, n_vocab);
        apr_gguf_close(f);
        return CLI_EXIT_FAIL;
    }
    const bool pad = n < (uint64_t)n_vocab;
    int rc = CLI_EXIT_OK;
    for (int64_t i = 0; i < apr_gguf_kv_count(f) && !rc; i++) {
        const char *key = apr_gguf_kv_key(f, i);
        if (strncmp(key, "tokenizer.", 10)) continue;
        if (pad && (!strcmp(key, "tokenizer.ggml.tokens") || !strcmp(key, "tokenizer.ggml.scores") ||
                    !strcmp(key, "tokenizer.ggml.token_type"))) {
            if (!genmodel_pad_array(w, path, key, apr_gguf_kv_value(f, i), n, n_vocab)) rc = CLI_EXIT_FAIL;
        } else apr_gguf_writer_set_value(w, key, apr_gguf_kv_value(f, i));
    }
    /* the writer deep-copies values, so the file can close now */
    apr_gguf_close(f);
    if (rc) return rc;
    if (pad)
        fprintf(stderr, "apr-genmodel: padded the vocabulary of %s from %llu to %d tokens with [PAD<id>] placeholders\n",
                path, (unsigned long long)n, n_vocab);
    else fprintf(stderr, "apr-genmodel: tokenizer from %s\n", path);
    return CLI_EXIT_OK;
}

typedef struct genmodel_job {
    gguf_writer *w;
    genmodel_tensor *t;
    int n, cap;
    uint64_t seed, done, total;
} genmodel_job;

static void genmodel_add(genmodel_job *j, const char *name, genmodel_fill kind, uint32_t dtype, int64_t ne0, int64_t ne1,
                         const float *data) {
    if (j->n == j->cap) return; /* cannot happen: cap counts every tensor */
    genmodel_tensor *t = &j->t[j->n++];
    uint64_t s = j->seed * 1000003u + (uint64_t)j->n;
    *t = (genmodel_tensor){kind, dtype, genmodel_next(&s), 0, data, &j->done, 0};
    uint64_t size = (uint64_t)(ne0 * ne1) * (dtype == APR_F32 ? 4 : 2);
    j->total += size;
    apr_gguf_writer_add_tensor_fn(j->w, name, dtype, ne1 > 1 ? 2 : 1, (int64_t[]){ne0, ne1}, size, genmodel_fill_cb, t);
}

static int genmodel_write(const genmodel_shape *sh, uint32_t dtype, uint64_t seed, const char *vocab, const char *out) {
    gguf_writer *w = apr_gguf_writer_new();
    if (!w) return CLI_EXIT_FAIL;
    const char *a = sh->arch;
    char key[128], name[160];
    const int hd = sh->n_embd / sh->n_head;
    snprintf(name, sizeof name, "random weights — not a trained model (apr-genmodel %s, seed %llu)", sh->name,
             (unsigned long long)seed);
    apr_gguf_writer_set_str(w, "general.architecture", a);
    apr_gguf_writer_set_str(w, "general.name", name);
#define GEN_U32(k, v) (snprintf(key, sizeof key, "%s." k, a), apr_gguf_writer_set_u32(w, key, (uint32_t)(v)))
#define GEN_F32(k, v) (snprintf(key, sizeof key, "%s." k, a), apr_gguf_writer_set_f32(w, key, (v)))
    GEN_U32("block_count", sh->n_layer);
    GEN_U32("context_length", sh->n_ctx);
    GEN_U32("embedding_length", sh->n_embd);
    GEN_U32("feed_forward_length", sh->n_ff);
    GEN_U32("attention.head_count", sh->n_head);
    GEN_U32("attention.head_count_kv", sh->n_head_kv);
    GEN_U32("rope.dimension_count", hd);
    GEN_F32("rope.freq_base", sh->rope_base);
    GEN_F32("attention.layer_norm_rms_epsilon", sh->rms_eps);
    GEN_U32("vocab_size", sh->n_vocab);
#undef GEN_U32
#undef GEN_F32
    int rc = vocab ? genmodel_copy_vocab(w, vocab, sh->n_vocab) : CLI_EXIT_OK;
    const int per_layer = 9 + (sh->qkv_bias ? 3 : 0);
    genmodel_job j = {.w = w, .cap = 3 + 1 + sh->n_layer * per_layer, .seed = seed};
    j.t = calloc((size_t)j.cap, sizeof *j.t);
    float *ff = calloc((size_t)hd / 2, sizeof *ff);
    if (!j.t || !ff) rc = CLI_EXIT_FAIL;
    if (rc) goto done;
    const int64_t E = sh->n_embd, Q = (int64_t)sh->n_head * hd, KV = (int64_t)sh->n_head_kv * hd, F = sh->n_ff;
    genmodel_add(&j, "token_embd.weight", GENMODEL_NORMAL, dtype, E, sh->n_vocab, NULL);
    if (sh->llama3_rope) {
        genmodel_llama3_factors(ff, hd, sh->rope_base);
        genmodel_add(&j, "rope_freqs.weight", GENMODEL_DATA, APR_F32, hd / 2, 1, ff);
    }
    for (int l = 0; l < sh->n_layer; l++) {
        struct { const char *name; genmodel_fill kind; int64_t ne0, ne1; bool on; } blk[] = {
            {"attn_norm.weight", GENMODEL_ONES, E, 1, true},    {"attn_q.weight", GENMODEL_NORMAL, E, Q, true},
            {"attn_q.bias", GENMODEL_NORMAL, Q, 1, sh->qkv_bias}, {"attn_k.weight", GENMODEL_NORMAL, E, KV, true},
            {"attn_k.bias", GENMODEL_NORMAL, KV, 1, sh->qkv_bias}, {"attn_v.weight", GENMODEL_NORMAL, E, KV, true},
            {"attn_v.bias", GENMODEL_NORMAL, KV, 1, sh->qkv_bias}, {"attn_output.weight", GENMODEL_NORMAL, Q, E, true},
            {"ffn_norm.weight", GENMODEL_ONES, E, 1, true},     {"ffn_gate.weight", GENMODEL_NORMAL, E, F, true},
            {"ffn_up.weight", GENMODEL_NORMAL, E, F, true},     {"ffn_down.weight", GENMODEL_NORMAL, F, E, true},
        };
        for (size_t i = 0; i < sizeof blk / sizeof *blk; i++) {
            if (!blk[i].on) continue;
            snprintf(name, sizeof name, "blk.%d.%s", l, blk[i].name);
            /* vectors stay f32, as llama.cpp's converter keeps them */
            genmodel_add(&j, name, blk[i].kind, blk[i].ne1 > 1 ? dtype : APR_F32, blk[i].ne0, blk[i].ne1, NULL);
        }
    }
    genmodel_add(&j, "output_norm.weight", GENMODEL_ONES, APR_F32, E, 1, NULL);
    if (!sh->tied) genmodel_add(&j, "output.weight", GENMODEL_NORMAL, dtype, E, sh->n_vocab, NULL);
    for (int i = 0; i < j.n; i++) j.t[i].total = j.total;
    fprintf(stderr, "apr-genmodel: writing %s (%s, %s, %llu MiB of random weights)\n", out, sh->name,
            apr_dtype_name((apr_dtype)dtype), (unsigned long long)(j.total >> 20));
    apr_error e;
    if (apr_gguf_writer_write(w, out, &e) != APR_OK) {
        fprintf(stderr, "apr-genmodel: %s\n", e.msg);
        rc = CLI_EXIT_FAIL;
    }
done:
    free(ff);
    free(j.t);
    apr_gguf_writer_free(w);
    return rc;
}

int main(int argc, char **argv) {
    const char *shape = "tiny", *dtype_s = "f16", *vocab = NULL, *out = NULL, *v;
    long seed = 1;
    bool no_vocab = false;
    cli_common common = {0};
    for (int i = 1; i < argc; i++) {
        int c = cli_parse_common(argc, argv, &i, &common); /* --backend and --threads: accepted, nothing computes */
        if (c < 0) return CLI_EXIT_USAGE;
        if (common.help) {
            fputs(genmodel_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (c > 0) continue;
        if ((v = cli_option_value(argc, argv, &i, "--shape"))) shape = v;
        else if ((v = cli_option_value(argc, argv, &i, "--dtype"))) dtype_s = v;
        else if ((v = cli_option_value(argc, argv, &i, "--vocab-from"))) vocab = v;
        else if (!strcmp(argv[i], "--no-vocab")) no_vocab = true;
        else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            if (!cli_parse_int(v, 0, LONG_MAX, &seed)) {
                fprintf(stderr, "apr-genmodel: --seed takes a non-negative integer\n");
                return CLI_EXIT_USAGE;
            }
        } else if (argv[i][0] == '-' || out) {
            fprintf(stderr, "apr-genmodel: unexpected argument '%s'\n%s", argv[i], genmodel_usage);
            return CLI_EXIT_USAGE;
        } else out = argv[i];
    }
    const genmodel_shape *sh = NULL;
    for (size_t i = 0; i < sizeof genmodel_shapes / sizeof *genmodel_shapes; i++)
        if (!strcmp(shape, genmodel_shapes[i].name)) sh = &genmodel_shapes[i];
    apr_dtype dt;
    if (!sh || !apr_dtype_parse(dtype_s, &dt) || (dt != APR_F16 && dt != APR_F32 && dt != APR_BF16) || !out) {
        fprintf(stderr, "apr-genmodel: %s\n%s",
                !sh ? "unknown --shape" : !out ? "no output file given" : "--dtype must be f16, f32 or bf16", genmodel_usage);
        return CLI_EXIT_USAGE;
    }
    if (no_vocab && vocab) {
        fprintf(stderr, "apr-genmodel: --vocab-from and --no-vocab contradict each other; give one\n");
        return CLI_EXIT_USAGE;
    }
    apr_error e;
    if (vocab && apr_hf_import_check_output(vocab, NULL, out, &e) != APR_OK) {
        fprintf(stderr, "apr-genmodel: %s\n", e.msg);
        return CLI_EXIT_USAGE;
    }
    cli_signal_cleanup_temps();
    int rc = genmodel_write(sh, (uint32_t)dt, (uint64_t)seed, vocab, out);
    if (!rc && common.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", out);
        cJSON_AddStringToObject(o, "shape", sh->name);
        cJSON_AddStringToObject(o, "dtype", dtype_s);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON_AddBoolToObject(o, "tokenizer", vocab != NULL);
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) puts(txt);
        free(txt);
        cJSON_Delete(o);
    }
    return rc;
}

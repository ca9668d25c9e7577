/* test_import.c — importers: a generated Hugging Face Llama folder (GQA, f32 + f16) against a naive C forward
 * pass, llama2.c stories260K against llama.cpp's GGUF, and hostile safetensors files. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apr/apr.h"
#include "util/tu_paths.h"
#include "gguf.h"
#include "hf_import.h"
#include "llama.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "util/tu_dir.h"
#include "util/tu_rand.h"
#include "util/tu_spawn.h"

/* <repo>/../shared/fixtures */
static char imp_fixtures[PATH_MAX + 32];

static bool imp_find_fixtures(void) {
    snprintf(imp_fixtures, sizeof imp_fixtures, "%s", tu_fixtures_dir());
    return tu_have_fixtures();
}

/* ---------------------------------------------------------------- the generated model */

enum { IMP_E = 32, IMP_H = 4, IMP_HKV = 2, IMP_HD = 8, IMP_F = 48, IMP_L = 2, IMP_V = 50257 };

typedef struct imp_tensor {
    char name[64];
    int rows, cols;     /* HF [rows, cols]; cols = 0 for vectors */
    bool f16;           /* stored as F16 (values are exactly representable) */
    float *v;           /* [rows * max(cols, 1)] */
} imp_tensor;

typedef struct imp_model {
    imp_tensor t[64];
    int n;
} imp_model;

/* Values k/1024, exact in f16 as well as f32, so the f16 tensor loses nothing. */
static float *imp_fill(tu_rng *r, size_t n, float center, int spread) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = center + (float)tu_rng_int(r, -spread, spread) / 1024.0f;
    return v;
}

static void imp_add(imp_model *m, tu_rng *r, const char *name, int rows, int cols, bool f16, float center, int spread) {
    imp_tensor *t = &m->t[m->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->f16 = f16;
    t->v = imp_fill(r, (size_t)rows * (size_t)(cols ? cols : 1), center, spread);
}

static const float *imp_get(const imp_model *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->t[i].name, name)) return m->t[i].v;
    cr_assert_fail("no tensor %s", name);
    return NULL;
}

static uint16_t imp_half(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    if (!(b & 0x7fffffff)) return (uint16_t)(b >> 16);
    uint32_t sign = b >> 31, exp = ((b >> 23) & 0xff) - 127 + 15, mant = (b >> 13) & 0x3ff;
    return (uint16_t)(sign << 15 | exp << 10 | mant);
}

static void imp_build(imp_model *m) {
    tu_rng r;
    tu_rng_init(&r, 0x5eed);
    memset(m, 0, sizeof *m);
    imp_add(m, &r, "model.embed_tokens.weight", IMP_V, IMP_E, false, 0, 300);
    char nm[64];
    for (int l = 0; l < IMP_L; l++) {
        const struct { const char *n; int rows, cols; float c; int s; } w[] = {
            {"input_layernorm.weight", IMP_E, 0, 1, 200},
            {"self_attn.q_proj.weight", IMP_H * IMP_HD, IMP_E, 0, 300},
            {"self_attn.k_proj.weight", IMP_HKV * IMP_HD, IMP_E, 0, 300},
            {"self_attn.v_proj.weight", IMP_HKV * IMP_HD, IMP_E, 0, 300},
            {"self_attn.o_proj.weight", IMP_E, IMP_H * IMP_HD, 0, 200},
            {"post_attention_layernorm.weight", IMP_E, 0, 1, 200},
            {"mlp.gate_proj.weight", IMP_F, IMP_E, 0, 300},
            {"mlp.up_proj.weight", IMP_F, IMP_E, 0, 300},
            {"mlp.down_proj.weight", IMP_E, IMP_F, 0, 200},
        };
        for (size_t i = 0; i < sizeof w / sizeof *w; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, w[i].n);
            imp_add(m, &r, nm, w[i].rows, w[i].cols, l == 0 && i == 8, w[i].c, w[i].s); /* layer 0 down_proj in f16 */
        }
    }
    imp_add(m, &r, "model.norm.weight", IMP_E, 0, false, 1, 200);
    imp_add(m, &r, "lm_head.weight", IMP_V, IMP_E, false, 0, 300);
}

static void imp_free(imp_model *m) {
    for (int i = 0; i < m->n; i++) free(m->t[i].v);
}

static void imp_write_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    cr_assert(fp, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

/* model.safetensors: header JSON padded with spaces to 8 bytes, then the data in order. */
static void imp_write_safetensors(const imp_model *m, const char *path) {
    size_t hcap = 16384, hl = 0, off = 0;
    char *h = malloc(hcap);
    hl += (size_t)snprintf(h + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < m->n; i++) {
        const imp_tensor *t = &m->t[i];
        size_t bytes = (size_t)t->rows * (size_t)(t->cols ? t->cols : 1) * (t->f16 ? 2 : 4);
        if (t->cols)
            hl += (size_t)snprintf(h + hl, hcap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                                   t->name, t->f16 ? "F16" : "F32", t->rows, t->cols, off, off + bytes);
        else
            hl += (size_t)snprintf(h + hl, hcap - hl, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                                   t->name, t->rows, off, off + bytes);
        off += bytes;
    }
    hl += (size_t)snprintf(h + hl, hcap - hl, "}");
    while (hl % 8) h[hl++] = ' ';
    size_t total = 8 + hl + off;
    unsigned char *img = malloc(total);
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, h, hl);
    unsigned char *d = img + 8 + hl;
    for (int i = 0; i < m->n; i++) {
        const imp_tensor *t = &m->t[i];
        size_t n = (size_t)t->rows * (size_t)(t->cols ? t->cols : 1);
        for (size_t k = 0; k < n; k++) {
            if (t->f16) { uint16_t x = imp_half(t->v[k]); memcpy(d, &x, 2); d += 2; }
            else { memcpy(d, &t->v[k], 4); d += 4; }
        }
    }
    imp_write_file(path, img, total);
    free(img);
    free(h);
}

static void imp_write_folder(const imp_model *m, const char *dir) {
    char path[PATH_MAX + 64], cmd[3 * PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char cfg[1024];
    int n = snprintf(cfg, sizeof cfg,
                     "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":%d,\"num_hidden_layers\":%d,"
                     "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"intermediate_size\":%d,"
                     "\"max_position_embeddings\":64,\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,"
                     "\"tie_word_embeddings\":false,\"vocab_size\":%d}",
                     IMP_E, IMP_L, IMP_H, IMP_HKV, IMP_F, IMP_V);
    imp_write_file(path, cfg, (size_t)n);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    imp_write_safetensors(m, path);
    snprintf(cmd, sizeof cmd, "gzip -dc '%s/vocab/hf-gpt2/tokenizer.json.gz' > '%s/tokenizer.json' && cp '%s/vocab/hf-gpt2/tokenizer_config.json' '%s/'",
             imp_fixtures, dir, imp_fixtures, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* ---------------------------------------------------------------- the naive reference forward pass */

static void imp_matvec(const float *w, const float *x, int rows, int cols, float *y) {
    for (int o = 0; o < rows; o++) {
        double s = 0;
        for (int i = 0; i < cols; i++) s += (double)w[(size_t)o * cols + i] * x[i];
        y[o] = (float)s;
    }
}

static void imp_rmsnorm(const float *x, const float *w, float *y) {
    double ss = 0;
    for (int i = 0; i < IMP_E; i++) ss += (double)x[i] * x[i];
    float s = (float)(1.0 / sqrt(ss / IMP_E + 1e-5));
    for (int i = 0; i < IMP_E; i++) y[i] = x[i] * s * w[i];
}

/* Hugging Face's rotate_half: dims i and i + hd/2 of each head form a pair. */
static void imp_rope(float *v, int heads, int pos) {
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < IMP_HD / 2; i++) {
            double th = pos * pow(10000.0, -2.0 * i / IMP_HD);
            float *a = v + h * IMP_HD + i, *b = a + IMP_HD / 2, x0 = *a, x1 = *b;
            *a = (float)(x0 * cos(th) - x1 * sin(th));
            *b = (float)(x0 * sin(th) + x1 * cos(th));
        }
}

/* logits [n, V] for ids at positions 0..n-1. */
static void imp_reference(const imp_model *m, const int32_t *ids, int n, float *logits) {
    static float K[IMP_L][16][IMP_HKV * IMP_HD], Vc[IMP_L][16][IMP_HKV * IMP_HD];
    char nm[96];
#define W(fmt, l) (snprintf(nm, sizeof nm, fmt, l), imp_get(m, nm))
    for (int p = 0; p < n; p++) {
        float x[IMP_E], h[IMP_E], q[IMP_H * IMP_HD], att[IMP_H * IMP_HD], o[IMP_E], g[IMP_F], u[IMP_F];
        memcpy(x, imp_get(m, "model.embed_tokens.weight") + (size_t)ids[p] * IMP_E, sizeof x);
        for (int l = 0; l < IMP_L; l++) {
            imp_rmsnorm(x, W("model.layers.%d.input_layernorm.weight", l), h);
            imp_matvec(W("model.layers.%d.self_attn.q_proj.weight", l), h, IMP_H * IMP_HD, IMP_E, q);
            imp_matvec(W("model.layers.%d.self_attn.k_proj.weight", l), h, IMP_HKV * IMP_HD, IMP_E, K[l][p]);
            imp_matvec(W("model.layers.%d.self_attn.v_proj.weight", l), h, IMP_HKV * IMP_HD, IMP_E, Vc[l][p]);
            imp_rope(q, IMP_H, p);
            imp_rope(K[l][p], IMP_HKV, p);
            for (int hh = 0; hh < IMP_H; hh++) {
                int kv = hh / (IMP_H / IMP_HKV);
                double sc[16], mx = -1e300, sum = 0;
                for (int t = 0; t <= p; t++) {
                    double s = 0;
                    for (int i = 0; i < IMP_HD; i++) s += (double)q[hh * IMP_HD + i] * K[l][t][kv * IMP_HD + i];
                    sc[t] = s / sqrt((double)IMP_HD);
                    if (sc[t] > mx) mx = sc[t];
                }
                for (int t = 0; t <= p; t++) sum += sc[t] = exp(sc[t] - mx);
                for (int i = 0; i < IMP_HD; i++) {
                    double a = 0;
                    for (int t = 0; t <= p; t++) a += sc[t] / sum * Vc[l][t][kv * IMP_HD + i];
                    att[hh * IMP_HD + i] = (float)a;
                }
            }
            imp_matvec(W("model.layers.%d.self_attn.o_proj.weight", l), att, IMP_E, IMP_H * IMP_HD, o);
            for (int i = 0; i < IMP_E; i++) x[i] += o[i];
            imp_rmsnorm(x, W("model.layers.%d.post_attention_layernorm.weight", l), h);
            imp_matvec(W("model.layers.%d.mlp.gate_proj.weight", l), h, IMP_F, IMP_E, g);
            imp_matvec(W("model.layers.%d.mlp.up_proj.weight", l), h, IMP_F, IMP_E, u);
            for (int i = 0; i < IMP_F; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
            imp_matvec(W("model.layers.%d.mlp.down_proj.weight", l), g, IMP_E, IMP_F, o);
            for (int i = 0; i < IMP_E; i++) x[i] += o[i];
        }
        imp_rmsnorm(x, imp_get(m, "model.norm.weight"), h);
        imp_matvec(imp_get(m, "lm_head.weight"), h, IMP_V, IMP_E, logits + (size_t)p * IMP_V);
    }
#undef W
}

/* ---------------------------------------------------------------- running a GGUF */

/* All logits of ids through apr on the reference backend. */
static void imp_eval(const gguf_file *f, const int32_t *ids, int n, float *logits) {
    apr_error e;
    llama_model *m;
    cr_assert_eq(apr_llama_model_load(f, &m, &e), APR_OK, "%s", e.msg);
    apr_registry *reg;
    apr_backend *be;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(reg, "reference", 1, &be, &e), APR_OK, "%s", e.msg);
    llama_session *s;
    cr_assert_eq(apr_llama_session_new(m, n, &be, 1, &s, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_session_eval(s, ids, n, true, logits, &e), APR_OK, "%s", e.msg);
    apr_llama_session_free(s);
    apr_backend_close(be);
    apr_registry_close(reg);
    apr_llama_model_free(m);
}

/* Greedy generation from BOS (id 1), one token at a time through the KV cache: ids[0..n]. */
static void imp_greedy(const gguf_file *f, int32_t *ids, int n) {
    apr_error e;
    llama_model *m;
    cr_assert_eq(apr_llama_model_load(f, &m, &e), APR_OK, "%s", e.msg);
    apr_registry *reg;
    apr_backend *be;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(reg, "reference", 1, &be, &e), APR_OK, "%s", e.msg);
    llama_session *s;
    cr_assert_eq(apr_llama_session_new(m, n, &be, 1, &s, &e), APR_OK, "%s", e.msg);
    float *lg = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
    ids[0] = 1;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(apr_llama_session_eval(s, &ids[i], 1, false, lg, &e), APR_OK, "%s", e.msg);
        int best = 0;
        for (int k = 1; k < m->hp.n_vocab; k++) if (lg[k] > lg[best]) best = k;
        ids[i + 1] = best;
    }
    free(lg);
    apr_llama_session_free(s);
    apr_backend_close(be);
    apr_registry_close(reg);
    apr_llama_model_free(m);
}

static void imp_tmpdir(char *dir, size_t n) {
    snprintf(dir, n, "/tmp/apr-test-import-XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp");
}

static void imp_rmdir(const char *dir) {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(import, hf_llama_folder_equals_gguf_and_naive_reference, .timeout = 120) {
    if (!imp_find_fixtures()) cr_skip_test("fixtures not found at %s", imp_fixtures);
    static imp_model m;
    imp_build(&m);
    char dir[64], out[128];
    imp_tmpdir(dir, sizeof dir);
    imp_write_folder(&m, dir);
    enum { N = 6 };
    const int32_t ids[N] = {50256, 464, 3290, 17, 1000, 50000};
    float *a = malloc(sizeof(float) * N * IMP_V), *b = malloc(sizeof(float) * N * IMP_V), *ref = malloc(sizeof(float) * N * IMP_V);
    apr_error e;

    /* (a) the folder opened directly and the file apr-import writes give the same logits */
    gguf_file *f;
    cr_assert_eq(apr_hf_open_as_gguf(dir, &f, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(apr_gguf_get_str(f, "tokenizer.ggml.model"), "gpt2");
    cr_expect_str_eq(apr_gguf_get_str(f, "tokenizer.ggml.pre"), "gpt-2");
    imp_eval(f, ids, N, a);
    apr_gguf_close(f);
    hf_import *im;
    cr_assert_eq(apr_hf_import_folder(dir, &im, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(apr_hf_import_arch(im), "llama");
    cr_expect_eq(apr_hf_import_tensors(im), 3 + 9 * IMP_L);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    cr_assert_eq(apr_hf_import_write(im, out, &e), APR_OK, "%s", e.msg);
    apr_hf_import_free(im);
    cr_assert_eq(apr_gguf_open(out, &f, &e), APR_OK, "%s", e.msg);
    const gguf_tensor *down = apr_gguf_tensor_find(f, "blk.0.ffn_down.weight");
    cr_assert(down);
    cr_expect_eq(down->dtype, APR_F16, "the f16 tensor stays f16");
    cr_expect_eq(down->ne[0], IMP_F);
    cr_expect_eq(down->ne[1], IMP_E);
    imp_eval(f, ids, N, b);
    /* the GGUF vocabulary tokenizes as tokenizer.json does */
    tok_vocab *vg, *vh;
    cr_assert_eq(apr_tok_load_gguf(f, &vg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_tok_load_hf(dir, &vh, &e), APR_OK, "%s", e.msg);
    const char *text = "Hello world, it's 2024!  Caf\xc3\xa9 <|endoftext|> x";
    int32_t tg[64], th[64];
    int64_t ng = apr_tok_encode(vg, text, strlen(text), TOK_PARSE_SPECIAL, tg, 64);
    int64_t nh = apr_tok_encode(vh, text, strlen(text), TOK_PARSE_SPECIAL, th, 64);
    cr_expect(ng > 5 && ng == nh && !memcmp(tg, th, (size_t)ng * sizeof *tg), "GGUF and tokenizer.json tokenize differently");
    cr_expect_eq(apr_tok_eos(vg), 50256);
    apr_tok_free(vg);
    apr_tok_free(vh);
    apr_gguf_close(f);
    cr_expect_eq(memcmp(a, b, sizeof(float) * N * IMP_V), 0, "folder and imported GGUF give different logits");

    /* (b) both equal a plain C forward pass over the HF weights with split-half rope: this is
     * what shows the q/k permutation right (the KV cache is f16, hence the tolerance) */
    imp_reference(&m, ids, N, ref);
    double num = 0, den = 0, maxd = 0;
    for (size_t i = 0; i < (size_t)N * IMP_V; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        if (fabs(d) > maxd) maxd = fabs(d);
    }
    fprintf(stderr, "hf import vs naive reference: nmse %.3g, max |diff| %.3g\n", num / den, maxd);
    cr_expect_lt(num / den, 1e-5, "nmse %g, max diff %g", num / den, maxd);
    cr_expect_lt(maxd, 2e-2);
    for (int p = 0; p < N; p++) {
        int ia = 0, ir = 0;
        for (int i = 1; i < IMP_V; i++) {
            if (a[(size_t)p * IMP_V + i] > a[(size_t)p * IMP_V + ia]) ia = i;
            if (ref[(size_t)p * IMP_V + i] > ref[(size_t)p * IMP_V + ir]) ir = i;
        }
        cr_expect_eq(ia, ir, "position %d: argmax %d, reference %d", p, ia, ir);
    }
    free(a);
    free(b);
    free(ref);
    imp_free(&m);
    imp_rmdir(dir);
}

Test(import, unknown_architecture_is_refused_by_name) {
    char dir[64], path[128];
    imp_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *cfg = "{\"architectures\":[\"GPTNeoXForCausalLM\"],\"hidden_size\":8}";
    imp_write_file(path, cfg, strlen(cfg));
    hf_import *im;
    apr_error e;
    cr_expect_eq(apr_hf_import_folder(dir, &im, &e), APR_ERR_UNSUPPORTED);
    cr_expect(strstr(e.msg, "GPTNeoXForCausalLM"), "%s", e.msg);
    imp_rmdir(dir);
}

/* ---------------------------------------------------------------- llama2.c */

Test(import, llama2c_stories260K_equals_llama_cpp_gguf, .timeout = 120) {
    if (!imp_find_fixtures()) cr_skip_test("fixtures not found at %s", imp_fixtures);
    char bin[PATH_MAX + 64], tok[PATH_MAX + 64], ref[PATH_MAX + 64], dir[64], out[128];
    snprintf(bin, sizeof bin, "%s/stories260K/stories260K.bin", imp_fixtures);
    snprintf(tok, sizeof tok, "%s/stories260K/tok512.bin", imp_fixtures);
    snprintf(ref, sizeof ref, "%s/stories260K/stories260K.gguf", imp_fixtures);
    imp_tmpdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/s.gguf", dir);
    apr_error e;
    hf_import *im;
    cr_assert_eq(apr_hf_import_llama2c(bin, tok, &im, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_hf_import_write(im, out, &e), APR_OK, "%s", e.msg);
    apr_hf_import_free(im);
    gguf_file *a, *b;
    cr_assert_eq(apr_gguf_open(out, &a, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_gguf_open(ref, &b, &e), APR_OK, "%s", e.msg);
    /* every tensor bit-identical */
    cr_expect_eq(apr_gguf_tensor_count(a), apr_gguf_tensor_count(b));
    for (int64_t i = 0; i < apr_gguf_tensor_count(b); i++) {
        const gguf_tensor *tb = apr_gguf_tensor_at(b, i), *ta = apr_gguf_tensor_find(a, tb->name);
        cr_assert(ta, "%s missing from the import", tb->name);
        cr_expect_eq(ta->dtype, tb->dtype, "%s", tb->name);
        cr_expect(!memcmp(ta->ne, tb->ne, sizeof ta->ne), "%s: shape differs", tb->name);
        cr_expect(ta->size == tb->size && !memcmp(ta->data, tb->data, tb->size), "%s: data differs", tb->name);
    }
    /* the same vocabulary */
    gguf_type et;
    uint64_t na = 0, nb = 0;
    cr_assert(apr_gguf_get_arr(a, "tokenizer.ggml.tokens", &et, &na) && apr_gguf_get_arr(b, "tokenizer.ggml.tokens", &et, &nb));
    cr_assert_eq(na, nb);
    for (uint64_t i = 0; i < na; i++)
        cr_expect_str_eq(apr_gguf_get_arr_str(a, "tokenizer.ggml.tokens", i), apr_gguf_get_arr_str(b, "tokenizer.ggml.tokens", i), "token %llu", (unsigned long long)i);
    /* greedy ids from BOS */
    enum { N = 48 };
    int32_t ids_a[N + 1], ids_b[N + 1];
    imp_greedy(a, ids_a, N);
    imp_greedy(b, ids_b, N);
    cr_expect(!memcmp(ids_a, ids_b, sizeof ids_a), "greedy ids differ");
    apr_gguf_close(a);
    apr_gguf_close(b);
    imp_rmdir(dir);
}

/* ---------------------------------------------------------------- hostile safetensors */

/* An image: u64 header length, the header, then data_len zero bytes. */
static unsigned char *imp_image(const char *header, size_t data_len, size_t *size) {
    size_t hl = strlen(header);
    *size = 8 + hl + data_len;
    unsigned char *img = calloc(1, *size);
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, header, hl);
    return img;
}

static void imp_expect_error(const char *header, size_t data_len, size_t cut, apr_status want, const char *needle) {
    size_t size;
    unsigned char *img = imp_image(header, data_len, &size);
    safetensors_file *f = NULL;
    apr_error e = {{0}};
    apr_status st = apr_safetensors_open_memory(img, size - cut, "bad.safetensors", &f, &e);
    cr_expect_eq(st, want, "%s: status %d (%s)", header, st, e.msg);
    cr_expect(strstr(e.msg, needle) && strstr(e.msg, "bad.safetensors"), "%s: message '%s' lacks '%s'", header, e.msg, needle);
    cr_expect_null(f);
    apr_safetensors_close(f);
    free(img);
}

Test(import, hostile_safetensors_are_refused_with_clear_errors) {
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"__metadata__\":{\"k\":\"v\"}}";
    size_t size;
    unsigned char *img = imp_image(good, 16, &size);
    safetensors_file *f;
    apr_error e;
    cr_assert_eq(apr_safetensors_open_memory(img, size, "good", &f, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_safetensors_count(f), 1);
    cr_expect_eq(apr_safetensors_find(f, "a")->shape[1], 2);
    cr_expect_str_eq(apr_safetensors_metadata(f, "k"), "v");
    apr_safetensors_close(f);
    free(img);

    imp_expect_error(good, 16, 1, APR_ERR_FORMAT, "runs past the end");                 /* truncated data */
    imp_expect_error(good, 0, 0, APR_ERR_FORMAT, "runs past the end");
    imp_expect_error("{\"a\":{\"dtype\":", 0, 0, APR_ERR_FORMAT, "not a JSON object");   /* bad JSON */
    imp_expect_error(good, 16, 16 + 20, APR_ERR_FORMAT, "header length");               /* header cut */
    imp_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, 0, APR_ERR_FORMAT, "overlap");
    imp_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16, 0, APR_ERR_FORMAT, "'a'");
    imp_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,4503599627370496],\"data_offsets\":[0,8]}}", 16, 0,
                     APR_ERR_FORMAT, "overflows");
    imp_expect_error("{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, 0, APR_ERR_UNSUPPORTED, "'ids'");
    imp_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 16, 0, APR_ERR_FORMAT, "data_offsets");
    imp_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, 0, APR_ERR_FORMAT, "twice");
    /* a header length beyond the file */
    unsigned char tiny[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    cr_expect_eq(apr_safetensors_open_memory(tiny, 8, "bad.safetensors", &f, &e), APR_ERR_FORMAT);
    cr_expect_eq(apr_safetensors_open_memory(tiny, 3, "bad.safetensors", &f, &e), APR_ERR_FORMAT);
}

/* ---------------------------------------------------------------- qwen2 (sharded, biases, padded vocab) and llama3 rope */

/* Writes the tensors of m (all f32) into n_shards files with model.safetensors.index.json. */
static void imp_write_shards(const imp_model *m, const char *dir, int n_shards) {
    char idx[8192];
    size_t il = (size_t)snprintf(idx, sizeof idx, "{\"metadata\":{},\"weight_map\":{");
    for (int s = 0; s < n_shards; s++) {
        imp_model part = {.n = 0};
        for (int i = s; i < m->n; i += n_shards) {
            part.t[part.n++] = m->t[i];
            il += (size_t)snprintf(idx + il, sizeof idx - il, "%s\"%s\":\"model-%05d-of-%05d.safetensors\"",
                                   il > 30 ? "," : "", m->t[i].name, s + 1, n_shards);
        }
        char path[128];
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, n_shards);
        imp_write_safetensors(&part, path);
    }
    il += (size_t)snprintf(idx + il, sizeof idx - il, "}}");
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    imp_write_file(path, idx, il);
}

/* A one-layer folder: E 16, 2 heads of 8, 1 KV head, FFN 24, n_vocab rows; tokenizer.json.gz copied as it is. */
static void imp_small_folder(imp_model *m, const char *dir, const char *arch, const char *extra_cfg, const char *vocab,
                             int n_vocab, bool biases) {
    tu_rng r;
    tu_rng_init(&r, 0xbeef);
    memset(m, 0, sizeof *m);
    imp_add(m, &r, "model.embed_tokens.weight", n_vocab, 16, false, 0, 300);
    const struct { const char *n; int rows, cols; } w[] = {
        {"input_layernorm.weight", 16, 0},          {"self_attn.q_proj.weight", 16, 16}, {"self_attn.k_proj.weight", 8, 16},
        {"self_attn.v_proj.weight", 8, 16},         {"self_attn.o_proj.weight", 16, 16}, {"post_attention_layernorm.weight", 16, 0},
        {"mlp.gate_proj.weight", 24, 16},           {"mlp.up_proj.weight", 24, 16},      {"mlp.down_proj.weight", 16, 24},
        {"self_attn.q_proj.bias", 16, 0},           {"self_attn.k_proj.bias", 8, 0},     {"self_attn.v_proj.bias", 8, 0},
    };
    for (size_t i = 0; i < (biases ? 12u : 9u); i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "model.layers.0.%s", w[i].n);
        imp_add(m, &r, nm, w[i].rows, w[i].cols, false, 0, 300);
    }
    imp_add(m, &r, "model.norm.weight", 16, 0, false, 1, 100);
    char path[PATH_MAX + 64], cfg[1024], cmd[3 * PATH_MAX];
    int n = snprintf(cfg, sizeof cfg,
                     "{\"architectures\":[\"%s\"],\"hidden_size\":16,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                     "\"num_key_value_heads\":1,\"intermediate_size\":24,\"rms_norm_eps\":1e-06,\"rope_theta\":500000.0,"
                     "\"tie_word_embeddings\":true%s}", arch, extra_cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    imp_write_file(path, cfg, (size_t)n);
    imp_write_shards(m, dir, 2);
    snprintf(cmd, sizeof cmd, "cp '%s/vocab/%s/tokenizer.json.gz' '%s/vocab/%s/tokenizer_config.json' '%s/'", imp_fixtures,
             vocab, imp_fixtures, vocab, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* The imported GGUF's vocabulary tokenizes every test input of fixture vocab/<name> exactly as
 * the tokenizer.json it came from (which test_tokenizer checks against the reference ids). */
static void imp_same_tokens(const gguf_file *f, const char *name) {
    char path[PATH_MAX + 64];
    apr_error e;
    tok_vocab *vg, *vh;
    cr_assert_eq(apr_tok_load_gguf(f, &vg, &e), APR_OK, "%s", e.msg);
    snprintf(path, sizeof path, "%s/vocab/%s", imp_fixtures, name);
    cr_assert_eq(apr_tok_load_hf(path, &vh, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_tok_bos(vg), apr_tok_bos(vh));
    cr_expect_eq(apr_tok_eos(vg), apr_tok_eos(vh));
    cr_expect_eq(apr_tok_add_bos(vg), apr_tok_add_bos(vh));
    snprintf(path, sizeof path, "%s/vocab/%s/tokenizer.inp", imp_fixtures, name);
    size_t len = 0;
    char *all = tu_read_file(path, &len);
    const char *sep = "\n__ggml_vocab_test__\n";
    int inputs = 0;
    for (char *p = all, *q; p < all + len; p = q + strlen(sep)) {
        q = strstr(p, sep);
        if (!q) break;
        int32_t a[4096], b[4096];
        int64_t na = apr_tok_encode(vg, p, (size_t)(q - p), TOK_ADD_SPECIAL, a, 4096);
        int64_t nb = apr_tok_encode(vh, p, (size_t)(q - p), TOK_ADD_SPECIAL, b, 4096);
        cr_expect(na == nb && na <= 4096 && !memcmp(a, b, (size_t)na * sizeof *a), "%s: input %d tokenizes differently", name, inputs);
        inputs++;
    }
    cr_expect_gt(inputs, 10);
    free(all);
    apr_tok_free(vg);
    apr_tok_free(vh);
}

static const gguf_tensor *imp_find(const gguf_file *f, const char *name) {
    const gguf_tensor *t = apr_gguf_tensor_find(f, name);
    cr_assert(t, "tensor %s is missing", name);
    return t;
}

/* Inputs the fuzzer once broke the reader with (fuzz/regress/safetensors): each must now open or
 * fail with a one-line message naming the file. */
Test(import, fuzz_regressions_fail_cleanly) {
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/fuzz/regress/safetensors", tu_repo_dir());
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.') continue;
        char path[2 * PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        safetensors_file *f = NULL;
        apr_error e = {{0}};
        apr_status st = apr_safetensors_open(path, &f, &e);
        if (st == APR_OK) apr_safetensors_close(f);
        else cr_expect(strstr(e.msg, ent->d_name) && !strchr(e.msg, '\n'), "%s: message '%s'", ent->d_name, e.msg);
        n++;
    }
    closedir(d);
    cr_expect_gt(n, 0, "no regression inputs in %s", dir);
}

Test(import, qwen2_sharded_folder_keeps_rows_maps_biases_and_pads_vocab, .timeout = 120) {
    if (!imp_find_fixtures()) cr_skip_test("fixtures not found at %s", imp_fixtures);
    static imp_model m;
    char dir[64], out[128];
    imp_tmpdir(dir, sizeof dir);
    const int nt = 151700; /* rows; the tokenizer has fewer (151643 + added), the rest become [PADi] */
    imp_small_folder(&m, dir, "Qwen2ForCausalLM", "", "hf-qwen2", nt, true);
    hf_import *im;
    apr_error e;
    cr_assert_eq(apr_hf_import_folder(dir, &im, &e), APR_OK, "%s", e.msg);
    snprintf(out, sizeof out, "%s/q.gguf", dir);
    cr_assert_eq(apr_hf_import_write(im, out, &e), APR_OK, "%s", e.msg);
    apr_hf_import_free(im);
    gguf_file *f;
    cr_assert_eq(apr_gguf_open(out, &f, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(apr_gguf_get_str(f, "general.architecture"), "qwen2");
    uint32_t u;
    float x;
    cr_expect(apr_gguf_get_u32(f, "qwen2.attention.head_count_kv", &u) && u == 1);
    cr_expect(apr_gguf_get_f32(f, "qwen2.rope.freq_base", &x) && x == 500000.0f);
    cr_expect_str_eq(apr_gguf_get_str(f, "tokenizer.ggml.pre"), "qwen2");
    imp_same_tokens(f, "hf-qwen2");
    gguf_type et;
    uint64_t n;
    cr_expect(apr_gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n) && n == (uint64_t)nt);
    cr_expect_str_eq(apr_gguf_get_arr_str(f, "tokenizer.ggml.tokens", (uint64_t)nt - 1), "[PAD151699]");
    cr_expect_str_eq(apr_gguf_get_arr_str(f, "tokenizer.ggml.tokens", 151643), "<|endoftext|>");
    cr_expect(apr_gguf_get_arr(f, "tokenizer.ggml.merges", &et, &n) && n > 100000, "merges: %llu", (unsigned long long)n);
    cr_expect_null(apr_gguf_tensor_find(f, "output.weight"), "tied: no output tensor");
    /* NEOX rope in llama.cpp: q/k rows as Hugging Face has them */
    const gguf_tensor *q = imp_find(f, "blk.0.attn_q.weight");
    cr_expect(q->ne[0] == 16 && q->ne[1] == 16);
    cr_expect(!memcmp(q->data, imp_get(&m, "model.layers.0.self_attn.q_proj.weight"), 16 * 16 * 4), "qwen2 q rows moved");
    const gguf_tensor *kb = imp_find(f, "blk.0.attn_k.bias");
    cr_expect(kb->n_dims == 1 && kb->ne[0] == 8);
    cr_expect(!memcmp(kb->data, imp_get(&m, "model.layers.0.self_attn.k_proj.bias"), 8 * 4));
    imp_find(f, "blk.0.attn_v.bias");
    apr_gguf_close(f);
    imp_free(&m);
    imp_rmdir(dir);
}

Test(import, llama3_rope_factors_and_permuted_rows, .timeout = 120) {
    if (!imp_find_fixtures()) cr_skip_test("fixtures not found at %s", imp_fixtures);
    static imp_model m;
    char dir[64], out[128];
    imp_tmpdir(dir, sizeof dir);
    imp_small_folder(&m, dir, "LlamaForCausalLM",
                     ",\"max_position_embeddings\":131072,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,"
                     "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}",
                     "hf-llama3", 128256, false);
    hf_import *im;
    apr_error e;
    cr_assert_eq(apr_hf_import_folder(dir, &im, &e), APR_OK, "%s", e.msg);
    snprintf(out, sizeof out, "%s/l.gguf", dir);
    cr_assert_eq(apr_hf_import_write(im, out, &e), APR_OK, "%s", e.msg);
    apr_hf_import_free(im);
    gguf_file *f;
    cr_assert_eq(apr_gguf_open(out, &f, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(apr_gguf_get_str(f, "tokenizer.ggml.pre"), "llama3");
    imp_same_tokens(f, "hf-llama3");
    /* rope_freqs as llama.cpp computes them: head_dim 8, base 5e5 */
    const gguf_tensor *rf = imp_find(f, "rope_freqs.weight");
    cr_assert(rf->ne[0] == 4 && rf->dtype == APR_F32);
    for (int i = 0; i < 4; i++) {
        double freq = 1.0 / pow(500000.0, 2.0 * i / 8), wl = 2 * M_PI / freq, want;
        if (wl < 8192 / 4.0) want = 1;
        else if (wl > 8192 / 1.0) want = 8;
        else {
            double sm = (8192 / wl - 1) / 3;
            want = 1 / ((1 - sm) / 8 + sm);
        }
        cr_expect(fabs(((const float *)rf->data)[i] - want) < 1e-4 * want, "factor %d: %g, want %g", i,
                  ((const float *)rf->data)[i], want);
    }
    /* row h*hd + 2i + j of GGUF is row h*hd + j*hd/2 + i of Hugging Face */
    const float *hq = imp_get(&m, "model.layers.0.self_attn.q_proj.weight"), *hk = imp_get(&m, "model.layers.0.self_attn.k_proj.weight");
    const float *gq = imp_find(f, "blk.0.attn_q.weight")->data, *gk = imp_find(f, "blk.0.attn_k.weight")->data;
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 2; j++) {
                cr_expect(!memcmp(gq + (h * 8 + 2 * i + j) * 16, hq + (h * 8 + j * 4 + i) * 16, 64), "q head %d row %d", h, 2 * i + j);
                if (h < 1) cr_expect(!memcmp(gk + (2 * i + j) * 16, hk + (j * 4 + i) * 16, 64), "k row %d", 2 * i + j);
            }
    apr_gguf_close(f);
    imp_free(&m);
    imp_rmdir(dir);
}

Test(import, shard_names_must_be_plain_files) {
    char dir[64], path[128];
    imp_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *cfg = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":8,\"num_hidden_layers\":1,"
                      "\"num_attention_heads\":1,\"intermediate_size\":8}";
    imp_write_file(path, cfg, strlen(cfg));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    const char *idx = "{\"weight_map\":{\"model.norm.weight\":\"../../etc/passwd\"}}";
    imp_write_file(path, idx, strlen(idx));
    hf_import *im;
    apr_error e;
    cr_expect_eq(apr_hf_import_folder(dir, &im, &e), APR_ERR_FORMAT);
    cr_expect(strstr(e.msg, "not a plain file name"), "%s", e.msg);
    imp_rmdir(dir);
}

/* ---------------------------------------------------------------- the apr-import tool */

/* Runs <build>/bin/apr-import with args (shell words); returns the exit status, stdout into out. */
static int imp_tool(const char *args, char *out, size_t cap) {
    char exe[PATH_MAX - 64], cmd[3 * PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = 0;
    for (int up = 0; up < 2; up++) *strrchr(exe, '/') = 0; /* <build>/tests/X -> <build> */
    snprintf(cmd, sizeof cmd, "'%s/bin/apr-import' %s 2>/dev/null", exe, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "%s", cmd);
    size_t len = fread(out, 1, cap - 1, p);
    out[len] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(import, apr_import_tool_exit_codes_and_summary, .timeout = 60) {
    if (!imp_find_fixtures()) cr_skip_test("fixtures not found at %s", imp_fixtures);
    char dir[64], args[3 * PATH_MAX], out[4096];
    imp_tmpdir(dir, sizeof dir);
    cr_expect_eq(imp_tool("", out, sizeof out), 2, "no arguments is a usage error");
    cr_expect_eq(imp_tool("--help", out, sizeof out), 0);
    cr_expect(strstr(out, "usage: apr-import"), "%s", out);
    snprintf(args, sizeof args, "'%s/stories260K/stories260K.bin' '%s/s.gguf'", imp_fixtures, dir);
    cr_expect_eq(imp_tool(args, out, sizeof out), 2, "a .bin without --tokenizer is a usage error");
    snprintf(args, sizeof args, "'%s/stories260K/stories260K.bin' '%s/s.gguf' --tokenizer '%s/stories260K/tok512.bin' --json",
             imp_fixtures, dir, imp_fixtures);
    cr_expect_eq(imp_tool(args, out, sizeof out), 0);
    cr_expect(strstr(out, "\"tensors\":48") && strstr(out, "\"architecture\":\"llama\""), "%s", out);
    snprintf(args, sizeof args, "'%s/s.gguf' '%s/s.gguf' --tokenizer '%s/stories260K/tok512.bin'", dir, dir, imp_fixtures);
    cr_expect_eq(imp_tool(args, out, sizeof out), 2, "OUT == IN is refused");
    snprintf(args, sizeof args, "'%s' '%s/x.gguf'", dir, dir);
    cr_expect_eq(imp_tool(args, out, sizeof out), 1, "a folder without config.json fails");
    cr_expect_neq(access(dir, F_OK), -1);
    snprintf(args, sizeof args, "%s/x.gguf", dir);
    cr_expect_eq(access(args, F_OK), -1, "nothing written on failure");
    imp_rmdir(dir);
}

/* ---------------------------------------------------------------- llama2.c checkpoints that lie about their size */

/* A llama2.c header (dim 8, hidden 16, 1 layer, 2/2 heads, the given vocab, seq 4) padded with zeros to size bytes. */
static void imp_llama2c_stub(const char *path, int32_t vocab, size_t size) {
    int32_t h[7] = {8, 16, 1, 2, 2, vocab, 4};
    unsigned char *img = calloc(1, size);
    memcpy(img, h, sizeof h);
    imp_write_file(path, img, size);
    free(img);
}

/* The size check once read the freed import for its message (heap use after free under ASan), with
 * a shared (positive) vocabulary and with an unshared (negative) one alike. */
Test(import, truncated_llama2c_checkpoint_is_refused_naming_its_size) {
    char dir[64], bin[128], tok[128];
    imp_tmpdir(dir, sizeof dir);
    snprintf(bin, sizeof bin, "%s/t.bin", dir);
    snprintf(tok, sizeof tok, "%s/tok.bin", dir);
    imp_write_file(tok, "\0\0\0\0", 4);
    const int32_t vocabs[] = {32, -32};
    for (int k = 0; k < 2; k++) {
        imp_llama2c_stub(bin, vocabs[k], 100);
        hf_import *im = NULL;
        apr_error e = {{0}};
        cr_expect_eq(apr_hf_import_llama2c(bin, tok, &im, &e), APR_ERR_FORMAT, "vocab %d", vocabs[k]);
        cr_expect_null(im);
        cr_expect(strstr(e.msg, "t.bin") && strstr(e.msg, "100 bytes"), "vocab %d: %s", vocabs[k], e.msg);
    }
    imp_rmdir(dir);
}

/* ---------------------------------------------------------------- apr-import's OUT never is, nor replaces, a file it reads */

/* Runs apr-import with args (NULL-terminated); the exit status (-1 when killed: a hang ends in SIGALRM) and *log. */
static int imp_run(const char *const *args, char **log) {
    tu_proc p = tu_spawn(tu_tool("apr-import"), args, NULL, 20);
    cr_assert(!tu_proc_wait(&p));
    *log = tu_proc_output(&p);
    return WIFEXITED(p.status) ? WEXITSTATUS(p.status) : -1;
}

/* apr-import IN OUT [--tokenizer TOK] exits 2 with one line naming the clash; victim (may be NULL: OUT does not exist)
 * keeps its bytes, and no folder in dirs gains or loses a file. */
static void imp_refused(const char *in, const char *tok, const char *out, const char *victim, const char *const *dirs) {
    size_t n0 = 0, n1 = 0;
    char *before = victim ? tu_read_file(victim, &n0) : NULL, lists[2][4096], now[4096];
    for (int d = 0; d < 2 && dirs[d]; d++) tu_dir_list(dirs[d], lists[d], sizeof lists[d]);
    const char *args[] = {in, out, tok ? "--tokenizer" : NULL, tok, NULL};
    char *log;
    int rc = imp_run(args, &log);
    cr_expect_eq(rc, 2, "OUT %s: exit %d: %s", out, rc, log);
    cr_expect(strstr(log, "error: OUT") && strstr(log, "choose another name") && !strchr(strchr(log, '\n') + 1, '\n'),
              "OUT %s: %s", out, log);
    if (victim) {
        char *after = tu_read_file(victim, &n1);
        cr_expect(n0 == n1 && !memcmp(before, after, n0), "OUT %s: %s was changed", out, victim);
        free(after);
    }
    for (int d = 0; d < 2 && dirs[d]; d++) cr_expect_str_eq(tu_dir_list(dirs[d], now, sizeof now), lists[d], "OUT %s", out);
    free(before);
    free(log);
}

Test(import, output_that_is_or_replaces_an_input_file_is_refused, .timeout = 120) {
    if (!imp_find_fixtures()) cr_skip_test("fixtures not found at %s", imp_fixtures);
    static imp_model m;
    char dir[64], a[96], b[96], p[24][160], cmd[3 * PATH_MAX];
    imp_tmpdir(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/sharded", dir);
    snprintf(b, sizeof b, "%s/single", dir);
    cr_assert(mkdir(a, 0755) == 0 && mkdir(b, 0755) == 0);
    imp_small_folder(&m, a, "LlamaForCausalLM", "", "hf-gpt2", 50257, false);
    /* the same model as one model.safetensors with a plain tokenizer.json */
    snprintf(p[0], sizeof p[0], "%s/model.safetensors", b);
    imp_write_safetensors(&m, p[0]);
    snprintf(cmd, sizeof cmd, "cp '%s/config.json' '%s/' && gzip -dc '%s/tokenizer.json.gz' > '%s/tokenizer.json'", a, b, a, b);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    const char *dirs_a[] = {a, dir, NULL}, *dirs_b[] = {b, dir, NULL};
    /* the cases: the weights and the tokenizer of a one-file folder */
    imp_refused(b, NULL, p[0], p[0], dirs_b);
    snprintf(p[1], sizeof p[1], "%s/tokenizer.json", b);
    imp_refused(b, NULL, p[1], p[1], dirs_b);
    /* every file of a sharded folder: shards, index, config, tokenizer files */
    const char *names[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
                           "config.json", "tokenizer.json.gz", "tokenizer_config.json"};
    for (int i = 0; i < 6; i++) {
        snprintf(p[2 + i], sizeof p[2 + i], "%s/%s", a, names[i]);
        imp_refused(a, NULL, p[2 + i], p[2 + i], dirs_a);
    }
    /* another spelling, a symlink and a hard link to an input; the folder itself */
    snprintf(p[8], sizeof p[8], "%s/../sharded/./model-00002-of-00002.safetensors", a);
    imp_refused(a, NULL, p[8], p[3], dirs_a);
    snprintf(p[9], sizeof p[9], "%s/link.gguf", dir);
    cr_assert_eq(symlink(p[3], p[9]), 0);
    imp_refused(a, NULL, p[9], p[3], dirs_a);
    snprintf(p[10], sizeof p[10], "%s/hard.gguf", dir);
    cr_assert_eq(link(p[5], p[10]), 0);
    imp_refused(a, NULL, p[10], p[5], dirs_a);
    imp_refused(a, NULL, a, p[5], dirs_a);
    /* a name the import would read had it been there */
    snprintf(p[11], sizeof p[11], "%s/generation_config.json", a);
    imp_refused(a, NULL, p[11], NULL, dirs_a);
    /* a llama2.c checkpoint and its tokenizer */
    snprintf(p[12], sizeof p[12], "%s/m.bin", dir);
    snprintf(p[13], sizeof p[13], "%s/tok.bin", dir);
    snprintf(cmd, sizeof cmd, "cp '%s/stories260K/stories260K.bin' '%s' && cp '%s/stories260K/tok512.bin' '%s'", imp_fixtures, p[12],
             imp_fixtures, p[13]);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    const char *dirs_d[] = {dir, NULL};
    imp_refused(p[12], p[13], p[13], p[13], dirs_d);
    imp_refused(p[12], p[13], p[12], p[12], dirs_d);
    /* a new name inside the input folder is fine */
    snprintf(p[14], sizeof p[14], "%s/out.gguf", a);
    char *log;
    int rc = imp_run((const char *[]){a, p[14], NULL}, &log);
    cr_expect_eq(rc, 0, "%s", log);
    cr_expect_eq(access(p[14], R_OK), 0);
    free(log);
    imp_free(&m);
    imp_rmdir(dir);
}

/* ---------------------------------------------------------------- apr-import's input checks */

/* A GGUF file needs no import: the message says so, not that a tokenizer is missing. */
Test(import, gguf_input_is_named_as_already_gguf, .timeout = 30) {
    char dir[64], in[96], out[96];
    imp_tmpdir(dir, sizeof dir);
    snprintf(in, sizeof in, "%s/m.gguf", dir);
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_set_str(w, "general.architecture", "llama");
    apr_error e;
    cr_assert_eq(apr_gguf_writer_write(w, in, &e), APR_OK, "%s", e.msg);
    apr_gguf_writer_free(w);
    const char *const cases[][5] = {{in, out, NULL}, {in, out, "--tokenizer", in, NULL}};
    for (int k = 0; k < 2; k++) {
        char *log;
        int rc = imp_run(cases[k], &log);
        cr_expect_eq(rc, 2, "case %d: exit %d: %s", k, rc, log);
        cr_expect(strstr(log, "m.gguf is already a GGUF file") && !strstr(log, "needs --tokenizer"), "case %d: %s", k, log);
        free(log);
    }
    cr_expect_neq(access(out, F_OK), 0);
    imp_rmdir(dir);
}

/* A FIFO or a device as the checkpoint, the tokenizer or a file of the folder fails at once, naming it. */
Test(import, fifo_or_device_input_fails_at_once, .timeout = 60) {
    char dir[64], fifo[96], bin[96], tok[96], hf[96], cfg[128], out[96];
    imp_tmpdir(dir, sizeof dir);
    snprintf(fifo, sizeof fifo, "%s/f.bin", dir);
    snprintf(bin, sizeof bin, "%s/m.bin", dir);
    snprintf(tok, sizeof tok, "%s/tok.bin", dir);
    snprintf(hf, sizeof hf, "%s/hf", dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", hf);
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert_eq(mkdir(hf, 0755), 0);
    cr_assert_eq(mkfifo(cfg, 0600), 0);
    imp_llama2c_stub(bin, 32, 100);
    imp_write_file(tok, "\0\0\0\0", 4);
    const char *const cases[][5] = {
        {fifo, "--tokenizer", tok, out, NULL},
        {bin, "--tokenizer", fifo, out, NULL},
        {"/dev/zero", "--tokenizer", tok, out, NULL},
        {bin, "--tokenizer", "/dev/zero", out, NULL},
        {hf, out, NULL},
    };
    const char *named[] = {fifo, fifo, "/dev/zero", "/dev/zero", cfg};
    for (int k = 0; k < 5; k++) {
        char *log;
        int rc = imp_run(cases[k], &log);
        cr_expect_eq(rc, 1, "case %d: exit %d (-1: it hung until the alarm): %s", k, rc, log);
        cr_expect(strstr(log, named[k]) && strstr(log, "not a regular file"), "case %d: %s", k, log);
        free(log);
    }
    cr_expect_neq(access(out, F_OK), 0);
    imp_rmdir(dir);
}

/* A FIFO where a folder's weights should be: refused at once, naming the file, not an open that
 * waits for a writer. */
Test(import, fifo_shard_fails_at_once, .timeout = 60) {
    if (!imp_find_fixtures()) cr_skip_test("fixtures not found at %s", imp_fixtures);
    static imp_model m;
    imp_build(&m);
    char dir[64], shard[128], out[128];
    imp_tmpdir(dir, sizeof dir);
    imp_write_folder(&m, dir);
    snprintf(shard, sizeof shard, "%s/model.safetensors", dir);
    snprintf(out, sizeof out, "%s.gguf", dir);
    cr_assert_eq(unlink(shard), 0);
    cr_assert_eq(mkfifo(shard, 0600), 0);
    char *log;
    int rc = imp_run((const char *const[]){dir, out, NULL}, &log);
    cr_expect_eq(rc, 1, "exit %d (-1: it hung until the alarm): %s", rc, log);
    cr_expect(strstr(log, shard) && strstr(log, "not a regular file"), "%s", log);
    cr_expect_neq(access(out, F_OK), 0);
    free(log);
    imp_free(&m);
    imp_rmdir(dir);
}

/* test_arch.c — llama, qwen2 and qwen3 graphs against a naive double-precision forward on tiny random models. */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apr/apr.h"
#include "gguf.h"
#include "llama.h"
#include "plugins/packtest.h"
#include "util/tu_paths.h"

/* ---------------------------------------------------------------- a tiny model, kept in memory for the oracle */

typedef struct arch_spec {
    const char *arch;
    int E, H, Hkv, hd, F, V, L;   /* width, heads, kv heads, head size (may differ from E/H), ffn, vocab, layers */
    bool bias, qk_norm, rope_freqs, tied, key_length;
    int layout;                   /* the rope layout the loader must choose */
    float base, eps;
    int window;                   /* attention.sliding_window; 0 = none */
} arch_spec;

typedef struct arch_layer {
    float *attn_norm, *wq, *wk, *wv, *bq, *bk, *bv, *q_norm, *k_norm, *wo, *ffn_norm, *wg, *wu, *wd;
} arch_layer;

typedef struct arch_model {
    arch_spec sp;
    float *emb, *out_norm, *out, *ff;
    arch_layer *l;
    float *all[64 * 16];          /* every allocation, to free */
    int n_all;
} arch_model;

static uint64_t arch_rng = 12345;

static float arch_uniform(void) { /* xorshift64*, in [-1, 1) */
    arch_rng ^= arch_rng >> 12, arch_rng ^= arch_rng << 25, arch_rng ^= arch_rng >> 27;
    return (float)((double)((arch_rng * 2685821657736338717ull) >> 11) * 0x1p-52 - 1.0);
}

/* n values center + spread * U(-1, 1) */
static float *arch_rand(arch_model *m, size_t n, float center, float spread) {
    float *p = malloc(n * sizeof *p);
    cr_assert(p);
    for (size_t i = 0; i < n; i++) p[i] = center + spread * arch_uniform();
    m->all[m->n_all++] = p;
    return p;
}

static void arch_build(arch_model *m, const arch_spec *sp) {
    memset(m, 0, sizeof *m);
    m->sp = *sp;
    const int E = sp->E, Q = sp->H * sp->hd, KV = sp->Hkv * sp->hd, F = sp->F;
    /* weights ~ 1/sqrt(fan-in), so activations and logits are O(1) and differences mean something */
    const float se = 1.0f, si = 1.7f / sqrtf((float)E), sq = 1.7f / sqrtf((float)Q), sf = 1.7f / sqrtf((float)F);
    m->emb = arch_rand(m, (size_t)E * sp->V, 0, se);
    m->out_norm = arch_rand(m, (size_t)E, 1, 0.2f);
    m->out = sp->tied ? m->emb : arch_rand(m, (size_t)E * sp->V, 0, si);
    if (sp->rope_freqs) {
        m->ff = arch_rand(m, (size_t)sp->hd / 2, 0, 0);
        for (int i = 0; i < sp->hd / 2; i++) m->ff[i] = 1.0f + (float)(i % 3) * 3.5f; /* divisors as Llama 3 has: 1 .. 8 */
    }
    m->l = calloc((size_t)sp->L, sizeof *m->l);
    m->all[m->n_all++] = (float *)m->l;
    for (int i = 0; i < sp->L; i++) {
        arch_layer *l = &m->l[i];
        l->attn_norm = arch_rand(m, E, 1, 0.2f);
        l->wq = arch_rand(m, (size_t)E * Q, 0, si);
        l->wk = arch_rand(m, (size_t)E * KV, 0, si);
        l->wv = arch_rand(m, (size_t)E * KV, 0, si);
        if (sp->bias) l->bq = arch_rand(m, Q, 0, 0.5f), l->bk = arch_rand(m, KV, 0, 0.5f), l->bv = arch_rand(m, KV, 0, 0.5f);
        if (sp->qk_norm) l->q_norm = arch_rand(m, sp->hd, 1, 0.3f), l->k_norm = arch_rand(m, sp->hd, 1, 0.3f);
        l->wo = arch_rand(m, (size_t)Q * E, 0, sq);
        l->ffn_norm = arch_rand(m, E, 1, 0.2f);
        l->wg = arch_rand(m, (size_t)E * F, 0, si);
        l->wu = arch_rand(m, (size_t)E * F, 0, si);
        l->wd = arch_rand(m, (size_t)F * E, 0, sf);
    }
}

static void arch_free(arch_model *m) {
    for (int i = 0; i < m->n_all; i++) free(m->all[i]);
}

static void arch_add(gguf_writer *w, const char *name, const float *d, int64_t ne0, int64_t ne1) {
    apr_gguf_writer_add_tensor(w, name, APR_F32, ne1 > 1 ? 2 : 1, (int64_t[]){ne0, ne1}, d, (uint64_t)(ne0 * ne1) * 4);
}

/* Writes the model as a tokenizer-less GGUF at path. */
static void arch_write(const arch_model *m, const char *path) {
    const arch_spec *sp = &m->sp;
    gguf_writer *w = apr_gguf_writer_new();
    char key[128];
    apr_gguf_writer_set_str(w, "general.architecture", sp->arch);
#define ARCH_U32(k, v) (snprintf(key, sizeof key, "%s." k, sp->arch), apr_gguf_writer_set_u32(w, key, (uint32_t)(v)))
    ARCH_U32("block_count", sp->L);
    ARCH_U32("context_length", 64);
    ARCH_U32("embedding_length", sp->E);
    ARCH_U32("feed_forward_length", sp->F);
    ARCH_U32("attention.head_count", sp->H);
    ARCH_U32("attention.head_count_kv", sp->Hkv);
    if (sp->key_length) ARCH_U32("attention.key_length", sp->hd), ARCH_U32("attention.value_length", sp->hd);
    if (sp->window) ARCH_U32("attention.sliding_window", sp->window);
#undef ARCH_U32
    snprintf(key, sizeof key, "%s.rope.freq_base", sp->arch);
    apr_gguf_writer_set_f32(w, key, sp->base);
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", sp->arch);
    apr_gguf_writer_set_f32(w, key, sp->eps);
    const int E = sp->E, Q = sp->H * sp->hd, KV = sp->Hkv * sp->hd, F = sp->F;
    arch_add(w, "token_embd.weight", m->emb, E, sp->V);
    if (m->ff) arch_add(w, "rope_freqs.weight", m->ff, sp->hd / 2, 1);
    char nm[96];
    for (int i = 0; i < sp->L; i++) {
        const arch_layer *l = &m->l[i];
        struct { const char *n; const float *d; int64_t ne0, ne1; } t[] = {
            {"attn_norm.weight", l->attn_norm, E, 1}, {"attn_q.weight", l->wq, E, Q},   {"attn_k.weight", l->wk, E, KV},
            {"attn_v.weight", l->wv, E, KV},          {"attn_q.bias", l->bq, Q, 1},     {"attn_k.bias", l->bk, KV, 1},
            {"attn_v.bias", l->bv, KV, 1},            {"attn_q_norm.weight", l->q_norm, sp->hd, 1},
            {"attn_k_norm.weight", l->k_norm, sp->hd, 1}, {"attn_output.weight", l->wo, Q, E},
            {"ffn_norm.weight", l->ffn_norm, E, 1},   {"ffn_gate.weight", l->wg, E, F}, {"ffn_up.weight", l->wu, E, F},
            {"ffn_down.weight", l->wd, F, E},
        };
        for (size_t k = 0; k < sizeof t / sizeof *t; k++) {
            if (!t[k].d) continue;
            snprintf(nm, sizeof nm, "blk.%d.%s", i, t[k].n);
            arch_add(w, nm, t[k].d, t[k].ne0, t[k].ne1);
        }
    }
    arch_add(w, "output_norm.weight", m->out_norm, E, 1);
    if (!sp->tied) arch_add(w, "output.weight", m->out, E, sp->V);
    apr_error e;
    cr_assert_eq(apr_gguf_writer_write(w, path, &e), APR_OK, "%s", e.msg);
    apr_gguf_writer_free(w);
}

/* ---------------------------------------------------------------- the oracle: plain loops in double */

static void arch_matvec(const float *w, const double *x, int in, int out, double *y) {
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += (double)w[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}

static void arch_rmsnorm(const double *x, const float *w, int n, double eps, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

static void arch_rope(double *x, int hd, int pos, int layout, double base, const float *ff) {
    for (int i = 0; i < hd / 2; i++) {
        double th = pos * pow(base, -2.0 * i / hd) / (ff ? ff[i] : 1.0);
        int a = layout ? i : 2 * i, b = layout ? i + hd / 2 : 2 * i + 1;
        double xa = x[a], xb = x[b];
        x[a] = xa * cos(th) - xb * sin(th);
        x[b] = xa * sin(th) + xb * cos(th);
    }
}

/* Logits of tokens ids[0..n) one after another; kc/vc [L][n][KV] hold the cache. */
static void arch_forward(const arch_model *m, const int32_t *ids, int n, double *logits) {
    const arch_spec *sp = &m->sp;
    const int E = sp->E, Q = sp->H * sp->hd, KV = sp->Hkv * sp->hd, F = sp->F, hd = sp->hd;
    double *kc = calloc((size_t)sp->L * n * KV, sizeof *kc), *vc = calloc((size_t)sp->L * n * KV, sizeof *vc);
    double x[256], h[256], q[256], k[256], v[256], att[256], o[256], g[256], u[256], p[64];
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < E; i++) x[i] = m->emb[(size_t)ids[t] * E + i];
        for (int li = 0; li < sp->L; li++) {
            const arch_layer *l = &m->l[li];
            arch_rmsnorm(x, l->attn_norm, E, sp->eps, h);
            arch_matvec(l->wq, h, E, Q, q);
            arch_matvec(l->wk, h, E, KV, k);
            arch_matvec(l->wv, h, E, KV, v);
            for (int i = 0; l->bq && i < Q; i++) q[i] += l->bq[i];
            for (int i = 0; l->bk && i < KV; i++) k[i] += l->bk[i], v[i] += l->bv[i];
            for (int hh = 0; hh < sp->H; hh++) {
                if (l->q_norm) arch_rmsnorm(q + hh * hd, l->q_norm, hd, sp->eps, q + hh * hd);
                arch_rope(q + hh * hd, hd, t, sp->layout, sp->base, m->ff);
            }
            for (int hh = 0; hh < sp->Hkv; hh++) {
                if (l->k_norm) arch_rmsnorm(k + hh * hd, l->k_norm, hd, sp->eps, k + hh * hd);
                arch_rope(k + hh * hd, hd, t, sp->layout, sp->base, m->ff);
            }
            double *K = kc + (size_t)li * n * KV, *Vv = vc + (size_t)li * n * KV;
            memcpy(K + (size_t)t * KV, k, KV * sizeof *k);
            memcpy(Vv + (size_t)t * KV, v, KV * sizeof *v);
            for (int hh = 0; hh < sp->H; hh++) {
                int kh = hh / (sp->H / sp->Hkv);
                double mx = -INFINITY, sum = 0;
                int s0 = sp->window && t >= sp->window ? t - sp->window + 1 : 0; /* oldest key in the window */
                for (int s = s0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += q[hh * hd + i] * K[(size_t)s * KV + kh * hd + i];
                    p[s] = d / sqrt((double)hd);
                    if (p[s] > mx) mx = p[s];
                }
                for (int s = s0; s <= t; s++) sum += (p[s] = exp(p[s] - mx));
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int s = s0; s <= t; s++) a += p[s] / sum * Vv[(size_t)s * KV + kh * hd + i];
                    att[hh * hd + i] = a;
                }
            }
            arch_matvec(l->wo, att, Q, E, o);
            for (int i = 0; i < E; i++) x[i] += o[i];
            arch_rmsnorm(x, l->ffn_norm, E, sp->eps, h);
            arch_matvec(l->wg, h, E, F, g);
            arch_matvec(l->wu, h, E, F, u);
            for (int i = 0; i < F; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            arch_matvec(l->wd, g, F, E, o);
            for (int i = 0; i < E; i++) x[i] += o[i];
        }
        arch_rmsnorm(x, m->out_norm, E, sp->eps, h);
        arch_matvec(m->out, h, E, sp->V, logits + (size_t)t * sp->V);
    }
    free(kc);
    free(vc);
}

/* ---------------------------------------------------------------- the comparison */

enum { ARCH_N = 8, ARCH_BATCH = 5 }; /* a 5-token batch, then 3 single-token decode steps */

/* Max |apr - oracle| over every position, relative to the largest |oracle logit|. */
static double arch_run(const arch_model *m, const char *path, apr_backend *be, apr_dtype kv) {
    const int V = m->sp.V;
    int32_t ids[ARCH_N];
    for (int i = 0; i < ARCH_N; i++) ids[i] = (int32_t)((i * 37 + 11) % V);
    double *want = malloc(sizeof(double) * ARCH_N * V);
    float *got = malloc(sizeof(float) * ARCH_N * V);
    arch_forward(m, ids, ARCH_N, want);
    apr_error e;
    gguf_file *f;
    llama_model *lm;
    cr_assert_eq(apr_gguf_open(path, &f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_model_load(f, &lm, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(lm->hp.head_dim, m->sp.hd);
    cr_expect_eq(lm->hp.rope_layout, m->sp.layout, "%s: rope layout", m->sp.arch);
    cr_expect_eq(lm->output == lm->tok_embd, m->sp.tied);
    llama_session_params p = apr_llama_session_defaults(16);
    p.kv_dtype = kv;
    llama_session *s;
    cr_assert_eq(apr_llama_session_new_ex(lm, &p, &be, 1, &s, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_session_eval(s, ids, ARCH_BATCH, true, got, &e), APR_OK, "%s", e.msg);
    for (int t = ARCH_BATCH; t < ARCH_N; t++)
        cr_assert_eq(apr_llama_session_eval(s, &ids[t], 1, false, got + (size_t)t * V, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_llama_session_pos(s), ARCH_N);
    double scale = 0, diff = 0;
    for (int i = 0; i < ARCH_N * V; i++) {
        scale = fmax(scale, fabs(want[i]));
        diff = fmax(diff, fabs(want[i] - got[i]));
    }
    cr_assert(scale > 1, "%s: logits too small to compare (%g)", m->sp.arch, scale);
    apr_llama_session_free(s);
    apr_llama_model_free(lm);
    apr_gguf_close(f);
    free(want);
    free(got);
    return diff / scale;
}

/* Every usable backend, both KV cache types. f32 cache: only accumulation order differs (< 1e-5 of
 * the logit scale); f16 cache rounds k and v to 11 significant bits (< 2e-3; measured 3-5e-4). */
static void arch_check(const arch_spec *sp) {
    arch_model m;
    arch_build(&m, sp);
    char path[] = "/tmp/apr_test_arch_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    arch_write(&m, path);
    apr_error e;
    apr_registry *reg;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    int tested = 0;
    for (int b = 0; b < apr_registry_count(reg); b++) {
        const apr_plugin_record *r = apr_registry_record(reg, b);
        if (r->state != APR_PLUGIN_OK) continue;
        apr_backend *be;
        cr_assert_eq(apr_backend_open(reg, r->name, 1, &be, &e), APR_OK, "%s", e.msg);
        double d32 = arch_run(&m, path, be, APR_F32), d16 = arch_run(&m, path, be, APR_F16);
        fprintf(stderr, "%s on %s: max |diff| / logit scale: f32 cache %.2g, f16 cache %.2g\n", sp->arch, r->name, d32, d16);
        cr_expect_lt(d32, 1e-5, "%s on %s, f32 cache: max diff %.3g of the logit scale", sp->arch, r->name, d32);
        cr_expect_lt(d16, 2e-3, "%s on %s, f16 cache: max diff %.3g of the logit scale", sp->arch, r->name, d16);
        apr_backend_close(be);
        tested++;
    }
    cr_expect_geq(tested, 1);
    apr_registry_close(reg);
    unlink(path);
    arch_free(&m);
}

Test(arch, llama_gqa_rope_freqs_and_explicit_head_size_match_the_oracle) {
    /* head size 16 with width 32 and 4 heads: key_length, not E / H */
    arch_check(&(arch_spec){"llama", 32, 4, 2, 16, 48, 64, 2, false, false, true, false, true, 0, 10000, 1e-5f, 0});
}

Test(arch, qwen2_bias_tied_neox_rope_match_the_oracle) {
    arch_check(&(arch_spec){"qwen2", 32, 4, 2, 8, 48, 64, 2, true, false, false, true, false, 1, 1000000, 1e-6f, 0});
}

Test(arch, qwen3_qk_norm_and_head_size_match_the_oracle) {
    arch_check(&(arch_spec){"qwen3", 32, 4, 1, 16, 48, 64, 2, false, true, false, false, true, 1, 1000000, 1e-6f, 0});
}

Test(arch, unknown_architecture_and_bad_kv_dtype_are_refused) {
    arch_model m;
    arch_build(&m, &(arch_spec){"gptj-x", 32, 4, 2, 8, 48, 64, 1, false, false, false, false, false, 0, 10000, 1e-5f, 0});
    char path[] = "/tmp/apr_test_arch_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    arch_write(&m, path);
    apr_error e;
    gguf_file *f;
    llama_model *lm;
    cr_assert_eq(apr_gguf_open(path, &f, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_llama_model_load(f, &lm, &e), APR_ERR_UNSUPPORTED);
    cr_expect(strstr(e.msg, "'gptj-x'") && strstr(e.msg, "qwen3"), "%s", e.msg);
    apr_gguf_close(f);
    unlink(path);
    arch_free(&m);
    /* qwen3 without its q/k norms is an error naming the tensor */
    arch_build(&m, &(arch_spec){"qwen3", 32, 4, 2, 8, 48, 64, 1, false, false, false, false, false, 1, 10000, 1e-5f, 0});
    fd = mkstemp(path);
    close(fd);
    arch_write(&m, path);
    cr_assert_eq(apr_gguf_open(path, &f, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_llama_model_load(f, &lm, &e), APR_ERR_FORMAT);
    cr_expect(strstr(e.msg, "attn_q_norm"), "%s", e.msg);
    apr_gguf_close(f);
    unlink(path);
    /* a KV cache of bf16 is refused */
    arch_free(&m);
    arch_build(&m, &(arch_spec){"llama", 32, 4, 2, 8, 48, 64, 1, false, false, false, false, false, 0, 10000, 1e-5f, 0});
    fd = mkstemp(path);
    close(fd);
    arch_write(&m, path);
    cr_assert_eq(apr_gguf_open(path, &f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_model_load(f, &lm, &e), APR_OK, "%s", e.msg);
    apr_registry *reg;
    apr_backend *be;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(reg, "reference", 1, &be, &e), APR_OK, "%s", e.msg);
    llama_session_params p = apr_llama_session_defaults(8);
    p.kv_dtype = APR_BF16;
    llama_session *s;
    cr_expect_eq(apr_llama_session_new_ex(lm, &p, &be, 1, &s, &e), APR_ERR_INVALID);
    cr_expect(strstr(e.msg, "bf16"), "%s", e.msg);
    apr_backend_close(be);
    apr_registry_close(reg);
    apr_llama_model_free(lm);
    apr_gguf_close(f);
    unlink(path);
    arch_free(&m);
}

Test(arch, mistral_sliding_window_matches_the_oracle) {
    /* a window of 3 positions, shorter than the prefill batch, so both the batch mask and decode
     * steps drop old keys */
    arch_check(&(arch_spec){"llama", 32, 4, 2, 8, 48, 64, 2, false, false, false, false, false, 0, 10000, 1e-5f, 3});
}

/* ---------------------------------------------------------------- packed weights */

/* A registry that also holds the test plugins of <build>/tests/plugins (packtest). */
static apr_registry *arch_test_registry(void) {
    apr_registry_options o = {.plugin_path = tu_test_plugins_dir()};
    apr_registry *reg;
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, &reg, &e), APR_OK, "%s", e.msg);
    return reg;
}

/* Writes m to a fresh temporary file and loads it; *path must be freed and unlinked by the caller. */
static void arch_load(const arch_model *m, char *path, gguf_file **f, llama_model **lm) {
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    arch_write(m, path);
    apr_error e;
    cr_assert_eq(apr_gguf_open(path, f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_model_load(*f, lm, &e), APR_OK, "%s", e.msg);
}

Test(arch, packed_weights_serve_the_matmuls_and_go_with_the_session) {
    /* tied (the embedding is both a matmul W and a get_rows table), and a feed-forward width of
     * 50 rows that packtest declines (it groups rows by 4): gate and up stay in the file's layout */
    enum { L = 2, E = 32, Q = 32, KV = 16, F = 50, V = 64, PACKED = 5 * L + 1 };
    const arch_spec sp = {"llama", E, 4, 2, 8, F, V, L, false, false, false, true, false, 0, 10000, 1e-5f, 0};
    arch_model m;
    arch_build(&m, &sp);
    char path[] = "/tmp/apr_test_arch_XXXXXX";
    gguf_file *f;
    llama_model *lm;
    arch_load(&m, path, &f, &lm);
    int32_t ids[ARCH_N];
    for (int i = 0; i < ARCH_N; i++) ids[i] = (int32_t)((i * 37 + 11) % V);
    double *want = malloc(sizeof(double) * ARCH_N * V);
    float *got = malloc(sizeof(float) * ARCH_N * V);
    arch_forward(&m, ids, ARCH_N, want);

    apr_registry *reg = arch_test_registry();
    apr_backend *bes[2];
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, "packtest", 1, &bes[0], &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(reg, "reference", 1, &bes[1], &e), APR_OK, "%s", e.msg);
    packtest_counters *c = apr_backend_instance(bes[0]), before = *c;
    cr_assert_eq(c->magic, PACKTEST_MAGIC);
    llama_session_params p = apr_llama_session_defaults(16);
    cr_expect(p.pack_weights, "packing is the default");
    p.kv_dtype = APR_F32;
    llama_session *s;
    cr_assert_eq(apr_llama_session_new_ex(lm, &p, bes, 2, &s, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(c->pack_calls - before.pack_calls, 7 * L + 1, "every matmul weight is offered");
    cr_expect_eq(c->packs - before.packs, PACKED);
    const int64_t bytes = 4 * (L * ((int64_t)E * Q + 2 * E * KV + Q * E + F * E) + E * V);
    cr_expect_eq(apr_backend_packed_bytes(bes[0]), bytes);
    cr_assert_eq(apr_llama_session_eval(s, ids, ARCH_BATCH, true, got, &e), APR_OK, "%s", e.msg);
    for (int t = ARCH_BATCH; t < ARCH_N; t++)
        cr_assert_eq(apr_llama_session_eval(s, &ids[t], 1, false, got + (size_t)t * V, &e), APR_OK, "%s", e.msg);
    double scale = 0, diff = 0;
    for (int i = 0; i < ARCH_N * V; i++) {
        scale = fmax(scale, fabs(want[i]));
        diff = fmax(diff, fabs(want[i] - got[i]));
    }
    cr_expect_lt(diff / scale, 1e-5, "packed matmuls: max diff %.3g of the logit scale", diff / scale);
    const int evals = 1 + ARCH_N - ARCH_BATCH;
    cr_expect_eq(c->packed_matmuls - before.packed_matmuls, evals * PACKED);
    cr_expect_eq(c->plain_matmuls - before.plain_matmuls, evals * 2 * L, "gate and up read the file's layout");
    cr_expect_eq(c->get_rows - before.get_rows, evals, "the tied embedding's lookups ran on packtest");
    apr_llama_session_free(s);
    cr_expect_eq(c->packed_frees - before.packed_frees, PACKED);
    cr_expect_eq(apr_backend_packed_bytes(bes[0]), 0);

    /* a pack held across sessions: theirs only count references, and the copies outlive them */
    llama_pack *hold;
    cr_assert_eq(apr_llama_pack_new(lm, bes[0], &hold, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_llama_pack_count(hold), PACKED);
    int packs = c->packs, frees = c->packed_frees;
    cr_assert_eq(apr_llama_session_new_ex(lm, &p, bes, 2, &s, &e), APR_OK, "%s", e.msg);
    apr_llama_session_free(s);
    cr_expect_eq(c->packs, packs, "a session repacked weights a holder keeps packed");
    cr_expect_eq(c->packed_frees, frees);
    cr_expect_eq(apr_backend_packed_bytes(bes[0]), bytes);
    apr_llama_pack_free(hold);
    cr_expect_eq(c->packed_frees, frees + PACKED);

    /* pack_weights false: nothing offered, every matmul reads the file's layout */
    p.pack_weights = false;
    int calls = c->pack_calls, packed_mm = c->packed_matmuls;
    cr_assert_eq(apr_llama_session_new_ex(lm, &p, bes, 2, &s, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_llama_session_eval(s, ids, 1, false, got, &e), APR_OK, "%s", e.msg);
    apr_llama_session_free(s);
    cr_expect_eq(c->pack_calls, calls);
    cr_expect_eq(c->packed_matmuls, packed_mm);
    apr_llama_model_free(lm);
    apr_gguf_close(f);
    unlink(path);

    /* a weight the backend fails to pack (not a decline) fails the session, with nothing left packed */
    const uint32_t fail = PACKTEST_FAIL_BITS;
    memcpy(&m.l[L - 1].wd[0], &fail, sizeof fail);
    char path2[] = "/tmp/apr_test_arch_XXXXXX";
    arch_load(&m, path2, &f, &lm);
    p.pack_weights = true;
    packs = c->packs, frees = c->packed_frees;
    s = NULL;
    cr_expect_eq(apr_llama_session_new_ex(lm, &p, bes, 2, &s, &e), APR_ERR_DEVICE);
    cr_expect_null(s);
    cr_expect(strstr(e.msg, "blk.1.ffn_down.weight") && strstr(e.msg, "asks to fail"), "%s", e.msg);
    cr_expect_gt(c->packs, packs, "the weights before it were packed");
    cr_expect_eq(c->packed_frees - frees, c->packs - packs, "and given back");
    cr_expect_eq(apr_backend_packed_bytes(bes[0]), 0);
    cr_expect_eq(apr_llama_pack_new(lm, bes[0], &hold, &e), APR_ERR_DEVICE);
    cr_expect_null(hold);

    apr_backend_close(bes[1]);
    apr_backend_close(bes[0]);
    apr_registry_close(reg);
    apr_llama_model_free(lm);
    apr_gguf_close(f);
    unlink(path2);
    free(want);
    free(got);
    arch_free(&m);
}

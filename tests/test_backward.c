/* test_backward.c — apr_backward: the gradients it builds, run on the reference backend, against
 * finite differences of the whole forward graph (matmul chains with shared weights,
 * broadcasting, an MLP with swiglu and rms_norm, attention with rope, GQA and causality, a
 * llama-like block under a cross-entropy loss, an intermediate tensor, a frozen Q4_0 weight,
 * permute / reshape / concat views), the nodes it adds, and what it refuses. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr.h"
#include "apr/apr_quant.h"
#include "util/tu_rand.h"

/* Finite differences. Every forward run is f32 and the loss <outs, seeds> is summed in double. Along
 * a direction u of unit RMS per element, D(h) = (L(x + h u) - L(x - h u)) / 2h, and the estimate is
 * Richardson's (4 D(h/2) - D(h)) / 3, whose error is O(h^4) instead of D's O(h^2): with h = 1e-2 per
 * element a weight of a few hundred elements moves by about 0.2 in norm, where plain central
 * differences were off by up to 3% on the MLP (third derivatives of swiglu and rms_norm). What is
 * left is the f32 rounding of the outs divided by the step, and the h^4 term: 2e-4 of the gradient's
 * size at worst over 30 seeds. A wrong rule is off by a large fraction (a transposed matmul, a
 * missing contribution, a lost scale), so the bound is 2e-3 of that size:
 * |fd - ad| <= BK_TOL (|ad| + |g|), |g| being what a random unit-RMS direction typically projects
 * of g, plus BK_ABS for gradients that vanish. */
#define BK_H 1e-2
#define BK_TOL 2e-3
#define BK_ABS 1e-5
#define BK_DIRS 3 /* random directions per wrt */

#define BK_MAX 48

static apr_registry *bk_reg;
static apr_backend *bk_ref;
static uint64_t bk_seed;

static void bk_setup(void) {
    apr_error e;
    cr_assert_eq(apr_registry_open(NULL, &bk_reg, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_backend_open(bk_reg, "reference", 1, &bk_ref, &e), APR_OK, "%s", e.msg);
    bk_seed = tu_seed();
}

static void bk_teardown(void) {
    apr_backend_close(bk_ref);
    apr_registry_close(bk_reg);
}

TestSuite(backward, .init = bk_setup, .fini = bk_teardown);

/* ---------------------------------------------------------------- harness */

/* One graph with its inputs (host data set before every run), outs with their seeds, and the
 * gradients apr_backward made for wrt. */
typedef struct bk_case {
    const char *name;
    apr_graph *g;
    tu_rng rng;
    int n_in;
    apr_tensor *in[BK_MAX];
    void *in_data[BK_MAX];
    size_t in_bytes[BK_MAX];
    int n_outs;
    apr_tensor *outs[BK_MAX], *seeds[BK_MAX];
    int n_wrt;
    apr_tensor *wrt[BK_MAX], *grads[BK_MAX];
    apr_tensor *readable[BK_MAX]; /* grads[i], or a contiguous copy of it when it is a strided view */
    int n_owned;
    void *owned[BK_MAX];          /* weight data */
    apr_plan *p;
} bk_case;

static uint64_t bk_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void bk_init(bk_case *c, const char *name) {
    memset(c, 0, sizeof *c);
    c->name = name;
    c->g = apr_graph_new();
    cr_assert_not_null(c->g);
    tu_rng_init(&c->rng, tu_seed_mix(bk_seed, bk_hash(name)));
}

static void bk_free(bk_case *c) {
    apr_plan_free(c->p);
    apr_graph_free(c->g);
    for (int i = 0; i < c->n_in; i++) free(c->in_data[i]);
    for (int i = 0; i < c->n_owned; i++) free(c->owned[i]);
}

static int bk_dims(const int64_t *ne, int n_dims, int64_t *out4) {
    int64_t n = 1;
    for (int d = 0; d < 4; d++) {
        out4[d] = d < n_dims ? ne[d] : 1;
        n *= out4[d];
    }
    return (int)n;
}

static apr_tensor *bk_add_input(bk_case *c, apr_tensor *t, void *data, size_t bytes) {
    cr_assert_not_null(t, "%s: %s", c->name, apr_graph_error(c->g));
    cr_assert_lt(c->n_in, BK_MAX);
    c->in[c->n_in] = t;
    c->in_data[c->n_in] = data;
    c->in_bytes[c->n_in++] = bytes;
    return t;
}

/* An f32 input of uniform values in [lo, hi). */
static apr_tensor *bk_in(bk_case *c, int n_dims, const int64_t *ne, double lo, double hi, const char *name) {
    int64_t ne4[4];
    int n = bk_dims(ne, n_dims, ne4);
    float *x = malloc((size_t)n * sizeof *x);
    cr_assert_not_null(x);
    for (int i = 0; i < n; i++) x[i] = (float)tu_rng_uniform(&c->rng, lo, hi);
    return bk_add_input(c, apr_input(c->g, APR_F32, n_dims, ne, name), x, (size_t)n * sizeof *x);
}

/* An i32 input [n] holding vals. */
static apr_tensor *bk_ids(bk_case *c, int n, const int32_t *vals, const char *name) {
    int32_t *x = malloc((size_t)n * sizeof *x);
    cr_assert_not_null(x);
    memcpy(x, vals, (size_t)n * sizeof *x);
    return bk_add_input(c, apr_input(c->g, APR_I32, 1, (int64_t[]){n}, name), x, (size_t)n * sizeof *x);
}

static int bk_find_input(const bk_case *c, const apr_tensor *t) {
    for (int i = 0; i < c->n_in; i++)
        if (c->in[i] == t) return i;
    return -1;
}

static float *bk_data(const bk_case *c, const apr_tensor *t) {
    int i = bk_find_input(c, t);
    cr_assert_geq(i, 0, "%s: %s is not an input", c->name, apr_tensor_name(t));
    return c->in_data[i];
}

/* A Q4_0 weight [K, N] (frozen: it is read in place) of uniform values in [-r, r). */
static apr_tensor *bk_q4_0(bk_case *c, int64_t K, int64_t N, double r, const char *name) {
    float *row = malloc((size_t)K * sizeof *row);
    int64_t row_bytes = apr_dtype_row_bytes(APR_Q4_0, K);
    unsigned char *q = malloc((size_t)(row_bytes * N));
    cr_assert(row && q);
    for (int64_t j = 0; j < N; j++) {
        for (int64_t k = 0; k < K; k++) row[k] = (float)tu_rng_uniform(&c->rng, -r, r);
        cr_assert_eq(apr_quant_row(APR_Q4_0, row, q + j * row_bytes, K), row_bytes);
    }
    free(row);
    c->owned[c->n_owned++] = q;
    apr_tensor *w = apr_weight(c->g, APR_Q4_0, 2, (int64_t[]){K, N}, q, name);
    cr_assert_not_null(w, "%s", apr_graph_error(c->g));
    return w;
}

/* Makes t an out, with a seed input of its shape (uniform in [-1, 1)). */
static void bk_out(bk_case *c, apr_tensor *t) {
    cr_assert_not_null(t, "%s: %s", c->name, apr_graph_error(c->g));
    char name[80];
    snprintf(name, sizeof name, "seed of %s", apr_tensor_name(t));
    int64_t ne[4] = {apr_tensor_ne(t, 0), apr_tensor_ne(t, 1), apr_tensor_ne(t, 2), apr_tensor_ne(t, 3)};
    c->seeds[c->n_outs] = bk_in(c, 4, ne, -1, 1, name);
    c->outs[c->n_outs++] = t;
}

/* apr_backward with respect to the n tensors of wrt (appended to c's); must succeed. Outs and
 * gradients become outputs. */
static void bk_backward(bk_case *c, int n, apr_tensor *const *wrt) {
    cr_assert_null(apr_graph_error(c->g), "%s: %s", c->name, apr_graph_error(c->g));
    for (int i = 0; i < n; i++) c->wrt[c->n_wrt + i] = wrt[i];
    bool ok = apr_backward(c->g, c->n_outs, c->outs, c->seeds, n, c->wrt + c->n_wrt, c->grads + c->n_wrt);
    cr_assert(ok, "%s: apr_backward: %s", c->name, apr_graph_error(c->g));
    for (int i = c->n_wrt; i < c->n_wrt + n; i++) {
        apr_tensor *gr = c->grads[i];
        if (!gr) continue;
        cr_assert_eq(apr_tensor_dtype(gr), APR_F32, "%s: the gradient of %s is not f32", c->name,
                     apr_tensor_name(c->wrt[i]));
        for (int d = 0; d < 4; d++)
            cr_assert_eq(apr_tensor_ne(gr, d), apr_tensor_ne(c->wrt[i], d), "%s: the gradient of %s has dim %d of %lld",
                         c->name, apr_tensor_name(c->wrt[i]), d, (long long)apr_tensor_ne(gr, d));
        c->readable[i] = apr_tensor_is_contiguous(gr) ? gr : apr_cast(c->g, gr, APR_F32);
        apr_graph_output(c->g, c->readable[i]);
    }
    c->n_wrt += n;
    for (int j = 0; j < c->n_outs; j++) apr_graph_output(c->g, c->outs[j]);
    cr_assert_null(apr_graph_error(c->g), "%s: %s", c->name, apr_graph_error(c->g));
}

static void bk_plan(bk_case *c) {
    apr_error e;
    cr_assert_eq(apr_plan_new(c->g, &bk_ref, 1, &c->p, &e), APR_OK, "%s: %s", c->name, e.msg);
}

static void bk_run(bk_case *c) {
    apr_error e;
    for (int i = 0; i < c->n_in; i++)
        cr_assert_eq(apr_plan_set_input(c->p, c->in[i], c->in_data[i], c->in_bytes[i], &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_run(c->p, &e), APR_OK, "%s: %s", c->name, e.msg);
}

/* The f32 output t of the last run, malloc'd. */
static float *bk_read(bk_case *c, apr_tensor *t) {
    size_t n = (size_t)apr_tensor_nelements(t);
    float *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    apr_error e;
    cr_assert_eq(apr_plan_get_output(c->p, t, x, n * sizeof *x, &e), APR_OK, "%s", e.msg);
    return x;
}

/* sum over j of <outs[j], seeds[j]> in double, from the last run. */
static double bk_loss(bk_case *c) {
    double l = 0;
    for (int j = 0; j < c->n_outs; j++) {
        float *y = bk_read(c, c->outs[j]);
        const float *s = bk_data(c, c->seeds[j]);
        for (int64_t i = 0; i < apr_tensor_nelements(c->outs[j]); i++) l += (double)y[i] * s[i];
        free(y);
    }
    return l;
}

static int bk_wrt_index(const bk_case *c, const apr_tensor *t) {
    for (int i = 0; i < c->n_wrt; i++)
        if (c->wrt[i] == t) return i;
    cr_assert_fail("%s: %s is not a wrt", c->name, apr_tensor_name(t));
    return -1;
}

/* The gradient of wrt input t at the current inputs, malloc'd (runs the plan). */
static float *bk_grad_of(bk_case *c, apr_tensor *t) {
    int k = bk_wrt_index(c, t);
    cr_assert_not_null(c->grads[k], "%s: no gradient for %s", c->name, apr_tensor_name(t));
    bk_run(c);
    return bk_read(c, c->readable[k]);
}

/* The central difference of the loss along u at step h, from the f32 inputs x0 + h u and x0 - h u;
 * *ad gets the backward side along the same (rounded) step. */
static double bk_central(bk_case *c, float *x, const float *x0, const double *u, const float *grad, int64_t n,
                         double h, double *ad) {
    double l[2];
    *ad = 0;
    for (int side = 0; side < 2; side++) {
        const double step = side ? -h : h;
        for (int64_t i = 0; i < n; i++) x[i] = (float)(x0[i] + step * u[i]);
        bk_run(c);
        l[side] = bk_loss(c);
        for (int64_t i = 0; i < n; i++) *ad += (side ? -1.0 : 1.0) * (double)grad[i] * ((double)x[i] - x0[i]) / (2 * h);
    }
    memcpy(x, x0, (size_t)n * sizeof *x);
    return (l[0] - l[1]) / (2 * h);
}

/* Checks the gradient of the input t along BK_DIRS random directions against finite differences. */
static void bk_check(bk_case *c, apr_tensor *t) {
    const int64_t n = apr_tensor_nelements(t);
    float *grad = bk_grad_of(c, t);
    float *x = bk_data(c, t);
    float *x0 = malloc((size_t)n * sizeof *x0);
    double *u = malloc((size_t)n * sizeof *u);
    cr_assert(x0 && u);
    memcpy(x0, x, (size_t)n * sizeof *x0);
    double g2 = 0;
    for (int64_t i = 0; i < n; i++) g2 += (double)grad[i] * grad[i];
    double worst = 0;
    for (int dir = 0; dir < BK_DIRS; dir++) {
        for (int64_t i = 0; i < n; i++) u[i] = tu_rng_uniform(&c->rng, -sqrt(3.0), sqrt(3.0)); /* unit RMS */
        double ad1, ad2;
        const double d1 = bk_central(c, x, x0, u, grad, n, BK_H, &ad1);
        const double d2 = bk_central(c, x, x0, u, grad, n, BK_H / 2, &ad2);
        /* Richardson: the h^2 terms of the two cancel */
        const double fd = (4 * d2 - d1) / 3, ad = (4 * ad2 - ad1) / 3;
        const double bound = BK_TOL * (fabs(ad) + sqrt(g2)) + BK_ABS;
        const double err = fabs(fd - ad);
        if (err / bound > worst) worst = err / bound;
        cr_assert_leq(err, bound, "%s: d/d%s along direction %d: backward %.8g, finite differences %.8g (|g| %.4g; "
                      "APR_TEST_SEED=%llu)", c->name, apr_tensor_name(t), dir, ad, fd, sqrt(g2),
                      (unsigned long long)bk_seed);
    }
    cr_log_info("%s: d/d%s: |g| %.4g, worst error %.3f of the bound", c->name, apr_tensor_name(t), sqrt(g2), worst);
    free(x0);
    free(u);
    free(grad);
}

/* Every wrt that is an input is checked. */
static void bk_check_all(bk_case *c) {
    for (int i = 0; i < c->n_wrt; i++)
        if (bk_find_input(c, c->wrt[i]) >= 0 && apr_tensor_dtype(c->wrt[i]) == APR_F32) bk_check(c, c->wrt[i]);
}

/* The id a new tensor of g gets: names of unnamed tensors carry it ("t17"). */
static int bk_next_id(apr_graph *g) {
    apr_tensor *t = apr_input(g, APR_F32, 1, (int64_t[]){1}, NULL);
    cr_assert_not_null(t);
    int id = -1;
    cr_assert_eq(sscanf(apr_tensor_name(t), "t%d", &id), 1, "unnamed tensor called %s", apr_tensor_name(t));
    return id;
}

/* ---------------------------------------------------------------- building blocks */

/* y = (rms_norm(x) * gamma): gamma [D] repeats over the tokens. */
static apr_tensor *bk_norm(apr_graph *g, apr_tensor *x, apr_tensor *gamma) {
    return apr_mul(g, apr_rms_norm(g, x, 1e-5f), gamma);
}

typedef struct bk_attn_shape {
    int64_t dm, d, dv, h, hkv, t;
} bk_attn_shape;

/* The query, key or value heads of x [dm, T]: W x reshaped to [D, heads, T], rotated when p is
 * given, and permuted to [D, T, heads] (a strided view). */
static apr_tensor *bk_heads(apr_graph *g, apr_tensor *w, apr_tensor *x, int64_t d, int64_t heads, apr_tensor *pos,
                            apr_tensor *ff, const apr_rope_params *p) {
    apr_tensor *y = apr_matmul(g, w, x);
    apr_tensor *y3 = apr_reshape(g, y, 3, (int64_t[]){d, heads, apr_tensor_ne(x, 1)});
    if (p) y3 = apr_rope(g, y3, pos, ff, p);
    return apr_permute(g, y3, 0, 2, 1, 3);
}

/* Attention written out: scores = K^T Q per head (GQA through MATMUL's batch broadcast), softmax
 * with mask and causality, then V P, permuted back and made contiguous: [dv * h, T]. */
static apr_tensor *bk_softmax_attention(apr_graph *g, apr_tensor *q, apr_tensor *k, apr_tensor *v, apr_tensor *mask,
                                        float scale, const bk_attn_shape *s) {
    apr_tensor *scores = apr_matmul(g, k, q);                        /* [S, T, H] */
    apr_tensor *p = apr_softmax(g, scores, mask, scale, true);
    apr_tensor *o = apr_matmul(g, apr_transpose(g, v), p);           /* [Dv, T, H] */
    apr_tensor *oc = apr_cast(g, apr_permute(g, o, 0, 2, 1, 3), APR_F32); /* [Dv, H, T] contiguous */
    return apr_reshape(g, oc, 2, (int64_t[]){s->dv * s->h, s->t});
}

/* ---------------------------------------------------------------- gradients against finite differences */

Test(backward, matmul_chain_with_shared_weights) {
    bk_case c;
    bk_init(&c, "matmul chain");
    const int64_t K = 12, M = 5;
    apr_tensor *x = bk_in(&c, 2, (int64_t[]){K, M}, -1, 1, "x");
    apr_tensor *w = bk_in(&c, 2, (int64_t[]){K, K}, -0.4, 0.4, "w");
    apr_tensor *w2 = bk_in(&c, 2, (int64_t[]){K, 7}, -0.4, 0.4, "w2");
    /* w is read three times: twice in the chain, once as the weight of a batched matmul whose
     * batches [K, M, 2] repeat it (B2 % Bw2) */
    apr_tensor *h = apr_matmul(c.g, w, apr_matmul(c.g, w, x));
    apr_tensor *y = apr_matmul(c.g, w2, h);
    apr_tensor *xb = bk_in(&c, 3, (int64_t[]){K, 3, 2}, -1, 1, "xb");
    apr_tensor *wb = bk_in(&c, 3, (int64_t[]){K, 4, 1}, -0.5, 0.5, "wb");
    apr_tensor *yb = apr_matmul(c.g, wb, apr_matmul(c.g, w, xb));
    bk_out(&c, y);
    bk_out(&c, yb);
    bk_backward(&c, 5, (apr_tensor *[]){x, w, w2, xb, wb});
    bk_plan(&c);
    bk_check_all(&c);
    bk_free(&c);
}

Test(backward, broadcasting_add_and_mul) {
    bk_case c;
    bk_init(&c, "broadcast");
    apr_tensor *a = bk_in(&c, 4, (int64_t[]){6, 5, 4, 3}, -1, 1, "a");
    apr_tensor *b = bk_in(&c, 4, (int64_t[]){6, 1, 4, 1}, -1, 1, "b");
    apr_tensor *s = bk_in(&c, 2, (int64_t[]){1, 5}, -1, 1, "s");
    apr_tensor *one = bk_in(&c, 1, (int64_t[]){1}, -1, 1, "one");
    apr_tensor *ab = apr_add(c.g, a, b);
    apr_tensor *y = apr_mul(c.g, apr_mul(c.g, ab, s), ab);  /* ab read twice */
    y = apr_add(c.g, apr_scale(c.g, y, -0.75f), one);         /* a one-element repeat */
    y = apr_add(c.g, y, apr_mul(c.g, a, a));                  /* the same tensor as both operands */
    bk_out(&c, y);
    bk_backward(&c, 4, (apr_tensor *[]){a, b, s, one});
    bk_plan(&c);
    bk_check_all(&c);
    bk_free(&c);
}

/* Two residual layers of rms_norm, a swiglu MLP, then silu and gelu heads: two outs; checked on
 * backend be alone. APR_ERR_UNSUPPORTED (and err) when be declines a node. */
static apr_status bk_mlp(bk_case *c, apr_backend *be, apr_error *err) {
    const int64_t D = 16, F = 24, T = 5;
    apr_graph *g = c->g;
    apr_tensor *x = bk_in(c, 2, (int64_t[]){D, T}, -1, 1, "x");
    apr_tensor *wrt[16];
    int n = 0;
    wrt[n++] = x;
    apr_tensor *h = x;
    for (int l = 0; l < 2; l++) {
        static const char *const names[2][4] = {{"gamma0", "wg0", "wu0", "wd0"}, {"gamma1", "wg1", "wu1", "wd1"}};
        const char *const *nm = names[l];
        apr_tensor *gamma = bk_in(c, 1, (int64_t[]){D}, 0.5, 1.5, nm[0]);
        apr_tensor *wg = bk_in(c, 2, (int64_t[]){D, F}, -0.4, 0.4, nm[1]);
        apr_tensor *wu = bk_in(c, 2, (int64_t[]){D, F}, -0.4, 0.4, nm[2]);
        apr_tensor *wd = bk_in(c, 2, (int64_t[]){F, D}, -0.3, 0.3, nm[3]);
        apr_tensor *hn = bk_norm(g, h, gamma);
        apr_tensor *s = apr_swiglu(g, apr_matmul(g, wg, hn), apr_matmul(g, wu, hn));
        h = apr_add(g, h, apr_matmul(g, wd, s));
        wrt[n++] = gamma;
        wrt[n++] = wg;
        wrt[n++] = wu;
        wrt[n++] = wd;
    }
    bk_out(c, apr_silu(g, h));
    bk_out(c, apr_scale(g, apr_gelu(g, h), 0.5f));
    bk_backward(c, n, wrt);
    apr_status st = apr_plan_new(c->g, &be, 1, &c->p, err);
    if (st == APR_ERR_UNSUPPORTED) return st;
    cr_assert_eq(st, APR_OK, "%s: %s", c->name, err->msg);
    bk_check_all(c);
    return APR_OK;
}

Test(backward, mlp_with_swiglu_and_rms_norm) {
    bk_case c;
    bk_init(&c, "mlp");
    apr_error e;
    cr_assert_eq(bk_mlp(&c, bk_ref, &e), APR_OK, "%s", e.msg);
    bk_free(&c);
}

/* Fused attention and the same written out with softmax, both from rotated, permuted heads of one
 * input; GQA (6 query heads over 2 kv heads) and causality; the softmax one with a mask that is
 * differentiated too. */
Test(backward, attention_with_rope_gqa_and_causal_mask) {
    const bk_attn_shape s = {.dm = 16, .d = 8, .dv = 6, .h = 6, .hkv = 2, .t = 5};
    for (int fused = 1; fused >= 0; fused--) {
        bk_case c;
        bk_init(&c, fused ? "attention" : "softmax attention");
        apr_graph *g = c.g;
        apr_tensor *x = bk_in(&c, 2, (int64_t[]){s.dm, s.t}, -1, 1, "x");
        apr_tensor *wq = bk_in(&c, 2, (int64_t[]){s.dm, s.d * s.h}, -0.5, 0.5, "wq");
        apr_tensor *wk = bk_in(&c, 2, (int64_t[]){s.dm, s.d * s.hkv}, -0.5, 0.5, "wk");
        apr_tensor *wv = bk_in(&c, 2, (int64_t[]){s.dm, s.dv * s.hkv}, -0.5, 0.5, "wv");
        apr_tensor *wo = bk_in(&c, 2, (int64_t[]){s.dv * s.h, s.dm}, -0.4, 0.4, "wo");
        apr_tensor *mask = bk_in(&c, 2, (int64_t[]){s.t, s.t}, -1, 0, "mask");
        apr_tensor *pos = bk_ids(&c, (int)s.t, (int32_t[]){3, 4, 5, 6, 7}, "pos");
        const apr_rope_params rp = {.n_rot = 6, .layout = 0, .freq_base = 100.0f, .freq_scale = 1.0f};
        apr_tensor *q = bk_heads(g, wq, x, s.d, s.h, pos, NULL, &rp);
        apr_tensor *k = bk_heads(g, wk, x, s.d, s.hkv, pos, NULL, &rp);
        apr_tensor *v = bk_heads(g, wv, x, s.dv, s.hkv, NULL, NULL, NULL);
        const float scale = 1.0f / sqrtf((float)s.d);
        apr_tensor *o;
        if (fused) {
            o = apr_attention(g, q, k, v, mask, scale, true);
            o = apr_reshape(g, o, 2, (int64_t[]){s.dv * s.h, s.t});
        } else {
            o = bk_softmax_attention(g, q, k, v, mask, scale, &s);
        }
        bk_out(&c, apr_matmul(g, wo, o));
        if (fused) bk_backward(&c, 5, (apr_tensor *[]){x, wq, wk, wv, wo});
        else bk_backward(&c, 6, (apr_tensor *[]){x, wq, wk, wv, wo, mask});
        bk_plan(&c);
        bk_check_all(&c);
        bk_free(&c);
    }
}

/* A llama-like block: embedding rows, rms_norm, q with a bias, rope (split halves, frequency
 * factors), causal GQA attention, swiglu MLP, a tied output head, and the summed cross-entropy
 * over targets of which some are -1. The loss is the out, so its seed goes straight into
 * cross_entropy_grad. */
static void bk_llama(bk_case *c, apr_tensor **wrt, int *n_wrt) {
    const int64_t V = 20, T = 6, F = 20;
    const bk_attn_shape s = {.dm = 16, .d = 8, .dv = 8, .h = 4, .hkv = 2, .t = T};
    apr_graph *g = c->g;
    apr_tensor *emb = bk_in(c, 2, (int64_t[]){s.dm, V}, -1, 1, "emb");
    apr_tensor *ids = bk_ids(c, (int)T, (int32_t[]){3, 17, 3, 0, 19, 8}, "ids");
    apr_tensor *targets = bk_ids(c, (int)T, (int32_t[]){17, -1, 0, 19, -1, 5}, "targets");
    apr_tensor *pos = bk_ids(c, (int)T, (int32_t[]){0, 1, 2, 3, 4, 5}, "pos");
    apr_tensor *ff = bk_in(c, 1, (int64_t[]){3}, 1, 4, "freq factors");
    apr_tensor *g1 = bk_in(c, 1, (int64_t[]){s.dm}, 0.5, 1.5, "g1");
    apr_tensor *wq = bk_in(c, 2, (int64_t[]){s.dm, s.d * s.h}, -0.4, 0.4, "wq");
    apr_tensor *bq = bk_in(c, 1, (int64_t[]){s.d * s.h}, -0.2, 0.2, "bq");
    apr_tensor *wk = bk_in(c, 2, (int64_t[]){s.dm, s.d * s.hkv}, -0.4, 0.4, "wk");
    apr_tensor *wv = bk_in(c, 2, (int64_t[]){s.dm, s.dv * s.hkv}, -0.4, 0.4, "wv");
    apr_tensor *wo = bk_in(c, 2, (int64_t[]){s.dv * s.h, s.dm}, -0.3, 0.3, "wo");
    apr_tensor *g2 = bk_in(c, 1, (int64_t[]){s.dm}, 0.5, 1.5, "g2");
    apr_tensor *wg = bk_in(c, 2, (int64_t[]){s.dm, F}, -0.4, 0.4, "wg");
    apr_tensor *wu = bk_in(c, 2, (int64_t[]){s.dm, F}, -0.4, 0.4, "wu");
    apr_tensor *wd = bk_in(c, 2, (int64_t[]){F, s.dm}, -0.3, 0.3, "wd");
    apr_tensor *gf = bk_in(c, 1, (int64_t[]){s.dm}, 0.5, 1.5, "gf");
    const apr_rope_params rp = {.n_rot = 6, .layout = 1, .freq_base = 500.0f, .freq_scale = 0.5f};

    apr_tensor *x0 = apr_get_rows(g, emb, ids);
    apr_tensor *h = bk_norm(g, x0, g1);
    apr_tensor *q = apr_add(g, apr_matmul(g, wq, h), bq);
    q = apr_permute(g, apr_rope(g, apr_reshape(g, q, 3, (int64_t[]){s.d, s.h, T}), pos, ff, &rp), 0, 2, 1, 3);
    apr_tensor *k = bk_heads(g, wk, h, s.d, s.hkv, pos, ff, &rp);
    apr_tensor *v = bk_heads(g, wv, h, s.dv, s.hkv, NULL, NULL, NULL);
    apr_tensor *o = apr_attention(g, q, k, v, NULL, 1.0f / sqrtf((float)s.d), true);
    o = apr_reshape(g, o, 2, (int64_t[]){s.dv * s.h, T});
    apr_tensor *x1 = apr_add(g, x0, apr_matmul(g, wo, o));
    apr_tensor *h2 = bk_norm(g, x1, g2);
    apr_tensor *x2 = apr_add(g, x1, apr_matmul(g, wd, apr_swiglu(g, apr_matmul(g, wg, h2), apr_matmul(g, wu, h2))));
    apr_tensor *logits = apr_matmul(g, emb, bk_norm(g, x2, gf)); /* tied: emb is read twice */
    bk_out(c, apr_cross_entropy(g, logits, targets));
    apr_tensor *const list[] = {emb, g1, wq, bq, wk, wv, wo, g2, wg, wu, wd, gf};
    *n_wrt = (int)(sizeof list / sizeof list[0]);
    memcpy(wrt, list, sizeof list);
}

Test(backward, llama_block_with_cross_entropy) {
    bk_case c;
    bk_init(&c, "llama block");
    apr_tensor *wrt[16];
    int n;
    bk_llama(&c, wrt, &n);
    bk_backward(&c, n, wrt);
    bk_plan(&c);
    bk_check_all(&c);
    bk_free(&c);
}

/* Two layers; the gradient with respect to the first layer's output (an intermediate) equals that
 * of the second layer recomputed in a graph of its own from an input holding that output (what
 * gradient checkpointing does), which finite differences check there; the input upstream of that
 * wrt, a boundary, gets nothing through it. */
static apr_tensor *bk_layer(apr_graph *g, apr_tensor *x, apr_tensor *gamma, apr_tensor *w) {
    return apr_add(g, x, apr_silu(g, apr_matmul(g, w, bk_norm(g, x, gamma))));
}

Test(backward, gradient_with_respect_to_an_intermediate) {
    const int64_t D = 12, T = 4;
    bk_case a, b;
    bk_init(&a, "two layers");
    apr_tensor *x = bk_in(&a, 2, (int64_t[]){D, T}, -1, 1, "x");
    apr_tensor *ga = bk_in(&a, 1, (int64_t[]){D}, 0.5, 1.5, "gamma1");
    apr_tensor *wa = bk_in(&a, 2, (int64_t[]){D, D}, -0.5, 0.5, "w1");
    apr_tensor *gb = bk_in(&a, 1, (int64_t[]){D}, 0.5, 1.5, "gamma2");
    apr_tensor *wb = bk_in(&a, 2, (int64_t[]){D, D}, -0.5, 0.5, "w2");
    apr_tensor *h = bk_layer(a.g, x, ga, wa);
    bk_out(&a, bk_layer(a.g, h, gb, wb));
    bk_backward(&a, 3, (apr_tensor *[]){h, x, wb});
    apr_graph_output(a.g, h);
    bk_plan(&a);
    float *dh = bk_grad_of(&a, h);
    float *hv = bk_read(&a, h);
    /* h is a wrt, so a boundary: x, upstream of it, gets nothing through it */
    cr_expect_null(a.grads[1], "x got a gradient through the boundary h");

    bk_init(&b, "second layer alone");
    apr_tensor *hin = bk_in(&b, 2, (int64_t[]){D, T}, 0, 0, "h");
    apr_tensor *gb2 = bk_in(&b, 1, (int64_t[]){D}, 0, 0, "gamma2");
    apr_tensor *wb2 = bk_in(&b, 2, (int64_t[]){D, D}, 0, 0, "w2");
    memcpy(bk_data(&b, hin), hv, (size_t)(D * T) * sizeof(float));
    memcpy(bk_data(&b, gb2), bk_data(&a, gb), (size_t)D * sizeof(float));
    memcpy(bk_data(&b, wb2), bk_data(&a, wb), (size_t)(D * D) * sizeof(float));
    bk_out(&b, bk_layer(b.g, hin, gb2, wb2));
    memcpy(bk_data(&b, b.seeds[0]), bk_data(&a, a.seeds[0]), (size_t)(D * T) * sizeof(float));
    bk_backward(&b, 2, (apr_tensor *[]){hin, wb2});
    bk_plan(&b);
    float *dh2 = bk_grad_of(&b, hin);
    float *dw = bk_grad_of(&a, wb), *dw2 = bk_grad_of(&b, wb2);
    /* the same kernels on the same values: equal but for the order of accumulation */
    for (int64_t i = 0; i < D * T; i++)
        cr_assert_float_eq(dh[i], dh2[i], 1e-5f * (1 + fabsf(dh2[i])), "dh[%lld]: %g in the whole graph, %g recomputed",
                           (long long)i, (double)dh[i], (double)dh2[i]);
    for (int64_t i = 0; i < D * D; i++)
        cr_assert_float_eq(dw[i], dw2[i], 1e-5f * (1 + fabsf(dw2[i])), "dw2[%lld]: %g and %g", (long long)i,
                           (double)dw[i], (double)dw2[i]);
    bk_check(&b, hin);
    free(dh);
    free(hv);
    free(dh2);
    free(dw);
    free(dw2);
    bk_free(&a);
    bk_free(&b);
}

/* A frozen Q4_0 weight on the path: the gradient of what it multiplies flows through it. */
Test(backward, frozen_q4_0_weight_passes_gradients_on) {
    bk_case c;
    bk_init(&c, "frozen q4_0");
    const int64_t K = 64, N = 24, T = 3;
    apr_tensor *x = bk_in(&c, 2, (int64_t[]){K, T}, -1, 1, "x");
    apr_tensor *wq = bk_q4_0(&c, K, N, 0.3, "wq");
    apr_tensor *emb = bk_q4_0(&c, K, 10, 1.0, "emb q4_0");
    apr_tensor *ids = bk_ids(&c, (int)T, (int32_t[]){9, 2, 9}, "ids");
    apr_tensor *w2 = bk_in(&c, 2, (int64_t[]){N, 8}, -0.4, 0.4, "w2");
    apr_tensor *xe = apr_add(c.g, x, apr_get_rows(c.g, emb, ids)); /* a frozen quantized table too */
    bk_out(&c, apr_matmul(c.g, w2, apr_gelu(c.g, apr_matmul(c.g, wq, xe))));
    bk_backward(&c, 2, (apr_tensor *[]){x, w2});
    bk_plan(&c);
    bk_check_all(&c);
    bk_free(&c);
}

/* Permutes, reshapes, a contiguous copy and concat between the leaves and the outs: the gradient
 * goes back through each (the reshape of a strided gradient takes a contiguous copy first). */
Test(backward, through_permute_reshape_and_concat) {
    bk_case c;
    bk_init(&c, "views");
    apr_graph *g = c.g;
    apr_tensor *x = bk_in(&c, 3, (int64_t[]){4, 6, 5}, -1, 1, "x");
    apr_tensor *y = bk_in(&c, 3, (int64_t[]){4, 2, 5}, -1, 1, "y");
    apr_tensor *w = bk_in(&c, 2, (int64_t[]){5, 7}, -0.5, 0.5, "w");
    apr_tensor *w6 = bk_in(&c, 2, (int64_t[]){6, 3}, -0.5, 0.5, "w6");
    apr_tensor *w6b = bk_in(&c, 2, (int64_t[]){6, 3}, -0.5, 0.5, "w6b");
    apr_tensor *w24 = bk_in(&c, 2, (int64_t[]){24, 2}, -0.5, 0.5, "w24");
    /* concat, a permute made contiguous, reshape, matmul, reshape and transpose */
    apr_tensor *xy = apr_concat(g, x, y, 1);                                       /* [4, 8, 5] */
    apr_tensor *pc = apr_cast(g, apr_permute(g, xy, 1, 2, 0, 3), APR_F32);         /* [5, 4, 8] */
    apr_tensor *z = apr_matmul(g, w, apr_reshape(g, pc, 2, (int64_t[]){5, 32}));   /* [7, 32] */
    apr_tensor *zt = apr_transpose(g, apr_reshape(g, z, 3, (int64_t[]){7, 8, 4})); /* [8, 7, 4] strided */
    bk_out(&c, apr_silu(g, zt));
    /* x permuted into matmuls as strided activations, their results concatenated along dim 0 */
    apr_tensor *xt = apr_permute(g, x, 1, 0, 2, 3);                                /* [6, 4, 5] */
    bk_out(&c, apr_concat(g, apr_matmul(g, w6, xt), apr_matmul(g, w6b, xt), 0));   /* [6, 4, 5] */
    /* x reshaped in place */
    bk_out(&c, apr_matmul(g, w24, apr_reshape(g, x, 2, (int64_t[]){24, 5})));      /* [2, 5] */
    bk_backward(&c, 6, (apr_tensor *[]){x, y, w, w6, w6b, w24});
    bk_plan(&c);
    bk_check_all(&c);
    bk_free(&c);
}

/* The MLP above on a CPU plugin alone, where this machine runs it and its supports() takes every
 * node of the backward graph. */
static void bk_mlp_on(const char *backend) {
    apr_backend *be;
    apr_error e;
    if (apr_backend_open(bk_reg, backend, 2, &be, &e) != APR_OK) cr_skip_test("%s is not usable here: %s", backend, e.msg);
    bk_case c;
    bk_init(&c, backend);
    apr_status st = bk_mlp(&c, be, &e);
    bk_free(&c);
    apr_backend_close(be);
    if (st == APR_ERR_UNSUPPORTED) cr_skip_test("%s declines a node of the backward graph: %s", backend, e.msg);
}

Test(backward, mlp_on_cpu_avx2) { bk_mlp_on("cpu-avx2"); }
Test(backward, mlp_on_cpu_avx512) { bk_mlp_on("cpu-avx512"); }

/* ---------------------------------------------------------------- the nodes it adds */

/* Nodes apr_backward adds to c's graph for wrt; it must succeed. */
static int bk_count_added(bk_case *c, int n_wrt, apr_tensor *const *wrt, apr_tensor **grads) {
    const int before = bk_next_id(c->g);
    cr_assert(apr_backward(c->g, c->n_outs, c->outs, c->seeds, n_wrt, wrt, grads), "%s: %s", c->name,
              apr_graph_error(c->g));
    return bk_next_id(c->g) - before - 1;
}

Test(backward, adds_only_the_nodes_each_rule_needs) {
    const int64_t K = 8, M = 3;
    apr_tensor *gr[2];
    {   /* frozen weights: dX only, through silu: matmul_grad_x, silu_grad, matmul_grad_x */
        bk_case c;
        bk_init(&c, "frozen chain");
        apr_tensor *x = bk_in(&c, 2, (int64_t[]){K, M}, -1, 1, "x");
        apr_tensor *w1 = bk_in(&c, 2, (int64_t[]){K, K}, -1, 1, "w1"), *w2 = bk_in(&c, 2, (int64_t[]){K, K}, -1, 1, "w2");
        bk_out(&c, apr_matmul(c.g, w2, apr_silu(c.g, apr_matmul(c.g, w1, x))));
        cr_expect_eq(bk_count_added(&c, 1, &x, gr), 3);
        bk_free(&c);
    }
    {   /* one weight read twice: two dW summed by one add, and the dX between them */
        bk_case c;
        bk_init(&c, "shared weight");
        apr_tensor *x = bk_in(&c, 2, (int64_t[]){K, M}, -1, 1, "x");
        apr_tensor *w = bk_in(&c, 2, (int64_t[]){K, K}, -1, 1, "w");
        bk_out(&c, apr_matmul(c.g, w, apr_matmul(c.g, w, x)));
        cr_expect_eq(bk_count_added(&c, 1, &w, gr), 4);
        bk_free(&c);
    }
    {   /* the loss as the out: its seed goes straight into cross_entropy_grad, then dW */
        bk_case c;
        bk_init(&c, "cross-entropy out");
        apr_tensor *x = bk_in(&c, 2, (int64_t[]){K, M}, -1, 1, "x");
        apr_tensor *w = bk_in(&c, 2, (int64_t[]){K, 11}, -1, 1, "w");
        apr_tensor *targets = bk_ids(&c, (int)M, (int32_t[]){4, -1, 10}, "targets");
        bk_out(&c, apr_cross_entropy(c.g, apr_matmul(c.g, w, x), targets));
        cr_expect_eq(bk_count_added(&c, 1, &w, gr), 2);
        bk_free(&c);
    }
    {   /* add passes the gradient on unchanged: no node at all, both gradients are the seed */
        bk_case c;
        bk_init(&c, "add");
        apr_tensor *a = bk_in(&c, 2, (int64_t[]){K, M}, -1, 1, "a"), *b = bk_in(&c, 2, (int64_t[]){K, M}, -1, 1, "b");
        bk_out(&c, apr_add(c.g, a, b));
        cr_expect_eq(bk_count_added(&c, 2, (apr_tensor *[]){a, b}, gr), 0);
        cr_expect_eq(gr[0], c.seeds[0]);
        cr_expect_eq(gr[1], c.seeds[0]);
        bk_free(&c);
    }
}

Test(backward, grads_are_null_for_an_unrelated_wrt) {
    bk_case c;
    bk_init(&c, "unrelated");
    apr_tensor *x = bk_in(&c, 2, (int64_t[]){6, 2}, -1, 1, "x");
    apr_tensor *z = bk_in(&c, 2, (int64_t[]){6, 2}, -1, 1, "z");
    apr_tensor *ids = bk_ids(&c, 2, (int32_t[]){0, 1}, "ids");
    apr_tensor *later = apr_silu(c.g, z); /* made after the out's inputs, read by nothing */
    bk_out(&c, apr_silu(c.g, x));
    apr_tensor *gr[4] = {NULL, NULL, NULL, NULL};
    cr_assert(apr_backward(c.g, 1, c.outs, c.seeds, 4, (apr_tensor *[]){z, x, later, ids}, gr), "%s",
              apr_graph_error(c.g));
    cr_expect_null(gr[0]);
    cr_expect_not_null(gr[1]);
    cr_expect_null(gr[2]);
    cr_expect_null(gr[3]);
    cr_assert(apr_backward(c.g, 1, c.outs, c.seeds, 1, &z, gr), "%s", apr_graph_error(c.g));
    cr_expect_null(gr[0]);
    cr_expect_null(apr_graph_error(c.g));
    bk_free(&c);
}

/* ---------------------------------------------------------------- refusals */

/* apr_backward on c's outs with respect to wrt must fail with an error holding want (and the graph
 * keeps that error); every gradient is NULL. */
static void bk_refused(bk_case *c, int n_wrt, apr_tensor *const *wrt, const char *want) {
    apr_tensor *gr[BK_MAX];
    for (int i = 0; i < n_wrt; i++) gr[i] = (apr_tensor *)1; /* must be overwritten */
    cr_assert_not(apr_backward(c->g, c->n_outs, c->outs, c->seeds, n_wrt, wrt, gr), "%s: apr_backward succeeded",
                  c->name);
    const char *err = apr_graph_error(c->g);
    cr_assert_not_null(err, "%s: no error recorded", c->name);
    cr_assert(strstr(err, want), "%s: the error \"%s\" does not say \"%s\"", c->name, err, want);
    for (int i = 0; i < n_wrt; i++) cr_assert_null(gr[i], "%s: grads[%d] set", c->name, i);
}

Test(backward, refuses_a_slice_on_the_path) {
    bk_case c;
    bk_init(&c, "slice");
    apr_tensor *x = bk_in(&c, 2, (int64_t[]){8, 4}, -1, 1, "x");
    apr_tensor *s = apr_slice(c.g, x, 0, 2, 4);
    bk_out(&c, apr_silu(c.g, s));
    char want[128];
    snprintf(want, sizeof want, "cannot differentiate through slice %s", apr_tensor_name(s));
    bk_refused(&c, 1, &x, want);
    bk_free(&c);
}

Test(backward, refuses_argmax_on_the_path) {
    bk_case c;
    bk_init(&c, "argmax");
    apr_tensor *x = bk_in(&c, 2, (int64_t[]){5, 3}, -1, 1, "x");
    apr_tensor *table = bk_in(&c, 2, (int64_t[]){4, 5}, -1, 1, "table");
    apr_tensor *am = apr_argmax(c.g, x);
    bk_out(&c, apr_get_rows(c.g, table, am));
    apr_tensor *gr;
    /* off the path (only the table is differentiated) argmax is no obstacle */
    cr_assert(apr_backward(c.g, 1, c.outs, c.seeds, 1, &table, &gr), "%s", apr_graph_error(c.g));
    cr_assert_not_null(gr);
    char want[128];
    snprintf(want, sizeof want, "cannot differentiate through %s: argmax", apr_tensor_name(am));
    bk_refused(&c, 2, (apr_tensor *[]){table, x}, want);
    bk_free(&c);
}

Test(backward, refuses_a_quantized_weight_that_needs_a_gradient) {
    for (int via_rows = 0; via_rows < 2; via_rows++) {
        bk_case c;
        bk_init(&c, via_rows ? "quantized table" : "quantized weight");
        apr_tensor *x = bk_in(&c, 2, (int64_t[]){64, 3}, -1, 1, "x");
        apr_tensor *w = bk_q4_0(&c, 64, 8, 0.5, "wq4");
        if (via_rows) bk_out(&c, apr_add(c.g, x, apr_get_rows(c.g, w, bk_ids(&c, 3, (int32_t[]){7, 0, 7}, "ids"))));
        else bk_out(&c, apr_matmul(c.g, w, x));
        bk_refused(&c, 2, (apr_tensor *[]){x, w}, "cannot differentiate with respect to quantized weight wq4");
        bk_free(&c);
    }
}

Test(backward, refuses_what_has_no_rule) {
    {   /* a second derivative: the gradient graph itself as the out */
        bk_case c;
        bk_init(&c, "second derivative");
        apr_tensor *x = bk_in(&c, 1, (int64_t[]){8}, -1, 1, "x");
        bk_out(&c, apr_silu(c.g, x));
        apr_tensor *dx;
        cr_assert(apr_backward(c.g, 1, c.outs, c.seeds, 1, &x, &dx), "%s", apr_graph_error(c.g));
        c.outs[0] = dx;
        char want[128];
        snprintf(want, sizeof want, "cannot differentiate through %s", apr_tensor_name(dx));
        bk_refused(&c, 1, &x, want);
        bk_free(&c);
    }
    {   /* a gradient into an f16 tensor (gradients are f32) */
        bk_case c;
        bk_init(&c, "f16 source");
        apr_tensor *x = bk_in(&c, 1, (int64_t[]){8}, -1, 1, "x");
        apr_tensor *h = apr_cast(c.g, x, APR_F16);
        bk_out(&c, apr_cast(c.g, h, APR_F32));
        bk_refused(&c, 1, &x, "into its f16 source");
        bk_free(&c);
    }
    {   /* f32 into f16 is fine: the f16 out's f32 seed is x's gradient */
        bk_case c;
        bk_init(&c, "f16 out");
        apr_tensor *x = bk_in(&c, 1, (int64_t[]){8}, -1, 1, "x");
        bk_out(&c, apr_cast(c.g, x, APR_F16));
        apr_tensor *dx;
        cr_assert(apr_backward(c.g, 1, c.outs, c.seeds, 1, &x, &dx), "%s", apr_graph_error(c.g));
        cr_expect_eq(dx, c.seeds[0]);
        bk_free(&c);
    }
    {   /* an attention mask that depends on the wrt */
        bk_case c;
        bk_init(&c, "attention mask");
        apr_tensor *q = bk_in(&c, 3, (int64_t[]){4, 3, 2}, -1, 1, "q"), *k = bk_in(&c, 3, (int64_t[]){4, 3, 1}, -1, 1, "k");
        apr_tensor *v = bk_in(&c, 3, (int64_t[]){4, 3, 1}, -1, 1, "v"), *m = bk_in(&c, 2, (int64_t[]){3, 3}, -1, 0, "m");
        bk_out(&c, apr_attention(c.g, q, k, v, apr_scale(c.g, m, 2.0f), 0.5f, false));
        bk_refused(&c, 2, (apr_tensor *[]){q, m}, "with respect to its mask");
        bk_free(&c);
    }
    {   /* rope's frequency factors on the path */
        bk_case c;
        bk_init(&c, "rope factors");
        apr_tensor *x = bk_in(&c, 3, (int64_t[]){4, 2, 3}, -1, 1, "x"), *ff = bk_in(&c, 1, (int64_t[]){2}, 1, 2, "ff");
        const apr_rope_params rp = {4, 0, 10000.0f, 1.0f};
        bk_out(&c, apr_rope(c.g, x, bk_ids(&c, 3, (int32_t[]){0, 1, 2}, "pos"), ff, &rp));
        bk_refused(&c, 2, (apr_tensor *[]){x, ff}, "frequency factors ff");
        bk_free(&c);
    }
    {   /* an in-place write on the path */
        bk_case c;
        bk_init(&c, "set_rows");
        static float state[4 * 6];
        apr_tensor *table = apr_state(c.g, APR_F32, 2, (int64_t[]){4, 6}, state, "cache");
        apr_tensor *rows = bk_in(&c, 2, (int64_t[]){4, 2}, -1, 1, "rows");
        apr_tensor *sr = apr_set_rows(c.g, table, apr_silu(c.g, rows), bk_ids(&c, 2, (int32_t[]){1, 4}, "ids"));
        bk_out(&c, apr_scale(c.g, sr, 3.0f));
        char want[128];
        snprintf(want, sizeof want, "cannot differentiate through %s", apr_tensor_name(sr));
        bk_refused(&c, 1, &rows, want);
        bk_free(&c);
    }
}

Test(backward, refuses_bad_arguments_without_crashing) {
    apr_tensor *gr[2];
    cr_assert_not(apr_backward(NULL, 0, NULL, NULL, 0, NULL, NULL));
    struct { const char *what, *want; } cases[] = {
        {"no outs", "no outs"},           {"null out", "outs[0] is NULL"}, {"null seed", "seeds[0] is NULL"},
        {"null wrt", "wrt[0] is NULL"},   {"no grads", "no wrt or grads"}, {"seed shape", "must be f32 of its shape"},
        {"other graph", "not a tensor of this graph"}, {"i32 wrt", "i32 has no gradient"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        bk_case c, other;
        bk_init(&c, cases[k].what);
        bk_init(&other, "other");
        apr_tensor *x = bk_in(&c, 1, (int64_t[]){8}, -1, 1, "x");
        apr_tensor *ids = bk_ids(&c, 2, (int32_t[]){0, 1}, "ids");
        bk_out(&c, apr_silu(c.g, x));
        apr_tensor *outs[1] = {c.outs[0]}, *seeds[1] = {c.seeds[0]}, *wrt[1] = {x};
        apr_tensor **grads = gr;
        int n_outs = 1;
        switch (k) {
        case 0: n_outs = 0; break;
        case 1: outs[0] = NULL; break;
        case 2: seeds[0] = NULL; break;
        case 3: wrt[0] = NULL; break;
        case 4: grads = NULL; break;
        case 5: seeds[0] = bk_in(&c, 1, (int64_t[]){4}, -1, 1, "short seed"); break;
        case 6: wrt[0] = bk_in(&other, 1, (int64_t[]){8}, -1, 1, "stranger"); break;
        case 7: /* ids on the path (an i32 wrt off it gets NULL) */
            wrt[0] = ids;
            outs[0] = apr_get_rows(c.g, bk_in(&c, 2, (int64_t[]){8, 3}, -1, 1, "table"), ids);
            seeds[0] = bk_in(&c, 2, (int64_t[]){8, 2}, -1, 1, "rows seed");
            break;
        }
        gr[0] = (apr_tensor *)1;
        cr_assert_not(apr_backward(c.g, n_outs, outs, seeds, 1, wrt, grads), "%s: accepted", cases[k].what);
        const char *err = apr_graph_error(c.g);
        cr_assert(err && strstr(err, cases[k].want), "%s: error \"%s\"", cases[k].what, err ? err : "(none)");
        if (grads) cr_assert_null(gr[0], "%s", cases[k].what);
        bk_free(&c);
        bk_free(&other);
    }
    /* a failed constructor's NULL as the out: the graph's first error stands */
    bk_case c;
    bk_init(&c, "failed node");
    apr_tensor *x = bk_in(&c, 1, (int64_t[]){8}, -1, 1, "x");
    apr_tensor *bad = apr_matmul(c.g, x, bk_in(&c, 1, (int64_t[]){5}, -1, 1, "y"));
    cr_assert_null(bad);
    char first[512];
    snprintf(first, sizeof first, "%s", apr_graph_error(c.g));
    apr_tensor *seed = apr_input(c.g, APR_F32, 1, (int64_t[]){8}, "seed");
    gr[0] = (apr_tensor *)1;
    cr_assert_not(apr_backward(c.g, 1, &bad, &seed, 1, &x, gr));
    cr_assert_str_eq(apr_graph_error(c.g), first);
    cr_assert_null(gr[0]);
    bk_free(&c);
}

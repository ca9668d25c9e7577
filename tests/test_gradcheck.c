/* test_gradcheck.c — the conformance suite's gradient mode: every backend's ABI 5 ops against central finite differences of their forward ops on the same backend, and against the reference. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/parameterized.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr.h"
#include "util/tu_backend.h"
#include "util/tu_rand.h"
#include "util/tu_suite.h"
#include "util/tu_tally.h"
#include "util/tu_tensor.h"

/*
 * How it works. Each Criterion test is one (backend, op) for the ABI 5 ops. A gradient op's case
 * is a backward node (say RMS_NORM_GRAD(x, dY)) and the forward node it differentiates
 * (RMS_NORM(x)), with fresh random inputs and a random upstream gradient dY. The backward node
 * runs on the backend under test (tu_node_run: guard bytes around every buffer, dst NaN-poisoned,
 * sources that must come back unchanged), and its result is judged twice:
 *
 *   - against central finite differences of the forward op on the same backend: with
 *     L(x) = sum(dY * forward(x)) taken in double from the backend's f32 outputs, the directional
 *     derivative along v is (L(x + h v) - L(x - h v)) / 2h, computed as sum(dY * (y+ - y-)) / 2h
 *     so nothing cancels in double, with the step each element actually took after rounding to
 *     f32. Small inputs are checked element by element (v = e_j); larger ones along FD_DIRS random
 *     sign vectors; element-wise ops (silu, gelu) get every element's derivative from one pair of
 *     runs. The check is
 *
 *         |fd - g.v| <= rel * rms(g) * |v|  +  ulps * 2^-24 * sqrt(sum_i (dY_i * max|y+-_i|)^2) / h
 *
 *     where g is the backward op's result, rel covers the O(h^2) truncation (and, for rope, a
 *     kernel's own angle), and the second term the f32 rounding of the forward's outputs: a few
 *     ulps each, random between the two runs, and a change smaller than an output's ulp may not
 *     show at all (softmax's largest output when a tiny one moves), so every output counts. Both are
 *     chosen per op in fd_tolerances[] below. A wrong sign, a missing term, a transposed index or
 *     a dropped 1/N is an error of the order of the gradient itself, far above both.
 *   - against the reference: for a backend other than the reference, the same node on the
 *     reference, compared by normalised MSE with the limits in ref_tolerances[] (and NaN / inf
 *     agreement), as test_conformance.c does for the forward ops.
 *
 * Every result must also be finite, and exactly zero where the definition says so (a key every
 * query masks, a query that sees no key, an ignored target's column, a table row no id names, a
 * softmax position the forward hid). SGD and ACC are checked element by element against the step
 * computed in double on the host, written in place with the in-place discipline of tu_node_run;
 * CROSS_ENTROPY against its sum computed in double. The errors test checks that bad ids and bad
 * targets are APR_ERR_INVALID from compute(), and that supports() declines malformed nodes with a
 * reason.
 *
 * Backends: the reference (self-checked: finite differences, zeros, finiteness), then every other
 * usable backend that supports at least one ABI 5 op (asked with one small node per op); a case
 * a backend declines is reported as unsupported and never counted as passed, and a backend that
 * supports none of the ops gets one test (gradcheck/no_gradient_ops) that says so.
 *
 * Replaying a failure: every failure line prints the run's seed; APR_TEST_SEED=<seed> reruns
 * exactly the same inputs. APR_TEST_THREADS sets the worker count of the backends under test
 * (default 3). --filter 'gradcheck/rms_norm_grad' runs one op.
 */

/* ---------------------------------------------------------------- tolerances
 *
 * Finite differences. h is the step as a fraction of the perturbed input's scale: the half-width
 * of its values, except 1 for silu and gelu (whose curvature lives on the unit scale), 1/scale
 * for softmax's x (z = scale x) and the smallest row rms for rms_norm; rel and ulps enter the
 * bound above.
 */
typedef struct fd_tol {
    uint32_t op;
    double h;
    double rel;
    double ulps;
    const char *why;
} fd_tol;

static const fd_tol fd_tolerances[] = {
    {APR_OP_MATMUL_GRAD_X, 0.125, 1e-4, 32,
     "linear in X (no truncation); X on the 2^-7 grid with +-127*2^-7 in every 32-block, so a forward that rounds X to "
     "f16, bf16 or 8-bit blocks rounds exactly: f32 accumulation noise only"},
    {APR_OP_MATMUL_GRAD_W, 0.5, 1e-4, 32, "linear in W (f32, never rounded): a step as large as the values, f32 accumulation noise only"},
    {APR_OP_GET_ROWS_GRAD, 0.5, 1e-5, 32, "a copy is linear and exact: only the f32 rounding of the gradient's sums"},
    {APR_OP_SUM_REPEATS, 0.5, 1e-5, 32, "ADD is linear in b; each output rounds once (the ulps term)"},
    {APR_OP_RMS_NORM_GRAD, 5e-3, 1e-3, 32,
     "scale = the smallest row's sqrt(mean(x^2) + eps), on which it bends: truncation ~h^2 = 2.5e-5 of the gradient"},
    {APR_OP_ROPE_GRAD, 0.5, 1e-3, 32,
     "linear in x; an f32 kernel's angle is off by up to pos*eps = 2.4e-4 rad at position 4096, in its forward and "
     "backward alike but not bit for bit"},
    {APR_OP_SOFTMAX_GRAD, 5e-3, 1e-3, 32, "a z step of 5e-3: truncation ~z_h^2 = 2.5e-5 of the gradient; exp to a few ulps"},
    {APR_OP_SILU_GRAD, 1e-2, 1e-3, 32, "|silu'''| < 0.5: truncation h^2/12 = 1e-5; ulps term dominates only for |x| near 100"},
    {APR_OP_GELU_GRAD, 1e-2, 1e-3, 32,
     "gelu'''/gelu' grows like x^2 in the tails (lone elements stay in +-2): truncation h^2 x^2/6 < 1e-4 of the gradient's rms"},
    {APR_OP_ATTENTION_GRAD, 5e-3, 2e-3, 32,
     "q, k in +-2 move by 0.01 (v in +-1 by 0.005): truncation ~1.5e-4 of the gradient (measured worst at twice the step: 6e-4)"},
    {APR_OP_CROSS_ENTROPY_GRAD, 5e-3, 1e-3, 32,
     "logits in +-4, a step of 0.02: truncation ~h^2/6 = 7e-5 of the gradient; one f32 output summing T losses (ulps term)"},
};

static const fd_tol *fd_tol_of(uint32_t op) {
    for (size_t i = 0; i < sizeof fd_tolerances / sizeof fd_tolerances[0]; i++)
        if (fd_tolerances[i].op == op) return &fd_tolerances[i];
    cr_assert_fail("no finite-difference tolerance for op %u (add a row to fd_tolerances[])", (unsigned)op);
    return NULL;
}

/* Against the reference: the largest sum((got - want)^2) / sum(want^2) per op and regime, as
 * test_conformance.c's tolerances[]; "" = every case of the op. A single wrong element of the
 * order of the values gives more than 1e-4 in these cases of at most a few thousand outputs. */
typedef struct ref_tol {
    uint32_t op;
    const char *key;
    double max_nmse;
    const char *why;
} ref_tol;

static const ref_tol ref_tolerances[] = {
    {APR_OP_MATMUL_GRAD_X, "", 1e-7, "W exact (its dtype's values), dY not rounded: f32 accumulation in any order against double"},
    {APR_OP_MATMUL_GRAD_X, "long", 1e-6, "sums of >= 2048 products: f32 rounding grows with their length"},
    {APR_OP_MATMUL_GRAD_W, "", 1e-7, "f32 accumulation over M and the batches a weight serves"},
    {APR_OP_MATMUL_GRAD_W, "long", 1e-6, "sums of >= 2048 products"},
    {APR_OP_GET_ROWS_GRAD, "", 1e-10, "sums of a few f32 rows in any order: ulps of each"},
    {APR_OP_SUM_REPEATS, "", 1e-7, "f32 sums of up to a few thousand values in any order"},
    {APR_OP_RMS_NORM_GRAD, "", 1e-6, "two row reductions and dY - y*mean(dY y), which cancels"},
    {APR_OP_ROPE_GRAD, "", 1e-6, "positions up to 4096: an f32 angle is off by ~pos*eps = 2.4e-4 rad (as ROPE's)"},
    {APR_OP_SOFTMAX_GRAD, "", 1e-6,
     "a row reduction and dY - sum(y dY), which cancels as a row nears one-hot: z = scale x stays within +-3 (with the mask's "
     "offsets, 1 - max y > 3e-4), so the f32 error stays below ~2e-4 of each value"},
    {APR_OP_SILU_GRAD, "", 1e-6, "vectorised exp approximations (as SILU's)"},
    {APR_OP_GELU_GRAD, "", 1e-6, "tanh through a vectorised exp (as GELU's)"},
    {APR_OP_ATTENTION_GRAD, "f32", 1e-5,
     "the softmax recomputed with a vectorised exp, ds = p (dp - sum p dp) cancels, dK/dV summed over queries in f32"},
    {APR_OP_ATTENTION_GRAD, "f16", 5e-5, "admits kernels that round q, dO or partial sums to f16 to use f16 k/v"},
    {APR_OP_CROSS_ENTROPY, "", 1e-10, "a sum of logsumexps (each ~log V) in f32 with a vectorised exp: ~1e-7 relative"},
    {APR_OP_CROSS_ENTROPY_GRAD, "", 1e-6, "softmax with a vectorised exp, minus 1 at the target"},
    {APR_OP_ACC, "", 0, "unused: one IEEE addition per element, checked bit for bit against the host"},
    {APR_OP_SGD, "", 0, "unused: checked element by element against the step in double (sgd_host_check)"},
};

static const ref_tol *ref_tol_of(uint32_t op, const char *key) {
    for (size_t i = 0; i < sizeof ref_tolerances / sizeof ref_tolerances[0]; i++)
        if (ref_tolerances[i].op == op && !strcmp(ref_tolerances[i].key, key)) return &ref_tolerances[i];
    for (size_t i = 0; i < sizeof ref_tolerances / sizeof ref_tolerances[0]; i++)
        if (ref_tolerances[i].op == op && !ref_tolerances[i].key[0]) return &ref_tolerances[i];
    cr_assert_fail("no reference tolerance for op %u key '%s' (add a row to ref_tolerances[])", (unsigned)op, key);
    return NULL;
}

#define FD_MAX_ELEMS 48 /* inputs of at most this many elements are checked element by element */
#define FD_DIRS 3       /* random sign directions for larger ones */
#define F32_U 0x1p-24   /* unit roundoff of f32 */

/* ---------------------------------------------------------------- nodes */

/* out: a copy of src's elements in layout lay (a block type keeps src's layout: its rows are dense). */
static tu_tensor *clone_to(tu_tensor *out, const tu_tensor *src, tu_layout lay) {
    if (tu_dtype_is_block(src->dtype)) {
        tu_tensor_init_like(out, src);
        memcpy(out->data, src->data, src->size);
        return out;
    }
    tu_tensor_init(out, src->dtype, src->ne, lay);
    size_t es = tu_dtype_size(src->dtype);
    int64_t i[APR_MAX_DIMS];
    for (int64_t k = 0; k < tu_tensor_nelements(src); k++) {
        tu_tensor_index(src, k, i);
        memcpy(out->data + tu_tensor_byte(out, i), src->data + tu_tensor_byte(src, i), es);
    }
    return out;
}

/* The desc supports() sees for n (shapes, strides and dtypes over a size-0 placeholder buffer),
 * as tu_node_run builds it; for asking without running. */
static apr_status ask_supports(const tu_backend *b, const tu_node *n, char *why, size_t why_size) {
    apr_node_desc nd;
    memset(&nd, 0, sizeof nd);
    nd.struct_size = sizeof nd;
    nd.op = n->op;
    nd.n_src = n->n_src;
    memcpy(nd.iparams, n->iparams, sizeof nd.iparams);
    memcpy(nd.fparams, n->fparams, sizeof nd.fparams);
    nd.name = n->name;
    static const apr_buffer placeholder = {.struct_size = sizeof placeholder};
    for (int i = 0; i <= TU_MAX_SRC; i++) {
        apr_tensor_desc *d = i == TU_MAX_SRC ? &nd.dst : i < APR_MAX_SRC ? &nd.src[i] : &nd.src_ext[i - APR_MAX_SRC];
        const tu_tensor *t = i == TU_MAX_SRC ? &n->dst : &n->src[i];
        d->struct_size = sizeof *d;
        d->dtype = APR_F32;
        for (int k = 0; k < APR_MAX_DIMS; k++) d->ne[k] = 1, d->nb[k] = 4;
        if (i < TU_MAX_SRC && (i >= (int)n->n_src || !t->present)) continue; /* absent: no buffer */
        d->dtype = t->dtype;
        for (int k = 0; k < APR_MAX_DIMS; k++) d->ne[k] = t->ne[k], d->nb[k] = t->nb[k];
        d->buffer = &placeholder;
        d->offset = t->offset;
    }
    if (n->in_place) nd.dst = nd.src[0];
    why[0] = 0;
    return b->api->supports(b->inst, &nd, why, why_size);
}

/* ---------------------------------------------------------------- small well-formed nodes
 *
 * One node per ABI 5 op in small shapes: what decides whether a backend supports an op at all
 * (gc_probe), and the well-formed baseline of the errors test's malformed nodes. */
#define N_GRAD_OPS (APR_OP_COUNT_V5 - APR_OP_COUNT_V4)

static void small_node(uint32_t op, tu_node *n) {
    tu_rng rng;
    tu_rng_init(&rng, 0x9e3779b9u + op);
    switch (op) {
    case APR_OP_MATMUL_GRAD_X:
        tu_node_init(n, op, 2);
        tu_fill_uniform(tu_node_src(n, 0, APR_F32, 8, 4, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_fill_uniform(tu_node_src(n, 1, APR_F32, 4, 3, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_node_dst(n, APR_F32, 8, 3, 1, 1, TU_CONTIG);
        break;
    case APR_OP_MATMUL_GRAD_W:
        tu_node_init(n, op, 2);
        tu_fill_uniform(tu_node_src(n, 0, APR_F32, 8, 3, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_fill_uniform(tu_node_src(n, 1, APR_F32, 4, 3, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_node_dst(n, APR_F32, 8, 4, 1, 1, TU_CONTIG);
        break;
    case APR_OP_GET_ROWS_GRAD:
        tu_node_init(n, op, 2);
        tu_fill_uniform(tu_node_src(n, 0, APR_F32, 8, 3, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_fill_int(tu_node_src(n, 1, APR_I32, 3, 1, 1, 1, TU_CONTIG), &rng, 0, 4);
        tu_node_dst(n, APR_F32, 8, 5, 1, 1, TU_CONTIG);
        break;
    case APR_OP_SUM_REPEATS:
        tu_node_init(n, op, 1);
        tu_fill_uniform(tu_node_src(n, 0, APR_F32, 8, 4, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_node_dst(n, APR_F32, 8, 1, 1, 1, TU_CONTIG);
        break;
    case APR_OP_RMS_NORM_GRAD: case APR_OP_SOFTMAX_GRAD: case APR_OP_SILU_GRAD: case APR_OP_GELU_GRAD:
        tu_node_init(n, op, 2);
        tu_fill_uniform(tu_node_src(n, 0, APR_F32, 8, 3, 1, 1, TU_CONTIG), &rng, op == APR_OP_SOFTMAX_GRAD ? 0 : -1, 1);
        tu_fill_uniform(tu_node_src(n, 1, APR_F32, 8, 3, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_node_dst(n, APR_F32, 8, 3, 1, 1, TU_CONTIG);
        n->fparams[0] = op == APR_OP_RMS_NORM_GRAD ? 1e-5f : 1.0f;
        break;
    case APR_OP_ROPE_GRAD:
        tu_node_init(n, op, 2);
        tu_fill_uniform(tu_node_src(n, 0, APR_F32, 8, 2, 3, 1, TU_CONTIG), &rng, -1, 1);
        tu_fill_int(tu_node_src(n, 1, APR_I32, 3, 1, 1, 1, TU_CONTIG), &rng, 0, 100);
        tu_node_dst(n, APR_F32, 8, 2, 3, 1, TU_CONTIG);
        n->iparams[0] = 8;
        n->fparams[0] = 10000.0f;
        n->fparams[1] = 1.0f;
        break;
    case APR_OP_ATTENTION_GRAD:
        tu_node_init(n, op, 5);
        tu_fill_uniform(tu_node_src(n, 0, APR_F32, 8, 3, 2, 1, TU_CONTIG), &rng, -1, 1);
        tu_fill_uniform(tu_node_src(n, 1, APR_F32, 8, 4, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_fill_uniform(tu_node_src(n, 2, APR_F32, 8, 4, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_fill_uniform(tu_node_src(n, 4, APR_F32, 8, 2, 3, 1, TU_CONTIG), &rng, -1, 1);
        tu_node_dst(n, APR_F32, 8 * 3 * 2 + 8 * 4 + 8 * 4, 1, 1, 1, TU_CONTIG);
        n->fparams[0] = 0.35f;
        break;
    case APR_OP_CROSS_ENTROPY: case APR_OP_CROSS_ENTROPY_GRAD:
        tu_node_init(n, op, op == APR_OP_CROSS_ENTROPY ? 2 : 3);
        tu_fill_uniform(tu_node_src(n, 0, APR_F32, 8, 3, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_fill_int(tu_node_src(n, 1, APR_I32, 3, 1, 1, 1, TU_CONTIG), &rng, 0, 7);
        if (op == APR_OP_CROSS_ENTROPY) tu_node_dst(n, APR_F32, 1, 1, 1, 1, TU_CONTIG);
        else {
            tu_fill_uniform(tu_node_src(n, 2, APR_F32, 1, 1, 1, 1, TU_CONTIG), &rng, 0.5, 1);
            tu_node_dst(n, APR_F32, 8, 3, 1, 1, TU_CONTIG);
        }
        break;
    case APR_OP_SGD:
        tu_node_init(n, op, 4);
        n->in_place = true;
        n->written = 1u << 2;
        for (int i = 0; i < 3; i++) tu_fill_uniform(tu_node_src(n, i, APR_F32, 8, 3, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_fill_uniform(tu_node_src(n, 3, APR_F32, APR_SGD_HP_COUNT, 1, 1, 1, TU_CONTIG), &rng, 0, 0.5);
        tu_tensor_init_like(&n->dst, &n->src[0]);
        break;
    case APR_OP_ACC:
        tu_node_init(n, op, 2);
        n->in_place = true;
        for (int i = 0; i < 2; i++) tu_fill_uniform(tu_node_src(n, i, APR_F32, 8, 3, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_tensor_init_like(&n->dst, &n->src[0]);
        break;
    default: cr_assert_fail("no small node for op %u", (unsigned)op);
    }
    tu_node_name(n, "small");
}

/* ---------------------------------------------------------------- which backends */

/* Which usable backends support which ABI 5 ops, asked once per process with small_node's nodes
 * (supports() only; nothing runs). */
static struct {
    bool done;
    int n;
    char name[TU_MAX_BACKENDS][64];
    int supported[TU_MAX_BACKENDS];           /* how many of the N_GRAD_OPS */
    char reason[TU_MAX_BACKENDS][200];        /* one decline, for the message */
    char rejected[240];                       /* plugins that are not usable here, and why */
} probe;

static void gc_probe(void) {
    if (probe.done) return;
    probe.done = true;
    tu_backend_list list;
    tu_backend_list_scan(&list);
    snprintf(probe.rejected, sizeof probe.rejected, "%s", list.rejected);
    apr_registry *reg = NULL;
    apr_error e;
    if (!list.n || apr_registry_open(NULL, &reg, &e) != APR_OK) return;
    for (int i = 0; i < list.n; i++) {
        tu_backend b;
        char err[256];
        if (!tu_backend_open(reg, list.name[i], 1, &b, err, sizeof err)) continue;
        int k = probe.n++;
        snprintf(probe.name[k], sizeof probe.name[k], "%s", list.name[i]);
        for (uint32_t op = APR_OP_COUNT_V4; op < APR_OP_COUNT_V5; op++) {
            tu_node n;
            small_node(op, &n);
            char why[256];
            if (ask_supports(&b, &n, why, sizeof why) == APR_OK) probe.supported[k]++;
            else if (!probe.reason[k][0]) snprintf(probe.reason[k], sizeof probe.reason[k], "%.190s", why[0] ? why : "no reason given");
            tu_node_free(&n);
        }
        tu_backend_close(&b);
    }
    apr_registry_close(reg);
}

/* The reference, then every other usable backend that supports some ABI 5 op; a placeholder
 * that says why when there is none. */
static struct criterion_test_params gc_params_ops(void) {
    static tu_backend_param params[TU_MAX_BACKENDS + 1];
    memset(params, 0, sizeof params);
    gc_probe();
    size_t n = 0;
    snprintf(params[n++].backend, sizeof params[0].backend, "%s", TU_REFERENCE);
    for (int i = 0; i < probe.n; i++)
        if (probe.supported[i]) snprintf(params[n++].backend, sizeof params[0].backend, "%s", probe.name[i]);
    if (n == 1) {
        char list[300] = "";
        for (int i = 0; i < probe.n; i++) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s supports none", len ? ", " : "", probe.name[i]);
        }
        snprintf(params[n++].note, sizeof params[0].note, "%.150s%s%.230s", list[0] ? list : "no other plugin is usable",
                 probe.rejected[0] ? "; not usable: " : "", probe.rejected);
    }
    return cr_make_param_array(tu_backend_param, params, n);
}

/* Every usable backend that supports none of the ABI 5 ops, each with the first reason it gave;
 * one placeholder when there is none. */
static struct criterion_test_params gc_params_none(void) {
    static tu_backend_param params[TU_MAX_BACKENDS];
    memset(params, 0, sizeof params);
    gc_probe();
    size_t n = 0;
    for (int i = 0; i < probe.n; i++)
        if (!probe.supported[i]) {
            snprintf(params[n].backend, sizeof params[0].backend, "%s", probe.name[i]);
            snprintf(params[n].note, sizeof params[0].note, "%s", probe.reason[i]);
            n++;
        }
    if (!n) n = 1; /* params[0] stays the empty placeholder */
    return cr_make_param_array(tu_backend_param, params, n);
}

/* ---------------------------------------------------------------- tally across test processes */

static const tu_tally tally = {.env = "APR_GRADCHECK_TALLY", .tag = "gradcheck", .prefix = "gradcheck "};
ReportHook(PRE_ALL)(struct criterion_test_set *set) { (void)set; tu_tally_start(&tally); }
ReportHook(POST_ALL)(struct criterion_global_stats *stats) { (void)stats; tu_tally_finish(&tally); }

/* ---------------------------------------------------------------- one test's run */

typedef struct gc_run {
    tu_suite_run run;       /* op, oracle and backend under test, seed, case counts */
    bool noted_fwd;         /* the note that the forward ran on the reference was printed */
    double worst_fd, worst_nmse;
    char worst_fd_case[640], worst_nmse_case[640];
} gc_run;

/* ---------------------------------------------------------------- gradient cases */

/* A source of the forward op that a case differentiates with respect to. */
typedef struct gc_wrt {
    int src;         /* fwd.src index */
    const char *name;
    double scale;    /* the step is the tolerance's h times this */
    bool packed;     /* the gradient lies in bwd's dst vector from element base on (ATTENTION_GRAD), in
                        the source's shape, contiguous; otherwise bwd's dst has the source's shape */
    int64_t base;
    bool grid;       /* MATMUL_GRAD_X's X on the 2^-7 grid: the anchors (|x| = 127/128) stay put */
} gc_wrt;

typedef struct gc_case {
    tu_node bwd;     /* the node under test */
    tu_node fwd;     /* the forward op it differentiates, with copies of the shared inputs */
    int dy_src;      /* bwd's source that is the upstream gradient, in the shape of fwd's dst */
    int n_wrt;
    gc_wrt wrt[3];
    bool pointwise;  /* output i depends on input i only (silu, gelu) */
    char key[16];    /* the ref_tolerances[] row */
} gc_case;

static void case_init(gc_case *c) { memset(c, 0, sizeof *c); }

static void case_free(gc_case *c) {
    tu_node_free(&c->bwd);
    tu_node_free(&c->fwd);
}

static gc_wrt *add_wrt(gc_case *c, int src, const char *name, double scale) {
    gc_wrt *w = &c->wrt[c->n_wrt++];
    w->src = src;
    w->name = name;
    w->scale = scale;
    return w;
}

/* The gradient of w's source inside the backward result out (bwd's dst storage), as a tensor
 * whose index i is the source's element i. Borrows out: never freed. */
static tu_tensor grad_view(const gc_case *c, const gc_wrt *w, unsigned char *out) {
    const tu_tensor *x = &c->fwd.src[w->src], *dst = &c->bwd.dst;
    tu_tensor g = *dst;
    g.data = out;
    if (!w->packed) return g;
    for (int d = 0; d < APR_MAX_DIMS; d++) g.ne[d] = x->ne[d];
    g.nb[0] = dst->nb[0];
    for (int d = 1; d < APR_MAX_DIMS; d++) g.nb[d] = g.nb[d - 1] * x->ne[d - 1];
    g.offset = dst->offset + (uint64_t)(w->base * dst->nb[0]);
    return g;
}

/* Whether element i of w's source takes part in finite differences: finite (the NaN rows of keys
 * no query sees are never read) and, on the grid, not an anchor. */
static bool fd_movable(const gc_wrt *w, const tu_tensor *x, const int64_t i[APR_MAX_DIMS]) {
    float v = tu_getf(x, i[0], i[1], i[2], i[3]);
    return isfinite(v) && !(w->grid && fabsf(v) == 127.0f / 128.0f);
}

/* The forward at x + h v and at x - h v (each element rounded to f32 as stored), on fb. */
typedef struct fd_pair {
    double diff;   /* sum_i dY_i (y+_i - y-_i), each difference exact in double */
    double noise2; /* sum_i (dY_i max(|y+_i|, |y-_i|))^2: an output that did not change may hide a change below its ulp */
    double *step;  /* [n]: (x+ - x) + (x - x-) per element: 2 h v up to the rounding of x +- h v */
    unsigned char *yp, *ym;
} fd_pair;

static tu_outcome fd_run_pair(gc_case *c, const gc_wrt *w, const tu_backend *fb, const double *v, double h, fd_pair *p,
                              char *msg, size_t msg_size) {
    tu_tensor *x = &c->fwd.src[w->src];
    const tu_tensor *dy = &c->bwd.src[c->dy_src], *y = &c->fwd.dst;
    int64_t n = tu_tensor_nelements(x), i[APR_MAX_DIMS];
    unsigned char *saved = malloc(x->size);
    cr_assert(saved, "out of memory");
    memcpy(saved, x->data, x->size);
    for (int64_t k = 0; k < n; k++) p->step[k] = 0.0;
    tu_outcome o = TU_RAN;
    for (int s = 0; s < 2 && o == TU_RAN; s++) {
        const double sign = s ? -1.0 : 1.0;
        for (int64_t k = 0; k < n; k++) {
            if (v[k] == 0.0) continue;
            tu_tensor_index(x, k, i);
            double x0 = tu_getf(x, i[0], i[1], i[2], i[3]);
            tu_setf(x, i[0], i[1], i[2], i[3], (float)(x0 + sign * h * v[k]));
            p->step[k] += sign * ((double)tu_getf(x, i[0], i[1], i[2], i[3]) - x0);
        }
        o = tu_node_run(fb, &c->fwd, APR_OK, s ? p->ym : p->yp, msg, msg_size);
        memcpy(x->data, saved, x->size);
    }
    free(saved);
    if (o != TU_RAN) return o;
    p->diff = p->noise2 = 0.0;
    for (int64_t k = 0; k < tu_tensor_nelements(y); k++) {
        tu_tensor_index(y, k, i);
        const uint64_t off = tu_tensor_byte(y, i);
        double a = tu_load_f(APR_F32, p->yp + off), b = tu_load_f(APR_F32, p->ym + off);
        double g = tu_getf(dy, i[0], i[1], i[2], i[3]);
        p->diff += g * (a - b);
        p->noise2 += g * g * fmax(a * a, b * b);
    }
    return TU_RAN;
}

/* Compares fd and an (both already divided by 2h) against the bound; true when within. */
static bool fd_within(gc_run *r, const fd_tol *t, double fd, double an, double rms, double vnorm, double noise2, double h,
                      const char *text, const char *what) {
    double bound = t->rel * rms * vnorm + t->ulps * F32_U * sqrt(noise2) / h + 1e-30;
    double err = fabs(fd - an);
    if (!(err <= bound)) {
        tu_suite_fail(&r->run, text, "d/d%s: finite difference %.9g, backward op %.9g: |diff| %.3g > bound %.3g "
                    "(rel %.3g * rms(grad) %.3g * |v| %.3g + forward rounding %.3g)", what, fd, an, err, bound, t->rel, rms,
                    vnorm, t->ulps * F32_U * sqrt(noise2) / h);
        return false;
    }
    if (err / bound > r->worst_fd) {
        r->worst_fd = err / bound;
        snprintf(r->worst_fd_case, sizeof r->worst_fd_case, "%s d/d%s (|diff| %.3g; rel term %.3g, rounding term %.3g)", text,
                 what, err, t->rel * rms * vnorm, t->ulps * F32_U * sqrt(noise2) / h);
    }
    return true;
}

/* Picks the backend the forward runs on for finite differences: the one under test, or the
 * reference when it declines the forward node (said once per test). */
static const tu_backend *fd_backend(gc_run *r, gc_case *c) {
    if (r->run.self_check) return &r->run.ref;
    char why[512];
    if (ask_supports(&r->run.test, &c->fwd, why, sizeof why) == APR_OK) return &r->run.test;
    if (!r->noted_fwd) {
        fprintf(stderr, "note: %s declines the forward %s (%s): its finite differences use the reference's forward\n",
                r->run.test.name, tu_op_name(c->fwd.op), why);
        r->noted_fwd = true;
    }
    return &r->run.ref;
}

/* The backward result `out` against finite differences of the forward, for every source in wrt. */
static bool fd_check(gc_run *r, gc_case *c, unsigned char *out, const char *text) {
    const fd_tol *t = fd_tol_of(c->bwd.op);
    const tu_backend *fb = fd_backend(r, c);
    bool ok = true;
    for (int wi = 0; wi < c->n_wrt && ok; wi++) {
        const gc_wrt *w = &c->wrt[wi];
        tu_tensor *x = &c->fwd.src[w->src];
        tu_tensor g = grad_view(c, w, out);
        const int64_t n = tu_tensor_nelements(x);
        const double h = t->h * w->scale;
        int64_t i[APR_MAX_DIMS], movable = 0;
        double sum2 = 0.0;
        for (int64_t k = 0; k < n; k++) {
            tu_tensor_index(x, k, i);
            if (!isfinite(tu_getf(x, i[0], i[1], i[2], i[3]))) continue;
            double gk = tu_getf(&g, i[0], i[1], i[2], i[3]);
            sum2 += gk * gk;
            movable += fd_movable(w, x, i);
        }
        const double rms = sqrt(sum2 / (double)(n ? n : 1));
        double *v = calloc((size_t)(n ? n : 1), sizeof *v);
        fd_pair p = {.step = malloc((size_t)(n ? n : 1) * sizeof(double)), .yp = malloc(c->fwd.dst.size),
                     .ym = malloc(c->fwd.dst.size)};
        cr_assert(v && p.step && p.yp && p.ym, "out of memory");
        char msg[768], what[160];
        tu_rng rng;
        tu_rng_init(&rng, tu_seed_mix(r->run.seed, 0xfd00u + (uint64_t)r->run.n_cases * 8 + (uint64_t)wi));
        /* element-wise: one pair of runs moves every element, output k answers for input k */
        const bool per_element = !c->pointwise && movable <= FD_MAX_ELEMS;
        const int64_t runs = c->pointwise ? 1 : per_element ? n : FD_DIRS;
        for (int64_t run = 0; run < runs && ok; run++) {
            double vnorm2 = 0.0;
            for (int64_t k = 0; k < n; k++) {
                tu_tensor_index(x, k, i);
                v[k] = 0.0;
                if (!fd_movable(w, x, i)) continue;
                if (c->pointwise) v[k] = 1.0;
                else if (per_element) v[k] = k == run ? 1.0 : 0.0;
                else v[k] = tu_rng_int(&rng, 0, 1) ? 1.0 : -1.0;
                vnorm2 += v[k] * v[k];
            }
            if (vnorm2 == 0.0) continue; /* an element that does not move */
            tu_outcome o = fd_run_pair(c, w, fb, v, h, &p, msg, sizeof msg);
            if (o != TU_RAN) {
                tu_suite_fail(&r->run, text, "the forward %s on %s for finite differences %s: %s", tu_op_name(c->fwd.op), fb->name,
                            o == TU_DECLINED ? "was declined" : "failed", msg);
                ok = false;
                break;
            }
            if (c->pointwise) { /* y and x share shape and index here */
                const tu_tensor *dy = &c->bwd.src[c->dy_src];
                for (int64_t k = 0; k < n && ok; k++) {
                    if (v[k] == 0.0) continue;
                    tu_tensor_index(x, k, i);
                    const uint64_t off = tu_tensor_byte(&c->fwd.dst, i);
                    double a = tu_load_f(APR_F32, p.yp + off), b = tu_load_f(APR_F32, p.ym + off);
                    double gy = tu_getf(dy, i[0], i[1], i[2], i[3]);
                    double fd = gy * (a - b) / p.step[k];
                    double an = tu_getf(&g, i[0], i[1], i[2], i[3]);
                    double noise2 = gy * gy * fmax(a * a, b * b);
                    snprintf(what, sizeof what, "%s at [%lld,%lld,%lld,%lld] (x = %.9g)", w->name, (long long)i[0],
                             (long long)i[1], (long long)i[2], (long long)i[3], (double)tu_getf(x, i[0], i[1], i[2], i[3]));
                    ok = fd_within(r, t, fd, an, rms, 1.0, noise2 * (2 * h / p.step[k]) * (2 * h / p.step[k]), h, text, what);
                }
                continue;
            }
            double an = 0.0;
            for (int64_t k = 0; k < n; k++) {
                if (v[k] == 0.0) continue;
                tu_tensor_index(x, k, i);
                an += (double)tu_getf(&g, i[0], i[1], i[2], i[3]) * p.step[k];
            }
            if (per_element) {
                tu_tensor_index(x, run, i);
                snprintf(what, sizeof what, "%s at [%lld,%lld,%lld,%lld]", w->name, (long long)i[0], (long long)i[1],
                         (long long)i[2], (long long)i[3]);
            } else snprintf(what, sizeof what, "%s along random sign direction %lld of %d", w->name, (long long)run + 1, FD_DIRS);
            ok = fd_within(r, t, p.diff / (2 * h), an / (2 * h), rms, sqrt(vnorm2), p.noise2, h, text, what);
        }
        free(v);
        free(p.step);
        free(p.yp);
        free(p.ym);
    }
    return ok;
}

/* ---------------------------------------------------------------- exact zeros the definitions demand */

/* Whether query t sees key s (causality and the mask of an ATTENTION_GRAD node). */
static bool attn_sees(const tu_node *n, int64_t t, int64_t s) {
    const int64_t T = n->src[0].ne[1], S = n->src[1].ne[1];
    if (n->iparams[0] && s > t + (S - T)) return false;
    return !n->src[3].present || tu_getf(&n->src[3], s, t, 0, 0) != -INFINITY;
}

/* The elements of out that must be exactly zero: false + why on the first that is not. */
static bool zeros_check(const gc_case *c, const unsigned char *out, char *why, size_t size) {
    const tu_node *n = &c->bwd;
    tu_tensor o = n->dst;
    o.data = (unsigned char *)out;
    switch (n->op) {
    case APR_OP_ATTENTION_GRAD: {
        const int64_t D = n->src[0].ne[0], T = n->src[0].ne[1], H = n->src[0].ne[2], S = n->src[1].ne[1],
                      Hkv = n->src[1].ne[2], Dv = n->src[2].ne[0];
        for (int64_t t = 0; t < T; t++) {
            bool any = false;
            for (int64_t s = 0; s < S && !any; s++) any = attn_sees(n, t, s);
            for (int64_t h = 0; h < H && !any; h++)
                for (int64_t d = 0; d < D; d++)
                    if (tu_getf(&o, d + D * (t + T * h), 0, 0, 0) != 0.0f) {
                        snprintf(why, size, "query %lld sees no key, but dQ[%lld,%lld,%lld] = %g, want 0", (long long)t, (long long)d,
                                 (long long)t, (long long)h, (double)tu_getf(&o, d + D * (t + T * h), 0, 0, 0));
                        return false;
                    }
        }
        for (int64_t s = 0; s < S; s++) {
            bool any = false;
            for (int64_t t = 0; t < T && !any; t++) any = attn_sees(n, t, s);
            if (any) continue;
            for (int64_t hk = 0; hk < Hkv; hk++) {
                for (int64_t d = 0; d < D; d++) {
                    float v = tu_getf(&o, D * T * H + d + D * (s + S * hk), 0, 0, 0);
                    if (v != 0.0f) {
                        snprintf(why, size, "no query sees key %lld, but dK[%lld,%lld,%lld] = %g, want 0", (long long)s, (long long)d,
                                 (long long)s, (long long)hk, (double)v);
                        return false;
                    }
                }
                for (int64_t d = 0; d < Dv; d++) {
                    float v = tu_getf(&o, D * T * H + D * S * Hkv + d + Dv * (s + S * hk), 0, 0, 0);
                    if (v != 0.0f) {
                        snprintf(why, size, "no query sees key %lld, but dV[%lld,%lld,%lld] = %g, want 0", (long long)s, (long long)d,
                                 (long long)s, (long long)hk, (double)v);
                        return false;
                    }
                }
            }
        }
        return true;
    }
    case APR_OP_CROSS_ENTROPY_GRAD:
        for (int64_t t = 0; t < o.ne[1]; t++) {
            if (tu_geti(&n->src[1], t, 0, 0, 0) != -1) continue;
            for (int64_t v = 0; v < o.ne[0]; v++)
                if (tu_getf(&o, v, t, 0, 0) != 0.0f) {
                    snprintf(why, size, "targets[%lld] = -1, but element [%lld,%lld] is %g, want 0", (long long)t, (long long)v,
                             (long long)t, (double)tu_getf(&o, v, t, 0, 0));
                    return false;
                }
        }
        return true;
    case APR_OP_GET_ROWS_GRAD:
        for (int64_t r = 0; r < o.ne[1]; r++) {
            bool named = false;
            for (int64_t k = 0; k < n->src[1].ne[0] && !named; k++) named = tu_geti(&n->src[1], k, 0, 0, 0) == r;
            for (int64_t d = 0; d < o.ne[0] && !named; d++)
                if (tu_getf(&o, d, r, 0, 0) != 0.0f) {
                    snprintf(why, size, "no id names row %lld, but element [%lld,%lld] is %g, want 0", (long long)r, (long long)d,
                             (long long)r, (double)tu_getf(&o, d, r, 0, 0));
                    return false;
                }
        }
        return true;
    case APR_OP_SOFTMAX_GRAD: {
        int64_t i[APR_MAX_DIMS];
        for (int64_t k = 0; k < tu_tensor_nelements(&o); k++) {
            tu_tensor_index(&o, k, i);
            if (tu_getf(&n->src[0], i[0], i[1], i[2], i[3]) != 0.0f || tu_getf(&o, i[0], i[1], i[2], i[3]) == 0.0f) continue;
            snprintf(why, size, "y is 0 at [%lld,%lld,%lld,%lld] (a position the forward hid), but the gradient is %g, want 0",
                     (long long)i[0], (long long)i[1], (long long)i[2], (long long)i[3], (double)tu_getf(&o, i[0], i[1], i[2], i[3]));
            return false;
        }
        return true;
    }
    default: return true;
    }
}

/* Runs one gradient case (and frees it): on the backend under test; against the reference; then
 * finiteness, exact zeros and finite differences. */
static void gc_check(gc_run *r, gc_case *c) {
    char text[640], msg[900];
    tu_node_text(&c->bwd, text, sizeof text);
    unsigned char *got = malloc(c->bwd.dst.size), *want = malloc(c->bwd.dst.size);
    cr_assert(got && want, "out of memory");
    tu_suite_watch(r->run.test.name, text);
    tu_outcome o = tu_node_run(&r->run.test, &c->bwd, APR_OK, got, msg, sizeof msg);
    if (o == TU_DECLINED) {
        if (r->run.self_check) tu_suite_fail(&r->run, text, "the reference declined a valid case: %s", msg);
        else tu_suite_unsupported(&r->run, text, msg);
        goto done;
    }
    if (o == TU_BROKEN) {
        tu_suite_fail(&r->run, text, "%s", msg);
        goto done;
    }
    if (!r->run.self_check) {
        tu_suite_watch(r->run.ref.name, text);
        o = tu_node_run(&r->run.ref, &c->bwd, APR_OK, want, msg, sizeof msg);
        if (o != TU_RAN) {
            tu_suite_fail(&r->run, text, "the reference %s: %s", o == TU_DECLINED ? "declined a valid case" : "failed", msg);
            goto done;
        }
        const ref_tol *t = ref_tol_of(c->bwd.op, c->key);
        tu_cmp_result cmp = tu_compare(&c->bwd.dst, got, want, TU_CMP_NMSE, t->max_nmse);
        if (!cmp.ok) {
            tu_suite_fail(&r->run, text, "against the reference: %s", cmp.msg);
            goto done;
        }
        if (t->max_nmse > 0 && cmp.nmse / t->max_nmse >= r->worst_nmse) {
            r->worst_nmse = cmp.nmse / t->max_nmse;
            snprintf(r->worst_nmse_case, sizeof r->worst_nmse_case, "%s", text);
        }
    }
    if (!tu_all_finite(&c->bwd.dst, got, msg, sizeof msg)) {
        tu_suite_fail(&r->run, text, "non-finite output from finite inputs: %s", msg);
        goto done;
    }
    if (!zeros_check(c, got, msg, sizeof msg)) {
        tu_suite_fail(&r->run, text, "%s", msg);
        goto done;
    }
    tu_suite_watch(r->run.test.name, text);
    if (fd_check(r, c, got, text)) r->run.passed++;
done:
    free(got);
    free(want);
    case_free(c);
}

/* ---------------------------------------------------------------- cases per op */

enum { C, P, T, S2 }; /* contiguous, padded (a slice of wider rows), transposed, every other element */
static const tu_layout lays[] = {TU_CONTIG, TU_PADDED, TU_TRANSPOSED, TU_STEP2};

/* X on the 2^-7 grid: integers in [-111, 111] times 2^-7, and one element of +-127 * 2^-7 (the
 * anchor) in every 32 of a row, so that a forward that rounds X rows to f16, bf16 or 8-bit
 * blocks (Q8_0 per 32, Q8_K per 256: scale = 127 * 2^-7 / 127) keeps them exact, and so do
 * x +- 16 * 2^-7 for every element but the anchors. */
static void fill_grid(tu_tensor *x, tu_rng *rng) {
    const int64_t K = x->ne[0];
    for (int64_t i3 = 0; i3 < x->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < x->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < x->ne[1]; i1++)
                for (int64_t k0 = 0; k0 < K; k0 += 32) {
                    int64_t len = K - k0 < 32 ? K - k0 : 32, anchor = k0 + tu_rng_int(rng, 0, len - 1);
                    for (int64_t k = k0; k < k0 + len; k++) {
                        int64_t q = k == anchor ? (tu_rng_int(rng, 0, 1) ? 127 : -127) : tu_rng_int(rng, -111, 111);
                        tu_setf(x, k, i1, i2, i3, (float)q / 128.0f);
                    }
                }
}

static void cases_matmul_grad_x(gc_run *r) {
    static const struct { uint32_t dtype; int64_t K, N, M, B2, B3, Bw2, Bw3; int wl, dyl, dl; } cs[] = {
        {APR_F32, 7, 3, 2, 1, 1, 1, 1, C, C, C},     {APR_F32, 5, 4, 3, 2, 1, 1, 1, C, C, C},
        {APR_F32, 1, 1, 1, 1, 1, 1, 1, C, C, C},     {APR_F32, 33, 17, 5, 1, 1, 1, 1, C, C, C},
        {APR_F32, 64, 40, 9, 1, 1, 1, 1, C, C, C},   {APR_F32, 130, 67, 7, 1, 1, 1, 1, C, C, C},
        {APR_F32, 32, 9, 5, 4, 2, 2, 1, C, C, C},    {APR_F32, 17, 6, 3, 3, 1, 1, 1, C, C, C},
        {APR_F32, 24, 7, 4, 2, 2, 2, 2, P, T, P},    {APR_F32, 33, 17, 13, 1, 1, 1, 1, T, P, C},
        {APR_F32, 48, 2048, 2, 1, 1, 1, 1, C, C, C}, {APR_F32, 4097, 9, 1, 1, 1, 1, 1, C, C, C},
        {APR_F32, 9, 5, 2, 6, 2, 2, 1, C, C, C},     {APR_F16, 24, 7, 3, 6, 1, 2, 1, P, C, C},
        {APR_F16, 7, 3, 2, 1, 1, 1, 1, C, C, C},     {APR_F16, 65, 19, 3, 1, 1, 1, 1, P, C, P},
        {APR_F16, 96, 33, 4, 2, 1, 1, 1, T, T, C},   {APR_BF16, 40, 9, 5, 1, 1, 1, 1, C, C, C},
        {APR_Q4_0, 32, 5, 1, 1, 1, 1, 1, C, C, C},   {APR_Q4_0, 64, 33, 5, 2, 1, 1, 1, P, T, C},
        {APR_Q8_0, 96, 17, 3, 1, 1, 1, 1, C, P, P},  {APR_Q4_K, 256, 9, 3, 1, 1, 1, 1, C, C, C},
        {APR_Q6_K, 512, 5, 2, 2, 1, 2, 1, C, T, C},  {APR_Q5_1, 64, 11, 2, 1, 1, 1, 1, C, C, C},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        tu_rng rng = tu_suite_next(&r->run);
        gc_case c;
        case_init(&c);
        tu_node *b = &c.bwd, *f = &c.fwd;
        tu_node_init(b, APR_OP_MATMUL_GRAD_X, 2);
        tu_tensor *w = tu_node_src(b, 0, cs[s].dtype, cs[s].K, cs[s].N, cs[s].Bw2, cs[s].Bw3, lays[cs[s].wl]);
        if (tu_dtype_is_block(cs[s].dtype)) tu_fill_quant(w, &rng, -1, 1, true);
        else tu_fill_uniform(w, &rng, -1, 1);
        tu_fill_uniform(tu_node_src(b, 1, APR_F32, cs[s].N, cs[s].M, cs[s].B2, cs[s].B3, lays[cs[s].dyl]), &rng, -1, 1);
        tu_node_dst(b, APR_F32, cs[s].K, cs[s].M, cs[s].B2, cs[s].B3, lays[cs[s].dl]);
        tu_node_init(f, APR_OP_MATMUL, 2);
        clone_to(&f->src[0], w, lays[cs[s].wl]);
        fill_grid(tu_node_src(f, 1, APR_F32, cs[s].K, cs[s].M, cs[s].B2, cs[s].B3, lays[cs[s].dl]), &rng);
        tu_node_dst(f, APR_F32, cs[s].N, cs[s].M, cs[s].B2, cs[s].B3, TU_CONTIG);
        c.dy_src = 1;
        add_wrt(&c, 1, "X", 1.0)->grid = true;
        snprintf(c.key, sizeof c.key, "%s", cs[s].N >= 2048 ? "long" : "");
        tu_node_name(b, "%s W K=%lld N=%lld M=%lld", tu_dtype_name(cs[s].dtype), (long long)cs[s].K, (long long)cs[s].N,
                  (long long)cs[s].M);
        gc_check(r, &c);
    }
}

static void cases_matmul_grad_w(gc_run *r) {
    static const struct { int64_t K, N, M, B2, B3, Bw2, Bw3; int xl, dyl, dl; } cs[] = {
        {4, 3, 2, 1, 1, 1, 1, C, C, C},    {3, 2, 5, 2, 3, 1, 3, C, C, C},   {1, 1, 1, 1, 1, 1, 1, C, C, C},
        {33, 17, 13, 1, 1, 1, 1, C, C, C}, {16, 40, 70, 1, 1, 1, 1, C, C, C}, {32, 9, 5, 4, 2, 2, 1, C, C, C},
        {17, 6, 3, 3, 1, 1, 1, C, C, C},   {24, 7, 4, 2, 2, 2, 2, T, P, P},  {37, 9, 8, 1, 1, 1, 1, P, T, C},
        {65, 19, 3, 1, 1, 1, 1, C, C, T},  {8, 5, 2500, 1, 1, 1, 1, C, C, C},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        tu_rng rng = tu_suite_next(&r->run);
        gc_case c;
        case_init(&c);
        tu_node *b = &c.bwd, *f = &c.fwd;
        tu_node_init(b, APR_OP_MATMUL_GRAD_W, 2);
        tu_tensor *x = tu_node_src(b, 0, APR_F32, cs[s].K, cs[s].M, cs[s].B2, cs[s].B3, lays[cs[s].xl]);
        tu_fill_uniform(x, &rng, -1, 1);
        tu_fill_uniform(tu_node_src(b, 1, APR_F32, cs[s].N, cs[s].M, cs[s].B2, cs[s].B3, lays[cs[s].dyl]), &rng, -1, 1);
        tu_node_dst(b, APR_F32, cs[s].K, cs[s].N, cs[s].Bw2, cs[s].Bw3, lays[cs[s].dl]);
        tu_node_init(f, APR_OP_MATMUL, 2);
        tu_fill_uniform(tu_node_src(f, 0, APR_F32, cs[s].K, cs[s].N, cs[s].Bw2, cs[s].Bw3, lays[cs[s].dl]), &rng, -1, 1);
        clone_to(&f->src[1], x, lays[cs[s].xl]);
        tu_node_dst(f, APR_F32, cs[s].N, cs[s].M, cs[s].B2, cs[s].B3, TU_CONTIG);
        c.dy_src = 1;
        add_wrt(&c, 0, "W", 1.0);
        snprintf(c.key, sizeof c.key, "%s", cs[s].M * (cs[s].B2 / cs[s].Bw2) * (cs[s].B3 / cs[s].Bw3) >= 2048 ? "long" : "");
        tu_node_name(b, "K=%lld N=%lld M=%lld, W batches %lldx%lld", (long long)cs[s].K, (long long)cs[s].N, (long long)cs[s].M,
                  (long long)cs[s].Bw2, (long long)cs[s].Bw3);
        gc_check(r, &c);
    }
}

static void cases_get_rows_grad(gc_run *r) {
    static const struct { int64_t D, R, N; int dyl, idl, dl; } cs[] = {
        {3, 4, 5, C, C, C},    {1, 1, 1, C, C, C},     {7, 5, 3, C, C, C},     {16, 10, 16, C, C, C},
        {33, 100, 17, P, S2, P}, {129, 3, 40, C, C, C}, {4100, 6, 3, C, C, C}, {9, 12, 30, T, C, T},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        const int64_t D = cs[s].D, R = cs[s].R, N = cs[s].N;
        tu_rng rng = tu_suite_next(&r->run);
        gc_case c;
        case_init(&c);
        tu_node *b = &c.bwd, *f = &c.fwd;
        tu_node_init(b, APR_OP_GET_ROWS_GRAD, 2);
        tu_fill_uniform(tu_node_src(b, 0, APR_F32, D, N, 1, 1, lays[cs[s].dyl]), &rng, -1, 1);
        tu_tensor *ids = tu_node_src(b, 1, APR_I32, N, 1, 1, 1, lays[cs[s].idl]);
        /* ids from the lower two thirds of the rows (so some rows are named by none), both ends
         * named, and a repeat */
        tu_fill_int(ids, &rng, 0, R > 2 ? 2 * R / 3 : R - 1);
        tu_seti(ids, 0, 0, 0, 0, (int32_t)(R - 1));
        if (N > 1) tu_seti(ids, N - 1, 0, 0, 0, 0);
        if (N > 2) tu_seti(ids, 1, 0, 0, 0, tu_geti(ids, N - 1, 0, 0, 0));
        tu_node_dst(b, APR_F32, D, R, 1, 1, lays[cs[s].dl]);
        tu_node_init(f, APR_OP_GET_ROWS, 2);
        tu_fill_uniform(tu_node_src(f, 0, APR_F32, D, R, 1, 1, lays[cs[s].dl]), &rng, -1, 1);
        clone_to(&f->src[1], ids, TU_CONTIG);
        tu_node_dst(f, APR_F32, D, N, 1, 1, TU_CONTIG);
        c.dy_src = 0;
        add_wrt(&c, 0, "table", 1.0);
        tu_node_name(b, "D=%lld R=%lld N=%lld", (long long)D, (long long)R, (long long)N);
        gc_check(r, &c);
    }
}

static void cases_sum_repeats(gc_run *r) {
    static const struct { int64_t a[4], b[4]; int al, dl; } cs[] = {
        {{1, 1, 1, 1}, {1, 1, 1, 1}, C, C},     {{7, 3, 1, 1}, {7, 1, 1, 1}, C, C},
        {{33, 5, 3, 2}, {1, 5, 1, 2}, C, C},    {{4099, 2, 1, 1}, {4099, 1, 1, 1}, C, C},
        {{17, 1, 1, 1}, {1, 1, 1, 1}, C, C},    {{64, 8, 4, 1}, {64, 8, 4, 1}, C, C},
        {{16, 4, 3, 2}, {16, 1, 3, 1}, C, C},   {{37, 9, 2, 1}, {37, 1, 1, 1}, T, C},
        {{24, 6, 2, 2}, {8, 3, 1, 2}, P, P},    {{32, 16, 1, 1}, {32, 16, 1, 1}, S2, T},
        {{45, 30, 3, 1}, {1, 1, 1, 1}, C, C},   {{40, 21, 2, 2}, {5, 7, 2, 1}, T, P},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        const int64_t *a = cs[s].a, *bb = cs[s].b;
        tu_rng rng = tu_suite_next(&r->run);
        gc_case c;
        case_init(&c);
        tu_node *b = &c.bwd, *f = &c.fwd;
        tu_node_init(b, APR_OP_SUM_REPEATS, 1);
        tu_fill_uniform(tu_node_src(b, 0, APR_F32, a[0], a[1], a[2], a[3], lays[cs[s].al]), &rng, -1, 1);
        tu_node_dst(b, APR_F32, bb[0], bb[1], bb[2], bb[3], lays[cs[s].dl]);
        tu_node_init(f, APR_OP_ADD, 2);
        tu_fill_uniform(tu_node_src(f, 0, APR_F32, a[0], a[1], a[2], a[3], TU_CONTIG), &rng, -1, 1);
        tu_fill_uniform(tu_node_src(f, 1, APR_F32, bb[0], bb[1], bb[2], bb[3], lays[cs[s].dl]), &rng, -1, 1);
        tu_node_dst(f, APR_F32, a[0], a[1], a[2], a[3], TU_CONTIG);
        c.dy_src = 0;
        add_wrt(&c, 1, "b", 1.0);
        tu_node_name(b, "%lldx%lldx%lldx%lld repeats", (long long)(a[0] / bb[0]), (long long)(a[1] / bb[1]), (long long)(a[2] / bb[2]),
                  (long long)(a[3] / bb[3]));
        gc_check(r, &c);
    }
}

/* The element-wise gradients' shapes: source and dst layouts as test_conformance.c's unary shapes. */
static const struct { int64_t ne[4]; int xl, dyl, dl; } pw_shapes[] = {
    {{1, 1, 1, 1}, C, C, C},   {{7, 3, 1, 1}, C, C, C},  {{33, 5, 3, 2}, C, C, C}, {{4099, 2, 1, 1}, C, C, C},
    {{64, 8, 4, 1}, C, C, C},  {{37, 9, 2, 1}, T, C, C}, {{31, 6, 1, 1}, C, S2, P}, {{32, 16, 1, 1}, S2, T, P},
};
#define N_PW_SHAPES (sizeof pw_shapes / sizeof pw_shapes[0])

static void cases_pointwise(gc_run *r, uint32_t op) {
    static const double ranges[] = {8, 100};
    for (int ri = 0; ri < 2; ri++)
        for (size_t s = 0; s < N_PW_SHAPES; s++) {
            const int64_t *ne = pw_shapes[s].ne;
            tu_rng rng = tu_suite_next(&r->run);
            gc_case c;
            case_init(&c);
            tu_node *b = &c.bwd, *f = &c.fwd;
            tu_node_init(b, op, 2);
            tu_tensor *x = tu_node_src(b, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[pw_shapes[s].xl]);
            /* a lone element is its own rms, so its check is purely relative: kept in +-2, away from
             * the tails where the derivative is ~1e-9 and the truncation relative to it grows like x^2 */
            const double range = ne[0] * ne[1] * ne[2] * ne[3] == 1 ? 2 : ranges[ri];
            tu_fill_uniform(x, &rng, -range, range);
            tu_fill_uniform(tu_node_src(b, 1, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[pw_shapes[s].dyl]), &rng, -1, 1);
            tu_node_dst(b, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[pw_shapes[s].dl]);
            tu_node_init(f, op == APR_OP_SILU_GRAD ? APR_OP_SILU : APR_OP_GELU, 1);
            clone_to(&f->src[0], x, TU_CONTIG);
            tu_node_dst(f, APR_F32, ne[0], ne[1], ne[2], ne[3], TU_CONTIG);
            c.dy_src = 1;
            c.pointwise = true;
            add_wrt(&c, 0, "x", 1.0);
            tu_node_name(b, "x in +-%g", range);
            gc_check(r, &c);
        }
}

static void cases_rms_norm_grad(gc_run *r) {
    static const struct { int64_t ne[4]; double range; int xl, dyl, dl; } cs[] = {
        {{1, 1, 1, 1}, 2, C, C, C},     {{7, 3, 1, 1}, 2, C, C, C},    {{16, 2, 1, 1}, 2, C, C, C},
        {{33, 5, 2, 1}, 2, C, C, C},    {{128, 8, 1, 1}, 2, C, C, C},  {{4099, 2, 1, 1}, 2, C, C, C},
        {{100, 3, 2, 2}, 2, C, C, C},   {{64, 4, 1, 1}, 1000, C, C, C}, {{64, 4, 1, 1}, 1e-3, C, C, C},
        {{9, 4, 1, 1}, 1e-3, C, C, C},  {{65, 7, 2, 1}, 2, P, S2, P},  {{40, 9, 1, 1}, 2, T, C, C},
        {{48, 5, 1, 1}, 2, S2, T, P},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        const int64_t *ne = cs[s].ne;
        tu_rng rng = tu_suite_next(&r->run);
        gc_case c;
        case_init(&c);
        tu_node *b = &c.bwd, *f = &c.fwd;
        tu_node_init(b, APR_OP_RMS_NORM_GRAD, 2);
        tu_tensor *x = tu_node_src(b, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[cs[s].xl]);
        tu_fill_uniform(x, &rng, -cs[s].range, cs[s].range);
        tu_fill_uniform(tu_node_src(b, 1, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[cs[s].dyl]), &rng, -1, 1);
        tu_node_dst(b, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[cs[s].dl]);
        b->fparams[0] = tu_rng_int(&rng, 0, 1) ? 1e-5f : 1e-6f;
        tu_node_init(f, APR_OP_RMS_NORM, 1);
        clone_to(&f->src[0], x, lays[cs[s].xl]);
        tu_node_dst(f, APR_F32, ne[0], ne[1], ne[2], ne[3], TU_CONTIG);
        f->fparams[0] = b->fparams[0];
        /* the function bends on the scale of its rows' rms: the step follows the smallest */
        double scale = INFINITY;
        for (int64_t i3 = 0; i3 < ne[3]; i3++)
            for (int64_t i2 = 0; i2 < ne[2]; i2++)
                for (int64_t i1 = 0; i1 < ne[1]; i1++) {
                    double ss = 0.0;
                    for (int64_t i0 = 0; i0 < ne[0]; i0++) ss += (double)tu_getf(x, i0, i1, i2, i3) * tu_getf(x, i0, i1, i2, i3);
                    scale = fmin(scale, sqrt(ss / (double)ne[0] + b->fparams[0]));
                }
        c.dy_src = 1;
        add_wrt(&c, 0, "x", scale);
        tu_node_name(b, "x in +-%g eps=%g", cs[s].range, (double)b->fparams[0]);
        gc_check(r, &c);
    }
}

static void cases_rope_grad(gc_run *r) {
    enum { Q = 2 }; /* q-style permute of [D, T, H] storage */
    static const struct { int64_t D, H, T, n_rot; int dyl, dl; } cs[] = {
        {2, 1, 1, 2, C, C},   {8, 3, 2, 8, C, C},  {6, 1, 5, 4, C, C},   {64, 4, 7, 64, C, C}, {80, 3, 4, 64, C, C},
        {34, 2, 3, 16, C, C}, {96, 5, 9, 96, C, C}, {64, 3, 5, 64, P, C}, {64, 3, 5, 48, Q, C}, {32, 2, 6, 32, C, P},
    };
    const tu_layout rl[] = {TU_CONTIG, TU_PADDED, TU_PERM(0, 2, 1, 3)};
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++)
        for (int layout = 0; layout < 2; layout++)
            for (int with_ff = 0; with_ff < 2; with_ff++) {
                tu_rng rng = tu_suite_next(&r->run);
                gc_case c;
                case_init(&c);
                tu_node *b = &c.bwd, *f = &c.fwd;
                tu_node_init(b, APR_OP_ROPE_GRAD, with_ff ? 3 : 2);
                tu_fill_uniform(tu_node_src(b, 0, APR_F32, cs[s].D, cs[s].H, cs[s].T, 1, rl[cs[s].dyl]), &rng, -1, 1);
                tu_tensor *pos = tu_node_src(b, 1, APR_I32, cs[s].T, 1, 1, 1, cs[s].dyl == P ? TU_STEP2 : TU_CONTIG);
                tu_fill_int(pos, &rng, 0, 4096);
                tu_seti(pos, 0, 0, 0, 0, 0);
                if (with_ff) tu_fill_uniform(tu_node_src(b, 2, APR_F32, cs[s].n_rot / 2, 1, 1, 1, TU_CONTIG), &rng, 1, 8);
                tu_node_dst(b, APR_F32, cs[s].D, cs[s].H, cs[s].T, 1, rl[cs[s].dl]);
                b->iparams[0] = (int32_t)cs[s].n_rot;
                b->iparams[1] = layout;
                b->fparams[0] = tu_rng_int(&rng, 0, 1) ? 10000.0f : 500000.0f;
                b->fparams[1] = tu_rng_int(&rng, 0, 2) ? 1.0f : 0.25f;
                tu_node_init(f, APR_OP_ROPE, b->n_src);
                memcpy(f->iparams, b->iparams, sizeof f->iparams);
                memcpy(f->fparams, b->fparams, sizeof f->fparams);
                tu_fill_uniform(tu_node_src(f, 0, APR_F32, cs[s].D, cs[s].H, cs[s].T, 1, rl[cs[s].dl]), &rng, -2, 2);
                clone_to(&f->src[1], pos, TU_CONTIG);
                if (with_ff) clone_to(&f->src[2], &b->src[2], TU_CONTIG);
                tu_node_dst(f, APR_F32, cs[s].D, cs[s].H, cs[s].T, 1, TU_CONTIG);
                c.dy_src = 0;
                add_wrt(&c, 0, "x", 2.0);
                tu_node_name(b, "n_rot=%lld %s base=%g scale=%g%s", (long long)cs[s].n_rot, layout ? "neox" : "adjacent",
                          (double)b->fparams[0], (double)b->fparams[1], with_ff ? " freq_factors" : "");
                gc_check(r, &c);
            }
}

static void cases_softmax_grad(gc_run *r) {
    static const struct { int64_t ne[4]; int xl, yl, dyl, dl; } cs[] = {
        {{1, 1, 1, 1}, C, C, C, C},   {{7, 3, 1, 1}, C, C, C, C},   {{5, 8, 1, 1}, C, C, C, C},
        {{33, 5, 2, 1}, C, C, C, C},  {{100, 7, 2, 2}, C, C, C, C}, {{4101, 2, 1, 1}, C, C, C, C},
        {{37, 9, 2, 1}, P, T, C, P},  {{24, 24, 3, 1}, T, C, S2, C},
    };
    static const float scales[] = {1.0f, 0.125f, 0.0883883476f, 3.0f};
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++)
        for (int with_mask = 0; with_mask < 2; with_mask++)
            for (int causal = 0; causal < 2; causal++) {
                const int64_t *ne = cs[s].ne;
                tu_rng rng = tu_suite_next(&r->run);
                gc_case c;
                case_init(&c);
                tu_node *b = &c.bwd, *f = &c.fwd;
                tu_node_init(f, APR_OP_SOFTMAX, with_mask ? 2 : 1);
                f->fparams[0] = scales[tu_rng_int(&rng, 0, 3)];
                f->iparams[0] = causal;
                /* z = scale x within +-3 (x within +-5): a row that is one-hot to within f32 would make
                 * dY - sum(y dY) cancel to rounding noise, which no f32 kernel can match relatively */
                const double range = fmin(5.0, 3.0 / f->fparams[0]);
                tu_fill_uniform(tu_node_src(f, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[cs[s].xl]), &rng, -range, range);
                if (with_mask) tu_fill_mask(tu_node_src(f, 1, APR_F32, ne[0], ne[1], 1, 1, TU_CONTIG), &rng);
                tu_node_dst(f, APR_F32, ne[0], ne[1], ne[2], ne[3], TU_CONTIG);
                /* y = the forward's output on the reference */
                unsigned char *y = malloc(f->dst.size);
                char msg[768];
                cr_assert(y, "out of memory");
                cr_assert(tu_node_run(&r->run.ref, f, APR_OK, y, msg, sizeof msg) == TU_RAN, "softmax on the reference: %s", msg);
                tu_node_init(b, APR_OP_SOFTMAX_GRAD, 2);
                tu_tensor ty = f->dst;
                ty.data = y;
                clone_to(&b->src[0], &ty, lays[cs[s].yl]);
                free(y);
                tu_fill_uniform(tu_node_src(b, 1, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[cs[s].dyl]), &rng, -1, 1);
                tu_node_dst(b, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[cs[s].dl]);
                b->fparams[0] = f->fparams[0];
                c.dy_src = 1;
                add_wrt(&c, 0, "x", 1.0 / f->fparams[0]);
                tu_node_name(b, "scale=%g x in +-%g%s%s", (double)f->fparams[0], range, causal ? " causal" : "", with_mask ? " mask" : "");
                gc_check(r, &c);
            }
}

static void cases_attention_grad(gc_run *r) {
    /* q layouts: contiguous [D, T, H], or the permute of a [D, H, T] projection output; k/v: a
     * cache slice with room for more positions */
    static const struct { int64_t D, Dv, T, S, H, Hkv; int causal, mask, qperm, kvslice; uint32_t kv; } cs[] = {
        {4, 4, 3, 5, 2, 1, 0, 0, 0, 0, APR_F32},     {3, 2, 2, 3, 2, 2, 1, 1, 0, 0, APR_F32},
        {4, 3, 4, 4, 2, 1, 1, 0, 1, 0, APR_F32},     {2, 2, 5, 3, 1, 1, 1, 0, 0, 0, APR_F32}, /* S < T: queries see nothing */
        {16, 16, 5, 9, 4, 2, 1, 1, 1, 1, APR_F32},   {17, 13, 7, 7, 2, 1, 0, 1, 0, 1, APR_F32},
        {32, 24, 1, 40, 4, 2, 0, 1, 1, 0, APR_F32},  {16, 16, 9, 5, 2, 2, 1, 0, 1, 0, APR_F32},
        {24, 24, 6, 11, 8, 2, 0, 0, 1, 1, APR_F32},  {64, 64, 3, 33, 2, 1, 1, 1, 0, 0, APR_F32},
        {16, 16, 5, 9, 4, 2, 1, 1, 1, 1, APR_F16},   {64, 48, 4, 23, 2, 2, 0, 1, 0, 1, APR_F16},
    };
    const tu_layout kv_slice = {{0}, {0, 5, 0, 0}, 0, 0};
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        const int64_t D = cs[s].D, Dv = cs[s].Dv, T = cs[s].T, S = cs[s].S, H = cs[s].H, Hkv = cs[s].Hkv;
        tu_rng rng = tu_suite_next(&r->run);
        gc_case c;
        case_init(&c);
        tu_node *b = &c.bwd, *f = &c.fwd;
        tu_node_init(b, APR_OP_ATTENTION_GRAD, 5);
        tu_layout ql = cs[s].qperm ? TU_PERM(0, 2, 1, 3) : TU_CONTIG, kvl = cs[s].kvslice ? kv_slice : TU_CONTIG;
        tu_fill_uniform(tu_node_src(b, 0, APR_F32, D, T, H, 1, ql), &rng, -2, 2);
        tu_fill_uniform(tu_node_src(b, 1, cs[s].kv, D, S, Hkv, 1, kvl), &rng, -2, 2);
        tu_fill_uniform(tu_node_src(b, 2, cs[s].kv, Dv, S, Hkv, 1, kvl), &rng, -1, 1);
        if (cs[s].mask) {
            tu_fill_mask(tu_node_src(b, 3, APR_F32, S, T, 1, 1, TU_CONTIG), &rng);
            if (T == 1) tu_setf(&b->src[3], 0, 0, 0, 0, 0.0f); /* decode: one key always visible */
            tu_node_poison_masked_keys(b);
        }
        tu_fill_uniform(tu_node_src(b, 4, APR_F32, Dv, H, T, 1, TU_CONTIG), &rng, -1, 1);
        tu_node_dst(b, APR_F32, D * T * H + D * S * Hkv + Dv * S * Hkv, 1, 1, 1, s % 3 == 1 ? TU_STEP2 : TU_CONTIG);
        b->fparams[0] = (float)(1.0 / sqrt((double)D));
        b->iparams[0] = cs[s].causal;
        tu_node_init(f, APR_OP_ATTENTION, cs[s].mask ? 4 : 3);
        f->fparams[0] = b->fparams[0];
        f->iparams[0] = b->iparams[0];
        for (int i = 0; i < (int)f->n_src; i++) clone_to(&f->src[i], &b->src[i], i == 0 ? ql : i < 3 ? kvl : TU_CONTIG);
        tu_node_dst(f, APR_F32, Dv, H, T, 1, TU_CONTIG);
        c.dy_src = 4;
        gc_wrt *w = add_wrt(&c, 0, "q", 2.0);
        w->packed = true;
        if (cs[s].kv == APR_F32) { /* f16 k and v cannot move by small steps */
            w = add_wrt(&c, 1, "k", 2.0);
            w->packed = true;
            w->base = D * T * H;
            w = add_wrt(&c, 2, "v", 1.0);
            w->packed = true;
            w->base = D * T * H + D * S * Hkv;
        }
        snprintf(c.key, sizeof c.key, "%s", tu_dtype_name(cs[s].kv));
        tu_node_name(b, "%s k/v H=%lld Hkv=%lld T=%lld S=%lld D=%lld Dv=%lld%s%s", tu_dtype_name(cs[s].kv), (long long)H,
                  (long long)Hkv, (long long)T, (long long)S, (long long)D, (long long)Dv, cs[s].causal ? " causal" : "",
                  cs[s].mask ? " mask" : "");
        gc_check(r, &c);
    }
}

static void fill_targets(tu_tensor *targets, tu_rng *rng, int64_t V) {
    tu_fill_int(targets, rng, 0, V - 1);
    for (int64_t t = 0; t < targets->ne[0]; t++)
        if (t % 3 == 1) tu_seti(targets, t, 0, 0, 0, -1); /* no loss at these columns */
}

static void cases_cross_entropy_grad(gc_run *r) {
    static const struct { int64_t V, T; double range; int ll, dl; } cs[] = {
        {5, 3, 4, C, C},    {1, 2, 4, C, C},     {16, 2, 4, C, C},    {33, 7, 4, C, C},  {100, 5, 4, P, C},
        {1000, 4, 4, C, P}, {32000, 2, 4, C, C}, {17, 6, 4, T, T},    {64, 3, 50, C, C},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        const int64_t V = cs[s].V, Tn = cs[s].T;
        tu_rng rng = tu_suite_next(&r->run);
        gc_case c;
        case_init(&c);
        tu_node *b = &c.bwd, *f = &c.fwd;
        tu_node_init(b, APR_OP_CROSS_ENTROPY_GRAD, 3);
        tu_tensor *logits = tu_node_src(b, 0, APR_F32, V, Tn, 1, 1, lays[cs[s].ll]);
        tu_fill_uniform(logits, &rng, -cs[s].range, cs[s].range);
        fill_targets(tu_node_src(b, 1, APR_I32, Tn, 1, 1, 1, TU_CONTIG), &rng, V);
        tu_tensor *g = tu_node_src(b, 2, APR_F32, 1, 1, 1, 1, TU_CONTIG);
        tu_setf(g, 0, 0, 0, 0, (float)((tu_rng_int(&rng, 0, 1) ? 1 : -1) * tu_rng_uniform(&rng, 0.1, 2)));
        tu_node_dst(b, APR_F32, V, Tn, 1, 1, lays[cs[s].dl]);
        tu_node_init(f, APR_OP_CROSS_ENTROPY, 2);
        clone_to(&f->src[0], logits, lays[cs[s].ll]);
        clone_to(&f->src[1], &b->src[1], TU_CONTIG);
        tu_node_dst(f, APR_F32, 1, 1, 1, 1, TU_CONTIG);
        c.dy_src = 2;
        add_wrt(&c, 0, "logits", cs[s].range > 4 ? 4.0 : cs[s].range);
        tu_node_name(b, "V=%lld T=%lld logits in +-%g g=%.4g", (long long)V, (long long)Tn, cs[s].range, (double)tu_getf(g, 0, 0, 0, 0));
        gc_check(r, &c);
    }
}

/* ---------------------------------------------------------------- CROSS_ENTROPY, SGD, ACC: against the host */

/* The loss in double; *mag = the sum of the magnitudes its f32 evaluation combines. */
static double ce_host(const tu_node *n, double *mag) {
    const tu_tensor *x = &n->src[0], *tg = &n->src[1];
    double loss = 0.0;
    *mag = 0.0;
    for (int64_t t = 0; t < x->ne[1]; t++) {
        int32_t c = tu_geti(tg, t, 0, 0, 0);
        if (c < 0) continue;
        double m = -INFINITY, sum = 0.0;
        for (int64_t v = 0; v < x->ne[0]; v++) m = fmax(m, tu_getf(x, v, t, 0, 0));
        for (int64_t v = 0; v < x->ne[0]; v++) sum += exp(tu_getf(x, v, t, 0, 0) - m);
        double xc = tu_getf(x, c, t, 0, 0);
        loss += m + log(sum) - xc;
        *mag += fabs(m) + fabs(log(sum)) + fabs(xc);
    }
    return loss;
}

#define CE_ULPS 64.0 /* f32 logs and exps of each term and an f32 sum of T of them */
#define SGD_ULPS 4.0 /* three f32 operations per result, each correctly rounded */

/* SGD's step in double against the backend's w (dst) and momentum buffer (src2), element by
 * element, each within SGD_ULPS units of roundoff of the magnitudes its f32 evaluation combines;
 * with exact, also bit for bit against the definition's f32 operations in their order. */
static bool sgd_host_check(const tu_node *n, const unsigned char *w, const unsigned char *mb, bool exact, char *why, size_t size) {
    const tu_tensor *tw = &n->src[0], *tg = &n->src[1], *tb = &n->src[2], *thp = &n->src[3];
    const double u = SGD_ULPS * F32_U, tiny = 1e-30;
    float hf[APR_SGD_HP_COUNT];
    for (int k = 0; k < APR_SGD_HP_COUNT; k++) hf[k] = tu_getf(thp, k, 0, 0, 0);
    const double lr = hf[APR_SGD_LR], mom = hf[APR_SGD_MOMENTUM], wd = hf[APR_SGD_WEIGHT_DECAY], gs = hf[APR_SGD_GSCALE];
    int64_t i[APR_MAX_DIMS];
    for (int64_t k = 0; k < tu_tensor_nelements(tw); k++) {
        tu_tensor_index(tw, k, i);
        const float w0f = tu_getf(tw, i[0], i[1], i[2], i[3]), gf = tu_getf(tg, i[0], i[1], i[2], i[3]);
        const float b0f = tu_getf(tb, i[0], i[1], i[2], i[3]);
        const double w0 = w0f, g = gf, b0 = b0f;
        double g1 = g * gs + wd * w0, b = mom * b0 + g1, x = w0 - lr * b;
        double eg = u * (fabs(g * gs) + fabs(wd * w0)) + tiny, eb = eg + u * (fabs(mom * b0) + fabs(b)) + tiny;
        double ex = lr * eb + u * (fabs(lr * b) + fabs(x)) + tiny;
        const double got[2] = {tu_load_f(APR_F32, w + tu_tensor_byte(tw, i)), tu_load_f(APR_F32, mb + tu_tensor_byte(tb, i))};
        const double expect[2] = {x, b}, bound[2] = {ex, eb};
        /* the definition's f32 operations in order (ISO C: nothing is contracted into an FMA) */
        const float t1 = gf * hf[APR_SGD_GSCALE], t2 = hf[APR_SGD_WEIGHT_DECAY] * w0f, g1f = t1 + t2;
        const float t3 = hf[APR_SGD_MOMENTUM] * b0f, bf = t3 + g1f, t4 = hf[APR_SGD_LR] * bf, xf = w0f - t4;
        const float exact_v[2] = {xf, bf};
        for (int o = 0; o < 2; o++) {
            if (!isfinite(got[o]) || !(fabs(got[o] - expect[o]) <= bound[o])) {
                snprintf(why, size, "%s element [%lld,%lld,%lld,%lld] is %.9g, want %.9g within %.3g", o ? "momentum" : "w",
                         (long long)i[0], (long long)i[1], (long long)i[2], (long long)i[3], got[o], expect[o], bound[o]);
                return false;
            }
            if (exact && (float)got[o] != exact_v[o]) {
                snprintf(why, size, "%s element [%lld,%lld,%lld,%lld] is %.9g, but the definition's f32 operations in order give "
                         "%.9g (an FMA or another order?)", o ? "momentum" : "w", (long long)i[0], (long long)i[1],
                         (long long)i[2], (long long)i[3], got[o], (double)exact_v[o]);
                return false;
            }
        }
    }
    return true;
}

/* ACC bit for bit: a + b is one correctly rounded f32 addition. */
static bool acc_host_check(const tu_node *n, const unsigned char *out, char *why, size_t size) {
    const tu_tensor *a = &n->src[0], *b = &n->src[1];
    int64_t i[APR_MAX_DIMS];
    for (int64_t k = 0; k < tu_tensor_nelements(a); k++) {
        tu_tensor_index(a, k, i);
        const float want = tu_getf(a, i[0], i[1], i[2], i[3]) + tu_getf(b, i[0], i[1], i[2], i[3]);
        const float got = tu_load_f(APR_F32, out + tu_tensor_byte(a, i));
        if (memcmp(&got, &want, 4) && !(isnan(got) && isnan(want))) {
            snprintf(why, size, "element [%lld,%lld,%lld,%lld] is %.9g, want %.9g", (long long)i[0], (long long)i[1],
                     (long long)i[2], (long long)i[3], (double)got, (double)want);
            return false;
        }
    }
    return true;
}

/* Runs one CROSS_ENTROPY, SGD or ACC node (and frees it): against the host, and CROSS_ENTROPY
 * also against the reference. */
static void host_check(gc_run *r, tu_node *n) {
    char text[640], msg[900];
    tu_node_text(n, text, sizeof text);
    const uint64_t size = n->in_place ? n->src[0].size : n->dst.size;
    unsigned char *got = malloc(size), *want = malloc(size), *mb = n->written ? malloc(n->src[2].size) : NULL;
    cr_assert(got && want && (!n->written || mb), "out of memory");
    n->written_out[2] = mb;
    tu_suite_watch(r->run.test.name, text);
    tu_outcome o = tu_node_run(&r->run.test, n, APR_OK, got, msg, sizeof msg);
    if (o == TU_DECLINED) {
        if (r->run.self_check) tu_suite_fail(&r->run, text, "the reference declined a valid case: %s", msg);
        else tu_suite_unsupported(&r->run, text, msg);
        goto done;
    }
    if (o == TU_BROKEN) {
        tu_suite_fail(&r->run, text, "%s", msg);
        goto done;
    }
    if (n->op == APR_OP_SGD && !sgd_host_check(n, got, mb, r->run.self_check, msg, sizeof msg)) {
        tu_suite_fail(&r->run, text, "against the host-computed step: %s", msg);
        goto done;
    }
    if (n->op == APR_OP_ACC && !acc_host_check(n, got, msg, sizeof msg)) {
        tu_suite_fail(&r->run, text, "against the host: %s", msg);
        goto done;
    }
    if (n->op == APR_OP_CROSS_ENTROPY) {
        double mag, loss = ce_host(n, &mag), v = tu_load_f(APR_F32, got + n->dst.offset);
        if (!isfinite(v) || !(fabs(v - loss) <= CE_ULPS * F32_U * mag + 1e-30)) {
            tu_suite_fail(&r->run, text, "the loss is %.9g, want %.9g within %.3g (computed in double)", v, loss, CE_ULPS * F32_U * mag);
            goto done;
        }
        if (!r->run.self_check) {
            n->written_out[2] = NULL;
            o = tu_node_run(&r->run.ref, n, APR_OK, want, msg, sizeof msg);
            if (o != TU_RAN) {
                tu_suite_fail(&r->run, text, "the reference %s: %s", o == TU_DECLINED ? "declined a valid case" : "failed", msg);
                goto done;
            }
            tu_cmp_result cmp = tu_compare(&n->dst, got, want, TU_CMP_NMSE, ref_tol_of(n->op, "")->max_nmse);
            if (!cmp.ok) {
                tu_suite_fail(&r->run, text, "against the reference: %s", cmp.msg);
                goto done;
            }
        }
    }
    r->run.passed++;
done:
    free(got);
    free(want);
    free(mb);
    memset(n->written_out, 0, sizeof n->written_out);
    tu_node_free(n);
}

static void cases_cross_entropy(gc_run *r) {
    static const struct { int64_t V, T; double range; int ll; } cs[] = {
        {5, 3, 4, C}, {1, 2, 4, C}, {16, 2, 4, C}, {33, 7, 4, C}, {100, 5, 4, P}, {1000, 4, 4, C}, {32000, 2, 4, C},
        {17, 6, 4, T}, {64, 3, 50, C}, {4099, 3, 1e-3, S2},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        tu_rng rng = tu_suite_next(&r->run);
        tu_node n;
        tu_node_init(&n, APR_OP_CROSS_ENTROPY, 2);
        tu_fill_uniform(tu_node_src(&n, 0, APR_F32, cs[s].V, cs[s].T, 1, 1, lays[cs[s].ll]), &rng, -cs[s].range, cs[s].range);
        fill_targets(tu_node_src(&n, 1, APR_I32, cs[s].T, 1, 1, 1, s % 2 ? TU_STEP2 : TU_CONTIG), &rng, cs[s].V);
        tu_node_dst(&n, APR_F32, 1, 1, 1, 1, TU_CONTIG);
        tu_node_name(&n, "V=%lld T=%lld logits in +-%g", (long long)cs[s].V, (long long)cs[s].T, cs[s].range);
        host_check(r, &n);
    }
}

/* The in-place ops over shapes and layouts of w (a), g (b) and the momentum buffer. */
static const struct { int64_t ne[4]; int lw, lg, lm; } inplace_shapes[] = {
    {{1, 1, 1, 1}, C, C, C},   {{7, 3, 1, 1}, C, C, C},   {{33, 5, 3, 2}, C, C, C}, {{4099, 2, 1, 1}, C, C, C},
    {{9000, 1, 1, 1}, C, C, C}, {{64, 8, 4, 1}, C, P, C}, {{37, 9, 2, 1}, T, C, S2}, {{31, 6, 1, 1}, P, S2, P},
    {{32, 16, 1, 1}, S2, T, P},
};
#define N_INPLACE_SHAPES (sizeof inplace_shapes / sizeof inplace_shapes[0])

static void cases_sgd(gc_run *r) {
    for (int first = 0; first < 2; first++)
        for (size_t s = 0; s < N_INPLACE_SHAPES; s++) {
            const int64_t *ne = inplace_shapes[s].ne;
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_node_init(&n, APR_OP_SGD, 4);
            n.in_place = true;
            n.written = 1u << 2;
            tu_fill_uniform(tu_node_src(&n, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[inplace_shapes[s].lw]), &rng, -1, 1);
            tu_fill_uniform(tu_node_src(&n, 1, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[inplace_shapes[s].lg]), &rng, -3, 3);
            tu_fill_uniform(tu_node_src(&n, 2, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[inplace_shapes[s].lm]), &rng, first ? 0 : -0.5,
                            first ? 0 : 0.5);
            tu_tensor *hp = tu_node_src(&n, 3, APR_F32, APR_SGD_HP_COUNT, 1, 1, 1, TU_CONTIG);
            const double h[APR_SGD_HP_COUNT] = {
                [APR_SGD_LR] = tu_rng_uniform(&rng, 1e-4, 0.1), [APR_SGD_MOMENTUM] = first ? 0.0 : tu_rng_uniform(&rng, 0.5, 0.99),
                [APR_SGD_WEIGHT_DECAY] = tu_rng_int(&rng, 0, 2) ? tu_rng_uniform(&rng, 0, 0.1) : 0.0,
                [APR_SGD_GSCALE] = tu_rng_uniform(&rng, 0.25, 2),
            };
            for (int k = 0; k < APR_SGD_HP_COUNT; k++) tu_setf(hp, k, 0, 0, 0, (float)h[k]);
            tu_tensor_init_like(&n.dst, &n.src[0]);
            tu_node_name(&n, "lr=%.3g momentum=%.3g wd=%.3g gscale=%.3g", h[APR_SGD_LR], h[APR_SGD_MOMENTUM], h[APR_SGD_WEIGHT_DECAY],
                      h[APR_SGD_GSCALE]);
            host_check(r, &n);
        }
}

static void cases_acc(gc_run *r) {
    for (int special = 0; special < 2; special++)
        for (size_t s = 0; s < N_INPLACE_SHAPES; s++) {
            const int64_t *ne = inplace_shapes[s].ne;
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_node_init(&n, APR_OP_ACC, 2);
            n.in_place = true;
            tu_tensor *a = tu_node_src(&n, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[inplace_shapes[s].lw]);
            tu_tensor *b = tu_node_src(&n, 1, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[inplace_shapes[s].lg]);
            if (special) { /* infinities, NaN, subnormals, ties: one addition must round as IEEE says */
                tu_fill_special(a, &rng);
                tu_fill_special(b, &rng);
            } else {
                tu_fill_uniform(a, &rng, -2, 2);
                tu_fill_uniform(b, &rng, -1e-3, 1e-3);
            }
            tu_tensor_init_like(&n.dst, &n.src[0]);
            tu_node_name(&n, "%s", special ? "special values" : "gradient sums");
            host_check(r, &n);
        }
}

static void gc_cases(gc_run *r) {
    switch (r->run.op) {
    case APR_OP_MATMUL_GRAD_X: cases_matmul_grad_x(r); break;
    case APR_OP_MATMUL_GRAD_W: cases_matmul_grad_w(r); break;
    case APR_OP_GET_ROWS_GRAD: cases_get_rows_grad(r); break;
    case APR_OP_SUM_REPEATS: cases_sum_repeats(r); break;
    case APR_OP_RMS_NORM_GRAD: cases_rms_norm_grad(r); break;
    case APR_OP_ROPE_GRAD: cases_rope_grad(r); break;
    case APR_OP_SOFTMAX_GRAD: cases_softmax_grad(r); break;
    case APR_OP_SILU_GRAD: case APR_OP_GELU_GRAD: cases_pointwise(r, r->run.op); break;
    case APR_OP_ATTENTION_GRAD: cases_attention_grad(r); break;
    case APR_OP_CROSS_ENTROPY: cases_cross_entropy(r); break;
    case APR_OP_CROSS_ENTROPY_GRAD: cases_cross_entropy_grad(r); break;
    case APR_OP_SGD: cases_sgd(r); break;
    case APR_OP_ACC: cases_acc(r); break;
    default: cr_assert_fail("no cases for op %u", (unsigned)r->run.op);
    }
}

/* ---------------------------------------------------------------- the tests */

static apr_registry *gc_open(const tu_backend_param *p, gc_run *r) {
    if (!p->backend[0])
        cr_skip_test("no backend other than the reference supports an ABI 5 op (%s); only the reference self-checks ran", p->note);
    return tu_suite_open(&r->run, p->backend, true);
}

static void gc_test(const tu_backend_param *p, uint32_t op) {
    gc_run r;
    memset(&r, 0, sizeof r);
    r.run.op = op;
    apr_registry *reg = gc_open(p, &r);
    gc_cases(&r);
    char backend[64], worst[1500] = "";
    snprintf(backend, sizeof backend, "%s", r.run.test.name);
    int len = 0;
    if (r.worst_fd_case[0])
        len = snprintf(worst, sizeof worst, "; worst finite-difference check used %.2g of its bound: %.600s", r.worst_fd, r.worst_fd_case);
    if (r.worst_nmse_case[0] && len >= 0 && (size_t)len < sizeof worst)
        snprintf(worst + len, sizeof worst - (size_t)len, "; worst case used %.2g of its nmse limit: %.600s", r.worst_nmse,
                 r.worst_nmse_case);
    fprintf(stderr, "%s %s: %ld passed, %ld failed, %ld unsupported%s [APR_TEST_SEED=%llu]%s\n", backend, tu_op_name(op), r.run.passed,
            r.run.failed, r.run.unsupported, r.run.self_check ? " (self-check)" : "", (unsigned long long)r.run.seed, worst);
    tu_tally_add(&tally, backend, r.run.passed, r.run.failed, r.run.unsupported);
    tu_suite_close(reg, &r.run);
    tu_suite_verdict(&r.run, backend, "checked");
}

/* Seconds per test; a healthy one takes about a second at -O2, a few under ASan. */
#define GC_TIMEOUT 60

#define GC_OP_TEST(name, op)                                                          \
    ParameterizedTestParameters(gradcheck, name) { return gc_params_ops(); }          \
    ParameterizedTest(tu_backend_param *p, gradcheck, name, .timeout = GC_TIMEOUT) { gc_test(p, op); }

GC_OP_TEST(matmul_grad_x, APR_OP_MATMUL_GRAD_X)
GC_OP_TEST(matmul_grad_w, APR_OP_MATMUL_GRAD_W)
GC_OP_TEST(get_rows_grad, APR_OP_GET_ROWS_GRAD)
GC_OP_TEST(sum_repeats, APR_OP_SUM_REPEATS)
GC_OP_TEST(rms_norm_grad, APR_OP_RMS_NORM_GRAD)
GC_OP_TEST(rope_grad, APR_OP_ROPE_GRAD)
GC_OP_TEST(softmax_grad, APR_OP_SOFTMAX_GRAD)
GC_OP_TEST(silu_grad, APR_OP_SILU_GRAD)
GC_OP_TEST(gelu_grad, APR_OP_GELU_GRAD)
GC_OP_TEST(attention_grad, APR_OP_ATTENTION_GRAD)
GC_OP_TEST(cross_entropy, APR_OP_CROSS_ENTROPY)
GC_OP_TEST(cross_entropy_grad, APR_OP_CROSS_ENTROPY_GRAD)
GC_OP_TEST(sgd, APR_OP_SGD)
GC_OP_TEST(acc, APR_OP_ACC)

/* A usable backend that supports none of the ABI 5 ops: one test that says so (skipped, never
 * passed), instead of one declined test per op. */
ParameterizedTestParameters(gradcheck, no_gradient_ops) { return gc_params_none(); }
ParameterizedTest(tu_backend_param *p, gradcheck, no_gradient_ops, .timeout = GC_TIMEOUT) {
    if (!p->backend[0]) return; /* every usable backend supports some ABI 5 op */
    tu_tally_add(&tally, p->backend, 0, 0, N_GRAD_OPS);
    cr_skip_test("%s supports none of the %d ABI 5 ops (matmul_grad_x .. acc); nothing was checked. First reason: %s", p->backend,
                 N_GRAD_OPS, p->note);
}

/* ---------------------------------------------------------------- errors */

/* One node that compute() must refuse with APR_ERR_INVALID (a bad id or target): counted in
 * *checked, *failed or *unsupported, and printed when it is not right. */
static void expect_invalid(gc_run *r, tu_node *n, long *checked, long *failed, long *unsupported) {
    char text[640], msg[900];
    tu_node_text(n, text, sizeof text);
    unsigned char *out = malloc(n->dst.size);
    cr_assert(out);
    tu_suite_watch(r->run.test.name, text);
    tu_outcome o = tu_node_run(&r->run.test, n, APR_ERR_INVALID, out, msg, sizeof msg);
    if (o == TU_DECLINED) {
        fprintf(stderr, "unsupported: %s %s: %s\n", r->run.test.name, text, msg);
        (*unsupported)++;
    } else if (o == TU_BROKEN) {
        fprintf(stderr, "FAIL: %s %s: %s [APR_TEST_SEED=%llu]\n", r->run.test.name, text, msg, (unsigned long long)r->run.seed);
        (*failed)++;
    } else (*checked)++;
    free(out);
    tu_node_free(n);
}

/* Malformed variants of small_node's nodes: supports() must decline each with a reason; the
 * well-formed node must pass on the reference (another backend may decline it). */
typedef struct malformed {
    uint32_t op;
    const char *what;
    void (*spoil)(tu_node *n);
} malformed;

static void reshape(tu_tensor *t, int64_t a, int64_t b, int64_t c, int64_t d) {
    uint32_t dtype = t->dtype;
    tu_tensor_free(t);
    tu_tensor_init(t, dtype, (const int64_t[APR_MAX_DIMS]){a, b, c, d}, TU_CONTIG);
}
static void spoil_attn_dst(tu_node *n) { reshape(&n->dst, n->dst.ne[0] - 1, 1, 1, 1); }
static void spoil_attn_dout(tu_node *n) { reshape(&n->src[4], 8, 3, 2, 1); } /* [Dv, T, H] instead of [Dv, H, T] */
static void spoil_attn_kv(tu_node *n) { reshape(&n->src[2], 8, 3, 1, 1); }   /* v with fewer keys than k */
static void spoil_sgd_place(tu_node *n) {
    n->in_place = false;
    tu_tensor_free(&n->dst);
    tu_tensor_init(&n->dst, APR_F32, n->src[0].ne, (tu_layout){{0}, {0}, 0, 4}); /* dst 4 elements past src0 */
}
static void spoil_sgd_hp(tu_node *n) { reshape(&n->src[3], 3, 1, 1, 1); }
static void spoil_acc_shape(tu_node *n) { reshape(&n->src[1], 8, 1, 1, 1); }
static void spoil_grad_w_batch(tu_node *n) {
    reshape(&n->src[0], 8, 3, 4, 1);
    reshape(&n->src[1], 4, 3, 4, 1);
    reshape(&n->dst, 8, 4, 3, 1); /* 3 does not divide 4 */
}
static void spoil_grad_x_rows(tu_node *n) { reshape(&n->src[1], 5, 3, 1, 1); } /* dY of 5 rows for W of 4 */
static void spoil_ce_g(tu_node *n) { reshape(&n->src[2], 2, 1, 1, 1); }
static void spoil_ce_dst(tu_node *n) { reshape(&n->dst, 8, 3, 1, 1); }
static void spoil_get_rows_ids(tu_node *n) { reshape(&n->src[1], 4, 1, 1, 1); }
static void spoil_sum_repeats(tu_node *n) { reshape(&n->dst, 3, 1, 1, 1); } /* 3 does not divide 8 */
static void spoil_rms_eps(tu_node *n) { n->fparams[0] = 0.0f; }
static void spoil_rope_rot(tu_node *n) { n->iparams[0] = 7; }
static void spoil_pointwise_shape(tu_node *n) { reshape(&n->src[1], 8, 2, 1, 1); }

static const malformed malformed_nodes[] = {
    {APR_OP_MATMUL_GRAD_X, "dY rows != W rows", spoil_grad_x_rows},
    {APR_OP_MATMUL_GRAD_W, "dst batch 3 of X batch 4", spoil_grad_w_batch},
    {APR_OP_GET_ROWS_GRAD, "4 ids for 3 columns of dY", spoil_get_rows_ids},
    {APR_OP_SUM_REPEATS, "dst ne[0] 3 of 8", spoil_sum_repeats},
    {APR_OP_RMS_NORM_GRAD, "eps 0", spoil_rms_eps},
    {APR_OP_ROPE_GRAD, "odd n_rot", spoil_rope_rot},
    {APR_OP_SILU_GRAD, "dY of another shape", spoil_pointwise_shape},
    {APR_OP_ATTENTION_GRAD, "dst one element short", spoil_attn_dst},
    {APR_OP_ATTENTION_GRAD, "dO [Dv, T, H]", spoil_attn_dout},
    {APR_OP_ATTENTION_GRAD, "v with 3 keys, k with 4", spoil_attn_kv},
    {APR_OP_CROSS_ENTROPY, "dst of 24 elements", spoil_ce_dst},
    {APR_OP_CROSS_ENTROPY_GRAD, "g of 2 elements", spoil_ce_g},
    {APR_OP_SGD, "dst is not src0", spoil_sgd_place},
    {APR_OP_SGD, "3 hyperparameters", spoil_sgd_hp},
    {APR_OP_ACC, "b of another shape", spoil_acc_shape},
};
#define N_MALFORMED (sizeof malformed_nodes / sizeof malformed_nodes[0])

/* supports() on small_node's well-formed nodes and their malformed variants; returns the wrong answers (each printed). */
static long errors_shapes(const tu_backend *b, bool runs_every_op, long *right) {
    long wrong = 0;
    for (uint32_t op = APR_OP_COUNT_V4; op < APR_OP_COUNT_V5; op++) {
        tu_node n;
        small_node(op, &n);
        char why[512];
        apr_status st = ask_supports(b, &n, why, sizeof why);
        if (runs_every_op && st != APR_OK) {
            fprintf(stderr, "FAIL: %s supports(%s, well-formed) returned %s (%s)\n", b->name, tu_op_name(op), apr_status_name(st), why);
            wrong++;
        } else (*right)++;
        tu_node_free(&n);
    }
    for (size_t k = 0; k < N_MALFORMED; k++) {
        tu_node n;
        small_node(malformed_nodes[k].op, &n);
        malformed_nodes[k].spoil(&n);
        char why[512];
        apr_status st = ask_supports(b, &n, why, sizeof why);
        if (st != APR_ERR_UNSUPPORTED || !why[0]) {
            fprintf(stderr, "FAIL: %s supports(%s, %s) returned %s (%s), want a decline with a reason\n", b->name,
                    tu_op_name(malformed_nodes[k].op), malformed_nodes[k].what, apr_status_name(st), why);
            wrong++;
        } else (*right)++;
        tu_node_free(&n);
    }
    return wrong;
}

/* Bad ids and targets are APR_ERR_INVALID from compute() (not a crash, not a write outside dst);
 * malformed nodes are declined by supports() with a reason. */
ParameterizedTestParameters(gradcheck, errors) { return gc_params_ops(); }
ParameterizedTest(tu_backend_param *p, gradcheck, errors, .timeout = GC_TIMEOUT) {
    gc_run r;
    memset(&r, 0, sizeof r);
    r.run.op = APR_OP_GET_ROWS_GRAD;
    apr_registry *reg = gc_open(p, &r);
    long checked = 0, failed = 0, unsupported = 0;
    static const int32_t bad[] = {5, -1, INT32_MAX, INT32_MIN};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        tu_rng rng = tu_suite_next(&r.run);
        tu_node n;
        tu_node_init(&n, APR_OP_GET_ROWS_GRAD, 2);
        tu_fill_uniform(tu_node_src(&n, 0, APR_F32, 8, 3, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_tensor *ids = tu_node_src(&n, 1, APR_I32, 3, 1, 1, 1, TU_CONTIG);
        tu_fill_int(ids, &rng, 0, 4);
        tu_seti(ids, (int64_t)(k % 3), 0, 0, 0, bad[k]);
        tu_node_dst(&n, APR_F32, 8, 5, 1, 1, TU_CONTIG);
        tu_node_name(&n, "ids[%zu]=%d with R=5", k % 3, (int)bad[k]);
        expect_invalid(&r, &n, &checked, &failed, &unsupported);
    }
    /* targets: V, -2 (only -1 means no loss), and the extremes; -1 elsewhere stays valid */
    static const int32_t bad_t[] = {8, -2, INT32_MAX, INT32_MIN};
    for (int grad = 0; grad < 2; grad++)
        for (size_t k = 0; k < sizeof bad_t / sizeof bad_t[0]; k++) {
            tu_rng rng = tu_suite_next(&r.run);
            tu_node n;
            const uint32_t op = grad ? APR_OP_CROSS_ENTROPY_GRAD : APR_OP_CROSS_ENTROPY;
            tu_node_init(&n, op, grad ? 3 : 2);
            tu_fill_uniform(tu_node_src(&n, 0, APR_F32, 8, 4, 1, 1, TU_CONTIG), &rng, -1, 1);
            tu_tensor *tg = tu_node_src(&n, 1, APR_I32, 4, 1, 1, 1, TU_CONTIG);
            tu_fill_int(tg, &rng, 0, 7);
            tu_seti(tg, (int64_t)((k + 1) % 4), 0, 0, 0, -1);
            tu_seti(tg, (int64_t)(k % 4), 0, 0, 0, bad_t[k]);
            if (grad) {
                tu_fill_uniform(tu_node_src(&n, 2, APR_F32, 1, 1, 1, 1, TU_CONTIG), &rng, 0.5, 1);
                tu_node_dst(&n, APR_F32, 8, 4, 1, 1, TU_CONTIG);
            } else tu_node_dst(&n, APR_F32, 1, 1, 1, 1, TU_CONTIG);
            tu_node_name(&n, "targets[%zu]=%d with V=8", k % 4, (int)bad_t[k]);
            expect_invalid(&r, &n, &checked, &failed, &unsupported);
        }
    long right = 0;
    const long wrong = errors_shapes(&r.run.test, r.run.self_check, &right);
    char backend[64];
    snprintf(backend, sizeof backend, "%s", r.run.test.name);
    fprintf(stderr, "%s errors: %ld bad ids/targets returned invalid, %ld failed, %ld unsupported; %ld of %ld supports() answers "
            "wrong\n", backend, checked, failed, unsupported, wrong, wrong + right);
    tu_tally_add(&tally, backend, checked + right, failed + wrong, unsupported);
    tu_suite_close(reg, &r.run);
    cr_assert_eq(failed, 0, "%s: %ld nodes with a bad id or target did not return APR_ERR_INVALID cleanly (see FAIL lines)", backend,
                 failed);
    cr_assert_eq(wrong, 0, "%s: %ld supports() answers on malformed or well-formed nodes were wrong (see FAIL lines)", backend, wrong);
}

/* test_conformance.c — every usable backend's ops checked case by case against the "reference" backend (ggml test-backend-ops style). */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/parameterized.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr.h"
#include "apr/apr_float16.h"
#include "apr/apr_quant.h"
#include "util/tu_backend.h"
#include "util/tu_rand.h"
#include "util/tu_suite.h"
#include "util/tu_tally.h"
#include "util/tu_tensor.h"

/*
 * How it works. Each Criterion test is one (backend, op): it builds that op's cases (every dtype
 * the op is defined for, a spread of shapes with odd sizes and sizes that are not multiples of
 * the 8/16-lane vector widths, large K, decode and prefill, strided and permuted views), fills
 * the inputs with fresh random numbers, runs each case as a one-node subgraph on the reference
 * and on the backend under test straight through their plugin tables (tu_node_run fences every
 * buffer with guard bytes and NaN-poisons dst), and compares the outputs by the rule for the op.
 * The reference itself gets a self-check pass: buffer discipline, finite outputs, and exact
 * host-computed results for the ops that only move data.
 *
 * Replaying a failure: every failure line prints the run's seed; APR_TEST_SEED=<seed> reruns
 * exactly the same inputs. APR_TEST_THREADS sets the worker count of the backends under test
 * (default 3, so work splits unevenly). --filter 'conformance/matmul' runs one op.
 */

/* ---------------------------------------------------------------- tolerances
 *
 * Largest normalised MSE, sum((got - want)^2) / sum(want^2), accepted per op and dtype, or exact
 * bit equality. ggml's tester uses 1e-7 by default and loosens it where a kernel legitimately
 * rounds more than the double-accumulating oracle; the same reasoning applies here. Every limit
 * stays far below what one wrong element costs: the cases keep outputs to at most a few
 * thousand elements, so a single wrong value (an error of the order of the value itself) gives
 * an NMSE above 1e-4.
 */
typedef struct tolerance {
    uint32_t op;
    const char *key;    /* the dtype (or regime) this row is for; "" = every case of the op */
    tu_cmp_mode mode;
    double max_nmse;    /* TU_CMP_NMSE only */
    const char *why;
} tolerance;

static const tolerance tolerances[] = {
    {APR_OP_GET_ROWS, "", TU_CMP_EXACT, 0,
     "a copy: widening f16/bf16 to f32 is exact, and a block row must give exactly apr_dequant_row's values"},
    {APR_OP_MATMUL, "f32", TU_CMP_NMSE, 1e-7, "f32 accumulation in any order against double: ~K*eps^2 << 1e-7 for K <= 1024"},
    {APR_OP_MATMUL, "f32-large-k", TU_CMP_NMSE, 1e-6,
     "K >= 2048: the f32 rounding of long sums grows with K; random-walk estimate ~1e-11, worst orders give far more"},
    {APR_OP_MATMUL, "f16", TU_CMP_NMSE, 1e-6,
     "admits kernels that round X to f16 for an f16 dot product (half-ulp 2^-11, squared 2.4e-7 even for K = 1)"},
    {APR_OP_MATMUL, "f16-wide-x", TU_CMP_NMSE, 1e-7,
     "X past f16's range: exact f16 W times f32 X, f32 accumulation (no kernel may round X to f16 here)"},
    {APR_OP_MATMUL, "bf16", TU_CMP_NMSE, 5e-5,
     "admits kernels that round X to bf16 for a bf16 dot product (half-ulp 2^-8, squared 1.5e-5 even for K = 1)"},
    /* Block weights: a backend may round each X row to 8-bit blocks (max|x|/127 per 32 or 256
     * elements, as ggml does), an error variance of step^2/12 per element: NMSE ~1.5e-5 for
     * uniform X whatever the weight format (the weights are exact, their rounding is part of the
     * definition). Measured worst over many seeds: ~9e-5 for cases of 16-64 outputs (now at least 32). */
    {APR_OP_MATMUL, "q4_0", TU_CMP_NMSE, 2e-4, "X rounded to Q8_0-style blocks of 32"},
    {APR_OP_MATMUL, "q4_1", TU_CMP_NMSE, 2e-4, "X rounded to blocks of 32; the min term uses exact block sums"},
    {APR_OP_MATMUL, "q5_0", TU_CMP_NMSE, 2e-4, "X rounded to Q8_0-style blocks of 32"},
    {APR_OP_MATMUL, "q5_1", TU_CMP_NMSE, 2e-4, "X rounded to blocks of 32; the min term uses exact block sums"},
    {APR_OP_MATMUL, "q8_0", TU_CMP_NMSE, 2e-4, "X rounded to Q8_0-style blocks of 32"},
    {APR_OP_MATMUL, "q4_K", TU_CMP_NMSE, 2e-4, "X rounded to Q8_K blocks of 256 (one scale per 256: a coarser step)"},
    {APR_OP_MATMUL, "q5_K", TU_CMP_NMSE, 2e-4, "X rounded to Q8_K blocks of 256"},
    {APR_OP_MATMUL, "q6_K", TU_CMP_NMSE, 2e-4, "X rounded to Q8_K blocks of 256"},
    {APR_OP_ADD, "", TU_CMP_EXACT, 0, "one IEEE addition per element is correctly rounded: any difference is a bug"},
    {APR_OP_MUL, "", TU_CMP_EXACT, 0, "one IEEE multiplication per element is correctly rounded"},
    {APR_OP_SCALE, "", TU_CMP_EXACT, 0, "one IEEE multiplication per element is correctly rounded"},
    {APR_OP_RMS_NORM, "", TU_CMP_NMSE, 1e-7, "a sum of squares, a square root and a division: a few ulps"},
    {APR_OP_ROPE, "", TU_CMP_NMSE, 1e-6,
     "positions up to 4096: an f32 angle (and a running product of base powers) is off by ~pos*eps = 2.4e-4 rad on the fast pairs"},
    {APR_OP_SOFTMAX, "", TU_CMP_NMSE, 1e-6, "exp-heavy: vectorised exp approximations have relative errors of a few 1e-7"},
    {APR_OP_SILU, "", TU_CMP_NMSE, 1e-6, "exp-heavy: vectorised exp approximations"},
    {APR_OP_GELU, "", TU_CMP_NMSE, 1e-6, "tanh through a vectorised exp approximation"},
    {APR_OP_SWIGLU, "", TU_CMP_NMSE, 1e-6, "silu's exp approximation, then one product"},
    {APR_OP_ATTENTION, "f32", TU_CMP_NMSE, 1e-6, "online softmax in f32 with a vectorised exp, rescaled partial sums"},
    {APR_OP_ATTENTION, "f16", TU_CMP_NMSE, 1e-5,
     "admits kernels that round q (and partial V sums) to f16 to use f16 k/v, as ggml's flash attention does"},
    {APR_OP_CPY, "", TU_CMP_EXACT, 0, "conversions are defined as round to nearest even: bits must match (NaN matches NaN)"},
    {APR_OP_CONCAT, "", TU_CMP_EXACT, 0, "moves bits"},
    {APR_OP_ARGMAX, "", TU_CMP_EXACT, 0, "an index"},
    {APR_OP_SET_ROWS, "", TU_CMP_EXACT, 0, "moves bits; f32 rows round to nearest even as cpy's do (NaN matches NaN)"},
    {APR_OP_ADAMW, "", TU_CMP_NMSE, 1e-12,
     "unused: every backend, the reference too, is judged element by element against the step in double (adamw_host_check)"},
};

static const tolerance *tol(uint32_t op, const char *key) {
    for (size_t i = 0; i < sizeof tolerances / sizeof tolerances[0]; i++)
        if (tolerances[i].op == op && (!tolerances[i].key[0] || !strcmp(tolerances[i].key, key))) return &tolerances[i];
    cr_assert_fail("no tolerance for op %u key '%s' (add a row to tolerances[])", (unsigned)op, key);
    return NULL;
}

/* ---------------------------------------------------------------- which backends */

/* The reference first (its self-check), then every other usable backend. Called in the runner
 * (and possibly again in each worker); the registry scan gives the same answer each time. */
static struct criterion_test_params conf_params(void) {
    static tu_backend_param params[TU_MAX_BACKENDS + 1];
    memset(params, 0, sizeof params);
    tu_backend_list list;
    tu_backend_list_scan(&list);
    size_t n = 0;
    snprintf(params[n++].backend, sizeof params[0].backend, "%s", TU_REFERENCE);
    for (int i = 0; i < list.n; i++) snprintf(params[n++].backend, sizeof params[0].backend, "%s", list.name[i]);
    if (!list.n) {
        /* A placeholder instance that says so, instead of the op quietly passing on the reference. */
        snprintf(params[n].note, sizeof params[n].note, "%s", list.rejected[0] ? list.rejected : "no other plugin was found");
        n++;
    }
    return cr_make_param_array(tu_backend_param, params, n);
}

/* ---------------------------------------------------------------- tally across test processes */

static const tu_tally tally = {.env = "APR_CONFORMANCE_TALLY", .tag = "conformance", .prefix = ""};
ReportHook(PRE_ALL)(struct criterion_test_set *set) { (void)set; tu_tally_start(&tally); }
ReportHook(POST_ALL)(struct criterion_global_stats *stats) { (void)stats; tu_tally_finish(&tally); }

/* ---------------------------------------------------------------- one test's run */

typedef struct conf_run {
    tu_suite_run run;       /* op, oracle and backend under test, seed, case counts */
    bool packed;            /* block-weight matmul cases on weights packed by the backend under test */
    double worst_ratio;     /* largest nmse / limit among passing NMSE cases */
    char worst_case[640];
} conf_run;

/* ---------------------------------------------------------------- SET_ROWS on the host */

/* Whether two of the ids are equal: the row that lands there is then one of theirs, unspecified which. */
static bool set_rows_repeats(const tu_node *n) {
    const tu_tensor *ids = &n->src[2];
    for (int64_t i = 0; i < ids->ne[0]; i++)
        for (int64_t j = 0; j < i; j++)
            if (tu_geti(ids, i, 0, 0, 0) == tu_geti(ids, j, 0, 0, 0)) return true;
    return false;
}

/* Element d of rows[:, i] as the table stores it: its own bytes, or the f32 rounded to the table's dtype. */
static void set_rows_elem(const tu_node *n, int64_t d, int64_t i, unsigned char out[4]) {
    const tu_tensor *table = &n->src[0], *rows = &n->src[1];
    const unsigned char *from = rows->data + tu_tensor_byte(rows, (const int64_t[APR_MAX_DIMS]){d, i, 0, 0});
    if (rows->dtype == table->dtype) memcpy(out, from, tu_dtype_size(table->dtype));
    else tu_store_f(table->dtype, out, tu_load_f(rows->dtype, from));
}

/* Whether table row r of out holds exactly rows[:, i] (a NaN that a conversion made may be any NaN). */
static bool set_rows_row_is(const tu_node *n, const unsigned char *out, int64_t r, int64_t i, int64_t *bad_d) {
    const tu_tensor *table = &n->src[0];
    const size_t es = tu_dtype_size(table->dtype);
    const bool converted = n->src[1].dtype != table->dtype;
    for (int64_t d = 0; d < table->ne[0]; d++) {
        unsigned char want[4];
        set_rows_elem(n, d, i, want);
        const unsigned char *got = out + tu_tensor_byte(table, (const int64_t[APR_MAX_DIMS]){d, r, 0, 0});
        if (memcmp(got, want, es) && !(converted && isnan(tu_load_f(table->dtype, got)) && isnan(tu_load_f(table->dtype, want)))) {
            *bad_d = d;
            return false;
        }
    }
    return true;
}

/* The definition checked byte by byte on out (the table's storage after the run): a row no id names
 * keeps every byte it had, and a named row holds one of the rows whose ids name it. */
static bool set_rows_check(const tu_node *n, const unsigned char *out, char *why, size_t size) {
    const tu_tensor *table = &n->src[0], *ids = &n->src[2];
    const size_t es = tu_dtype_size(table->dtype);
    for (int64_t r = 0; r < table->ne[1]; r++) {
        int64_t writers = 0, first_bad = -1, bad_d = 0;
        bool match = false;
        for (int64_t i = 0; i < ids->ne[0] && !match; i++) {
            if (tu_geti(ids, i, 0, 0, 0) != r) continue;
            writers++;
            int64_t d = 0;
            match = set_rows_row_is(n, out, r, i, &d);
            if (!match && first_bad < 0) first_bad = i, bad_d = d;
        }
        if (match) continue;
        if (writers) {
            unsigned char want[4];
            set_rows_elem(n, bad_d, first_bad, want);
            const unsigned char *got = out + tu_tensor_byte(table, (const int64_t[APR_MAX_DIMS]){bad_d, r, 0, 0});
            snprintf(why, size, "row %lld (ids[%lld] = %lld) element %lld is %.9g, want %.9g%s", (long long)r, (long long)first_bad,
                     (long long)r, (long long)bad_d, (double)tu_load_f(table->dtype, got), (double)tu_load_f(table->dtype, want),
                     set_rows_repeats(n) ? " (or another row of the same id)" : "");
            return false;
        }
        for (int64_t d = 0; d < table->ne[0]; d++) {
            const uint64_t off = tu_tensor_byte(table, (const int64_t[APR_MAX_DIMS]){d, r, 0, 0});
            if (memcmp(out + off, table->data + off, es)) {
                snprintf(why, size, "row %lld, which no id names, changed at element %lld (its bytes): %.9g -> %.9g", (long long)r,
                         (long long)d, (double)tu_load_f(table->dtype, table->data + off), (double)tu_load_f(table->dtype, out + off));
                return false;
            }
        }
    }
    return true;
}

/* An op's own check of a result beside the comparison: SET_ROWS's bytes, row by row. false + why. */
static bool result_check(const tu_node *n, const unsigned char *out, char *why, size_t size) {
    return n->op != APR_OP_SET_ROWS || set_rows_check(n, out, why, size);
}

/* A result the definition leaves partly open (SET_ROWS with repeated ids): result_check alone judges it. */
static bool result_open(const tu_node *n) { return n->op == APR_OP_SET_ROWS && set_rows_repeats(n); }

/* Expected results computed here for the ops that only move data (exactly defined, no
 * arithmetic), so the reference itself is checked, not just trusted. false: no host model. */
static bool host_expect(const tu_node *n, tu_tensor *want) {
    const tu_tensor *a = &n->src[0], *b = &n->src[1];
    int64_t ne = tu_tensor_nelements(&n->dst), i[APR_MAX_DIMS];
    size_t es = tu_dtype_size(n->dst.dtype);
    switch (n->op) {
    case APR_OP_GET_ROWS:
        if (tu_dtype_is_block(a->dtype)) { /* rows as apr_dequant_row defines them */
            float *row = malloc((size_t)a->ne[0] * sizeof(float));
            cr_assert(row, "out of memory");
            for (int64_t r = 0; r < n->dst.ne[1]; r++) {
                const int64_t at[APR_MAX_DIMS] = {0, tu_geti(b, r, 0, 0, 0), 0, 0};
                cr_assert(apr_dequant_row((apr_dtype)a->dtype, a->data + tu_tensor_byte(a, at), row, a->ne[0]));
                for (int64_t d = 0; d < a->ne[0]; d++) tu_setf(want, d, r, 0, 0, row[d]);
            }
            free(row);
            return true;
        }
        for (int64_t k = 0; k < ne; k++) {
            tu_tensor_index(&n->dst, k, i);
            tu_setf(want, i[0], i[1], 0, 0, tu_getf(a, i[0], tu_geti(b, i[1], 0, 0, 0), 0, 0));
        }
        return true;
    case APR_OP_CPY:
        for (int64_t k = 0; k < ne; k++) {
            tu_tensor_index(&n->dst, k, i);
            const unsigned char *from = a->data + tu_tensor_byte(a, i);
            unsigned char *to = want->data + tu_tensor_byte(want, i);
            if (a->dtype == want->dtype) memcpy(to, from, es);
            else tu_store_f(want->dtype, to, tu_load_f(a->dtype, from)); /* f32 holds every f16/bf16 exactly */
        }
        return true;
    case APR_OP_CONCAT: {
        int dim = n->iparams[0];
        for (int64_t k = 0; k < ne; k++) {
            tu_tensor_index(&n->dst, k, i);
            int64_t j[APR_MAX_DIMS] = {i[0], i[1], i[2], i[3]};
            const tu_tensor *from = a;
            if (j[dim] >= a->ne[dim]) {
                from = b;
                j[dim] -= a->ne[dim];
            }
            memcpy(want->data + tu_tensor_byte(want, i), from->data + tu_tensor_byte(from, j), es);
        }
        return true;
    }
    case APR_OP_SET_ROWS: /* distinct ids (result_open otherwise): the table with the named rows replaced */
        memcpy(want->data, a->data, a->size);
        for (int64_t r = 0; r < b->ne[1]; r++) {
            const int64_t id = tu_geti(&n->src[2], r, 0, 0, 0);
            for (int64_t d = 0; d < a->ne[0]; d++)
                set_rows_elem(n, d, r, want->data + tu_tensor_byte(want, (const int64_t[APR_MAX_DIMS]){d, id, 0, 0}));
        }
        return true;
    case APR_OP_ARGMAX:
        for (int64_t k = 0; k < ne; k++) {
            tu_tensor_index(&n->dst, k, i);
            int32_t best = -1;
            float best_v = 0.0f;
            for (int64_t j = 0; j < a->ne[0]; j++) {
                float v = tu_getf(a, j, i[0], i[1], i[2]);
                if (!isnan(v) && (best < 0 || v > best_v)) {
                    best = (int32_t)j;
                    best_v = v;
                }
            }
            tu_seti(want, i[0], i[1], i[2], 0, best < 0 ? 0 : best);
        }
        return true;
    default: return false;
    }
}

/* Runs one case (and frees it): on the reference, then on the backend under test, and judges. */
static bool further_check(conf_run *r, const tu_node *n, unsigned char *const *got, unsigned char *const *want,
                          const tolerance *t, const char *text);
static bool adamw_host_check(const tu_node *n, const unsigned char *w, unsigned char *const *mv, char *why, size_t size);

static void conf_check(conf_run *r, tu_node *n, const tolerance *t) {
    char text[640], msg[768];
    tu_node_text(n, text, sizeof text);
    unsigned char *want = malloc(n->dst.size), *got = malloc(n->dst.size);
    cr_assert(want && got, "out of memory");
    /* sources the node writes besides dst: the oracle's and the tested backend's copies */
    unsigned char *want_w[TU_MAX_SRC] = {0}, *got_w[TU_MAX_SRC] = {0};
    for (int i = 1; i < TU_MAX_SRC; i++)
        if (n->written >> i & 1u) {
            want_w[i] = malloc(n->src[i].size);
            got_w[i] = malloc(n->src[i].size);
            cr_assert(want_w[i] && got_w[i], "out of memory");
        }
    memcpy(n->written_out, want_w, sizeof want_w);

    tu_suite_watch(r->run.ref.name, text);
    /* the oracle reads the weight as it is; only the backend under test packs it */
    const bool pack = n->pack_src0;
    n->pack_src0 = false;
    tu_outcome o = tu_node_run(&r->run.ref, n, APR_OK, want, msg, sizeof msg);
    n->pack_src0 = pack;
    if (r->run.self_check) {
        tu_tensor host;
        tu_tensor_init_like(&host, &n->dst);
        char why[320];
        if (o == TU_DECLINED) tu_suite_fail(&r->run, text, "the reference declined a valid case: %s", msg);
        else if (o == TU_BROKEN) tu_suite_fail(&r->run, text, "%s", msg);
        else if (!result_check(n, want, why, sizeof why)) tu_suite_fail(&r->run, text, "%s", why);
        else if (n->op == APR_OP_ADAMW && !adamw_host_check(n, want, want_w, why, sizeof why))
            tu_suite_fail(&r->run, text, "against the host-computed step: %s", why);
        else if (result_open(n)) r->run.passed++;
        else if (host_expect(n, &host)) {
            tu_cmp_result c = tu_compare(&n->dst, want, host.data, TU_CMP_EXACT, 0);
            if (!c.ok) tu_suite_fail(&r->run, text, "against the host-computed result: %s", c.msg);
            else r->run.passed++;
        } else if (!tu_all_finite(&n->dst, want, why, sizeof why)) {
            tu_suite_fail(&r->run, text, "non-finite output from finite inputs: %s", why);
        } else r->run.passed++;
        tu_tensor_free(&host);
        goto done;
    }
    if (o != TU_RAN) {
        tu_suite_fail(&r->run, text, "the reference %s: %s", o == TU_DECLINED ? "declined a valid case" : "failed", msg);
        goto done;
    }
    tu_suite_watch(r->run.test.name, text);
    memcpy(n->written_out, got_w, sizeof got_w);
    o = tu_node_run(&r->run.test, n, APR_OK, got, msg, sizeof msg);
    if (o == TU_DECLINED) {
        tu_suite_unsupported(&r->run, text, msg);
        goto done;
    }
    if (o == TU_BROKEN) {
        tu_suite_fail(&r->run, text, "%s", msg);
        goto done;
    }
    if (!result_check(n, got, msg, sizeof msg)) {
        tu_suite_fail(&r->run, text, "%s", msg);
        goto done;
    }
    if (result_open(n)) { /* the reference's choice among repeated ids binds no one */
        r->run.passed++;
        goto done;
    }
    if (n->op == APR_OP_ADAMW) { /* judged against the exact step, as the reference was */
        if (adamw_host_check(n, got, got_w, msg, sizeof msg)) r->run.passed++;
        else tu_suite_fail(&r->run, text, "against the host-computed step: %s", msg);
        goto done;
    }
    tu_cmp_result c = tu_compare(&n->dst, got, want, t->mode, t->max_nmse);
    if (!c.ok) {
        tu_suite_fail(&r->run, text, "%s", c.msg);
        goto done;
    }
    if (!further_check(r, n, got_w, want_w, t, text)) goto done;
    r->run.passed++;
    if (t->mode == TU_CMP_NMSE && t->max_nmse > 0 && c.nmse / t->max_nmse >= r->worst_ratio) {
        r->worst_ratio = c.nmse / t->max_nmse;
        snprintf(r->worst_case, sizeof r->worst_case, "%s", text);
    }
done:
    free(want);
    free(got);
    for (int i = 0; i < TU_MAX_SRC; i++) {
        free(want_w[i]);
        free(got_w[i]);
    }
    memset(n->written_out, 0, sizeof n->written_out);
    tu_node_free(n);
}

/* The further sources the node wrote in place, each judged as dst is. false (and reported) on the first miss. */
static bool further_check(conf_run *r, const tu_node *n, unsigned char *const *got, unsigned char *const *want,
                          const tolerance *t, const char *text) {
    for (int i = 1; i < TU_MAX_SRC; i++) {
        if (!(n->written >> i & 1u)) continue;
        tu_cmp_result c = tu_compare(&n->src[i], got[i], want[i], t->mode, t->max_nmse);
        if (!c.ok) {
            tu_suite_fail(&r->run, text, "src%d (written in place): %s", i, c.msg);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- ADAMW on the host */

/* The step in double from the definition, against a backend's f32 parameters (w) and moments
 * (mv[2], mv[3]), element by element: each within ADAMW_ULPS units of roundoff (2^-24) of the
 * magnitudes its f32 evaluation adds and divides (so that m = beta1 m + (1 - beta1) g, which may
 * cancel, is judged by the size of its terms, not of its result), and finite. */
#define ADAMW_ULPS 16.0
static bool adamw_host_check(const tu_node *n, const unsigned char *w, unsigned char *const *mv, char *why, size_t size) {
    const tu_tensor *tw = &n->src[0], *tg = &n->src[1], *tm = &n->src[2], *tv = &n->src[3], *thp = &n->src[4];
    double h[APR_ADAMW_HP_COUNT];
    for (int k = 0; k < APR_ADAMW_HP_COUNT; k++) h[k] = tu_getf(thp, k, 0, 0, 0);
    const tu_tensor *layout[3] = {tw, tm, tv};
    const unsigned char *got[3] = {w, mv[2], mv[3]};
    const double u = ADAMW_ULPS * 0x1p-24, tiny = 1e-30;
    int64_t ne = tu_tensor_nelements(tw), i[APR_MAX_DIMS];
    for (int64_t k = 0; k < ne; k++) {
        tu_tensor_index(tw, k, i);
        const double b1 = h[APR_ADAMW_BETA1], b2 = h[APR_ADAMW_BETA2], lr = h[APR_ADAMW_LR], wd = h[APR_ADAMW_WEIGHT_DECAY];
        double g = (double)tu_getf(tg, i[0], i[1], i[2], i[3]) * h[APR_ADAMW_GSCALE];
        double m0 = tu_getf(tm, i[0], i[1], i[2], i[3]), v0 = tu_getf(tv, i[0], i[1], i[2], i[3]);
        double m = b1 * m0 + (1.0 - b1) * g, v = b2 * v0 + (1.0 - b2) * g * g;
        double x0 = tu_getf(tw, i[0], i[1], i[2], i[3]);
        double den = sqrt(v * h[APR_ADAMW_C2]) + h[APR_ADAMW_EPS], q = m * h[APR_ADAMW_C1] / den;
        double step = wd * x0 + q, x = x0 - lr * step;
        /* error bounds of the f32 evaluation, each operation's roundoff on the magnitudes it combines */
        double em = u * (fabs(b1 * m0) + fabs((1.0 - b1) * g)) + tiny, ev = u * v + tiny;
        double eq = em * h[APR_ADAMW_C1] / den + u * fabs(q), es = eq + u * (fabs(wd * x0) + fabs(q));
        double ex = lr * es + u * (fabs(x0) + fabs(lr * step)) + tiny;
        const double expect[3] = {x, m, v}, bound[3] = {ex, em, ev};
        for (int o = 0; o < 3; o++) {
            double a = tu_load_f(APR_F32, got[o] + tu_tensor_byte(layout[o], i));
            if (!isfinite(a) || !(fabs(a - expect[o]) <= bound[o])) {
                snprintf(why, size, "%s element [%lld,%lld,%lld,%lld] is %.9g, want %.9g within %.3g", o ? (o == 1 ? "m" : "v") : "w",
                         (long long)i[0], (long long)i[1], (long long)i[2], (long long)i[3], a, expect[o], bound[o]);
                return false;
            }
        }
    }
    return true;
}

/* ---------------------------------------------------------------- cases per op */

static const uint32_t float_dtypes[] = {APR_F32, APR_F16, APR_BF16};
#define N_FLOAT_DTYPES 3

/* A cache slice: k/v [D, S, Hkv] inside a buffer with room for more positions. */
#define CONF_KV_SLICE ((tu_layout){{0}, {0, 5, 0, 0}, 0, 0})

static void cases_get_rows(conf_run *r) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {16, 10, 16}, {33, 100, 17}, {129, 3, 40}, {4100, 6, 3}};
    for (int di = 0; di < N_FLOAT_DTYPES; di++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int strided = 0; strided < 2; strided++) {
                int64_t D = shapes[s][0], R = shapes[s][1], N = shapes[s][2];
                tu_rng rng = tu_suite_next(&r->run);
                tu_node n;
                tu_node_init(&n, APR_OP_GET_ROWS, 2);
                tu_fill_uniform(tu_node_src(&n, 0, float_dtypes[di], D, R, 1, 1, strided ? TU_PADDED : TU_CONTIG), &rng, -1, 1);
                tu_tensor *ids = tu_node_src(&n, 1, APR_I32, N, 1, 1, 1, strided ? TU_STEP2 : TU_CONTIG);
                tu_fill_int(ids, &rng, 0, R - 1);
                tu_seti(ids, 0, 0, 0, 0, (int32_t)(R - 1)); /* both ends of the table */
                tu_seti(ids, N - 1, 0, 0, 0, 0);
                tu_node_dst(&n, APR_F32, D, N, 1, 1, strided ? TU_PADDED : TU_CONTIG);
                tu_node_name(&n, "D=%lld R=%lld N=%lld", (long long)D, (long long)R, (long long)N);
                conf_check(r, &n, tol(APR_OP_GET_ROWS, ""));
            }
}

/* Rounds every element of t (f32) to dtype's precision, keeping it f32. A kernel that rounds X
 * to W's 16-bit type errs by up to half an ulp of each x*w term, and with a handful of outputs
 * one near zero (terms that cancel) makes that a large NMSE: K = 7, N = 3 fails 1e-6 about once
 * in 100 seeds (simulated; cpu-neon met it in CI). Cases with that few outputs test shapes and
 * tails, so their X is exact in the 16-bit type; the cases of 32 or more outputs still measure
 * the rounding against the bound. */
static void round_through(tu_tensor *t, uint32_t dtype) {
    unsigned char b[4];
    for (int64_t k = 0; k < tu_tensor_nelements(t); k++) {
        int64_t i[APR_MAX_DIMS];
        tu_tensor_index(t, k, i);
        tu_store_f(dtype, b, tu_getf(t, i[0], i[1], i[2], i[3]));
        tu_setf(t, i[0], i[1], i[2], i[3], tu_load_f(dtype, b));
    }
}

/* The long-K cases have at least 32 outputs: a kernel may round X to f16 (or bf16) for its dot
 * products, a random error per output, and NMSE over two or three outputs swings by 100x with
 * the size of the reference values (one near zero is enough). */
static void cases_matmul(conf_run *r) {
    enum { C, P, T }; /* contiguous, padded, transposed */
    static const struct { int64_t K, N, M, B2, B3, Bw2, Bw3; int wl, xl, dl; } cs[] = {
        {1, 1, 1, 1, 1, 1, 1, C, C, C},       {7, 3, 1, 1, 1, 1, 1, C, C, C},
        {16, 16, 1, 1, 1, 1, 1, C, C, C},     {33, 17, 5, 1, 1, 1, 1, C, C, C},
        {64, 40, 1, 1, 1, 1, 1, C, C, C},     {96, 65, 9, 1, 1, 1, 1, C, C, C},
        {130, 67, 70, 1, 1, 1, 1, C, C, C},   {257, 31, 2, 1, 1, 1, 1, C, C, C},
        {48, 8, 33, 1, 1, 1, 1, C, C, C},     {256, 1000, 1, 1, 1, 1, 1, C, C, C},
        {4096, 35, 1, 1, 1, 1, 1, C, C, C},   {4097, 34, 3, 1, 1, 1, 1, C, C, C},
        {8192, 33, 1, 1, 1, 1, 1, C, C, C},   {4096, 8, 16, 1, 1, 1, 1, C, C, C},
        {32, 9, 5, 4, 2, 2, 1, C, C, C},      {17, 6, 3, 3, 1, 3, 1, C, C, C},
        {40, 5, 1, 6, 1, 1, 1, C, C, C},      {64, 24, 7, 1, 1, 1, 1, C, P, C},
        {64, 24, 7, 1, 1, 1, 1, C, T, C},     {33, 17, 13, 1, 1, 1, 1, P, C, C},
        {33, 17, 13, 1, 1, 1, 1, T, C, C},    {4096, 36, 2, 1, 1, 1, 1, C, P, C},
        {65, 19, 3, 1, 1, 1, 1, C, C, P},     {24, 7, 4, 2, 2, 2, 2, P, T, P},
    };
    const tu_layout lays[] = {TU_CONTIG, TU_PADDED, TU_TRANSPOSED};
    for (int di = 0; di < N_FLOAT_DTYPES; di++)
        for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_node_init(&n, APR_OP_MATMUL, 2);
            tu_fill_uniform(tu_node_src(&n, 0, float_dtypes[di], cs[s].K, cs[s].N, cs[s].Bw2, cs[s].Bw3, lays[cs[s].wl]), &rng, -1, 1);
            tu_tensor *x = tu_node_src(&n, 1, APR_F32, cs[s].K, cs[s].M, cs[s].B2, cs[s].B3, lays[cs[s].xl]);
            tu_fill_uniform(x, &rng, -1, 1);
            if (float_dtypes[di] != APR_F32 && cs[s].N * cs[s].M * cs[s].B2 * cs[s].B3 < 32)
                round_through(x, float_dtypes[di]);
            tu_node_dst(&n, APR_F32, cs[s].N, cs[s].M, cs[s].B2, cs[s].B3, lays[cs[s].dl]);
            tu_node_name(&n, "K=%lld N=%lld M=%lld", (long long)cs[s].K, (long long)cs[s].N, (long long)cs[s].M);
            const char *key = float_dtypes[di] == APR_F16 ? "f16" : float_dtypes[di] == APR_BF16 ? "bf16"
                            : cs[s].K >= 2048 ? "f32-large-k" : "f32";
            conf_check(r, &n, tol(APR_OP_MATMUL, key));
        }
    /* f16 W against X past f16's range (decode shapes, one row of X in range): a kernel that
     * rounds X to f16 would turn these into inf, so it must keep f32 X */
    static const int64_t wide[][3] = {{256, 40, 1}, {96, 33, 3}, {5632, 8, 1}};
    for (size_t s = 0; s < sizeof wide / sizeof wide[0]; s++) {
        tu_rng rng = tu_suite_next(&r->run);
        tu_node n;
        tu_node_init(&n, APR_OP_MATMUL, 2);
        tu_fill_uniform(tu_node_src(&n, 0, APR_F16, wide[s][0], wide[s][1], 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_tensor *x = tu_node_src(&n, 1, APR_F32, wide[s][0], wide[s][2], 1, 1, TU_CONTIG);
        tu_fill_uniform(x, &rng, -2e5, 2e5);
        for (int64_t k = 0; wide[s][2] > 1 && k < wide[s][0]; k++) tu_setf(x, k, 0, 0, 0, tu_getf(x, k, 0, 0, 0) * 1e-5f);
        tu_node_dst(&n, APR_F32, wide[s][1], wide[s][2], 1, 1, TU_CONTIG);
        tu_node_name(&n, "f16 W, X in +-2e5, K=%lld N=%lld M=%lld", (long long)wide[s][0], (long long)wide[s][1],
                  (long long)wide[s][2]);
        conf_check(r, &n, tol(APR_OP_MATMUL, "f16-wide-x"));
    }
}

/* The weight block types, with the block size each one's shapes are built from. */
static const uint32_t block_dtypes[] = {APR_Q4_0, APR_Q4_1, APR_Q5_0, APR_Q5_1, APR_Q8_0, APR_Q4_K, APR_Q5_K, APR_Q6_K};
#define N_BLOCK_DTYPES 8

static int64_t block_of(uint32_t dtype) { return dtype == APR_Q4_K || dtype == APR_Q5_K || dtype == APR_Q6_K ? 256 : 32; }

static void cases_get_rows_block(conf_run *r) {
    /* D in blocks */
    static const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 3}, {1, 100, 17}, {16, 6, 4}, {22, 3, 2}};
    for (int di = 0; di < N_BLOCK_DTYPES; di++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            uint32_t dt = block_dtypes[di];
            int64_t D = shapes[s][0] * block_of(dt), R = shapes[s][1], N = shapes[s][2];
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_node_init(&n, APR_OP_GET_ROWS, 2);
            tu_fill_quant(tu_node_src(&n, 0, dt, D, R, 1, 1, s % 2 ? TU_PADDED : TU_CONTIG), &rng, -1, 1, true);
            tu_tensor *ids = tu_node_src(&n, 1, APR_I32, N, 1, 1, 1, TU_CONTIG);
            tu_fill_int(ids, &rng, 0, R - 1);
            tu_seti(ids, 0, 0, 0, 0, (int32_t)(R - 1));
            tu_node_dst(&n, APR_F32, D, N, 1, 1, s % 2 ? TU_PADDED : TU_CONTIG);
            tu_node_name(&n, "%s D=%lld R=%lld N=%lld", tu_dtype_name(dt), (long long)D, (long long)R, (long long)N);
            conf_check(r, &n, tol(APR_OP_GET_ROWS, ""));
        }
}

/* Decode (M = 1..4) and prefill shapes for every block format: K in blocks, tails of N that are
 * not multiples of kernel tiles, batches with weight broadcast, strided X and dst, padded W rows.
 * Every case has at least 32 outputs: rounding X to 8 bits is a random error of ~1.5e-5 in NMSE,
 * and for a single output the NMSE is that error over one value that may be near zero. */
static void cases_matmul_block(conf_run *r) {
    enum { C, P, T };
    static const struct { int64_t Kb, N, M, B2, B3, Bw2, Bw3; int wl, xl, dl; } cs[] = {
        {1, 32, 1, 1, 1, 1, 1, C, C, C},   {1, 33, 1, 1, 1, 1, 1, C, C, C},   {2, 67, 5, 1, 1, 1, 1, C, C, C},
        {3, 33, 17, 1, 1, 1, 1, C, C, C},  {4, 130, 2, 1, 1, 1, 1, C, C, C},  {16, 32, 1, 1, 1, 1, 1, C, C, C},
        {22, 11, 3, 1, 1, 1, 1, C, C, C},  {2, 9, 5, 4, 2, 2, 1, C, C, C},    {3, 24, 7, 1, 1, 1, 1, C, P, C},
        {2, 24, 7, 1, 1, 1, 1, C, T, C},   {2, 17, 13, 1, 1, 1, 1, P, C, C},  {5, 19, 4, 1, 1, 1, 1, C, C, P},
        {1, 64, 40, 1, 1, 1, 1, C, C, C},
        /* decode over enough 16-row groups that packed kernels read them as 2, 4 or 8 streams: a
         * whole number of rounds ending in a short group, and rounds with groups left over */
        {2, 251, 1, 1, 1, 1, 1, C, C, C},  {1, 471, 1, 1, 1, 1, 1, C, C, C},  {1, 3101, 1, 1, 1, 1, 1, C, C, C},
    };
    const tu_layout lays[] = {TU_CONTIG, TU_PADDED, TU_TRANSPOSED};
    for (int di = 0; di < N_BLOCK_DTYPES; di++)
        for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
            uint32_t dt = block_dtypes[di];
            int64_t K = cs[s].Kb * block_of(dt);
            /* packed weights are 2-D and dense (apr_abi.h, weight_pack) */
            if (r->packed && (cs[s].Bw2 != 1 || cs[s].Bw3 != 1 || cs[s].wl != C)) continue;
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_node_init(&n, APR_OP_MATMUL, 2);
            n.pack_src0 = r->packed;
            tu_fill_quant(tu_node_src(&n, 0, dt, K, cs[s].N, cs[s].Bw2, cs[s].Bw3, lays[cs[s].wl]), &rng, -1, 1, true);
            tu_fill_uniform(tu_node_src(&n, 1, APR_F32, K, cs[s].M, cs[s].B2, cs[s].B3, lays[cs[s].xl]), &rng, -1, 1);
            tu_node_dst(&n, APR_F32, cs[s].N, cs[s].M, cs[s].B2, cs[s].B3, lays[cs[s].dl]);
            tu_node_name(&n, "%s%s K=%lld N=%lld M=%lld", r->packed ? "packed " : "", tu_dtype_name(dt), (long long)K,
                      (long long)cs[s].N, (long long)cs[s].M);
            conf_check(r, &n, tol(APR_OP_MATMUL, tu_dtype_name(dt)));
        }
}

static void cases_add_mul(conf_run *r, uint32_t op) {
    enum { C, P, T, S };
    static const struct { int64_t a[4], b[4]; int al, bl, dl; } cs[] = {
        {{1, 1, 1, 1}, {1, 1, 1, 1}, C, C, C},     {{7, 3, 1, 1}, {7, 1, 1, 1}, C, C, C},
        {{33, 5, 3, 2}, {1, 5, 1, 2}, C, C, C},    {{4099, 2, 1, 1}, {4099, 1, 1, 1}, C, C, C},
        {{17, 1, 1, 1}, {1, 1, 1, 1}, C, C, C},    {{64, 8, 4, 1}, {64, 8, 4, 1}, C, C, C},
        {{16, 4, 3, 2}, {16, 1, 3, 1}, C, C, C},   {{37, 9, 2, 1}, {37, 1, 1, 1}, T, C, C},
        {{37, 9, 2, 1}, {37, 9, 2, 1}, C, P, P},   {{32, 16, 1, 1}, {32, 16, 1, 1}, S, T, C},
        {{24, 6, 2, 2}, {8, 3, 1, 2}, P, C, P},
    };
    const tu_layout lays[] = {TU_CONTIG, TU_PADDED, TU_TRANSPOSED, TU_STEP2};
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        tu_rng rng = tu_suite_next(&r->run);
        tu_node n;
        tu_node_init(&n, op, 2);
        const int64_t *a = cs[s].a, *b = cs[s].b;
        tu_fill_uniform(tu_node_src(&n, 0, APR_F32, a[0], a[1], a[2], a[3], lays[cs[s].al]), &rng, -2, 2);
        tu_fill_uniform(tu_node_src(&n, 1, APR_F32, b[0], b[1], b[2], b[3], lays[cs[s].bl]), &rng, -2, 2);
        tu_node_dst(&n, APR_F32, a[0], a[1], a[2], a[3], lays[cs[s].dl]);
        tu_node_name(&n, "b repeats %lldx%lldx%lldx%lld", (long long)(a[0] / b[0]), (long long)(a[1] / b[1]),
                  (long long)(a[2] / b[2]), (long long)(a[3] / b[3]));
        conf_check(r, &n, tol(op, ""));
    }
}

/* Shapes shared by the element-wise unary ops, with the source and dst layouts to use. */
static const struct { int64_t ne[4]; int sl, dl; } unary_shapes[] = {
    {{1, 1, 1, 1}, 0, 0},  {{7, 3, 1, 1}, 0, 0},  {{33, 5, 3, 2}, 0, 0}, {{4099, 2, 1, 1}, 0, 0},
    {{64, 8, 4, 1}, 0, 0}, {{37, 9, 2, 1}, 2, 0}, {{31, 6, 1, 1}, 0, 1}, {{32, 16, 1, 1}, 3, 1},
};
static const tu_layout unary_lays[] = {TU_CONTIG, TU_PADDED, TU_TRANSPOSED, TU_STEP2};
#define N_UNARY_SHAPES (sizeof unary_shapes / sizeof unary_shapes[0])

/* SCALE, SILU, GELU over uniform inputs in [-range, range]. */
static void cases_unary(conf_run *r, uint32_t op, const double *ranges, int n_ranges) {
    for (int ri = 0; ri < n_ranges; ri++)
        for (size_t s = 0; s < N_UNARY_SHAPES; s++) {
            const int64_t *ne = unary_shapes[s].ne;
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_node_init(&n, op, 1);
            /* A lone element's NMSE is its squared relative error, meaningless in the far tails
             * where the exact value is ~1e-9 and any f32 evaluation of 1 + tanh (or of exp past its
             * range) rounds to 0: lone elements stay in +-2, the tails are covered by the larger
             * shapes, where such values weigh what they are worth. */
            double range = ne[0] * ne[1] * ne[2] * ne[3] == 1 && ranges[ri] > 2 ? 2 : ranges[ri];
            tu_fill_uniform(tu_node_src(&n, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[unary_shapes[s].sl]), &rng,
                            -range, range);
            tu_node_dst(&n, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[unary_shapes[s].dl]);
            if (op == APR_OP_SCALE) n.fparams[0] = (float)tu_rng_uniform(&rng, -3, 3);
            tu_node_name(&n, "x in +-%g%s", range, op == APR_OP_SCALE ? " scale" : "");
            if (op == APR_OP_SCALE) {
                size_t len = strlen(n.name);
                snprintf(n.name + len, sizeof n.name - len, "=%.9g", (double)n.fparams[0]);
            }
            conf_check(r, &n, tol(op, ""));
        }
}

static void cases_swiglu(conf_run *r) {
    for (size_t s = 0; s < N_UNARY_SHAPES; s++) {
        const int64_t *ne = unary_shapes[s].ne;
        tu_rng rng = tu_suite_next(&r->run);
        tu_node n;
        tu_node_init(&n, APR_OP_SWIGLU, 2);
        tu_fill_uniform(tu_node_src(&n, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[unary_shapes[s].sl]), &rng, -8, 8);
        /* up uses a different layout from gate, so each source's strides are honoured on their own */
        tu_fill_uniform(tu_node_src(&n, 1, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[(unary_shapes[s].sl + 1) % 4]), &rng, -2, 2);
        tu_node_dst(&n, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[unary_shapes[s].dl]);
        tu_node_name(&n, "gate in +-8, up in +-2");
        conf_check(r, &n, tol(APR_OP_SWIGLU, ""));
    }
}

static void cases_rms_norm(conf_run *r) {
    static const struct { int64_t ne[4]; double range; int sl, dl; } cs[] = {
        {{1, 1, 1, 1}, 2, 0, 0},    {{7, 3, 1, 1}, 2, 0, 0},    {{16, 4, 1, 1}, 2, 0, 0},  {{33, 5, 2, 1}, 2, 0, 0},
        {{128, 8, 1, 1}, 2, 0, 0},  {{4096, 3, 1, 1}, 2, 0, 0}, {{4099, 2, 1, 1}, 2, 0, 0}, {{100, 3, 2, 2}, 2, 0, 0},
        {{64, 4, 1, 1}, 1000, 0, 0}, {{64, 4, 1, 1}, 1e-3, 0, 0}, {{65, 7, 2, 1}, 2, 1, 1}, {{40, 9, 1, 1}, 2, 2, 0},
        {{48, 5, 1, 1}, 2, 3, 1},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        const int64_t *ne = cs[s].ne;
        tu_rng rng = tu_suite_next(&r->run);
        tu_node n;
        tu_node_init(&n, APR_OP_RMS_NORM, 1);
        tu_fill_uniform(tu_node_src(&n, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[cs[s].sl]), &rng, -cs[s].range, cs[s].range);
        tu_node_dst(&n, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[cs[s].dl]);
        n.fparams[0] = tu_rng_int(&rng, 0, 1) ? 1e-5f : 1e-6f;
        tu_node_name(&n, "x in +-%g eps=%g", cs[s].range, (double)n.fparams[0]);
        conf_check(r, &n, tol(APR_OP_RMS_NORM, ""));
    }
}

static void cases_rope(conf_run *r) {
    enum { C, P, Q }; /* contiguous, padded (a slice of a fused row), q-style permute of [D, T, H] storage */
    static const struct { int64_t D, H, T, n_rot; int xl, dl; } cs[] = {
        {2, 1, 1, 2, C, C},    {8, 3, 5, 8, C, C},   {64, 4, 7, 64, C, C},  {128, 2, 3, 128, C, C},
        {80, 3, 4, 64, C, C},  {34, 2, 3, 16, C, C}, {96, 5, 17, 96, C, C}, {6, 1, 9, 4, C, C},
        {64, 3, 5, 64, P, C},  {64, 3, 5, 48, Q, C}, {32, 2, 6, 32, C, P},
    };
    const tu_layout lays[] = {TU_CONTIG, TU_PADDED, TU_PERM(0, 2, 1, 3)};
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++)
        for (int layout = 0; layout < 2; layout++)
            for (int with_ff = 0; with_ff < 2; with_ff++) {
                tu_rng rng = tu_suite_next(&r->run);
                tu_node n;
                tu_node_init(&n, APR_OP_ROPE, with_ff ? 3 : 2);
                tu_fill_uniform(tu_node_src(&n, 0, APR_F32, cs[s].D, cs[s].H, cs[s].T, 1, lays[cs[s].xl]), &rng, -2, 2);
                /* positions: half the cases a random run of consecutive tokens, half random jumps,
                 * all within [0, 4096] (long contexts stress the angle's precision) */
                tu_tensor *pos = tu_node_src(&n, 1, APR_I32, cs[s].T, 1, 1, 1, cs[s].xl == P ? TU_STEP2 : TU_CONTIG);
                if (tu_rng_int(&rng, 0, 1)) {
                    int32_t p0 = (int32_t)tu_rng_int(&rng, 0, 4096 - cs[s].T);
                    for (int64_t t = 0; t < cs[s].T; t++) tu_seti(pos, t, 0, 0, 0, p0 + (int32_t)t);
                } else {
                    tu_fill_int(pos, &rng, 0, 4096);
                    tu_seti(pos, 0, 0, 0, 0, 0);
                }
                if (with_ff) tu_fill_uniform(tu_node_src(&n, 2, APR_F32, cs[s].n_rot / 2, 1, 1, 1, TU_CONTIG), &rng, 1, 8);
                tu_node_dst(&n, APR_F32, cs[s].D, cs[s].H, cs[s].T, 1, lays[cs[s].dl]);
                n.iparams[0] = (int32_t)cs[s].n_rot;
                n.iparams[1] = layout;
                n.fparams[0] = tu_rng_int(&rng, 0, 1) ? 10000.0f : 500000.0f;
                n.fparams[1] = tu_rng_int(&rng, 0, 2) ? 1.0f : 0.25f;
                tu_node_name(&n, "n_rot=%lld %s base=%g scale=%g%s", (long long)cs[s].n_rot, layout ? "neox" : "adjacent",
                          (double)n.fparams[0], (double)n.fparams[1], with_ff ? " freq_factors" : "");
                conf_check(r, &n, tol(APR_OP_ROPE, ""));
            }
}

static void cases_softmax(conf_run *r) {
    static const struct { int64_t ne[4]; int xl, ml, dl; } cs[] = {
        {{1, 1, 1, 1}, 0, 0, 0},   {{7, 3, 1, 1}, 0, 0, 0},   {{16, 16, 1, 1}, 0, 0, 0}, {{33, 5, 2, 1}, 0, 0, 0},
        {{100, 7, 2, 2}, 0, 0, 0}, {{4101, 2, 1, 1}, 0, 0, 0}, {{32, 40, 1, 1}, 0, 0, 0}, {{64, 64, 4, 1}, 0, 0, 0},
        {{37, 9, 2, 1}, 1, 1, 1},  {{24, 24, 3, 1}, 2, 0, 0},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++)
        for (int with_mask = 0; with_mask < 2; with_mask++)
            for (int causal = 0; causal < 2; causal++) {
                const int64_t *ne = cs[s].ne;
                tu_rng rng = tu_suite_next(&r->run);
                tu_node n;
                tu_node_init(&n, APR_OP_SOFTMAX, with_mask ? 2 : 1);
                tu_fill_uniform(tu_node_src(&n, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[cs[s].xl]), &rng, -5, 5);
                if (with_mask) tu_fill_mask(tu_node_src(&n, 1, APR_F32, ne[0], ne[1], 1, 1, unary_lays[cs[s].ml]), &rng);
                tu_node_dst(&n, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[cs[s].dl]);
                static const float scales[] = {1.0f, 0.125f, 0.0883883476f, 3.0f};
                n.fparams[0] = scales[tu_rng_int(&rng, 0, 3)];
                n.iparams[0] = causal;
                tu_node_name(&n, "scale=%g%s%s%s", (double)n.fparams[0], causal ? " causal" : "", with_mask ? " mask" : "",
                          causal && ne[0] < ne[1] ? " (N<R: leading rows fully masked)" : "");
                conf_check(r, &n, tol(APR_OP_SOFTMAX, ""));
            }
}

static void cases_attention(conf_run *r) {
    /* q layouts: contiguous [D, T, H], or the usual permute of a [D, H, T] projection output. */
    static const struct { int64_t D, Dv, T, S, H, Hkv; int causal, mask, qperm, kvslice; } cs[] = {
        {64, 64, 1, 1, 4, 4, 0, 0, 0, 0},     {64, 64, 1, 17, 4, 2, 0, 0, 1, 0},   /* decode */
        {128, 128, 1, 300, 8, 2, 0, 1, 1, 1}, {40, 40, 1, 33, 4, 1, 1, 0, 0, 1},
        {17, 17, 1, 9, 2, 1, 0, 1, 0, 0},
        {64, 64, 7, 7, 4, 4, 1, 0, 1, 0},     {64, 64, 7, 40, 4, 1, 1, 1, 1, 1},   /* prefill, S >= T */
        {32, 32, 33, 33, 2, 1, 1, 0, 0, 0},   {64, 48, 5, 23, 2, 2, 0, 1, 0, 1},
        {16, 16, 9, 5, 2, 2, 1, 0, 1, 0},     /* S < T, causal: the first queries see no key */
        {24, 24, 6, 11, 8, 2, 0, 0, 1, 1},    {1, 1, 3, 4, 1, 1, 1, 1, 0, 0},
        /* value rows longer than the 8 vectors a kernel keeps in registers, and one not a whole vector */
        {256, 256, 1, 40, 4, 2, 0, 1, 1, 0}, {96, 144, 1, 21, 2, 1, 1, 0, 0, 1}, {64, 200, 3, 9, 2, 2, 1, 0, 1, 0},
    };
    const uint32_t kv_dtypes[] = {APR_F32, APR_F16};
    for (int di = 0; di < 2; di++)
        for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_node_init(&n, APR_OP_ATTENTION, cs[s].mask ? 4 : 3);
            tu_layout ql = cs[s].qperm ? TU_PERM(0, 2, 1, 3) : TU_CONTIG;
            tu_layout kvl = cs[s].kvslice ? CONF_KV_SLICE : TU_CONTIG;
            tu_fill_uniform(tu_node_src(&n, 0, APR_F32, cs[s].D, cs[s].T, cs[s].H, 1, ql), &rng, -2, 2);
            tu_fill_uniform(tu_node_src(&n, 1, kv_dtypes[di], cs[s].D, cs[s].S, cs[s].Hkv, 1, kvl), &rng, -2, 2);
            tu_fill_uniform(tu_node_src(&n, 2, kv_dtypes[di], cs[s].Dv, cs[s].S, cs[s].Hkv, 1, kvl), &rng, -1, 1);
            if (cs[s].mask) {
                /* mask [S, T]: column t is query t; tu_fill_mask's fully masked row 1 is query 1 */
                tu_fill_mask(tu_node_src(&n, 3, APR_F32, cs[s].S, cs[s].T, 1, 1, TU_CONTIG), &rng);
                if (cs[s].T == 1) tu_setf(&n.src[3], 0, 0, 0, 0, 0.0f); /* decode: keep one key always visible */
                tu_node_poison_masked_keys(&n);
            }
            tu_node_dst(&n, APR_F32, cs[s].Dv, cs[s].H, cs[s].T, 1, TU_CONTIG);
            n.fparams[0] = (float)(1.0 / sqrt((double)cs[s].D));
            n.iparams[0] = cs[s].causal;
            tu_node_name(&n, "H=%lld Hkv=%lld (gqa %lld) T=%lld S=%lld%s%s", (long long)cs[s].H, (long long)cs[s].Hkv,
                      (long long)(cs[s].H / cs[s].Hkv), (long long)cs[s].T, (long long)cs[s].S,
                      cs[s].causal ? " causal" : "", cs[s].mask ? " mask" : "");
            conf_check(r, &n, tol(APR_OP_ATTENTION, kv_dtypes[di] == APR_F16 ? "f16" : "f32"));
        }
}

static void cases_cpy(conf_run *r) {
    static const struct { int64_t ne[4]; int sl, dl; } cs[] = {
        {{1, 1, 1, 1}, 0, 0},   {{7, 3, 1, 1}, 0, 0},  {{33, 5, 3, 2}, 0, 0}, {{4099, 1, 1, 1}, 0, 0},
        {{16, 16, 4, 2}, 0, 0}, {{37, 9, 2, 1}, 2, 0}, {{31, 6, 1, 1}, 0, 1}, {{12, 5, 3, 1}, 4, 0},
        {{32, 16, 1, 1}, 3, 1},
    };
    const tu_layout lays[] = {TU_CONTIG, TU_PADDED, TU_TRANSPOSED, TU_STEP2, TU_PERM(2, 0, 1, 3)};
    static const uint32_t pairs[][2] = {
        {APR_F32, APR_F32}, {APR_F32, APR_F16},  {APR_F32, APR_BF16}, {APR_F16, APR_F32},  {APR_F16, APR_F16},
        {APR_F16, APR_BF16}, {APR_BF16, APR_F32}, {APR_BF16, APR_F16}, {APR_BF16, APR_BF16}, {APR_I32, APR_I32},
    };
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++)
        for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
            const int64_t *ne = cs[s].ne;
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_node_init(&n, APR_OP_CPY, 1);
            tu_tensor *a = tu_node_src(&n, 0, pairs[p][0], ne[0], ne[1], ne[2], ne[3], lays[cs[s].sl]);
            if (pairs[p][0] == APR_I32) tu_fill_int(a, &rng, INT32_MIN, INT32_MAX);
            else tu_fill_special(a, &rng);
            tu_node_dst(&n, pairs[p][1], ne[0], ne[1], ne[2], ne[3], lays[cs[s].dl]);
            tu_node_name(&n, "%s->%s", tu_dtype_name(pairs[p][0]), tu_dtype_name(pairs[p][1]));
            conf_check(r, &n, tol(APR_OP_CPY, ""));
        }
}

static void cases_concat(conf_run *r) {
    static const uint32_t dtypes[] = {APR_F32, APR_F16, APR_BF16, APR_I32};
    static const struct { int64_t ne[4]; int64_t b_len; int al, bl, dl; } cs[] = {
        {{7, 3, 2, 2}, 5, 0, 0, 0}, {{1, 1, 1, 1}, 1, 0, 0, 0}, {{33, 4, 3, 1}, 1, 0, 0, 0}, {{9, 5, 2, 3}, 4, 2, 1, 1},
    };
    const tu_layout lays[] = {TU_CONTIG, TU_PADDED, TU_TRANSPOSED};
    for (size_t di = 0; di < sizeof dtypes / sizeof dtypes[0]; di++)
        for (int dim = 0; dim < APR_MAX_DIMS; dim++)
            for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
                tu_rng rng = tu_suite_next(&r->run);
                tu_node n;
                tu_node_init(&n, APR_OP_CONCAT, 2);
                int64_t a[4], b[4], d[4];
                memcpy(a, cs[s].ne, sizeof a);
                memcpy(b, a, sizeof b);
                b[dim] = cs[s].b_len;
                memcpy(d, a, sizeof d);
                d[dim] = a[dim] + b[dim];
                tu_tensor *ta = tu_node_src(&n, 0, dtypes[di], a[0], a[1], a[2], a[3], lays[cs[s].al]);
                tu_tensor *tb = tu_node_src(&n, 1, dtypes[di], b[0], b[1], b[2], b[3], lays[cs[s].bl]);
                if (dtypes[di] == APR_I32) {
                    tu_fill_int(ta, &rng, INT32_MIN, INT32_MAX);
                    tu_fill_int(tb, &rng, INT32_MIN, INT32_MAX);
                } else {
                    tu_fill_special(ta, &rng);
                    tu_fill_special(tb, &rng);
                }
                tu_node_dst(&n, dtypes[di], d[0], d[1], d[2], d[3], lays[cs[s].dl]);
                n.iparams[0] = dim;
                tu_node_name(&n, "dim=%d", dim);
                conf_check(r, &n, tol(APR_OP_CONCAT, ""));
            }
}

/* ids[0..N) distinct and in random order: the first N of a shuffled 0..R-1. */
static void fill_distinct_ids(tu_tensor *ids, tu_rng *rng, int64_t R) {
    int32_t *perm = malloc((size_t)R * sizeof *perm);
    cr_assert(perm, "out of memory");
    for (int64_t i = 0; i < R; i++) perm[i] = (int32_t)i;
    for (int64_t i = 0; i < ids->ne[0]; i++) {
        int64_t j = tu_rng_int(rng, i, R - 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        tu_seti(ids, i, 0, 0, 0, perm[i]);
    }
    free(perm);
}

/* A SET_ROWS node writing rows (dtype rdt) into a table (dtype tdt) in place; dst takes the table's
 * layout so results compare element by element. ids are filled by the caller. */
static tu_tensor *set_rows_node(tu_node *n, tu_rng *rng, uint32_t tdt, uint32_t rdt, int64_t D, int64_t R, int64_t N,
                                const tu_layout lays[3]) {
    tu_node_init(n, APR_OP_SET_ROWS, 3);
    n->in_place = true;
    tu_fill_special(tu_node_src(n, 0, tdt, D, R, 1, 1, lays[0]), rng); /* NaN payloads too: unwritten rows keep them */
    tu_fill_special(tu_node_src(n, 1, rdt, D, N, 1, 1, lays[1]), rng);
    tu_tensor_init_like(&n->dst, &n->src[0]);
    return tu_node_src(n, 2, APR_I32, N, 1, 1, 1, lays[2]);
}

static const uint32_t set_rows_dtypes[][2] = {
    {APR_F32, APR_F32}, {APR_F16, APR_F32}, {APR_F16, APR_F16}, {APR_BF16, APR_F32}, {APR_BF16, APR_BF16},
};
#define N_SET_ROWS_DTYPES 5

static void cases_set_rows(conf_run *r) {
    /* [D, R] tables, N rows: decode (N = 1; D = 128 is a cache of 2 kv heads of 64), a short prefill
     * (N = 7), the whole table (N = R); 4100 runs vector tails; N*D >= 16384 runs on the pool. */
    static const int64_t shapes[][3] = {{1, 1, 1},    {128, 40, 1},   {33, 10, 1},  {20, 9, 7},      {129, 64, 7},
                                        {17, 7, 7},   {64, 16, 16},   {4100, 3, 3}, {256, 300, 100}, {1000, 40, 40}};
    /* table, rows, ids: dense; padded rows and an unaligned start (a slice of wider rows), ids every
     * other element; a cache slice with spare slots beyond R and transposed rows; a transposed table
     * (nb[0] > nb[1]) with rows every other element. */
    const tu_layout lays[][3] = {{TU_CONTIG, TU_CONTIG, TU_CONTIG},
                                 {TU_PADDED, TU_PADDED, TU_STEP2},
                                 {CONF_KV_SLICE, TU_TRANSPOSED, TU_CONTIG},
                                 {TU_TRANSPOSED, TU_STEP2, TU_STEP2}};
    static const char *const lay_names[] = {"dense", "padded", "cache slice", "transposed"};
    for (int di = 0; di < N_SET_ROWS_DTYPES; di++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t l = 0; l < sizeof lays / sizeof lays[0]; l++) {
                const int64_t D = shapes[s][0], R = shapes[s][1], N = shapes[s][2];
                tu_rng rng = tu_suite_next(&r->run);
                tu_node n;
                fill_distinct_ids(set_rows_node(&n, &rng, set_rows_dtypes[di][0], set_rows_dtypes[di][1], D, R, N, lays[l]), &rng, R);
                tu_node_name(&n, "%s<-%s D=%lld R=%lld N=%lld %s", tu_dtype_name(set_rows_dtypes[di][0]),
                          tu_dtype_name(set_rows_dtypes[di][1]), (long long)D, (long long)R, (long long)N, lay_names[l]);
                conf_check(r, &n, tol(APR_OP_SET_ROWS, ""));
            }
    /* Repeated ids: each named row must be one of its writers' whole (never a mix of two, which
     * workers splitting the ids between them could make), the others untouched. */
    static const int64_t dups[][4] = {{33, 10, 8, 3}, {300, 64, 64, 5}}; /* D, R, N, ids drawn from [0, last] */
    for (int di = 0; di < N_SET_ROWS_DTYPES; di++)
        for (size_t s = 0; s < sizeof dups / sizeof dups[0]; s++) {
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_tensor *ids = set_rows_node(&n, &rng, set_rows_dtypes[di][0], set_rows_dtypes[di][1], dups[s][0], dups[s][1],
                                           dups[s][2], lays[0]);
            tu_fill_int(ids, &rng, 0, dups[s][3]);
            tu_seti(ids, 1, 0, 0, 0, tu_geti(ids, 0, 0, 0, 0)); /* at least one repeat */
            tu_node_name(&n, "%s<-%s D=%lld R=%lld N=%lld ids repeat", tu_dtype_name(set_rows_dtypes[di][0]),
                      tu_dtype_name(set_rows_dtypes[di][1]), (long long)dups[s][0], (long long)dups[s][1], (long long)dups[s][2]);
            conf_check(r, &n, tol(APR_OP_SET_ROWS, ""));
        }
}

static void cases_argmax(conf_run *r) {
    /* kind 0: uniform values; 1: small integers (many ties: the lowest index must win);
     * 2: NaNs (ignored), infinities, and row 0 entirely NaN (gives 0). */
    static const struct { int64_t ne[4]; int kind, xl, dl; } cs[] = {
        {{1, 1, 1, 1}, 0, 0, 0},  {{7, 3, 1, 1}, 0, 0, 0},    {{16, 4, 1, 1}, 1, 0, 0},  {{33, 5, 2, 1}, 1, 0, 0},
        {{4101, 3, 1, 1}, 0, 0, 0}, {{32000, 2, 1, 1}, 0, 0, 0}, {{100, 3, 2, 2}, 2, 0, 0}, {{17, 6, 1, 1}, 2, 0, 0},
        {{37, 9, 2, 1}, 1, 2, 0}, {{40, 7, 1, 1}, 2, 1, 3},    {{64, 8, 1, 1}, 0, 3, 1},
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        const int64_t *ne = cs[s].ne;
        tu_rng rng = tu_suite_next(&r->run);
        tu_node n;
        tu_node_init(&n, APR_OP_ARGMAX, 1);
        tu_tensor *x = tu_node_src(&n, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], unary_lays[cs[s].xl]);
        tu_fill_uniform(x, &rng, -1, 1);
        int64_t i[APR_MAX_DIMS];
        for (int64_t k = 0; k < tu_tensor_nelements(x); k++) {
            tu_tensor_index(x, k, i);
            float v = tu_getf(x, i[0], i[1], i[2], i[3]);
            if (cs[s].kind == 1) v = (float)tu_rng_int(&rng, -3, 3);
            if (cs[s].kind == 2) {
                int64_t roll = tu_rng_int(&rng, 0, 19);
                if ((i[1] == 0 && i[2] == 0 && i[3] == 0) || roll < 3) v = NAN;
                else if (roll == 3) v = -INFINITY;
                else if (roll == 4 && i[1] % 2) v = INFINITY;
            }
            tu_setf(x, i[0], i[1], i[2], i[3], v);
        }
        tu_node_dst(&n, APR_I32, ne[1], ne[2], ne[3], 1, unary_lays[cs[s].dl]);
        static const char *const kinds[] = {"uniform", "ties", "nan/inf, row 0 all NaN"};
        tu_node_name(&n, "%s", kinds[cs[s].kind]);
        conf_check(r, &n, tol(APR_OP_ARGMAX, ""));
    }
}

/* ADAMW over shapes and layouts: parameters, gradient, moments (v >= 0) and hyperparameters drawn
 * as training sees them, from the first step (zero moments, c1 = 1 / (1 - beta1)) to late ones. */
static void cases_adamw(conf_run *r) {
    static const struct { int64_t ne[4]; int lw, lg, lm; } shapes[] = {
        {{1, 1, 1, 1}, 0, 0, 0},   {{7, 3, 1, 1}, 0, 0, 0},   {{33, 5, 3, 2}, 0, 0, 0}, {{4099, 2, 1, 1}, 0, 0, 0},
        {{9000, 1, 1, 1}, 0, 0, 0}, {{64, 8, 4, 1}, 0, 1, 0}, {{37, 9, 2, 1}, 2, 0, 3}, {{31, 6, 1, 1}, 1, 3, 1},
        {{32, 16, 1, 1}, 3, 2, 1},
    };
    static const tu_layout lays[] = {TU_CONTIG, TU_PADDED, TU_TRANSPOSED, TU_STEP2};
    for (int first = 0; first < 2; first++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t *ne = shapes[s].ne;
            tu_rng rng = tu_suite_next(&r->run);
            tu_node n;
            tu_node_init(&n, APR_OP_ADAMW, 5);
            n.in_place = true;
            n.written = 1u << 2 | 1u << 3;
            tu_fill_uniform(tu_node_src(&n, 0, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[shapes[s].lw]), &rng, -1, 1);
            tu_fill_uniform(tu_node_src(&n, 1, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[shapes[s].lg]), &rng, -3, 3);
            tu_tensor *m = tu_node_src(&n, 2, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[shapes[s].lm]);
            tu_tensor *v = tu_node_src(&n, 3, APR_F32, ne[0], ne[1], ne[2], ne[3], lays[(shapes[s].lm + 1) % 4]);
            tu_fill_uniform(m, &rng, first ? 0 : -0.3, first ? 0 : 0.3);
            tu_fill_uniform(v, &rng, 0, first ? 0 : 0.5);
            tu_tensor *hp = tu_node_src(&n, 4, APR_F32, APR_ADAMW_HP_COUNT, 1, 1, 1, TU_CONTIG);
            const double b1 = tu_rng_uniform(&rng, 0.8, 0.95), b2 = tu_rng_uniform(&rng, 0.95, 0.9999);
            const double t = first ? 1 : (double)tu_rng_int(&rng, 2, 5000);
            const double h[APR_ADAMW_HP_COUNT] = {
                [APR_ADAMW_LR] = tu_rng_uniform(&rng, 1e-5, 1e-2), [APR_ADAMW_BETA1] = b1, [APR_ADAMW_BETA2] = b2,
                [APR_ADAMW_EPS] = tu_rng_uniform(&rng, 1e-9, 1e-6), [APR_ADAMW_WEIGHT_DECAY] = tu_rng_uniform(&rng, 0, 0.1),
                [APR_ADAMW_C1] = 1 / (1 - pow(b1, t)), [APR_ADAMW_C2] = 1 / (1 - pow(b2, t)),
                [APR_ADAMW_GSCALE] = tu_rng_uniform(&rng, 0.25, 2),
            };
            for (int k = 0; k < APR_ADAMW_HP_COUNT; k++) tu_setf(hp, k, 0, 0, 0, (float)h[k]);
            tu_tensor_init_like(&n.dst, &n.src[0]);
            tu_node_name(&n, "step %g lr=%.3g b1=%.4g b2=%.6g wd=%.3g", t, h[APR_ADAMW_LR], b1, b2, h[APR_ADAMW_WEIGHT_DECAY]);
            conf_check(r, &n, tol(APR_OP_ADAMW, ""));
        }
}

static void conf_cases(conf_run *r) {
    static const double unary_ranges[] = {8, 100};
    static const double scale_ranges[] = {2};
    switch (r->run.op) {
    case APR_OP_GET_ROWS: cases_get_rows(r); cases_get_rows_block(r); break;
    case APR_OP_MATMUL: cases_matmul(r); cases_matmul_block(r); break;
    case APR_OP_ADD: case APR_OP_MUL: cases_add_mul(r, r->run.op); break;
    case APR_OP_SCALE: cases_unary(r, r->run.op, scale_ranges, 1); break;
    case APR_OP_SILU: case APR_OP_GELU: cases_unary(r, r->run.op, unary_ranges, 2); break;
    case APR_OP_SWIGLU: cases_swiglu(r); break;
    case APR_OP_RMS_NORM: cases_rms_norm(r); break;
    case APR_OP_ROPE: cases_rope(r); break;
    case APR_OP_SOFTMAX: cases_softmax(r); break;
    case APR_OP_ATTENTION: cases_attention(r); break;
    case APR_OP_CPY: cases_cpy(r); break;
    case APR_OP_CONCAT: cases_concat(r); break;
    case APR_OP_ARGMAX: cases_argmax(r); break;
    case APR_OP_SET_ROWS: cases_set_rows(r); break;
    case APR_OP_ADAMW: cases_adamw(r); break;
    default: cr_assert_fail("no cases for op %u", (unsigned)r->run.op);
    }
}

/* ---------------------------------------------------------------- the tests */

/* Opens the reference and (unless it is the reference) the backend under test. */
static apr_registry *conf_open(const tu_backend_param *p, conf_run *r) {
    if (!p->backend[0])
        cr_skip_test("no backend other than the reference is usable on this machine (%s); only the reference "
                     "self-checks ran", p->note);
    return tu_suite_open(&r->run, p->backend, false);
}

static void conf_test(const tu_backend_param *p, uint32_t op, bool packed) {
    conf_run r;
    memset(&r, 0, sizeof r);
    r.run.op = op;
    r.packed = packed;
    if (packed && !p->backend[0])
        cr_skip_test("no backend other than the reference is usable on this machine (%s), and the reference packs nothing", p->note);
    if (packed && !strcmp(p->backend, TU_REFERENCE))
        cr_skip_test("the reference keeps every weight in its own layout (no weight_pack): nothing to compare");
    apr_registry *reg = conf_open(p, &r);
    if (packed) cases_matmul_block(&r);
    else conf_cases(&r);
    const char *name = r.run.test.name;
    char worst[800] = "";
    if (r.worst_case[0]) snprintf(worst, sizeof worst, "; worst case used %.2g of its nmse limit: %s", r.worst_ratio, r.worst_case);
    fprintf(stderr, "%s %s%s: %ld passed, %ld failed, %ld unsupported%s%s\n", name, tu_op_name(op), packed ? " (packed weights)" : "",
            r.run.passed, r.run.failed, r.run.unsupported, r.run.self_check ? " (self-check)" : "", worst);
    tu_tally_add(&tally, name, r.run.passed, r.run.failed, r.run.unsupported);
    char backend[64];
    snprintf(backend, sizeof backend, "%s", name);
    tu_suite_close(reg, &r.run);
    tu_suite_verdict(&r.run, backend, "compared");
}

/* Seconds per test. A healthy test takes well under a second at -O2 and a few under ASan; a
 * backend that deadlocks should fail in a minute, not stall make check. */
#define CONF_TIMEOUT 60

#define CONF_OP_TEST(name, op)                                                                 \
    ParameterizedTestParameters(conformance, name) { return conf_params(); }                  \
    ParameterizedTest(tu_backend_param *p, conformance, name, .timeout = CONF_TIMEOUT) { conf_test(p, op, false); }

CONF_OP_TEST(get_rows, APR_OP_GET_ROWS)

/* cpu-avx512 picks VNNI kernels for block weights when the CPU has them; this runs the matmul cases
 * again with them switched off (APR_X86_NO_VNNI), so the vpmaddubsw path is checked here too. */
ParameterizedTestParameters(conformance, matmul_no_vnni) { return conf_params(); }
ParameterizedTest(tu_backend_param *p, conformance, matmul_no_vnni, .timeout = CONF_TIMEOUT) {
    setenv("APR_X86_NO_VNNI", "1", 1);
    conf_test(p, APR_OP_MATMUL, false);
    unsetenv("APR_X86_NO_VNNI");
}

/* The block-weight matmul cases again on weights the backend packed into its own layout
 * (weight_pack, ABI 3), with and without VNNI; block types it keeps as they are count as
 * unsupported, and a backend that packs none of them is skipped with that said. */
ParameterizedTestParameters(conformance, matmul_packed) { return conf_params(); }
ParameterizedTest(tu_backend_param *p, conformance, matmul_packed, .timeout = CONF_TIMEOUT) { conf_test(p, APR_OP_MATMUL, true); }
ParameterizedTestParameters(conformance, matmul_packed_no_vnni) { return conf_params(); }
ParameterizedTest(tu_backend_param *p, conformance, matmul_packed_no_vnni, .timeout = CONF_TIMEOUT) {
    setenv("APR_X86_NO_VNNI", "1", 1);
    conf_test(p, APR_OP_MATMUL, true);
    unsetenv("APR_X86_NO_VNNI");
}
CONF_OP_TEST(matmul, APR_OP_MATMUL)
CONF_OP_TEST(add, APR_OP_ADD)
CONF_OP_TEST(mul, APR_OP_MUL)
CONF_OP_TEST(scale, APR_OP_SCALE)
CONF_OP_TEST(rms_norm, APR_OP_RMS_NORM)
CONF_OP_TEST(rope, APR_OP_ROPE)
CONF_OP_TEST(softmax, APR_OP_SOFTMAX)
CONF_OP_TEST(silu, APR_OP_SILU)
CONF_OP_TEST(gelu, APR_OP_GELU)
CONF_OP_TEST(swiglu, APR_OP_SWIGLU)
CONF_OP_TEST(attention, APR_OP_ATTENTION)
CONF_OP_TEST(cpy, APR_OP_CPY)
CONF_OP_TEST(concat, APR_OP_CONCAT)
CONF_OP_TEST(argmax, APR_OP_ARGMAX)
CONF_OP_TEST(set_rows, APR_OP_SET_ROWS)
CONF_OP_TEST(adamw, APR_OP_ADAMW)

/* SET_ROWS with one id outside [0, R): APR_ERR_INVALID from compute(), and not one byte of the
 * table written, whichever position the bad id has (the valid ids before it included). */
static void errors_set_rows(conf_run *r, const tu_backend *b, long *checked, long *failed, long *unsupported) {
    static const int32_t bad_ids[] = {5, -1, INT32_MAX, INT32_MIN};
    for (size_t k = 0; k < sizeof bad_ids / sizeof bad_ids[0]; k++) {
        tu_rng rng = tu_suite_next(&r->run);
        tu_node n;
        const tu_layout lays[3] = {k % 2 ? TU_PADDED : TU_CONTIG, TU_CONTIG, TU_CONTIG};
        tu_tensor *ids = set_rows_node(&n, &rng, k < 2 ? APR_F16 : APR_F32, APR_F32, 8, 5, 3, lays);
        fill_distinct_ids(ids, &rng, 5);
        tu_seti(ids, (int64_t)(k % 3), 0, 0, 0, bad_ids[k]);
        tu_node_name(&n, "ids[%zu]=%d with R=5", k % 3, (int)bad_ids[k]);
        char text[640], msg[768];
        tu_node_text(&n, text, sizeof text);
        unsigned char *out = malloc(n.src[0].size);
        cr_assert(out);
        tu_suite_watch(b->name, text);
        tu_outcome o = tu_node_run(b, &n, APR_ERR_INVALID, out, msg, sizeof msg);
        if (o == TU_DECLINED) {
            fprintf(stderr, "unsupported: %s %s: %s\n", b->name, text, msg);
            (*unsupported)++;
        } else if (o == TU_BROKEN) {
            fprintf(stderr, "FAIL: %s %s: %s\n", b->name, text, msg);
            (*failed)++;
        } else if (memcmp(out, n.src[0].data, n.src[0].size)) {
            fprintf(stderr, "FAIL: %s %s: the table changed although compute failed\n", b->name, text);
            (*failed)++;
        } else (*checked)++;
        free(out);
        tu_node_free(&n);
    }
}

/* A well-formed SET_ROWS desc (f16 table [8, 5] in place, f32 rows [8, 2], ids [2]) as supports() sees it. */
static void set_rows_desc(apr_node_desc *nd, const apr_buffer *placeholder) {
    memset(nd, 0, sizeof *nd);
    nd->struct_size = sizeof *nd;
    nd->op = APR_OP_SET_ROWS;
    nd->n_src = 3;
    static const struct { uint32_t dtype; int64_t ne0, ne1, es; } t[3] = {{APR_F16, 8, 5, 2}, {APR_F32, 8, 2, 4}, {APR_I32, 2, 1, 4}};
    for (int i = 0; i < 3; i++) {
        apr_tensor_desc *d = &nd->src[i];
        d->struct_size = sizeof *d;
        d->dtype = t[i].dtype;
        d->ne[0] = t[i].ne0, d->ne[1] = t[i].ne1, d->ne[2] = d->ne[3] = 1;
        d->nb[0] = t[i].es, d->nb[1] = t[i].es * t[i].ne0;
        d->nb[2] = d->nb[3] = d->nb[1] * t[i].ne1;
        d->buffer = placeholder;
    }
    nd->src[3].struct_size = sizeof nd->src[3];
    nd->dst = nd->src[0];
}

/* Malformed SET_ROWS nodes supports() must decline with a reason: dst not the table, rows of the
 * table that overlap, more ids than rows, rows of a third dtype. The well-formed one must pass on
 * the reference (which runs every op); another backend may decline it. Returns how many answers
 * were wrong (each printed). */
#define SET_ROWS_SHAPES 5
static long errors_set_rows_shape(const tu_backend *b, bool runs_every_op) {
    apr_buffer placeholder = {.struct_size = sizeof placeholder};
    static const char *const what[SET_ROWS_SHAPES] = {"well-formed", "dst at another offset", "overlapping table rows", "N > R",
                                                      "bf16 rows into an f16 table"};
    long wrong = 0;
    for (int k = 0; k < SET_ROWS_SHAPES; k++) {
        apr_node_desc nd;
        set_rows_desc(&nd, &placeholder);
        if (k == 1) nd.dst.offset = 16;
        if (k == 2) nd.src[0].nb[1] = nd.dst.nb[1] = 8; /* rows 8 bytes apart, each 16 bytes long */
        if (k == 3) {
            nd.src[0].ne[1] = nd.dst.ne[1] = 1;
            nd.src[0].nb[2] = nd.src[0].nb[3] = nd.dst.nb[2] = nd.dst.nb[3] = 16;
        }
        if (k == 4) nd.src[1].dtype = APR_BF16, nd.src[1].nb[0] = 2, nd.src[1].nb[1] = 16;
        char why[512] = "";
        apr_status st = b->api->supports(b->inst, &nd, why, sizeof why);
        const bool declined = st == APR_ERR_UNSUPPORTED && why[0];
        const bool ok = k == 0 ? st == APR_OK || (!runs_every_op && declined) : declined;
        if (!ok) {
            fprintf(stderr, "FAIL: %s supports(set_rows, %s) returned %s (%s)\n", b->name, what[k], apr_status_name(st), why);
            wrong++;
        }
    }
    return wrong;
}

/* Data-dependent errors and unknown ops, on every backend including the reference: an id outside
 * the table is APR_ERR_INVALID from compute() (not a crash, not a write outside dst; for SET_ROWS
 * not a byte of the table), an op number no ABI version defines is declined by supports() with a
 * reason, and so are malformed SET_ROWS nodes. */
ParameterizedTestParameters(conformance, errors) { return conf_params(); }
ParameterizedTest(tu_backend_param *p, conformance, errors, .timeout = CONF_TIMEOUT) {
    conf_run r;
    memset(&r, 0, sizeof r);
    r.run.op = APR_OP_GET_ROWS;
    apr_registry *reg = conf_open(p, &r);
    const tu_backend *b = &r.run.test;
    long bad_id_checked = 0, failed = 0, unsupported = 0;

    static const int32_t bad_ids[] = {5, -1, INT32_MAX, INT32_MIN};
    for (size_t k = 0; k < sizeof bad_ids / sizeof bad_ids[0]; k++) {
        tu_rng rng = tu_suite_next(&r.run);
        tu_node n;
        tu_node_init(&n, APR_OP_GET_ROWS, 2);
        tu_fill_uniform(tu_node_src(&n, 0, APR_F32, 8, 5, 1, 1, TU_CONTIG), &rng, -1, 1);
        tu_tensor *ids = tu_node_src(&n, 1, APR_I32, 3, 1, 1, 1, TU_CONTIG);
        tu_fill_int(ids, &rng, 0, 4);
        tu_seti(ids, (int64_t)(k % 3), 0, 0, 0, bad_ids[k]); /* the bad id first, in the middle, last */
        tu_node_dst(&n, APR_F32, 8, 3, 1, 1, TU_CONTIG);
        tu_node_name(&n, "ids[%zu]=%d with R=5", k % 3, (int)bad_ids[k]);
        char text[640], msg[768];
        tu_node_text(&n, text, sizeof text);
        unsigned char *out = malloc(n.dst.size);
        cr_assert(out);
        tu_suite_watch(b->name, text);
        tu_outcome o = tu_node_run(b, &n, APR_ERR_INVALID, out, msg, sizeof msg);
        if (o == TU_DECLINED) {
            fprintf(stderr, "unsupported: %s %s: %s\n", b->name, text, msg);
            unsupported++;
        } else if (o == TU_BROKEN) {
            fprintf(stderr, "FAIL: %s %s: %s\n", b->name, text, msg);
            failed++;
        } else bad_id_checked++;
        free(out);
        tu_node_free(&n);
    }

    errors_set_rows(&r, b, &bad_id_checked, &failed, &unsupported);
    const long shape_wrong = errors_set_rows_shape(b, r.run.self_check);

    /* An op number beyond every version: supports() must say no and why, without reading data. */
    apr_buffer placeholder = {.struct_size = sizeof placeholder};
    apr_node_desc nd;
    memset(&nd, 0, sizeof nd);
    nd.struct_size = sizeof nd;
    nd.op = 999;
    nd.n_src = 1;
    apr_tensor_desc *ts[2] = {&nd.dst, &nd.src[0]};
    for (int t = 0; t < 2; t++) {
        ts[t]->struct_size = sizeof *ts[t];
        ts[t]->dtype = APR_F32;
        ts[t]->ne[0] = 4;
        ts[t]->ne[1] = ts[t]->ne[2] = ts[t]->ne[3] = 1;
        ts[t]->nb[0] = 4;
        ts[t]->nb[1] = ts[t]->nb[2] = ts[t]->nb[3] = 16;
        ts[t]->buffer = &placeholder;
    }
    for (int t = 1; t < APR_MAX_SRC; t++) nd.src[t].struct_size = sizeof nd.src[t];
    char why[512] = "";
    apr_status st = b->api->supports(b->inst, &nd, why, sizeof why);
    fprintf(stderr, "%s errors: %ld bad-id cases returned invalid, %ld failed, %ld unsupported; %ld of %d set_rows shape "
            "answers wrong; op 999: %s (%s)\n", b->name, bad_id_checked, failed, unsupported, shape_wrong, SET_ROWS_SHAPES,
            apr_status_name(st), why);
    tu_tally_add(&tally, b->name, bad_id_checked + (SET_ROWS_SHAPES - shape_wrong) + (st == APR_ERR_UNSUPPORTED && why[0]),
                 failed + shape_wrong + !(st == APR_ERR_UNSUPPORTED && why[0]), unsupported);
    char backend[64];
    snprintf(backend, sizeof backend, "%s", b->name);
    tu_suite_close(reg, &r.run);

    cr_assert_eq(st, APR_ERR_UNSUPPORTED, "%s: supports(op 999) returned %s, want APR_ERR_UNSUPPORTED", backend,
                 apr_status_name(st));
    cr_assert(why[0], "%s: supports(op 999) declined without a reason", backend);
    cr_assert_eq(failed, 0, "%s: %ld get_rows/set_rows cases with a bad id did not return APR_ERR_INVALID cleanly (see FAIL lines)",
                 backend, failed);
    cr_assert_eq(shape_wrong, 0, "%s: %ld malformed or well-formed set_rows nodes got the wrong answer from supports() (see FAIL lines)",
                 backend, shape_wrong);
}

/* test_quant.c — the reference block quantizers (apr_quant.h) against ggml's own output, and on random and edge-case data. */
#include <criterion/criterion.h>
#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr_float16.h"
#include "apr/apr_quant.h"
#include "gguf.h"
#include "util/tu_paths.h"
#include "util/tu_rand.h"

/*
 * The ggml fixtures (../shared/fixtures/quant/) are the blocks ggml's reference quantizers made
 * from token_embd.weight of stories260K.gguf (f32, 64 x 512), and ggml's dequantization of them.
 * Random cases print their seed; APR_TEST_SEED=<seed> replays a run.
 */

/* ---------------------------------------------------------------- formats and helpers */

typedef struct qt_format {
    apr_dtype t;
    const char *name;
    int64_t block_elems, block_bytes;
    double nmse_uniform;  /* bound on sum (y - x)^2 / sum x^2 for x uniform in [-1, 1] */
    double nmse_negative; /* the same for x uniform in [-2, -0.5] */
    double const_rel;     /* bound on |y - c| / |c| for a constant row c */
    double outlier_rel;   /* bound on the relative error of one outlier 1000x the rest */
} qt_format;

/* Bounds: NMSE about 1.5x the largest of 60 seeds measured here on 4096 values (uniform data:
 * about step^2 / 12 / (1/3): q8 1.6e-5, q6_K 1.8e-4, 5-bit ~1e-3, 4-bit ~4e-3). Constant rows and
 * an outlier (it is its block's extreme, so it sits on a level) come back exact up to rounding the
 * scale to f16, 2^-11 relative, about 3e-4 to 5e-4 measured: bound 1e-3 (Q8_K's scale is f32). */
static const qt_format qt_formats[] = {
    {APR_Q4_0, "q4_0", 32, 18, 6.0e-3, 4.5e-3, 1e-3, 1e-3},
    {APR_Q4_1, "q4_1", 32, 20, 5.5e-3, 6.5e-4, 1e-3, 1e-3},
    {APR_Q5_0, "q5_0", 32, 22, 1.5e-3, 1.1e-3, 1e-3, 1e-3},
    {APR_Q5_1, "q5_1", 32, 24, 1.4e-3, 1.5e-4, 1e-3, 1e-3},
    {APR_Q8_0, "q8_0", 32, 34, 2.2e-5, 1.8e-5, 1e-3, 1e-3},
    {APR_Q4_K, "q4_K", 256, 144, 4.5e-3, 5.5e-4, 1e-3, 1e-3},
    {APR_Q5_K, "q5_K", 256, 176, 1.2e-3, 1.5e-4, 1e-3, 1e-3},
    {APR_Q6_K, "q6_K", 256, 210, 2.8e-4, 2.1e-4, 1e-3, 1e-3},
    {APR_Q8_K, "q8_K", 256, 292, 2.3e-5, 1.9e-5, 1e-6, 1e-6},
};
#define QT_NFORMATS (int)(sizeof qt_formats / sizeof qt_formats[0])

static const qt_format *qt_find(apr_dtype t) {
    for (int i = 0; i < QT_NFORMATS; i++)
        if (qt_formats[i].t == t) return &qt_formats[i];
    cr_assert_fail("no format %d", (int)t);
    return NULL;
}

static double qt_sq_err(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

static double qt_rmse(const float *a, const float *b, int64_t n) { return sqrt(qt_sq_err(a, b, n) / (double)n); }

static double qt_nmse(const float *x, const float *y, int64_t n) {
    double p = 0;
    for (int64_t i = 0; i < n; i++) p += (double)x[i] * x[i];
    return qt_sq_err(x, y, n) / p;
}

/* Quantizes n values of x and dequantizes them into y; returns the malloc'd blocks. */
static uint8_t *qt_round_trip(const qt_format *f, const float *x, float *y, int64_t n) {
    const int64_t bytes = n / f->block_elems * f->block_bytes;
    uint8_t *q = malloc((size_t)bytes);
    cr_assert(q);
    cr_assert_eq(apr_quant_row(f->t, x, q, n), bytes, "%s: apr_quant_row size", f->name);
    cr_assert(apr_dequant_row(f->t, q, y, n), "%s: apr_dequant_row", f->name);
    return q;
}

static void qt_assert_finite(const qt_format *f, const float *y, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++) cr_assert(isfinite(y[i]), "%s %s: element %lld is %g", f->name, what, (long long)i, y[i]);
}

/* ---------------------------------------------------------------- the ggml fixtures */

#define QT_N (64 * 512) /* token_embd.weight of stories260K */

static char qt_fixtures[PATH_MAX + 32];

static void qt_need_fixtures(void) {
    snprintf(qt_fixtures, sizeof qt_fixtures, "%s", tu_fixtures_dir());
    if (!tu_have_fixtures()) cr_skip_test("fixtures not found at %s", qt_fixtures);
}

/* The f32 input: token_embd.weight of stories260K.gguf, copied out (QT_N values). */
static float *qt_input(void) {
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", qt_fixtures);
    gguf_file *g;
    apr_error e;
    cr_assert_eq(apr_gguf_open(path, &g, &e), APR_OK, "%s", e.msg);
    const gguf_tensor *t = apr_gguf_tensor_find(g, "token_embd.weight");
    cr_assert(t, "token_embd.weight missing in %s", path);
    cr_assert_eq(t->dtype, APR_F32, "token_embd.weight is not f32");
    cr_assert(t->ne[0] == 64 && t->ne[1] == 512, "token_embd.weight is not 64 x 512");
    float *x = malloc(QT_N * sizeof *x);
    cr_assert(x);
    memcpy(x, t->data, QT_N * sizeof *x);
    apr_gguf_close(g);
    return x;
}

/* quant/token_embd.<name><suffix>, which must be exactly `size` bytes. */
static void *qt_fixture(const char *name, const char *suffix, size_t size) {
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/quant/token_embd.%s%s", qt_fixtures, name, suffix);
    size_t len;
    char *buf = tu_read_file(path, &len);
    cr_assert_eq(len, size, "%s: %zu bytes, expected %zu", path, len, size);
    return buf;
}

static void *qt_ggml_blocks(const qt_format *f) {
    return qt_fixture(f->name, ".bin", (size_t)(QT_N / f->block_elems * f->block_bytes));
}

static float *qt_ggml_dequant(const qt_format *f) { return qt_fixture(f->name, ".dequant.f32", QT_N * sizeof(float)); }

static const apr_dtype qt_fixture_types[] = {APR_Q8_0, APR_Q4_0, APR_Q4_K, APR_Q6_K};

TestSuite(quant, .timeout = 60);

/* The fixtures came from this input: ggml's dequantization is within its quantization error of
 * it, and the largest error is the one summary.json records. */
Test(quant, fixtures_were_made_from_stories260K_token_embd) {
    qt_need_fixtures();
    float *x = qt_input();
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/quant/summary.json", qt_fixtures);
    char *js = tu_read_file(path, NULL);
    cJSON *root = cJSON_Parse(js);
    cr_assert(root, "%s is not JSON", path);
    for (int k = 0; k < 4; k++) {
        const qt_format *f = qt_find(qt_fixture_types[k]);
        cJSON *s = cJSON_GetObjectItem(root, f->name);
        cr_assert(s, "summary.json has no %s", f->name);
        cr_expect_eq((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "blocks")), QT_N / f->block_elems);
        cr_expect_eq((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "block_bytes")), f->block_bytes);
        float *dq = qt_ggml_dequant(f);
        double max_err = 0;
        for (int64_t i = 0; i < QT_N; i++) max_err = fmax(max_err, fabs((double)dq[i] - x[i]));
        const double want = cJSON_GetNumberValue(cJSON_GetObjectItem(s, "max_abs_err"));
        cr_expect(fabs(max_err - want) <= 1e-6 * want, "%s: max |ggml - x| = %.9g, summary.json says %.9g", f->name,
                  max_err, want);
        free(dq);
    }
    cJSON_Delete(root);
    free(js);
    free(x);
}

/* Reports the first block where the bytes of a and b differ. */
static void qt_assert_same_blocks(const qt_format *f, const uint8_t *apr, const uint8_t *ggml) {
    const int64_t nb = QT_N / f->block_elems;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pa = apr + b * f->block_bytes, *pg = ggml + b * f->block_bytes;
        if (memcmp(pa, pg, (size_t)f->block_bytes) == 0) continue;
        int64_t at = 0;
        while (pa[at] == pg[at]) at++;
        cr_assert_fail("%s: block %lld of %lld differs from ggml's (first at byte %lld: apr 0x%02x, ggml 0x%02x)",
                       f->name, (long long)b, (long long)nb, (long long)at, pa[at], pg[at]);
    }
}

/* The acceptance criterion: Q8_0 and Q4_0 blocks byte-identical to ggml's reference quantizers. */
Test(quant, q8_0_and_q4_0_blocks_are_byte_identical_to_ggml) {
    qt_need_fixtures();
    float *x = qt_input(), *y = malloc(QT_N * sizeof *y);
    for (int k = 0; k < 2; k++) {
        const qt_format *f = qt_find(qt_fixture_types[k]);
        uint8_t *ggml = qt_ggml_blocks(f), *apr = qt_round_trip(f, x, y, QT_N);
        qt_assert_same_blocks(f, apr, ggml);
        free(apr);
        free(ggml);
    }
    free(y);
    free(x);
}

/* The same over whole models: every Q8_0 / Q4_0 tensor of llama.cpp's stories260K-q8_0.gguf and
 * stories260K-q4_0.gguf is apr_quant_row of the f32 tensor of stories260K.gguf, byte for byte. */
Test(quant, stories260K_q8_0_and_q4_0_models_match_llama_cpp_tensor_for_tensor) {
    qt_need_fixtures();
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", qt_fixtures);
    gguf_file *src, *qf;
    apr_error e;
    cr_assert_eq(apr_gguf_open(path, &src, &e), APR_OK, "%s", e.msg);
    const char *models[] = {"stories260K-q8_0.gguf", "stories260K-q4_0.gguf"};
    for (int mi = 0; mi < 2; mi++) {
        snprintf(path, sizeof path, "%s/stories260K/%s", qt_fixtures, models[mi]);
        cr_assert_eq(apr_gguf_open(path, &qf, &e), APR_OK, "%s", e.msg);
        int compared = 0;
        for (int64_t i = 0; i < apr_gguf_tensor_count(qf); i++) {
            const gguf_tensor *t = apr_gguf_tensor_at(qf, i);
            if (!apr_quant_is_block((apr_dtype)t->dtype)) continue; /* norms and rows not a whole block stay float */
            const gguf_tensor *s = apr_gguf_tensor_find(src, t->name);
            cr_assert(s && s->dtype == APR_F32, "%s: no f32 %s in stories260K.gguf", models[mi], t->name);
            const int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
            uint8_t *q = malloc(t->size);
            cr_assert_eq(apr_quant_row((apr_dtype)t->dtype, s->data, q, n), (int64_t)t->size, "%s %s", models[mi], t->name);
            cr_assert(memcmp(q, t->data, t->size) == 0, "%s: tensor %s (%s) differs from llama.cpp's", models[mi], t->name,
                      apr_gguf_dtype_name(t->dtype));
            free(q);
            compared++;
        }
        cr_assert_geq(compared, 20, "%s: only %d quantized tensors", models[mi], compared);
        apr_gguf_close(qf);
    }
    apr_gguf_close(src);
}

/* Stronger than the contract (which asks only for an RMSE no worse than ggml's): the K-quant
 * search runs ggml's float operations in ggml's order, so today its blocks are ggml's too. If a
 * deliberate improvement of the search changes that, relax this to the RMSE test below. */
Test(quant, q4_K_and_q6_K_blocks_are_byte_identical_to_ggml) {
    qt_need_fixtures();
    float *x = qt_input(), *y = malloc(QT_N * sizeof *y);
    for (int k = 2; k < 4; k++) {
        const qt_format *f = qt_find(qt_fixture_types[k]);
        uint8_t *ggml = qt_ggml_blocks(f), *apr = qt_round_trip(f, x, y, QT_N);
        qt_assert_same_blocks(f, apr, ggml);
        free(apr);
        free(ggml);
    }
    free(y);
    free(x);
}

/* apr_dequant_row of ggml's blocks reproduces ggml's dequantized values bit for bit. */
Test(quant, dequant_of_ggml_blocks_is_bit_exact) {
    qt_need_fixtures();
    float *y = malloc(QT_N * sizeof *y);
    for (int k = 0; k < 4; k++) {
        const qt_format *f = qt_find(qt_fixture_types[k]);
        uint8_t *ggml = qt_ggml_blocks(f);
        float *want = qt_ggml_dequant(f);
        cr_assert(apr_dequant_row(f->t, ggml, y, QT_N));
        for (int64_t i = 0; i < QT_N; i++) {
            if (apr_f32_bits(y[i]) != apr_f32_bits(want[i]))
                cr_assert_fail("%s: element %lld (block %lld): apr %.9g (0x%08x), ggml %.9g (0x%08x)", f->name,
                               (long long)i, (long long)(i / f->block_elems), y[i], apr_f32_bits(y[i]), want[i],
                               apr_f32_bits(want[i]));
        }
        free(want);
        free(ggml);
    }
    free(y);
}

/* The K-quant contract: apr's reconstruction of the fixture input is no worse than ggml's; Q5_K
 * (no ggml fixture) must land between Q6_K and Q4_K, at most 0.6x Q4_K's RMSE (one more bit
 * roughly halves the step). */
Test(quant, k_quant_rmse_is_no_worse_than_ggml) {
    qt_need_fixtures();
    float *x = qt_input(), *y = malloc(QT_N * sizeof *y);
    double apr_rmse[3];
    const apr_dtype kt[3] = {APR_Q4_K, APR_Q6_K, APR_Q5_K};
    for (int k = 0; k < 3; k++) {
        const qt_format *f = qt_find(kt[k]);
        free(qt_round_trip(f, x, y, QT_N));
        apr_rmse[k] = qt_rmse(y, x, QT_N);
        if (k == 2) break;
        float *dq = qt_ggml_dequant(f);
        const double ggml_rmse = qt_rmse(dq, x, QT_N);
        fprintf(stderr, "quant: %s RMSE on token_embd: apr %.9g, ggml %.9g\n", f->name, apr_rmse[k], ggml_rmse);
        cr_expect(apr_rmse[k] <= ggml_rmse, "%s: apr RMSE %.9g > ggml %.9g", f->name, apr_rmse[k], ggml_rmse);
        free(dq);
    }
    fprintf(stderr, "quant: q5_K RMSE on token_embd: apr %.9g (expected between q6_K %.9g and 0.6 x q4_K %.9g)\n",
            apr_rmse[2], apr_rmse[1], 0.6 * apr_rmse[0]);
    cr_expect(apr_rmse[2] > apr_rmse[1] && apr_rmse[2] < 0.6 * apr_rmse[0], "q5_K RMSE %.9g out of place", apr_rmse[2]);
    free(y);
    free(x);
}

/* ---------------------------------------------------------------- random and edge-case rows */

#define QT_ROW 4096 /* 128 blocks of 32, 16 of 256 */

static uint64_t qt_seed(const char *test) {
    const uint64_t seed = tu_seed();
    fprintf(stderr, "quant: %s: APR_TEST_SEED=%llu\n", test, (unsigned long long)seed);
    return seed;
}

static void qt_fill_uniform(tu_rng *r, float *x, int64_t n, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)tu_rng_uniform(r, lo, hi);
}

Test(quant, random_rows_round_trip_within_each_formats_nmse) {
    const uint64_t seed = qt_seed("random rows");
    float *x = malloc(QT_ROW * sizeof *x), *y = malloc(QT_ROW * sizeof *y);
    for (int k = 0; k < QT_NFORMATS; k++) {
        const qt_format *f = &qt_formats[k];
        tu_rng r;
        tu_rng_init(&r, tu_seed_mix(seed, (uint64_t)k));
        qt_fill_uniform(&r, x, QT_ROW, -1.0, 1.0);
        free(qt_round_trip(f, x, y, QT_ROW));
        qt_assert_finite(f, y, QT_ROW, "uniform");
        const double e = qt_nmse(x, y, QT_ROW);
        fprintf(stderr, "quant: %s NMSE uniform [-1, 1]: %.3g (bound %.3g)\n", f->name, e, f->nmse_uniform);
        cr_expect(e <= f->nmse_uniform, "%s: NMSE %.3g > %.3g [APR_TEST_SEED=%llu]", f->name, e, f->nmse_uniform,
                  (unsigned long long)seed);
    }
    free(y);
    free(x);
}

Test(quant, negative_only_rows_round_trip_within_each_formats_nmse) {
    const uint64_t seed = qt_seed("negative rows");
    float *x = malloc(QT_ROW * sizeof *x), *y = malloc(QT_ROW * sizeof *y);
    for (int k = 0; k < QT_NFORMATS; k++) {
        const qt_format *f = &qt_formats[k];
        tu_rng r;
        tu_rng_init(&r, tu_seed_mix(seed, (uint64_t)k));
        qt_fill_uniform(&r, x, QT_ROW, -2.0, -0.5);
        free(qt_round_trip(f, x, y, QT_ROW));
        qt_assert_finite(f, y, QT_ROW, "negative");
        for (int64_t i = 0; i < QT_ROW; i++)
            cr_assert(y[i] <= 0.0f, "%s: negative input %g came back as %g", f->name, x[i], y[i]);
        const double e = qt_nmse(x, y, QT_ROW);
        fprintf(stderr, "quant: %s NMSE uniform [-2, -0.5]: %.3g (bound %.3g)\n", f->name, e, f->nmse_negative);
        cr_expect(e <= f->nmse_negative, "%s: NMSE %.3g > %.3g [APR_TEST_SEED=%llu]", f->name, e, f->nmse_negative,
                  (unsigned long long)seed);
    }
    free(y);
    free(x);
}

Test(quant, all_zero_rows_dequantize_to_zeros) {
    float *x = calloc(QT_ROW, sizeof *x), *y = malloc(QT_ROW * sizeof *y);
    for (int k = 0; k < QT_NFORMATS; k++) {
        const qt_format *f = &qt_formats[k];
        memset(y, 0xff, QT_ROW * sizeof *y); /* NaN until written */
        free(qt_round_trip(f, x, y, QT_ROW));
        for (int64_t i = 0; i < QT_ROW; i++) cr_assert(y[i] == 0.0f, "%s: zero came back as %g at %lld", f->name, y[i], (long long)i);
    }
    free(y);
    free(x);
}

Test(quant, constant_rows_come_back_close_to_the_constant) {
    /* 1e-3: Q6_K's super-block scale c / 4096 is then an f16 subnormal (ggml's blocks are the
     * same), so tiny rows get a looser 5% */
    static const float consts[] = {0.37f, -0.37f, -2.5f, 1000.0f, 3.0e4f, 1e-3f, -1e-3f};
    float *x = malloc(QT_ROW * sizeof *x), *y = malloc(QT_ROW * sizeof *y);
    for (int k = 0; k < QT_NFORMATS; k++) {
        const qt_format *f = &qt_formats[k];
        for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
            for (int64_t i = 0; i < QT_ROW; i++) x[i] = consts[c];
            free(qt_round_trip(f, x, y, QT_ROW));
            const double bound = fabs(consts[c]) < 0.01f ? 0.05 : f->const_rel;
            for (int64_t i = 0; i < QT_ROW; i++) {
                const double rel = fabs((double)y[i] - consts[c]) / fabs(consts[c]);
                cr_assert(rel <= bound, "%s: constant %g came back as %.9g (relative error %.3g > %.3g)", f->name,
                          consts[c], y[i], rel, bound);
            }
        }
    }
    free(y);
    free(x);
}

/* One value 1000x the rest: it comes back within the format's relative bound, nothing turns
 * non-finite, and the blocks that do not hold it are exactly what they are without it. */
Test(quant, one_huge_outlier_stays_local) {
    const uint64_t seed = qt_seed("outlier");
    float *x = malloc(QT_ROW * sizeof *x), *y = malloc(QT_ROW * sizeof *y), *y0 = malloc(QT_ROW * sizeof *y0);
    for (int k = 0; k < QT_NFORMATS; k++) {
        const qt_format *f = &qt_formats[k];
        tu_rng r;
        tu_rng_init(&r, tu_seed_mix(seed, (uint64_t)k));
        qt_fill_uniform(&r, x, QT_ROW, -1.0, 1.0);
        uint8_t *q0 = qt_round_trip(f, x, y0, QT_ROW);
        const int64_t at = tu_rng_int(&r, 0, QT_ROW - 1);
        const float big = (k & 1) ? -1000.0f : 1000.0f;
        x[at] = big;
        uint8_t *q = qt_round_trip(f, x, y, QT_ROW);
        qt_assert_finite(f, y, QT_ROW, "outlier");
        const double rel = fabs((double)y[at] - big) / 1000.0;
        cr_expect(rel <= f->outlier_rel, "%s: outlier %g came back as %.9g (relative error %.3g > %.3g) [APR_TEST_SEED=%llu]",
                  f->name, big, y[at], rel, f->outlier_rel, (unsigned long long)seed);
        const int64_t home = at / f->block_elems;
        for (int64_t b = 0; b < QT_ROW / f->block_elems; b++) {
            if (b == home) continue;
            cr_assert(memcmp(q + b * f->block_bytes, q0 + b * f->block_bytes, (size_t)f->block_bytes) == 0,
                      "%s: block %lld changed by an outlier in block %lld", f->name, (long long)b, (long long)home);
        }
        free(q);
        free(q0);
    }
    free(y0);
    free(y);
    free(x);
}

/* The level (0 .. 31) of element j of a Q4_0 or Q5_0 block; -2 (no level) for the other formats. */
static int qt_level(const qt_format *f, const uint8_t *blk, int j) {
    if (f->t != APR_Q4_0 && f->t != APR_Q5_0) return -2;
    const uint8_t *qs = blk + (f->t == APR_Q4_0 ? 2 : 6);
    int l = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
    if (f->t == APR_Q5_0) {
        uint32_t qh;
        memcpy(&qh, blk + 2, 4);
        l |= (int)((qh >> j) & 1) << 4;
    }
    return l;
}

/* Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 put every value on the nearest level of its block, so it comes
 * back within half a step d / 2, plus what rounding d (and m) to f16 moves the level (a relative
 * 2^-11 of each, times the level). Q4_0 and Q5_0 clamp the level 2^b of a value opposite the
 * extreme to 2^b - 1: a full step. */
Test(quant, legacy_formats_keep_values_within_half_a_step) {
    const uint64_t seed = qt_seed("step bound");
    float *x = malloc(QT_ROW * sizeof *x), *y = malloc(QT_ROW * sizeof *y);
    const apr_dtype ts[] = {APR_Q4_0, APR_Q4_1, APR_Q5_0, APR_Q5_1, APR_Q8_0};
    for (int k = 0; k < 5; k++) {
        const qt_format *f = qt_find(ts[k]);
        tu_rng r;
        tu_rng_init(&r, tu_seed_mix(seed, (uint64_t)k));
        for (int64_t b = 0; b < QT_ROW / 32; b++) { /* a different range per block */
            const double lo = tu_rng_uniform(&r, -3.0, 1.0), hi = lo + tu_rng_uniform(&r, 0.01, 4.0);
            qt_fill_uniform(&r, x + 32 * b, 32, lo, hi);
        }
        uint8_t *q = qt_round_trip(f, x, y, QT_ROW);
        for (int64_t i = 0; i < QT_ROW; i++) {
            const uint8_t *blk = q + i / 32 * f->block_bytes;
            uint16_t dh, mh = 0;
            memcpy(&dh, blk, 2);
            if (f->t == APR_Q4_1 || f->t == APR_Q5_1) memcpy(&mh, blk + 2, 2);
            const double d = fabs(apr_f16_to_f32(dh)), m = fabs(apr_f16_to_f32(mh));
            /* the largest |level| that multiplies d, and the top level of Q4_0 / Q5_0 */
            const int span = f->t == APR_Q8_0 ? 127 : f->t == APR_Q4_1 ? 15 : f->t == APR_Q5_1 ? 31 : f->t == APR_Q4_0 ? 8 : 16;
            const int top = f->t == APR_Q4_0 ? 15 : 31;
            const double step = qt_level(f, blk, (int)(i % 32)) == top ? 1.0 : 0.5;
            const double bound = d * (step + (span + 1) * 0x1p-11) + m * 0x1p-11 + 1e-6 * (fabs(x[i]) + m);
            cr_assert(fabs((double)y[i] - x[i]) <= bound,
                      "%s: element %lld: %.9g came back as %.9g (d %g, m %g, bound %.3g) [APR_TEST_SEED=%llu]", f->name,
                      (long long)i, x[i], y[i], d, m, bound, (unsigned long long)seed);
        }
        free(q);
    }
    free(y);
    free(x);
}

/* Q8_K: bsums[j] is the sum of qs over elements 16 j .. 16 j + 15, the extreme is on -127 and
 * every value within half a step of d * qs. */
Test(quant, q8_K_bsums_are_the_sums_of_qs) {
    const uint64_t seed = qt_seed("q8_K");
    float *x = malloc(QT_ROW * sizeof *x), *y = malloc(QT_ROW * sizeof *y);
    tu_rng r;
    tu_rng_init(&r, seed);
    for (int64_t b = 0; b < QT_ROW / 256; b++) {
        const double scale = pow(10.0, tu_rng_uniform(&r, -4.0, 4.0));
        qt_fill_uniform(&r, x + 256 * b, 256, b % 3 == 0 ? 0.0 : -scale, scale);
    }
    uint8_t *q = qt_round_trip(qt_find(APR_Q8_K), x, y, QT_ROW);
    for (int64_t b = 0; b < QT_ROW / 256; b++) {
        apr_block_q8_K blk;
        memcpy(&blk, q + b * sizeof blk, sizeof blk);
        int extreme = 0;
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) {
                sum += blk.qs[16 * j + i];
                if (blk.qs[16 * j + i] == -127) extreme = 1;
                const double err = fabs((double)y[256 * b + 16 * j + i] - x[256 * b + 16 * j + i]);
                cr_assert(err <= fabs(blk.d) * 0.5001 + 1e-6 * fabs(x[256 * b + 16 * j + i]),
                          "q8_K: block %lld element %d off by %g (d %g) [APR_TEST_SEED=%llu]", (long long)b, 16 * j + i,
                          err, blk.d, (unsigned long long)seed);
            }
            cr_assert_eq(blk.bsums[j], sum, "q8_K: block %lld bsums[%d] = %d, sum of qs %d [APR_TEST_SEED=%llu]",
                         (long long)b, j, blk.bsums[j], sum, (unsigned long long)seed);
        }
        cr_assert(extreme, "q8_K: block %lld has no value on -127", (long long)b);
    }
    free(q);
    /* an all-zero block has d = 0, zero quants and zero sums */
    memset(x, 0, 256 * sizeof *x);
    apr_block_q8_K zero;
    memset(&zero, 0x5a, sizeof zero);
    cr_assert_eq(apr_quant_row(APR_Q8_K, x, &zero, 256), (int64_t)sizeof zero);
    cr_assert(zero.d == 0.0f);
    for (int j = 0; j < 16; j++) cr_assert_eq(zero.bsums[j], 0);
    for (int i = 0; i < 256; i++) cr_assert_eq(zero.qs[i], 0);
    free(y);
    free(x);
}

/* ---------------------------------------------------------------- the API */

Test(quant, sizes_that_are_not_whole_blocks_and_other_dtypes_are_refused) {
    float x[512] = {0}, y[512];
    uint8_t q[1024];
    for (int k = 0; k < QT_NFORMATS; k++) {
        const qt_format *f = &qt_formats[k];
        cr_assert(apr_quant_is_block(f->t), "%s is a block type", f->name);
        const int64_t bad[] = {1, f->block_elems - 1, f->block_elems + 1, f->block_elems / 2, -f->block_elems, -1};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            cr_assert_eq(apr_quant_row(f->t, x, q, bad[i]), 0, "%s: n = %lld accepted", f->name, (long long)bad[i]);
            cr_assert(!apr_dequant_row(f->t, q, y, bad[i]), "%s: n = %lld accepted", f->name, (long long)bad[i]);
        }
        cr_assert_eq(apr_quant_row(f->t, x, q, 0), 0); /* nothing to do: zero bytes, and success */
        cr_assert(apr_dequant_row(f->t, q, y, 0));
        cr_assert_eq(apr_quant_row(f->t, NULL, q, f->block_elems), 0);
        cr_assert_eq(apr_quant_row(f->t, x, NULL, f->block_elems), 0);
        cr_assert(!apr_dequant_row(f->t, NULL, y, f->block_elems));
        cr_assert(!apr_dequant_row(f->t, q, NULL, f->block_elems));
        cr_assert_eq(apr_quant_row(f->t, x, q, 2 * f->block_elems), 2 * f->block_bytes);
    }
    const int not_blocks[] = {APR_F32, APR_F16, APR_BF16, APR_I32, 4, 5, 9, 10, 11, 16, 39, 40, -1, 1000};
    for (size_t i = 0; i < sizeof not_blocks / sizeof not_blocks[0]; i++) {
        const apr_dtype t = (apr_dtype)not_blocks[i];
        cr_assert(!apr_quant_is_block(t), "dtype %d is not a block type", not_blocks[i]);
        cr_assert_eq(apr_quant_row(t, x, q, 256), 0);
        cr_assert(!apr_dequant_row(t, q, y, 256));
    }
}

/* Rows need no alignment: blocks written at an odd address and read back from it are the same
 * bytes and values as at an aligned one (this also runs under UBSan's alignment check). */
Test(quant, unaligned_buffers_give_the_same_blocks) {
    const uint64_t seed = qt_seed("unaligned");
    float *x = malloc((QT_ROW + 1) * sizeof *x), *y = malloc(QT_ROW * sizeof *y), *y1 = malloc((QT_ROW + 1) * sizeof *y1);
    uint8_t *q1 = malloc(QT_ROW * 2 + 1);
    for (int k = 0; k < QT_NFORMATS; k++) {
        const qt_format *f = &qt_formats[k];
        tu_rng r;
        tu_rng_init(&r, tu_seed_mix(seed, (uint64_t)k));
        qt_fill_uniform(&r, x, QT_ROW, -1.0, 1.0);
        uint8_t *q = qt_round_trip(f, x, y, QT_ROW);
        const int64_t bytes = QT_ROW / f->block_elems * f->block_bytes;
        cr_assert_eq(apr_quant_row(f->t, x, q1 + 1, QT_ROW), bytes);
        cr_assert(memcmp(q, q1 + 1, (size_t)bytes) == 0, "%s: unaligned blocks differ", f->name);
        cr_assert(apr_dequant_row(f->t, q1 + 1, y1, QT_ROW));
        cr_assert(memcmp(y, y1, QT_ROW * sizeof *y) == 0, "%s: unaligned dequant differs", f->name);
        free(q);
    }
    free(q1);
    free(y1);
    free(y);
    free(x);
}

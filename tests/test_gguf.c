/* test_gguf.c — the GGUF reader and writer: the real fixture files, a writer round trip with every
 * value type, hostile files (every truncation, targeted corruptions) that must fail with a clean
 * one-line message, atomic writes that leave nothing behind on failure, and the fuzzer's
 * regression inputs. Fixtures come from <repo>/../shared/fixtures; tests that need them skip
 * when the folder is missing. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"

/* ---------------------------------------------------------------- paths and files */

static char gt_repo[PATH_MAX];     /* the checkout: the test binary is <repo>/<build>/tests/test_gguf */
static char gt_fixtures[PATH_MAX + 32]; /* <repo>/../shared/fixtures */
static char gt_tmp[PATH_MAX];      /* a fresh directory per test */

static void gt_setup(void) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = 0;
    for (int i = 0; i < 3; i++) *strrchr(exe, '/') = 0; /* drop test_gguf, tests, <build> */
    snprintf(gt_repo, sizeof gt_repo, "%s", exe);
    snprintf(gt_fixtures, sizeof gt_fixtures, "%s/../shared/fixtures", gt_repo);
    snprintf(gt_tmp, sizeof gt_tmp, "/tmp/apr-gguf-XXXXXX");
    cr_assert(mkdtemp(gt_tmp));
}

static void gt_teardown(void) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", gt_tmp);
    cr_assert(system(cmd) == 0);
}

TestSuite(gguf, .init = gt_setup, .fini = gt_teardown, .timeout = 60);

/* Path of a fixture; skips the test when the shared folder is missing. */
static const char *gt_fixture(const char *rel) {
    static char path[2 * PATH_MAX];
    struct stat st;
    if (stat(gt_fixtures, &st) != 0) cr_skip_test("fixtures not found at %s (shared/ beside the checkout)", gt_fixtures);
    snprintf(path, sizeof path, "%s/%s", gt_fixtures, rel);
    cr_assert(stat(path, &st) == 0, "fixture %s is missing", path);
    return path;
}

static const char *gt_path(const char *name) {
    static char path[2][PATH_MAX + 64];
    static int which;
    which ^= 1;
    snprintf(path[which], sizeof path[which], "%s/%s", gt_tmp, name);
    return path[which];
}

static void gt_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s: %s", path, strerror(errno));
    cr_assert(fwrite(data, 1, size, f) == size);
    cr_assert(fclose(f) == 0);
}

static uint8_t *gt_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s: %s", path, strerror(errno));
    cr_assert(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    cr_assert(n >= 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    cr_assert(buf);
    cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static gguf_file *gt_open_ok(const char *path) {
    gguf_file *f;
    apr_error err;
    apr_status s = apr_gguf_open(path, &f, &err);
    cr_assert_eq(s, APR_OK, "%s: %s", path, err.msg);
    return f;
}

/* Files in gt_tmp (to check that a failed write left nothing behind). */
static int gt_tmp_entries(void) {
    DIR *d = opendir(gt_tmp);
    cr_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- the fixtures */

Test(gguf, stories260K_facts) {
    gguf_file *f = gt_open_ok(gt_fixture("stories260K/stories260K.gguf"));
    uint32_t u;
    float eps;
    cr_expect_eq(apr_gguf_version(f), 3);
    cr_expect_eq(apr_gguf_alignment(f), 32);
    cr_expect_str_eq(apr_gguf_get_str(f, "general.architecture"), "llama");
    cr_expect(apr_gguf_get_u32(f, "llama.block_count", &u) && u == 5);
    cr_expect(apr_gguf_get_u32(f, "llama.embedding_length", &u) && u == 64);
    cr_expect(apr_gguf_get_u32(f, "llama.attention.head_count", &u) && u == 8);
    cr_expect(apr_gguf_get_u32(f, "llama.attention.head_count_kv", &u) && u == 4);
    cr_expect(apr_gguf_get_u32(f, "llama.feed_forward_length", &u) && u == 172);
    cr_expect(apr_gguf_get_u32(f, "llama.rope.dimension_count", &u) && u == 8);
    cr_expect(apr_gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps) && eps == 1e-5f);
    int64_t bc;
    cr_expect(apr_gguf_get_i64(f, "llama.block_count", &bc) && bc == 5);
    cr_expect(!apr_gguf_get_u32(f, "general.architecture", &u), "a string is not a u32");
    cr_expect_null(apr_gguf_get_str(f, "no.such.key"));
    cr_expect_eq(apr_gguf_kv_find(f, "no.such.key"), -1);

    gguf_type et;
    uint64_t n;
    cr_assert(apr_gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n));
    cr_expect_eq(et, GGUF_STRING);
    cr_expect_eq(n, 512);
    cr_expect_str_eq(apr_gguf_get_arr_str(f, "tokenizer.ggml.tokens", 0), "<unk>");
    cr_expect_str_eq(apr_gguf_get_arr_str(f, "tokenizer.ggml.tokens", 1), "<s>");
    cr_expect_null(apr_gguf_get_arr_str(f, "tokenizer.ggml.tokens", 512));
    cr_expect_null(apr_gguf_get_arr_data(f, "tokenizer.ggml.tokens"));
    cr_assert(apr_gguf_get_arr(f, "tokenizer.ggml.scores", &et, &n));
    cr_expect(et == GGUF_FLOAT32 && n == 512 && apr_gguf_get_arr_data(f, "tokenizer.ggml.scores"));

    const gguf_tensor *t = apr_gguf_tensor_find(f, "token_embd.weight");
    cr_assert(t);
    cr_expect_eq(t->dtype, 0);
    cr_expect_eq(t->n_dims, 2);
    cr_expect(t->ne[0] == 64 && t->ne[1] == 512 && t->ne[2] == 1 && t->ne[3] == 1);
    cr_expect_eq(t->size, 64 * 512 * 4);
    cr_expect_eq(apr_gguf_tensor_count(f), 48);
    cr_expect_null(apr_gguf_tensor_find(f, "nope"));
    for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) {
        const gguf_tensor *x = apr_gguf_tensor_at(f, i);
        cr_expect_eq(apr_gguf_tensor_find(f, x->name), x);
        cr_expect_eq((uintptr_t)x->data % 32, 0, "%s is not aligned in the mapping", x->name);
    }
    /* The GGUF tensors are bit-identical to the llama2.c checkpoint: token_embd follows its 7-int header. */
    size_t bin_size;
    uint8_t *bin = gt_read_file(gt_fixture("stories260K/stories260K.bin"), &bin_size);
    cr_assert(bin_size >= 28 + t->size);
    cr_expect(memcmp(bin + 28, t->data, t->size) == 0, "token_embd.weight differs from stories260K.bin");
    free(bin);
    apr_gguf_close(f);
}

Test(gguf, stories260K_quantized) {
    static const struct { const char *file; uint32_t dtype; uint64_t size; } cases[] = {
        {"stories260K/stories260K-f16.gguf", 1, 64 * 512 * 2},
        {"stories260K/stories260K-q8_0.gguf", 8, 512 * 2 * 34},
        {"stories260K/stories260K-q4_0.gguf", 2, 512 * 2 * 18},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gguf_file *f = gt_open_ok(gt_fixture(cases[c].file));
        const gguf_tensor *t = apr_gguf_tensor_find(f, "token_embd.weight");
        cr_assert(t);
        cr_expect_eq(t->dtype, cases[c].dtype, "%s", cases[c].file);
        cr_expect_eq(t->size, cases[c].size, "%s", cases[c].file);
        const gguf_tensor *down = apr_gguf_tensor_find(f, "blk.0.ffn_down.weight");
        cr_assert(down);
        cr_expect(down->ne[0] == 172 && (down->dtype == 1 || down->dtype == 0), "rows of 172 stay f16/f32");
        apr_gguf_close(f);
    }
}

Test(gguf, vocab_only_files) {
    static const char *names[] = {"llama-spm", "gpt-2", "phi-3", "starcoder", "deepseek-coder"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", names[i]);
        gguf_file *f = gt_open_ok(gt_fixture(rel));
        gguf_type et;
        uint64_t n;
        cr_expect_eq(apr_gguf_tensor_count(f), 0, "%s", rel);
        cr_expect(apr_gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n) && et == GGUF_STRING && n > 30000, "%s", rel);
        cr_expect(apr_gguf_get_str(f, "tokenizer.ggml.model"), "%s", rel);
        apr_gguf_close(f);
    }
}

Test(gguf, tiny_llama_f16) {
    gguf_file *f = gt_open_ok(gt_fixture("tiny/llama-2-tiny-random.gguf"));
    const gguf_tensor *t = apr_gguf_tensor_find(f, "token_embd.weight");
    cr_assert(t);
    cr_expect(t->dtype == 1 && t->ne[0] == 8 && t->ne[1] == 32000 && t->size == 8 * 32000 * 2);
    uint64_t n;
    cr_expect(apr_gguf_get_arr(f, "tokenizer.ggml.tokens", NULL, &n) && n == 32000);
    for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) {
        const gguf_tensor *x = apr_gguf_tensor_at(f, i);
        cr_expect(x->dtype == 1 || x->dtype == 0, "%s is %s", x->name, apr_gguf_dtype_name(x->dtype));
    }
    apr_gguf_close(f);
}

/* Copies every key and tensor of a real model into a new file and compares the two. */
Test(gguf, rewrite_stories260K) {
    gguf_file *f = gt_open_ok(gt_fixture("stories260K/stories260K-q8_0.gguf"));
    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_copy_kv(w, f);
    for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) {
        const gguf_tensor *t = apr_gguf_tensor_at(f, i);
        apr_gguf_writer_add_tensor(w, t->name, t->dtype, t->n_dims, t->ne, t->data, t->size);
    }
    apr_error err;
    const char *out = gt_path("copy.gguf");
    cr_assert_eq(apr_gguf_writer_write(w, out, &err), APR_OK, "%s", err.msg);
    apr_gguf_writer_free(w);
    gguf_file *g = gt_open_ok(out);
    cr_assert_eq(apr_gguf_kv_count(g), apr_gguf_kv_count(f));
    cr_assert_eq(apr_gguf_tensor_count(g), apr_gguf_tensor_count(f));
    for (int64_t i = 0; i < apr_gguf_kv_count(f); i++) {
        cr_expect_str_eq(apr_gguf_kv_key(g, i), apr_gguf_kv_key(f, i));
        cr_expect_eq(apr_gguf_kv_type(g, i), apr_gguf_kv_type(f, i));
    }
    uint64_t n;
    cr_expect(apr_gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &n) && n == 512);
    for (uint64_t i = 0; i < 512; i++)
        cr_expect_str_eq(apr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i), apr_gguf_get_arr_str(f, "tokenizer.ggml.tokens", i));
    for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) {
        const gguf_tensor *a = apr_gguf_tensor_at(f, i), *b = apr_gguf_tensor_at(g, i);
        cr_expect_str_eq(a->name, b->name);
        cr_expect(a->dtype == b->dtype && a->size == b->size && memcmp(a->ne, b->ne, sizeof a->ne) == 0);
        cr_expect(memcmp(a->data, b->data, a->size) == 0, "%s data differs", a->name);
    }
    apr_gguf_close(g);
    apr_gguf_close(f);
}

/* ---------------------------------------------------------------- writer round trip */

static const uint32_t gt_u32s[] = {1, 2, 3, 0xffffffffu};
static const char *const gt_strs[] = {"alpha", "", "gamma with spaces", "\xe2\x82\xac"};

/* A writer holding every value type, nested arrays and several tensor types. */
static gguf_writer *gt_writer_everything(uint8_t *data, size_t data_size, uint32_t alignment) {
    for (size_t i = 0; i < data_size; i++) data[i] = (uint8_t)(i * 31 + 7);
    gguf_writer *w = apr_gguf_writer_new();
    cr_assert(w);
    if (alignment) apr_gguf_writer_set_u32(w, "general.alignment", alignment);
    apr_gguf_writer_set_str(w, "general.architecture", "llama");
    apr_gguf_writer_set_str(w, "general.name", "overwritten");
    apr_gguf_writer_set_str(w, "general.name", "round trip"); /* the last value wins */
    apr_gguf_writer_set_u32(w, "v.u32", 4000000000u);
    apr_gguf_writer_set_i32(w, "v.i32", -123456);
    apr_gguf_writer_set_f32(w, "v.f32", 1.5f);
    apr_gguf_writer_set_bool(w, "v.bool", true);
    apr_gguf_writer_set_value(w, "v.u8", &(gguf_value){.type = GGUF_UINT8, .u = 255});
    apr_gguf_writer_set_value(w, "v.i8", &(gguf_value){.type = GGUF_INT8, .i = -128});
    apr_gguf_writer_set_value(w, "v.u16", &(gguf_value){.type = GGUF_UINT16, .u = 65535});
    apr_gguf_writer_set_value(w, "v.i16", &(gguf_value){.type = GGUF_INT16, .i = -32768});
    apr_gguf_writer_set_value(w, "v.u64", &(gguf_value){.type = GGUF_UINT64, .u = UINT64_MAX});
    apr_gguf_writer_set_value(w, "v.i64", &(gguf_value){.type = GGUF_INT64, .i = INT64_MIN});
    apr_gguf_writer_set_value(w, "v.f64", &(gguf_value){.type = GGUF_FLOAT64, .f = -2.0e300});
    apr_gguf_writer_set_value(w, "v.nul", &(gguf_value){.type = GGUF_STRING, .str = {"a\0b", 3}});
    apr_gguf_writer_set_arr(w, "a.u32", GGUF_UINT32, gt_u32s, 4);
    apr_gguf_writer_set_arr(w, "a.empty", GGUF_FLOAT32, NULL, 0);
    static const int8_t i8s[] = {-1, 0, 1};
    static const int16_t i16s[] = {-300, 300};
    static const uint64_t u64s[] = {0, UINT64_MAX};
    static const double f64s[] = {0.25, -1e-300};
    static const bool bools[] = {true, false, true};
    apr_gguf_writer_set_arr(w, "a.i8", GGUF_INT8, i8s, 3);
    apr_gguf_writer_set_arr(w, "a.i16", GGUF_INT16, i16s, 2);
    apr_gguf_writer_set_arr(w, "a.u64", GGUF_UINT64, u64s, 2);
    apr_gguf_writer_set_arr(w, "a.f64", GGUF_FLOAT64, f64s, 2);
    apr_gguf_writer_set_arr(w, "a.bool", GGUF_BOOL, bools, 3);
    apr_gguf_writer_set_arr_str(w, "a.str", gt_strs, 4);
    /* [[1,2,3,0xffffffff], []] ; [["alpha",""], ["gamma with spaces"]] ; [[[1,2]]] */
    gguf_value inner_u[] = {{.type = GGUF_ARRAY, .arr = {GGUF_UINT32, 4, gt_u32s, NULL}},
                            {.type = GGUF_ARRAY, .arr = {GGUF_UINT32, 0, NULL, NULL}}};
    apr_gguf_writer_set_value(w, "n.u32", &(gguf_value){.type = GGUF_ARRAY, .arr = {GGUF_ARRAY, 2, NULL, inner_u}});
    gguf_value s0[] = {{.type = GGUF_STRING, .str = {"alpha", 5}}, {.type = GGUF_STRING, .str = {"", 0}}};
    gguf_value s1[] = {{.type = GGUF_STRING, .str = {"gamma with spaces", 17}}};
    gguf_value inner_s[] = {{.type = GGUF_ARRAY, .arr = {GGUF_STRING, 2, NULL, s0}},
                            {.type = GGUF_ARRAY, .arr = {GGUF_STRING, 1, NULL, s1}}};
    apr_gguf_writer_set_value(w, "n.str", &(gguf_value){.type = GGUF_ARRAY, .arr = {GGUF_ARRAY, 2, NULL, inner_s}});
    gguf_value lvl2[] = {{.type = GGUF_ARRAY, .arr = {GGUF_UINT32, 2, gt_u32s, NULL}}};
    gguf_value lvl1[] = {{.type = GGUF_ARRAY, .arr = {GGUF_ARRAY, 1, NULL, lvl2}}};
    apr_gguf_writer_set_value(w, "n.deep", &(gguf_value){.type = GGUF_ARRAY, .arr = {GGUF_ARRAY, 1, NULL, lvl1}});

    cr_assert(data_size >= 4096);
    apr_gguf_writer_add_tensor(w, "t.f32", 0, 2, (int64_t[]){8, 3}, data, 96);
    apr_gguf_writer_add_tensor(w, "t.f16", 1, 1, (int64_t[]){5}, data, 10); /* unaligned size: padding follows */
    apr_gguf_writer_add_tensor(w, "t.bf16", 30, 3, (int64_t[]){2, 2, 2}, data + 1, 16);
    apr_gguf_writer_add_tensor(w, "t.q4_0", 2, 2, (int64_t[]){64, 2}, data, 4 * 18);
    apr_gguf_writer_add_tensor(w, "t.q8_0", 8, 1, (int64_t[]){32}, data + 100, 34);
    apr_gguf_writer_add_tensor(w, "t.q6_K", 14, 1, (int64_t[]){256}, data, 210);
    apr_gguf_writer_add_tensor(w, "t.i32", 26, 4, (int64_t[]){2, 1, 3, 2}, data, 48);
    apr_gguf_writer_add_tensor(w, "t.empty", 0, 2, (int64_t[]){4, 0}, NULL, 0);
    return w;
}

static void gt_check_everything(gguf_file *f, const uint8_t *data, uint64_t alignment) {
    uint32_t u;
    int64_t i;
    float x;
    bool b;
    gguf_type et;
    uint64_t n;
    cr_expect_eq(apr_gguf_version(f), 3);
    cr_expect_eq(apr_gguf_alignment(f), alignment);
    cr_expect_str_eq(apr_gguf_get_str(f, "general.name"), "round trip");
    cr_expect(apr_gguf_get_u32(f, "v.u32", &u) && u == 4000000000u);
    cr_expect(apr_gguf_get_i64(f, "v.i32", &i) && i == -123456);
    cr_expect(!apr_gguf_get_u32(f, "v.i32", &u), "a negative value is no u32");
    cr_expect(apr_gguf_get_f32(f, "v.f32", &x) && x == 1.5f);
    cr_expect(apr_gguf_get_bool(f, "v.bool", &b) && b);
    cr_expect(apr_gguf_get_u32(f, "v.u8", &u) && u == 255);
    cr_expect(apr_gguf_get_i64(f, "v.i8", &i) && i == -128);
    cr_expect(apr_gguf_get_u32(f, "v.u16", &u) && u == 65535);
    cr_expect(apr_gguf_get_i64(f, "v.i16", &i) && i == -32768);
    cr_expect(!apr_gguf_get_u32(f, "v.u64", &u) && !apr_gguf_get_i64(f, "v.u64", &i), "UINT64_MAX fits neither");
    cr_expect_eq(apr_gguf_kv_value(f, apr_gguf_kv_find(f, "v.u64"))->u, UINT64_MAX);
    cr_expect(apr_gguf_get_i64(f, "v.i64", &i) && i == INT64_MIN);
    cr_expect_eq(apr_gguf_kv_value(f, apr_gguf_kv_find(f, "v.f64"))->f, -2.0e300);
    const gguf_value *nul = apr_gguf_kv_value(f, apr_gguf_kv_find(f, "v.nul"));
    cr_expect(nul->type == GGUF_STRING && nul->str.len == 3 && memcmp(nul->str.ptr, "a\0b", 4) == 0);
    static const struct { const char *key; gguf_type type; } types[] = {
        {"v.u8", GGUF_UINT8}, {"v.i8", GGUF_INT8}, {"v.u16", GGUF_UINT16}, {"v.i16", GGUF_INT16},
        {"v.u32", GGUF_UINT32}, {"v.i32", GGUF_INT32}, {"v.f32", GGUF_FLOAT32}, {"v.bool", GGUF_BOOL},
        {"v.nul", GGUF_STRING}, {"a.u32", GGUF_ARRAY}, {"v.u64", GGUF_UINT64}, {"v.i64", GGUF_INT64},
        {"v.f64", GGUF_FLOAT64}};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        cr_expect_eq(apr_gguf_kv_type(f, apr_gguf_kv_find(f, types[k].key)), types[k].type, "%s", types[k].key);

    cr_assert(apr_gguf_get_arr(f, "a.u32", &et, &n) && et == GGUF_UINT32 && n == 4);
    cr_expect(memcmp(apr_gguf_get_arr_data(f, "a.u32"), gt_u32s, sizeof gt_u32s) == 0);
    cr_expect(apr_gguf_get_arr(f, "a.empty", &et, &n) && et == GGUF_FLOAT32 && n == 0);
    const int8_t *i8s = apr_gguf_get_arr_data(f, "a.i8");
    cr_expect(i8s && i8s[0] == -1 && i8s[2] == 1);
    const int16_t *i16s = apr_gguf_get_arr_data(f, "a.i16");
    cr_expect(i16s && i16s[0] == -300 && i16s[1] == 300);
    const uint64_t *u64s = apr_gguf_get_arr_data(f, "a.u64");
    cr_expect(u64s && u64s[1] == UINT64_MAX);
    const double *f64s = apr_gguf_get_arr_data(f, "a.f64");
    cr_expect(f64s && f64s[0] == 0.25 && f64s[1] == -1e-300);
    const bool *bools = apr_gguf_get_arr_data(f, "a.bool");
    cr_expect(bools && bools[0] && !bools[1] && bools[2]);
    cr_assert(apr_gguf_get_arr(f, "a.str", &et, &n) && et == GGUF_STRING && n == 4);
    for (uint64_t k = 0; k < 4; k++) cr_expect_str_eq(apr_gguf_get_arr_str(f, "a.str", k), gt_strs[k]);

    const gguf_value *v = apr_gguf_kv_value(f, apr_gguf_kv_find(f, "n.u32"));
    cr_assert(v && v->type == GGUF_ARRAY && v->arr.type == GGUF_ARRAY && v->arr.n == 2);
    cr_expect(v->arr.items[0].arr.type == GGUF_UINT32 && v->arr.items[0].arr.n == 4);
    cr_expect(memcmp(v->arr.items[0].arr.data, gt_u32s, sizeof gt_u32s) == 0);
    cr_expect(v->arr.items[1].arr.n == 0);
    v = apr_gguf_kv_value(f, apr_gguf_kv_find(f, "n.str"));
    cr_assert(v && v->arr.n == 2 && v->arr.items[0].arr.type == GGUF_STRING && v->arr.items[0].arr.n == 2);
    cr_expect_str_eq(v->arr.items[0].arr.items[0].str.ptr, "alpha");
    cr_expect_str_eq(v->arr.items[0].arr.items[1].str.ptr, "");
    cr_expect_str_eq(v->arr.items[1].arr.items[0].str.ptr, "gamma with spaces");
    v = apr_gguf_kv_value(f, apr_gguf_kv_find(f, "n.deep"));
    cr_assert(v && v->arr.n == 1 && v->arr.items[0].arr.type == GGUF_ARRAY);
    const gguf_value *leaf = &v->arr.items[0].arr.items[0];
    cr_expect(leaf->arr.type == GGUF_UINT32 && leaf->arr.n == 2 && ((const uint32_t *)leaf->arr.data)[1] == 2);

    static const struct { const char *name; uint32_t dtype; int n_dims; int64_t ne[4]; uint64_t size; size_t src; } ts[] = {
        {"t.f32", 0, 2, {8, 3, 1, 1}, 96, 0},      {"t.f16", 1, 1, {5, 1, 1, 1}, 10, 0},
        {"t.bf16", 30, 3, {2, 2, 2, 1}, 16, 1},    {"t.q4_0", 2, 2, {64, 2, 1, 1}, 72, 0},
        {"t.q8_0", 8, 1, {32, 1, 1, 1}, 34, 100},  {"t.q6_K", 14, 1, {256, 1, 1, 1}, 210, 0},
        {"t.i32", 26, 4, {2, 1, 3, 2}, 48, 0},     {"t.empty", 0, 2, {4, 0, 1, 1}, 0, 0}};
    cr_assert_eq(apr_gguf_tensor_count(f), 8);
    for (size_t k = 0; k < 8; k++) {
        const gguf_tensor *t = apr_gguf_tensor_at(f, (int64_t)k);
        cr_assert_str_eq(t->name, ts[k].name);
        cr_expect_eq(t->dtype, ts[k].dtype, "%s", t->name);
        cr_expect_eq(t->n_dims, ts[k].n_dims, "%s", t->name);
        cr_expect(memcmp(t->ne, ts[k].ne, sizeof t->ne) == 0, "%s", t->name);
        cr_expect_eq(t->size, ts[k].size, "%s", t->name);
        cr_expect_eq(t->offset % alignment, 0, "%s", t->name);
        cr_expect_eq((uintptr_t)t->data % alignment, 0, "%s", t->name);
        if (t->size) cr_expect(memcmp(t->data, data + ts[k].src, t->size) == 0, "%s data", t->name);
    }
}

Test(gguf, writer_round_trip) {
    static uint8_t data[4096];
    apr_error err;
    static const uint32_t aligns[] = {0, 64, 1, 4096};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        gguf_writer *w = gt_writer_everything(data, sizeof data, aligns[a]);
        const char *out = gt_path("everything.gguf");
        cr_assert_eq(apr_gguf_writer_write(w, out, &err), APR_OK, "%s", err.msg);
        apr_gguf_writer_free(w);
        struct stat st;
        cr_assert(stat(out, &st) == 0);
        cr_expect_eq(st.st_size % (aligns[a] ? aligns[a] : 32), 0, "the file ends padded");
        gguf_file *f = gt_open_ok(out);
        gt_check_everything(f, data, aligns[a] ? aligns[a] : 32);
        /* The same bytes through the memory reader. */
        size_t size;
        uint8_t *img = gt_read_file(out, &size);
        gguf_file *m;
        cr_assert_eq(apr_gguf_open_memory(img, size, "mem", &m, &err), APR_OK, "%s", err.msg);
        cr_expect_eq(apr_gguf_kv_count(m), apr_gguf_kv_count(f));
        apr_gguf_close(m);
        free(img);
        apr_gguf_close(f);
        cr_expect_eq(gt_tmp_entries(), 1, "only OUT is left, no temporary file");
    }
}

Test(gguf, writer_rejects_bad_input) {
    apr_error err;
    static const uint8_t data[64];
    /* Each case: a writer with one bad call; writing fails with APR_ERR_INVALID and leaves nothing. */
    gguf_writer *w;

    w = apr_gguf_writer_new();
    apr_gguf_writer_set_u32(w, "general.alignment", 48);
    cr_expect_eq(apr_gguf_writer_write(w, gt_path("a.gguf"), &err), APR_ERR_INVALID);
    cr_expect(strstr(err.msg, "a.gguf") && strstr(err.msg, "general.alignment"), "%s", err.msg);
    apr_gguf_writer_free(w);

    w = apr_gguf_writer_new();
    apr_gguf_writer_add_tensor(w, "t", 0, 1, (int64_t[]){4}, data, 15);
    cr_expect_eq(apr_gguf_writer_write(w, gt_path("a.gguf"), &err), APR_ERR_INVALID);
    cr_expect(strstr(err.msg, "tensor 't'"), "%s", err.msg);
    apr_gguf_writer_free(w);

    w = apr_gguf_writer_new();
    apr_gguf_writer_add_tensor(w, "t", 2, 1, (int64_t[]){16}, data, 9);
    cr_expect_eq(apr_gguf_writer_write(w, gt_path("a.gguf"), &err), APR_ERR_INVALID, "q4_0 rows are whole blocks");
    apr_gguf_writer_free(w);

    w = apr_gguf_writer_new();
    apr_gguf_writer_add_tensor(w, "t", 99, 1, (int64_t[]){4}, data, 16);
    cr_expect_eq(apr_gguf_writer_write(w, gt_path("a.gguf"), &err), APR_ERR_INVALID);
    cr_expect(strstr(err.msg, "unknown GGML type 99"), "%s", err.msg);
    apr_gguf_writer_free(w);

    w = apr_gguf_writer_new();
    apr_gguf_writer_add_tensor(w, "t", 0, 1, (int64_t[]){4}, data, 16);
    apr_gguf_writer_add_tensor(w, "t", 0, 1, (int64_t[]){4}, data, 16);
    cr_expect_eq(apr_gguf_writer_write(w, gt_path("a.gguf"), &err), APR_ERR_INVALID);
    cr_expect(strstr(err.msg, "added twice"), "%s", err.msg);
    apr_gguf_writer_free(w);

    w = apr_gguf_writer_new();
    apr_gguf_writer_add_tensor(w, "t", 0, 5, (int64_t[]){1, 1, 1, 1, 1}, data, 4);
    cr_expect_eq(apr_gguf_writer_write(w, gt_path("a.gguf"), &err), APR_ERR_INVALID);
    apr_gguf_writer_free(w);

    w = apr_gguf_writer_new();
    apr_gguf_writer_set_arr(w, "k", GGUF_STRING, data, 1);
    cr_expect_eq(apr_gguf_writer_write(w, gt_path("a.gguf"), &err), APR_ERR_INVALID);
    apr_gguf_writer_free(w);

    w = apr_gguf_writer_new();
    apr_gguf_writer_set_value(w, "u8", &(gguf_value){.type = GGUF_UINT8, .u = 256});
    cr_expect_eq(apr_gguf_writer_write(w, gt_path("a.gguf"), &err), APR_ERR_INVALID);
    cr_expect(strstr(err.msg, "key 'u8'") && strstr(err.msg, "out of range"), "%s", err.msg);
    apr_gguf_writer_free(w);

    w = apr_gguf_writer_new();
    gguf_value mixed[] = {{.type = GGUF_UINT8, .u = 1}};
    apr_gguf_writer_set_value(w, "k", &(gguf_value){.type = GGUF_ARRAY, .arr = {GGUF_STRING, 1, NULL, mixed}});
    apr_gguf_writer_set_value(w, "k2", &(gguf_value){.type = (gguf_type)77});
    cr_expect_eq(apr_gguf_writer_write(w, gt_path("a.gguf"), &err), APR_ERR_INVALID);
    cr_expect(strstr(err.msg, "key 'k'"), "%s", err.msg);
    apr_gguf_writer_free(w);

    cr_expect_eq(gt_tmp_entries(), 0);
}

/* ---------------------------------------------------------------- atomic writes */

Test(gguf, writer_missing_directory) {
    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_set_str(w, "general.architecture", "llama");
    apr_error err;
    const char *out = gt_path("no/such/dir/out.gguf");
    cr_expect_eq(apr_gguf_writer_write(w, out, &err), APR_ERR_IO);
    cr_expect(strstr(err.msg, out) && strstr(err.msg, strerror(ENOENT)), "%s", err.msg);
    apr_gguf_writer_free(w);
    cr_expect_eq(gt_tmp_entries(), 0);
}

/* A fill-callback tensor: bytes produced at write time in chunks (3 MiB + 5 bytes: several 1 MiB
 * chunks and a short one), read back equal; a callback's errno fails the write, leaving nothing. */
static int gt_fill(void *ctx, uint64_t offset, void *buf, size_t n) {
    int *calls = ctx;
    (*calls)++;
    for (size_t i = 0; i < n; i++) ((uint8_t *)buf)[i] = (uint8_t)((offset + i) * 7 + 3);
    return 0;
}

static int gt_fill_fail(void *ctx, uint64_t offset, void *buf, size_t n) {
    (void)ctx, (void)buf, (void)n;
    return offset > 0 ? ENOSPC : 0;
}

Test(gguf, writer_fill_callback) {
    const uint64_t size = (3u << 20) + 5;
    int calls = 0;
    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_add_tensor(w, "small", 0, 1, (int64_t[]){1}, (float[]){2.5f}, 4);
    apr_gguf_writer_add_tensor_fn(w, "big", 24 /* i8 */, 1, (int64_t[]){(int64_t)size}, size, gt_fill, &calls);
    apr_error err;
    const char *out = gt_path("fill.gguf");
    cr_assert_eq(apr_gguf_writer_write(w, out, &err), APR_OK, "%s", err.msg);
    apr_gguf_writer_free(w);
    cr_expect_eq(calls, 4);
    gguf_file *f;
    cr_assert_eq(apr_gguf_open(out, &f, &err), APR_OK, "%s", err.msg);
    const gguf_tensor *t = apr_gguf_tensor_find(f, "big");
    cr_assert(t && t->size == size);
    int bad = 0;
    for (uint64_t i = 0; i < size; i++) bad += ((const uint8_t *)t->data)[i] != (uint8_t)(i * 7 + 3);
    cr_expect_eq(bad, 0);
    cr_expect_eq(*(const float *)apr_gguf_tensor_find(f, "small")->data, 2.5f);
    apr_gguf_close(f);
    w = apr_gguf_writer_new();
    apr_gguf_writer_add_tensor_fn(w, "big", 24, 1, (int64_t[]){(int64_t)size}, size, gt_fill_fail, NULL);
    const char *out2 = gt_path("fail.gguf");
    cr_expect_eq(apr_gguf_writer_write(w, out2, &err), APR_ERR_IO);
    cr_expect(strstr(err.msg, out2) && strstr(err.msg, strerror(ENOSPC)), "%s", err.msg);
    apr_gguf_writer_free(w);
    cr_expect_eq(gt_tmp_entries(), 1, "only fill.gguf may remain");
    w = apr_gguf_writer_new();
    apr_gguf_writer_add_tensor_fn(w, "nofill", 0, 1, (int64_t[]){1}, 4, NULL, NULL);
    cr_expect_eq(apr_gguf_writer_write(w, out2, &err), APR_ERR_INVALID);
    apr_gguf_writer_free(w);
}

/* Disk full: the child may write only 4 KiB (RLIMIT_FSIZE; SIGXFSZ ignored so write fails with
 * EFBIG instead of killing it). The write must fail naming OUT and leave no file at all. */
Test(gguf, writer_disk_full_leaves_nothing) {
    const char *out = gt_path("full.gguf");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        static uint8_t big[64 * 1024];
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        gguf_writer *w = apr_gguf_writer_new();
        apr_gguf_writer_set_str(w, "general.architecture", "llama");
        apr_gguf_writer_add_tensor(w, "big", 0, 1, (int64_t[]){sizeof big / 4}, big, sizeof big);
        apr_error err;
        apr_status s = apr_gguf_writer_write(w, out, &err);
        apr_gguf_writer_free(w);
        if (s != APR_ERR_IO) _exit(11);
        if (!strstr(err.msg, out) || !strstr(err.msg, strerror(EFBIG))) {
            fprintf(stderr, "message: %s\n", err.msg);
            _exit(12);
        }
        _exit(0);
    }
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    cr_assert(WIFEXITED(st), "the writer child died (signal %d)", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_eq(WEXITSTATUS(st), 0, "child check %d failed", WEXITSTATUS(st));
    cr_expect_eq(gt_tmp_entries(), 0, "neither OUT nor a temporary file may remain");
}

Test(gguf, writer_replaces_atomically) {
    apr_error err;
    const char *out = gt_path("model.gguf");
    gt_write_file(out, "old contents", 12);
    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_set_str(w, "general.name", "new");
    cr_assert_eq(apr_gguf_writer_write(w, out, &err), APR_OK, "%s", err.msg);
    apr_gguf_writer_free(w);
    gguf_file *f = gt_open_ok(out);
    cr_expect_str_eq(apr_gguf_get_str(f, "general.name"), "new");
    apr_gguf_close(f);
    cr_expect_eq(gt_tmp_entries(), 1);
}

/* ---------------------------------------------------------------- hostile files */

/* The base of the hostile suite: a small valid file from the writer whose last tensor ends
 * exactly at the end of the file, so every truncation removes something needed. */
static uint8_t *gt_base_file(size_t *size) {
    static float a[32];
    static uint16_t b[16];
    for (int i = 0; i < 32; i++) a[i] = (float)i;
    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_set_str(w, "general.architecture", "llama");
    apr_gguf_writer_set_u32(w, "general.alignment", 32);
    apr_gguf_writer_set_str(w, "test.name", "hello");
    apr_gguf_writer_set_arr(w, "test.arr", GGUF_UINT32, gt_u32s, 4);
    apr_gguf_writer_set_u32(w, "test.dup1", 1);
    apr_gguf_writer_set_u32(w, "test.dup2", 2);
    apr_gguf_writer_set_bool(w, "test.bool", false);
    gguf_value inner[] = {{.type = GGUF_ARRAY, .arr = {GGUF_UINT32, 2, gt_u32s, NULL}}};
    apr_gguf_writer_set_value(w, "test.nested", &(gguf_value){.type = GGUF_ARRAY, .arr = {GGUF_ARRAY, 1, NULL, inner}});
    apr_gguf_writer_add_tensor(w, "t.a", 0, 2, (int64_t[]){8, 4}, a, sizeof a);
    apr_gguf_writer_add_tensor(w, "t.b", 1, 1, (int64_t[]){16}, b, sizeof b);
    apr_error err;
    const char *path = gt_path("base.gguf");
    cr_assert_eq(apr_gguf_writer_write(w, path, &err), APR_OK, "%s", err.msg);
    apr_gguf_writer_free(w);
    uint8_t *buf = gt_read_file(path, size);
    unlink(path);
    return buf;
}

/* Offset just past the (length-prefixed) string s in buf. */
static size_t gt_after_str(const uint8_t *buf, size_t size, const char *s) {
    uint8_t pat[128];
    uint64_t len = strlen(s);
    memcpy(pat, &len, 8);
    memcpy(pat + 8, s, len);
    const uint8_t *p = memmem(buf, size, pat, 8 + len);
    cr_assert(p, "'%s' not found in the base file", s);
    return (size_t)(p - buf) + 8 + len;
}

static void gt_put32(uint8_t *buf, size_t at, uint32_t v) { memcpy(buf + at, &v, 4); }
static void gt_put64(uint8_t *buf, size_t at, uint64_t v) { memcpy(buf + at, &v, 8); }

/* Writes buf as a file and expects APR_ERR_FORMAT with a message naming the file and containing
 * every one of the given substrings (NULL-terminated list). */
static void gt_expect_format(const char *name, const uint8_t *buf, size_t size, ...) {
    const char *path = gt_path(name);
    gt_write_file(path, buf, size);
    gguf_file *f = NULL;
    apr_error err;
    err.msg[0] = 0;
    apr_status s = apr_gguf_open(path, &f, &err);
    cr_expect_eq(s, APR_ERR_FORMAT, "%s: status %d (%s)", name, s, err.msg);
    cr_expect_null(f);
    cr_expect(strncmp(err.msg, path, strlen(path)) == 0, "%s: message does not start with the path: %s", name, err.msg);
    cr_expect_null(strchr(err.msg, '\n'), "%s: message is not one line", name);
    va_list ap;
    va_start(ap, size);
    for (const char *want; (want = va_arg(ap, const char *));)
        cr_expect(strstr(err.msg, want), "%s: message lacks '%s': %s", name, want, err.msg);
    va_end(ap);
    unlink(path);
}

Test(gguf, hostile_truncations) {
    size_t size;
    uint8_t *buf = gt_base_file(&size);
    gguf_file *f;
    apr_error err;
    cr_assert_eq(apr_gguf_open_memory(buf, size, "base", &f, &err), APR_OK, "%s", err.msg);
    apr_gguf_close(f);
    /* Every shorter length, through real files (the message must name the path). */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/trunc.gguf", gt_tmp);
    for (size_t len = 0; len < size; len++) {
        gt_write_file(path, buf, len);
        apr_status s = apr_gguf_open(path, &f, &err);
        cr_assert_eq(s, APR_ERR_FORMAT, "truncated at %zu of %zu: status %d (%s)", len, size, s, err.msg);
        cr_assert(strncmp(err.msg, path, strlen(path)) == 0 && !strchr(err.msg, '\n'), "at %zu: %s", len, err.msg);
    }
    free(buf);
}

Test(gguf, hostile_corruptions) {
    size_t size;
    uint8_t *base = gt_base_file(&size), *buf = malloc(size + 64);
    cr_assert(buf);
#define GT_FRESH() memcpy(buf, base, size)
    size_t name_val = gt_after_str(base, size, "test.name") + 4;   /* the value's u64 length */
    size_t arr = gt_after_str(base, size, "test.arr");             /* type, elem type, length */
    size_t ta = gt_after_str(base, size, "t.a");                   /* n_dims, ne[2], type, offset */
    size_t tb = gt_after_str(base, size, "t.b");                   /* n_dims, ne[1], type, offset */
    size_t align = gt_after_str(base, size, "general.alignment") + 4;
    size_t boolv = gt_after_str(base, size, "test.bool") + 4;
    size_t nested = gt_after_str(base, size, "test.nested");

    GT_FRESH(); buf[0] = 'X';
    gt_expect_format("magic.gguf", buf, size, "not a GGUF file", NULL);
    GT_FRESH(); gt_put32(buf, 4, 1);
    gt_expect_format("v1.gguf", buf, size, "version 1 is not supported", NULL);
    GT_FRESH(); gt_put32(buf, 4, 99);
    gt_expect_format("v99.gguf", buf, size, "unsupported GGUF version 99", NULL);
    GT_FRESH(); gt_put32(buf, 4, 0x03000000);
    gt_expect_format("bigendian.gguf", buf, size, "big-endian", NULL);
    GT_FRESH(); gt_put32(buf, 4, 2); /* version 2 has the same layout */
    {
        gguf_file *f;
        apr_error err;
        cr_expect_eq(apr_gguf_open_memory(buf, size, "v2", &f, &err), APR_OK, "%s", err.msg);
        if (f) { cr_expect_eq(apr_gguf_version(f), 2); apr_gguf_close(f); }
    }
    GT_FRESH(); gt_put64(buf, 8, UINT64_MAX / 2);
    gt_expect_format("ntensors.gguf", buf, size, "tensor count", NULL);
    GT_FRESH(); gt_put64(buf, 16, 1ull << 60);
    gt_expect_format("nkv.gguf", buf, size, "key-value count", NULL);
    GT_FRESH(); gt_put64(buf, 24, 1ull << 40); /* the first key's length */
    gt_expect_format("hugekey.gguf", buf, size, "key length", "exceeds the limit", NULL);
    GT_FRESH(); gt_put64(buf, name_val, UINT64_MAX);
    gt_expect_format("hugestr.gguf", buf, size, "key 'test.name'", "string value length", NULL);
    GT_FRESH(); gt_put64(buf, name_val, 1000000);
    gt_expect_format("longstr.gguf", buf, size, "key 'test.name'", "truncated", NULL);
    GT_FRESH(); gt_put64(buf, arr + 8, UINT64_MAX / 4);
    gt_expect_format("hugearr.gguf", buf, size, "key 'test.arr'", "runs past the end", NULL);
    GT_FRESH(); gt_put32(buf, arr + 4, 13);
    gt_expect_format("arrtype.gguf", buf, size, "key 'test.arr'", "unknown array element type 13", NULL);
    GT_FRESH(); gt_put32(buf, arr, 13);
    gt_expect_format("valtype.gguf", buf, size, "key 'test.arr'", "unknown value type 13", NULL);
    GT_FRESH(); buf[boolv] = 7;
    gt_expect_format("bool.gguf", buf, size, "key 'test.bool'", "neither 0 nor 1", NULL);
    GT_FRESH(); gt_put64(buf, nested + 20, UINT64_MAX / 8); /* the inner array's length */
    gt_expect_format("nestedlen.gguf", buf, size, "key 'test.nested'", "runs past the end", NULL);
    GT_FRESH(); memcpy(buf + gt_after_str(base, size, "test.dup2") - 1, "1", 1);
    gt_expect_format("dupkey.gguf", buf, size, "key 'test.dup1'", "duplicate key", NULL);
    GT_FRESH(); memcpy(buf + boolv - 4 - 3, "\n\x01", 2); buf[boolv] = 2; /* key "test.b\n\x01l", bad bool */
    gt_expect_format("ctrlkey.gguf", buf, size, "key 'test.b\\x0a\\x01l'", NULL); /* quoted, still one line */
    GT_FRESH(); buf[gt_after_str(base, size, "test.dup1") - 2] = 0;
    gt_expect_format("nulkey.gguf", buf, size, "contains a NUL byte", NULL);
    GT_FRESH(); gt_put32(buf, align, 3);
    gt_expect_format("align3.gguf", buf, size, "key 'general.alignment'", "alignment 3 is not a power of two", NULL);
    GT_FRESH(); gt_put32(buf, align, 0);
    gt_expect_format("align0.gguf", buf, size, "alignment 0 is not a power of two", NULL);
    GT_FRESH(); gt_put32(buf, align - 4, GGUF_INT32);
    gt_expect_format("aligntype.gguf", buf, size, "general.alignment", "must be of type uint32", NULL);

    GT_FRESH(); gt_put32(buf, ta, 5);
    gt_expect_format("ndims5.gguf", buf, size, "tensor 't.a'", "n_dims 5", NULL);
    GT_FRESH(); gt_put32(buf, ta, 0);
    gt_expect_format("ndims0.gguf", buf, size, "tensor 't.a'", "n_dims 0", NULL);
    GT_FRESH(); gt_put32(buf, ta + 4 + 16, 99);
    gt_expect_format("dtype99.gguf", buf, size, "tensor 't.a'", "unknown GGML type 99", NULL);
    GT_FRESH(); gt_put32(buf, ta + 4 + 16, 4); /* Q4_2: removed from ggml */
    gt_expect_format("dtype4.gguf", buf, size, "tensor 't.a'", "unknown GGML type 4", NULL);
    GT_FRESH(); gt_put64(buf, ta + 4, 1ull << 32); gt_put64(buf, ta + 12, 1ull << 32);
    gt_expect_format("neoverflow.gguf", buf, size, "tensor 't.a'", "overflows", NULL);
    GT_FRESH(); gt_put64(buf, ta + 4, UINT64_MAX);
    gt_expect_format("neneg.gguf", buf, size, "tensor 't.a'", "does not fit in int64", NULL);
    GT_FRESH(); gt_put64(buf, ta + 4, 1ull << 61); gt_put64(buf, ta + 12, 2);
    gt_expect_format("bytesoverflow.gguf", buf, size, "tensor 't.a'", "overflows", NULL); /* 2^62 f32 = 2^64 bytes */
    GT_FRESH(); gt_put32(buf, tb + 4 + 8, 2); /* 16 elements as q4_0 */
    gt_expect_format("block.gguf", buf, size, "tensor 't.b'", "not a multiple of the q4_0 block of 32", NULL);
    GT_FRESH(); gt_put64(buf, ta + 4 + 16 + 4, 1ull << 40);
    gt_expect_format("offset.gguf", buf, size, "tensor 't.a'", "runs past the end of the file", NULL);
    GT_FRESH(); gt_put64(buf, ta + 4 + 16 + 4, UINT64_MAX - 31);
    gt_expect_format("offsetwrap.gguf", buf, size, "tensor 't.a'", "runs past the end of the file", NULL);
    GT_FRESH(); gt_put64(buf, tb + 4 + 8 + 4, 128 + 1);
    gt_expect_format("misaligned.gguf", buf, size, "tensor 't.b'", "not a multiple of the alignment 32", NULL);
    GT_FRESH(); gt_put64(buf, tb + 4 + 8 + 4, 96);
    gt_expect_format("overlap.gguf", buf, size, "tensor 't.b'", "overlaps tensor 't.a'", NULL);
    GT_FRESH(); buf[tb - 1] = 'a';
    gt_expect_format("duptensor.gguf", buf, size, "tensor 't.a'", "duplicate tensor name", NULL);
    GT_FRESH(); gt_put64(buf, ta - 11, 1ull << 30);
    gt_expect_format("hugename.gguf", buf, size, "tensor #0", "tensor name length", NULL);
#undef GT_FRESH
    free(buf);
    free(base);
}

/* Arrays nested deeper than the limit fail cleanly instead of recursing without bound. */
Test(gguf, hostile_deep_nesting) {
    enum { DEPTH = 100000 };
    size_t cap = 64 + (size_t)DEPTH * 12;
    uint8_t *buf = calloc(1, cap);
    cr_assert(buf);
    size_t o = 0;
    gt_put32(buf, o, 0x46554747u); o += 4;
    gt_put32(buf, o, 3); o += 4;
    gt_put64(buf, o, 0); o += 8;
    gt_put64(buf, o, 1); o += 8;
    gt_put64(buf, o, 1); o += 8;
    buf[o++] = 'k';
    gt_put32(buf, o, GGUF_ARRAY); o += 4;
    for (int d = 0; d < DEPTH; d++) {
        gt_put32(buf, o, GGUF_ARRAY); o += 4;
        gt_put64(buf, o, 1); o += 8;
    }
    gt_expect_format("deep.gguf", buf, o, "key 'k'", "nested deeper than", NULL);
    free(buf);
}

Test(gguf, open_errors) {
    gguf_file *f;
    apr_error err;
    const char *missing = gt_path("missing.gguf");
    cr_expect_eq(apr_gguf_open(missing, &f, &err), APR_ERR_IO);
    cr_expect(strstr(err.msg, missing) && strstr(err.msg, strerror(ENOENT)), "%s", err.msg);
    cr_expect_eq(apr_gguf_open(gt_tmp, &f, &err), APR_ERR_IO);
    cr_expect(strstr(err.msg, "not a regular file"), "%s", err.msg);
    const char *fifo = gt_path("fifo");
    cr_assert(mkfifo(fifo, 0600) == 0);
    cr_expect_eq(apr_gguf_open(fifo, &f, &err), APR_ERR_IO, "a FIFO is refused without blocking");
    gt_expect_format("empty.gguf", (const uint8_t *)"", 0, "not a GGUF file", NULL);
}

/* ---------------------------------------------------------------- the fuzzer's inputs */

/* Runs every file of <repo>/fuzz/<sub>: each must open, or fail with a clean message. */
static int gt_replay(const char *sub, bool must_open) {
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/fuzz/%s", gt_repo, sub);
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[2 * PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        gguf_file *f = NULL;
        apr_error err;
        apr_status s = apr_gguf_open(path, &f, &err);
        if (s == APR_OK) {
            for (int64_t i = 0; i < apr_gguf_kv_count(f); i++) cr_assert(apr_gguf_kv_value(f, i));
            for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) {
                const gguf_tensor *t = apr_gguf_tensor_at(f, i);
                if (t->size) cr_assert(((const uint8_t *)t->data)[t->size - 1] || 1);
            }
            apr_gguf_close(f);
        } else {
            cr_expect(!must_open, "%s: %s", path, err.msg);
            cr_expect_eq(s, APR_ERR_FORMAT, "%s: status %d: %s", path, s, err.msg);
            cr_expect(strncmp(err.msg, path, strlen(path)) == 0 && !strchr(err.msg, '\n'), "%s: %s", path, err.msg);
        }
        n++;
    }
    closedir(d);
    return n;
}

Test(gguf, fuzz_regressions) {
    int n = gt_replay("regress/gguf", false);
    cr_assert(n >= 0, "fuzz/regress/gguf is missing in %s", gt_repo);
}

Test(gguf, fuzz_seed_corpus_is_valid) {
    int n = gt_replay("corpus/gguf", true);
    cr_assert(n > 0, "no seed corpus in %s/fuzz/corpus/gguf", gt_repo);
}

Test(gguf, dtype_table) {
    int64_t be, bb;
    static const struct { uint32_t id; const char *name; int64_t be, bb; } known[] = {
        {0, "f32", 1, 4}, {1, "f16", 1, 2}, {2, "q4_0", 32, 18}, {3, "q4_1", 32, 20}, {6, "q5_0", 32, 22},
        {7, "q5_1", 32, 24}, {8, "q8_0", 32, 34}, {9, "q8_1", 32, 36}, {10, "q2_K", 256, 84},
        {11, "q3_K", 256, 110}, {12, "q4_K", 256, 144}, {13, "q5_K", 256, 176}, {14, "q6_K", 256, 210},
        {15, "q8_K", 256, 292}, {24, "i8", 1, 1}, {25, "i16", 1, 2}, {26, "i32", 1, 4}, {27, "i64", 1, 8},
        {28, "f64", 1, 8}, {30, "bf16", 1, 2}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        cr_expect(apr_gguf_dtype_block(known[i].id, &be, &bb) && be == known[i].be && bb == known[i].bb, "%u", known[i].id);
        cr_expect_str_eq(apr_gguf_dtype_name(known[i].id), known[i].name);
    }
    static const uint32_t unknown[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 99, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_expect(!apr_gguf_dtype_block(unknown[i], &be, &bb), "%u", unknown[i]);
        cr_expect_null(apr_gguf_dtype_name(unknown[i]));
    }
}

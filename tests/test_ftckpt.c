/* test_ftckpt.c — fine-tuning checkpoints (llm/ft_ckpt.c): a bit-exact round trip; loads that refuse missing or
 * reshaped tensors, other versions, mistyped keys, truncated files and garbage, changing nothing; saves that fail
 * mid-write (a file size limit) or are killed mid-write (SIGKILL at the writer's stop hook) leave the previous
 * checkpoint whole and no named file behind. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apr/apr.h"
#include "ft_ckpt.h"
#include "gguf.h"
#include "util/tu_dir.h"
#include "util/tu_paths.h"
#include "util/tu_rand.h"

/* ---------------------------------------------------------------- scratch folder and files */

static char ck_tmp[PATH_MAX];          /* a fresh folder per test */
static char ck_dir[PATH_MAX + 16];     /* ck_tmp/run: the checkpoint folder */
static char ck_file[PATH_MAX + 64];    /* ck_dir/checkpoint.gguf */

static void ck_setup(void) {
    snprintf(ck_tmp, sizeof ck_tmp, "/tmp/apr-test-ftckpt-XXXXXX");
    cr_assert(mkdtemp(ck_tmp), "mkdtemp: %s", strerror(errno));
    snprintf(ck_dir, sizeof ck_dir, "%s/run", ck_tmp);
    snprintf(ck_file, sizeof ck_file, "%s/checkpoint.gguf", ck_dir);
}

static void ck_teardown(void) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ck_tmp);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(ftckpt, .init = ck_setup, .fini = ck_teardown, .timeout = 60);

static const char *ck_list(const char *dir) {
    static char out[4096];
    return tu_dir_list(dir, out, sizeof out);
}

static void ck_write_bytes(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    cr_assert(fp, "%s: %s", path, strerror(errno));
    cr_assert(fwrite(p, 1, n, fp) == n && fclose(fp) == 0, "cannot write %s", path);
}

/* ---------------------------------------------------------------- a training state */

enum { CK_N = 5 };

/* Five tensors of 1..4 dims; the last one's bytes are a multiple of 32, so that the file ends with
 * tensor data and not padding (every truncation then cuts something the reader needs). */
static const struct { const char *name; int n_dims; int64_t ne[4]; } ck_shapes[CK_N] = {
    {"blk.0.attn_q.weight.lora_a", 2, {64, 4, 1, 1}},
    {"blk.0.attn_q.weight.lora_a/m", 2, {64, 4, 1, 1}},
    {"blk.0.attn_q.weight.lora_a/v", 2, {64, 4, 1, 1}},
    {"bias", 1, {3, 1, 1, 1}},
    {"odd.4d", 4, {2, 3, 2, 4}},
};

typedef struct ck_state {
    apr_ftckpt_meta meta;
    apr_ftckpt_tensor t[CK_N];
    apr_ftckpt_kv extra[3];
} ck_state;

static int64_t ck_elems(const apr_ftckpt_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
    return n;
}

/* A state whose every number derives from seed, with floats of every kind (signed zeros, subnormals,
 * infinities, NaNs with payloads) so that "bit for bit" means something. */
static void ck_state_init(ck_state *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    tu_rng r;
    tu_rng_init(&r, seed);
    for (int i = 0; i < CK_N; i++) {
        s->t[i].name = ck_shapes[i].name;
        s->t[i].n_dims = ck_shapes[i].n_dims;
        memcpy(s->t[i].ne, ck_shapes[i].ne, sizeof s->t[i].ne);
        int64_t n = ck_elems(&s->t[i]);
        s->t[i].data = malloc((size_t)n * sizeof(float));
        cr_assert(s->t[i].data);
        for (int64_t k = 0; k < n; k++) {
            uint32_t bits = (uint32_t)tu_rng_u64(&r);
            if (k % 7 == 0) bits = 0x80000000u;                       /* -0 */
            if (k % 11 == 0) bits = 0x00000001u | (bits & 0x7fu);      /* subnormal */
            if (k % 13 == 0) bits = 0x7fc00000u | (bits & 0x3fffffu); /* quiet NaN with a payload */
            if (k % 17 == 0) bits = 0xff800000u;                       /* -inf */
            memcpy(&s->t[i].data[k], &bits, 4);
        }
    }
    s->meta.step = tu_rng_u64(&r);
    s->meta.epoch = 3;
    s->meta.data_index = 0xfedcba9876543210ull;
    for (int i = 0; i < 4; i++) s->meta.rng[i] = tu_rng_u64(&r);
    s->meta.config = "lr=0.0003 rank=4 alpha=8 \"quoted\" ünïcode\ttab";
    s->extra[0] = (apr_ftckpt_kv){.key = "train.best_val_loss", .kind = APR_FTCKPT_F32, .f32 = 3.0517578125f};
    s->extra[1] = (apr_ftckpt_kv){.key = "train.tokens_seen", .kind = APR_FTCKPT_U64, .u64 = UINT64_MAX - 5};
    s->extra[2] = (apr_ftckpt_kv){.key = "train.note", .kind = APR_FTCKPT_STR, .str = "resumed once"};
    s->meta.extra = s->extra;
    s->meta.n_extra = 3;
}

static void ck_state_free(ck_state *s) {
    for (int i = 0; i < CK_N; i++) free(s->t[i].data);
}

/* A state of the same shapes with every float set to a sentinel pattern, to load into. */
static void ck_state_blank(ck_state *s) {
    ck_state_init(s, 0);
    for (int i = 0; i < CK_N; i++) memset(s->t[i].data, 0xA5, (size_t)ck_elems(&s->t[i]) * 4);
}

static bool ck_blank_untouched(const ck_state *s) {
    for (int i = 0; i < CK_N; i++) {
        const unsigned char *p = (const unsigned char *)s->t[i].data;
        for (int64_t k = 0; k < ck_elems(&s->t[i]) * 4; k++)
            if (p[k] != 0xA5) return false;
    }
    return true;
}

static void ck_save_ok(const ck_state *s) {
    apr_error e = {{0}};
    apr_status st = apr_ftckpt_save(ck_dir, &s->meta, s->t, CK_N, &e);
    cr_assert_eq(st, APR_OK, "save: %s", e.msg);
}

/* Loads ck_dir and checks it equals s bit for bit. */
static void ck_expect_loads_as(const ck_state *s) {
    ck_state got;
    ck_state_blank(&got);
    apr_ftckpt_meta m;
    apr_error e = {{0}};
    apr_status st = apr_ftckpt_load(ck_dir, &m, got.t, CK_N, &e);
    cr_assert_eq(st, APR_OK, "load: %s", e.msg);
    cr_expect_eq(m.step, s->meta.step);
    cr_expect_eq(m.epoch, s->meta.epoch);
    cr_expect_eq(m.data_index, s->meta.data_index);
    cr_expect_arr_eq(m.rng, s->meta.rng, sizeof m.rng);
    cr_expect_str_eq(m.config, s->meta.config);
    cr_expect_eq(m.n_extra, s->meta.n_extra);
    for (int i = 0; i < s->meta.n_extra; i++) {
        const apr_ftckpt_kv *want = &s->meta.extra[i], *kv = apr_ftckpt_meta_find(&m, want->key);
        cr_assert(kv, "extra key %s missing", want->key);
        cr_expect_eq(kv->kind, want->kind, "%s", want->key);
        if (want->kind == APR_FTCKPT_STR) cr_expect_str_eq(kv->str, want->str);
        else if (want->kind == APR_FTCKPT_U64) cr_expect_eq(kv->u64, want->u64);
        else cr_expect_eq(memcmp(&kv->f32, &want->f32, 4), 0, "%s: %g != %g", want->key, kv->f32, want->f32);
    }
    for (int i = 0; i < CK_N; i++)
        cr_expect_eq(memcmp(got.t[i].data, s->t[i].data, (size_t)ck_elems(&s->t[i]) * 4), 0, "tensor %s differs",
                     s->t[i].name);
    apr_ftckpt_meta_free(&m);
    cr_expect_null(m.config);
    ck_state_free(&got);
}

/* Loading ck_dir must fail with status want and a message holding every needle (NULL-terminated), and
 * leave the metadata and the tensors as they were. */
static void ck_expect_refused(apr_ftckpt_tensor *t, int n, apr_status want, const char *const *needles) {
    ck_state blank;
    ck_state_blank(&blank);
    if (!t) t = blank.t, n = CK_N;
    apr_ftckpt_meta m;
    memset(&m, 0x5A, sizeof m);
    apr_ftckpt_meta before = m;
    apr_error e = {{0}};
    apr_status st = apr_ftckpt_load(ck_dir, &m, t, n, &e);
    cr_expect_eq(st, want, "status %s (%s), want %s", apr_status_name(st), e.msg, apr_status_name(want));
    for (const char *const *p = needles; *p; p++) cr_expect(strstr(e.msg, *p), "'%s' not in the message: %s", *p, e.msg);
    cr_expect_eq(memcmp(&m, &before, sizeof m), 0, "the metadata changed on a failed load");
    cr_expect(ck_blank_untouched(&blank), "tensor data changed on a failed load");
    ck_state_free(&blank);
    if (st == APR_OK) apr_ftckpt_meta_free(&m);
}

/* ---------------------------------------------------------------- round trip */

Test(ftckpt, round_trip_is_bit_exact_and_a_second_save_replaces_the_first) {
    uint64_t seed = tu_seed();
    ck_state a, b;
    ck_state_init(&a, seed);
    ck_state_init(&b, tu_seed_mix(seed, 1));
    b.meta.config = "";
    b.meta.n_extra = 1;
    cr_expect_not(apr_ftckpt_exists(ck_dir));
    ck_save_ok(&a);
    cr_expect(apr_ftckpt_exists(ck_dir));
    ck_expect_loads_as(&a);
    ck_save_ok(&b);
    ck_expect_loads_as(&b);
    cr_expect_str_eq(ck_list(ck_dir), "checkpoint.gguf");
    /* a trailing slash names the same folder */
    char slash[PATH_MAX + 32];
    snprintf(slash, sizeof slash, "%s/", ck_dir);
    cr_expect(apr_ftckpt_exists(slash));
    ck_state_free(&a);
    ck_state_free(&b);
}

Test(ftckpt, no_tensors_and_a_null_config_round_trip) {
    apr_ftckpt_meta m = {.step = 1, .epoch = 2, .data_index = 3, .rng = {4, 5, 6, 7}}, got;
    apr_error e = {{0}};
    cr_assert_eq(apr_ftckpt_save(ck_dir, &m, NULL, 0, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_ftckpt_load(ck_dir, &got, NULL, 0, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(got.step, 1);
    cr_expect_eq(got.rng[3], 7);
    cr_expect_str_eq(got.config, "");
    cr_expect_eq(got.n_extra, 0);
    cr_expect_null(apr_ftckpt_meta_find(&got, "x"));
    apr_ftckpt_meta_free(&got);
}

Test(ftckpt, save_creates_missing_folders_with_the_umask_mode) {
    mode_t old = umask(027);
    char deep[PATH_MAX + 32];
    snprintf(deep, sizeof deep, "%s/a/b/c", ck_tmp);
    apr_ftckpt_meta m = {.config = "x"};
    apr_error e = {{0}};
    apr_status st = apr_ftckpt_save(deep, &m, NULL, 0, &e);
    umask(old);
    cr_assert_eq(st, APR_OK, "%s", e.msg);
    struct stat sb;
    cr_assert_eq(stat(deep, &sb), 0);
    cr_expect(S_ISDIR(sb.st_mode));
    cr_expect_eq(sb.st_mode & 0777, 0750, "mode %o", (unsigned)(sb.st_mode & 0777));
    cr_expect(apr_ftckpt_exists(deep));
}

/* ---------------------------------------------------------------- loads that are refused */

Test(ftckpt, no_checkpoint_is_not_found) {
    cr_expect_not(apr_ftckpt_exists(ck_dir));
    ck_expect_refused(NULL, 0, APR_ERR_NOT_FOUND, (const char *[]){ck_file, "no checkpoint", NULL});
    cr_assert_eq(mkdir(ck_dir, 0777), 0);
    ck_expect_refused(NULL, 0, APR_ERR_NOT_FOUND, (const char *[]){ck_file, NULL});
    cr_assert_eq(mkdir(ck_file, 0777), 0);   /* a folder named checkpoint.gguf is no checkpoint */
    cr_expect_not(apr_ftckpt_exists(ck_dir));
}

Test(ftckpt, a_missing_tensor_is_refused_by_name) {
    ck_state a, blank;
    ck_state_init(&a, 7);
    ck_save_ok(&a);
    ck_state_blank(&blank);
    blank.t[2].name = "blk.9.ffn_up.weight.lora_b";
    ck_expect_refused(blank.t, CK_N, APR_ERR_FORMAT,
                      (const char *[]){ck_file, "tensor 'blk.9.ffn_up.weight.lora_b' is missing", NULL});
    cr_expect(ck_blank_untouched(&blank), "tensors before the missing one were written");
    /* fewer tensors than the file holds load (an export of the adapter alone) */
    apr_ftckpt_meta m;
    apr_error e = {{0}};
    cr_expect_eq(apr_ftckpt_load(ck_dir, &m, &blank.t[3], 1, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(memcmp(blank.t[3].data, a.t[3].data, 12), 0);
    apr_ftckpt_meta_free(&m);
    ck_state_free(&a);
    ck_state_free(&blank);
}

Test(ftckpt, a_wrong_shape_is_refused_with_both_shapes) {
    ck_state a, blank;
    ck_state_init(&a, 8);
    ck_save_ok(&a);
    ck_state_blank(&blank);
    blank.t[0].ne[0] = 32, blank.t[0].ne[1] = 8;   /* the same element count, another shape */
    ck_expect_refused(blank.t, CK_N, APR_ERR_FORMAT,
                      (const char *[]){ck_file, "'blk.0.attn_q.weight.lora_a' is [64, 4], this run's is [32, 8]", NULL});
    ck_state_free(&blank);
    ck_state_blank(&blank);
    blank.t[3].n_dims = 2;   /* [3] saved, [3, 1] asked */
    ck_expect_refused(blank.t, CK_N, APR_ERR_FORMAT, (const char *[]){"'bias' is [3], this run's is [3, 1]", NULL});
    ck_state_free(&blank);
    ck_state_blank(&blank);
    blank.t[4].ne[3] = 0;
    ck_expect_refused(blank.t, CK_N, APR_ERR_INVALID, (const char *[]){"'odd.4d'", "ne[3] = 0", NULL});
    ck_state_free(&blank);
    ck_state_free(&a);
}

/* A checkpoint written by hand through the GGUF writer: the real keys, then edit() changes some. */
static void ck_write_custom(void (*edit)(gguf_writer *w)) {
    cr_assert(mkdir(ck_dir, 0777) == 0 || errno == EEXIST);
    gguf_writer *w = apr_gguf_writer_new();
    cr_assert(w);
    apr_gguf_writer_set_u32(w, "apr.ckpt.version", 1);
    gguf_value v = {.type = GGUF_UINT64, .u = 5};
    apr_gguf_writer_set_value(w, "apr.ckpt.step", &v);
    apr_gguf_writer_set_value(w, "apr.ckpt.epoch", &v);
    apr_gguf_writer_set_value(w, "apr.ckpt.data_index", &v);
    static const uint64_t rng[4] = {1, 2, 3, 4};
    apr_gguf_writer_set_arr(w, "apr.ckpt.rng", GGUF_UINT64, rng, 4);
    apr_gguf_writer_set_str(w, "apr.ckpt.config", "c");
    static const float bias[3] = {1, 2, 3};
    apr_gguf_writer_add_tensor(w, "bias", 0, 1, (const int64_t[]){3}, bias, sizeof bias);
    edit(w);
    apr_error e = {{0}};
    cr_assert_eq(apr_gguf_writer_write(w, ck_file, &e), APR_OK, "%s", e.msg);
    apr_gguf_writer_free(w);
}

static void ed_none(gguf_writer *w) { (void)w; }
static void ed_version2(gguf_writer *w) { apr_gguf_writer_set_u32(w, "apr.ckpt.version", 2); }
static void ed_version_i32(gguf_writer *w) { apr_gguf_writer_set_i32(w, "apr.ckpt.version", 1); }
static void ed_step_u32(gguf_writer *w) { apr_gguf_writer_set_u32(w, "apr.ckpt.step", 5); }
static void ed_config_u32(gguf_writer *w) { apr_gguf_writer_set_u32(w, "apr.ckpt.config", 5); }
static void ed_rng3(gguf_writer *w) {
    static const uint64_t r[3] = {1, 2, 3};
    apr_gguf_writer_set_arr(w, "apr.ckpt.rng", GGUF_UINT64, r, 3);
}
static void ed_rng_u32(gguf_writer *w) {
    static const uint32_t r[8] = {1, 0x10, 2, 0x20, 3, 0x30, 0xffffffffu, 0xffffffffu};
    apr_gguf_writer_set_arr(w, "apr.ckpt.rng", GGUF_UINT32, r, 8);
}
static void ed_extra_i32(gguf_writer *w) { apr_gguf_writer_set_i32(w, "user.count", -1); }
static void ed_config_nul(gguf_writer *w) {
    gguf_value v = {.type = GGUF_STRING, .str = {"a\0b", 3}};
    apr_gguf_writer_set_value(w, "apr.ckpt.config", &v);
}
static void ed_f16_tensor(gguf_writer *w) {
    static const uint16_t h[4] = {0x3c00, 0, 0, 0};
    apr_gguf_writer_add_tensor(w, "odd.4d", 1, 1, (const int64_t[]){4}, h, sizeof h);
}

Test(ftckpt, other_versions_and_mistyped_keys_are_refused) {
    float bias[3] = {0};
    apr_ftckpt_tensor t = {"bias", 1, {3, 1, 1, 1}, bias};
    apr_ftckpt_meta m;
    apr_error e = {{0}};
    ck_write_custom(ed_none);   /* the hand-written file itself loads */
    cr_assert_eq(apr_ftckpt_load(ck_dir, &m, &t, 1, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(bias[2], 3.0f);
    cr_expect_eq(m.rng[3], 4);
    apr_ftckpt_meta_free(&m);
    bias[2] = 0;

    ck_write_custom(ed_version2);
    ck_expect_refused(&t, 1, APR_ERR_FORMAT,
                      (const char *[]){ck_file, "checkpoint version 2, this build reads version 1", NULL});
    ck_write_custom(ed_version_i32);
    ck_expect_refused(&t, 1, APR_ERR_FORMAT, (const char *[]){"'apr.ckpt.version' is a int32, want a uint32", NULL});
    ck_write_custom(ed_step_u32);
    ck_expect_refused(&t, 1, APR_ERR_FORMAT, (const char *[]){"'apr.ckpt.step' is a uint32, want a uint64", NULL});
    ck_write_custom(ed_config_u32);
    ck_expect_refused(&t, 1, APR_ERR_FORMAT, (const char *[]){"'apr.ckpt.config' is a uint32, want a string", NULL});
    ck_write_custom(ed_config_nul);
    ck_expect_refused(&t, 1, APR_ERR_FORMAT, (const char *[]){"'apr.ckpt.config'", "NUL byte", NULL});
    ck_write_custom(ed_rng3);
    ck_expect_refused(&t, 1, APR_ERR_FORMAT,
                      (const char *[]){"'apr.ckpt.rng' is 3 x uint64, want 4 x uint64 or 8 x uint32", NULL});
    ck_write_custom(ed_extra_i32);
    ck_expect_refused(&t, 1, APR_ERR_FORMAT, (const char *[]){"'user.count' is a int32", NULL});
    cr_expect_eq(bias[2], 0.0f, "a refused load wrote a tensor");

    float h[4];
    apr_ftckpt_tensor t2[2] = {{"bias", 1, {3, 1, 1, 1}, bias}, {"odd.4d", 1, {4, 1, 1, 1}, h}};
    ck_write_custom(ed_f16_tensor);
    ck_expect_refused(t2, 2, APR_ERR_FORMAT, (const char *[]){"tensor 'odd.4d' is f16, want f32", NULL});

    ck_write_custom(ed_rng_u32);   /* 8 x uint32, low word first */
    cr_assert_eq(apr_ftckpt_load(ck_dir, &m, &t, 1, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(m.rng[0], 0x0000001000000001ull);
    cr_expect_eq(m.rng[2], 0x0000003000000003ull);
    cr_expect_eq(m.rng[3], UINT64_MAX);
    apr_ftckpt_meta_free(&m);

    /* a GGUF file that is no checkpoint at all */
    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_set_str(w, "general.architecture", "llama");
    cr_assert_eq(apr_gguf_writer_write(w, ck_file, &e), APR_OK, "%s", e.msg);
    apr_gguf_writer_free(w);
    ck_expect_refused(&t, 1, APR_ERR_FORMAT,
                      (const char *[]){ck_file, "not a checkpoint: key 'apr.ckpt.version' is missing", NULL});
}

Test(ftckpt, every_truncation_is_refused) {
    ck_state a;
    ck_state_init(&a, 9);
    ck_save_ok(&a);
    size_t size;
    char *whole = tu_read_file(ck_file, &size);
    cr_assert_gt(size, 1000);
    int refused = 0;
    for (size_t cut = 0; cut < size; cut += cut < 1024 ? 1 : 61) {
        ck_write_bytes(ck_file, whole, cut);
        ck_state blank;
        ck_state_blank(&blank);
        apr_ftckpt_meta m;
        apr_error e = {{0}};
        apr_status st = apr_ftckpt_load(ck_dir, &m, blank.t, CK_N, &e);
        cr_expect_eq(st, APR_ERR_FORMAT, "cut at %zu of %zu: %s (%s)", cut, size, apr_status_name(st), e.msg);
        cr_expect(strstr(e.msg, ck_file), "cut at %zu: the message does not name the file: %s", cut, e.msg);
        cr_expect(ck_blank_untouched(&blank), "cut at %zu: tensor data changed", cut);
        if (st == APR_OK) apr_ftckpt_meta_free(&m);
        else refused++;
        ck_state_free(&blank);
    }
    cr_expect_gt(refused, 1000);
    ck_write_bytes(ck_file, whole, size);
    ck_expect_loads_as(&a);
    free(whole);
    ck_state_free(&a);
}

Test(ftckpt, garbage_is_refused) {
    cr_assert_eq(mkdir(ck_dir, 0777), 0);
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    static const size_t sizes[] = {1, 7, 24, 100, 4096, 65536};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        for (int magic = 0; magic < 2; magic++) {
            unsigned char *buf = malloc(sizes[k]);
            cr_assert(buf);
            for (size_t i = 0; i < sizes[k]; i++) buf[i] = (unsigned char)tu_rng_u64(&r);
            if (magic && sizes[k] >= 8) memcpy(buf, "GGUF\3\0\0\0", 8);   /* a real header, then noise */
            ck_write_bytes(ck_file, buf, sizes[k]);
            free(buf);
            ck_expect_refused(NULL, 0, APR_ERR_FORMAT, (const char *[]){ck_file, NULL});
        }
    }
    ck_write_bytes(ck_file, "", 0);
    ck_expect_refused(NULL, 0, APR_ERR_FORMAT, (const char *[]){ck_file, NULL});
}

/* ---------------------------------------------------------------- saves that are refused or fail */

Test(ftckpt, invalid_saves_are_refused_before_touching_anything) {
    ck_state a;
    ck_state_init(&a, 10);
    apr_error e = {{0}};
    struct { const char *what, *needle; } cases[] = {
        {"ndims", "tensor 'bias': 0 dims"}, {"ne", "ne[1] = -1"}, {"data", "has no data"}, {"name", "tensor 2 has no name"},
        {"dup", "tensor 'blk.0.attn_q.weight.lora_a/m' given twice"}, {"reserved", "'apr.ckpt.step' is reserved"},
        {"align", "'general.alignment' is reserved"},
        {"twice", "'train.note' given twice"}, {"nullstr", "NULL string"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        ck_state s;
        ck_state_init(&s, 10);
        apr_ftckpt_kv extra[4];
        memcpy(extra, s.extra, sizeof s.extra);
        s.meta.extra = extra;
        const char *w = cases[c].what;
        float *keep = NULL;
        if (!strcmp(w, "ndims")) s.t[3].n_dims = 0;
        if (!strcmp(w, "ne")) s.t[1].ne[1] = -1;
        if (!strcmp(w, "data")) keep = s.t[0].data, s.t[0].data = NULL;
        if (!strcmp(w, "name")) s.t[2].name = "";
        if (!strcmp(w, "dup")) s.t[2].name = s.t[1].name;
        if (!strcmp(w, "reserved")) extra[1].key = "apr.ckpt.step";
        if (!strcmp(w, "align")) extra[1].key = "general.alignment";
        if (!strcmp(w, "twice")) extra[3] = extra[2], s.meta.n_extra = 4;
        if (!strcmp(w, "nullstr")) extra[2].str = NULL;
        apr_status st = apr_ftckpt_save(ck_dir, &s.meta, s.t, CK_N, &e);
        cr_expect_eq(st, APR_ERR_INVALID, "%s: %s (%s)", w, apr_status_name(st), e.msg);
        cr_expect(strstr(e.msg, cases[c].needle), "%s: '%s' not in: %s", w, cases[c].needle, e.msg);
        if (keep) s.t[0].data = keep;
        ck_state_free(&s);
        struct stat sb;
        cr_expect_neq(stat(ck_dir, &sb), 0, "%s: the folder was created", w);
    }
    cr_expect_eq(apr_ftckpt_save(NULL, &a.meta, a.t, CK_N, &e), APR_ERR_INVALID);
    cr_expect_eq(apr_ftckpt_save(ck_dir, NULL, a.t, CK_N, &e), APR_ERR_INVALID);
    cr_expect_eq(apr_ftckpt_save(ck_dir, &a.meta, NULL, 2, &e), APR_ERR_INVALID);
    /* a path through a regular file */
    char file[PATH_MAX + 32], under[PATH_MAX + 64];
    snprintf(file, sizeof file, "%s/plain", ck_tmp);
    snprintf(under, sizeof under, "%s/sub", file);
    ck_write_bytes(file, "x", 1);
    cr_expect_eq(apr_ftckpt_save(file, &a.meta, a.t, CK_N, &e), APR_ERR_IO);
    cr_expect(strstr(e.msg, file) && strstr(e.msg, "not a directory"), "%s", e.msg);
    cr_expect_eq(apr_ftckpt_save(under, &a.meta, a.t, CK_N, &e), APR_ERR_IO);
    cr_expect(strstr(e.msg, under) && strstr(e.msg, "cannot create the directory"), "%s", e.msg);
    ck_state_free(&a);
}

/* The previous checkpoint's exact bytes, to compare after a failed or killed save. */
static char *ck_snapshot(size_t *size) { return tu_read_file(ck_file, size); }

static void ck_expect_snapshot(const char *snap, size_t size) {
    size_t now;
    char *cur = tu_read_file(ck_file, &now);
    cr_expect(now == size && !memcmp(cur, snap, size), "checkpoint.gguf changed (%zu -> %zu bytes)", size, now);
    free(cur);
}

/* A large state: its first tensor (16 MiB) goes out before the writer's stop hook or a size limit. */
static void ck_big_state(ck_state *s, uint64_t seed) {
    ck_state_init(s, seed);
    free(s->t[0].data);
    s->t[0].ne[0] = 1 << 20;
    s->t[0].data = calloc((size_t)1 << 22, sizeof(float));
    cr_assert(s->t[0].data);
    s->meta.step = 999;
}

/* In a child: saves the big state with env set (NAME=value or NULL) and an optional file size limit;
 * the child writes apr_ftckpt_save's message into the pipe and exits with its status. */
static pid_t ck_child_save(const char *env1, const char *env2, rlim_t fsize, int *rd) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        alarm(60);
        if (env1) putenv((char *)env1);
        if (env2) putenv((char *)env2);
        if (fsize) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {fsize, fsize};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(100);
        }
        ck_state big;
        ck_big_state(&big, 11);
        apr_error e = {{0}};
        apr_status st = apr_ftckpt_save(ck_dir, &big.meta, big.t, CK_N, &e);
        ssize_t k = write(p[1], e.msg, strlen(e.msg));
        (void)k;
        ck_state_free(&big);
        _exit((int)st);
    }
    close(p[1]);
    *rd = p[0];
    return pid;
}

static void ck_read_msg(int fd, char *msg, size_t cap) {
    size_t n = 0;
    for (ssize_t k; n + 1 < cap && (k = read(fd, msg + n, cap - 1 - n)) > 0;) n += (size_t)k;
    msg[n] = 0;
    close(fd);
}

Test(ftckpt, a_save_failing_mid_write_keeps_the_previous_checkpoint, .timeout = 120) {
    ck_state a;
    ck_state_init(&a, 12);
    ck_save_ok(&a);
    size_t size;
    char *snap = ck_snapshot(&size);
    for (int named = 0; named < 2; named++) {
        int rd;
        /* 1 MiB of file at most: EFBIG in the middle of the 16 MiB tensor */
        pid_t pid = ck_child_save(named ? "APR_GGUF_NO_TMPFILE=1" : "APR_GGUF_NO_TMPFILE=0", NULL, 1 << 20, &rd);
        char msg[600];
        ck_read_msg(rd, msg, sizeof msg);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == APR_ERR_IO, "named=%d: status 0x%x: %s", named, status, msg);
        cr_expect(strstr(msg, ck_file) && strstr(msg, strerror(EFBIG)), "named=%d: %s", named, msg);
        cr_expect_str_eq(ck_list(ck_dir), "checkpoint.gguf", "named=%d: files left behind", named);
        ck_expect_snapshot(snap, size);
        ck_expect_loads_as(&a);
    }
    free(snap);
    ck_state_free(&a);
}

/* Starts a child saving the big state that stops itself (SIGSTOP, the writer's hook) after the first
 * tensor, checks a second save is refused meanwhile, SIGKILLs it; returns what the folder holds. */
static const char *ck_kill_mid_save(bool named) {
    char stop[PATH_MAX + 128];
    snprintf(stop, sizeof stop, "APR_GGUF_WRITE_STOP=%s", ck_file);
    int rd, status;
    pid_t pid = ck_child_save(stop, named ? "APR_GGUF_NO_TMPFILE=1" : "APR_GGUF_NO_TMPFILE=0", 0, &rd);
    cr_assert_eq(waitpid(pid, &status, WUNTRACED), pid);
    if (!WIFSTOPPED(status)) {
        char msg[600];
        ck_read_msg(rd, msg, sizeof msg);
        cr_assert_fail("the saving child did not stop mid-write (status 0x%x): %s", status, msg);
    }
    const char *mid = ck_list(ck_dir);
    if (!named) cr_expect_str_eq(mid, "checkpoint.gguf", "a name is visible mid-save");
    else cr_expect(strstr(mid, "checkpoint.gguf.tmp."), "no named temporary file mid-save: %s", mid);

    /* meanwhile another save into the same folder is refused, and changes nothing */
    ck_state other;
    ck_state_init(&other, 13);
    apr_error e = {{0}};
    cr_expect_eq(apr_ftckpt_save(ck_dir, &other.meta, other.t, CK_N, &e), APR_ERR_IO);
    cr_expect(strstr(e.msg, "another process is saving a checkpoint here"), "%s", e.msg);
    ck_state_free(&other);

    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status 0x%x", status);
    close(rd);
    return ck_list(ck_dir);
}

Test(ftckpt, a_save_killed_mid_write_keeps_the_previous_checkpoint_and_leaves_no_name, .timeout = 120) {
    ck_state a;
    ck_state_init(&a, 14);
    ck_save_ok(&a);
    size_t size;
    char *snap = ck_snapshot(&size);
    cr_expect_str_eq(ck_kill_mid_save(false), "checkpoint.gguf", "files left behind by a killed save");
    ck_expect_snapshot(snap, size);
    ck_expect_loads_as(&a);
    free(snap);
    ck_state_free(&a);
}

Test(ftckpt, a_killed_save_without_tmpfile_leaves_a_temporary_that_the_next_save_removes, .timeout = 120) {
    ck_state a, b;
    ck_state_init(&a, 15);
    ck_save_ok(&a);
    size_t size;
    char *snap = ck_snapshot(&size);
    const char *left = ck_kill_mid_save(true);
    cr_expect(strstr(left, "checkpoint.gguf,checkpoint.gguf.tmp."), "%s", left);
    ck_expect_snapshot(snap, size);
    ck_expect_loads_as(&a);
    ck_state_init(&b, 16);
    ck_save_ok(&b);
    cr_expect_str_eq(ck_list(ck_dir), "checkpoint.gguf", "the next save left the leftover");
    ck_expect_loads_as(&b);
    free(snap);
    ck_state_free(&a);
    ck_state_free(&b);
}

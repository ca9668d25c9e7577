/* gguf_fuzz.c — libFuzzer harness for the GGUF reader (llm/gguf*.c): every input is parsed from
 * memory; a success is walked completely (every value, every tensor byte range) and written back
 * through the writer, a failure must be APR_ERR_FORMAT with a one-line message naming the input.
 * Build and run: see fuzz/README.md; fuzz_replay.c turns it into a plain program for replays. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"

#define FUZZ_NAME "fuzz.gguf"

static volatile uint64_t fuzz_sink;

#define FUZZ_CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

static void fuzz_walk_value(const gguf_value *v, int depth) {
    FUZZ_CHECK(depth <= 16);
    switch (v->type) {
    case GGUF_STRING:
        FUZZ_CHECK(v->str.ptr && v->str.ptr[v->str.len] == '\0');
        for (uint64_t i = 0; i < v->str.len; i++) fuzz_sink += (uint8_t)v->str.ptr[i];
        break;
    case GGUF_ARRAY:
        if (v->arr.type == GGUF_STRING || v->arr.type == GGUF_ARRAY) {
            FUZZ_CHECK(v->arr.n == 0 || v->arr.items);
            for (uint64_t i = 0; i < v->arr.n; i++) {
                FUZZ_CHECK(v->arr.items[i].type == v->arr.type);
                fuzz_walk_value(&v->arr.items[i], depth + 1);
            }
        } else {
            const uint8_t *p = v->arr.data;
            FUZZ_CHECK(p);
            uint64_t sz = v->arr.type == GGUF_UINT8 || v->arr.type == GGUF_INT8 || v->arr.type == GGUF_BOOL ? 1
                        : v->arr.type == GGUF_UINT16 || v->arr.type == GGUF_INT16 ? 2
                        : v->arr.type == GGUF_UINT64 || v->arr.type == GGUF_INT64 || v->arr.type == GGUF_FLOAT64 ? 8 : 4;
            for (uint64_t i = 0; i < v->arr.n * sz; i++) fuzz_sink += p[i];
        }
        break;
    default: fuzz_sink += v->u; break;
    }
}

static void fuzz_walk(gguf_file *f, const uint8_t *data, size_t size) {
    uint32_t u32; int64_t i64; float f32; bool b; gguf_type et; uint64_t n;
    FUZZ_CHECK(apr_gguf_version(f) == 2 || apr_gguf_version(f) == 3);
    FUZZ_CHECK(apr_gguf_alignment(f) && !(apr_gguf_alignment(f) & (apr_gguf_alignment(f) - 1)));
    for (int64_t i = 0; i < apr_gguf_kv_count(f); i++) {
        const char *k = apr_gguf_kv_key(f, i);
        FUZZ_CHECK(k && apr_gguf_kv_find(f, k) == i);
        fuzz_walk_value(apr_gguf_kv_value(f, i), 0);
        fuzz_sink += apr_gguf_get_u32(f, k, &u32) + apr_gguf_get_i64(f, k, &i64) + apr_gguf_get_f32(f, k, &f32) +
                     apr_gguf_get_bool(f, k, &b) + (apr_gguf_get_str(f, k) != NULL);
        if (apr_gguf_get_arr(f, k, &et, &n)) {
            fuzz_sink += apr_gguf_get_arr_data(f, k) != NULL;
            if (n) fuzz_sink += apr_gguf_get_arr_str(f, k, n - 1) != NULL;
            FUZZ_CHECK(apr_gguf_get_arr_str(f, k, n) == NULL);
        }
    }
    for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) {
        const gguf_tensor *t = apr_gguf_tensor_at(f, i);
        FUZZ_CHECK(apr_gguf_tensor_find(f, t->name) == t);
        FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= 4 && apr_gguf_dtype_name(t->dtype));
        const uint8_t *p = t->data;
        FUZZ_CHECK(p >= data && t->size <= size && (size_t)(p - data) <= size - t->size);
        if (t->size) fuzz_sink += p[0] + p[t->size - 1];
    }
}

/* Writes a parsed file back out and reads it again: the writer must accept whatever the reader did. */
static void fuzz_rewrite(gguf_file *f) {
    char path[64];
    apr_error err;
    snprintf(path, sizeof path, "/tmp/gguf_fuzz_%d.gguf", (int)getpid());
    gguf_writer *w = apr_gguf_writer_new();
    FUZZ_CHECK(w);
    apr_gguf_writer_copy_kv(w, f);
    for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) {
        const gguf_tensor *t = apr_gguf_tensor_at(f, i);
        apr_gguf_writer_add_tensor(w, t->name, t->dtype, t->n_dims, t->ne, t->data, t->size);
    }
    apr_status s = apr_gguf_writer_write(w, path, &err);
    apr_gguf_writer_free(w);
    if (s != APR_OK) {
        fprintf(stderr, "rewrite failed: %s\n", err.msg);
        __builtin_trap();
    }
    gguf_file *g;
    s = apr_gguf_open(path, &g, &err);
    if (s != APR_OK) {
        fprintf(stderr, "reread failed: %s\n", err.msg);
        __builtin_trap();
    }
    FUZZ_CHECK(apr_gguf_kv_count(g) == apr_gguf_kv_count(f) && apr_gguf_tensor_count(g) == apr_gguf_tensor_count(f));
    apr_gguf_close(g);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f;
    apr_error err;
    err.msg[0] = '\0';
    apr_status s = apr_gguf_open_memory(data, size, FUZZ_NAME, &f, &err);
    if (s != APR_OK) {
        FUZZ_CHECK(s == APR_ERR_FORMAT);
        FUZZ_CHECK(strncmp(err.msg, FUZZ_NAME ": ", sizeof FUZZ_NAME + 1) == 0);
        FUZZ_CHECK(!strchr(err.msg, '\n'));
        return 0;
    }
    fuzz_walk(f, data, size);
    if (apr_gguf_alignment(f) <= 4096) fuzz_rewrite(f); /* a huge alignment would write that much padding */
    apr_gguf_close(f);
    return 0;
}

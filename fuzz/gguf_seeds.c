/* gguf_seeds.c — writes the seed corpus of gguf_fuzz (small valid files, each under 4 KiB) with
 * the writer: usage gguf_seeds DIR. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

static void seeds_write(gguf_writer *w, const char *dir, const char *name) {
    char path[4096];
    apr_error err;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (apr_gguf_writer_write(w, path, &err) != APR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    apr_gguf_writer_free(w);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gguf_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    seeds_write(apr_gguf_writer_new(), dir, "empty.gguf");

    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_set_str(w, "general.architecture", "llama");
    apr_gguf_writer_set_u32(w, "llama.block_count", 2);
    apr_gguf_writer_set_i32(w, "i32", -7);
    apr_gguf_writer_set_f32(w, "f32", 0.5f);
    apr_gguf_writer_set_bool(w, "bool", true);
    apr_gguf_writer_set_value(w, "u8", &(gguf_value){.type = GGUF_UINT8, .u = 200});
    apr_gguf_writer_set_value(w, "i8", &(gguf_value){.type = GGUF_INT8, .i = -100});
    apr_gguf_writer_set_value(w, "u16", &(gguf_value){.type = GGUF_UINT16, .u = 60000});
    apr_gguf_writer_set_value(w, "i16", &(gguf_value){.type = GGUF_INT16, .i = -30000});
    apr_gguf_writer_set_value(w, "u64", &(gguf_value){.type = GGUF_UINT64, .u = 1ull << 40});
    apr_gguf_writer_set_value(w, "i64", &(gguf_value){.type = GGUF_INT64, .i = -(1ll << 40)});
    apr_gguf_writer_set_value(w, "f64", &(gguf_value){.type = GGUF_FLOAT64, .f = 3.25});
    const char *toks[] = {"<unk>", "<s>", "</s>", "a", ""};
    apr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
    float scores[] = {0, -1, -2, -3, -4};
    apr_gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, scores, 5);
    uint32_t a[] = {1, 2, 3};
    gguf_value inner[] = {{.type = GGUF_ARRAY, .arr = {GGUF_UINT32, 3, a, NULL}},
                          {.type = GGUF_ARRAY, .arr = {GGUF_UINT32, 0, a, NULL}}};
    apr_gguf_writer_set_value(w, "nested", &(gguf_value){.type = GGUF_ARRAY, .arr = {GGUF_ARRAY, 2, NULL, inner}});
    seeds_write(w, dir, "metadata.gguf");

    static uint8_t buf[2048];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 7);
    w = apr_gguf_writer_new();
    apr_gguf_writer_set_str(w, "general.architecture", "llama");
    apr_gguf_writer_add_tensor(w, "a.f32", 0, 2, (int64_t[]){4, 3}, buf, 48);
    apr_gguf_writer_add_tensor(w, "b.f16", 1, 1, (int64_t[]){16}, buf, 32);
    apr_gguf_writer_add_tensor(w, "c.q4_0", 2, 2, (int64_t[]){32, 2}, buf, 36);
    apr_gguf_writer_add_tensor(w, "d.q8_0", 8, 1, (int64_t[]){64}, buf, 68);
    seeds_write(w, dir, "tensors.gguf");

    w = apr_gguf_writer_new();
    apr_gguf_writer_set_u32(w, "general.alignment", 64);
    apr_gguf_writer_add_tensor(w, "x.i8", 24, 4, (int64_t[]){2, 2, 2, 2}, buf, 16);
    apr_gguf_writer_add_tensor(w, "y.bf16", 30, 3, (int64_t[]){4, 2, 1}, buf, 16);
    apr_gguf_writer_add_tensor(w, "z.q4_K", 12, 1, (int64_t[]){256}, buf, 144);
    seeds_write(w, dir, "align64.gguf");
    return 0;
}

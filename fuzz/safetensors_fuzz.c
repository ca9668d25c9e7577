/* safetensors_fuzz.c — libFuzzer harness for the safetensors reader (llm/safetensors.c): every
 * input is parsed from memory; a success is walked completely (every tensor byte), a failure must
 * be APR_ERR_FORMAT or APR_ERR_UNSUPPORTED with a one-line message naming the input.
 * fuzz_replay.c turns it into a plain program for replays. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

#define FUZZ_NAME "fuzz.safetensors"
#define FUZZ_CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__); __builtin_trap(); } } while (0)

static volatile uint64_t fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    safetensors_file *f = NULL;
    apr_error e = {{0}};
    apr_status st = apr_safetensors_open_memory(data, size, FUZZ_NAME, &f, &e);
    if (st != APR_OK) {
        FUZZ_CHECK(!f);
        FUZZ_CHECK(st == APR_ERR_FORMAT || st == APR_ERR_UNSUPPORTED);
        FUZZ_CHECK(strstr(e.msg, FUZZ_NAME) && !strchr(e.msg, '\n'));
        return 0;
    }
    for (int64_t i = 0; i < apr_safetensors_count(f); i++) {
        const safetensors_tensor *t = apr_safetensors_at(f, i);
        FUZZ_CHECK(t && t->name && apr_safetensors_find(f, t->name) == t);
        FUZZ_CHECK(t->n_dims >= 0 && t->n_dims <= SAFETENSORS_MAX_DIMS);
        const uint8_t *p = t->data;
        FUZZ_CHECK(t->size == 0 || (p >= data && p + t->size <= data + size));
        for (uint64_t k = 0; k < t->size; k++) fuzz_sink += p[k];
    }
    apr_safetensors_close(f);
    return 0;
}

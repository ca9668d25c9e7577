/* gguf_dtype.c — the GGML tensor types a GGUF file may hold: names and storage block sizes. */
#include "gguf_internal.h"

typedef struct dtype_row {
    const char *name;
    int64_t block_elems;    /* elements per block */
    int64_t block_bytes;    /* bytes per block */
} dtype_row;

/* Indexed by GGML type id; holes are ids ggml removed (Q4_2, Q4_3, the repacked Q4_0/IQ4_NL
 * variants that never belonged in files). Sizes are those of ggml's block_* structs. */
static const dtype_row dtype_table[40] = {
    [0] = {"f32", 1, 4},          [1] = {"f16", 1, 2},
    [2] = {"q4_0", 32, 18},       [3] = {"q4_1", 32, 20},
    [6] = {"q5_0", 32, 22},       [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},       [9] = {"q8_1", 32, 36},
    [10] = {"q2_K", 256, 84},     [11] = {"q3_K", 256, 110},
    [12] = {"q4_K", 256, 144},    [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},    [15] = {"q8_K", 256, 292},
    [16] = {"iq2_xxs", 256, 66},  [17] = {"iq2_xs", 256, 74},
    [18] = {"iq3_xxs", 256, 98},  [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},    [21] = {"iq3_s", 256, 110},
    [22] = {"iq2_s", 256, 82},    [23] = {"iq4_xs", 256, 136},
    [24] = {"i8", 1, 1},          [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},         [27] = {"i64", 1, 8},
    [28] = {"f64", 1, 8},         [29] = {"iq1_m", 256, 56},
    [30] = {"bf16", 1, 2},
    [34] = {"tq1_0", 256, 54},    [35] = {"tq2_0", 256, 66},
    [39] = {"mxfp4", 32, 17},
};

static const dtype_row *dtype_row_get(uint32_t dtype) {
    if (dtype >= sizeof dtype_table / sizeof dtype_table[0] || !dtype_table[dtype].name) return NULL;
    return &dtype_table[dtype];
}

LLM_API const char *apr_gguf_dtype_name(uint32_t dtype) {
    const dtype_row *r = dtype_row_get(dtype);
    return r ? r->name : NULL;
}

LLM_API bool apr_gguf_dtype_block(uint32_t dtype, int64_t *block_elems, int64_t *block_bytes) {
    const dtype_row *r = dtype_row_get(dtype);
    if (!r) return false;
    if (block_elems) *block_elems = r->block_elems;
    if (block_bytes) *block_bytes = r->block_bytes;
    return true;
}

/* tu_tensor.h — host-side test tensors: a strided view inside its own storage, with poisoned gaps. */
#ifndef TU_TENSOR_H
#define TU_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apr/apr_abi.h"
#include "tu_rand.h"

/*
 * A tu_tensor is what a test hands a backend: dtype, ne, nb and a byte offset into a storage
 * block that it owns. The storage can be larger than the elements (padding, permuted order,
 * a slice of a bigger tensor); every byte that is not an element holds the dtype's poison
 * pattern (TU_POISON_*), a NaN for float dtypes, so a kernel that reads a gap produces NaN (or,
 * for i32, an absurd id or position) and the comparison catches it.
 *
 * Layouts describe the storage: order[j] is the logical dim stored at physical position j
 * (order[0] innermost), pad[j] adds that many unused elements to physical dim j, step > 1 leaves
 * step-1 unused elements between consecutive innermost elements, off shifts element 0 by that
 * many elements. A zero-filled tu_layout is the contiguous layout.
 */
typedef struct tu_layout {
    int order[APR_MAX_DIMS]; /* all zero = identity {0,1,2,3} */
    int pad[APR_MAX_DIMS];   /* extra elements per physical dim */
    int step;                /* innermost element spacing in elements; 0 or 1 = dense */
    int off;                 /* elements before element [0,0,0,0] */
} tu_layout;

#define TU_CONTIG ((tu_layout){{0}, {0}, 0, 0})
/* Rows padded by 3 elements, one spare row per plane, and an unaligned start: a slice of a
 * wider tensor such as one head's part of a fused QKV row. */
#define TU_PADDED ((tu_layout){{0}, {3, 1, 0, 0}, 0, 1})
/* Dims 0 and 1 swapped in memory: a transposed view, nb[0] > nb[1]. */
#define TU_TRANSPOSED ((tu_layout){{1, 0, 2, 3}, {1, 0, 0, 0}, 0, 0})
/* Every other element: nb[0] = 2 * type size. */
#define TU_STEP2 ((tu_layout){{0}, {0}, 2, 0})
/* A permuted view: logical dim order[j] lives at physical position j. */
#define TU_PERM(a, b, c, d) ((tu_layout){{a, b, c, d}, {0}, 0, 0})

/* Poison patterns (bit patterns of one element). */
#define TU_POISON_F32 0x7fe5a5a5u
#define TU_POISON_F16 0x7ea5u
#define TU_POISON_BF16 0x7fe5u
#define TU_POISON_I32 0xa5a5a5a5u
#define TU_POISON_BLOCK_BYTE 0x7f /* every byte of a block tensor's gaps */

typedef struct tu_tensor {
    bool present;                 /* false: an absent optional source */
    uint32_t dtype;               /* apr_dtype */
    int64_t ne[APR_MAX_DIMS];
    int64_t nb[APR_MAX_DIMS];     /* bytes */
    uint64_t offset;              /* bytes from data to element [0,0,0,0] */
    uint64_t size;                /* bytes of storage */
    unsigned char *data;          /* storage, owned */
} tu_tensor;

size_t tu_dtype_size(uint32_t dtype);
const char *tu_dtype_name(uint32_t dtype);
bool tu_dtype_is_float(uint32_t dtype);
/* The quantized block types (apr_quant.h): tu_dtype_size is their block size, dim 0 counts blocks. */
bool tu_dtype_is_block(uint32_t dtype);

/* Loads and stores one element of a float dtype as f32 (stores round to nearest even). */
float tu_load_f(uint32_t dtype, const void *p);
void tu_store_f(uint32_t dtype, void *p, float v);

/* Sets up t with layout lay and storage filled with poison. ne may have fewer than 4 meaningful
 * entries; unused ones must be 1. Aborts the process if memory runs out (tests only). */
void tu_tensor_init(tu_tensor *t, uint32_t dtype, const int64_t ne[APR_MAX_DIMS], tu_layout lay);
/* A tensor with like's dtype, shape and layout and poisoned storage of its own (for results). */
void tu_tensor_init_like(tu_tensor *t, const tu_tensor *like);
void tu_tensor_free(tu_tensor *t);
/* Fills storage with the dtype's poison (elements included). */
void tu_tensor_poison(const tu_tensor *t, unsigned char *storage);

int64_t tu_tensor_nelements(const tu_tensor *t);
/* Byte offset of element i (4 indices) from the start of storage. */
uint64_t tu_tensor_byte(const tu_tensor *t, const int64_t i[APR_MAX_DIMS]);
/* The 4 indices of the k-th element in index order (dim 0 fastest). */
void tu_tensor_index(const tu_tensor *t, int64_t k, int64_t i[APR_MAX_DIMS]);
/* Marks in mask (size bytes, zeroed by the caller) every byte that belongs to an element. */
void tu_tensor_element_mask(const tu_tensor *t, unsigned char *mask);

float tu_getf(const tu_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3);
void tu_setf(tu_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float v);
int32_t tu_geti(const tu_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3);
void tu_seti(tu_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, int32_t v);

/* Every element uniform in [lo, hi) (float dtypes, rounded to the dtype). */
void tu_fill_uniform(tu_tensor *t, tu_rng *r, double lo, double hi);
/* A block-type tensor: every row holds uniform [lo, hi) values quantized with apr_quant_row; with
 * outliers, one element in 64 is scaled by 8 (the spread real weight rows have). */
void tu_fill_quant(tu_tensor *t, tu_rng *r, double lo, double hi, bool outliers);
/* Every element a uniform integer in [lo, hi] (i32), never the poison pattern. */
void tu_fill_int(tu_tensor *t, tu_rng *r, int64_t lo, int64_t hi);
/* Float elements that probe conversions: ordinary values, wide magnitudes (overflow to inf,
 * subnormals, underflow to zero), exact rounding ties of f16 and bf16, +-0, +-inf and NaN. */
void tu_fill_special(tu_tensor *t, tu_rng *r);
/* An additive attention / softmax mask [N, R] (f32): values in [-2, 0) with about one in ten
 * -inf; row 1 fully masked (a row whose every z is -inf); every third row from row 2 on a single
 * visible position, as in sliding-window or packed-document masks (with one finite z, a vector
 * kernel's running max must come from exactly that lane). */
void tu_fill_mask(tu_tensor *m, tu_rng *r);

/* "[7,3,1,1]" style text of ne, and a short layout tag ("", "/pad", "/T", ...) of nb. */
void tu_tensor_describe(const tu_tensor *t, char *out, size_t size);

#endif

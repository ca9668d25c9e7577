/* gguf.h — GGUF v2/v3 model files: a hardened reader (mmap, zero-copy tensor data) and an atomic writer. */
#ifndef APR_GGUF_H
#define APR_GGUF_H

/*
 * The reader treats every file as hostile: every offset, size, count and string length is checked
 * against the file size before use, and any problem is APR_ERR_FORMAT with a message naming the
 * file, the key or tensor, and the problem ("model.gguf: tensor 'blk.0.attn_q.weight': data
 * [offset 123, 4096 bytes] runs past the end of the file (2000 bytes)").
 *
 * Tensor data stays in the read-only mapping: gguf_tensor.data points into it and is valid until
 * apr_gguf_close. Strings returned by the reader point into the reader's own copies, NUL-terminated.
 *
 * What the reader accepts: versions 2 and 3 (little-endian; version 1 and big-endian files are
 * rejected by name); keys and tensor names of 1 byte to 1 MiB without NUL bytes, unique; string
 * values up to 64 MiB; arrays nested at most 16 deep, their lengths bounded by the bytes left;
 * bools 0 or 1; general.alignment, if present, a uint32 power of two (default 32); tensors of
 * 1..4 dims whose element and byte counts fit in int64, of a GGML type in apr_gguf_dtype_block's
 * table, with whole blocks per row, data offsets that are multiples of the alignment, inside the
 * data section and not overlapping. Metadata memory is bounded by a small multiple of the file's
 * header size. A file truncated or rewritten while mapped can still raise SIGBUS: map files
 * nobody is changing.
 */

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr.h"

typedef enum gguf_type {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3, GGUF_UINT32 = 4, GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
} gguf_type;

/* A metadata value as the reader holds it (and as apr_gguf_writer_set_value takes it). Scalars are
 * widened: unsigned integers to u, signed to i, FLOAT32/FLOAT64 to f (FLOAT32 exactly). */
typedef struct gguf_value {
    gguf_type type;
    union {
        uint64_t u;                 /* UINT8, UINT16, UINT32, UINT64 */
        int64_t i;                  /* INT8, INT16, INT32, INT64 */
        double f;                   /* FLOAT32, FLOAT64 */
        bool b;                     /* BOOL */
        struct {
            const char *ptr;        /* NUL-terminated; may hold NUL bytes before len */
            uint64_t len;           /* bytes, without the terminating NUL */
        } str;                      /* STRING */
        struct {
            gguf_type type;         /* element type; any type, ARRAY included (arrays of arrays) */
            uint64_t n;             /* elements */
            const void *data;       /* scalar elements: n packed little-endian values of the element
                                     * type's size, suitably aligned; NULL for STRING and ARRAY */
            const struct gguf_value *items; /* STRING and ARRAY elements: n values; NULL otherwise */
        } arr;                      /* ARRAY */
    };
} gguf_value;

/* "uint8", "string", "array", ...; NULL for an unknown number. */
const char *apr_gguf_type_name(gguf_type t);

/* The GGML tensor types (0..39) and their storage blocks, including quantized types apr cannot
 * compute with yet: "f32", "q4_0", "q6_K", ...; NULL for an id ggml never defined or has removed
 * (4, 5, 31..33, 36..38, >= 40). apr_gguf_dtype_block returns false for those. */
const char *apr_gguf_dtype_name(uint32_t dtype);
bool apr_gguf_dtype_block(uint32_t dtype, int64_t *block_elems, int64_t *block_bytes);

typedef struct gguf_file gguf_file;

typedef struct gguf_tensor {
    const char *name;           /* NUL-terminated */
    uint32_t dtype;             /* GGML type id (= apr_dtype for the types apr knows) */
    int n_dims;                 /* 1..4 */
    int64_t ne[4];              /* elements per dim, innermost first; unused dims are 1 */
    uint64_t offset;            /* bytes from the start of the data section */
    uint64_t size;              /* bytes of data */
    const void *data;           /* in the mapping */
} gguf_tensor;

apr_status apr_gguf_open(const char *path, gguf_file **out, apr_error *err);
/* The same checks on a file image already in memory (for fuzzing and tests): data must stay
 * valid and unchanged until apr_gguf_close; name stands for the path in messages. */
apr_status apr_gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out, apr_error *err);
void apr_gguf_close(gguf_file *f);
const char *apr_gguf_path(const gguf_file *f);
uint32_t apr_gguf_version(const gguf_file *f);
uint64_t apr_gguf_alignment(const gguf_file *f);

/* Key-value metadata. Lookups return -1 / false when the key is absent or of an incompatible type. */
int64_t apr_gguf_kv_count(const gguf_file *f);
int64_t apr_gguf_kv_find(const gguf_file *f, const char *key);
const char *apr_gguf_kv_key(const gguf_file *f, int64_t i);
gguf_type apr_gguf_kv_type(const gguf_file *f, int64_t i);
/* The whole value of entry i (0 <= i < apr_gguf_kv_count), e.g. to walk nested arrays; NULL when out of range. */
const gguf_value *apr_gguf_kv_value(const gguf_file *f, int64_t i);
/* Scalars; any integer type converts to the requested one when the value fits. */
bool apr_gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
bool apr_gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
bool apr_gguf_get_f32(const gguf_file *f, const char *key, float *out);   /* float32 or float64 */
bool apr_gguf_get_bool(const gguf_file *f, const char *key, bool *out);
const char *apr_gguf_get_str(const gguf_file *f, const char *key);        /* NULL if absent/not a string */
/* Arrays (possibly nested): element type and length; numeric elements as a packed little-endian
 * array in the mapping (or a copy), string elements one by one. */
bool apr_gguf_get_arr(const gguf_file *f, const char *key, gguf_type *elem_type, uint64_t *len);
const void *apr_gguf_get_arr_data(const gguf_file *f, const char *key);   /* numeric arrays only */
const char *apr_gguf_get_arr_str(const gguf_file *f, const char *key, uint64_t i);

/* Tensors. */
int64_t apr_gguf_tensor_count(const gguf_file *f);
const gguf_tensor *apr_gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor *apr_gguf_tensor_find(const gguf_file *f, const char *name);

/* Writer: collects metadata and tensors, then writes OUT as GGUF v3 atomically: into an unnamed
 * file (O_TMPFILE) in OUT's directory, fsynced and linked into place at the end (through a
 * temporary name renamed over OUT when OUT exists), so that no partial file is ever seen under
 * any name, even after SIGKILL; where the filesystem has no O_TMPFILE (or APR_GGUF_NO_TMPFILE=1)
 * through a named temporary file "OUT.tmp.XXXXXX" renamed over OUT. The directory is fsynced
 * after. On any failure a temporary file is removed and an existing OUT is untouched. Tensors are
 * laid out in the order added, each at a multiple of the alignment (general.alignment if set, as
 * a uint32 power of two, else 32), and the file is padded to it. The set and add calls cannot
 * fail: an allocation failure (APR_ERR_NOMEM) or an invalid call (APR_ERR_INVALID: wrong size for
 * dtype and ne, unknown dtype, duplicate tensor name, bad value) is remembered, later calls are
 * ignored, and apr_gguf_writer_write reports it. Write failures (ENOSPC included) are APR_ERR_IO
 * naming OUT and strerror. Setting a key twice keeps the last value (in the first one's place). */
typedef struct gguf_writer gguf_writer;
gguf_writer *apr_gguf_writer_new(void);
void apr_gguf_writer_free(gguf_writer *w);
void apr_gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void apr_gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void apr_gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void apr_gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
void apr_gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
void apr_gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data, uint64_t n);
void apr_gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Any value, of any type, deep-copied: the way to write UINT64, FLOAT64, INT8 ... scalars and
 * arrays of arrays. An invalid value (unknown type, NULL data) is reported by apr_gguf_writer_write. */
void apr_gguf_writer_set_value(gguf_writer *w, const char *key, const gguf_value *v);
/* Copies every key-value of f (for tools that rewrite a model). */
void apr_gguf_writer_copy_kv(gguf_writer *w, const gguf_file *f);
/* data must stay valid until apr_gguf_writer_write returns; size must match dtype and ne. */
void apr_gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t dtype, int n_dims, const int64_t *ne,
                                const void *data, uint64_t size);
/* A tensor whose bytes are produced while the file is written, so that multi-GB models never sit
 * in memory: fill(ctx, offset, buf, n) writes bytes [offset, offset + n) of the tensor's data into
 * buf, called with increasing offsets covering [0, size) in chunks of at most 1 MiB, and returns
 * 0, or an errno value that fails the write (APR_ERR_IO naming it). ctx must stay valid until
 * apr_gguf_writer_write returns. */
typedef int (*gguf_writer_fill_fn)(void *ctx, uint64_t offset, void *buf, size_t n);
void apr_gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, uint32_t dtype, int n_dims, const int64_t *ne,
                                   uint64_t size, gguf_writer_fill_fn fill, void *ctx);
apr_status apr_gguf_writer_write(gguf_writer *w, const char *path, apr_error *err);
/* Removes the named temporary files of the writes in progress (the O_TMPFILE fallback); async-signal-
 * safe, for a tool's SIGINT / SIGTERM / SIGHUP handler, which then re-raises the signal. */
void apr_gguf_writer_unlink_temps(void);
/* Registers a temporary folder the caller made (a conversion's), which apr_gguf_writer_unlink_temps
 * removes after the files once it is empty; returns a handle for apr_gguf_writer_forget_temp_dir, or
 * -1 when no slot is free. */
int apr_gguf_writer_hold_temp_dir(const char *dir);
void apr_gguf_writer_forget_temp_dir(int handle);

#endif

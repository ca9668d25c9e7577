/* gguf_internal.h — what the gguf_*.c files share: the reader's structures, the bounds-checked
 * cursor, limits and the error helpers. Not part of the public API (see gguf.h). */
#ifndef APR_GGUF_INTERNAL_H
#define APR_GGUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"

#include "llm_api.h"

#define GGUF_MAGIC 0x46554747u             /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_KEY_LEN (1u << 20)        /* keys and tensor names */
#define GGUF_MAX_STR_LEN (64u << 20)       /* one string value */
#define GGUF_MAX_DEPTH 16                  /* arrays of arrays of ... */
#define GGUF_MAX_DIMS 4

typedef struct gguf_kv {
    const char *key;        /* NUL-terminated copy */
    uint64_t key_len;
    gguf_value value;
} gguf_kv;

struct gguf_file {
    char *path;                 /* as given to apr_gguf_open (or the name given to apr_gguf_open_memory) */
    const uint8_t *base;        /* the mapping (or the caller's memory) */
    uint64_t size;
    bool mapped;                /* munmap base on close */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;       /* start of the data section (may equal size when it is empty) */
    int64_t n_kv;
    gguf_kv *kv;
    int64_t *kv_sorted;         /* indices of kv sorted by key, for bsearch */
    int64_t n_tensors;
    gguf_tensor *tensors;
    int64_t *tensor_sorted;     /* indices of tensors sorted by name */
    void *arena;                /* one block holding every array and string above */
};

/* ---------------------------------------------------------------- cursor (bounds-checked reads) */

typedef struct gguf_cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
} gguf_cursor;

static inline uint64_t gguf_cursor_left(const gguf_cursor *c) { return c->size - c->pos; }
static inline bool gguf_cursor_has(const gguf_cursor *c, uint64_t n) { return n <= c->size - c->pos; }
static inline bool gguf_cursor_bytes(gguf_cursor *c, uint64_t n, const uint8_t **p) {
    if (!gguf_cursor_has(c, n)) return false;
    *p = c->base + c->pos;
    c->pos += n;
    return true;
}
static inline bool gguf_cursor_u32(gguf_cursor *c, uint32_t *v) {
    const uint8_t *p;
    if (!gguf_cursor_bytes(c, 4, &p)) return false;
    memcpy(v, p, 4);   /* the file is little-endian, as is every host apr builds for */
    return true;
}
static inline bool gguf_cursor_u64(gguf_cursor *c, uint64_t *v) {
    const uint8_t *p;
    if (!gguf_cursor_bytes(c, 8, &p)) return false;
    memcpy(v, p, 8);
    return true;
}

/* ---------------------------------------------------------------- errors (gguf_error.c) */

/* Writes "fmt ..." into err (may be NULL) and returns status. */
/* Copies s[0..len) into buf as a printable, single-line excerpt: control and non-ASCII bytes
 * become \xNN, and anything past about 80 characters becomes "...". Returns buf. */
const char *gguf_error_quote(char *buf, size_t n, const char *s, uint64_t len);
#define GGUF_QUOTE_MAX 340

/* ---------------------------------------------------------------- parsing (gguf_parse.c) */

/* The reader walks the header twice with the same code: the first pass (fill false) validates
 * everything and adds up the bytes every array and string copy needs; the second (fill true)
 * takes them from one arena of exactly that size. So nothing is allocated from a count that has
 * not been checked against the bytes actually present. */
typedef struct gguf_parse {
    gguf_cursor c;
    const char *path;
    apr_error *err;
    bool fill;              /* second pass: copy into arena */
    char *arena;
    uint64_t used;          /* arena bytes taken so far */
    char ctx[GGUF_QUOTE_MAX + 32]; /* what is being read, for messages: "key 'general.name'" */
} gguf_parse;

/* Takes size bytes aligned to align (a power of two <= 16) from the arena. In the first pass *p is
 * NULL. Fails (with a message) only when the total overflows. */
bool gguf_parse_take(gguf_parse *ps, uint64_t size, uint64_t align, void **p);
/* Reports a format problem: "PATH: CTX: problem". Returns false. */
bool gguf_parse_fail(gguf_parse *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports that what (n bytes at the cursor) is cut off by the end of the file. Returns false. */
bool gguf_parse_truncated(gguf_parse *ps, const char *what, uint64_t n);
bool gguf_parse_u32(gguf_parse *ps, const char *what, uint32_t *v);
bool gguf_parse_u64(gguf_parse *ps, const char *what, uint64_t *v);
/* Reads a string (u64 length + bytes) of at most max bytes into a NUL-terminated arena copy (in
 * the first pass *out points at the file's bytes instead, not terminated: use *len); name_like
 * rejects empty strings and NUL bytes (keys, tensor names). */
bool gguf_parse_str(gguf_parse *ps, const char *what, uint64_t max, bool name_like, const char **out,
                    uint64_t *len);

/* ---------------------------------------------------------------- values (gguf_value.c) */

/* Size in bytes of one scalar of type t (0 for STRING, ARRAY and unknown types). */
uint64_t gguf_value_scalar_size(gguf_type t);
/* Reads a value of the given type at the cursor into out (filled in the second pass only). */
bool gguf_value_read(gguf_parse *ps, uint32_t type, gguf_value *out, int depth);

/* ---------------------------------------------------------------- tensors (gguf_tensor.c) */

/* Reads and checks one tensor info (name, dims, type, offset) at the cursor. */
bool gguf_tensor_read_info(gguf_parse *ps, int64_t index, uint64_t alignment, gguf_tensor *t);
/* After both passes: data inside the file, no overlaps, unique names; builds tensor_sorted. */
apr_status gguf_tensor_check_all(gguf_file *f, apr_error *err);

/* ---------------------------------------------------------------- metadata (gguf_kv.c) */

/* After both passes: builds kv_sorted and rejects duplicate keys. */
apr_status gguf_kv_index(gguf_file *f, apr_error *err);

/* ---------------------------------------------------------------- writer (gguf_writer.c, gguf_writer_write.c) */

typedef struct gguf_writer_kv {
    char *key;
    gguf_value value;           /* a deep copy the writer owns */
} gguf_writer_kv;

typedef struct gguf_writer_tensor {
    char *name;
    uint32_t dtype;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    const void *data;           /* the caller's */
    gguf_writer_fill_fn fill;   /* instead of data when set: produces the bytes at write time */
    void *fill_ctx;
    uint64_t size;
    uint64_t offset;            /* set by apr_gguf_writer_write */
} gguf_writer_tensor;

struct gguf_writer {
    gguf_writer_kv *kv;
    size_t n_kv, cap_kv;
    gguf_writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    apr_status bad;             /* the first failed set/add call, reported by apr_gguf_writer_write */
    char bad_msg[400];
};

#endif

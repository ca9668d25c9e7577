/* gguf_read.c — opening a GGUF file: the mapping, the header, the key-value section and the
 * tensor infos, walked in two passes (check and measure, then fill; see gguf_parse in
 * gguf_internal.h), then the whole-file checks. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_internal.h"

/* Smallest encodings, used to bound counts by the bytes left: a key-value is a key length (8),
 * a key byte, a type (4) and a 1-byte value; a tensor info is a name length (8), a name byte,
 * n_dims (4), one dimension (8), a type (4) and an offset (8). */
#define READ_MIN_KV 14u
#define READ_MIN_TENSOR 33u

static bool read_header(gguf_parse *ps, gguf_file *f, uint64_t *n_tensors, uint64_t *n_kv) {
    uint32_t magic = 0, version;
    if (ps->c.size < 4) return gguf_parse_fail(ps, "not a GGUF file: only %" PRIu64 " bytes", ps->c.size);
    gguf_cursor_u32(&ps->c, &magic);
    if (magic != GGUF_MAGIC) {
        char q[GGUF_QUOTE_MAX];
        return gguf_parse_fail(ps, "not a GGUF file: magic '%s', expected 'GGUF'",
                               gguf_error_quote(q, sizeof q, (const char *)ps->c.base, 4));
    }
    if (!gguf_parse_u32(ps, "the version", &version)) return false;
    if (version == 1)
        return gguf_parse_fail(ps, "GGUF version 1 is not supported (it used 32-bit counts; convert the file"
                               " to version 3)");
    if (version == 0x02000000u || version == 0x03000000u)
        return gguf_parse_fail(ps, "big-endian GGUF file (version %" PRIu32 "); only little-endian files are"
                               " supported", __builtin_bswap32(version));
    if (version != 2 && version != 3)
        return gguf_parse_fail(ps, "unsupported GGUF version %" PRIu32 " (this reader knows versions 2 and 3)",
                               version);
    f->version = version;
    if (!gguf_parse_u64(ps, "the tensor count", n_tensors) || !gguf_parse_u64(ps, "the key-value count", n_kv))
        return false;
    if (*n_kv > gguf_cursor_left(&ps->c) / READ_MIN_KV)
        return gguf_parse_fail(ps, "truncated or corrupt: key-value count %" PRIu64 " cannot fit in the %" PRIu64
                               " bytes left", *n_kv, gguf_cursor_left(&ps->c));
    return true;
}

/* general.alignment must be a uint32 power of two; it applies to the whole file. */
static bool read_alignment(gguf_parse *ps, gguf_file *f, const gguf_value *v) {
    if (v->type != GGUF_UINT32)
        return gguf_parse_fail(ps, "must be of type uint32, not %s", apr_gguf_type_name(v->type));
    if (v->u == 0 || (v->u & (v->u - 1)))
        return gguf_parse_fail(ps, "alignment %" PRIu64 " is not a power of two", v->u);
    f->alignment = v->u;
    return true;
}

static bool read_kvs(gguf_parse *ps, gguf_file *f, uint64_t n_kv) {
    static const char align_key[] = "general.alignment";
    char q[GGUF_QUOTE_MAX];
    void *p;
    if (!gguf_parse_take(ps, n_kv * sizeof(gguf_kv), _Alignof(gguf_kv), &p)) return false;
    f->kv = p;
    if (!gguf_parse_take(ps, n_kv * sizeof(int64_t), _Alignof(int64_t), &p)) return false;
    f->kv_sorted = p;
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv scratch, *kv = f->kv ? &f->kv[i] : &scratch;
        uint32_t type;
        snprintf(ps->ctx, sizeof ps->ctx, "key-value #%" PRIu64, i);
        if (!gguf_parse_str(ps, "key", GGUF_MAX_KEY_LEN, true, &kv->key, &kv->key_len)) return false;
        snprintf(ps->ctx, sizeof ps->ctx, "key '%s'", gguf_error_quote(q, sizeof q, kv->key, kv->key_len));
        bool is_align = kv->key_len == sizeof align_key - 1 && memcmp(kv->key, align_key, kv->key_len) == 0;
        if (!gguf_parse_u32(ps, "the value type", &type) || !gguf_value_read(ps, type, &kv->value, 0)) return false;
        if (is_align && !read_alignment(ps, f, &kv->value)) return false;
    }
    return true;
}

static bool read_tensor_infos(gguf_parse *ps, gguf_file *f, uint64_t n_tensors) {
    void *p;
    if (n_tensors > gguf_cursor_left(&ps->c) / READ_MIN_TENSOR)
        return gguf_parse_fail(ps, "truncated or corrupt: tensor count %" PRIu64 " cannot fit in the %" PRIu64
                               " bytes left at offset %" PRIu64, n_tensors, gguf_cursor_left(&ps->c), ps->c.pos);
    if (!gguf_parse_take(ps, n_tensors * sizeof(gguf_tensor), _Alignof(gguf_tensor), &p)) return false;
    f->tensors = p;
    if (!gguf_parse_take(ps, n_tensors * sizeof(int64_t), _Alignof(int64_t), &p)) return false;
    f->tensor_sorted = p;
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor scratch, *t = f->tensors ? &f->tensors[i] : &scratch;
        if (!gguf_tensor_read_info(ps, (int64_t)i, f->alignment, t)) return false;
    }
    return true;
}

/* One pass over the header; the second pass (ps->fill) repeats the first exactly. */
static bool read_pass(gguf_parse *ps, gguf_file *f) {
    uint64_t n_tensors, n_kv;
    ps->c.pos = 0;
    ps->used = 0;
    ps->ctx[0] = '\0';
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!read_header(ps, f, &n_tensors, &n_kv) || !read_kvs(ps, f, n_kv)) return false;
    ps->ctx[0] = '\0';
    if (!read_tensor_infos(ps, f, n_tensors)) return false;
    ps->ctx[0] = '\0';
    uint64_t pos = ps->c.pos, data;
    if (__builtin_add_overflow(pos, f->alignment - 1, &data))
        return gguf_parse_fail(ps, "the data section offset overflows with alignment %" PRIu64, f->alignment);
    f->data_offset = data & ~(f->alignment - 1);
    f->n_kv = (int64_t)n_kv;
    f->n_tensors = (int64_t)n_tensors;
    return true;
}

/* Parses f->base[0..size) into f; f->path is set. On failure f is left for read_free. */
static apr_status read_image(gguf_file *f, apr_error *err) {
    gguf_parse ps = {.c = {.base = f->base, .size = f->size}, .path = f->path, .err = err};
    if (!read_pass(&ps, f)) return APR_ERR_FORMAT;
    f->arena = malloc(ps.used + 1);
    if (!f->arena)
        return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory for %" PRIu64 " bytes of metadata", f->path,
                              ps.used);
    ps.arena = f->arena;
    ps.fill = true;
    if (!read_pass(&ps, f)) return APR_ERR_FORMAT;
    apr_status s = gguf_kv_index(f, err);
    if (s == APR_OK) s = gguf_tensor_check_all(f, err);
    return s;
}

static void read_free(gguf_file *f) {
    if (!f) return;
    if (f->mapped && f->size) munmap((void *)f->base, f->size);
    free(f->arena);
    free(f->path);
    free(f);
}

static gguf_file *read_new(const char *path, apr_error *err) {
    gguf_file *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(path);
    if (!f || !f->path) {
        free(f);
        apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    return f;
}

LLM_API apr_status apr_gguf_open(const char *path, gguf_file **out, apr_error *err) {
    struct stat st;
    *out = NULL;
    if (!path) return apr_error_set(err, APR_ERR_INVALID, "apr_gguf_open: no path");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) return apr_error_set(err, APR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return apr_error_set(err, APR_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return apr_error_set(err, APR_ERR_IO, "%s: not a regular file", path);
    }
    gguf_file *f = read_new(path, err);
    if (!f) {
        close(fd);
        return APR_ERR_NOMEM;
    }
    f->size = (uint64_t)st.st_size;
    f->mapped = true;
    f->base = (const uint8_t *)"";
    if (f->size) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            f->size = 0;
            read_free(f);
            return apr_error_set(err, APR_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
        f->base = m;
    }
    close(fd);
    apr_status s = read_image(f, err);
    if (s != APR_OK) {
        read_free(f);
        return s;
    }
    *out = f;
    return APR_OK;
}

LLM_API apr_status apr_gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out,
                                     apr_error *err) {
    *out = NULL;
    if (!name) name = "(memory)";
    if (!data && size) return apr_error_set(err, APR_ERR_INVALID, "%s: no data", name);
    gguf_file *f = read_new(name, err);
    if (!f) return APR_ERR_NOMEM;
    f->base = size ? data : (const uint8_t *)"";
    f->size = size;
    apr_status s = read_image(f, err);
    if (s != APR_OK) {
        read_free(f);
        return s;
    }
    *out = f;
    return APR_OK;
}

LLM_API void apr_gguf_close(gguf_file *f) { read_free(f); }
LLM_API const char *apr_gguf_path(const gguf_file *f) { return f->path; }
LLM_API uint32_t apr_gguf_version(const gguf_file *f) { return f->version; }
LLM_API uint64_t apr_gguf_alignment(const gguf_file *f) { return f->alignment; }

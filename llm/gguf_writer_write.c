/* gguf_writer_write.c — apr_gguf_writer_write: lays out and serializes a GGUF v3 file and puts it in place
 * atomically (gguf_writer_place.c: an unnamed or temporary file in the same directory, fsync, link or
 * rename, fsync of the directory). */
#include <errno.h>
#include <fnmatch.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_internal.h"
#include "gguf_writer_place.h"

/* Buffered output to a file descriptor that remembers the first error (errno). */
typedef struct write_out {
    int fd;
    int error;
    uint64_t total;     /* bytes passed to write_bytes */
    size_t n;
    uint8_t buf[1 << 16];
} write_out;

static void write_raw(write_out *o, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n && !o->error) {
        ssize_t k = write(o->fd, b, n);
        if (k < 0) {
            if (errno != EINTR) o->error = errno;
        } else if (k == 0) {
            o->error = EIO;
        } else {
            b += k;
            n -= (size_t)k;
        }
    }
}

static void write_flush(write_out *o) {
    write_raw(o, o->buf, o->n);
    o->n = 0;
}

static void write_bytes(write_out *o, const void *p, uint64_t n) {
    o->total += n;
    if (o->error) return;
    if (n > sizeof o->buf - o->n) {
        write_flush(o);
        if (n >= sizeof o->buf) {
            write_raw(o, p, n);
            return;
        }
    }
    if (n) memcpy(o->buf + o->n, p, n);
    o->n += n;
}

static void write_u32(write_out *o, uint32_t v) { write_bytes(o, &v, 4); }
static void write_u64(write_out *o, uint64_t v) { write_bytes(o, &v, 8); }

static void write_zeros(write_out *o, uint64_t n) {
    static const uint8_t zeros[256];
    while (n) {
        uint64_t k = n < sizeof zeros ? n : sizeof zeros;
        write_bytes(o, zeros, k);
        n -= k;
    }
}

static void write_str(write_out *o, const char *s, uint64_t len) {
    write_u64(o, len);
    write_bytes(o, s, len);
}

/* The value without its type tag (arrays carry their element type and length). */
static void write_value(write_out *o, const gguf_value *v) {
    switch (v->type) {
    case GGUF_UINT8: case GGUF_INT8: { uint8_t x = (uint8_t)v->u; write_bytes(o, &x, 1); break; }
    case GGUF_BOOL: { uint8_t x = v->b; write_bytes(o, &x, 1); break; }
    case GGUF_UINT16: case GGUF_INT16: { uint16_t x = (uint16_t)v->u; write_bytes(o, &x, 2); break; }
    case GGUF_UINT32: case GGUF_INT32: write_u32(o, (uint32_t)v->u); break;
    case GGUF_FLOAT32: { float x = (float)v->f; write_bytes(o, &x, 4); break; }
    case GGUF_UINT64: case GGUF_INT64: write_u64(o, v->u); break;
    case GGUF_FLOAT64: write_bytes(o, &v->f, 8); break;
    case GGUF_STRING: write_str(o, v->str.ptr, v->str.len); break;
    case GGUF_ARRAY:
        write_u32(o, (uint32_t)v->arr.type);
        write_u64(o, v->arr.n);
        if (v->arr.items)
            for (uint64_t i = 0; i < v->arr.n; i++) write_value(o, &v->arr.items[i]);
        else
            write_bytes(o, v->arr.data, v->arr.n * gguf_value_scalar_size(v->arr.type));
        break;
    }
}

/* Streams a callback tensor through a 1 MiB buffer; the callback's errno fails the write. */
static void write_filled(write_out *o, const gguf_writer_tensor *t) {
    enum { chunk = 1 << 20 };
    uint8_t *buf = malloc(chunk);
    if (!buf) {
        o->error = ENOMEM;
        return;
    }
    for (uint64_t off = 0; off < t->size && !o->error; off += chunk) {
        size_t n = t->size - off < chunk ? (size_t)(t->size - off) : chunk;
        int e = t->fill(t->fill_ctx, off, buf, n);
        if (e) o->error = e;
        else write_bytes(o, buf, n);
    }
    free(buf);
}

/* Lays the tensors out: each at a multiple of the alignment. Returns the data section's size. */
static bool write_layout(gguf_writer *w, uint64_t align, uint64_t *total) {
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = off;
        if (__builtin_add_overflow(off, w->tensors[i].size, &off) || __builtin_add_overflow(off, align - 1, &off))
            return false;
        off &= ~(align - 1);
    }
    *total = off;
    return true;
}

static void write_file(write_out *o, const gguf_writer *w, uint64_t align, bool stop_after_first) {
    write_u32(o, GGUF_MAGIC);
    write_u32(o, 3);
    write_u64(o, w->n_tensors);
    write_u64(o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        write_str(o, w->kv[i].key, strlen(w->kv[i].key));
        write_u32(o, (uint32_t)w->kv[i].value.type);
        write_value(o, &w->kv[i].value);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const gguf_writer_tensor *t = &w->tensors[i];
        write_str(o, t->name, strlen(t->name));
        write_u32(o, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) write_u64(o, (uint64_t)t->ne[d]);
        write_u32(o, t->dtype);
        write_u64(o, t->offset);
    }
    /* Pad the header to the alignment, then each tensor's data. */
    write_zeros(o, (align - o->total % align) % align);
    for (size_t i = 0; i < w->n_tensors && !o->error; i++) {
        const gguf_writer_tensor *t = &w->tensors[i];
        if (t->fill) write_filled(o, t);
        else write_bytes(o, t->data, t->size);
        write_zeros(o, (align - t->size % align) % align);
        if (i == 0 && stop_after_first) {
            write_flush(o);
            raise(SIGSTOP);
        }
    }
    write_flush(o);
}

/* The process umask, read without changing it (umask(2) cannot query without setting). */
static mode_t write_umask(void) {
    mode_t m = 022;
    FILE *s = fopen("/proc/self/status", "re");
    if (!s) return m;
    char line[128];
    unsigned v;
    while (fgets(line, sizeof line, s))
        if (sscanf(line, "Umask: %o", &v) == 1) {
            m = (mode_t)v;
            break;
        }
    fclose(s);
    return m;
}

LLM_API apr_status apr_gguf_writer_write(gguf_writer *w, const char *path, apr_error *err) {
    uint64_t align = GGUF_DEFAULT_ALIGNMENT, data_size;
    if (!w || !path) return apr_error_set(err, APR_ERR_INVALID, "apr_gguf_writer_write: no writer or no path");
    if (w->bad) return apr_error_set(err, w->bad, "%s: %s", path, w->bad_msg);
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, "general.alignment") == 0) {
            const gguf_value *v = &w->kv[i].value;
            if (v->type != GGUF_UINT32 || v->u == 0 || (v->u & (v->u - 1)))
                return apr_error_set(err, APR_ERR_INVALID, "%s: general.alignment must be a uint32 power of two",
                                      path);
            align = v->u;
        }
    if (!write_layout(w, align, &data_size))
        return apr_error_set(err, APR_ERR_INVALID, "%s: the tensor data is too large", path);

    write_out *o = malloc(sizeof *o);
    if (!o) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
    o->n = 0;
    o->total = 0;
    o->error = 0;
    gguf_place pl;
    int e = gguf_place_open(&pl, path);
    if (e) {
        free(o);
        return apr_error_set(err, APR_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(e));
    }
    o->fd = pl.fd;
    /* test hook: APR_GGUF_WRITE_STOP=OUT (a glob) stops the process (SIGSTOP) after OUT's first tensor, so tests signal a write mid-way */
    const char *stop = secure_getenv("APR_GGUF_WRITE_STOP");
    const char *step = "cannot write";
    write_file(o, w, align, stop && fnmatch(stop, path, 0) == 0);
    e = o->error;
    free(o);
    if (!e && fchmod(pl.fd, 0666 & ~write_umask()) != 0) e = errno, step = "cannot set the mode of";
    if (!e && fsync(pl.fd) != 0) e = errno, step = "cannot sync";
    if (!e) e = gguf_place_commit(&pl, &step);
    if (e) {
        gguf_place_close(&pl);
        return apr_error_set(err, APR_ERR_IO, "%s: %s it: %s", path, step, strerror(e));
    }
    e = gguf_place_sync_dir(&pl);
    gguf_place_close(&pl);
    if (e)
        return apr_error_set(err, APR_ERR_IO, "%s: written, but its directory cannot be synced: %s", path, strerror(e));
    return APR_OK;
}

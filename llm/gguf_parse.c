/* gguf_parse.c — the reader's primitives: the two-pass arena, bounds-checked integers and
 * strings, and messages that say where in the file a problem is. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "gguf_internal.h"

bool gguf_parse_take(gguf_parse *ps, uint64_t size, uint64_t align, void **p) {
    uint64_t start, end;
    *p = NULL;
    if (__builtin_add_overflow(ps->used, align - 1, &start) ||
        __builtin_add_overflow(start & ~(align - 1), size, &end))
        return gguf_parse_fail(ps, "metadata needs more memory than can be addressed");
    start &= ~(align - 1);
    if (ps->fill) *p = ps->arena + start;
    ps->used = end;
    return true;
}

bool gguf_parse_fail(gguf_parse *ps, const char *fmt, ...) {
    char problem[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    if (ps->ctx[0])
        apr_error_set(ps->err, APR_ERR_FORMAT, "%s: %s: %s", ps->path, ps->ctx, problem);
    else
        apr_error_set(ps->err, APR_ERR_FORMAT, "%s: %s", ps->path, problem);
    return false;
}

bool gguf_parse_truncated(gguf_parse *ps, const char *what, uint64_t n) {
    return gguf_parse_fail(ps, "truncated file: %s needs %" PRIu64 " bytes at offset %" PRIu64
                           " but only %" PRIu64 " are left (file size %" PRIu64 ")",
                           what, n, ps->c.pos, gguf_cursor_left(&ps->c), ps->c.size);
}

bool gguf_parse_u32(gguf_parse *ps, const char *what, uint32_t *v) {
    return gguf_cursor_u32(&ps->c, v) || gguf_parse_truncated(ps, what, 4);
}

bool gguf_parse_u64(gguf_parse *ps, const char *what, uint64_t *v) {
    return gguf_cursor_u64(&ps->c, v) || gguf_parse_truncated(ps, what, 8);
}

bool gguf_parse_str(gguf_parse *ps, const char *what, uint64_t max, bool name_like, const char **out,
                    uint64_t *len) {
    uint64_t n;
    const uint8_t *src;
    char lenwhat[64];
    void *dst;
    snprintf(lenwhat, sizeof lenwhat, "the length of the %s", what);
    if (!gguf_parse_u64(ps, lenwhat, &n)) return false;
    if (n > max)
        return gguf_parse_fail(ps, "%s length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes", what, n, max);
    if (!gguf_cursor_bytes(&ps->c, n, &src)) return gguf_parse_truncated(ps, what, n);
    if (name_like) {
        if (n == 0) return gguf_parse_fail(ps, "empty %s", what);
        if (memchr(src, 0, n)) return gguf_parse_fail(ps, "%s contains a NUL byte", what);
    }
    if (!gguf_parse_take(ps, n + 1, 1, &dst)) return false;
    if (dst) {
        memcpy(dst, src, n);
        ((char *)dst)[n] = '\0';
        *out = dst;
    } else {
        *out = (const char *)src; /* first pass: the file's bytes, not NUL-terminated */
    }
    *len = n;
    return true;
}

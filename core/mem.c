/* mem.c — memory that lives on a backend and outlives plans (apr_mem): a KV cache, optimizer moments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

APR_API apr_status apr_mem_new(apr_backend *be, uint64_t bytes, apr_buffer_usage usage, const char *name, apr_mem **out,
                               apr_error *err) {
    *out = NULL;
    if (!name || !*name) name = "memory";
    if (!be || !bytes) return apr_error_set(err, APR_ERR_INVALID, "%s: %s", name, be ? "size 0" : "no backend");
    apr_mem *m = calloc(1, sizeof *m);
    if (!m) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    m->be = be;
    snprintf(m->name, sizeof m->name, "%s", name);
    char msg[256] = "";
    apr_status s = apr_backend_alloc(be, bytes, APR_MEM_DEVICE, usage, &m->buf, msg, sizeof msg);
    if (s != APR_OK) {
        free(m);
        return apr_error_set(err, s, "%s: backend %s cannot allocate %llu bytes: %s", name, apr_backend_name(be),
                             (unsigned long long)bytes, PLUGIN_MSG(msg)[0] ? msg : apr_status_name(s));
    }
    *out = m;
    return APR_OK;
}

APR_API void apr_mem_free(apr_mem *m) {
    if (!m) return;
    m->be->api->buffer_free(m->be->inst, &m->buf);
    free(m);
}

APR_API uint64_t apr_mem_size(const apr_mem *m) { return m->buf.size; }
APR_API apr_backend *apr_mem_backend(const apr_mem *m) { return m->be; }

static apr_status mem_range(const apr_mem *m, uint64_t offset, uint64_t bytes, const char *what, apr_error *err) {
    if (offset > m->buf.size || bytes > m->buf.size - offset)
        return apr_error_set(err, APR_ERR_INVALID, "%s %s: %llu bytes at %llu past its %llu", what, m->name,
                             (unsigned long long)bytes, (unsigned long long)offset, (unsigned long long)m->buf.size);
    return APR_OK;
}

APR_API apr_status apr_mem_write(apr_mem *m, uint64_t offset, const void *src, uint64_t bytes, apr_error *err) {
    apr_status s = mem_range(m, offset, bytes, "write to", err);
    if (s != APR_OK || !bytes) return s;
    char msg[256] = "";
    s = m->be->api->buffer_write(m->be->inst, &m->buf, offset, src, bytes, msg, sizeof msg);
    if (s != APR_OK) return apr_error_set(err, s, "write to %s on %s: %s", m->name, apr_backend_name(m->be), PLUGIN_MSG(msg));
    return APR_OK;
}

APR_API apr_status apr_mem_read(apr_mem *m, uint64_t offset, void *dst, uint64_t bytes, apr_error *err) {
    apr_status s = mem_range(m, offset, bytes, "read of", err);
    if (s != APR_OK || !bytes) return s;
    char msg[256] = "";
    s = m->be->api->buffer_read(m->be->inst, &m->buf, offset, dst, bytes, msg, sizeof msg);
    if (s != APR_OK) return apr_error_set(err, s, "read of %s on %s: %s", m->name, apr_backend_name(m->be), PLUGIN_MSG(msg));
    return APR_OK;
}

APR_API apr_status apr_mem_copy(apr_mem *dst, uint64_t dst_offset, apr_mem *src, uint64_t src_offset, uint64_t bytes,
                                apr_error *err) {
    if (dst->be != src->be)
        return apr_error_set(err, APR_ERR_INVALID, "copy from %s to %s: they live on different backends", src->name, dst->name);
    apr_status s = mem_range(src, src_offset, bytes, "copy from", err);
    if (s == APR_OK) s = mem_range(dst, dst_offset, bytes, "copy to", err);
    if (s != APR_OK || !bytes) return s;
    apr_backend *be = dst->be;
    char msg[256] = "";
    if (be->api->abi_version >= 4 && APR_PLUGIN_HAS(be->api, buffer_copy)) {
        s = be->api->buffer_copy(be->inst, &src->buf, src_offset, &dst->buf, dst_offset, bytes, msg, sizeof msg);
        if (s != APR_ERR_UNSUPPORTED) {
            if (s != APR_OK) return apr_error_set(err, s, "copy from %s to %s: %s", src->name, dst->name, PLUGIN_MSG(msg));
            return APR_OK;
        }
    }
    if (src->buf.host_ptr && dst->buf.host_ptr) {
        apr_status w = apr_backend_synchronize(be, err);
        if (w != APR_OK) return w;
        memmove((char *)dst->buf.host_ptr + dst_offset, (const char *)src->buf.host_ptr + src_offset, (size_t)bytes);
        return APR_OK;
    }
    /* through the host, in pieces, so that a long cache needs no buffer of its own size */
    enum { CHUNK = 1 << 20 };
    char *tmp = malloc(bytes < CHUNK ? (size_t)bytes : CHUNK);
    if (!tmp) return apr_error_set(err, APR_ERR_NOMEM, "out of memory copying %s", src->name);
    for (uint64_t done = 0; s == APR_OK && done < bytes; done += CHUNK) {
        uint64_t n = bytes - done < CHUNK ? bytes - done : CHUNK;
        s = apr_mem_read(src, src_offset + done, tmp, n, err);
        if (s == APR_OK) s = apr_mem_write(dst, dst_offset + done, tmp, n, err);
    }
    free(tmp);
    return s;
}

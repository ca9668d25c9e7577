/* hostmem.c — buffers in ordinary process memory, shared by every CPU plugin. */
#include "hostmem.h"

#include <stdlib.h>
#include <string.h>

#include "msg.h"

apr_status hostmem_alloc(void *backend, uint64_t size, apr_buffer *out, char *err, size_t err_size) {
    (void)backend;
    uint64_t rounded = (size + HOSTMEM_ALIGNMENT - 1) / HOSTMEM_ALIGNMENT * HOSTMEM_ALIGNMENT;
    if (rounded == 0) rounded = HOSTMEM_ALIGNMENT;
    void *p = aligned_alloc(HOSTMEM_ALIGNMENT, (size_t)rounded);
    if (!p) return msg_set(err, err_size, APR_ERR_NOMEM, "cannot allocate %llu bytes of host memory",
                           (unsigned long long)size);
    memset(p, 0, (size_t)rounded);
    out->flags = APR_BUFFER_HOST_VISIBLE;
    out->size = size;
    out->host_ptr = p;
    out->handle = p;
    return APR_OK;
}

apr_status hostmem_import(void *backend, void *host_ptr, uint64_t size, apr_buffer *out, char *err,
                          size_t err_size) {
    (void)backend;
    if (!host_ptr && size) return msg_set(err, err_size, APR_ERR_INVALID, "import of a NULL pointer");
    out->flags = APR_BUFFER_HOST_VISIBLE | APR_BUFFER_IMPORTED;
    out->size = size;
    out->host_ptr = host_ptr;
    out->handle = NULL;
    return APR_OK;
}

void hostmem_free(void *backend, apr_buffer *buf) {
    (void)backend;
    if (!buf) return;
    if (!(buf->flags & APR_BUFFER_IMPORTED)) free(buf->handle);
    buf->host_ptr = NULL;
    buf->handle = NULL;
    buf->size = 0;
}

apr_status hostmem_write(void *backend, apr_buffer *buf, uint64_t offset, const void *src, uint64_t size,
                         char *err, size_t err_size) {
    (void)backend;
    if (offset > buf->size || size > buf->size - offset)
        return msg_set(err, err_size, APR_ERR_INVALID, "write of %llu bytes at %llu past a %llu-byte buffer",
                       (unsigned long long)size, (unsigned long long)offset, (unsigned long long)buf->size);
    if (size) memcpy((char *)buf->host_ptr + offset, src, (size_t)size);
    return APR_OK;
}

apr_status hostmem_read(void *backend, const apr_buffer *buf, uint64_t offset, void *dst, uint64_t size,
                        char *err, size_t err_size) {
    (void)backend;
    if (offset > buf->size || size > buf->size - offset)
        return msg_set(err, err_size, APR_ERR_INVALID, "read of %llu bytes at %llu past a %llu-byte buffer",
                       (unsigned long long)size, (unsigned long long)offset, (unsigned long long)buf->size);
    if (size) memcpy(dst, (const char *)buf->host_ptr + offset, (size_t)size);
    return APR_OK;
}

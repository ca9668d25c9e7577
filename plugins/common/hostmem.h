/* hostmem.h — buffers in ordinary process memory, shared by every CPU plugin. */
#ifndef APR_PLUGIN_HOSTMEM_H
#define APR_PLUGIN_HOSTMEM_H

#include "apr/apr_abi.h"

#define HOSTMEM_ALIGNMENT 64 /* bytes: one cache line, one zmm register */

/* The apr_plugin buffer slots for a backend whose memory is the host's. The backend argument
 * is unused. Allocations are zero-filled so that padding is deterministic. */
apr_status hostmem_alloc(void *backend, uint64_t size, apr_buffer *out, char *err, size_t err_size);
apr_status hostmem_import(void *backend, void *host_ptr, uint64_t size, apr_buffer *out, char *err,
                          size_t err_size);
void hostmem_free(void *backend, apr_buffer *buf);
apr_status hostmem_write(void *backend, apr_buffer *buf, uint64_t offset, const void *src, uint64_t size,
                         char *err, size_t err_size);
apr_status hostmem_read(void *backend, const apr_buffer *buf, uint64_t offset, void *dst, uint64_t size,
                        char *err, size_t err_size);

#endif

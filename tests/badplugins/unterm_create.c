/* unterm_create.c — a plugin that probes well but whose create fails with a message filling the
 * whole buffer, unterminated. */
#include <string.h>

#include "badplug.h"

static apr_status unterm_create(const apr_backend_config *c, void **b, char *err, size_t n) {
    (void)c;
    *b = NULL;
    memset(err, 'C', n);
    return APR_ERR_DEVICE;
}

static const apr_plugin plugin = {
    .struct_size = sizeof(apr_plugin), .abi_version = APR_ABI_VERSION, .name = "untermcreate",
    .description = "loader test plugin", .buffer_alignment = HOSTMEM_ALIGNMENT, .probe = testplug_probe,
    .create = unterm_create, .destroy = testplug_destroy, .supports = testplug_supports,
    .buffer_alloc = hostmem_alloc, .buffer_import = hostmem_import, .buffer_free = hostmem_free,
    .buffer_write = hostmem_write, .buffer_read = hostmem_read, .compute = testplug_compute};
BADPLUG_ENTRY(&plugin)

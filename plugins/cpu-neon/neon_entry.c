/* neon_entry.c — the exported apr_plugin_entry and function table of cpu-neon (aarch64 Advanced SIMD). */
#include "../common/hostmem.h"
#include "../common/msg.h"
#include "backend.h"
#include "probe.h"
#include "supports.h"

#define NEON_NAME "cpu-neon"
#define NEON_DESC "aarch64 CPU backend, NEON kernels (int8 dot products: sdot / smmla where HWCAP has them), multithreaded"

/* The oldest core ABI this table can serve: the block dtypes arrived in version 2. */
#define NEON_MIN_CORE_ABI 2

__attribute__((visibility("default"))) apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out,
                                                                   char *err, size_t err_size);
/* The core calls the entry through this typedef; a drifting prototype must not compile. */
_Static_assert(__builtin_types_compatible_p(__typeof__(&apr_plugin_entry), apr_plugin_entry_fn),
               "apr_plugin_entry does not match apr_plugin_entry_fn");

static const apr_plugin neon_table = {
    .struct_size = sizeof(apr_plugin),
    .abi_version = APR_ABI_VERSION,
    .name = NEON_NAME,
    .description = NEON_DESC,
    .buffer_alignment = HOSTMEM_ALIGNMENT,
    .probe = probe_run,
    .create = backend_create,
    .destroy = backend_destroy,
    .supports = supports_node,
    .buffer_alloc = hostmem_alloc,
    .buffer_import = hostmem_import,
    .buffer_free = hostmem_free,
    .buffer_write = hostmem_write,
    .buffer_read = hostmem_read,
    .compute = backend_compute,
};

__attribute__((visibility("default"))) apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out,
                                                                   char *err, size_t err_size) {
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "%s: NULL table pointer", NEON_NAME);
    *out = NULL;
    if (core_abi_version < NEON_MIN_CORE_ABI || core_abi_version < APR_ABI_VERSION)
        return msg_set(err, err_size, APR_ERR_ABI, "%s implements ABI %d; the core speaks only up to %u", NEON_NAME,
                       APR_ABI_VERSION, core_abi_version);
    *out = &neon_table;
    return APR_OK;
}

/* x86_entry.c — the exported apr_plugin_entry and function table of cpu-avx2 / cpu-avx512 (one source, two builds). */
#include "../common/hostmem.h"
#include "../common/msg.h"
#include "backend.h"
#include "probe.h"
#include "supports.h"

#if APR_X86_LEVEL >= 3
#define X86_NAME "cpu-avx512"
#define X86_DESC "x86-64 CPU backend, AVX-512 F/BW/VL kernels, multithreaded"
#else
#define X86_NAME "cpu-avx2"
#define X86_DESC "x86-64 CPU backend, AVX2+FMA+F16C kernels, multithreaded"
#endif

/* The oldest core ABI this table can serve: every slot and op here exists since version 1. */
#define X86_MIN_CORE_ABI 1

__attribute__((visibility("default"))) apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out,
                                                                   char *err, size_t err_size);
/* The core calls the entry through this typedef; a drifting prototype must not compile. */
_Static_assert(__builtin_types_compatible_p(__typeof__(&apr_plugin_entry), apr_plugin_entry_fn),
               "apr_plugin_entry does not match apr_plugin_entry_fn");

static const apr_plugin x86_table = {
    .struct_size = sizeof(apr_plugin),
    .abi_version = APR_ABI_VERSION,
    .name = X86_NAME,
    .description = X86_DESC,
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
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "%s: NULL table pointer", X86_NAME);
    *out = NULL;
    /* The table is stamped APR_ABI_VERSION; while that is the only version, an older core cannot
     * be served. When the ABI grows, keep one table per version this plugin can still speak. */
    if (core_abi_version < X86_MIN_CORE_ABI || core_abi_version < APR_ABI_VERSION)
        return msg_set(err, err_size, APR_ERR_ABI, "%s implements ABI %d; the core speaks only up to %u", X86_NAME,
                       APR_ABI_VERSION, core_abi_version);
    *out = &x86_table;
    return APR_OK;
}

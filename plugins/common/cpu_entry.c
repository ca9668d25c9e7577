/* cpu_entry.c — the exported apr_plugin_entry and function table of every CPU plugin (name and description from its probe.c). */
#include "cpu_backend.h"
#include "cpu_probe.h"
#include "cpu_supports.h"
#include "hostmem.h"
#include "msg.h"

/* The oldest core ABI this table can serve: the block dtypes arrived in version 2. */
#define CPU_ENTRY_MIN_CORE_ABI 2

__attribute__((visibility("default"))) apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out,
                                                                   char *err, size_t err_size);
/* The core calls the entry through this typedef; a drifting prototype must not compile. */
_Static_assert(__builtin_types_compatible_p(__typeof__(&apr_plugin_entry), apr_plugin_entry_fn),
               "apr_plugin_entry does not match apr_plugin_entry_fn");

static const apr_plugin cpu_entry_table = {
    .struct_size = sizeof(apr_plugin),
    .abi_version = APR_ABI_VERSION,
    .name = probe_name,
    .description = probe_description,
    .buffer_alignment = HOSTMEM_ALIGNMENT,
    .probe = probe_run,
    .create = cpu_backend_create,
    .destroy = cpu_backend_destroy,
    .supports = cpu_supports_node,
    .buffer_alloc = hostmem_alloc,
    .buffer_import = hostmem_import,
    .buffer_free = hostmem_free,
    .buffer_write = hostmem_write,
    .buffer_read = hostmem_read,
    .compute = cpu_backend_compute,
};

__attribute__((visibility("default"))) apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out,
                                                                   char *err, size_t err_size) {
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "%s: NULL table pointer", probe_name);
    *out = NULL;
    /* The table is stamped APR_ABI_VERSION; while that is the only version, an older core cannot
     * be served. When the ABI grows, keep one table per version this plugin can still speak. */
    if (core_abi_version < CPU_ENTRY_MIN_CORE_ABI || core_abi_version < APR_ABI_VERSION)
        return msg_set(err, err_size, APR_ERR_ABI, "%s implements ABI %d; the core speaks only up to %u", probe_name,
                       APR_ABI_VERSION, core_abi_version);
    *out = &cpu_entry_table;
    return APR_OK;
}

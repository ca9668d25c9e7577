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

/* The slots of ABI 2, which every table below carries. */
#define CPU_ENTRY_V2_SLOTS                           \
    .struct_size = sizeof(apr_plugin),               \
    .name = probe_name,                              \
    .description = probe_description,                \
    .buffer_alignment = HOSTMEM_ALIGNMENT,           \
    .probe = probe_run,                              \
    .create = cpu_backend_create,                    \
    .destroy = cpu_backend_destroy,                  \
    .supports = cpu_supports_node,                   \
    .buffer_alloc = hostmem_alloc,                   \
    .buffer_import = hostmem_import,                 \
    .buffer_free = hostmem_free,                     \
    .buffer_write = hostmem_write,                   \
    .buffer_read = hostmem_read,                     \
    .compute = cpu_backend_compute

static const apr_plugin cpu_entry_table = {
    CPU_ENTRY_V2_SLOTS,
    .abi_version = APR_ABI_VERSION,
    .weight_pack = cpu_backend_weight_pack,
    .caps = APR_CAP_HOST_MEMORY,
    .plan_create = cpu_plan_create,
    .plan_compute = cpu_plan_compute,
    .plan_free = cpu_plan_free,
};

/* For a core of ABI 4: the same slots (ABI 5 added ops, no slot), stamped with the version it speaks. */
static const apr_plugin cpu_entry_table_v4 = {
    CPU_ENTRY_V2_SLOTS,
    .abi_version = 4,
    .weight_pack = cpu_backend_weight_pack,
    .caps = APR_CAP_HOST_MEMORY,
    .plan_create = cpu_plan_create,
    .plan_compute = cpu_plan_compute,
    .plan_free = cpu_plan_free,
};

/* For a core of ABI 3, which reads no slot past weight_pack. */
static const apr_plugin cpu_entry_table_v3 = {
    CPU_ENTRY_V2_SLOTS,
    .abi_version = 3,
    .weight_pack = cpu_backend_weight_pack,
};

/* For a core of ABI 2, which reads no slot past compute. */
static const apr_plugin cpu_entry_table_v2 = {
    CPU_ENTRY_V2_SLOTS,
    .abi_version = 2,
};

__attribute__((visibility("default"))) apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out,
                                                                   char *err, size_t err_size) {
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "%s: NULL table pointer", probe_name);
    *out = NULL;
    /* One table per ABI version this plugin still speaks, newest first. */
    if (core_abi_version < CPU_ENTRY_MIN_CORE_ABI)
        return msg_set(err, err_size, APR_ERR_ABI, "%s implements ABI %d (down to %d); the core speaks only up to %u",
                       probe_name, APR_ABI_VERSION, CPU_ENTRY_MIN_CORE_ABI, core_abi_version);
    *out = core_abi_version >= APR_ABI_VERSION ? &cpu_entry_table
           : core_abi_version == 4             ? &cpu_entry_table_v4
           : core_abi_version == 3             ? &cpu_entry_table_v3
                                               : &cpu_entry_table_v2;
    return APR_OK;
}

/* vk_plugin.c — the vulkan backend's entry point and function table. */
#include <stddef.h>

#include "../common/msg.h"
#include "vk_internal.h"

__attribute__((visibility("default"))) apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out,
                                                                   char *err, size_t err_size);
_Static_assert(__builtin_types_compatible_p(__typeof__(&apr_plugin_entry), apr_plugin_entry_fn),
               "apr_plugin_entry does not match apr_plugin_entry_fn");

/* Every slot but the version stamp; ABI 5 added ops only, so a core of ABI 4 reads the same slots. */
#define VK_SLOTS \
    .struct_size = sizeof(apr_plugin), \
    .name = "vulkan", \
    .description = "Vulkan 1.2 compute on any GPU vendor (and Mesa's lavapipe): GLSL kernels compiled to SPIR-V at build time", \
    .buffer_alignment = 64, \
    .probe = vkdevice_probe, \
    .create = vkbackend_create, \
    .destroy = vkbackend_destroy, \
    .supports = vkcompute_supports, \
    .buffer_alloc = vkbackend_alloc, \
    .buffer_import = NULL, \
    .buffer_free = vkbackend_free, \
    .buffer_write = vkbackend_write, \
    .buffer_read = vkbackend_read, \
    .compute = vkcompute_run, \
    .weight_pack = NULL, \
    .caps = 0, \
    .probe_device = vkdevice_probe_device, \
    .plan_create = vkcompute_plan_create, \
    .plan_compute = vkcompute_plan_compute, \
    .plan_free = vkcompute_plan_free

static const apr_plugin vkplugin_table = {VK_SLOTS, .abi_version = APR_ABI_VERSION};
static const apr_plugin vkplugin_table_v4 = {VK_SLOTS, .abi_version = 4};

apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out, char *err, size_t err_size) {
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: entry called without an output pointer");
    *out = NULL;
    /* memory the host cannot address and devices listed one by one need an ABI 4 core */
    if (core_abi_version < 4)
        return msg_set(err, err_size, APR_ERR_ABI, "vulkan implements ABI %u and needs a core of ABI >= 4; this core speaks %u",
                       (unsigned)APR_ABI_VERSION, (unsigned)core_abi_version);
    *out = core_abi_version == 4 ? &vkplugin_table_v4 : &vkplugin_table;
    return APR_OK;
}

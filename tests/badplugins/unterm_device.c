/* unterm_device.c — a plugin of two devices whose probe_device fails for device 1 with a message
 * filling the whole buffer, unterminated, and scores device 0 with an unterminated reason. */
#include <string.h>

#include "badplug.h"

static apr_status unterm_device_probe(const apr_host_info *h, apr_probe_result *out, char *err, size_t n) {
    (void)h; (void)err; (void)n;
    out->score = 1;
    out->n_devices = 2;
    return APR_OK;
}

static apr_status unterm_device(const apr_host_info *h, uint32_t device, apr_probe_result *out, char *err, size_t n) {
    (void)h;
    if (device == 1) {
        memset(err, 'D', n);
        return APR_ERR_DEVICE;
    }
    out->score = 0;
    memset(out->reason, 'S', sizeof out->reason);
    memset(out->features, 'F', sizeof out->features);
    return APR_OK;
}

static const apr_plugin plugin = {
    .struct_size = sizeof(apr_plugin), .abi_version = APR_ABI_VERSION, .name = "untermdevice",
    .description = "loader test plugin", .buffer_alignment = HOSTMEM_ALIGNMENT, .probe = unterm_device_probe,
    .create = testplug_create, .destroy = testplug_destroy, .supports = testplug_supports,
    .buffer_alloc = hostmem_alloc, .buffer_import = hostmem_import, .buffer_free = hostmem_free,
    .buffer_write = hostmem_write, .buffer_read = hostmem_read, .compute = testplug_compute,
    .probe_device = unterm_device};
BADPLUG_ENTRY(&plugin)

/* untermrun.c — a plugin that loads, probes and creates well, runs SCALE only, and leaves every
 * message of its node calls unterminated: supports() fills `why` for any other op, and compute
 * fails with a message that fills the whole buffer. The core must cut each at its buffer. */
#include <string.h>

#include "../../plugins/common/opcheck.h"
#include "testplug.h"

static apr_status untermrun_supports(void *b, const apr_node_desc *node, char *why, size_t n) {
    (void)b;
    if (node->op == APR_OP_SCALE) return APR_OK;
    memset(why, 'S', n);
    return APR_ERR_UNSUPPORTED;
}

static apr_status untermrun_compute(void *b, const apr_subgraph *g, char *err, size_t n) {
    (void)b;
    (void)g;
    memset(err, 'R', n);
    return APR_ERR_DEVICE;
}

static const apr_plugin plugin = {
    .struct_size = sizeof(apr_plugin), .abi_version = APR_ABI_VERSION, .name = "untermrun",
    .description = "test plugin: unterminated messages from supports and compute", .buffer_alignment = HOSTMEM_ALIGNMENT,
    .probe = testplug_probe, .create = testplug_create, .destroy = testplug_destroy, .supports = untermrun_supports,
    .buffer_alloc = hostmem_alloc, .buffer_import = hostmem_import, .buffer_free = hostmem_free,
    .buffer_write = hostmem_write, .buffer_read = hostmem_read, .compute = untermrun_compute};

TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n);
apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n) {
    (void)core_abi;
    (void)err;
    (void)n;
    *out = &plugin;
    return APR_OK;
}

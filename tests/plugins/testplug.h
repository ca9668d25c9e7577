/* testplug.h — the minimal host-memory plugin the loader-test plugins are variations of. */
#ifndef APR_TESTPLUG_H
#define APR_TESTPLUG_H

#include "../../plugins/common/hostmem.h"
#include "../../plugins/common/msg.h"

#define TESTPLUG_EXPORT __attribute__((visibility("default")))

__attribute__((unused)) static apr_status testplug_probe(const apr_host_info *h, apr_probe_result *out, char *err, size_t n) {
    (void)h; (void)err; (void)n;
    out->score = 1;
    snprintf(out->reason, sizeof out->reason, "test plugin");
    return APR_OK;
}
__attribute__((unused)) static apr_status testplug_create(const apr_backend_config *c, void **b, char *err, size_t n) {
    (void)c; (void)err; (void)n;
    *b = NULL;
    return APR_OK;
}
__attribute__((unused)) static void testplug_destroy(void *b) { (void)b; }
__attribute__((unused)) static apr_status testplug_supports(void *b, const apr_node_desc *node, char *why, size_t n) {
    (void)b;
    return msg_set(why, n, APR_ERR_UNSUPPORTED, "test plugin runs no op %u", node->op);
}
__attribute__((unused)) static apr_status testplug_compute(void *b, const apr_subgraph *g, char *err, size_t n) {
    (void)b; (void)g;
    return msg_set(err, n, APR_ERR_UNSUPPORTED, "test plugin computes nothing");
}

#define TESTPLUG_TABLE(var, plugin_name, version, probe_fn)                                              \
    static const apr_plugin var = {                                                                    \
        .struct_size = sizeof(apr_plugin), .abi_version = (version), .name = (plugin_name),            \
        .description = "loader test plugin", .buffer_alignment = HOSTMEM_ALIGNMENT, .probe = (probe_fn), \
        .create = testplug_create, .destroy = testplug_destroy, .supports = testplug_supports,         \
        .buffer_alloc = hostmem_alloc, .buffer_import = hostmem_import, .buffer_free = hostmem_free,   \
        .buffer_write = hostmem_write, .buffer_read = hostmem_read, .compute = testplug_compute}

#endif

/* ref_plugin.c — the reference backend's entry point and function table: probe, instances, supports and compute dispatch. */
#include <stddef.h>
#include <stdlib.h>

#include "../common/hostmem.h"
#include "../common/msg.h"
#include "../common/opcheck.h"
#include "ref_ops.h"

__attribute__((visibility("default"))) apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out,
                                                                   char *err, size_t err_size);
/* The core calls the entry through this typedef; a drifting prototype must not compile. */
_Static_assert(__builtin_types_compatible_p(__typeof__(&apr_plugin_entry), apr_plugin_entry_fn),
               "apr_plugin_entry does not match apr_plugin_entry_fn");

/* An instance holds nothing: every call works from its arguments alone. It is still a real
 * allocation so that create and destroy pair up as they do for every other backend. */
typedef struct instance {
    char unused;
} instance;

#define FITS(s, type, field) ((s)->struct_size >= offsetof(type, field) + sizeof((s)->field))

static apr_status refplugin_probe(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size) {
    (void)host;
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "reference: probe result is NULL");
    if (FITS(out, apr_probe_result, score)) out->score = 1;
    if (FITS(out, apr_probe_result, reason)) msg_set(out->reason, sizeof out->reason, APR_OK, "portable C reference; always usable");
    if (FITS(out, apr_probe_result, features)) out->features[0] = '\0';
    return APR_OK;
}

/* n_threads is ignored: the reference is single-threaded so that it is plainly deterministic. */
static apr_status refplugin_create(const apr_backend_config *cfg, void **backend, char *err, size_t err_size) {
    (void)cfg;
    if (!backend) return msg_set(err, err_size, APR_ERR_INVALID, "reference: create without an output pointer");
    *backend = calloc(1, sizeof(instance));
    if (!*backend) return msg_set(err, err_size, APR_ERR_NOMEM, "reference: cannot allocate an instance");
    return APR_OK;
}

static void refplugin_destroy(void *backend) { free(backend); }

/* The reference runs every dtype, shape and stride the ABI defines, so supports() is the ABI's
 * own structural check. The ABI asks supports() for APR_ERR_UNSUPPORTED on every refusal. */
static apr_status refplugin_supports(void *backend, const apr_node_desc *node, char *why, size_t why_size) {
    (void)backend;
    return opcheck_node(node, why, why_size) == APR_OK ? APR_OK : APR_ERR_UNSUPPORTED;
}

/* Each kernel reads through host addresses, which supports() cannot check (it may be asked before
 * buffers exist). */
static apr_status check_host(const apr_node_desc *n, char *err, size_t err_size) {
    if (opcheck_nelements(&n->dst) && !n->dst.data)
        return msg_set(err, err_size, APR_ERR_INVALID, "%s: dst has no host address", opcheck_op_name(n->op));
    for (uint32_t i = 0; i < n->n_src; i++)
        if (opcheck_src_present(n, i) && opcheck_nelements(opcheck_src(n, i)) && !opcheck_src(n, i)->data)
            return msg_set(err, err_size, APR_ERR_INVALID, "%s: src%u has no host address", opcheck_op_name(n->op),
                           (unsigned)i);
    return APR_OK;
}

static apr_status run_node(const apr_node_desc *n, char *err, size_t err_size) {
    apr_status st = opcheck_node(n, err, err_size);
    if (st == APR_OK) st = opcheck_bounds(n, err, err_size);
    if (st == APR_OK) st = check_host(n, err, err_size);
    if (st != APR_OK) return st;
    return refkernel_run(n, err, err_size);
}

static apr_status refplugin_compute(void *backend, const apr_subgraph *graph, char *err, size_t err_size) {
    (void)backend;
    if (!graph || graph->struct_size < sizeof(apr_subgraph))
        return msg_set(err, err_size, APR_ERR_INVALID, "reference: subgraph is NULL or its struct_size is too small");
    if (graph->n_nodes && !graph->nodes)
        return msg_set(err, err_size, APR_ERR_INVALID, "reference: subgraph of %u nodes has no node array",
                       (unsigned)graph->n_nodes);
    /* A stride that is too small or misaligned would make every node after the first unreadable. */
    if (graph->n_nodes &&
        (graph->node_stride < APR_NODE_DESC_SIZE_V3 || graph->node_stride % _Alignof(apr_node_desc) != 0))
        return msg_set(err, err_size, APR_ERR_INVALID, "reference: node_stride %u, want a multiple of %zu and >= %zu",
                       (unsigned)graph->node_stride, _Alignof(apr_node_desc), (size_t)APR_NODE_DESC_SIZE_V3);
    for (uint32_t i = 0; i < graph->n_nodes; i++) {
        const apr_node_desc *n = (const apr_node_desc *)((const char *)graph->nodes + (size_t)i * graph->node_stride);
        char why[384] = "";
        apr_status st = run_node(n, why, sizeof why);
        if (st != APR_OK) {
            const char *name = n->struct_size >= APR_NODE_DESC_SIZE_V3 && n->name ? n->name : "unnamed";
            return msg_set(err, err_size, st, "node %u (%s): %s", (unsigned)i, name, why);
        }
    }
    return APR_OK;
}

/* Every slot but the version stamp; ABI 5 added ops only, so a core of ABI 4 reads the same slots. */
#define REF_SLOTS \
    .struct_size = sizeof(apr_plugin), \
    .name = "reference", \
    .description = "portable C reference for every op: the meaning of the ABI and the oracle of the tests", \
    .buffer_alignment = HOSTMEM_ALIGNMENT, \
    .probe = refplugin_probe, \
    .create = refplugin_create, \
    .destroy = refplugin_destroy, \
    .supports = refplugin_supports, \
    .buffer_alloc = hostmem_alloc, \
    .buffer_import = hostmem_import, \
    .buffer_free = hostmem_free, \
    .buffer_write = hostmem_write, \
    .buffer_read = hostmem_read, \
    .compute = refplugin_compute, \
    .caps = APR_CAP_HOST_MEMORY

static const apr_plugin refplugin_table = {REF_SLOTS, .abi_version = APR_ABI_VERSION};
static const apr_plugin refplugin_table_v4 = {REF_SLOTS, .abi_version = 4};

apr_status apr_plugin_entry(uint32_t core_abi_version, const apr_plugin **out, char *err, size_t err_size) {
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "reference: entry called without an output pointer");
    *out = NULL;
    if (core_abi_version < APR_ABI_MIN_VERSION)
        return msg_set(err, err_size, APR_ERR_ABI, "reference implements ABI %u and serves cores of ABI >= %u; this core speaks %u",
                       (unsigned)APR_ABI_VERSION, (unsigned)APR_ABI_MIN_VERSION, (unsigned)core_abi_version);
    *out = core_abi_version == 4 ? &refplugin_table_v4 : &refplugin_table;
    return APR_OK;
}

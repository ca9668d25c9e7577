/* host.c — the machine's topology from hwloc: cores, hardware threads, caches, NUMA nodes. */
#include <hwloc.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int64_t host_cache_size(hwloc_topology_t topo, hwloc_obj_type_t type) {
    hwloc_obj_t o = hwloc_get_obj_by_type(topo, type, 0);
    return (o && o->attr) ? (int64_t)o->attr->cache.size : 0;
}

APR_API apr_status apr_host_query(apr_host_info *out, apr_error *err) {
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->core_abi_version = APR_ABI_VERSION;
    apr_host_cpu_identify(out);

    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) {
        /* Without hwloc's view, fall back to what the OS says: every CPU counts as a core. */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        out->n_physical_cores = out->n_logical_cpus = n > 0 ? (int32_t)n : 1;
        out->n_numa_nodes = 1;
        return apr_error_set(err, APR_OK, "hwloc could not load the topology; using %d CPUs", out->n_logical_cpus);
    }
    int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    int pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    int numa = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    out->n_logical_cpus = pus > 0 ? pus : 1;
    out->n_physical_cores = cores > 0 ? cores : out->n_logical_cpus;
    out->n_numa_nodes = numa > 0 ? numa : 1;
    out->l1d_bytes = host_cache_size(topo, HWLOC_OBJ_L1CACHE);
    out->l2_bytes = host_cache_size(topo, HWLOC_OBJ_L2CACHE);
    out->l3_bytes = host_cache_size(topo, HWLOC_OBJ_L3CACHE);
    if (strncmp(out->cpu_model, "unknown", 7) == 0) {
        hwloc_obj_t pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
        const char *model = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
        if (model) snprintf(out->cpu_model, sizeof out->cpu_model, "%s", model);
    }
    hwloc_topology_destroy(topo);
    return APR_OK;
}

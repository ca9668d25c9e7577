/* missingdep.c — a plugin linked against a library the dynamic linker cannot find. */
#include "testplug.h"

int aprmissing_value(void);

static apr_status missingdep_probe(const apr_host_info *h, apr_probe_result *out, char *err, size_t n) {
    out->score = aprmissing_value(); /* the reference that forces the dependency */
    return testplug_probe(h, out, err, n);
}

TESTPLUG_TABLE(missingdep_table, "missingdep", APR_ABI_VERSION, missingdep_probe);

TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n);
apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n) {
    (void)core_abi; (void)err; (void)n;
    *out = &missingdep_table;
    return APR_OK;
}

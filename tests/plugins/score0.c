/* score0.c — a plugin whose probe finds the machine unsuitable. */
#include "testplug.h"

static apr_status score0_probe(const apr_host_info *h, apr_probe_result *out, char *err, size_t n) {
    (void)h; (void)err; (void)n;
    out->score = 0;
    snprintf(out->reason, sizeof out->reason, "needs a flux capacitor, none found");
    return APR_OK;
}

TESTPLUG_TABLE(score0_table, "score0", APR_ABI_VERSION, score0_probe);

TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n);
apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n) {
    (void)core_abi; (void)err; (void)n;
    *out = &score0_table;
    return APR_OK;
}

/* newerabi.c — a plugin built for an ABI one version newer than the core's. */
#include "testplug.h"

TESTPLUG_TABLE(newerabi_table, "newerabi", APR_ABI_VERSION + 1, testplug_probe);

TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n);
apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n) {
    (void)core_abi; (void)err; (void)n;
    *out = &newerabi_table; /* ignores the offer, as a careless newer plugin would */
    return APR_OK;
}

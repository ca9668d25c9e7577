/* packold.c — packtest as an ABI 2 plugin: its table ends before weight_pack, so the core must
 * never call the packing the code behind it still carries (the counters would show it). */
#include "packtest_ops.h"

PACKTEST_TABLE(packold_table, "packold", 2, offsetof(apr_plugin, weight_pack));

TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n);
apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n) {
    if (core_abi < 2) return msg_set(err, n, APR_ERR_ABI, "packold needs core ABI >= 2");
    *out = &packold_table;
    return APR_OK;
}

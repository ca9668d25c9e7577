/* packtest.c — a test backend (ABI 3) that packs f32 weights into the layout of packtest.h and
 * counts what it packs, frees and reads (see packtest_ops.h). */
#include "packtest_ops.h"

PACKTEST_TABLE(packtest_table, "packtest", APR_ABI_VERSION, sizeof(apr_plugin));

TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n);
apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n) {
    if (core_abi < 3) return msg_set(err, n, APR_ERR_ABI, "packtest needs core ABI >= 3");
    *out = &packtest_table;
    return APR_OK;
}

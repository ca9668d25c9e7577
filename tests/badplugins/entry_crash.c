/* entry_crash.c — a plugin whose apr_plugin_entry dereferences NULL. */
#include "badplug.h"

TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n) {
    (void)core_abi; (void)out; (void)err; (void)n;
    badplug_segv();
    return APR_ERR_INTERNAL;
}

/* probe_crash.c — a plugin whose probe dereferences NULL. */
#include "badplug.h"

static apr_status probe_crash(const apr_host_info *h, apr_probe_result *out, char *err, size_t n) {
    (void)h; (void)out; (void)err; (void)n;
    badplug_segv();
    return APR_OK;
}

TESTPLUG_TABLE(plugin, "probecrash", APR_ABI_VERSION, probe_crash);
BADPLUG_ENTRY(&plugin)

/* probe_hang.c — a plugin whose probe never returns. */
#include "badplug.h"

static apr_status probe_hang(const apr_host_info *h, apr_probe_result *out, char *err, size_t n) {
    (void)h; (void)out; (void)err; (void)n;
    while (out->score == 0) pause(); /* score stays 0: the loop never ends */
    return APR_OK;
}

TESTPLUG_TABLE(plugin, "probehang", APR_ABI_VERSION, probe_hang);
BADPLUG_ENTRY(&plugin)

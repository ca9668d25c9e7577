/* unterm_reason.c — a plugin whose probe scores 0 with its reason and features filled, unterminated. */
#include <string.h>

#include "badplug.h"

static apr_status unterm_reason(const apr_host_info *h, apr_probe_result *out, char *err, size_t n) {
    (void)h; (void)err; (void)n;
    out->score = 0;
    memset(out->reason, 'R', sizeof out->reason);
    memset(out->features, 'F', sizeof out->features);
    return APR_OK;
}

TESTPLUG_TABLE(plugin, "untermreason", APR_ABI_VERSION, unterm_reason);
BADPLUG_ENTRY(&plugin)

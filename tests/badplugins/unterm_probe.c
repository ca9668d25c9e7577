/* unterm_probe.c — a plugin whose probe fails with a message filling the whole buffer, unterminated. */
#include <string.h>

#include "badplug.h"

static apr_status unterm_probe(const apr_host_info *h, apr_probe_result *out, char *err, size_t n) {
    (void)h; (void)out;
    memset(err, 'P', n);
    return APR_ERR_UNSUPPORTED;
}

TESTPLUG_TABLE(plugin, "untermprobe", APR_ABI_VERSION, unterm_probe);
BADPLUG_ENTRY(&plugin)

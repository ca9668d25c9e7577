/* unterm_entry.c — a plugin whose entry refuses with a message filling the whole buffer, unterminated. */
#include <string.h>

#include "badplug.h"

TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, size_t n) {
    (void)core_abi;
    *out = NULL;
    memset(err, 'E', n);
    return APR_ERR_INVALID;
}

/* msg.h — formats the one-line error or reason a plugin hands back through (err, err_size). */
#ifndef APR_PLUGIN_MSG_H
#define APR_PLUGIN_MSG_H

#include <stdarg.h>
#include <stdio.h>
#include "apr/apr_abi.h"

/* Writes the message (truncated to fit) and returns status, so a failure reads
 * `return msg_set(err, n, APR_ERR_INVALID, "...", ...);`. A NULL or empty buffer is allowed. */
static inline apr_status msg_set(char *buf, size_t size, apr_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline apr_status msg_set(char *buf, size_t size, apr_status status, const char *fmt, ...) {
    if (buf && size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, size, fmt, ap);
        va_end(ap);
    }
    return status;
}

#endif

/* status.c — status names and the error-message helper every core file uses. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

APR_API const char *apr_status_name(apr_status s) {
    switch (s) {
    case APR_OK: return "ok";
    case APR_ERR_INVALID: return "invalid argument";
    case APR_ERR_UNSUPPORTED: return "unsupported";
    case APR_ERR_NOMEM: return "out of memory";
    case APR_ERR_IO: return "i/o error";
    case APR_ERR_FORMAT: return "malformed file";
    case APR_ERR_DEVICE: return "device error";
    case APR_ERR_ABI: return "ABI mismatch";
    case APR_ERR_NOT_FOUND: return "not found";
    case APR_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

APR_API apr_status apr_error_set(apr_error *err, apr_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

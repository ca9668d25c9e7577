/* gguf_error.c — the one-line error messages of the GGUF reader and writer, and the quoting that
 * keeps names taken from hostile files printable and short. */
#include <stdarg.h>
#include <stdio.h>

#include "gguf_internal.h"

const char *gguf_error_quote(char *buf, size_t n, const char *s, uint64_t len) {
    enum { SHOW = 80 };
    size_t o = 0;
    if (n == 0) return buf;
    for (uint64_t i = 0; i < len && i < SHOW; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            if (o + 1 >= n) break;
            buf[o++] = (char)c;
        } else {
            if (o + 4 >= n) break;
            snprintf(buf + o, n - o, "\\x%02x", c);
            o += 4;
        }
    }
    if (len > SHOW && o + 3 < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* cli_text.c — the text files and streams the frontends read: bounded, with clear errors. */
#include "common/cli_text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *cli_read_stream(FILE *fp, size_t max, size_t *len) {
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? 2 * cap : 1 << 16;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); errno = ENOMEM; return NULL; }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, 65536, fp);
        n += got;
        if (n > max) { free(buf); errno = EFBIG; return NULL; }
        if (got < 65536) break;
    }
    if (ferror(fp)) {
        int e = errno ? errno : EIO;
        free(buf);
        errno = e;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *cli_read_file(const char *path, size_t max, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) { /* fopen takes a directory; reading it fails with EISDIR */
        fclose(fp);
        errno = EISDIR;
        return NULL;
    }
    errno = 0;
    char *buf = cli_read_stream(fp, max, len);
    int e = errno;
    fclose(fp);
    errno = e;
    return buf;
}

size_t cli_text_bytes_per_token(const tok_vocab *v) {
    size_t longest = 4; /* an unknown character becomes one <unk> whatever its UTF-8 length */
    for (int32_t id = 0; v && id < apr_tok_n_vocab(v); id++) {
        const char *p = apr_tok_piece(v, id);
        size_t n = p ? strlen(p) : 0;
        if (n > longest) longest = n;
    }
    return 2 * longest;
}

size_t cli_text_bound(const tok_vocab *v, long n) {
    size_t per = cli_text_bytes_per_token(v);
    return n > 0 && (size_t)n <= CLI_TEXT_MAX / per ? (size_t)n * per : CLI_TEXT_MAX;
}

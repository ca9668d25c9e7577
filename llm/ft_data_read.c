/* ft_data_read.c — one training file into the token stream: plain text whole, JSON lines one line at a time with an error per bad line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ft_data_internal.h"

#define RD_MAX_LINE ((size_t)64 << 20)

static bool rd_is_jsonl(const char *path) {
    size_t n = strlen(path);
    return (n >= 6 && !strcasecmp(path + n - 6, ".jsonl")) || (n >= 5 && !strcasecmp(path + n - 5, ".json"));
}

/* Opens path for reading: APR_ERR_IO naming it when it cannot be opened or is a directory;
 * *size gets its size (0 when not a regular file). */
static apr_status rd_open(const char *path, FILE **out, size_t *size, apr_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return apr_error_set(err, APR_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb)) {
        int e = errno;
        fclose(f);
        return apr_error_set(err, APR_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        fclose(f);
        return apr_error_set(err, APR_ERR_IO, "%s: is a directory", path);
    }
    *size = S_ISREG(sb.st_mode) && sb.st_size > 0 ? (size_t)sb.st_size : 0;
    *out = f;
    return APR_OK;
}

/* ---------------------------------------------------------------- plain text */

static apr_status rd_plain(const char *path, FILE *f, size_t size, const tok_vocab *v, ftd_stream *s,
                           apr_ftdata_stats *st, apr_error *err) {
    size_t cap = size + 1 > 4096 ? size + 1 : 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory reading it", path);
    for (;;) {
        if (n == cap) {
            char *nb = cap * 2 > cap ? realloc(buf, cap * 2) : NULL;
            if (!nb) { free(buf); return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory reading it", path); }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got) continue;
        if (ferror(f)) {
            free(buf);
            return apr_error_set(err, APR_ERR_IO, "%s: read error", path);
        }
        break;
    }
    apr_status rc = APR_OK;
    if (n) {   /* an empty file holds no example */
        apr_error e;
        rc = ftd_example_text(buf, n, v, s, &e);
        if (rc) apr_error_set(err, rc, "%s: %s", path, e.msg);
        else st->examples++;
    }
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- JSON lines */

/* Lines of a file through one buffer that never holds more than max + 1 bytes of a line: a longer
 * line is dropped as it is read and reported as RD_LONG. */
typedef struct rd_lines {
    FILE *f;
    char *buf;
    size_t cap, len;           /* buf[0, len) read from the file */
    size_t pos;                /* the unreturned part starts here */
    size_t scan;               /* buf[pos, scan) holds no '\n' */
    size_t max;
    bool eof;
} rd_lines;

enum { RD_LINE, RD_END, RD_LONG, RD_IOERR, RD_NOMEM };

/* The next line, without its '\n', in *line / *n (valid until the next call). */
static int rd_next(rd_lines *r, const char **line, size_t *n) {
    bool toolong = false;
    for (;;) {
        char *nl = r->scan < r->len ? memchr(r->buf + r->scan, '\n', r->len - r->scan) : NULL;
        if (nl) {
            size_t end = (size_t)(nl - r->buf);
            *line = r->buf + r->pos;
            *n = end - r->pos;
            r->pos = r->scan = end + 1;
            return toolong || *n > r->max ? RD_LONG : RD_LINE;
        }
        r->scan = r->len;
        if (r->len - r->pos > r->max) {   /* too long already: drop what is buffered, look for its end */
            toolong = true;
            r->pos = r->scan = r->len = 0;
        }
        if (r->eof) {
            if (r->pos == r->len && !toolong) return RD_END;
            *line = r->buf + r->pos;
            *n = r->len - r->pos;
            r->pos = r->scan = r->len;
            return toolong ? RD_LONG : RD_LINE;
        }
        if (r->pos) {   /* keep only the unfinished line */
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->len -= r->pos;
            r->scan -= r->pos;
            r->pos = 0;
        }
        if (r->len == r->cap) {   /* the line fills the buffer and is still no longer than max */
            size_t cap = r->cap * 2 < r->max + 1 ? r->cap * 2 : r->max + 1;
            char *nb = realloc(r->buf, cap);
            if (!nb) return RD_NOMEM;
            r->buf = nb;
            r->cap = cap;
        }
        size_t got = fread(r->buf + r->len, 1, r->cap - r->len, r->f);
        r->len += got;
        if (!got) {
            if (ferror(r->f)) return RD_IOERR;
            r->eof = true;
        }
    }
}

static bool rd_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\f\v", s[i])) return false;
    return true;
}

/* One line's example, or APR_ERR_FORMAT with the problem in e. */
static apr_status rd_line(const char *line, size_t n, const tok_vocab *v, const apr_ftdata_opts *o, ftd_stream *s,
                          apr_error *e) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(line, n, &end, false);
    if (!j) {
        size_t at = end && end >= line && end <= line + n ? (size_t)(end - line) : 0;
        return apr_error_set(e, APR_ERR_FORMAT, "invalid JSON at column %zu", at + 1);
    }
    size_t rest = end && end >= line && end <= line + n ? (size_t)(end - line) : n;
    apr_status rc;
    if (!rd_blank(line + rest, n - rest))
        rc = apr_error_set(e, APR_ERR_FORMAT, "invalid JSON at column %zu: text after the value", rest + 1);
    else rc = ftd_example_json(j, v, o, s, e);
    cJSON_Delete(j);
    return rc;
}

static apr_status rd_jsonl(const char *path, FILE *f, const tok_vocab *v, const apr_ftdata_opts *o, ftd_stream *s,
                           apr_ftdata_stats *st, apr_error *err) {
    rd_lines r = {.f = f, .max = o->max_line ? o->max_line : RD_MAX_LINE};
    r.cap = r.max + 1 < 65536 ? r.max + 1 : 65536;
    r.buf = malloc(r.cap);
    if (!r.buf) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
    FILE *warn = o->warn ? o->warn : stderr;
    apr_status rc = APR_OK;
    for (long long lineno = 1;; lineno++) {
        const char *line;
        size_t n;
        int k = rd_next(&r, &line, &n);
        if (k == RD_END) break;
        if (k == RD_IOERR) { rc = apr_error_set(err, APR_ERR_IO, "%s:%lld: read error", path, lineno); break; }
        if (k == RD_NOMEM) { rc = apr_error_set(err, APR_ERR_NOMEM, "%s:%lld: out of memory", path, lineno); break; }
        apr_error e;
        apr_status ls;
        if (k == RD_LONG) {
            bool mib = r.max % ((size_t)1 << 20) == 0;
            ls = apr_error_set(&e, APR_ERR_FORMAT, "line longer than %zu %s", mib ? r.max >> 20 : r.max,
                               mib ? "MiB" : "bytes");
        } else {
            if (rd_blank(line, n)) continue;
            ls = rd_line(line, n, v, o, s, &e);
        }
        if (!ls) { st->examples++; continue; }
        if (ls != APR_ERR_FORMAT || o->strict) {
            rc = apr_error_set(err, ls, "%s:%lld: %s", path, lineno, e.msg);
            break;
        }
        fprintf(warn, "%s:%lld: %s (skipped)\n", path, lineno, e.msg);
        st->skipped++;
    }
    free(r.buf);
    return rc;
}

/* ---------------------------------------------------------------- a file */

apr_status ftd_read_file(const char *path, const tok_vocab *v, const apr_ftdata_opts *o, ftd_stream *s,
                         apr_ftdata_stats *st, apr_error *err) {
    FILE *f = NULL;
    size_t size = 0;
    apr_status rc = rd_open(path, &f, &size, err);
    if (rc) return rc;
    rc = rd_is_jsonl(path) ? rd_jsonl(path, f, v, o, s, st, err) : rd_plain(path, f, size, v, s, st, err);
    fclose(f);
    return rc;
}

/* cli.c — argument parsing and start-up shared by the apr frontends. */
#include "common/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const cli_common_help =
    "  --backend NAME   run on this backend (default: the best one apr-probe reports)\n"
    "  --threads N      worker threads (default: physical cores)\n"
    "  --json           machine-readable output on stdout\n"
    "  -h, --help       this text\n";

bool cli_parse_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

const char *cli_option_value(int argc, char **argv, int *i, const char *opt) {
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != 0) return NULL;
    if (*i + 1 >= argc) return "";
    return argv[++*i];
}

int cli_parse_common(int argc, char **argv, int *i, cli_common *opts) {
    const char *a = argv[*i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { opts->help = true; return 1; }
    if (!strcmp(a, "--json")) { opts->json = true; return 1; }
    const char *v;
    if ((v = cli_option_value(argc, argv, i, "--backend"))) {
        if (!*v) { fprintf(stderr, "error: --backend needs a name\n"); return -1; }
        opts->backend = v;
        return 1;
    }
    if ((v = cli_option_value(argc, argv, i, "--threads"))) {
        long n;
        if (!cli_parse_int(v, 1, 4096, &n)) {
            fprintf(stderr, "error: --threads wants a number from 1 to 4096, got '%s'\n", v);
            return -1;
        }
        opts->threads = (int)n;
        return 1;
    }
    return 0;
}

int cli_open_backend(const cli_common *opts, apr_registry **reg, apr_backend **be) {
    apr_error e;
    *be = NULL;
    if (apr_registry_open(NULL, reg, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        return CLI_EXIT_FAIL;
    }
    apr_status st = apr_backend_open(*reg, opts->backend, opts->threads, be, &e);
    if (st != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        apr_registry_close(*reg);
        *reg = NULL;
        return st == APR_ERR_NOT_FOUND ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? 2 * cap : 1 << 20;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(fp); errno = ENOMEM; return NULL; }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, 65536, fp);
        n += got;
        if (got < 65536) break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) { free(buf); errno = EIO; return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

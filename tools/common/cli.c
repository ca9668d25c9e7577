/* cli.c — argument parsing and start-up shared by the apr frontends. */
#include "common/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *const cli_common_help =
    "  --backend NAME   run on this backend (default: the best one apr-probe reports)\n"
    "  --threads N      worker threads (default: physical cores); at most 4 x the logical CPUs\n"
    "                   (never less than 8), as more only contend for the same cores\n"
    "  --json           machine-readable output on stdout\n"
    "  -h, --help       this text\n";

int cli_max_threads(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    long cap = cpus * CLI_THREADS_PER_CPU;
    return cap < CLI_THREADS_FLOOR ? CLI_THREADS_FLOOR : cap > 1L << 20 ? 1 << 20 : (int)cap;
}

bool cli_parse_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool cli_parse_float(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* isfinite first: nan compares false with both bounds and would pass a range check */
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool cli_option_int(const char *opt, const char *v, long lo, long hi, long *out) {
    if (cli_parse_int(v, lo, hi, out)) return true;
    char *end;
    errno = 0;
    long n = v && *v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end) fprintf(stderr, "error: %s wants a whole number from %ld to %ld, got '%s'\n", opt, lo, hi, v ? v : "");
    else if (n > hi || (errno == ERANGE && n == LONG_MAX)) fprintf(stderr, "error: %s %s is too large: at most %ld\n", opt, v, hi);
    else fprintf(stderr, "error: %s %s is too small: at least %ld\n", opt, v, lo);
    return false;
}

bool cli_option_float(const char *opt, const char *v, double lo, double hi, double *out) {
    if (cli_parse_float(v, lo, hi, out)) return true;
    fprintf(stderr, "error: %s wants a finite number from %g to %g, got '%s'\n", opt, lo, hi, v ? v : "");
    return false;
}

const char *cli_option_value(int argc, char **argv, int *i, const char *opt) {
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != 0) return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "error: %s needs a value\n", opt);
        exit(CLI_EXIT_USAGE);
    }
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
        long n, cap = cli_max_threads();
        if (cli_parse_int(v, cap + 1, LONG_MAX, &n)) {
            fprintf(stderr, "error: --threads %s is too many: at most %ld here (%d per logical CPU, at least %d)\n", v, cap,
                    CLI_THREADS_PER_CPU, CLI_THREADS_FLOOR);
            return -1;
        }
        if (!cli_option_int("--threads", v, 1, cap, &n)) return -1;
        opts->threads = (int)n;
        return 1;
    }
    return 0;
}

int cli_open_backend(const cli_common *opts, apr_registry **reg, apr_backend **be) {
    apr_error e;
    *be = NULL;
    /* a backend chosen by name: only the plugin files providing it are loaded */
    apr_registry_options ro = {.backends = opts->backend};
    if (apr_registry_open(&ro, reg, &e) != APR_OK) {
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

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

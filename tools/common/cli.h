/* cli.h — argument parsing and start-up shared by the apr frontends. */
#ifndef APR_TOOLS_CLI_H
#define APR_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "apr/apr.h"

/* Exit codes every tool uses. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

typedef struct cli_common {
    const char *backend;   /* --backend NAME; NULL = the default */
    int threads;           /* --threads N; 0 = physical cores */
    bool json;             /* --json */
    bool help;             /* --help / -h */
} cli_common;

/* Consumes the option at argv[*i] (and its value) if it is one of the common ones. Returns 1 when
 * consumed, 0 when not a common option, -1 on a usage error (message printed). */
int cli_parse_common(int argc, char **argv, int *i, cli_common *opts);

/* The help lines of the common options, for each tool's --help. */
extern const char *const cli_common_help;

/* Opens the registry and the chosen backend, printing a one-line error on failure; returns a
 * CLI_EXIT_* code (USAGE for a backend name that is unknown or unusable here). */
int cli_open_backend(const cli_common *opts, apr_registry **reg, apr_backend **be);

/* The value of option opt at argv[*i], as "--opt VALUE" (advancing *i) or "--opt=VALUE"; "" when
 * the value is missing; NULL when argv[*i] is not opt. */
const char *cli_option_value(int argc, char **argv, int *i, const char *opt);

/* Strict integer parse: the whole string, within [lo, hi]. */
bool cli_parse_int(const char *s, long lo, long hi, long *out);

/* The whole file at path, NUL-terminated, its length in *len; NULL with errno set when it cannot
 * be read. The caller frees it. */
char *cli_read_file(const char *path, size_t *len);

/* Seconds on the monotonic clock, for the timings tools print. */
double cli_now(void);

#endif

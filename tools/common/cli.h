/* cli.h — argument parsing and start-up shared by the apr frontends. */
#ifndef APR_TOOLS_CLI_H
#define APR_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "apr/apr.h"

/* Exit codes every tool uses. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* --threads accepts at most CLI_THREADS_PER_CPU per logical CPU, and never fewer than
 * CLI_THREADS_FLOOR: more threads than that only contend for the same cores. */
enum { CLI_THREADS_PER_CPU = 4, CLI_THREADS_FLOOR = 8 };

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

/* The most worker threads --threads accepts here: CLI_THREADS_PER_CPU x the logical CPUs, at
 * least CLI_THREADS_FLOOR. */
int cli_max_threads(void);

/* Opens the registry and the chosen backend, printing a one-line error on failure; returns a
 * CLI_EXIT_* code (USAGE for a backend name that is unknown or unusable here). */
int cli_open_backend(const cli_common *opts, apr_registry **reg, apr_backend **be);

/* The value of option opt at argv[*i], as "--opt VALUE" (advancing *i) or "--opt=VALUE" ("" for
 * "--opt="); NULL when argv[*i] is not opt. opt last on the command line, with no value after it,
 * is a usage error: "error: OPT needs a value" is printed and the process exits with
 * CLI_EXIT_USAGE, so that no caller can take the missing value for an empty one. */
const char *cli_option_value(int argc, char **argv, int *i, const char *opt);

/* Strict integer parse: the whole string, within [lo, hi]. */
bool cli_parse_int(const char *s, long lo, long hi, long *out);

/* Strict number parse: the whole string, finite (no nan, inf or overflow), within [lo, hi]. */
bool cli_parse_float(const char *s, double lo, double hi, double *out);

/* The value v of option opt as a whole number in [lo, hi], or false after printing one line that
 * names opt and says what is wrong: not a number, too large (with the maximum), too small (with
 * the minimum). */
bool cli_option_int(const char *opt, const char *v, long lo, long hi, long *out);

/* The value v of option opt as a finite number in [lo, hi], or false after printing one line
 * naming opt and the range. */
bool cli_option_float(const char *opt, const char *v, double lo, double hi, double *out);

/* Seconds on the monotonic clock, for the timings tools print. */
double cli_now(void);

#endif

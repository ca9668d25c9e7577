/* plugin_trial.h — runs the first load of a plugin file in a forked child, so that a crash, an
 * exit or a hang there costs the host nothing but a rejected record. */
#ifndef APR_CORE_PLUGIN_TRIAL_H
#define APR_CORE_PLUGIN_TRIAL_H

#include <stdbool.h>
#include <stddef.h>

/* Stages the child announces before each step, so that a death is reported with where it happened. */
#define PLUGIN_TRIAL_LOAD 'L'   /* dlopen: the plugin's constructors and its libraries' */
#define PLUGIN_TRIAL_ENTRY 'E'  /* apr_plugin_entry */
#define PLUGIN_TRIAL_PROBE 'P'  /* probe */
#define PLUGIN_TRIAL_DEVICE 'Q' /* probe_device */

/* What the child does: load and probe the plugin exactly as the host would, calling
 * plugin_trial_stage before each step and plugin_trial_name once the plugin's name is known. */
typedef void (*plugin_trial_fn)(void *ctx);

/* Runs fn(ctx) in a child whose stdin, stdout and stderr are /dev/null. Returns true when the child
 * finished; false with why filled ("killed by SIGSEGV (Segmentation fault) in probe", "called
 * exit(0) while loading", "no answer within 10 s in probe") otherwise. *transient is set for a verdict
 * not to remember: a timeout (a loaded machine can slow a good plugin) or a failed fork.
 * name receives the name the child reported ("" if none). */
bool plugin_trial_run(plugin_trial_fn fn, void *ctx, double timeout_s, char *name, size_t name_size, char *why,
                      size_t why_size, bool *transient);

/* Called by fn in the child; no-ops in the host. */
void plugin_trial_stage(char stage);
void plugin_trial_name(const char *name);

/* Seconds a trial may take: APR_PLUGIN_TIMEOUT when set (and the process is not privileged), else 10. */
double plugin_trial_timeout(void);

#endif

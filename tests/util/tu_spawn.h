/* tu_spawn.h — starts a built tool with extra environment variables and watches it stop, die of a signal or exit. */
#ifndef TU_SPAWN_H
#define TU_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct tu_proc {
    pid_t pid;
    int status;         /* the last waitpid status */
    char log[64];       /* a temporary file holding the child's stdout and stderr */
} tu_proc;

/* <build>/bin/NAME, the tools beside this test binary. */
const char *tu_tool(const char *name);

/* Starts bin with args (NULL-terminated) and env ("NAME=value" strings added to the environment,
 * NULL-terminated, may be NULL). The child gets the default action for SIGINT, SIGTERM and SIGHUP,
 * no blocked signals, stdin from /dev/null, and an alarm of alarm_s seconds, so that a tool that
 * hangs dies of SIGALRM rather than outliving the test. A bin that cannot be executed here (an
 * aarch64 build under qemu-user) skips the test. */
tu_proc tu_spawn(const char *bin, const char *const *args, const char *const *env, unsigned alarm_s);

/* Waits until the child stops (true) or ends (false); the status is in p->status. */
bool tu_proc_wait(tu_proc *p);

/* The child's stdout and stderr so far (malloc'd); removes the log when the child has ended. */
char *tu_proc_output(tu_proc *p);

#endif

/* tu_spawn.c — starts a built tool with extra environment variables and watches it stop, die of a signal or exit. */
#include "util/tu_spawn.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/tu_paths.h"

const char *tu_tool(const char *name) {
    static __thread char buf[4][PATH_MAX + 64];
    static __thread int k;
    char *p = buf[k++ & 3];
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tu_test_plugins_dir()); /* <build>/tests/plugins */
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
    }
    snprintf(p, PATH_MAX + 64, "%s/bin/%s", dir, name);
    return p;
}

tu_proc tu_spawn(const char *bin, const char *const *args, const char *const *env, unsigned alarm_s) {
    cr_assert(access(bin, X_OK) == 0, "%s is missing (make builds it)", bin);
    tu_proc p = {0};
    snprintf(p.log, sizeof p.log, "/tmp/apr-test-spawn-XXXXXX");
    int log = mkstemp(p.log);
    cr_assert(log >= 0, "mkstemp");
    const char *argv[40] = {bin};
    int argc = 1;
    for (; args[argc - 1] && argc < 39; argc++) argv[argc] = args[argc - 1];
    argv[argc] = NULL;
    int report[2]; /* the child writes execv's errno here; a successful exec closes it */
    cr_assert(pipe2(report, O_CLOEXEC) == 0, "pipe2");
    fflush(NULL);
    p.pid = fork();
    cr_assert(p.pid >= 0, "fork failed");
    if (p.pid == 0) {
        close(report[0]);
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0) _exit(126);
        for (size_t i = 0; env && env[i]; i++) putenv((char *)env[i]);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        alarm(alarm_s);
        execv(bin, (char *const *)argv);
        int e = errno;
        if (write(report[1], &e, sizeof e) != (ssize_t)sizeof e) _exit(126);
        _exit(127);
    }
    close(log);
    close(report[1]);
    int e = 0;
    ssize_t got = read(report[0], &e, sizeof e);
    close(report[0]);
    if (got == (ssize_t)sizeof e) {
        waitpid(p.pid, &p.status, 0);
        unlink(p.log);
        /* an aarch64 build under qemu-user cannot exec another aarch64 program without binfmt_misc */
        cr_skip_test("%s cannot be started here: %s", bin, strerror(e));
    }
    return p;
}

bool tu_proc_wait(tu_proc *p) {
    cr_assert(waitpid(p->pid, &p->status, WUNTRACED) == p->pid, "waitpid");
    return WIFSTOPPED(p->status);
}

char *tu_proc_output(tu_proc *p) {
    char *s = tu_read_file(p->log, NULL);
    if (!WIFSTOPPED(p->status)) unlink(p->log);
    return s;
}

/* tu_run.c — runs a built tool from a test and captures its exit status, stdout and stderr. */
#include "tu_run.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static char *tu_run_slurp(FILE *fp) {
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    cr_assert(buf);
    size_t got = n > 0 ? fread(buf, 1, (size_t)n, fp) : 0;
    buf[got] = 0;
    fclose(fp);
    return buf;
}

tu_run_result tu_run(const char *bin, const char *input, const char *const *args, long fsize_limit) {
    cr_assert(access(bin, X_OK) == 0, "%s is missing (make builds it)", bin);
    FILE *in = tmpfile(), *out = tmpfile(), *err = tmpfile();
    cr_assert(in && out && err, "tmpfile failed");
    if (input) fputs(input, in);
    fflush(in);
    rewind(in);
    const char *argv[40] = {bin};
    int argc = 1;
    for (; args[argc - 1] && argc < 39; argc++) argv[argc] = args[argc - 1];
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        dup2(fileno(in), 0);
        dup2(fileno(out), 1);
        dup2(fileno(err), 2);
        if (fsize_limit > 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(126);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    fclose(in);
    tu_run_result r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, tu_run_slurp(out), tu_run_slurp(err)};
    return r;
}

void tu_run_free(tu_run_result *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

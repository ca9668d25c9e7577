/* plugin_trial.c — a plugin's first load, tried in a forked child that reports each stage on a pipe. */
#include "plugin_trial.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The child's end of the report pipe; -1 in the host, where the stage calls do nothing. */
static int trial_fd = -1;

static void trial_write(const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(trial_fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        buf += w;
        n -= (size_t)w;
    }
}

void plugin_trial_stage(char stage) {
    if (trial_fd >= 0) trial_write(&stage, 1);
}

void plugin_trial_name(const char *name) {
    if (trial_fd < 0) return;
    char line[80];
    int n = snprintf(line, sizeof line, "N%.64s\n", name);
    for (int i = 1; i < n - 1; i++)
        if (line[i] == '\n') line[i] = '?';
    trial_write(line, (size_t)n);
}

/* Runs first among the exit handlers (registered last): reports exit(status) and leaves before the
 * host's own handlers (stdio flushes, a test runner's reports) run in this copy of the process. */
static void trial_on_exit(int status, void *arg) {
    (void)arg;
    char line[32];
    int n = snprintf(line, sizeof line, "X%d\n", status);
    trial_write(line, (size_t)n);
    _exit(126);
}

static _Noreturn void trial_child(int fd, plugin_trial_fn fn, void *ctx) {
    trial_fd = fd;
    /* die by the signal itself, without a core file; the raw call because a sanitizer ignores
     * signal() for the signals it catches and would turn the crash into an exit */
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS, SIGPIPE, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        unsigned long kdefault[4] = {0}; /* the kernel's struct sigaction: handler SIG_DFL, no flags, empty mask */
        syscall(SYS_rt_sigaction, sigs[i], kdefault, NULL, sizeof(unsigned long));
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    on_exit(trial_on_exit, NULL);
    fn(ctx);
    trial_write("K", 1);
    _exit(0);
}

static double trial_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *trial_stage_words(char stage) {
    switch (stage) {
    case PLUGIN_TRIAL_LOAD: return "while loading (its constructors or a library it needs)";
    case PLUGIN_TRIAL_ENTRY: return "in apr_plugin_entry";
    case PLUGIN_TRIAL_PROBE: return "in probe";
    case PLUGIN_TRIAL_DEVICE: return "in probe_device";
    default: return "before loading";
    }
}

/* Reads the child's reports until it closes the pipe or the deadline passes; false on timeout. */
static bool trial_read(int fd, double deadline, char *stage, char *name, size_t name_size, bool *done,
                       int *exit_called) {
    char line[128];
    size_t len = 0;
    bool in_line = false;
    for (;;) {
        double left = deadline - trial_now();
        if (left <= 0) return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0; /* an error ends the reading; 0 is the timeout */
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return true;
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (in_line) {
                if (c != '\n') {
                    if (len < sizeof line - 1) line[len++] = c;
                    continue;
                }
                line[len] = 0;
                in_line = false;
                if (line[0] == 'N') snprintf(name, name_size, "%s", line + 1);
                else if (line[0] == 'X') *exit_called = atoi(line + 1);
            } else if (c == 'N' || c == 'X') {
                in_line = true;
                line[0] = c;
                len = 1;
            } else if (c == 'K') {
                *done = true;
            } else {
                *stage = c;
            }
        }
    }
}

bool plugin_trial_run(plugin_trial_fn fn, void *ctx, double timeout_s, char *name, size_t name_size, char *why,
                      size_t why_size, bool *transient) {
    name[0] = 0;
    *transient = false;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(why, why_size, "cannot try it in a child process: pipe: %s", strerror(errno));
        *transient = true;
        return false;
    }
    fflush(NULL); /* nothing buffered is written twice should the child flush */
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_size, "cannot try it in a child process: fork: %s", strerror(errno));
        *transient = true;
        close(pfd[0]);
        close(pfd[1]);
        return false;
    }
    if (pid == 0) {
        close(pfd[0]);
        trial_child(pfd[1], fn, ctx);
    }
    close(pfd[1]);
    double deadline = trial_now() + timeout_s;
    char stage = 0;
    bool done = false;
    int exit_called = -1;
    bool answered = trial_read(pfd[0], deadline, &stage, name, name_size, &done, &exit_called);
    close(pfd[0]);
    int status = 0;
    pid_t w = 0;
    while (answered && (w = waitpid(pid, &status, WNOHANG)) == 0 && trial_now() < deadline) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    if (w == 0) { /* still running at the deadline */
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (done) return true; /* it finished its work and then lingered */
        *transient = true;
        snprintf(why, why_size, "no answer within %g s %s when tried in a child process", timeout_s,
                 trial_stage_words(stage));
        return false;
    }
    if (done && exit_called < 0) return true;
    if (exit_called >= 0)
        snprintf(why, why_size, "called exit(%d) %s when tried in a child process", exit_called, trial_stage_words(stage));
    else if (w > 0 && WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        snprintf(why, why_size, "killed by SIG%s (%s) %s when tried in a child process", abbrev ? abbrev : "?",
                 strsignal(sig), trial_stage_words(stage));
    } else if (w > 0 && WIFEXITED(status))
        snprintf(why, why_size, "exited with status %d %s when tried in a child process", WEXITSTATUS(status),
                 trial_stage_words(stage));
    else
        snprintf(why, why_size, "ended %s when tried in a child process (status unknown)", trial_stage_words(stage));
    return false;
}

double plugin_trial_timeout(void) {
    const char *env = secure_getenv("APR_PLUGIN_TIMEOUT");
    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (*end == 0 && v > 0 && v <= 3600) return v;
    }
    return 10.0;
}

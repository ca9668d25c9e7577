/* watchdog.c — ends the run with a message when one benchmark hangs, instead of stalling forever.
 *
 * SIGALRM's handler may only use async-signal-safe calls, so the message is composed when the
 * timer is armed and the handler just write()s it and _exit()s. */
#include "watchdog.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char watchdog_msg[512];
static size_t watchdog_len;

static void watchdog_fire(int sig) {
    (void)sig;
    ssize_t w = write(STDERR_FILENO, watchdog_msg, watchdog_len);
    (void)w;
    _exit(1);
}

void watchdog_arm(unsigned seconds, const char *what) {
    static int installed;
    if (!installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = watchdog_fire;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
        installed = 1;
    }
    alarm(0);
    int n = snprintf(watchdog_msg, sizeof watchdog_msg,
                     "\napr-bench: error: %s did not finish within %u s (hung?); stopping (--timeout)\n", what, seconds);
    watchdog_len = n < 0 ? 0 : (size_t)n < sizeof watchdog_msg ? (size_t)n : sizeof watchdog_msg - 1;
    alarm(seconds);
}

void watchdog_disarm(void) { alarm(0); }

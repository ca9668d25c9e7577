/* cli_signal.c — a signal handler that removes a GGUF write's temporary file, then re-raises the signal. */
#include "common/cli_signal.h"

#include <signal.h>
#include <stddef.h>

#include "gguf.h"

static void cli_signal_on(int sig) {
    apr_gguf_writer_unlink_temps();
    signal(sig, SIG_DFL);
    raise(sig); /* pending until the handler returns, then the default action: the exit status tells of the signal */
}

void cli_signal_cleanup_temps(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa = {0}, old;
    sa.sa_handler = cli_signal_on;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
}

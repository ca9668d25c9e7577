/* badplug.h — what the misbehaving test plugins share: the minimal plugin of tests/plugins, a crash
 * the compiler cannot turn into a trap, and a log line per constructor run (APR_TEST_TRIAL_LOG). */
#ifndef APR_BADPLUG_H
#define APR_BADPLUG_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "../plugins/testplug.h"

/* A store through an address the compiler cannot see is NULL, so it stays a real SIGSEGV. */
__attribute__((unused)) static void badplug_segv(void) {
    volatile uintptr_t addr = 0;
    *(volatile int *)addr = 1;
}

/* Appends one byte to the file APR_TEST_TRIAL_LOG names, so a test can count how often the
 * plugin's code ran (a crashing plugin runs only in trials). */
__attribute__((unused)) static void badplug_log(void) {
    const char *log = getenv("APR_TEST_TRIAL_LOG");
    if (!log) return;
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (write(fd, "x", 1) != 1) {}
    close(fd);
}

/* An entry handing out table (the plugin's own, or NULL for the crashing ones never reached). */
#define BADPLUG_ENTRY(table_ptr)                                                                      \
    TESTPLUG_EXPORT apr_status apr_plugin_entry(uint32_t core_abi, const apr_plugin **out, char *err, \
                                                size_t n) {                                          \
        (void)core_abi; (void)err; (void)n;                                                          \
        *out = (table_ptr);                                                                          \
        return APR_OK;                                                                               \
    }

#endif

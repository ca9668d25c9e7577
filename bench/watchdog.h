/* watchdog.h — ends the run with a message when one benchmark hangs, instead of stalling forever. */
#ifndef BENCH_WATCHDOG_H
#define BENCH_WATCHDOG_H

/* Arms (or re-arms) a timer of the given seconds (0 = none) for the benchmark described by what.
 * When it fires, the message and "did not finish" go to stderr and the process exits with 1. */
void watchdog_arm(unsigned seconds, const char *what);
void watchdog_disarm(void);

#endif

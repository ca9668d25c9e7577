/* timing.h — monotonic clock and the median of a set of samples. */
#ifndef BENCH_TIMING_H
#define BENCH_TIMING_H

/* Seconds on a monotonic clock. */
double timing_now(void);

/* Median of n samples (n >= 1); sorts v in place. Even n: the mean of the middle two. */
double timing_median(double *v, int n);

/* Smallest of n samples. */
double timing_min(const double *v, int n);

/* Sleeps for the given seconds (lets other libraries' spinning worker threads go idle). */
void timing_sleep(double seconds);

#endif

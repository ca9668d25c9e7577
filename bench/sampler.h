/* sampler.h — the timing protocol: warm up, size each sample, take the median of the samples. */
#ifndef BENCH_SAMPLER_H
#define BENCH_SAMPLER_H

#include <stddef.h>

/* Runs the measured operation once on operand copy `copy`; returns 0, or -1 with a message. */
typedef int (*sampler_fn)(void *ctx, int copy, char *err, size_t err_size);

typedef struct sampler_opts {
    int repeat;            /* samples to take */
    double min_sample_s;   /* a sample repeats the run until it lasts at least this long */
    double slow_run_s;     /* a single run longer than this takes at most 3 samples */
} sampler_opts;

typedef struct sampler_result {
    double median_s;       /* median over the samples of the time per run */
    double min_s;          /* fastest sample, per run */
    int samples;           /* samples taken */
    int runs_per_sample;   /* runs timed together in one sample (cycling the copies) */
} sampler_result;

/* One warm-up pass over every copy (also the calibration), then the samples. Copies are used in
 * turn so that data larger than the caches is streamed from memory on every run. */
int sampler_run(sampler_fn fn, void *ctx, int copies, const sampler_opts *o, sampler_result *r, char *err,
                size_t err_size);

#endif

/* sampler.c — the timing protocol: warm up, size each sample, take the median of the samples. */
#include "sampler.h"

#include "timing.h"

#define SAMPLER_MAX 1000

int sampler_run(sampler_fn fn, void *ctx, int copies, const sampler_opts *o, sampler_result *r, char *err,
                size_t err_size) {
    /* warm-up: touches every copy once (first runs allocate, fault pages, spin up threads) */
    double t0 = timing_now();
    for (int c = 0; c < copies; c++)
        if (fn(ctx, c, err, err_size)) return -1;
    double per_run = (timing_now() - t0) / copies;

    int rounds = 1; /* passes over all copies per sample */
    if (per_run * copies < o->min_sample_s)
        rounds = (int)(o->min_sample_s / (per_run * copies > 1e-7 ? per_run * copies : 1e-7)) + 1;
    if (rounds > 100000) rounds = 100000;
    int n = o->repeat;
    if (per_run > o->slow_run_s && n > 3) n = 3;
    if (n > SAMPLER_MAX) n = SAMPLER_MAX;
    if (n < 1) n = 1;

    double v[SAMPLER_MAX];
    for (int s = 0; s < n; s++) {
        double a = timing_now();
        for (int k = 0; k < rounds; k++)
            for (int c = 0; c < copies; c++)
                if (fn(ctx, c, err, err_size)) return -1;
        v[s] = (timing_now() - a) / (rounds * copies);
    }
    r->samples = n;
    r->runs_per_sample = rounds * copies;
    r->min_s = timing_min(v, n);
    r->median_s = timing_median(v, n);
    return 0;
}

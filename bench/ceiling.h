/* ceiling.h — the machine's ceilings, measured in the same run: read bandwidth and peak f32 FMA rate. */
#ifndef BENCH_CEILING_H
#define BENCH_CEILING_H

#include <stddef.h>

typedef struct ceiling {
    int threads;          /* threads that ran the measurement */
    double read_gbps;     /* best sustained read bandwidth over the array, 1e9 bytes/s */
    double fma_gflops;    /* best f32 FMA rate, 1e9 flops/s (an FMA counts as two) */
} ceiling;

/* Measures ceilings for each of the n thread counts into out[0..n-1]: read bandwidth summing an
 * array of array_bytes (split evenly among the threads, best of passes) and FMA rate (register
 * chains, best of passes, each pass about pass_seconds). Returns 0, or -1 with a message in err. */
int ceiling_measure(const int *threads, int n, size_t array_bytes, int passes, double pass_seconds,
                    ceiling *out, char *err, size_t err_size);

#endif

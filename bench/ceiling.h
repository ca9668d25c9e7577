/* ceiling.h — the machine's ceilings, measured in the same run: read bandwidth and peak f32 FMA rate. */
#ifndef BENCH_CEILING_H
#define BENCH_CEILING_H

#include <stddef.h>

typedef struct ceiling {
    int threads;          /* threads that ran the measurement */
    double read_gbps;     /* best sustained read bandwidth over the array, 1e9 bytes/s */
    double fma_gflops;    /* best f32 FMA rate, 1e9 flops/s (an FMA counts as two) */
} ceiling;

/* The array the read bandwidth is measured over, kept so that a measurement can be repeated next
 * to the work it is compared with (the model benchmark measures it before every decode sample:
 * on a shared host the bandwidth drifts by a third within a minute). */
typedef struct ceiling_reader ceiling_reader;

/* Allocates array_bytes and first-touches it from max_threads threads. Returns 0, or -1 with a
 * message in err. */
int ceiling_reader_new(size_t array_bytes, int max_threads, ceiling_reader **out, char *err, size_t err_size);

/* Read bandwidth in 1e9 bytes/s: threads (1..max_threads) sum the array split evenly among
 * them, best of passes. Returns -1 with a message in err when threads cannot be started. */
double ceiling_reader_gbps(ceiling_reader *r, int threads, int passes, char *err, size_t err_size);

void ceiling_reader_free(ceiling_reader *r);

/* Measures ceilings for each of the n thread counts into out[0..n-1]: read bandwidth over the
 * reader's array (best of passes) and FMA rate (register chains, best of passes, each pass about
 * pass_seconds). Returns 0, or -1 with a message in err. */
int ceiling_measure(ceiling_reader *reader, const int *threads, int n, int passes, double pass_seconds,
                    ceiling *out, char *err, size_t err_size);

/* The FMA rate alone, as ceiling_measure measures it, for threads threads (best of passes, at most
 * 3, each about pass_seconds): for measuring it again next to the work it is compared with.
 * Returns 1e9 flops/s, or -1 with a message in err. */
double ceiling_fma_gflops(int threads, int passes, double pass_seconds, char *err, size_t err_size);

#endif

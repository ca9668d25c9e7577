/* ceiling.c — the machine's ceilings, measured in the same run: read bandwidth and peak f32 FMA rate.
 *
 * Each measurement runs on pthreads started together at a barrier; thread 0 reads the clock after
 * the start barrier and again after the end barrier, so a pass takes as long as its slowest thread. */
#include "ceiling.h"

#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostbuf.h"
#include "simd.h"
#include "timing.h"

typedef enum ceiling_job { CEILING_TOUCH, CEILING_READ, CEILING_FMA } ceiling_job;

typedef struct ceiling_shared {
    ceiling_job job;
    float *array;            /* CEILING_TOUCH / CEILING_READ */
    size_t per_thread;       /* floats per thread, a multiple of 64 */
    uint64_t fma_iters;      /* CEILING_FMA: rounds per thread */
    int passes;
    pthread_barrier_t barrier;
    pthread_mutex_t gate_lock;   /* the gate: workers wait here until every thread exists */
    pthread_cond_t gate_cond;
    int gate;                    /* 0 closed, 1 go, -1 abort */
    double best_seconds;     /* written by thread 0 */
    double fma_flops;        /* flops of one thread's pass, written by thread 0 */
    volatile float sink;     /* keeps the results alive */
} ceiling_shared;

typedef struct ceiling_worker {
    ceiling_shared *sh;
    int index;
} ceiling_worker;

static void *ceiling_thread(void *arg) {
    ceiling_worker *w = arg;
    ceiling_shared *sh = w->sh;
    if (w->index > 0) {
        pthread_mutex_lock(&sh->gate_lock);
        while (!sh->gate) pthread_cond_wait(&sh->gate_cond, &sh->gate_lock);
        int go = sh->gate > 0;
        pthread_mutex_unlock(&sh->gate_lock);
        if (!go) return NULL;
    }
    float *slice = sh->array ? sh->array + (size_t)w->index * sh->per_thread : NULL;
    if (sh->job == CEILING_TOUCH) { /* first touch by the threads that will read it */
        for (size_t i = 0; i < sh->per_thread; i++) slice[i] = (float)(i & 1023) * 1e-3f;
        return NULL;
    }
    double best = 1e30, flops = 0;
    for (int p = 0; p < sh->passes; p++) {
        pthread_barrier_wait(&sh->barrier);
        double t0 = timing_now();
        float r;
        if (sh->job == CEILING_READ) r = simd_sum_f32(slice, sh->per_thread);
        else r = simd_fma_chains(sh->fma_iters, &flops);
        pthread_barrier_wait(&sh->barrier);
        double dt = timing_now() - t0;
        if (dt < best) best = dt;
        if (r == 12345.678f) sh->sink = r;
    }
    if (w->index == 0) {
        sh->best_seconds = best;
        sh->fma_flops = flops;
    }
    return NULL;
}

/* Runs the job on n threads (the caller's thread is worker 0). */
static int ceiling_run(ceiling_shared *sh, int n, char *err, size_t err_size) {
    pthread_t tid[n];
    ceiling_worker w[n];
    if (pthread_barrier_init(&sh->barrier, NULL, (unsigned)n)) {
        snprintf(err, err_size, "pthread_barrier_init failed");
        return -1;
    }
    pthread_mutex_init(&sh->gate_lock, NULL);
    pthread_cond_init(&sh->gate_cond, NULL);
    sh->gate = 0;
    int started = 1;
    for (int i = 0; i < n; i++) w[i] = (ceiling_worker){.sh = sh, .index = i};
    for (; started < n; started++)
        if (pthread_create(&tid[started], NULL, ceiling_thread, &w[started])) break;
    pthread_mutex_lock(&sh->gate_lock);
    sh->gate = started == n ? 1 : -1;
    pthread_cond_broadcast(&sh->gate_cond);
    pthread_mutex_unlock(&sh->gate_lock);
    if (started == n) ceiling_thread(&w[0]);
    else snprintf(err, err_size, "could not start %d threads (started %d)", n, started);
    for (int i = 1; i < started; i++) pthread_join(tid[i], NULL);
    pthread_cond_destroy(&sh->gate_cond);
    pthread_mutex_destroy(&sh->gate_lock);
    pthread_barrier_destroy(&sh->barrier);
    return started == n ? 0 : -1;
}

struct ceiling_reader {
    float *array;        /* n_floats floats, first touched by max_threads threads */
    size_t n_floats;     /* a multiple of 64 * max_threads */
    int max_threads;
};

int ceiling_reader_new(size_t array_bytes, int max_threads, ceiling_reader **out, char *err, size_t err_size) {
    *out = NULL;
    ceiling_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    r->max_threads = max_threads < 1 ? 1 : max_threads;
    r->n_floats = array_bytes / sizeof(float) / 64 / (size_t)r->max_threads * 64 * (size_t)r->max_threads;
    r->array = hostbuf_alloc(r->n_floats * sizeof(float));
    if (!r->array) {
        snprintf(err, err_size, "cannot allocate %zu MiB for the bandwidth array", array_bytes >> 20);
        free(r);
        return -1;
    }
    ceiling_shared sh = {.job = CEILING_TOUCH, .array = r->array, .per_thread = r->n_floats / (size_t)r->max_threads, .passes = 1};
    if (ceiling_run(&sh, r->max_threads, err, err_size)) {
        ceiling_reader_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

double ceiling_reader_gbps(ceiling_reader *r, int threads, int passes, char *err, size_t err_size) {
    assert(threads >= 1 && threads <= r->max_threads && passes >= 1);
    ceiling_shared sh = {.job = CEILING_READ, .array = r->array, .per_thread = r->n_floats / (size_t)threads / 64 * 64,
                         .passes = passes};
    if (ceiling_run(&sh, threads, err, err_size)) return -1;
    return (double)(sh.per_thread * (size_t)threads * sizeof(float)) / sh.best_seconds * 1e-9;
}

void ceiling_reader_free(ceiling_reader *r) {
    if (!r) return;
    hostbuf_free(r->array, r->n_floats * sizeof(float));
    free(r);
}

/* FMA rounds for about pass_seconds, from a short single-thread calibration; 0 when threads cannot start. */
static uint64_t ceiling_fma_iters(double pass_seconds, char *err, size_t err_size) {
    ceiling_shared sh = {.job = CEILING_FMA, .fma_iters = 1u << 18, .passes = 2};
    if (ceiling_run(&sh, 1, err, err_size)) return 0;
    double rounds_per_s = (double)sh.fma_iters / (sh.best_seconds > 1e-6 ? sh.best_seconds : 1e-6);
    return (uint64_t)(rounds_per_s * pass_seconds) + 1;
}

/* The FMA rate of threads threads running fma_iters rounds each, best of passes (at most 3). */
static double ceiling_fma_run(int threads, uint64_t fma_iters, int passes, char *err, size_t err_size) {
    ceiling_shared sh = {.job = CEILING_FMA, .fma_iters = fma_iters, .passes = passes < 3 ? passes : 3};
    if (ceiling_run(&sh, threads, err, err_size)) return -1;
    return sh.fma_flops * threads / sh.best_seconds * 1e-9;
}

int ceiling_measure(ceiling_reader *reader, const int *threads, int n, int passes, double pass_seconds, ceiling *out,
                    char *err, size_t err_size) {
    uint64_t fma_iters = ceiling_fma_iters(pass_seconds, err, err_size);
    if (!fma_iters) return -1;
    for (int i = 0; i < n; i++) {
        int t = threads[i];
        out[i].threads = t;
        out[i].read_gbps = ceiling_reader_gbps(reader, t, passes, err, err_size);
        if (out[i].read_gbps < 0) return -1;
        out[i].fma_gflops = ceiling_fma_run(t, fma_iters, passes, err, err_size);
        if (out[i].fma_gflops < 0) return -1;
    }
    return 0;
}

double ceiling_fma_gflops(int threads, int passes, double pass_seconds, char *err, size_t err_size) {
    uint64_t fma_iters = ceiling_fma_iters(pass_seconds, err, err_size);
    return fma_iters ? ceiling_fma_run(threads, fma_iters, passes, err, err_size) : -1;
}

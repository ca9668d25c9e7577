/* trainbench.c — training step speed of a whole model (apr-bench --train): tokens/s and the matmul
 * rate against the FMA peak measured in the same run.
 *
 * For each backend and thread count: the backend opened for that count, a trainer built on it
 * (apr_llama_train_new: the base placed, the step / norm / update plans made), one warm-up step (not
 * counted), then o->steps timed calls of apr_llama_train_step, each over its own window of random
 * tokens (a fixed seed, so every run trains on the same windows). The FLOPs are those of
 * trainflops.h; the executor has no per-node timing, so the rate covers the whole step. */
#include "trainbench.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "llama_train.h"
#include "simd.h"
#include "timing.h"
#include "trainflops.h"
#include "watchdog.h"

#define TRAINBENCH_SEED 0x5eedu
#define TRAINBENCH_LR 1e-4f

static const char *const trainbench_methods[] = {"lora", "qlora", "full"};

static bool trainbench_is_float(uint32_t dt) { return dt == APR_F32 || dt == APR_F16 || dt == APR_BF16; }

static const char *trainbench_dtype(uint32_t dt) {
    const char *n = apr_dtype_name((apr_dtype)dt);
    return n ? n : "?";
}

int trainbench_check(const opts *o, const struct llama_model *m) {
    if (o->method == LLAMA_TRAIN_FULL) return 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const llama_layer *L = &m->layers[l];
        const gguf_tensor *w[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (int b = 0; b < 7; b++) {
            const bool fl = trainbench_is_float(w[b]->dtype);
            if (o->method == LLAMA_TRAIN_LORA && !fl) {
                fprintf(stderr, "error: %s: %s is %s: LoRA trains over a float base; a quantized base is --method qlora\n",
                        o->train, w[b]->name, trainbench_dtype(w[b]->dtype));
                return -1;
            }
            if (o->method == LLAMA_TRAIN_QLORA && fl && l == 0 && b == 0) {
                fprintf(stderr, "error: %s: %s is %s: QLoRA trains over a quantized base (apr-quantize it first); a float "
                        "base is --method lora\n", o->train, w[b]->name, trainbench_dtype(w[b]->dtype));
                return -1;
            }
        }
    }
    return 0;
}

static void trainbench_targets(unsigned bits, char *buf, size_t size) {
    static const char *const names[] = {"q", "k", "v", "o", "gate", "up", "down"};
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < 7; i++)
        if (bits >> i & 1u) {
            int w = snprintf(buf + n, size - n, "%s%s", n ? "," : "", names[i]);
            if (w < 0 || (size_t)w >= size - n) break;
            n += (size_t)w;
        }
}

static llama_train_params trainbench_params(const opts *o) {
    llama_train_params p = apr_llama_train_defaults();
    p.method = (llama_train_method)o->method;
    p.lora_rank = o->lora_rank;
    p.lora_alpha = 2.0f * (float)o->lora_rank;
    p.lora_targets = o->lora_targets;
    p.seq_len = o->seq_len;
    p.n_seqs = 1;
    return p;
}

/* splitmix64: the token windows. */
static uint64_t trainbench_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct trainbench_result {
    double build_s;                  /* apr_llama_train_new */
    double warmup_s;
    double step_s, step_min_s;       /* median and fastest of the timed steps */
    double *step_times;              /* [o->steps], in the order run */
    double loss_first, loss_last;    /* the first and last timed steps' */
    double peak_start;               /* FMA GFLOP/s at this thread count, measured at start-up */
    double *peaks;                   /* [o->steps + 1]: measured again right before each timed step and after the last */
    double peak;                     /* the highest of them all */
} trainbench_result;

/* The FMA peak at threads threads, as the start-up ceilings measure it. */
static double trainbench_peak(const opts *o, int threads, char *err, size_t err_size) {
    return ceiling_fma_gflops(threads, o->quick ? 3 : 5, o->quick ? 0.03 : 0.08, err, err_size);
}

/* One backend at one thread count. */
static int trainbench_measure(const opts *o, const llama_model *m, apr_backend *be, const char *what, int threads,
                              double peak_start, trainbench_result *r) {
    const int T = o->seq_len, V = m->hp.n_vocab;
    const llama_train_params p = trainbench_params(o);
    int32_t *ids = malloc(sizeof *ids * (size_t)T), *targets = malloc(sizeof *targets * (size_t)T);
    double *times = calloc((size_t)o->steps, sizeof *times);
    r->peaks = calloc((size_t)o->steps + 1, sizeof *r->peaks);
    llama_train *tr = NULL;
    apr_error e;
    char err[256];
    int rc = -1;
    if (!ids || !targets || !times || !r->peaks) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    r->peak_start = peak_start;
    char desc[300];
    snprintf(desc, sizeof desc, "building the trainer for %s", what);
    watchdog_arm((unsigned)o->timeout_s, desc);
    double t0 = timing_now();
    if (apr_llama_train_new(m, &p, &be, 1, &tr, &e) != APR_OK) {
        fprintf(stderr, "error: %s: %s\n", o->train, e.msg);
        goto out;
    }
    r->build_s = timing_now() - t0;
    fprintf(stderr, "apr-bench:   trainer built in %.1f s (%d trainable tensors)\n", r->build_s, apr_llama_train_count(tr));

    uint64_t rng = TRAINBENCH_SEED; /* the same windows for every backend and thread count */
    for (int s = 0; s <= o->steps; s++) {
        /* the peak right before each timed step, at its thread count: on a shared host it swings by
         * half within a minute, and the highest of many short measurements is the nearest to the
         * machine's (not counted in any step's time) */
        if (s && (r->peaks[s - 1] = trainbench_peak(o, threads, err, sizeof err)) < 0) {
            fprintf(stderr, "error: FMA peak: %s\n", err);
            goto out;
        }
        /* a window of T + 1 random tokens: ids its first T, targets its last T */
        int32_t next = (int32_t)(trainbench_rand(&rng) % (uint64_t)V);
        for (int i = 0; i < T; i++) {
            ids[i] = next;
            targets[i] = next = (int32_t)(trainbench_rand(&rng) % (uint64_t)V);
        }
        snprintf(desc, sizeof desc, "training step %d of %d on %s", s, o->steps, what);
        watchdog_arm((unsigned)o->timeout_s, desc);
        llama_train_result res;
        t0 = timing_now();
        apr_status st = apr_llama_train_step(tr, 1, ids, targets, TRAINBENCH_LR, &res, &e);
        const double dt = timing_now() - t0;
        watchdog_disarm();
        if (st != APR_OK) {
            fprintf(stderr, "error: training step %d: %s\n", s, e.msg);
            goto out;
        }
        fprintf(stderr, "apr-bench:   step %d/%d: %.2f s, %.2f tokens/s, loss %.4f, gradient norm %.3g%s\n", s, o->steps, dt,
                T / dt, res.loss, res.grad_norm, s ? "" : " (warm-up, not counted)");
        if (!s) {
            r->warmup_s = dt;
            continue;
        }
        times[s - 1] = dt;
        if (s == 1) r->loss_first = res.loss;
        r->loss_last = res.loss;
    }
    if ((r->peaks[o->steps] = trainbench_peak(o, threads, err, sizeof err)) < 0) {
        fprintf(stderr, "error: FMA peak: %s\n", err);
        goto out;
    }
    r->peak = r->peak_start;
    fprintf(stderr, "apr-bench:   FMA peak at %d thread(s): %.1f GFLOP/s at start-up; right before each step and after the last:",
            threads, r->peak_start);
    for (int i = 0; i <= o->steps; i++) {
        fprintf(stderr, " %.1f", r->peaks[i]);
        if (r->peaks[i] > r->peak) r->peak = r->peaks[i];
    }
    fprintf(stderr, "; the highest, %.1f, is the peak\n", r->peak);
    r->step_min_s = timing_min(times, o->steps);
    r->step_times = malloc(sizeof *times * (size_t)o->steps);
    if (!r->step_times) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    memcpy(r->step_times, times, sizeof *times * (size_t)o->steps);
    r->step_s = timing_median(times, o->steps);
    rc = 0;
out:
    watchdog_disarm();
    apr_llama_train_free(tr);
    free(ids);
    free(targets);
    free(times);
    return rc;
}

static void trainbench_header(const opts *o, const llama_model *m, const trainflops *f, double loadavg) {
    char targets[64];
    trainbench_targets(o->lora_targets, targets, sizeof targets);
    const double G = 1e-9;
    printf("model %s: %s, %d layers, width %d, %d heads (%d kv) of %d, ff %d, vocab %d; base %s (layer 0 attn_q), "
           "output %s\n", o->train, m->hp.arch, m->hp.n_layer, m->hp.n_embd, m->hp.n_head, m->hp.n_head_kv, m->hp.head_dim,
           m->hp.n_ff, m->hp.n_vocab, trainbench_dtype(m->layers[0].wq->dtype), trainbench_dtype(m->output->dtype));
    if (o->method == LLAMA_TRAIN_FULL)
        printf("training: full (every weight in f32)");
    else
        printf("training: %s, rank %d (alpha %d) on %s", trainbench_methods[o->method], o->lora_rank, 2 * o->lora_rank,
               targets);
    printf("; %d tokens per step (one window); AdamW; median of %d timed steps after a warm-up step\n", o->seq_len, o->steps);
    printf("matmul FLOPs per step: %.4g G = forward %.4g G (layers %.4g, output %.4g, LoRA %.4g; %d matmuls)\n"
           "  + backward dX %.4g G (%d matmuls on the gradient's path) + dW %.4g G (%d trainable weights)\n",
           trainflops_matmul(f) * G, (f->fwd_base + f->fwd_output + f->fwd_lora) * G, f->fwd_base * G, f->fwd_output * G,
           f->fwd_lora * G, f->n_fwd, f->bwd_dx * G, f->n_dx, f->bwd_dw * G, f->n_dw);
    printf("attention FLOPs per step, NOT in the matmul figures: forward %.4g G, backward %.4g G (%d layers)\n",
           f->attn_fwd * G, f->attn_bwd * G, f->n_attn_bwd);
    printf("GFLOP/s = matmul FLOPs / median step time. The executor exposes no per-node timing, so the time, and\n"
           "the ratio, cover the whole step (forward, backward, attention, norms, optimizer): a lower bound of\n"
           "the matmuls' own rate. 'of peak' = GFLOP/s / f32 FMA peak (%s kernels) at the same thread count,\n"
           "the highest of the start-up ceiling and measurements right before each timed step and after the last.\n",
           simd_isa());
    if (loadavg >= 0) printf("load average before the run: %.2f\n", loadavg);
    printf("\n%-12s %4s %9s %9s %9s %9s %8s %9s\n", "backend", "thr", "step s", "tok/s", "GFLOP/s", "peak", "of peak",
           "loss");
}

int trainbench_run(const opts *o, const struct llama_model *m, apr_registry *reg, const char *const *backends,
                   int n_backends, const ceiling *ceilings, int n_ceilings, double loadavg) {
    const llama_train_params p = trainbench_params(o);
    trainflops f;
    trainflops_count(m, &p, &f);
    const double flops = trainflops_matmul(&f);
    char targets[64];
    trainbench_targets(o->lora_targets, targets, sizeof targets);
    cJSON *rows = o->json ? cJSON_CreateArray() : NULL;
    if (!o->json) trainbench_header(o, m, &f, loadavg);
    int rc = 0;
    for (int b = 0; b < n_backends && !rc; b++)
        for (int t = 0; t < o->n_threads && !rc; t++) {
            const int threads = o->threads[t];
            double peak_start = 0;
            for (int i = 0; i < n_ceilings; i++)
                if (ceilings[i].threads == threads) peak_start = ceilings[i].fma_gflops;
            apr_backend *be;
            apr_error e;
            if (apr_backend_open(reg, backends[b], threads, &be, &e) != APR_OK) {
                fprintf(stderr, "error: %s\n", e.msg);
                rc = -1;
                break;
            }
            char what[256];
            snprintf(what, sizeof what, "%s on %s, %d thread%s", o->train, backends[b], threads, threads == 1 ? "" : "s");
            fprintf(stderr, "apr-bench: training %s\n", what);
            trainbench_result r = {0};
            rc = trainbench_measure(o, m, be, what, threads, peak_start, &r);
            apr_backend_close(be);
            if (rc) {
                free(r.step_times);
                free(r.peaks);
                break;
            }
            const double tps = o->seq_len / r.step_s, gflops = flops / r.step_s * 1e-9;
            const double of_peak = r.peak > 0 ? gflops / r.peak : 0;
            if (rows) {
                cJSON *row = cJSON_CreateObject();
                cJSON_AddStringToObject(row, "model", o->train);
                cJSON_AddStringToObject(row, "backend", backends[b]);
                cJSON_AddNumberToObject(row, "threads", threads);
                cJSON_AddStringToObject(row, "method", trainbench_methods[o->method]);
                cJSON_AddStringToObject(row, "base_dtype", trainbench_dtype(m->layers[0].wq->dtype));
                cJSON_AddNumberToObject(row, "seq_len", o->seq_len);
                cJSON_AddNumberToObject(row, "tokens_per_step", o->seq_len);
                if (o->method != LLAMA_TRAIN_FULL) {
                    cJSON_AddNumberToObject(row, "lora_rank", o->lora_rank);
                    cJSON_AddStringToObject(row, "lora_targets", targets);
                }
                cJSON_AddNumberToObject(row, "steps", o->steps);
                cJSON_AddNumberToObject(row, "build_s", r.build_s);
                cJSON_AddNumberToObject(row, "warmup_s", r.warmup_s);
                cJSON_AddNumberToObject(row, "step_s", r.step_s);
                cJSON_AddNumberToObject(row, "step_min_s", r.step_min_s);
                cJSON_AddItemToObject(row, "step_times_s", cJSON_CreateDoubleArray(r.step_times, o->steps));
                cJSON_AddNumberToObject(row, "tokens_per_s", tps);
                cJSON_AddNumberToObject(row, "matmul_gflop", flops * 1e-9);
                cJSON_AddNumberToObject(row, "matmul_gflop_forward", (f.fwd_base + f.fwd_output + f.fwd_lora) * 1e-9);
                cJSON_AddNumberToObject(row, "matmul_gflop_forward_lora", f.fwd_lora * 1e-9);
                cJSON_AddNumberToObject(row, "matmul_gflop_forward_output", f.fwd_output * 1e-9);
                cJSON_AddNumberToObject(row, "matmul_gflop_backward_dx", f.bwd_dx * 1e-9);
                cJSON_AddNumberToObject(row, "matmul_gflop_backward_dw", f.bwd_dw * 1e-9);
                cJSON_AddNumberToObject(row, "matmuls_forward", f.n_fwd);
                cJSON_AddNumberToObject(row, "matmuls_backward_dx", f.n_dx);
                cJSON_AddNumberToObject(row, "matmuls_backward_dw", f.n_dw);
                cJSON_AddNumberToObject(row, "attention_gflop_forward", f.attn_fwd * 1e-9);
                cJSON_AddNumberToObject(row, "attention_gflop_backward", f.attn_bwd * 1e-9);
                cJSON_AddNumberToObject(row, "gflops", gflops);
                cJSON_AddNumberToObject(row, "fma_peak_gflops", r.peak);
                cJSON_AddNumberToObject(row, "fma_peak_start_gflops", r.peak_start);
                cJSON_AddItemToObject(row, "fma_peak_samples_gflops", cJSON_CreateDoubleArray(r.peaks, o->steps + 1));
                cJSON_AddNumberToObject(row, "of_peak", of_peak);
                cJSON_AddStringToObject(row, "ratio_covers", "whole step");
                cJSON_AddNumberToObject(row, "loss_first", r.loss_first);
                cJSON_AddNumberToObject(row, "loss", r.loss_last);
                cJSON_AddItemToArray(rows, row);
            } else {
                printf("%-12s %4d %9.2f %9.2f %9.1f %9.1f %8.3f %9.4f\n", backends[b], threads, r.step_s, tps, gflops, r.peak,
                       of_peak, r.loss_last);
                fflush(stdout);
            }
            free(r.step_times);
            free(r.peaks);
        }
    if (rows) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "train_runs", rows);
        cJSON *cs = cJSON_AddArrayToObject(root, "ceilings"); /* measured at start-up */
        for (int i = 0; i < n_ceilings; i++) {
            cJSON *ci = cJSON_CreateObject();
            cJSON_AddNumberToObject(ci, "threads", ceilings[i].threads);
            cJSON_AddNumberToObject(ci, "read_gbps", ceilings[i].read_gbps);
            cJSON_AddNumberToObject(ci, "fma_gflops", ceilings[i].fma_gflops);
            cJSON_AddItemToArray(cs, ci);
        }
        cJSON_AddStringToObject(root, "ceiling_simd", simd_isa());
        if (loadavg >= 0) cJSON_AddNumberToObject(root, "loadavg", loadavg);
        if (!rc) {
            char *text = cJSON_Print(root);
            if (text) puts(text);
            free(text);
        }
        cJSON_Delete(root);
    }
    return rc;
}

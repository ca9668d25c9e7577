/* modelbench.c — prefill and decode speed of a whole model, as ratios to its bandwidth floor. */
#include "modelbench.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "llama.h"

static double modelbench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int modelbench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double modelbench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, modelbench_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Bytes of weights one decode step reads: every tensor once, except that of the embedding table
 * only one row is read, unless it doubles as the output matrix. */
static double modelbench_bytes_per_token(const gguf_file *f, const llama_model *m) {
    double total = 0;
    for (int64_t i = 0; i < apr_gguf_tensor_count(f); i++) total += (double)apr_gguf_tensor_at(f, i)->size;
    if (m->output != m->tok_embd) total -= (double)m->tok_embd->size * (1.0 - 1.0 / (double)m->hp.n_vocab);
    return total;
}

typedef struct modelbench_result {
    double prefill_tps, decode_tps;   /* medians, tokens/s */
    double read_gbps;                 /* median over the decode samples of the higher of the bandwidths measured just before and after, 1e9 bytes/s */
    double of_floor;                  /* median over the decode samples of tok/s / (its bandwidth / bytes per token) */
    int64_t packed_bytes;             /* weights the backend held packed while measuring */
} modelbench_result;

/* One backend at one thread count: repeat samples of prefill (n tokens into an empty cache) and
 * of decode (single tokens after a one-token prompt). Weights are packed once, before any sample,
 * unless --no-pack: the sessions then only take references, and no timing includes packing. */
static int modelbench_measure(const opts *o, const llama_model *m, apr_backend *be, ceiling_reader *reader, int threads,
                              double bytes, modelbench_result *out) {
    int n_ctx = (o->prefill > o->decode ? o->prefill : o->decode) + 2;
    int32_t *ids = malloc(sizeof *ids * (size_t)n_ctx);
    float *logits = malloc(sizeof *logits * (size_t)m->hp.n_vocab);
    double *pre = calloc((size_t)o->repeat + 1, sizeof *pre), *dec = calloc((size_t)o->repeat + 1, sizeof *dec);
    double *bw = calloc((size_t)o->repeat + 1, sizeof *bw), *frac = calloc((size_t)o->repeat + 1, sizeof *frac);
    int rc = -1;
    llama_pack *pack = NULL;
    llama_session_params sp = apr_llama_session_defaults(n_ctx);
    sp.pack_weights = !o->no_pack;
    apr_error e;
    char err[256];
    if (!ids || !logits || !pre || !dec || !bw || !frac) { fprintf(stderr, "error: out of memory\n"); goto out; }
    for (int i = 0; i < n_ctx; i++) ids[i] = (int32_t)((1 + 7919 * (int64_t)i) % m->hp.n_vocab);
    if (!o->no_pack && apr_llama_pack_new(m, be, &pack, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto out; }
    out->packed_bytes = apr_backend_packed_bytes(be);
    if (out->packed_bytes > 0)
        fprintf(stderr, "apr-bench:   %.1f MiB of weights packed for %s\n", (double)out->packed_bytes / (1 << 20),
                apr_backend_name(be));
    /* sample 0 is a warm-up (page cache, thread start-up) and is not counted */
    for (int s = 0; s <= o->repeat; s++) {
        llama_session *ses;
        if (apr_llama_session_new_ex(m, &sp, &be, 1, &ses, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto out; }
        double t0 = modelbench_now();
        apr_status st = apr_llama_session_eval(ses, ids, o->prefill, false, logits, &e);
        double t1 = modelbench_now();
        apr_llama_session_free(ses);
        if (st != APR_OK) { fprintf(stderr, "error: prefill: %s\n", e.msg); goto out; }
        if (s) pre[s - 1] = o->prefill / (t1 - t0);

        /* three passes over the array: ~0.1 s at 30 GB/s, next to the sample it is compared with */
        double gbps = ceiling_reader_gbps(reader, threads, 3, err, sizeof err);
        if (gbps <= 0) { fprintf(stderr, "error: read bandwidth: %s\n", err); goto out; }
        if (apr_llama_session_new_ex(m, &sp, &be, 1, &ses, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto out; }
        st = apr_llama_session_eval(ses, ids, 1, false, logits, &e);
        t0 = modelbench_now();
        for (int k = 1; st == APR_OK && k <= o->decode; k++) st = apr_llama_session_eval(ses, &ids[k], 1, false, logits, &e);
        t1 = modelbench_now();
        apr_llama_session_free(ses);
        if (st != APR_OK) { fprintf(stderr, "error: decode: %s\n", e.msg); goto out; }
        /* and again right after: on a shared host either one can catch a neighbour's burst, and the
         * higher of the two is the floor, so that a dip in one cannot flatter the ratio */
        const double after = ceiling_reader_gbps(reader, threads, 3, err, sizeof err);
        if (after <= 0) { fprintf(stderr, "error: read bandwidth: %s\n", err); goto out; }
        if (after > gbps) gbps = after;
        const double tps = o->decode / (t1 - t0), of_floor = tps / (gbps * 1e9 / bytes);
        if (s) {
            dec[s - 1] = tps;
            bw[s - 1] = gbps;
            frac[s - 1] = of_floor;
        }
        fprintf(stderr, "apr-bench:   sample %d/%d: decode %.2f tok/s, read %.1f GB/s (higher of just before and after): %.2f of its floor%s\n", s,
                o->repeat, tps, gbps, of_floor, s ? "" : " (warm-up, not counted)");
    }
    out->prefill_tps = modelbench_median(pre, o->repeat);
    out->decode_tps = modelbench_median(dec, o->repeat);
    out->read_gbps = modelbench_median(bw, o->repeat);
    out->of_floor = modelbench_median(frac, o->repeat);
    rc = 0;
out:
    apr_llama_pack_free(pack);
    free(ids);
    free(logits);
    free(pre);
    free(dec);
    free(bw);
    free(frac);
    return rc;
}

struct modelbench_model {
    gguf_file *f;
    llama_model *m;
};

modelbench_model *modelbench_load(const char *path) {
    apr_error e;
    modelbench_model *mm = calloc(1, sizeof *mm);
    if (!mm) { fprintf(stderr, "error: out of memory\n"); return NULL; }
    if (apr_gguf_open(path, &mm->f, &e) != APR_OK || apr_llama_model_load(mm->f, &mm->m, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        modelbench_free(mm);
        return NULL;
    }
    return mm;
}

const struct llama_model *modelbench_llama(const modelbench_model *mm) { return mm->m; }

void modelbench_free(modelbench_model *mm) {
    if (!mm) return;
    apr_llama_model_free(mm->m);
    apr_gguf_close(mm->f);
    free(mm);
}

int modelbench_run(const opts *o, const modelbench_model *mm, apr_registry *reg, const char *const *backends, int n_backends,
                   const ceiling *ceilings, int n_ceilings, ceiling_reader *reader) {
    apr_error e;
    const gguf_file *f = mm->f;
    const llama_model *m = mm->m;
    double bytes = modelbench_bytes_per_token(f, m);
    cJSON *rows = o->json ? cJSON_CreateArray() : NULL;
    if (!o->json) {
        printf("model %s: %s, %d layers, width %d, vocab %d; %.3f GB of weights read per decoded token\n", o->model,
               m->hp.arch, m->hp.n_layer, m->hp.n_embd, m->hp.n_vocab, bytes * 1e-9);
        printf("medians of %d samples after a warm-up; prefill = %d tokens into an empty cache, decode = %d single tokens\n",
               o->repeat, o->prefill, o->decode);
        printf("floor = read bandwidth at the same thread count (the higher of two measurements, right before and right\n"
               "after each decode sample) / bytes per token;\n"
               "'of floor' = median over the samples of decode t/s / that sample's floor\n\n");
        printf("%-12s %4s %12s %12s %9s %12s %10s\n", "backend", "thr", "prefill t/s", "decode t/s", "read GB/s", "floor t/s",
               "of floor");
    }
    int rc = 0;
    for (int b = 0; b < n_backends && !rc; b++) {
        if (!strcmp(backends[b], "reference") && !o->backend) continue; /* naive: minutes per token on real shapes */
        for (int t = 0; t < o->n_threads && !rc; t++) {
            apr_backend *be;
            if (apr_backend_open(reg, backends[b], o->threads[t], &be, &e) != APR_OK) {
                fprintf(stderr, "error: %s\n", e.msg);
                rc = -1;
                break;
            }
            fprintf(stderr, "apr-bench: %s on %s, %d threads\n", o->model, backends[b], o->threads[t]);
            modelbench_result r = {0};
            rc = modelbench_measure(o, m, be, reader, o->threads[t], bytes, &r);
            apr_backend_close(be);
            if (rc) break;
            double floor_tps = r.read_gbps * 1e9 / bytes, frac = r.of_floor;
            if (rows) {
                cJSON *row = cJSON_CreateObject();
                cJSON_AddStringToObject(row, "model", o->model);
                cJSON_AddStringToObject(row, "backend", backends[b]);
                cJSON_AddNumberToObject(row, "threads", o->threads[t]);
                cJSON_AddNumberToObject(row, "prefill_tokens", o->prefill);
                cJSON_AddNumberToObject(row, "prefill_tok_s", r.prefill_tps);
                cJSON_AddNumberToObject(row, "decode_tok_s", r.decode_tps);
                cJSON_AddNumberToObject(row, "bytes_per_token", bytes);
                cJSON_AddNumberToObject(row, "read_gbps", r.read_gbps);
                cJSON_AddNumberToObject(row, "floor_tok_s", floor_tps);
                cJSON_AddNumberToObject(row, "decode_of_floor", frac);
                cJSON_AddNumberToObject(row, "packed_mib", (double)r.packed_bytes / (1 << 20));
                cJSON_AddItemToArray(rows, row);
            } else {
                printf("%-12s %4d %12.1f %12.2f %9.1f %12.2f %10.2f\n", backends[b], o->threads[t], r.prefill_tps,
                       r.decode_tps, r.read_gbps, floor_tps, frac);
                fflush(stdout);
            }
        }
    }
    if (rows) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "model_runs", rows);
        cJSON *cs = cJSON_AddArrayToObject(root, "ceilings"); /* measured at start-up, as in the text header */
        for (int i = 0; i < n_ceilings; i++) {
            cJSON *ci = cJSON_CreateObject();
            cJSON_AddNumberToObject(ci, "threads", ceilings[i].threads);
            cJSON_AddNumberToObject(ci, "read_gbps", ceilings[i].read_gbps);
            cJSON_AddNumberToObject(ci, "fma_gflops", ceilings[i].fma_gflops);
            cJSON_AddItemToArray(cs, ci);
        }
        char *text = cJSON_Print(root);
        if (text) puts(text);
        free(text);
        cJSON_Delete(root);
    }
    return rc;
}

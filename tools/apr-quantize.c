/* apr-quantize.c — rewrites a GGUF model (or a Hugging Face folder) with its weight matrices in ggml's block formats, in llama.cpp's mixes. */
#include <cJSON.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apr/apr_float16.h"
#include "apr/apr_quant.h"
#include "common/cli.h"
#include "common/cli_signal.h"
#include "gguf.h"
#include "hf_import.h"

static const char *qz_usage =
    "usage: apr-quantize IN.gguf|HF_DIR OUT.gguf --type TYPE [--keep PATTERN ...] [--threads N] [--json]\n"
    "\n"
    "Writes OUT, a copy of the model IN (a GGUF file, or a Hugging Face folder converted on the fly)\n"
    "whose weight matrices are quantized to ggml's block formats; llama.cpp and apr-run load it.\n"
    "\n"
    "TYPE (general.file_type written):\n"
    "  q8_0 (7)  q4_0 (2)  q4_1 (3)  q5_0 (8)  q5_1 (9)      every weight matrix in that format\n"
    "  q4_k (14, Q4_K_S)  q5_k (16, Q5_K_S)  q6_k (18)       K-quants, 256 per super-block\n"
    "  q4_k_m (15)  q5_k_m (17)                              K-quant mixes, as llama.cpp's\n"
    "  (case does not matter; q4_k_s and q5_k_s are q4_k and q5_k)\n"
    "\n"
    "What is quantized, as llama-quantize does it:\n"
    "  - only 2-D tensors whose names end in \".weight\" (token_embd and output included); 1-D\n"
    "    tensors (norms, biases) and anything else are copied as they are;\n"
    "  - output.weight (token_embd.weight when the model has no output.weight: tied embeddings)\n"
    "    goes to q6_K for every TYPE but q8_0 (so to q8_0 when 256 does not divide its rows);\n"
    "  - q4_k_m / q5_k_m: attn_v.weight and ffn_down.weight go to q6_K in the layers i of n where\n"
    "    i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (integer division); the rest is q4_K / q5_K;\n"
    "  - q4_k (Q4_K_S): attn_v.weight of layers 0-3 and ffn_down.weight of layers i < n/8 in q5_K;\n"
    "  - a row length (ne[0]) that is not a multiple of the chosen format's block falls back as in\n"
    "    llama.cpp: q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, and to f16 when not even 32 divides\n"
    "    it; each fallback is reported with the tensor and the reason.\n"
    "Weights in f32, f16 or bf16 are converted to f32 rows and quantized. A tensor that is already\n"
    "quantized is copied when it already has the chosen format, and refused otherwise (quantizing\n"
    "twice adds error twice): quantize from the f32/f16/bf16 model, or --keep it.\n"
    "\n"
    "OUT is written atomically: an unnamed file in its folder, synced and linked into place at the\n"
    "end (where the filesystem lacks that, a temporary file renamed over OUT); on any failure (bad\n"
    "input, full disk, Ctrl-C, TERM, HUP) no OUT and no temporary file is left (an existing OUT is\n"
    "untouched). OUT may not be, or replace, IN or any file of an IN folder (config, tokenizer,\n"
    "weights, shards, index): that is a usage error.\n"
    "\n"
    "At the end a table gives, per tensor, its shape, its format before and after, and the RMSE\n"
    "of dequantize(quantize(x)) against x (also relative to the RMS of x); for tensors of more than\n"
    "4M elements the RMSE is measured on evenly spaced rows (marked '~'), otherwise on every row.\n"
    "Totals: sizes in MiB and bits per weight. Progress goes to stderr.\n"
    "\n"
    "options:\n"
    "  --type TYPE        the format or mix above (required)\n"
    "  --keep PATTERN     leave the tensors whose names match this glob (fnmatch: * ? [..]) in their\n"
    "                     input format; repeatable, e.g. --keep 'output.weight' --keep 'blk.0.*'\n"
    "  --threads N        quantizing threads (default: the online CPUs)\n"
    "  --json             one JSON object on stdout instead of the table: every tensor and the totals\n"
    "  -h, --help         this text\n"
    "\n"
    "exit status: 0 ok, 1 reading, quantizing or writing failed (no OUT left), 2 usage error\n";

/* ---------------------------------------------------------------- types and mixes */

enum { QZ_MIX_NONE, QZ_MIX_K_S, QZ_MIX_K_M };

typedef struct qz_type {
    const char *name;   /* as --type takes it */
    apr_dtype base;     /* the format of most weight matrices */
    uint32_t ftype;     /* llama.cpp's LLAMA_FTYPE_MOSTLY_* */
    int mix;            /* QZ_MIX_*: which of llama.cpp's per-tensor rules apply */
} qz_type;

static const qz_type qz_types[] = {
    {"q8_0", APR_Q8_0, 7, QZ_MIX_NONE},   {"q4_0", APR_Q4_0, 2, QZ_MIX_NONE},
    {"q4_1", APR_Q4_1, 3, QZ_MIX_NONE},   {"q5_0", APR_Q5_0, 8, QZ_MIX_NONE},
    {"q5_1", APR_Q5_1, 9, QZ_MIX_NONE},   {"q4_k", APR_Q4_K, 14, QZ_MIX_K_S},
    {"q5_k", APR_Q5_K, 16, QZ_MIX_NONE},  {"q6_k", APR_Q6_K, 18, QZ_MIX_NONE},
    {"q4_k_m", APR_Q4_K, 15, QZ_MIX_K_M}, {"q5_k_m", APR_Q5_K, 17, QZ_MIX_K_M},
    {"q4_k_s", APR_Q4_K, 14, QZ_MIX_K_S}, {"q5_k_s", APR_Q5_K, 16, QZ_MIX_NONE},
};
#define QZ_N_TYPES (sizeof qz_types / sizeof *qz_types)

static const qz_type *qz_type_find(const char *name) {
    for (size_t i = 0; i < QZ_N_TYPES; i++)
        if (!strcasecmp(qz_types[i].name, name)) return &qz_types[i];
    return NULL;
}

static bool qz_is_block(uint32_t dtype) { return apr_dtype_block_elems((apr_dtype)dtype) > 1; }

static const char *qz_dtype_name(uint32_t dtype) {
    const char *n = apr_gguf_dtype_name(dtype);
    return n ? n : "unknown";
}

/* llama.cpp's use_more_bits: the layers of an _M mix that get q6_K. */
static bool qz_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The layer of "blk.N....", or -1. */
static int qz_layer(const char *name) {
    int i, len = 0;
    if (sscanf(name, "blk.%d.%n", &i, &len) == 1 && len > 0 && i >= 0) return i;
    return -1;
}

/* llama.cpp's fallback for a row length the format's block does not divide. */
static apr_dtype qz_fallback(apr_dtype t) {
    switch (t) {
    case APR_Q4_K: return APR_Q5_0;
    case APR_Q5_K: return APR_Q5_1;
    case APR_Q6_K: return APR_Q8_0;
    default: return t;
    }
}

/* ---------------------------------------------------------------- the plan: one entry per tensor */

typedef struct qz_run qz_run;

typedef struct qz_tensor {
    qz_run *run;
    const gguf_tensor *src;
    apr_dtype to;            /* the output dtype */
    bool convert;            /* false: the bytes are copied as they are */
    char note[200];          /* why kept or why it fell back; "" when neither */
    bool fallback;
    int64_t row_len, rows;   /* ne[0], product of the other dims */
    uint64_t out_size;
    /* results */
    double sq_err, sq_ref;   /* sums over the checked rows */
    int64_t checked_rows;
    bool sampled;            /* only some rows checked */
} qz_tensor;

struct qz_run {
    const char *in, *out;
    qz_tensor *t;
    int64_t n;
    int threads;
    bool tty;                /* stderr is a terminal: progress rewrites one line */
    int64_t done;            /* tensors written so far */
    uint8_t *buf;            /* the current tensor's output bytes */
    size_t buf_cap;
    char err[700];           /* the first failure inside the write, or "" */
};

static int qz_keep_match(const char *name, char **keep, int n_keep, int *hits) {
    for (int k = 0; k < n_keep; k++)
        if (fnmatch(keep[k], name, 0) == 0) { hits[k]++; return k; }
    return -1;
}

/* Chooses every tensor's output dtype; false (message printed) when a tensor cannot be converted. */
static bool qz_plan(qz_run *r, const gguf_file *f, const qz_type *ty, char **keep, int n_keep, int *keep_hits) {
    bool has_output = apr_gguf_tensor_find(f, "output.weight") != NULL;
    int n_layer = 0;
    const char *arch = apr_gguf_get_str(f, "general.architecture");
    if (arch) {
        char key[160];
        snprintf(key, sizeof key, "%s.block_count", arch);
        uint32_t u;
        if (apr_gguf_get_u32(f, key, &u) && u < (1u << 20)) n_layer = (int)u;
    }
    for (int64_t i = 0; i < r->n; i++) {
        int l = qz_layer(apr_gguf_tensor_at(f, i)->name);
        if (l >= n_layer) n_layer = l + 1;
    }
    int n_bad = 0;
    for (int64_t i = 0; i < r->n; i++) {
        qz_tensor *q = &r->t[i];
        const gguf_tensor *t = apr_gguf_tensor_at(f, i);
        const char *name = t->name;
        size_t len = strlen(name);
        q->run = r;
        q->src = t;
        q->row_len = t->ne[0];
        q->rows = t->ne[1] * t->ne[2] * t->ne[3];
        q->to = (apr_dtype)t->dtype;
        q->out_size = t->size;
        bool matrix = t->n_dims == 2 && len > 7 && !strcmp(name + len - 7, ".weight");
        if (!matrix) continue;
        int k = qz_keep_match(name, keep, n_keep, keep_hits);
        if (k >= 0) {
            snprintf(q->note, sizeof q->note, "kept (--keep %s)", keep[k]);
            continue;
        }
        apr_dtype to = ty->base;
        int layer = qz_layer(name);
        if (!strcmp(name, "output.weight") || (!has_output && !strcmp(name, "token_embd.weight"))) {
            /* llama.cpp: q8_0 when TYPE's block does not fit the row, else q6_K; q6_K's fallback
             * below gives the same, and says so */
            if (ty->base != APR_Q8_0) to = APR_Q6_K;
        } else if (strstr(name, "attn_v.weight") && layer >= 0) {
            if (ty->mix == QZ_MIX_K_M && qz_more_bits(layer, n_layer)) to = APR_Q6_K;
            else if (ty->mix == QZ_MIX_K_S && layer < 4) to = APR_Q5_K;
        } else if (strstr(name, "ffn_down") && layer >= 0) {
            if (ty->mix == QZ_MIX_K_M && qz_more_bits(layer, n_layer)) to = APR_Q6_K;
            else if (ty->mix == QZ_MIX_K_S && layer < n_layer / 8) to = APR_Q5_K;
        }
        int64_t blk = apr_dtype_block_elems(to);
        if (t->ne[0] % blk != 0) {
            apr_dtype fb = qz_fallback(to);
            if (t->ne[0] % apr_dtype_block_elems(fb) != 0) fb = APR_F16;
            snprintf(q->note, sizeof q->note, "fallback from %s: row length %lld is not a multiple of %lld%s",
                     apr_dtype_name(to), (long long)t->ne[0], (long long)blk, fb == APR_F16 && blk != 32 ? " nor of 32" : "");
            fprintf(stderr, "note: %s: row length %lld is not a multiple of %s's block of %lld: written as %s\n", name,
                    (long long)t->ne[0], apr_dtype_name(to), (long long)blk, apr_dtype_name(fb));
            q->fallback = true;
            to = fb;
        }
        if ((uint32_t)to == t->dtype) {
            if (qz_is_block(t->dtype) && !q->note[0]) snprintf(q->note, sizeof q->note, "already %s: copied", apr_dtype_name(to));
            continue;
        }
        if (qz_is_block(t->dtype)) {
            if (n_bad++ < 8)
                fprintf(stderr,
                        "error: %s: tensor '%s' is already %s; --type %s wants %s for it, and apr-quantize does not "
                        "requantize (each pass adds its error): quantize from the f32/f16/bf16 model, or --keep '%s'\n",
                        r->in, name, qz_dtype_name(t->dtype), ty->name, apr_dtype_name(to), name);
            continue;
        }
        if (t->dtype != APR_F32 && t->dtype != APR_F16 && t->dtype != APR_BF16) {
            if (n_bad++ < 8)
                fprintf(stderr, "error: %s: tensor '%s' is %s; only f32, f16 and bf16 weights can be quantized (--keep '%s' copies it)\n",
                        r->in, name, qz_dtype_name(t->dtype), name);
            continue;
        }
        q->to = to;
        q->convert = true;
        q->out_size = (uint64_t)apr_dtype_row_bytes(to, t->ne[0]) * (uint64_t)q->rows;
    }
    if (n_bad > 8) fprintf(stderr, "error: ... and %d more such tensors\n", n_bad - 8);
    return n_bad == 0;
}

/* ---------------------------------------------------------------- converting one tensor (threads over rows) */

/* At most this many elements per tensor are dequantized again for the RMSE; bigger tensors are
 * measured on evenly spaced rows. */
#define QZ_CHECK_ELEMS ((int64_t)1 << 22)

typedef struct qz_work {
    qz_tensor *q;
    uint8_t *out;
    int64_t r0, r1, stride;  /* rows [r0, r1); every stride-th row is checked */
    double sq_err, sq_ref;
    int64_t checked;
    int64_t bad_row;         /* -1, or a row holding a NaN / inf (or one the quantizer refused) */
    bool nomem;
} qz_work;

static void qz_load_row(uint32_t dtype, const uint8_t *src, float *x, int64_t n) {
    if (dtype == APR_F32) { memcpy(x, src, (size_t)n * sizeof *x); return; }
    const uint16_t *h = (const uint16_t *)(const void *)src;
    uint16_t v;
    for (int64_t i = 0; i < n; i++) {
        memcpy(&v, h + i, sizeof v);
        x[i] = dtype == APR_F16 ? apr_f16_to_f32(v) : apr_bf16_to_f32(v);
    }
}

/* Writes x as one row of `to` at dst (and, when back is not NULL, the values the row stands for);
 * false when the quantizer refused it. */
static bool qz_store_row(apr_dtype to, const float *x, uint8_t *dst, int64_t n, int64_t row_bytes, float *back) {
    if (to == APR_F16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = apr_f32_to_f16(x[i]);
            memcpy(dst + 2 * i, &h, 2);
            if (back) back[i] = apr_f16_to_f32(h);
        }
        return true;
    }
    if (to == APR_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = apr_f32_to_bf16(x[i]);
            memcpy(dst + 2 * i, &h, 2);
            if (back) back[i] = apr_bf16_to_f32(h);
        }
        return true;
    }
    if (to == APR_F32) {
        memcpy(dst, x, (size_t)n * sizeof *x);
        if (back) memcpy(back, x, (size_t)n * sizeof *x);
        return true;
    }
    if (apr_quant_row(to, x, dst, n) != row_bytes) return false;
    return !back || apr_dequant_row(to, dst, back, n);
}

static void *qz_work_rows(void *arg) {
    qz_work *w = arg;
    const qz_tensor *q = w->q;
    const int64_t n = q->row_len;
    const int64_t in_bytes = apr_dtype_row_bytes((apr_dtype)q->src->dtype, n);
    const int64_t out_bytes = apr_dtype_row_bytes(q->to, n);
    const bool finite_needed = qz_is_block(q->to);
    float *x = malloc((size_t)n * sizeof *x), *back = malloc((size_t)n * sizeof *back);
    if (!x || !back) { w->nomem = true; goto done; }
    for (int64_t r = w->r0; r < w->r1; r++) {
        qz_load_row(q->src->dtype, (const uint8_t *)q->src->data + r * in_bytes, x, n);
        if (finite_needed) {
            bool ok = true;
            for (int64_t i = 0; i < n; i++) ok &= isfinite(x[i]) != 0;
            if (!ok) { w->bad_row = r; break; }
        }
        bool check = r % w->stride == 0;
        if (!qz_store_row(q->to, x, w->out + r * out_bytes, n, out_bytes, check ? back : NULL)) { w->bad_row = r; break; }
        if (!check) continue;
        double e = 0, s = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = (double)back[i] - (double)x[i];
            e += d * d;
            s += (double)x[i] * (double)x[i];
        }
        w->sq_err += e;
        w->sq_ref += s;
        w->checked++;
    }
done:
    free(x);
    free(back);
    return NULL;
}

/* Converts tensor q into out (q->out_size bytes); 0 or an errno value, with r->err set. */
static int qz_convert(qz_tensor *q, uint8_t *out) {
    qz_run *r = q->run;
    int64_t rows = q->rows;
    int nt = r->threads;
    if (nt > rows / 4) nt = (int)(rows / 4 > 0 ? rows / 4 : 1);
    int64_t elems = rows * q->row_len;
    int64_t stride = elems > QZ_CHECK_ELEMS ? (elems + QZ_CHECK_ELEMS - 1) / QZ_CHECK_ELEMS : 1;
    if (stride > rows) stride = rows;
    qz_work *w = calloc((size_t)nt, sizeof *w);
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    if (!w || !th) {
        free(w);
        free(th);
        snprintf(r->err, sizeof r->err, "out of memory converting tensor '%s'", q->src->name);
        return ENOMEM;
    }
    bool *started = calloc((size_t)nt, sizeof *started);
    for (int i = 0; i < nt; i++) {
        w[i] = (qz_work){.q = q, .out = out, .r0 = rows * i / nt, .r1 = rows * (i + 1) / nt, .stride = stride, .bad_row = -1};
        if (i > 0 && started) started[i] = pthread_create(&th[i], NULL, qz_work_rows, &w[i]) == 0;
    }
    qz_work_rows(&w[0]);
    for (int i = 1; i < nt; i++) { /* a worker that could not be started runs here */
        if (started && started[i]) pthread_join(th[i], NULL);
        else qz_work_rows(&w[i]);
    }
    free(started);
    int rc = 0;
    for (int i = 0; i < nt; i++) {
        q->sq_err += w[i].sq_err;
        q->sq_ref += w[i].sq_ref;
        q->checked_rows += w[i].checked;
        if (rc) continue;
        if (w[i].nomem) {
            snprintf(r->err, sizeof r->err, "out of memory converting tensor '%s'", q->src->name);
            rc = ENOMEM;
        } else if (w[i].bad_row >= 0) {
            snprintf(r->err, sizeof r->err,
                     "%s: tensor '%s' row %lld holds a NaN or an infinity (or the %s quantizer refused it); it cannot be quantized",
                     r->in, q->src->name, (long long)w[i].bad_row, apr_dtype_name(q->to));
            rc = EINVAL;
        }
    }
    q->sampled = stride > 1;
    free(w);
    free(th);
    return rc;
}

static void qz_progress(qz_run *r, const qz_tensor *q) {
    if (r->tty)
        fprintf(stderr, "\r\033[K[%4lld/%lld] %-32s %-5s ...", (long long)(r->done + 1), (long long)r->n, q->src->name,
                apr_dtype_name(q->to));
    else
        fprintf(stderr, "[%4lld/%lld] %-32s %s\n", (long long)(r->done + 1), (long long)r->n, q->src->name, apr_dtype_name(q->to));
}

/* gguf_writer's producer: the first call of a tensor converts it whole into r->buf; every call
 * copies its chunk out. */
static int qz_fill(void *ctx, uint64_t offset, void *buf, size_t n) {
    qz_tensor *q = ctx;
    qz_run *r = q->run;
    if (!q->convert) {
        if (offset == 0) qz_progress(r, q);
        memcpy(buf, (const uint8_t *)q->src->data + offset, n);
    } else {
        if (offset == 0) {
            qz_progress(r, q);
            if (q->out_size > r->buf_cap) {
                free(r->buf);
                r->buf_cap = 0;
                if (!(r->buf = malloc(q->out_size))) {
                    snprintf(r->err, sizeof r->err, "out of memory for tensor '%s' (%llu bytes)", q->src->name,
                             (unsigned long long)q->out_size);
                    return ENOMEM;
                }
                r->buf_cap = q->out_size;
            }
            int rc = qz_convert(q, r->buf);
            if (rc) return rc;
        }
        memcpy(buf, r->buf + offset, n);
    }
    if (offset + n == q->out_size) r->done++;
    return 0;
}

/* ---------------------------------------------------------------- report */

static double qz_rmse(const qz_tensor *q) {
    int64_t n = q->checked_rows * q->row_len;
    return n ? sqrt(q->sq_err / (double)n) : 0.0;
}

static double qz_rel(const qz_tensor *q) { return q->sq_ref > 0 ? sqrt(q->sq_err / q->sq_ref) : 0.0; }

static void qz_shape(const gguf_tensor *t, char *buf, size_t n) {
    int off = snprintf(buf, n, "%lld", (long long)t->ne[0]);
    for (int d = 1; d < t->n_dims && off > 0 && (size_t)off < n; d++)
        off += snprintf(buf + off, n - (size_t)off, " x %lld", (long long)t->ne[d]);
}

typedef struct qz_totals {
    double in_bytes, out_bytes, elems, q_in_bytes, q_out_bytes, q_elems, sq_err, n_err, sq_ref;
    int n_quantized, n_fallback, n_kept;
} qz_totals;

static qz_totals qz_sum(const qz_run *r) {
    qz_totals s = {0};
    for (int64_t i = 0; i < r->n; i++) {
        const qz_tensor *q = &r->t[i];
        double el = (double)q->rows * (double)q->row_len;
        s.in_bytes += (double)q->src->size;
        s.out_bytes += (double)q->out_size;
        s.elems += el;
        s.n_fallback += q->fallback;
        s.n_kept += !q->convert;
        if (!q->convert) continue;
        s.n_quantized++;
        s.q_in_bytes += (double)q->src->size;
        s.q_out_bytes += (double)q->out_size;
        s.q_elems += el;
        s.sq_err += q->sq_err;
        s.sq_ref += q->sq_ref;
        s.n_err += (double)q->checked_rows * (double)q->row_len;
    }
    return s;
}

#define QZ_MIB (1024.0 * 1024.0)

static void qz_print_table(const qz_run *r, const qz_type *ty, double secs) {
    size_t w = 6;
    for (int64_t i = 0; i < r->n; i++) {
        size_t l = strlen(r->t[i].src->name);
        if (l > w) w = l;
    }
    printf("%-*s  %-18s %-5s %-5s %11s %9s  %s\n", (int)w, "tensor", "shape", "from", "to", "rmse", "rel", "note");
    for (int64_t i = 0; i < r->n; i++) {
        const qz_tensor *q = &r->t[i];
        char shape[96];
        qz_shape(q->src, shape, sizeof shape);
        printf("%-*s  %-18s %-5s %-5s %c%10.3e %9.2e  %s\n", (int)w, q->src->name, shape, qz_dtype_name(q->src->dtype),
               qz_dtype_name(q->to), q->sampled ? '~' : ' ', qz_rmse(q), qz_rel(q), q->note);
    }
    qz_totals s = qz_sum(r);
    printf("\n%s -> %s (%s, general.file_type %u): %d tensors quantized or converted, %d copied, %d fell back\n", r->in,
           r->out, ty->name, ty->ftype, s.n_quantized, s.n_kept, s.n_fallback);
    printf("size %.2f MiB -> %.2f MiB, %.2f -> %.2f bits per weight overall", s.in_bytes / QZ_MIB, s.out_bytes / QZ_MIB,
           s.elems ? 8 * s.in_bytes / s.elems : 0, s.elems ? 8 * s.out_bytes / s.elems : 0);
    if (s.q_elems) printf(", %.2f in the converted tensors", 8 * s.q_out_bytes / s.q_elems);
    printf("\nrmse over the converted tensors %.3e (relative %.2e); %.2f s, %d threads%s\n",
           s.n_err ? sqrt(s.sq_err / s.n_err) : 0, s.sq_ref > 0 ? sqrt(s.sq_err / s.sq_ref) : 0, secs, r->threads,
           s.n_quantized ? "" : "; nothing was converted");
}

static void qz_print_json(const qz_run *r, const qz_type *ty, double secs) {
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "input", r->in);
    cJSON_AddStringToObject(o, "output", r->out);
    cJSON_AddStringToObject(o, "type", ty->name);
    cJSON_AddNumberToObject(o, "file_type", ty->ftype);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    for (int64_t i = 0; i < r->n; i++) {
        const qz_tensor *q = &r->t[i];
        cJSON *t = cJSON_CreateObject(), *shape = cJSON_CreateArray();
        cJSON_AddStringToObject(t, "name", q->src->name);
        for (int d = 0; d < q->src->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)q->src->ne[d]));
        cJSON_AddItemToObject(t, "shape", shape);
        cJSON_AddStringToObject(t, "from", qz_dtype_name(q->src->dtype));
        cJSON_AddStringToObject(t, "to", qz_dtype_name(q->to));
        cJSON_AddBoolToObject(t, "converted", q->convert);
        cJSON_AddNumberToObject(t, "rmse", qz_rmse(q));
        cJSON_AddNumberToObject(t, "rel_rmse", qz_rel(q));
        cJSON_AddNumberToObject(t, "rows", (double)q->rows);
        cJSON_AddNumberToObject(t, "rows_checked", (double)(q->convert ? q->checked_rows : q->rows));
        cJSON_AddBoolToObject(t, "sampled", q->sampled);
        cJSON_AddNumberToObject(t, "bytes_in", (double)q->src->size);
        cJSON_AddNumberToObject(t, "bytes_out", (double)q->out_size);
        if (q->fallback) cJSON_AddStringToObject(t, "fallback", q->note);
        else if (q->note[0]) cJSON_AddStringToObject(t, "note", q->note);
        cJSON_AddItemToArray(arr, t);
    }
    cJSON_AddItemToObject(o, "tensors", arr);
    qz_totals s = qz_sum(r);
    cJSON_AddNumberToObject(o, "n_converted", s.n_quantized);
    cJSON_AddNumberToObject(o, "n_copied", s.n_kept);
    cJSON_AddNumberToObject(o, "n_fallback", s.n_fallback);
    cJSON_AddNumberToObject(o, "size_in_mib", s.in_bytes / QZ_MIB);
    cJSON_AddNumberToObject(o, "size_out_mib", s.out_bytes / QZ_MIB);
    cJSON_AddNumberToObject(o, "bpw_in", s.elems ? 8 * s.in_bytes / s.elems : 0);
    cJSON_AddNumberToObject(o, "bpw_out", s.elems ? 8 * s.out_bytes / s.elems : 0);
    cJSON_AddNumberToObject(o, "bpw_converted", s.q_elems ? 8 * s.q_out_bytes / s.q_elems : 0);
    cJSON_AddNumberToObject(o, "rmse", s.n_err ? sqrt(s.sq_err / s.n_err) : 0);
    cJSON_AddNumberToObject(o, "rel_rmse", s.sq_ref > 0 ? sqrt(s.sq_err / s.sq_ref) : 0);
    cJSON_AddNumberToObject(o, "seconds", secs);
    char *txt = cJSON_PrintUnformatted(o);
    if (txt) puts(txt);
    free(txt);
    cJSON_Delete(o);
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    const char *pos[2] = {0}, *type_name = NULL, *v;
    char **keep = calloc((size_t)argc, sizeof *keep);
    int *keep_hits = calloc((size_t)argc, sizeof *keep_hits);
    int n_pos = 0, n_keep = 0, rc = CLI_EXIT_USAGE;
    cli_common c = {0};
    gguf_file *f = NULL;
    gguf_writer *w = NULL;
    qz_run r = {0};
    if (!keep || !keep_hits) { fprintf(stderr, "error: out of memory\n"); rc = CLI_EXIT_FAIL; goto done; }
    for (int i = 1; i < argc; i++) {
        int cr = cli_parse_common(argc, argv, &i, &c);
        if (cr < 0) goto done;
        if (cr > 0) {
            if (c.backend) { fprintf(stderr, "error: apr-quantize runs on no backend; drop --backend\n"); goto done; }
            continue;
        }
        if ((v = cli_option_value(argc, argv, &i, "--type"))) {
            if (!*v) { fprintf(stderr, "error: --type needs a TYPE (see apr-quantize --help)\n"); goto done; }
            type_name = v;
        } else if ((v = cli_option_value(argc, argv, &i, "--keep"))) {
            if (!*v) { fprintf(stderr, "error: --keep needs a PATTERN\n"); goto done; }
            keep[n_keep++] = (char *)v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "error: unknown option %s (see apr-quantize --help)\n", argv[i]);
            goto done;
        } else if (n_pos == 2) {
            fprintf(stderr, "error: more than IN and OUT given (see apr-quantize --help)\n");
            goto done;
        } else pos[n_pos++] = argv[i];
    }
    if (c.help) { fputs(qz_usage, stdout); rc = CLI_EXIT_OK; goto done; }
    if (n_pos != 2) { fprintf(stderr, "error: IN and OUT.gguf are required (see apr-quantize --help)\n"); goto done; }
    if (!type_name) { fprintf(stderr, "error: --type is required: q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m or q5_k_m\n"); goto done; }
    const qz_type *ty = qz_type_find(type_name);
    if (!ty) {
        fprintf(stderr, "error: unknown --type '%s': q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m or q5_k_m\n", type_name);
        goto done;
    }
    r.in = pos[0];
    r.out = pos[1];
    struct stat st;
    if (stat(r.in, &st) != 0) { fprintf(stderr, "error: %s: %s\n", r.in, strerror(errno)); rc = CLI_EXIT_FAIL; goto done; }
    apr_error e;
    if (apr_hf_import_check_output(r.in, NULL, r.out, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    rc = CLI_EXIT_FAIL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    r.threads = c.threads ? c.threads : (int)(ncpu > 0 ? (ncpu < 256 ? ncpu : 256) : 1);
    r.tty = isatty(STDERR_FILENO);
    double t0 = cli_now();
    fprintf(stderr, "reading %s ...\n", r.in);
    cli_signal_cleanup_temps(); /* from here: a folder input is converted through a temporary folder */
    if (apr_hf_open_as_gguf(r.in, &f, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
    r.n = apr_gguf_tensor_count(f);
    if (!(r.t = calloc((size_t)(r.n ? r.n : 1), sizeof *r.t))) { fprintf(stderr, "error: out of memory\n"); goto done; }
    if (!qz_plan(&r, f, ty, keep, n_keep, keep_hits)) {
        fprintf(stderr, "error: %s not written\n", r.out);
        goto done;
    }
    for (int k = 0; k < n_keep; k++)
        if (!keep_hits[k]) fprintf(stderr, "warning: --keep '%s' matches no weight matrix of %s\n", keep[k], r.in);
    if (!(w = apr_gguf_writer_new())) { fprintf(stderr, "error: out of memory\n"); goto done; }
    apr_gguf_writer_copy_kv(w, f);
    apr_gguf_writer_set_u32(w, "general.quantization_version", 2);
    apr_gguf_writer_set_u32(w, "general.file_type", ty->ftype);
    for (int64_t i = 0; i < r.n; i++) {
        const qz_tensor *q = &r.t[i];
        apr_gguf_writer_add_tensor_fn(w, q->src->name, (uint32_t)q->to, q->src->n_dims, q->src->ne, q->out_size, qz_fill, &r.t[i]);
    }
    signal(SIGXFSZ, SIG_IGN); /* past a file-size limit the write fails with EFBIG and is cleaned up */
    fprintf(stderr, "writing %s: %s, %lld tensors, %d threads ...\n", r.out, ty->name, (long long)r.n, r.threads);
    apr_status s = apr_gguf_writer_write(w, r.out, &e);
    if (r.tty) fputc('\n', stderr);
    if (s != APR_OK) {
        if (r.err[0]) fprintf(stderr, "error: %s\n", r.err);
        fprintf(stderr, "error: %s\nerror: %s not written (no temporary file left)\n", e.msg, r.out);
        goto done;
    }
    double secs = cli_now() - t0;
    if (c.json) qz_print_json(&r, ty, secs);
    else qz_print_table(&r, ty, secs);
    if (fflush(stdout) != 0) { fprintf(stderr, "error: writing the report: %s\n", strerror(errno)); goto done; }
    rc = CLI_EXIT_OK;
done:
    apr_gguf_writer_free(w);
    free(r.buf);
    free(r.t);
    apr_gguf_close(f);
    free(keep);
    free(keep_hits);
    return rc;
}

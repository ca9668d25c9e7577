/* apr-finetune.c — finetunes a model on a dataset (LoRA, QLoRA or every weight) with crash-safe checkpoints;
 * also plots a training log and merges an adapter into its base. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apr/apr_float16.h"
#include "apr/apr_quant.h"
#include "bpe_train.h"
#include "chat.h"
#include "common/cli.h"
#include "common/cli_signal.h"
#include "ft_ckpt.h"
#include "ft_data.h"
#include "ft_plot.h"
#include "gguf.h"
#include "hf_import.h"
#include "llama.h"
#include "llama_train.h"
#include "lora.h"
#include "model_init.h"
#include "tokenizer.h"

static const char *ft_usage =
    "usage: apr-finetune --model FILE|DIR --data FILE [--method lora|qlora|full] [--out FILE] [options]\n"
    "       apr-finetune --from-scratch SHAPE --tokenizer VOCAB.gguf --data FILE --out FILE [options]\n"
    "       apr-finetune plot LOG OUT.svg\n"
    "       apr-finetune merge BASE ADAPTER OUT [--scale S] [--type TYPE]\n"
    "       apr-finetune vocab CORPUS OUT.gguf [--size N]\n"
    "\n"
    "Trains the model on FILE and writes the result to OUT: a GGUF LoRA adapter (lora, qlora; apr-run\n"
    "--lora and llama.cpp read it) or a whole GGUF model (full). FILE is JSON lines of {\"text\": ...},\n"
    "{\"prompt\": ..., \"completion\": ...} (loss on the completion only) or {\"messages\": [...]} (the model's\n"
    "chat template; loss on the assistant's turns), or any other file as plain text. Examples are\n"
    "tokenized, packed into windows of --seq-len tokens and shuffled by --seed every epoch.\n"
    "A line per step goes to stderr (step, loss, learning rate, tokens/s, elapsed, ETA); --log writes the\n"
    "same as JSON lines, which `apr-finetune plot` draws as SVG. --save-every writes a checkpoint\n"
    "atomically (the previous one stays whole until the new one is); --resume continues a run exactly\n"
    "where its last checkpoint left it. SIGINT / SIGTERM stop after the step in progress, with a checkpoint.\n"
    "\n"
    "a new model:\n"
    "  --from-scratch SHAPE a model of random weights (normal, std 0.02, from --seed) in SHAPE, trained in\n"
    "                       full: a shape apr-genmodel names (tiny, tinyllama-1.1b, ...) or key=value pairs\n"
    "                       (layers=4,embd=192,heads=6,kv_heads=6,ff=512,ctx=256; see apr-genmodel --help)\n"
    "  --tokenizer FILE     with --from-scratch: the vocabulary (a GGUF's tokenizer.* keys, e.g. from\n"
    "                       apr-finetune vocab), which also sets the embedding's rows\n"
    "  --name TEXT          general.name of a full model written (default: says it was trained by apr)\n"
    "method:\n"
    "  --method M           lora (default: adapters over a float base), qlora (adapters over a quantized\n"
    "                       base, read as it is), full (every weight, f32)\n"
    "  --lora-rank R        adapter rank (default 8)\n"
    "  --lora-alpha A       adapter scale alpha / R (default 16)\n"
    "  --lora-dropout P     dropout on the adapters' inputs (default 0)\n"
    "  --lora-targets LIST  comma-separated among q,k,v,o,gate,up,down, or all (default q,v)\n"
    "data:\n"
    "  --data FILE          training data (required)\n"
    "  --seq-len N          tokens per window (default 256)\n"
    "  --batch N            windows per micro-batch (default 1)\n"
    "  --grad-accum N       micro-batches per optimizer step (default 1)\n"
    "  --val-split F        share of the windows held out for validation (default 0)\n"
    "  --val-file FILE      validation data instead of a split\n"
    "  --eval-every N       validation loss every N steps (default 50, when there is validation data)\n"
    "  --patience N         stop after N validations without improvement (default: never)\n"
    "  --strict             a malformed data line is fatal (default: reported and skipped)\n"
    "optimization:\n"
    "  --epochs N           passes over the data (default 1); --steps N overrides\n"
    "  --steps N            optimizer steps in all\n"
    "  --lr F               peak learning rate (default 1e-4 for LoRA, 1e-5 for full)\n"
    "  --warmup N           steps of linear warmup from 0 (default 0)\n"
    "  --schedule S         cosine (default: decay to --min-lr-ratio of the peak) or constant\n"
    "  --min-lr-ratio F     default 0.1\n"
    "  --optimizer O        adamw (default), adam or sgd\n"
    "  --weight-decay F     default 0\n"
    "  --momentum F         SGD momentum (default 0.9)\n"
    "  --clip F             largest gradient norm, 0 = none (default 1)\n"
    "  --seed S             data order, validation split, adapter initialisation, dropout (default 42)\n"
    "  --checkpointing      recompute each layer in the backward pass (gradient checkpointing): less\n"
    "                       memory for longer sequences, about a third more arithmetic\n"
    "output and checkpoints:\n"
    "  --out FILE           the adapter or model (default: MODEL's name with -lora.gguf or -full.gguf)\n"
    "  --save-every N       write a checkpoint every N steps (and at the end) into --checkpoint-dir\n"
    "  --checkpoint-dir DIR default OUT.ckpt\n"
    "  --resume DIR         continue the run whose checkpoint is in DIR (same model, data and options)\n"
    "  --log FILE           the progress as JSON lines (appended to on --resume)\n"
    "%s"
    "vocab:\n"
    "  a byte-level BPE vocabulary of N tokens (default 4096: <s>, </s>, the 256 bytes, merges) learned\n"
    "  from the text file CORPUS, written as a vocabulary-only GGUF for --from-scratch --tokenizer\n"
    "merge:\n"
    "  BASE + ADAPTER into OUT, every adapted weight W + S * alpha / r * B A (default S 1), written in\n"
    "  W's own dtype, or --type (f32, f16, bf16, q8_0, q4_0, ...) for every adapted weight.\n"
    "\n"
    "exit status: 0 ok, 1 a model, data, backend or a step failed, 2 usage error, 3 stopped by a signal\n"
    "(a checkpoint was written), 4 stopped early (no validation improvement for --patience evaluations)\n";

enum { FT_EXIT_SIGNAL = 3, FT_EXIT_EARLY = 4 };

typedef struct ft_opts {
    cli_common c;
    const char *model, *data, *val_file, *out, *ckpt_dir, *resume, *log;
    const char *scratch, *tokenizer, *name;   /* --from-scratch SHAPE, --tokenizer FILE, --name TEXT */
    llama_train_params tp;
    long grad_accum, epochs, steps, warmup, eval_every, patience, save_every;
    double lr, min_lr_ratio, val_split;
    bool cosine, strict, lr_set;
} ft_opts;

/* ---------------------------------------------------------------- arguments */

static bool ft_targets(const char *s, unsigned *out) {
    static const char *const names[] = {"q", "k", "v", "o", "gate", "up", "down"};
    if (!strcmp(s, "all")) {
        *out = 0x7fu;
        return true;
    }
    unsigned t = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < 7 && strcmp(tok, names[i])) i++;
        if (i == 7) return false;
        t |= 1u << i;
    }
    *out = t;
    return t != 0;
}

static int ft_parse(int argc, char **argv, ft_opts *o) {
    o->tp = apr_llama_train_defaults();
    o->grad_accum = 1;
    o->epochs = 1;
    o->eval_every = 50;
    o->min_lr_ratio = 0.1;
    o->cosine = true;
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_common(argc, argv, &i, &o->c);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        const char *v;
        long n;
        double f;
#define FT_INT(opt, lo, hi, dst) else if ((v = cli_option_value(argc, argv, &i, opt))) { \
            if (!cli_option_int(opt, v, lo, hi, &n)) { return CLI_EXIT_USAGE; } \
            dst = n; }
#define FT_FLOAT(opt, lo, hi, dst) else if ((v = cli_option_value(argc, argv, &i, opt))) { \
            if (!cli_option_float(opt, v, lo, hi, &f)) { return CLI_EXIT_USAGE; } \
            dst = f; }
        if ((v = cli_option_value(argc, argv, &i, "--model"))) o->model = v;
        else if ((v = cli_option_value(argc, argv, &i, "--data"))) o->data = v;
        else if ((v = cli_option_value(argc, argv, &i, "--val-file"))) o->val_file = v;
        else if ((v = cli_option_value(argc, argv, &i, "--out"))) o->out = v;
        else if ((v = cli_option_value(argc, argv, &i, "--checkpoint-dir"))) o->ckpt_dir = v;
        else if ((v = cli_option_value(argc, argv, &i, "--resume"))) o->resume = v;
        else if ((v = cli_option_value(argc, argv, &i, "--log"))) o->log = v;
        else if ((v = cli_option_value(argc, argv, &i, "--from-scratch"))) o->scratch = v;
        else if ((v = cli_option_value(argc, argv, &i, "--tokenizer"))) o->tokenizer = v;
        else if ((v = cli_option_value(argc, argv, &i, "--name"))) o->name = v;
        else if (!strcmp(argv[i], "--strict")) o->strict = true;
        else if (!strcmp(argv[i], "--checkpointing")) o->tp.checkpointing = true;
        else if ((v = cli_option_value(argc, argv, &i, "--method"))) {
            if (!strcmp(v, "lora")) o->tp.method = LLAMA_TRAIN_LORA;
            else if (!strcmp(v, "qlora")) o->tp.method = LLAMA_TRAIN_QLORA;
            else if (!strcmp(v, "full")) o->tp.method = LLAMA_TRAIN_FULL;
            else { fprintf(stderr, "error: --method %s: lora, qlora or full\n", v); return CLI_EXIT_USAGE; }
        } else if ((v = cli_option_value(argc, argv, &i, "--lora-targets"))) {
            if (!ft_targets(v, &o->tp.lora_targets)) {
                fprintf(stderr, "error: --lora-targets %s: a comma-separated list of q, k, v, o, gate, up, down, or all\n", v);
                return CLI_EXIT_USAGE;
            }
        } else if ((v = cli_option_value(argc, argv, &i, "--optimizer"))) {
            if (!strcmp(v, "adamw")) o->tp.opt = LLAMA_OPT_ADAMW;
            else if (!strcmp(v, "adam")) o->tp.opt = LLAMA_OPT_ADAM;
            else if (!strcmp(v, "sgd")) o->tp.opt = LLAMA_OPT_SGD;
            else { fprintf(stderr, "error: --optimizer %s: adamw, adam or sgd\n", v); return CLI_EXIT_USAGE; }
        } else if ((v = cli_option_value(argc, argv, &i, "--schedule"))) {
            if (!strcmp(v, "cosine")) o->cosine = true;
            else if (!strcmp(v, "constant")) o->cosine = false;
            else { fprintf(stderr, "error: --schedule %s: cosine or constant\n", v); return CLI_EXIT_USAGE; }
        } else if ((v = cli_option_value(argc, argv, &i, "--lr"))) {
            if (!cli_option_float("--lr", v, 0, 10, &f)) return CLI_EXIT_USAGE;
            o->lr = f;
            o->lr_set = true;
        } else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            if (!cli_option_int("--seed", v, 0, 0x7fffffffffffffffL, &n)) return CLI_EXIT_USAGE;
            o->tp.seed = (uint64_t)n;
        }
        FT_INT("--lora-rank", 1, 4096, o->tp.lora_rank)
        FT_FLOAT("--lora-alpha", 1e-6, 1e6, o->tp.lora_alpha)
        FT_FLOAT("--lora-dropout", 0, 0.95, o->tp.lora_dropout)
        FT_INT("--seq-len", 2, 1 << 16, o->tp.seq_len)
        FT_INT("--batch", 1, 1024, o->tp.n_seqs)
        FT_INT("--grad-accum", 1, 1 << 16, o->grad_accum)
        FT_FLOAT("--val-split", 0, 0.9, o->val_split)
        FT_INT("--eval-every", 1, 1L << 30, o->eval_every)
        FT_INT("--patience", 1, 1L << 30, o->patience)
        FT_INT("--epochs", 1, 1L << 20, o->epochs)
        FT_INT("--steps", 1, 1L << 40, o->steps)
        FT_INT("--warmup", 0, 1L << 40, o->warmup)
        FT_FLOAT("--min-lr-ratio", 0, 1, o->min_lr_ratio)
        FT_FLOAT("--weight-decay", 0, 10, o->tp.weight_decay)
        FT_FLOAT("--momentum", 0, 0.9999, o->tp.momentum)
        FT_FLOAT("--clip", 0, 1e9, o->tp.clip)
        FT_INT("--save-every", 1, 1L << 40, o->save_every)
        else {
            fprintf(stderr, "error: unknown argument '%s' (see apr-finetune --help)\n", argv[i]);
            return CLI_EXIT_USAGE;
        }
#undef FT_INT
#undef FT_FLOAT
    }
    if (o->c.help) return CLI_EXIT_OK;
    if (o->scratch) {
        if (o->model) { fprintf(stderr, "error: --from-scratch and --model exclude each other\n"); return CLI_EXIT_USAGE; }
        if (!o->tokenizer) { fprintf(stderr, "error: --from-scratch needs --tokenizer VOCAB.gguf\n"); return CLI_EXIT_USAGE; }
        if (!o->out) { fprintf(stderr, "error: --from-scratch needs --out FILE\n"); return CLI_EXIT_USAGE; }
        if (o->tp.method != LLAMA_TRAIN_FULL) o->tp.method = LLAMA_TRAIN_FULL; /* a new model trains every weight */
        o->model = o->scratch;
    } else if (o->tokenizer) {
        fprintf(stderr, "error: --tokenizer goes with --from-scratch (a model brings its own)\n");
        return CLI_EXIT_USAGE;
    }
    if (!o->model || !*o->model) { fprintf(stderr, "error: --model FILE|DIR is required (see apr-finetune --help)\n"); return CLI_EXIT_USAGE; }
    if (!o->data || !*o->data) { fprintf(stderr, "error: --data FILE is required (see apr-finetune --help)\n"); return CLI_EXIT_USAGE; }
    if (o->val_file && o->val_split > 0) { fprintf(stderr, "error: --val-file and --val-split exclude each other\n"); return CLI_EXIT_USAGE; }
    if (!o->lr_set) o->lr = o->tp.method == LLAMA_TRAIN_FULL ? 1e-5 : 1e-4;
    return -1;
}

/* The run's options that must not change across --resume, as one line. */
static void ft_config(const ft_opts *o, const char *model, char *buf, size_t size) {
    snprintf(buf, size, "model=%s method=%d rank=%d alpha=%g dropout=%g targets=%u seq_len=%d batch=%d accum=%ld opt=%d "
             "lr=%g warmup=%ld cosine=%d min_lr=%g wd=%g momentum=%g clip=%g seed=%llu val_split=%g",
             model, (int)o->tp.method, o->tp.lora_rank, (double)o->tp.lora_alpha, (double)o->tp.lora_dropout,
             o->tp.lora_targets, o->tp.seq_len, o->tp.n_seqs, o->grad_accum, (int)o->tp.opt, o->lr, o->warmup, (int)o->cosine,
             o->min_lr_ratio, (double)o->tp.weight_decay, (double)o->tp.momentum, (double)o->tp.clip,
             (unsigned long long)o->tp.seed, o->val_split);
}

/* ---------------------------------------------------------------- the learning rate */

static double ft_lr(const ft_opts *o, int64_t step, int64_t total) {
    if (o->warmup > 0 && step < o->warmup) return o->lr * (double)(step + 1) / (double)o->warmup;
    if (!o->cosine || total <= o->warmup) return o->lr;
    const double p = (double)(step - o->warmup) / (double)(total - o->warmup);
    const double lo = o->lr * o->min_lr_ratio;
    return lo + 0.5 * (o->lr - lo) * (1.0 + cos(M_PI * (p > 1 ? 1 : p)));
}

/* ---------------------------------------------------------------- checkpoints */

typedef struct ft_state {
    int64_t step, epoch, index;     /* steps done; the epoch in progress and the next window in it */
    double best_val;                /* best validation loss so far (INFINITY: none) */
    int64_t bad_evals;              /* validations since the best */
} ft_state;

/* Every trainable tensor's weights and moments as checkpoint tensors ("NAME", "NAME/m", "NAME/v"). */
static apr_status ft_ckpt_tensors(llama_train *tr, apr_ftckpt_tensor **out, char ***names, int *n, apr_error *err) {
    const int np = apr_llama_train_count(tr);
    apr_ftckpt_tensor *t = calloc((size_t)np * 3, sizeof *t);
    char **nm = calloc((size_t)np * 3, sizeof *nm);
    if (!t || !nm) {
        free(t);
        free(nm);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    static const char *const suffix[3] = {"", "/m", "/v"};
    for (int i = 0; i < np; i++) {
        const llama_train_tensor *p = apr_llama_train_tensor(tr, i);
        for (int w = 0; w < 3; w++) {
            apr_ftckpt_tensor *c = &t[i * 3 + w];
            size_t len = strlen(p->name) + 4;
            if (!(nm[i * 3 + w] = malloc(len)) || !(c->data = malloc((size_t)p->n * sizeof(float)))) {
                *out = t;
                *names = nm;
                *n = np * 3;
                return apr_error_set(err, APR_ERR_NOMEM, "out of memory for the checkpoint of %s", p->name);
            }
            snprintf(nm[i * 3 + w], len, "%s%s", p->name, suffix[w]);
            c->name = nm[i * 3 + w];
            c->n_dims = p->n_dims;
            memcpy(c->ne, p->ne, sizeof c->ne);
        }
    }
    *out = t;
    *names = nm;
    *n = np * 3;
    return APR_OK;
}

static void ft_ckpt_tensors_free(apr_ftckpt_tensor *t, char **names, int n) {
    for (int i = 0; i < n; i++) {
        if (t) free(t[i].data);
        if (names) free(names[i]);
    }
    free(t);
    free(names);
}

static apr_status ft_save(llama_train *tr, const char *dir, const char *config, const ft_state *st, apr_error *err) {
    apr_ftckpt_tensor *t = NULL;
    char **names = NULL;
    int n = 0;
    apr_status s = ft_ckpt_tensors(tr, &t, &names, &n, err);
    for (int i = 0; s == APR_OK && i < n; i++) s = apr_llama_train_read(tr, i / 3, i % 3, t[i].data, err);
    if (s == APR_OK) {
        apr_ftckpt_meta m = {.step = (uint64_t)st->step, .epoch = (uint64_t)st->epoch, .data_index = (uint64_t)st->index,
                             .config = config};
        apr_llama_train_rng_get(tr, m.rng);
        apr_ftckpt_kv extra[2] = {{.key = "apr.ft.best_val", .kind = APR_FTCKPT_F32, .f32 = (float)st->best_val},
                                  {.key = "apr.ft.bad_evals", .kind = APR_FTCKPT_U64, .u64 = (uint64_t)st->bad_evals}};
        m.extra = extra;
        m.n_extra = 2;
        s = apr_ftckpt_save(dir, &m, t, n, err);
    }
    ft_ckpt_tensors_free(t, names, n);
    return s;
}

static apr_status ft_resume(llama_train *tr, const char *dir, const char *config, ft_state *st, apr_error *err) {
    apr_ftckpt_tensor *t = NULL;
    char **names = NULL;
    int n = 0;
    apr_ftckpt_meta m = {0};
    apr_status s = ft_ckpt_tensors(tr, &t, &names, &n, err);
    if (s == APR_OK) s = apr_ftckpt_load(dir, &m, t, n, err);
    if (s == APR_OK && strcmp(m.config ? m.config : "", config))
        s = apr_error_set(err, APR_ERR_INVALID, "%s: the checkpoint was made by a run with other options:\n  it: %s\n  now: %s", dir,
                          m.config ? m.config : "", config);
    for (int i = 0; s == APR_OK && i < n; i++) s = apr_llama_train_write(tr, i / 3, i % 3, t[i].data, err);
    if (s == APR_OK) {
        st->step = (int64_t)m.step;
        st->epoch = (int64_t)m.epoch;
        st->index = (int64_t)m.data_index;
        apr_llama_train_set_steps(tr, st->step);
        apr_llama_train_rng_set(tr, m.rng);
        for (int i = 0; i < m.n_extra; i++) {
            if (!strcmp(m.extra[i].key, "apr.ft.best_val") && m.extra[i].kind == APR_FTCKPT_F32) st->best_val = m.extra[i].f32;
            if (!strcmp(m.extra[i].key, "apr.ft.bad_evals") && m.extra[i].kind == APR_FTCKPT_U64) st->bad_evals = (int64_t)m.extra[i].u64;
        }
    }
    apr_ftckpt_meta_free(&m);
    ft_ckpt_tensors_free(t, names, n);
    return s;
}

/* ---------------------------------------------------------------- outputs */

static apr_status ft_write_adapter(llama_train *tr, const llama_model *m, const llama_train_params *tp, const char *out,
                                   apr_error *err) {
    const int np = apr_llama_train_count(tr);
    lora_pair *pairs = calloc((size_t)np / 2 + 1, sizeof *pairs);
    float **bufs = calloc((size_t)np + 1, sizeof *bufs);
    char (*names)[160] = calloc((size_t)np / 2 + 1, sizeof *names);
    apr_status s = pairs && bufs && names ? APR_OK : apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int i = 0; s == APR_OK && i < np; i++) {
        const llama_train_tensor *p = apr_llama_train_tensor(tr, i);
        if (!(bufs[i] = malloc((size_t)p->n * sizeof(float)))) s = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        else s = apr_llama_train_read(tr, i, LLAMA_TRAIN_WEIGHT, bufs[i], err);
    }
    for (int i = 0; s == APR_OK && i + 1 < np; i += 2) { /* lora_a then lora_b of each weight */
        const llama_train_tensor *a = apr_llama_train_tensor(tr, i), *b = apr_llama_train_tensor(tr, i + 1);
        lora_pair *pr = &pairs[i / 2];
        snprintf(names[i / 2], sizeof names[0], "%.*s", (int)(strlen(a->name) - strlen(".lora_a")), a->name);
        *pr = (lora_pair){.weight = names[i / 2], .n_in = a->ne[0], .r = a->ne[1], .n_out = b->ne[1], .a = bufs[i], .b = bufs[i + 1]};
    }
    if (s == APR_OK) s = apr_lora_write(out, m->hp.arch, tp->lora_alpha, pairs, np / 2, err);
    for (int i = 0; bufs && i < np; i++) free(bufs[i]);
    free(bufs);
    free(pairs);
    free(names);
    return s;
}

/* A trained weight in the dtype the base had: f32, f16 and bf16 by rounding, a block type by quantizing. */
static void *ft_encode(const float *x, int64_t n, int64_t row, uint32_t dtype, uint64_t *size) {
    const int64_t rb = apr_dtype_row_bytes((apr_dtype)dtype, row);
    if (rb <= 0) return NULL;
    *size = (uint64_t)(rb * (n / row));
    char *out = malloc(*size);
    if (!out) return NULL;
    if (dtype == APR_F32) memcpy(out, x, *size);
    else if (dtype == APR_F16) for (int64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = apr_f32_to_f16(x[i]);
    else if (dtype == APR_BF16) for (int64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = apr_f32_to_bf16(x[i]);
    else
        for (int64_t r = 0; r < n / row; r++)
            if (apr_quant_row((apr_dtype)dtype, x + r * row, out + r * rb, row) != rb) {
                free(out);
                return NULL;
            }
    return out;
}

/* The base with the given tensors replaced (by name), each in dtype (or its base dtype when dtype < 0). */
static apr_status ft_write_model(const gguf_file *base, int n, const char *const *names, const float *const *data, int dtype,
                                 const char *model_name, const char *out, apr_error *err) {
    gguf_writer *w = apr_gguf_writer_new();
    void **owned = calloc((size_t)n + 1, sizeof *owned);
    if (!w || !owned) {
        apr_gguf_writer_free(w);
        free(owned);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    apr_gguf_writer_copy_kv(w, base);
    if (model_name) apr_gguf_writer_set_str(w, "general.name", model_name);
    apr_status s = APR_OK;
    for (int64_t i = 0; s == APR_OK && i < apr_gguf_tensor_count(base); i++) {
        const gguf_tensor *t = apr_gguf_tensor_at(base, i);
        int k = 0;
        while (k < n && strcmp(names[k], t->name)) k++;
        if (k == n) {
            apr_gguf_writer_add_tensor(w, t->name, t->dtype, t->n_dims, t->ne, t->data, t->size);
            continue;
        }
        uint32_t dt = dtype >= 0 && t->n_dims == 2 ? (uint32_t)dtype : t->dtype;
        uint64_t size = 0;
        const int64_t cnt = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (!(owned[k] = ft_encode(data[k], cnt, t->ne[0], dt, &size)))
            s = apr_error_set(err, APR_ERR_INVALID, "%s: cannot be written as %s (rows of %lld)", t->name,
                              apr_dtype_name((apr_dtype)dt) ? apr_dtype_name((apr_dtype)dt) : "?", (long long)t->ne[0]);
        else apr_gguf_writer_add_tensor(w, t->name, dt, t->n_dims, t->ne, owned[k], size);
    }
    if (s == APR_OK) s = apr_gguf_writer_write(w, out, err);
    apr_gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(owned[i]);
    free(owned);
    return s;
}

/* general.name of a fully trained model: --name, else what it was trained from. */
static void ft_model_name(const ft_opts *o, const gguf_file *base, int64_t steps, char *buf, size_t size) {
    const char *was = apr_gguf_get_str(base, "general.name");
    if (o->name) snprintf(buf, size, "%s", o->name);
    else if (o->scratch || !was || !*was || !strncmp(was, "random weights", 14))
        snprintf(buf, size, "trained from scratch by apr-finetune (%lld steps)", (long long)steps);
    else snprintf(buf, size, "%.200s, finetuned by apr-finetune (%lld steps)", was, (long long)steps);
}

static apr_status ft_write_full(llama_train *tr, const gguf_file *base, const char *model_name, const char *out, apr_error *err) {
    const int np = apr_llama_train_count(tr);
    const char **names = calloc((size_t)np + 1, sizeof *names);
    float **bufs = calloc((size_t)np + 1, sizeof *bufs);
    apr_status s = names && bufs ? APR_OK : apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int i = 0; s == APR_OK && i < np; i++) {
        const llama_train_tensor *p = apr_llama_train_tensor(tr, i);
        names[i] = p->name;
        if (!(bufs[i] = malloc((size_t)p->n * sizeof(float)))) s = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        else s = apr_llama_train_read(tr, i, LLAMA_TRAIN_WEIGHT, bufs[i], err);
    }
    if (s == APR_OK) s = ft_write_model(base, np, names, (const float *const *)bufs, -1, model_name, out, err);
    for (int i = 0; bufs && i < np; i++) free(bufs[i]);
    free(bufs);
    free(names);
    return s;
}

/* ---------------------------------------------------------------- training */

static volatile sig_atomic_t ft_stop;
static void ft_on_signal(int sig) { ft_stop = sig; }

static void ft_fmt_time(double s, char *buf, size_t size) {
    if (s < 0 || !isfinite(s)) snprintf(buf, size, "?");
    else if (s < 60) snprintf(buf, size, "%.1fs", s);
    else if (s < 3600) snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* The validation loss: the mean over every validation window. */
static apr_status ft_validate(llama_train *tr, const apr_ftdata *d, int32_t *ids, int32_t *targets, int n_tok, int seq_len,
                              double *out, apr_error *err) {
    const int64_t nv = apr_ftdata_count(d, APR_FTDATA_VAL);
    const int per = n_tok / seq_len;
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < nv; i += per) {
        for (int k = 0; k < per; k++) {
            if (i + k < nv) apr_ftdata_window(d, APR_FTDATA_VAL, 0, i + k, ids + k * seq_len, targets + k * seq_len);
            else for (int j = 0; j < seq_len; j++) ids[k * seq_len + j] = 0, targets[k * seq_len + j] = -1;
        }
        double part;
        int64_t c;
        apr_status s = apr_llama_train_eval(tr, ids, targets, &part, &c, err);
        if (s != APR_OK) return s;
        sum += part;
        count += c;
    }
    *out = count ? sum / (double)count : NAN;
    return APR_OK;
}

static void ft_log_line(FILE *log, const char *json) {
    if (!log) return;
    fprintf(log, "%s\n", json);
    fflush(log);
}

/* --from-scratch: the new model's random weights written to a temporary file, opened and unlinked
 * (the mapping keeps it while the run lasts). */
static apr_status ft_scratch(const ft_opts *o, gguf_file **f, apr_error *err) {
    apr_model_init_shape sh;
    const apr_model_init_shape *named = apr_model_init_shape_find(o->scratch);
    apr_status s = named ? (sh = *named, APR_OK) : apr_model_init_shape_parse(o->scratch, &sh, err);
    if (s != APR_OK) return s;
    const char *dir = secure_getenv("TMPDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/apr-finetune-init-%ld.gguf", dir && *dir ? dir : "/tmp", (long)getpid());
    apr_model_init_tok tok = {.gguf_path = o->tokenizer};
    s = apr_model_init_write(&sh, APR_F32, o->tp.seed, &tok, &(apr_model_init_opts){.producer = "apr-finetune"}, path, err);
    if (s == APR_OK) s = apr_gguf_open(path, f, err);
    unlink(path);
    return s;
}

static int ft_train(ft_opts *o) {
    int rc = CLI_EXIT_FAIL;
    apr_error e;
    apr_registry *reg = NULL;
    apr_backend *be = NULL;
    gguf_file *f = NULL;
    llama_model *m = NULL;
    tok_vocab *vocab = NULL;
    apr_ftdata *data = NULL;
    llama_train *tr = NULL;
    int32_t *ids = NULL, *targets = NULL;
    FILE *log = NULL;
    char out_buf[1024], ckpt_buf[1100], config[1024];
    int r = cli_open_backend(&o->c, &reg, &be);
    if (r != CLI_EXIT_OK) return r;
    if (o->scratch ? ft_scratch(o, &f, &e) != APR_OK : apr_hf_open_as_gguf(o->model, &f, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    if (apr_llama_model_load(f, &m, &e) != APR_OK || apr_tok_load_gguf(f, &vocab, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    if (!o->out) {
        const char *b = strrchr(o->model, '/');
        b = b ? b + 1 : o->model;
        size_t len = strlen(b);
        if (len > 5 && !strcmp(b + len - 5, ".gguf")) len -= 5;
        snprintf(out_buf, sizeof out_buf, "%.*s-%s.gguf", (int)len, b, o->tp.method == LLAMA_TRAIN_FULL ? "full" : "lora");
        o->out = out_buf;
    }
    if (!o->ckpt_dir) {
        snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", o->out);
        o->ckpt_dir = o->resume ? o->resume : ckpt_buf;
    }
    if (o->resume && strcmp(o->resume, o->ckpt_dir)) o->ckpt_dir = o->resume;
    apr_ftdata_opts dopt = {.seq_len = o->tp.seq_len, .seed = o->tp.seed, .val_split = o->val_split, .val_file = o->val_file,
                            .strict = o->strict, .chat = apr_chat_detect(apr_gguf_get_str(f, "tokenizer.chat_template")),
                            .warn = stderr};
    if (apr_ftdata_open(o->data, vocab, &dopt, &data, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    apr_ftdata_stats ds;
    apr_ftdata_stats_get(data, &ds);
    const int64_t n_train = apr_ftdata_count(data, APR_FTDATA_TRAIN), n_val = apr_ftdata_count(data, APR_FTDATA_VAL);
    const int64_t per_step = (int64_t)o->tp.n_seqs * o->grad_accum;
    const int64_t steps_per_epoch = (n_train + per_step - 1) / per_step;
    const int64_t total = o->steps ? o->steps : steps_per_epoch * o->epochs;
    fprintf(stderr, "data: %s: %lld examples, %lld tokens (%lld with loss), %lld skipped lines; %lld training and %lld validation "
            "windows of %d tokens\n", o->data, (long long)ds.examples, (long long)ds.tokens, (long long)ds.loss_tokens,
            (long long)ds.skipped, (long long)n_train, (long long)n_val, o->tp.seq_len);
    double t0 = cli_now();
    if (apr_llama_train_new(m, &o->tp, &be, 1, &tr, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    int64_t n_weights = 0;
    for (int i = 0; i < apr_llama_train_count(tr); i++) n_weights += apr_llama_train_tensor(tr, i)->n;
    static const char *const methods[] = {"lora", "qlora", "full"};
    fprintf(stderr, "train: %s on %s (%s, %d threads): %d tensors, %lld trainable weights; %lld steps of %lld windows; ready in %.1fs\n",
            methods[o->tp.method], m->hp.arch, apr_backend_name(be), apr_backend_threads(be), apr_llama_train_count(tr),
            (long long)n_weights, (long long)total, (long long)per_step, cli_now() - t0);
    ft_config(o, o->model, config, sizeof config);
    ft_state st = {.best_val = INFINITY};
    if (o->resume) {
        if (ft_resume(tr, o->resume, config, &st, &e) != APR_OK) {
            fprintf(stderr, "error: %s\n", e.msg);
            goto done;
        }
        fprintf(stderr, "resume: %s: step %lld, epoch %lld, window %lld\n", o->resume, (long long)st.step, (long long)st.epoch,
                (long long)st.index);
    }
    if (o->log && !(log = fopen(o->log, o->resume ? "a" : "w"))) {
        fprintf(stderr, "error: %s: %s\n", o->log, strerror(errno));
        goto done;
    }
    const int n_tok = o->tp.seq_len * o->tp.n_seqs;
    ids = malloc((size_t)n_tok * (size_t)o->grad_accum * sizeof *ids);
    targets = malloc((size_t)n_tok * (size_t)o->grad_accum * sizeof *targets);
    if (!ids || !targets) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    struct sigaction sa = {.sa_handler = ft_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* the loss before training (a fresh run), the baseline the validation curve starts from */
    if (n_val > 0 && st.step == 0) {
        double vl;
        if (ft_validate(tr, data, ids, targets, n_tok, o->tp.seq_len, &vl, &e) != APR_OK) {
            fprintf(stderr, "error: validation: %s\n", e.msg);
            goto done;
        }
        char line[128];
        fprintf(stderr, "step 0  validation loss %.4f\n", vl);
        snprintf(line, sizeof line, "{\"step\": 0, \"val_loss\": %.6g}", vl);
        ft_log_line(log, line);
        if (o->c.json) printf("%s\n", line);
    }
    /* a test hook: die of SIGKILL right after the checkpoint of this step, as a killed run would */
    const char *kill_at = getenv("APR_FINETUNE_KILL_AFTER");
    const double start = cli_now();
    const int64_t first = st.step;
    int64_t tokens_run = 0;
    rc = CLI_EXIT_OK;
    while (st.step < total && !ft_stop) {
        /* the step's windows, in the epoch's order */
        for (int64_t w = 0; w < per_step; w++) {
            if (st.index >= n_train) {
                st.epoch++;
                st.index = 0;
            }
            apr_ftdata_window(data, APR_FTDATA_TRAIN, st.epoch, st.index++, ids + w * o->tp.seq_len, targets + w * o->tp.seq_len);
        }
        const float lr = (float)ft_lr(o, st.step, total);
        llama_train_result res;
        if (apr_llama_train_step(tr, (int)o->grad_accum, ids, targets, lr, &res, &e) != APR_OK) {
            fprintf(stderr, "\nerror: %s\n", e.msg);
            fprintf(stderr, "the last good checkpoint stays in %s\n", o->ckpt_dir);
            rc = CLI_EXIT_FAIL;
            break;
        }
        st.step++;
        tokens_run += (int64_t)n_tok * o->grad_accum;
        const double el = cli_now() - start, tps = (double)tokens_run / (el > 0 ? el : 1e-9);
        const double eta = (double)(total - st.step) * el / (double)(st.step - first);
        char els[32], etas[32], line[512];
        ft_fmt_time(el, els, sizeof els);
        ft_fmt_time(eta, etas, sizeof etas);
        if (!o->c.json)
            fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.3g  grad %.3g  %.0f tok/s  elapsed %s  eta %s\n", (long long)st.step,
                    (long long)total, res.loss, (double)lr, res.grad_norm, tps, els, etas);
        snprintf(line, sizeof line, "{\"step\": %lld, \"loss\": %.6g, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens\": %lld, "
                 "\"tok_s\": %.6g, \"elapsed_s\": %.6g, \"eta_s\": %.6g, \"epoch\": %lld}", (long long)st.step, res.loss, (double)lr,
                 res.grad_norm, (long long)res.tokens, tps, el, eta, (long long)st.epoch);
        ft_log_line(log, line);
        if (o->c.json) printf("%s\n", line);
        bool stop_early = false;
        if (n_val > 0 && (st.step % o->eval_every == 0 || st.step == total)) {
            double vl;
            if (ft_validate(tr, data, ids, targets, n_tok, o->tp.seq_len, &vl, &e) != APR_OK) {
                fprintf(stderr, "error: validation: %s\n", e.msg);
                rc = CLI_EXIT_FAIL;
                break;
            }
            if (vl < st.best_val) st.best_val = vl, st.bad_evals = 0;
            else st.bad_evals++;
            fprintf(stderr, "step %lld  validation loss %.4f (best %.4f)\n", (long long)st.step, vl, st.best_val);
            snprintf(line, sizeof line, "{\"step\": %lld, \"val_loss\": %.6g}", (long long)st.step, vl);
            ft_log_line(log, line);
            if (o->c.json) printf("%s\n", line);
            stop_early = o->patience > 0 && st.bad_evals >= o->patience;
        }
        const bool last = st.step == total || ft_stop || stop_early;
        if ((o->save_every && (st.step % o->save_every == 0 || last)) || (ft_stop && !o->save_every)) {
            if (ft_save(tr, o->ckpt_dir, config, &st, &e) != APR_OK) {
                fprintf(stderr, "error: checkpoint: %s\n", e.msg);
                rc = CLI_EXIT_FAIL;
                break;
            }
            if (!o->c.json) fprintf(stderr, "checkpoint: %s (step %lld)\n", o->ckpt_dir, (long long)st.step);
            if (kill_at && atoll(kill_at) == st.step) raise(SIGKILL);
        }
        if (stop_early) {
            fprintf(stderr, "stopping early: no validation improvement for %ld evaluations\n", o->patience);
            rc = FT_EXIT_EARLY;
            break;
        }
    }
    if (rc == CLI_EXIT_OK || rc == FT_EXIT_EARLY) {
        char mname[256];
        ft_model_name(o, f, st.step, mname, sizeof mname);
        apr_status s = o->tp.method == LLAMA_TRAIN_FULL ? ft_write_full(tr, f, mname, o->out, &e)
                                                        : ft_write_adapter(tr, m, &o->tp, o->out, &e);
        if (s != APR_OK) {
            fprintf(stderr, "error: %s\n", e.msg);
            rc = CLI_EXIT_FAIL;
        } else {
            fprintf(stderr, "wrote %s (%s, step %lld)\n", o->out, o->tp.method == LLAMA_TRAIN_FULL ? "model" : "LoRA adapter",
                    (long long)st.step);
        }
        if (ft_stop) {
            fprintf(stderr, "stopped by signal %d after step %lld; resume with --resume %s\n", (int)ft_stop, (long long)st.step,
                    o->ckpt_dir);
            rc = FT_EXIT_SIGNAL;
        }
    }
done:
    if (log) fclose(log);
    free(ids);
    free(targets);
    apr_llama_train_free(tr);
    apr_ftdata_free(data);
    apr_tok_free(vocab);
    apr_llama_model_free(m);
    apr_gguf_close(f);
    apr_backend_close(be);
    apr_registry_close(reg);
    return rc;
}

/* ---------------------------------------------------------------- plot and merge */

static int ft_plot(int argc, char **argv) {
    if (argc != 4 || !strcmp(argv[2], "--help")) {
        fprintf(argc == 3 && !strcmp(argv[2], "--help") ? stdout : stderr, "usage: apr-finetune plot LOG OUT.svg\n");
        return argc == 3 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    apr_error e;
    if (apr_ftplot_svg(argv[2], argv[3], &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        return CLI_EXIT_FAIL;
    }
    fprintf(stderr, "wrote %s\n", argv[3]);
    return CLI_EXIT_OK;
}

static int ft_merge(int argc, char **argv) {
    const char *pos[3] = {0};
    int np = 0, dtype = -1;
    double scale = 1;
    for (int i = 2; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: apr-finetune merge BASE ADAPTER OUT [--scale S] [--type TYPE]\n");
            return CLI_EXIT_OK;
        } else if ((v = cli_option_value(argc, argv, &i, "--scale"))) {
            if (!cli_option_float("--scale", v, -1e6, 1e6, &scale)) return CLI_EXIT_USAGE;
        } else if ((v = cli_option_value(argc, argv, &i, "--type"))) {
            apr_dtype t;
            if (!apr_dtype_parse(v, &t) || t == APR_I32 || t == APR_Q8_K) {
                fprintf(stderr, "error: --type %s: f32, f16, bf16 or a block type (q4_0, q8_0, q4_K, ...)\n", v);
                return CLI_EXIT_USAGE;
            }
            dtype = (int)t;
        } else if (argv[i][0] == '-' || np == 3) {
            fprintf(stderr, "error: unknown argument '%s' (see apr-finetune merge --help)\n", argv[i]);
            return CLI_EXIT_USAGE;
        } else pos[np++] = argv[i];
    }
    if (np != 3) {
        fprintf(stderr, "usage: apr-finetune merge BASE ADAPTER OUT [--scale S] [--type TYPE]\n");
        return CLI_EXIT_USAGE;
    }
    apr_error e;
    gguf_file *f = NULL;
    llama_model *m = NULL;
    lora_adapter *a = NULL;
    lora_applied *ap = NULL;
    int rc = CLI_EXIT_FAIL;
    const float sc = (float)scale;
    if (apr_hf_import_check_output(pos[0], NULL, pos[2], &e) != APR_OK || apr_hf_open_as_gguf(pos[0], &f, &e) != APR_OK ||
        apr_llama_model_load(f, &m, &e) != APR_OK || apr_lora_open(pos[1], &a, &e) != APR_OK ||
        apr_lora_apply(m, &a, &sc, 1, &ap, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    const int n = apr_lora_applied_count(ap);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    const float **data = calloc((size_t)n + 1, sizeof *data);
    if (!names || !data) fprintf(stderr, "error: out of memory\n");
    else {
        for (int i = 0; i < n; i++) {
            names[i] = apr_lora_applied_tensor(ap, i)->name;
            data[i] = apr_lora_applied_tensor(ap, i)->data;
        }
        if (ft_write_model(f, n, names, data, dtype, NULL, pos[2], &e) != APR_OK) fprintf(stderr, "error: %s\n", e.msg);
        else {
            fprintf(stderr, "wrote %s: %d weights of %s merged with %s (scale %g)\n", pos[2], n, pos[0], pos[1], scale);
            rc = CLI_EXIT_OK;
        }
    }
    free(names);
    free(data);
done:
    apr_lora_applied_free(ap);
    apr_lora_close(a);
    apr_llama_model_free(m);
    apr_gguf_close(f);
    return rc;
}

static int ft_vocab(int argc, char **argv) {
    const char *pos[2] = {0};
    int np = 0;
    long size = 4096;
    for (int i = 2; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: apr-finetune vocab CORPUS OUT.gguf [--size N]\n");
            return CLI_EXIT_OK;
        } else if ((v = cli_option_value(argc, argv, &i, "--size"))) {
            if (!cli_option_int("--size", v, 259, 1 << 22, &size)) return CLI_EXIT_USAGE;
        } else if (argv[i][0] == '-' || np == 2) {
            fprintf(stderr, "error: unknown argument '%s' (see apr-finetune vocab --help)\n", argv[i]);
            return CLI_EXIT_USAGE;
        } else pos[np++] = argv[i];
    }
    if (np != 2) {
        fprintf(stderr, "usage: apr-finetune vocab CORPUS OUT.gguf [--size N]\n");
        return CLI_EXIT_USAGE;
    }
    apr_error e;
    apr_bpe_vocab *bv = NULL;
    const double t0 = cli_now();
    if (apr_bpe_train_file(pos[0], &(apr_bpe_options){.vocab_size = (int32_t)size}, &bv, &e) != APR_OK ||
        apr_bpe_write_gguf(bv, pos[1], &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        apr_bpe_free(bv);
        return CLI_EXIT_FAIL;
    }
    fprintf(stderr, "wrote %s: %d tokens (%d merges) from %s in %.1fs%s%s\n", pos[1], bv->n_tokens, bv->n_merges, pos[0],
            cli_now() - t0, bv->complete ? "" : "; ", bv->complete ? "" : bv->note);
    apr_bpe_free(bv);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
    cli_signal_cleanup_temps();
    if (argc >= 2 && !strcmp(argv[1], "plot")) return ft_plot(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "merge")) return ft_merge(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "vocab")) return ft_vocab(argc, argv);
    ft_opts o = {0};
    int r = ft_parse(argc, argv, &o);
    if (o.c.help) {
        printf(ft_usage, cli_common_help);
        return CLI_EXIT_OK;
    }
    if (r >= 0) return r;
    return ft_train(&o);
}

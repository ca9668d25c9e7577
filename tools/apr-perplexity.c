/* apr-perplexity.c — perplexity of a model over a text, as llama.cpp's llama-perplexity measures it, and its KL divergence from a base model. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/cli_signal.h"
#include "common/cli_text.h"
#include "gguf.h"
#include "hf_import.h"
#include "llama.h"
#include "tokenizer.h"

static const char *ppl_usage =
    "usage: apr-perplexity --model FILE|DIR --file TEXT [--ctx N] [--chunks N] [--kl-base BASE] [options]\n"
    "\n"
    "Measures how well the model predicts TEXT, the way llama.cpp's llama-perplexity does, so the\n"
    "numbers compare with its own:\n"
    "  - TEXT is tokenized whole (with BOS in front when the model's tokenizer adds one) and cut into\n"
    "    chunks of N consecutive tokens (the tail that does not fill a chunk is dropped); the first\n"
    "    token of every chunk is replaced by BOS (when the model adds one);\n"
    "  - each chunk is evaluated from an empty context with the logits of every position; the\n"
    "    logits at positions j = N/2 .. N-2 score the next token, at j + 1, so each chunk scores\n"
    "    N - 1 - N/2 tokens (63 for N = 128) that all have at least N/2 tokens of context;\n"
    "  - perplexity = exp(mean negative log-likelihood over every scored token), printed with\n"
    "    +/- perplexity * the standard error of the mean NLL (sqrt(var / (count - 1))).\n"
    "With --kl-base, the base model (e.g. the f16 model a quantized one came from) runs on the same\n"
    "tokens, and for every scored position the tool reports KL(base || model) = sum p_base *\n"
    "(log p_base - log p_model) over the vocabulary: its mean (+/- standard error), median, 99th\n"
    "percentile (nearest rank) and maximum, the share of positions where both models' most likely\n"
    "token is the same, and the base model's perplexity. Both models must have the same vocabulary\n"
    "size. Progress (one line per chunk) goes to stderr.\n"
    "\n"
    "options:\n"
    "  --model FILE|DIR   the model: a GGUF file or a Hugging Face folder\n"
    "  --file TEXT        the text to score (e.g. wiki.test.raw), at most 256 MiB\n"
    "  --ctx N            tokens per chunk (default 128; at least 4)\n"
    "  --chunks N         score at most N chunks (default: all)\n"
    "  --kl-base BASE     a GGUF file or Hugging Face folder to compare against\n"
    "  --no-pack          keep weights in the file's block layout (no repacking for faster kernels)\n"
    "%s"
    "\n"
    "exit status: 0 ok, 1 a model, the text or a backend failed, 2 usage error\n";

typedef struct ppl_opts {
    cli_common c;
    const char *model, *file, *base;
    long n_ctx, max_chunks;
    bool no_pack;          /* --no-pack */
} ppl_opts;

static int ppl_parse(int argc, char **argv, ppl_opts *o) {
    o->n_ctx = 128;
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_common(argc, argv, &i, &o->c);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        const char *v;
        long n;
        if ((v = cli_option_value(argc, argv, &i, "--model"))) o->model = v;
        else if ((v = cli_option_value(argc, argv, &i, "--file"))) o->file = v;
        else if ((v = cli_option_value(argc, argv, &i, "--kl-base"))) o->base = v;
        else if (!strcmp(argv[i], "--no-pack")) o->no_pack = true;
        else if ((v = cli_option_value(argc, argv, &i, "--ctx"))) {
            if (!cli_option_int("--ctx", v, 4, 1 << 20, &n)) return CLI_EXIT_USAGE;
            o->n_ctx = n;
        } else if ((v = cli_option_value(argc, argv, &i, "--chunks"))) {
            if (!cli_option_int("--chunks", v, 1, 1L << 30, &n)) return CLI_EXIT_USAGE;
            o->max_chunks = n;
        } else {
            fprintf(stderr, "error: unknown argument '%s' (see apr-perplexity --help)\n", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (o->c.help) return CLI_EXIT_OK;
    if (!o->model || !*o->model) { fprintf(stderr, "error: --model FILE is required (see apr-perplexity --help)\n"); return CLI_EXIT_USAGE; }
    if (!o->file || !*o->file) { fprintf(stderr, "error: --file TEXT is required (see apr-perplexity --help)\n"); return CLI_EXIT_USAGE; }
    if (o->base && !*o->base) { fprintf(stderr, "error: --kl-base needs a model\n"); return CLI_EXIT_USAGE; }
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- models */

typedef struct ppl_model {
    const char *path;
    gguf_file *f;
    llama_model *m;
    llama_pack *pack;      /* its weights packed once for every chunk's session; NULL with --no-pack */
} ppl_model;

static bool ppl_load(ppl_model *pm, const char *path) {
    apr_error e;
    pm->path = path;
    cli_signal_cleanup_temps(); /* a folder is converted through a temporary folder */
    if (apr_hf_open_as_gguf(path, &pm->f, &e) != APR_OK || apr_llama_model_load(pm->f, &pm->m, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        return false;
    }
    return true;
}

/* Packs the model's weights on be for the whole run, so each chunk's session only takes references. */
static bool ppl_pack(ppl_model *pm, apr_backend *be) {
    apr_error e;
    if (apr_llama_pack_new(pm->m, be, &pm->pack, &e) == APR_OK) return true;
    fprintf(stderr, "error: %s: %s\n", pm->path, e.msg);
    return false;
}

static void ppl_unload(ppl_model *pm) {
    apr_llama_model_free(pm->m);
    apr_gguf_close(pm->f);
}

/* Runs ids[0..n) from an empty context; logits gets n x n_vocab. */
static bool ppl_eval(const ppl_model *pm, apr_backend *be, const int32_t *ids, int n, float *logits) {
    apr_error e;
    llama_session *s = NULL;
    llama_session_params p = apr_llama_session_defaults(n);
    p.pack_weights = pm->pack != NULL;
    bool ok = apr_llama_session_new_ex(pm->m, &p, &be, 1, &s, &e) == APR_OK &&
              apr_llama_session_eval(s, ids, n, true, logits, &e) == APR_OK;
    if (!ok) fprintf(stderr, "\nerror: %s: %s\n", pm->path, e.msg);
    apr_llama_session_free(s);
    return ok;
}

/* log of sum exp(l[i]) over the row, and its argmax. */
static double ppl_logsumexp(const float *l, int n, int *argmax) {
    float mx = l[0];
    int am = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > mx) mx = l[i], am = i;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)l[i] - (double)mx);
    *argmax = am;
    return (double)mx + log(s);
}

/* KL(p || q) for p = softmax(a), q = softmax(b). */
static double ppl_kl(const float *a, double lse_a, const float *b, double lse_b, int n) {
    double kl = 0;
    for (int i = 0; i < n; i++) {
        double la = (double)a[i] - lse_a, lb = (double)b[i] - lse_b;
        kl += exp(la) * (la - lb);
    }
    return kl > 0 ? kl : 0; /* rounding can leave -1e-17 for identical rows */
}

static int ppl_cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Nearest-rank percentile of sorted v. */
static double ppl_percentile(const double *v, int64_t n, double pct) {
    if (!n) return 0;
    int64_t k = (int64_t)ceil(pct / 100.0 * (double)n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

/* Mean and standard error of the mean from a sum and a sum of squares. */
static void ppl_mean_sem(double sum, double sum2, int64_t n, double *mean, double *sem) {
    *mean = n ? sum / (double)n : 0;
    double var = n ? sum2 / (double)n - *mean * *mean : 0;
    *sem = n > 1 && var > 0 ? sqrt(var / (double)(n - 1)) : 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    ppl_opts o = {0};
    int rc = ppl_parse(argc, argv, &o);
    if (rc != CLI_EXIT_OK) return rc;
    if (o.c.help) {
        printf(ppl_usage, cli_common_help);
        return CLI_EXIT_OK;
    }
    rc = CLI_EXIT_FAIL;
    double t0 = cli_now();
    apr_error e;
    ppl_model pm = {0}, pb = {0};
    apr_registry *reg = NULL;
    apr_backend *be = NULL;
    tok_vocab *vocab = NULL;
    char *text = NULL;
    int32_t *ids = NULL, *chunk = NULL;
    float *logits = NULL, *base_logits = NULL;
    double *kls = NULL;
    size_t text_len = 0;
    if (!(text = cli_read_file(o.file, CLI_TEXT_MAX, &text_len))) {
        if (errno == EFBIG) fprintf(stderr, "error: %s holds more than %zu MiB, more text than apr-perplexity reads\n", o.file, CLI_TEXT_MAX >> 20);
        else fprintf(stderr, "error: cannot read %s: %s\n", o.file, strerror(errno));
        goto done;
    }
    if (!ppl_load(&pm, o.model)) goto done;
    if (o.base && !ppl_load(&pb, o.base)) goto done;
    const int n_vocab = pm.m->hp.n_vocab;
    if (o.base && pb.m->hp.n_vocab != n_vocab) {
        fprintf(stderr, "error: %s has a vocabulary of %d tokens and the base %s one of %d: KL divergence needs the same vocabulary\n",
                o.model, n_vocab, o.base, pb.m->hp.n_vocab);
        goto done;
    }
    if (apr_tok_load_gguf(pm.f, &vocab, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
    if ((rc = cli_open_backend(&o.c, &reg, &be)) != CLI_EXIT_OK) goto done;
    rc = CLI_EXIT_FAIL;
    if (!o.no_pack && (!ppl_pack(&pm, be) || (o.base && !ppl_pack(&pb, be)))) goto done;

    /* tokenize: BOS in front of the text (llama.cpp: common_tokenize(..., add_special = true)) */
    bool add_bos = apr_tok_add_bos(vocab) && apr_tok_bos(vocab) >= 0;
    unsigned flags = add_bos ? TOK_ADD_BOS : 0;
    int64_t cap = (int64_t)text_len + 16, n_tok; /* tokens never outnumber bytes by much: one call */
    for (;;) {
        if (!(ids = malloc((size_t)cap * sizeof *ids)) || (n_tok = apr_tok_encode(vocab, text, text_len, flags, ids, cap)) < 0) {
            fprintf(stderr, "error: out of memory tokenizing %s\n", o.file);
            goto done;
        }
        if (n_tok <= cap) break;
        free(ids);
        ids = NULL;
        cap = n_tok;
    }
    const int n_ctx = (int)o.n_ctx;
    int64_t n_chunks = n_tok / n_ctx;
    if (o.max_chunks && n_chunks > o.max_chunks) n_chunks = o.max_chunks;
    if (n_chunks < 1) {
        fprintf(stderr, "error: %s is %lld tokens, fewer than one chunk of --ctx %d\n", o.file, (long long)n_tok, n_ctx);
        goto done;
    }
    if (n_ctx > pm.m->hp.n_ctx_train)
        fprintf(stderr, "warning: --ctx %d is more than the %d positions %s was trained with\n", n_ctx, pm.m->hp.n_ctx_train, o.model);
    const int first = n_ctx / 2, per_chunk = n_ctx - 1 - first;
    chunk = malloc((size_t)n_ctx * sizeof *chunk);
    logits = malloc((size_t)n_ctx * (size_t)n_vocab * sizeof *logits);
    if (o.base) {
        base_logits = malloc((size_t)n_ctx * (size_t)n_vocab * sizeof *base_logits);
        kls = malloc((size_t)(n_chunks * per_chunk) * sizeof *kls);
    }
    if (!chunk || !logits || (o.base && (!base_logits || !kls))) { fprintf(stderr, "error: out of memory for the logits\n"); goto done; }
    char packed[64] = "";
    if (apr_backend_packed_bytes(be) > 0)
        snprintf(packed, sizeof packed, ", %.1f MiB of weights packed", (double)apr_backend_packed_bytes(be) / (1 << 20));
    fprintf(stderr, "%s: %lld tokens, %lld chunks of %d, scoring %d tokens per chunk, backend %s (%d threads)%s\n", o.file,
            (long long)n_tok, (long long)n_chunks, n_ctx, per_chunk, apr_backend_name(be), apr_backend_threads(be), packed);

    double nll = 0, nll2 = 0, bnll = 0, bnll2 = 0, kl_sum = 0, kl_sum2 = 0;
    int64_t n_scored = 0, n_same = 0;
    double t_eval = 0;
    for (int64_t c = 0; c < n_chunks; c++) {
        memcpy(chunk, ids + c * n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (add_bos) chunk[0] = apr_tok_bos(vocab);
        double t1 = cli_now();
        if (!ppl_eval(&pm, be, chunk, n_ctx, logits)) goto done;
        if (o.base && !ppl_eval(&pb, be, chunk, n_ctx, base_logits)) goto done;
        t_eval += cli_now() - t1;
        for (int j = first; j < n_ctx - 1; j++) {
            const float *l = logits + (size_t)j * (size_t)n_vocab;
            int32_t next = ids[c * n_ctx + j + 1];
            if (next < 0 || next >= n_vocab) {
                fprintf(stderr, "\nerror: token id %d of %s is outside the model's vocabulary of %d\n", next, o.file, n_vocab);
                goto done;
            }
            int am;
            double lse = ppl_logsumexp(l, n_vocab, &am);
            double v = lse - (double)l[next];
            nll += v;
            nll2 += v * v;
            if (o.base) {
                const float *bl = base_logits + (size_t)j * (size_t)n_vocab;
                int bam;
                double blse = ppl_logsumexp(bl, n_vocab, &bam);
                double bv = blse - (double)bl[next];
                bnll += bv;
                bnll2 += bv * bv;
                double kl = ppl_kl(bl, blse, l, lse, n_vocab);
                kls[n_scored] = kl;
                kl_sum += kl;
                kl_sum2 += kl * kl;
                n_same += am == bam;
            }
            n_scored++;
        }
        double mean, sem;
        ppl_mean_sem(nll, nll2, n_scored, &mean, &sem);
        if (o.base)
            fprintf(stderr, "[%lld/%lld] ppl %.4f  mean KL %.6f  same top %.2f%%\n", (long long)(c + 1), (long long)n_chunks,
                    exp(mean), kl_sum / (double)n_scored, 100.0 * (double)n_same / (double)n_scored);
        else fprintf(stderr, "[%lld/%lld] ppl %.4f\n", (long long)(c + 1), (long long)n_chunks, exp(mean));
    }
    double mean, sem, ppl, ppl_err;
    ppl_mean_sem(nll, nll2, n_scored, &mean, &sem);
    ppl = exp(mean);
    ppl_err = ppl * sem;
    double bmean = 0, bsem = 0, kl_mean = 0, kl_sem = 0, kl_med = 0, kl_p99 = 0, kl_max = 0, same = 0;
    if (o.base) {
        ppl_mean_sem(bnll, bnll2, n_scored, &bmean, &bsem);
        ppl_mean_sem(kl_sum, kl_sum2, n_scored, &kl_mean, &kl_sem);
        qsort(kls, (size_t)n_scored, sizeof *kls, ppl_cmp_double);
        kl_med = ppl_percentile(kls, n_scored, 50);
        kl_p99 = ppl_percentile(kls, n_scored, 99);
        kl_max = kls[n_scored - 1];
        same = 100.0 * (double)n_same / (double)n_scored;
    }
    double secs = cli_now() - t0;
    if (o.c.json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", o.model);
        cJSON_AddStringToObject(root, "file", o.file);
        cJSON_AddNumberToObject(root, "ctx", n_ctx);
        cJSON_AddNumberToObject(root, "tokens", (double)n_tok);
        cJSON_AddNumberToObject(root, "chunks", (double)n_chunks);
        cJSON_AddNumberToObject(root, "scored", (double)n_scored);
        cJSON_AddNumberToObject(root, "perplexity", ppl);
        cJSON_AddNumberToObject(root, "perplexity_err", ppl_err);
        cJSON_AddNumberToObject(root, "nll_mean", mean);
        cJSON_AddNumberToObject(root, "nll_sem", sem);
        if (o.base) {
            cJSON *kl = cJSON_CreateObject();
            cJSON_AddStringToObject(kl, "base", o.base);
            cJSON_AddNumberToObject(kl, "base_perplexity", exp(bmean));
            cJSON_AddNumberToObject(kl, "base_perplexity_err", exp(bmean) * bsem);
            cJSON_AddNumberToObject(kl, "mean", kl_mean);
            cJSON_AddNumberToObject(kl, "mean_err", kl_sem);
            cJSON_AddNumberToObject(kl, "median", kl_med);
            cJSON_AddNumberToObject(kl, "p99", kl_p99);
            cJSON_AddNumberToObject(kl, "max", kl_max);
            cJSON_AddNumberToObject(kl, "same_top_pct", same);
            cJSON_AddItemToObject(root, "kl_divergence", kl);
        }
        cJSON_AddStringToObject(root, "backend", apr_backend_name(be));
        cJSON_AddNumberToObject(root, "threads", apr_backend_threads(be));
        cJSON_AddNumberToObject(root, "eval_tok_s", t_eval > 0 ? (double)(n_chunks * n_ctx * (o.base ? 2 : 1)) / t_eval : 0);
        cJSON_AddNumberToObject(root, "seconds", secs);
        char *out = cJSON_PrintUnformatted(root);
        if (out) puts(out);
        free(out);
        cJSON_Delete(root);
    } else {
        printf("perplexity: %.4f +/- %.4f (%lld tokens scored in %lld chunks of %d)\n", ppl, ppl_err, (long long)n_scored,
               (long long)n_chunks, n_ctx);
        if (o.base) {
            printf("base perplexity: %.4f +/- %.4f (%s)\n", exp(bmean), exp(bmean) * bsem, o.base);
            printf("KL(base || model): mean %.6f +/- %.6f, median %.6f, 99th percentile %.6f, max %.6f\n", kl_mean, kl_sem,
                   kl_med, kl_p99, kl_max);
            printf("same top token: %.2f%%\n", same);
        }
    }
    fprintf(stderr, "%.2f s, %.1f tokens/s evaluated\n", secs,
            t_eval > 0 ? (double)(n_chunks * n_ctx * (o.base ? 2 : 1)) / t_eval : 0.0);
    rc = CLI_EXIT_OK;
done:
    free(kls);
    free(base_logits);
    free(logits);
    free(chunk);
    free(ids);
    free(text);
    apr_tok_free(vocab);
    apr_llama_pack_free(pb.pack); /* while the backend they are packed on is open */
    apr_llama_pack_free(pm.pack);
    apr_backend_close(be);
    apr_registry_close(reg);
    ppl_unload(&pb);
    ppl_unload(&pm);
    return rc;
}

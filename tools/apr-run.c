/* apr-run.c — runs a GGUF model: prompt in, tokens streamed out, speed statistics on stderr. */
#include <cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "gguf.h"
#include "llama.h"
#include "sampler.h"
#include "tokenizer.h"

static const char *run_usage =
    "usage: apr-run --model FILE [--prompt TEXT | --file F | --tokens \"ID ID ...\"] [-n N] [options]\n"
    "\n"
    "Runs a GGUF model (architecture llama) and streams the generated text to stdout as it is\n"
    "produced; at the end prints load time, prefill and decode speed and the backend to stderr.\n"
    "Ctrl-C stops generation cleanly and still prints the statistics.\n"
    "\n"
    "options:\n"
    "  --model FILE          the model (GGUF v2/v3)\n"
    "  --prompt TEXT         the prompt (default: empty, i.e. generation starts from BOS)\n"
    "  --file F              read the prompt from a file\n"
    "  --tokens \"ID ...\"     the prompt as token ids instead of text\n"
    "  --no-bos              do not put BOS in front of the prompt\n"
    "  -n N                  tokens to generate (default 128; generation also stops at EOS)\n"
    "  --ctx N               context positions held in the KV cache (default: the model's, at most 4096)\n"
    "  --temp T              temperature; 0 = greedy (default 0.8)\n"
    "  --top-k K, --top-p P, --min-p P    the sampler chain (defaults 40, 0.95, 0.05)\n"
    "  --repeat-penalty R    (default 1 = off), over the last 64 tokens\n"
    "  --seed S              sampling seed (default 0); the same seed gives the same tokens\n"
    "  --dump-logits FILE    write the logits of every processed position, raw little-endian f32\n"
    "                        (positions x vocab)\n"
    "  --json                print one JSON object at the end instead of streaming text\n"
    "%s"
    "\n"
    "exit status: 0 ok, 1 the model or a backend failed, 2 usage error\n";

static volatile sig_atomic_t run_stop;
static void run_on_sigint(int sig) { (void)sig; run_stop = 1; }

/* Generated text kept for --json. */
typedef struct run_text {
    char *buf;    /* NUL-terminated */
    size_t len, cap;
} run_text;

/* Streams a decoded piece to stdout, or keeps it for the JSON object. */
static void run_emit(run_text *t, const char *piece, size_t len, bool to_stdout) {
    if (!piece || !len) return;
    if (to_stdout) {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
        return;
    }
    if (t->len + len + 1 > t->cap) {
        size_t cap = (t->len + len + 1) * 2;
        char *nb = realloc(t->buf, cap);
        if (!nb) return; /* the ids in the JSON stay complete */
        t->buf = nb;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, piece, len);
    t->len += len;
    t->buf[t->len] = 0;
}

static double run_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct run_opts {
    cli_common c;
    const char *model, *tokens, *dump_logits, *prompt, *prompt_file;
    bool no_bos;
    long n_predict, n_ctx;
    sampler_params sp;
} run_opts;

static bool run_parse_float(const char *s, float *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end) return false;
    *out = (float)v;
    return true;
}

static int run_parse(int argc, char **argv, run_opts *o) {
    o->sp = sampler_defaults();
    o->n_predict = 128;
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_common(argc, argv, &i, &o->c);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        const char *v;
        long n;
        float f;
        if ((v = cli_option_value(argc, argv, &i, "--model"))) o->model = v;
        else if ((v = cli_option_value(argc, argv, &i, "--tokens"))) o->tokens = v;
        else if ((v = cli_option_value(argc, argv, &i, "--prompt"))) o->prompt = v;
        else if ((v = cli_option_value(argc, argv, &i, "--file"))) o->prompt_file = v;
        else if ((v = cli_option_value(argc, argv, &i, "--dump-logits"))) o->dump_logits = v;
        else if (!strcmp(argv[i], "--no-bos")) o->no_bos = true;
        else if ((v = cli_option_value(argc, argv, &i, "-n")) || (v = cli_option_value(argc, argv, &i, "--n-predict"))) {
            if (!cli_parse_int(v, 0, 1 << 24, &n)) { fprintf(stderr, "error: -n wants a count, got '%s'\n", v); return CLI_EXIT_USAGE; }
            o->n_predict = n;
        } else if ((v = cli_option_value(argc, argv, &i, "--ctx"))) {
            if (!cli_parse_int(v, 1, 1 << 24, &n)) { fprintf(stderr, "error: --ctx wants a positive count, got '%s'\n", v); return CLI_EXIT_USAGE; }
            o->n_ctx = n;
        } else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            if (!cli_parse_int(v, 0, 0x7fffffffL, &n)) { fprintf(stderr, "error: --seed wants a number, got '%s'\n", v); return CLI_EXIT_USAGE; }
            o->sp.seed = (uint64_t)n;
        } else if ((v = cli_option_value(argc, argv, &i, "--top-k"))) {
            if (!cli_parse_int(v, 0, 1 << 24, &n)) { fprintf(stderr, "error: --top-k wants a count, got '%s'\n", v); return CLI_EXIT_USAGE; }
            o->sp.top_k = (int)n;
        } else {
            struct { const char *name; float *dst; float lo, hi; } fl[] = {
                {"--temp", &o->sp.temperature, 0, 100}, {"--top-p", &o->sp.top_p, 0, 1}, {"--min-p", &o->sp.min_p, 0, 1},
                {"--repeat-penalty", &o->sp.repeat_penalty, 0.01f, 100}};
            bool done = false;
            for (size_t k = 0; k < sizeof fl / sizeof *fl && !done; k++) {
                if (!(v = cli_option_value(argc, argv, &i, fl[k].name))) continue;
                if (!run_parse_float(v, &f) || f < fl[k].lo || f > fl[k].hi) {
                    fprintf(stderr, "error: %s wants a number from %g to %g, got '%s'\n", fl[k].name, fl[k].lo, fl[k].hi, v);
                    return CLI_EXIT_USAGE;
                }
                *fl[k].dst = f;
                done = true;
            }
            if (!done) {
                fprintf(stderr, "error: unknown argument '%s' (see apr-run --help)\n", argv[i]);
                return CLI_EXIT_USAGE;
            }
        }
    }
    if (o->c.help) return CLI_EXIT_OK;
    if (!o->model) { fprintf(stderr, "error: --model FILE is required (see apr-run --help)\n"); return CLI_EXIT_USAGE; }
    if (!!o->prompt + !!o->prompt_file + !!o->tokens > 1) {
        fprintf(stderr, "error: give at most one of --prompt, --file and --tokens\n");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* Parses "ID ID ..." into ids (at most cap); returns the count, or -1 on a bad entry. */
static int run_parse_ids(const char *s, int32_t *ids, int cap) {
    int n = 0;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > 0x7fffffffL || n >= cap) return -1;
        ids[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

/* The whole file as a NUL-terminated string, or NULL with errno set. */
static char *run_read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(fp); errno = ENOMEM; return NULL; }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, 4096, fp);
        n += got;
        if (got < 4096) break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) { free(buf); errno = EIO; return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    run_opts o = {0};
    int rc = run_parse(argc, argv, &o);
    if (rc != CLI_EXIT_OK) return rc;
    if (o.c.help) {
        printf(run_usage, cli_common_help);
        return CLI_EXIT_OK;
    }
    double t0 = run_now();
    apr_error e;
    gguf_file *f = NULL;
    llama_model *m = NULL;
    apr_registry *reg = NULL;
    apr_backend *be = NULL;
    llama_session *s = NULL;
    sampler *smp = NULL;
    FILE *dump = NULL;
    tok_vocab *vocab = NULL;
    tok_stream *stream = NULL;
    char *prompt_buf = NULL;
    float *logits = NULL;
    int32_t *ids = NULL;
    cJSON *json_ids = o.c.json ? cJSON_CreateArray() : NULL;
    run_text text = {0};
    rc = CLI_EXIT_FAIL;
    if (gguf_open(o.model, &f, &e) != APR_OK || llama_model_load(f, &m, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    if ((rc = cli_open_backend(&o.c, &reg, &be)) != CLI_EXIT_OK) goto done;
    rc = CLI_EXIT_FAIL;
    const llama_hparams *hp = &m->hp;
    int n_ctx = o.n_ctx ? (int)o.n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (llama_session_new(m, n_ctx, &be, 1, &s, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    uint32_t bos = 1, eos = 2;
    gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos);
    gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &eos);
    if (tok_load_gguf(f, &vocab, &e) != APR_OK) {
        /* ids still work without a vocabulary; text does not */
        if (o.prompt || o.prompt_file) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
        fprintf(stderr, "warning: %s; printing token ids\n", e.msg);
        vocab = NULL;
    }
    ids = malloc((size_t)n_ctx * sizeof *ids);
    logits = malloc((size_t)n_ctx * (size_t)hp->n_vocab * sizeof *logits);
    smp = sampler_new(&o.sp, hp->n_vocab);
    if (!ids || !logits || !smp) { fprintf(stderr, "error: out of memory\n"); goto done; }
    int n_prompt = 0;
    if (o.prompt || o.prompt_file) {
        size_t len = o.prompt ? strlen(o.prompt) : 0;
        const char *text = o.prompt;
        if (o.prompt_file) {
            if (!(prompt_buf = run_read_file(o.prompt_file, &len))) {
                fprintf(stderr, "error: cannot read %s: %s\n", o.prompt_file, strerror(errno));
                goto done;
            }
            text = prompt_buf;
        }
        unsigned flags = (!o.no_bos && tok_add_bos(vocab)) ? TOK_ADD_BOS : 0;
        int64_t n = tok_encode(vocab, text, len, flags, ids, n_ctx);
        if (n < 0) { fprintf(stderr, "error: out of memory tokenizing the prompt\n"); goto done; }
        if (n > n_ctx) {
            fprintf(stderr, "error: the prompt is %lld tokens, more than the context of %d (--ctx)\n", (long long)n, n_ctx);
            goto done;
        }
        n_prompt = (int)n;
    } else if (!o.no_bos) ids[n_prompt++] = (int32_t)bos;
    if (o.tokens) {
        int n = run_parse_ids(o.tokens, ids + n_prompt, n_ctx - n_prompt);
        if (n < 0) {
            fprintf(stderr, "error: --tokens: expected space-separated ids, at most %d of them (--ctx)\n", n_ctx);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        n_prompt += n;
    }
    if (n_prompt == 0) { fprintf(stderr, "error: empty prompt (give --tokens or drop --no-bos)\n"); rc = CLI_EXIT_USAGE; goto done; }
    if (o.dump_logits && !(dump = fopen(o.dump_logits, "wb"))) {
        fprintf(stderr, "error: cannot write %s: %s\n", o.dump_logits, strerror(errno));
        goto done;
    }
    if (vocab && !(stream = tok_stream_new(vocab, 0))) { fprintf(stderr, "error: out of memory\n"); goto done; }
    /* the stream sees the prompt so that the first generated piece is spaced as in the full text */
    for (int i = 0; stream && i < n_prompt; i++) {
        size_t len;
        const char *piece = tok_stream_push(stream, ids[i], &len);
        if (!json_ids) run_emit(&text, piece, len, true); /* echo the prompt, as llama.cpp does */
    }
    signal(SIGINT, run_on_sigint);
    double t_load = run_now() - t0, t1 = run_now();
    bool all = dump != NULL;
    if (llama_session_eval(s, ids, n_prompt, all, logits, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
    double t_prefill = run_now() - t1;
    for (int i = 0; i < n_prompt; i++) sampler_accept(smp, ids[i]);
    float *last = logits + (all ? (size_t)(n_prompt - 1) * (size_t)hp->n_vocab : 0);
    if (dump && fwrite(logits, sizeof(float) * (size_t)hp->n_vocab, (size_t)n_prompt, dump) != (size_t)n_prompt) {
        fprintf(stderr, "error: writing %s: %s\n", o.dump_logits, strerror(errno));
        goto done;
    }
    int n_gen = 0;
    double t2 = run_now();
    while (n_gen < o.n_predict && !run_stop) {
        int32_t next = sampler_sample(smp, last);
        if ((uint32_t)next == eos) break;
        sampler_accept(smp, next);
        n_gen++;
        if (json_ids) cJSON_AddItemToArray(json_ids, cJSON_CreateNumber(next));
        if (stream) {
            size_t len;
            const char *piece = tok_stream_push(stream, next, &len);
            run_emit(&text, piece, len, !json_ids);
        } else if (!json_ids) {
            printf("%d ", next);
            fflush(stdout);
        }
        if (n_gen == o.n_predict || llama_session_pos(s) >= n_ctx) break;
        if (llama_session_eval(s, &next, 1, false, logits, &e) != APR_OK) { fprintf(stderr, "\nerror: %s\n", e.msg); goto done; }
        last = logits;
        if (dump && fwrite(logits, sizeof(float), (size_t)hp->n_vocab, dump) != (size_t)hp->n_vocab) {
            fprintf(stderr, "error: writing %s: %s\n", o.dump_logits, strerror(errno));
            goto done;
        }
    }
    double t_decode = run_now() - t2;
    if (stream) {
        size_t len;
        const char *rest = tok_stream_flush(stream, &len);
        run_emit(&text, rest, len, !json_ids);
    }
    if (!json_ids) printf("\n");
    int n_decoded = n_gen > 0 ? n_gen - 1 : 0; /* the last sampled token is not run through the model */
    fprintf(stderr, "%s: load %.3f s, prefill %d tokens at %.1f tok/s, decode %d tokens at %.1f tok/s, backend %s (%d threads)%s\n",
            o.model, t_load, n_prompt, n_prompt / (t_prefill > 0 ? t_prefill : 1e-9), n_decoded,
            n_decoded ? n_decoded / (t_decode > 0 ? t_decode : 1e-9) : 0.0, apr_backend_name(be), apr_backend_threads(be),
            run_stop ? " (stopped by Ctrl-C)" : "");
    if (json_ids) {
        cJSON *root = cJSON_CreateObject();
        if (vocab) cJSON_AddStringToObject(root, "text", text.buf ? text.buf : "");
        cJSON_AddItemToObject(root, "generated_ids", json_ids);
        json_ids = NULL;
        cJSON_AddNumberToObject(root, "n_prompt", n_prompt);
        cJSON_AddNumberToObject(root, "load_s", t_load);
        cJSON_AddNumberToObject(root, "prefill_tok_s", n_prompt / (t_prefill > 0 ? t_prefill : 1e-9));
        cJSON_AddNumberToObject(root, "decode_tok_s", n_decoded ? n_decoded / (t_decode > 0 ? t_decode : 1e-9) : 0.0);
        cJSON_AddStringToObject(root, "backend", apr_backend_name(be));
        char *text = cJSON_PrintUnformatted(root);
        if (text) puts(text);
        free(text);
        cJSON_Delete(root);
    }
    rc = CLI_EXIT_OK;
done:
    if (dump && fclose(dump) != 0 && rc == CLI_EXIT_OK) {
        fprintf(stderr, "error: writing %s: %s\n", o.dump_logits, strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    cJSON_Delete(json_ids);
    free(text.buf);
    free(prompt_buf);
    tok_stream_free(stream);
    tok_free(vocab);
    sampler_free(smp);
    free(logits);
    free(ids);
    llama_session_free(s);
    apr_backend_close(be);
    apr_registry_close(reg);
    llama_model_free(m);
    gguf_close(f);
    return rc;
}

/* apr-run.c — runs a GGUF model: a prompt, an interactive chat or a JSONL batch in, tokens out, speed statistics on stderr. */
#include <cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"
#include "common/cli.h"
#include "common/cli_signal.h"
#include "common/cli_text.h"
#include "llama_gen.h"
#include "gguf.h"
#include "hf_import.h"
#include "llama.h"
#include "lora.h"
#include "sampler.h"
#include "tokenizer.h"

static const char *run_usage =
    "usage: apr-run --model FILE|DIR [--prompt TEXT | --file F | --tokens \"ID ID ...\"] [-n N] [options]\n"
    "       apr-run --model FILE --chat [--system TEXT] [options]\n"
    "       apr-run --model FILE --batch-jsonl IN [options]\n"
    "\n"
    "Runs a GGUF model (architecture llama) and streams the generated text to stdout as it is\n"
    "produced; at the end prints load time, prefill and decode speed and the backend to stderr.\n"
    "Ctrl-C stops generation cleanly and still prints the statistics.\n"
    "\n"
    "options:\n"
    "  --model FILE|DIR      the model: a GGUF v2/v3 file, or a Hugging Face folder (config.json,\n"
    "                        *.safetensors, tokenizer.json), converted on the fly\n"
    "  --prompt TEXT         the prompt (default: empty, i.e. generation starts from BOS)\n"
    "  --file F              read the prompt from a file (refused when larger than --ctx tokens could\n"
    "                        hold: twice the longest token's bytes per position)\n"
    "  --tokens \"ID ...\"     the prompt as token ids instead of text\n"
    "  --no-bos              do not put BOS in front of the prompt\n"
    "  -n N                  tokens to generate (default 128; per answer with --chat; generation also stops at EOS)\n"
    "  --ctx N               context positions held in the KV cache (default: the model's, at most 4096)\n"
    "  --kv-type f16|f32     element type of the KV cache (default f16)\n"
    "  --no-pack             keep weights in the file's block layout (no repacking for faster kernels)\n"
    "  --lora FILE           apply a GGUF LoRA adapter (apr-finetune's or llama.cpp's) at load: each weight\n"
    "                        it adapts becomes W + S * alpha / r * B A in f32; repeat for several adapters\n"
    "  --lora-scale S        S for the --lora given before it (default 1)\n"
    "  --temp T              temperature; 0 = greedy (default 0.8)\n"
    "  --top-k K, --top-p P, --min-p P    the sampler chain (defaults 40, 0.95, 0.05)\n"
    "  --repeat-penalty R    (default 1 = off), over the last 64 tokens\n"
    "  --seed S              sampling seed (default 0); the same seed gives the same tokens\n"
    "  --dump-logits FILE    write the logits of every processed position, raw little-endian f32\n"
    "                        (positions x vocab)\n"
    "  --json                print one JSON object at the end instead of streaming text\n"
    "  --chat                interactive chat: one user message per line of stdin, answered in the\n"
    "                        model's chat template (tokenizer.chat_template: chatml, llama2, llama3,\n"
    "                        mistral, phi3, gemma, zephyr; otherwise plain text). The KV cache is\n"
    "                        kept across turns. EOF or /exit ends; Ctrl-C stops the current answer.\n"
    "  --system TEXT         with --chat: the system message\n"
    "  --batch-jsonl IN      load once, then answer each line of IN ('-' = stdin), a JSON object\n"
    "                        {\"prompt\": TEXT} with optional temperature, top_k, top_p, min_p, seed,\n"
    "                        n_predict, repeat_penalty (and id, echoed), with one JSON line on stdout:\n"
    "                        prompt_tokens, generated_ids, text, stop, prefill_tok_s, decode_tok_s;\n"
    "                        a bad line gives {\"error\": ...} and the batch goes on\n"
    "%s"
    "\n"
    "exit status: 0 ok, 1 the model or a backend failed, 2 usage error\n";

static volatile sig_atomic_t run_stop;
static void run_on_sigint(int sig) { (void)sig; run_stop = 1; }

/* Ctrl-C sets run_stop. Without SA_RESTART a read waiting at the chat prompt returns EINTR, so
 * Ctrl-C there ends the chat instead of being swallowed. */
static void run_catch_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = run_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* Generated text kept for --json, --batch-jsonl and the chat history. */
typedef struct run_text {
    char *buf;    /* NUL-terminated */
    size_t len, cap;
} run_text;

/* Appends a piece to t; false when memory ran out. */
static bool run_text_add(run_text *t, const char *piece, size_t len) {
    if (t->len + len + 1 > t->cap) {
        size_t cap = (t->len + len + 1) * 2;
        char *nb = realloc(t->buf, cap);
        if (!nb) return false;
        t->buf = nb;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, piece, len);
    t->len += len;
    t->buf[t->len] = 0;
    return true;
}

/* Streams a decoded piece to stdout, or keeps it. */
static void run_emit(run_text *t, const char *piece, size_t len, bool to_stdout) {
    if (!piece || !len) return;
    if (to_stdout) {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
        return;
    }
    run_text_add(t, piece, len); /* on failure the ids in the JSON stay complete */
}

static double run_rate(int n, double s) { return n ? n / (s > 0 ? s : 1e-9) : 0.0; }

#define RUN_MAX_LORA 16

typedef struct run_opts {
    cli_common c;
    const char *model, *tokens, *dump_logits, *prompt, *prompt_file, *batch, *system;
    bool no_bos, chat;
    long n_predict, n_ctx;
    bool kv_f32;             /* --kv-type f32 */
    bool no_pack;            /* --no-pack: matmuls read the weights in the file's layout */
    sampler_params sp;
    const char *lora[RUN_MAX_LORA]; /* --lora FILE, in order */
    float lora_scale[RUN_MAX_LORA]; /* --lora-scale S of each */
    int n_lora;
} run_opts;

/* The ranges the sampling options accept, shared by the command line and --batch-jsonl. */
typedef struct run_float_opt {
    const char *flag, *key;
    size_t off;
    float lo, hi;
} run_float_opt;

static const run_float_opt run_float_opts[] = {
    {"--temp", "temperature", offsetof(sampler_params, temperature), 0, 100},
    {"--top-p", "top_p", offsetof(sampler_params, top_p), 0, 1},
    {"--min-p", "min_p", offsetof(sampler_params, min_p), 0, 1},
    {"--repeat-penalty", "repeat_penalty", offsetof(sampler_params, repeat_penalty), 0.01f, 100},
};
#define RUN_N_FLOAT_OPTS (sizeof run_float_opts / sizeof *run_float_opts)

static int run_parse(int argc, char **argv, run_opts *o) {
    o->sp = apr_sampler_defaults();
    o->n_predict = 128;
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_common(argc, argv, &i, &o->c);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        const char *v;
        long n;
        double f;
        if ((v = cli_option_value(argc, argv, &i, "--model"))) o->model = v;
        else if ((v = cli_option_value(argc, argv, &i, "--tokens"))) o->tokens = v;
        else if ((v = cli_option_value(argc, argv, &i, "--prompt"))) o->prompt = v;
        else if ((v = cli_option_value(argc, argv, &i, "--file"))) o->prompt_file = v;
        else if ((v = cli_option_value(argc, argv, &i, "--dump-logits"))) o->dump_logits = v;
        else if ((v = cli_option_value(argc, argv, &i, "--system"))) o->system = v;
        else if ((v = cli_option_value(argc, argv, &i, "--batch-jsonl"))) {
            if (!*v) { fprintf(stderr, "error: --batch-jsonl needs a file ('-' = stdin)\n"); return CLI_EXIT_USAGE; }
            o->batch = v;
        } else if (!strcmp(argv[i], "--chat")) o->chat = true;
        else if (!strcmp(argv[i], "--no-bos")) o->no_bos = true;
        else if (!strcmp(argv[i], "--no-pack")) o->no_pack = true;
        else if ((v = cli_option_value(argc, argv, &i, "--lora"))) {
            if (o->n_lora == RUN_MAX_LORA) { fprintf(stderr, "error: at most %d --lora adapters\n", RUN_MAX_LORA); return CLI_EXIT_USAGE; }
            o->lora_scale[o->n_lora] = 1.0f;
            o->lora[o->n_lora++] = v;
        } else if ((v = cli_option_value(argc, argv, &i, "--lora-scale"))) {
            if (!o->n_lora) { fprintf(stderr, "error: --lora-scale comes after the --lora it scales\n"); return CLI_EXIT_USAGE; }
            if (!cli_option_float("--lora-scale", v, -1e6, 1e6, &f)) return CLI_EXIT_USAGE;
            o->lora_scale[o->n_lora - 1] = (float)f;
        } else if ((v = cli_option_value(argc, argv, &i, "-n")) || (v = cli_option_value(argc, argv, &i, "--n-predict"))) {
            if (!cli_option_int("-n", v, 0, 1 << 24, &n)) return CLI_EXIT_USAGE;
            o->n_predict = n;
        } else if ((v = cli_option_value(argc, argv, &i, "--ctx"))) {
            if (!cli_option_int("--ctx", v, 1, 1 << 24, &n)) return CLI_EXIT_USAGE;
            o->n_ctx = n;
        } else if ((v = cli_option_value(argc, argv, &i, "--kv-type"))) {
            if (strcmp(v, "f16") && strcmp(v, "f32")) { fprintf(stderr, "error: --kv-type is f16 or f32, got '%s'\n", v); return CLI_EXIT_USAGE; }
            o->kv_f32 = !strcmp(v, "f32");
        } else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            if (!cli_option_int("--seed", v, 0, 0x7fffffffL, &n)) return CLI_EXIT_USAGE;
            o->sp.seed = (uint64_t)n;
        } else if ((v = cli_option_value(argc, argv, &i, "--top-k"))) {
            if (!cli_option_int("--top-k", v, 0, 1 << 24, &n)) return CLI_EXIT_USAGE;
            o->sp.top_k = (int)n;
        } else {
            bool done = false;
            for (size_t k = 0; k < RUN_N_FLOAT_OPTS && !done; k++) {
                const run_float_opt *fo = &run_float_opts[k];
                if (!(v = cli_option_value(argc, argv, &i, fo->flag))) continue;
                if (!cli_option_float(fo->flag, v, fo->lo, fo->hi, &f)) return CLI_EXIT_USAGE;
                *(float *)((char *)&o->sp + fo->off) = (float)f;
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
    if (o->chat && o->batch) { fprintf(stderr, "error: give at most one of --chat and --batch-jsonl\n"); return CLI_EXIT_USAGE; }
    if ((o->chat || o->batch) && (o->prompt || o->prompt_file || o->tokens || o->dump_logits || o->c.json)) {
        fprintf(stderr, "error: %s takes its prompts from %s; drop --prompt, --file, --tokens, --dump-logits and --json\n",
                o->chat ? "--chat" : "--batch-jsonl", o->chat ? "stdin" : "the JSONL input");
        return CLI_EXIT_USAGE;
    }
    if (o->system && !o->chat) { fprintf(stderr, "error: --system goes with --chat\n"); return CLI_EXIT_USAGE; }
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

/* ---------------------------------------------------------------- the model and one generation */

/* What every mode shares, loaded once. */
#define RUN_MAX_EOG (LLAMA_GEN_MAX_EOG + 1) /* apr_llama_gen_collect_eog's and the EOS apr-run assumes */

typedef struct run_model {
    const run_opts *o;
    gguf_file *f;
    llama_model *m;
    apr_registry *reg;
    apr_backend *be;
    llama_pack *pack;      /* the weights packed once at load, so that every session finds them packed; NULL with --no-pack */
    tok_vocab *vocab;      /* NULL when the file has none: ids only */
    int n_ctx, n_vocab;
    uint32_t bos, eos;
    int32_t eog[RUN_MAX_EOG]; /* every id that ends generation: EOS, EOT/EOM and the end markers of chat families */
    int n_eog;
    double t_load;         /* seconds, packing included */
    char load_note[64];    /* ", N MiB of weights packed" for the statistics line, or "" */
} run_model;

/* The ids that end generation in every mode: apr_llama_gen_collect_eog's, and the EOS of rm->eos, which
 * is 2 where the file names none (llama2.c checkpoints, files without a vocabulary). */
static void run_collect_eog(run_model *rm) {
    rm->n_eog = apr_llama_gen_collect_eog(rm->f, rm->vocab, rm->n_vocab, rm->eog, LLAMA_GEN_MAX_EOG);
    if (rm->eos < (uint32_t)rm->n_vocab) rm->eog[rm->n_eog++] = (int32_t)rm->eos; /* all ones: the file names none */
}

static apr_status run_session(const run_model *rm, llama_session **s, apr_error *e) {
    llama_session_params p = apr_llama_session_defaults(rm->n_ctx);
    p.kv_dtype = rm->o->kv_f32 ? APR_F32 : APR_F16;
    p.pack_weights = !rm->o->no_pack;
    return apr_llama_session_new_ex(rm->m, &p, &rm->be, 1, s, e);
}

/* Where one answer's ids, text and logits go: the user data of apr_llama_gen_run's callbacks. */
typedef struct run_gen {
    bool to_stdout;         /* stream pieces (ids without a vocabulary) to stdout */
    run_text *text;         /* and/or keep the text here (NULL: not kept) */
    cJSON *ids;             /* generated ids go here when not NULL */
    FILE *dump;             /* --dump-logits, or NULL */
    const run_model *rm;
} run_gen;

static bool run_on_token(void *user, int32_t id, const char *piece, size_t len) {
    run_gen *g = user;
    if (g->ids && id >= 0) cJSON_AddItemToArray(g->ids, cJSON_CreateNumber(id));
    if (!piece) { /* no vocabulary: the ids are the output */
        if (g->to_stdout) {
            printf("%d ", id);
            fflush(stdout);
        }
        return true;
    }
    if (g->to_stdout) run_emit(NULL, piece, len, true);
    if (g->text && len) run_text_add(g->text, piece, len);
    return true;
}

static apr_status run_on_logits(void *user, const float *logits, apr_error *e) {
    const run_gen *g = user;
    size_t n = (size_t)g->rm->n_vocab;
    if (fwrite(logits, sizeof(float), n, g->dump) != n)
        return apr_error_set(e, APR_ERR_IO, "writing %s: %s", g->rm->o->dump_logits, strerror(errno));
    return APR_OK;
}

/* The loop's parameters for one answer into g: the model's end-of-generation ids, Ctrl-C. */
static llama_gen_params run_gen_params(const run_model *rm, run_gen *g, long n_predict) {
    llama_gen_params p = apr_llama_gen_defaults(rm->n_ctx);
    p.n_predict = (int)n_predict;
    p.eog = rm->eog;
    p.n_eog = rm->n_eog;
    p.stop = &run_stop;
    p.on_token = run_on_token;
    p.on_logits = g->dump ? run_on_logits : NULL;
    p.user = g;
    return p;
}

/* ---------------------------------------------------------------- one prompt (--prompt, --file, --tokens) */

static int run_single(const run_model *rm) {
    const run_opts *o = rm->o;
    const int n_ctx = rm->n_ctx, n_vocab = rm->n_vocab;
    int rc = CLI_EXIT_FAIL;
    apr_error e;
    llama_session *s = NULL;
    sampler *smp = NULL;
    FILE *dump = NULL;
    tok_stream *stream = NULL;
    char *prompt_buf = NULL;
    float *logits = NULL;
    int32_t *ids = NULL;
    cJSON *json_ids = o->c.json ? cJSON_CreateArray() : NULL;
    run_text text = {0};
    if (!rm->vocab && (o->prompt || o->prompt_file)) { fprintf(stderr, "error: a text prompt needs the model's vocabulary\n"); goto done; }
    if (run_session(rm, &s, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
    ids = malloc((size_t)n_ctx * sizeof *ids);
    smp = apr_sampler_new(&o->sp, n_vocab);
    if (!ids || !smp) { fprintf(stderr, "error: out of memory\n"); goto done; }
    int n_prompt = 0;
    if (o->prompt || o->prompt_file) {
        size_t len = o->prompt ? strlen(o->prompt) : 0;
        const char *ptext = o->prompt;
        if (o->prompt_file) {
            size_t max = cli_text_bound(rm->vocab, n_ctx);
            if (!(prompt_buf = cli_read_file(o->prompt_file, max, &len))) {
                if (errno == EFBIG)
                    fprintf(stderr, "error: %s holds more than %zu bytes, more text than a context of %d tokens can hold (%zu bytes a token at most; --ctx)\n",
                            o->prompt_file, max, n_ctx, cli_text_bytes_per_token(rm->vocab));
                else fprintf(stderr, "error: cannot read %s: %s\n", o->prompt_file, strerror(errno));
                goto done;
            }
            ptext = prompt_buf;
        }
        unsigned flags = (!o->no_bos && apr_tok_add_bos(rm->vocab)) ? TOK_ADD_BOS : 0;
        int64_t n = apr_tok_encode(rm->vocab, ptext, len, flags, ids, n_ctx);
        if (n < 0) { fprintf(stderr, "error: out of memory tokenizing the prompt\n"); goto done; }
        if (n > n_ctx) {
            fprintf(stderr, "error: the prompt is %lld tokens, more than the context of %d (--ctx)\n", (long long)n, n_ctx);
            goto done;
        }
        n_prompt = (int)n;
    } else if (!o->no_bos && rm->bos < (uint32_t)n_vocab) ids[n_prompt++] = (int32_t)rm->bos;
    if (o->tokens) {
        int n = run_parse_ids(o->tokens, ids + n_prompt, n_ctx - n_prompt);
        if (n < 0) {
            fprintf(stderr, "error: --tokens: expected space-separated ids, at most %d of them (--ctx)\n", n_ctx);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        n_prompt += n;
    }
    if (n_prompt == 0) { fprintf(stderr, "error: empty prompt (give --tokens or drop --no-bos)\n"); rc = CLI_EXIT_USAGE; goto done; }
    if (o->dump_logits && !(dump = fopen(o->dump_logits, "wb"))) {
        fprintf(stderr, "error: cannot write %s: %s\n", o->dump_logits, strerror(errno));
        goto done;
    }
    /* logits of every prompt position only when they are dumped: n_ctx x n_vocab would be GBs */
    logits = malloc((size_t)(dump ? n_prompt : 1) * (size_t)n_vocab * sizeof *logits);
    if (!logits) { fprintf(stderr, "error: out of memory for the logits\n"); goto done; }
    if (rm->vocab && !(stream = apr_tok_stream_new(rm->vocab, 0))) { fprintf(stderr, "error: out of memory\n"); goto done; }
    /* the stream sees the prompt so that the first generated piece is spaced as in the full text */
    for (int i = 0; stream && i < n_prompt; i++) {
        size_t len;
        const char *piece = apr_tok_stream_push(stream, ids[i], &len);
        if (!json_ids) run_emit(&text, piece, len, true); /* echo the prompt, as llama.cpp does */
    }
    run_catch_sigint();
    double t1 = cli_now();
    bool all = dump != NULL;
    if (apr_llama_session_eval(s, ids, n_prompt, all, logits, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
    double t_prefill = cli_now() - t1;
    for (int i = 0; i < n_prompt; i++) apr_sampler_accept(smp, ids[i]);
    if (dump && fwrite(logits, sizeof(float) * (size_t)n_vocab, (size_t)n_prompt, dump) != (size_t)n_prompt) {
        fprintf(stderr, "error: writing %s: %s\n", o->dump_logits, strerror(errno));
        goto done;
    }
    run_gen g = {.to_stdout = !json_ids, .text = json_ids ? &text : NULL, .ids = json_ids, .dump = dump, .rm = rm};
    llama_gen_params gp = run_gen_params(rm, &g, o->n_predict);
    llama_gen_result r;
    float *last = logits + (all ? (size_t)(n_prompt - 1) * (size_t)n_vocab : 0);
    if (apr_llama_gen_run(s, smp, stream, last, logits, &gp, &r, &e) != APR_OK) { fprintf(stderr, "\nerror: %s\n", e.msg); goto done; }
    if (!json_ids) {
        printf("\n");
        fflush(stdout); /* before the statistics on stderr, which may go to the same file */
    }
    fprintf(stderr, "%s: load %.3f s%s, prefill %d tokens at %.1f tok/s, decode %d tokens at %.1f tok/s, backend %s (%d threads)%s\n",
            o->model, rm->t_load, rm->load_note, n_prompt, run_rate(n_prompt, t_prefill), r.n_decoded, run_rate(r.n_decoded, r.t_decode),
            apr_backend_name(rm->be), apr_backend_threads(rm->be), run_stop ? " (stopped by Ctrl-C)" : "");
    if (json_ids) {
        cJSON *root = cJSON_CreateObject();
        if (rm->vocab) cJSON_AddStringToObject(root, "text", text.buf ? text.buf : "");
        cJSON_AddItemToObject(root, "generated_ids", json_ids);
        json_ids = NULL;
        cJSON_AddNumberToObject(root, "n_prompt", n_prompt);
        cJSON_AddNumberToObject(root, "load_s", rm->t_load);
        cJSON_AddNumberToObject(root, "packed_mib", (double)apr_backend_packed_bytes(rm->be) / (1 << 20));
        cJSON_AddNumberToObject(root, "prefill_tok_s", run_rate(n_prompt, t_prefill));
        cJSON_AddNumberToObject(root, "decode_tok_s", run_rate(r.n_decoded, r.t_decode));
        cJSON_AddStringToObject(root, "backend", apr_backend_name(rm->be));
        char *out = cJSON_PrintUnformatted(root);
        if (out) puts(out);
        free(out);
        cJSON_Delete(root);
    }
    rc = CLI_EXIT_OK;
done:
    if (dump && fclose(dump) != 0 && rc == CLI_EXIT_OK) {
        fprintf(stderr, "error: writing %s: %s\n", o->dump_logits, strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    cJSON_Delete(json_ids);
    free(text.buf);
    free(prompt_buf);
    apr_tok_stream_free(stream);
    apr_sampler_free(smp);
    free(logits);
    free(ids);
    apr_llama_session_free(s);
    return rc;
}

/* ---------------------------------------------------------------- --batch-jsonl */

/* Reads the optional sampling fields of one request over the command line's values; false with a
 * message in err when one has the wrong type or range. */
static bool run_batch_params(const cJSON *in, sampler_params *sp, long *n_predict, char *err, size_t errn) {
    for (size_t k = 0; k < RUN_N_FLOAT_OPTS; k++) {
        const run_float_opt *fo = &run_float_opts[k];
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(in, fo->key);
        if (!it) continue;
        double v = cJSON_GetNumberValue(it);
        if (!cJSON_IsNumber(it) || !(v >= fo->lo && v <= fo->hi)) {
            snprintf(err, errn, "\"%s\" must be a number from %g to %g", fo->key, fo->lo, fo->hi);
            return false;
        }
        *(float *)((char *)sp + fo->off) = (float)v;
    }
    /* integers: whole numbers only, seed up to 2^53 so that a double holds it exactly */
    struct { const char *key; double hi; } ints[] = {{"top_k", 1 << 24}, {"seed", 9007199254740991.0}, {"n_predict", 1 << 24}};
    for (size_t k = 0; k < sizeof ints / sizeof *ints; k++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(in, ints[k].key);
        if (!it) continue;
        double v = cJSON_GetNumberValue(it);
        if (!cJSON_IsNumber(it) || !(v >= 0 && v <= ints[k].hi) || v != (double)(int64_t)v) {
            snprintf(err, errn, "\"%s\" must be a whole number from 0 to %.0f", ints[k].key, ints[k].hi);
            return false;
        }
        if (k == 0) sp->top_k = (int)v;
        else if (k == 1) sp->seed = (uint64_t)v;
        else *n_predict = (long)v;
    }
    return true;
}

/* Answers one request line with a fresh session (so no request sees another's cache); returns the
 * result object, or NULL with the message in err. */
static cJSON *run_batch_answer(const run_model *rm, const cJSON *in, char *err, size_t errn) {
    if (!cJSON_IsObject(in)) { snprintf(err, errn, "not a JSON object"); return NULL; }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(in, "prompt");
    if (!cJSON_IsString(p)) { snprintf(err, errn, "\"prompt\" (a string) is missing"); return NULL; }
    sampler_params sp = rm->o->sp;
    long n_predict = rm->o->n_predict;
    if (!run_batch_params(in, &sp, &n_predict, err, errn)) return NULL;
    cJSON *out = NULL, *ids_json = cJSON_CreateArray();
    llama_session *s = NULL;
    sampler *smp = apr_sampler_new(&sp, rm->n_vocab);
    tok_stream *stream = apr_tok_stream_new(rm->vocab, 0);
    int32_t *ids = malloc((size_t)rm->n_ctx * sizeof *ids);
    float *logits = malloc((size_t)rm->n_vocab * sizeof *logits);
    run_text text = {0};
    apr_error e;
    if (!ids_json || !smp || !stream || !ids || !logits) { snprintf(err, errn, "out of memory"); goto done; }
    unsigned flags = (!rm->o->no_bos && apr_tok_add_bos(rm->vocab)) ? TOK_ADD_BOS : 0;
    int64_t n = apr_tok_encode(rm->vocab, p->valuestring, strlen(p->valuestring), flags, ids, rm->n_ctx);
    if (n < 0) { snprintf(err, errn, "out of memory tokenizing the prompt"); goto done; }
    if (n == 0) { snprintf(err, errn, "empty prompt"); goto done; }
    if (n > rm->n_ctx) {
        snprintf(err, errn, "the prompt is %lld tokens, more than the context of %d (--ctx)", (long long)n, rm->n_ctx);
        goto done;
    }
    double t0 = cli_now();
    if (run_session(rm, &s, &e) != APR_OK || apr_llama_session_eval(s, ids, (int)n, false, logits, &e) != APR_OK) {
        snprintf(err, errn, "%s", e.msg);
        goto done;
    }
    double t_prefill = cli_now() - t0;
    for (int64_t i = 0; i < n; i++) {
        apr_sampler_accept(smp, ids[i]);
        apr_tok_stream_push(stream, ids[i], NULL); /* spaces the first generated piece as in the full text */
    }
    run_gen g = {.text = &text, .ids = ids_json, .rm = rm};
    llama_gen_params gp = run_gen_params(rm, &g, n_predict);
    llama_gen_result r;
    if (apr_llama_gen_run(s, smp, stream, logits, logits, &gp, &r, &e) != APR_OK) { snprintf(err, errn, "%s", e.msg); goto done; }
    out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "prompt_tokens", (double)n);
    cJSON_AddItemToObject(out, "generated_ids", ids_json);
    ids_json = NULL;
    cJSON_AddStringToObject(out, "text", text.buf ? text.buf : "");
    cJSON_AddStringToObject(out, "stop", apr_llama_gen_stop_name(r.stop));
    cJSON_AddNumberToObject(out, "prefill_tok_s", run_rate((int)n, t_prefill));
    cJSON_AddNumberToObject(out, "decode_tok_s", run_rate(r.n_decoded, r.t_decode));
done:
    cJSON_Delete(ids_json);
    free(text.buf);
    free(logits);
    free(ids);
    apr_tok_stream_free(stream);
    apr_sampler_free(smp);
    apr_llama_session_free(s);
    return out;
}

/* One JSON line per non-blank input line; a bad line gets {"error": ...} and the batch goes on. */
static int run_batch(const run_model *rm) {
    const char *path = rm->o->batch;
    FILE *in = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!in) { fprintf(stderr, "error: cannot read %s: %s\n", path, strerror(errno)); return CLI_EXIT_FAIL; }
    run_catch_sigint();
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0, n_ok = 0, n_err = 0;
    double t0 = cli_now();
    while (!run_stop && getline(&line, &cap, in) >= 0) {
        lineno++;
        if (!line[strspn(line, " \t\r\n")]) continue;
        char err[700] = "";
        cJSON *req = cJSON_Parse(line);
        cJSON *out = req ? run_batch_answer(rm, req, err, sizeof err) : NULL;
        if (!req) snprintf(err, sizeof err, "not valid JSON");
        if (!out) {
            out = cJSON_CreateObject();
            char msg[760];
            snprintf(msg, sizeof msg, "line %ld: %s", lineno, err);
            cJSON_AddStringToObject(out, "error", msg);
            n_err++;
        } else n_ok++;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
        if (id) cJSON_AddItemToObject(out, "id", cJSON_Duplicate(id, true)); /* so a harness can match answers */
        char *s = cJSON_PrintUnformatted(out);
        if (s) { puts(s); fflush(stdout); }
        free(s);
        cJSON_Delete(out);
        cJSON_Delete(req);
    }
    bool bad = ferror(in);
    free(line);
    if (in != stdin) fclose(in);
    if (bad) { fprintf(stderr, "error: reading %s: %s\n", path, strerror(errno)); return CLI_EXIT_FAIL; }
    fprintf(stderr, "%s: load %.3f s%s, %ld requests answered, %ld errors in %.3f s, backend %s (%d threads)%s\n",
            rm->o->model, rm->t_load, rm->load_note, n_ok, n_err, cli_now() - t0, apr_backend_name(rm->be), apr_backend_threads(rm->be),
            run_stop ? " (stopped by Ctrl-C)" : "");
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- --chat */

/* The conversation so far; contents are owned. */
typedef struct run_conv {
    chat_msg *v;
    size_t n, cap;
} run_conv;

static bool run_conv_add(run_conv *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        chat_msg *nv = realloc(c->v, cap * sizeof *nv);
        if (!nv) return false;
        c->v = nv;
        c->cap = cap;
    }
    char *dup = strdup(content);
    if (!dup) return false;
    c->v[c->n++] = (chat_msg){role, dup};
    return true;
}

static void run_conv_free(run_conv *c) {
    for (size_t i = 0; i < c->n; i++) free((char *)c->v[i].content);
    free(c->v);
}

/* The ids that end an answer: the model's (rm->eog, the file's EOT among them) and the family's
 * end-of-turn token, which a vocabulary may list as an ordinary token; eog holds RUN_MAX_EOG + 1. */
static int run_chat_eog(const run_model *rm, chat_family fam, int32_t *eog) {
    int n = rm->n_eog;
    memcpy(eog, rm->eog, (size_t)n * sizeof *eog);
    const char *eot = apr_chat_eot_text(fam);
    int32_t id = eot ? apr_tok_find(rm->vocab, eot, strlen(eot)) : -1;
    if (id >= 0) eog[n++] = id;
    return n;
}

/* Reads user lines and answers each. The cache keeps the evaluated text across turns: every turn
 * the whole conversation is rendered again and only what follows the evaluated text is run; when
 * the rendering no longer starts with it (a template that trims answers), the conversation is
 * run again from a fresh session, since the cache cannot be rewound. */
static int run_chat(const run_model *rm) {
    const run_opts *o = rm->o;
    const char *tmpl = apr_gguf_get_str(rm->f, "tokenizer.chat_template");
    chat_family fam = apr_chat_detect(tmpl);
    if (fam == CHAT_PLAIN)
        fprintf(stderr, "warning: %s; chatting in plain text\n",
                tmpl ? "unrecognised chat template" : "the model has no chat template (tokenizer.chat_template)");
    else fprintf(stderr, "chat template: %s\n", apr_chat_family_name(fam));
    int32_t bos_id = apr_tok_bos(rm->vocab), eos_id = apr_tok_eos(rm->vocab);
    const char *bos_t = bos_id >= 0 ? apr_tok_piece(rm->vocab, bos_id) : "";
    const char *eos_t = eos_id >= 0 ? apr_tok_piece(rm->vocab, eos_id) : "";
    int32_t eog[RUN_MAX_EOG + 1];
    int n_eog = run_chat_eog(rm, fam, eog);
    bool tty = isatty(STDIN_FILENO);
    int rc = CLI_EXIT_FAIL;
    apr_error e;
    run_conv conv = {0};
    run_text done_text = {0};  /* the text the cache holds */
    run_text answer = {0};
    llama_session *s = NULL;
    sampler *smp = apr_sampler_new(&o->sp, rm->n_vocab);
    tok_stream *stream = apr_tok_stream_new(rm->vocab, 0);
    int32_t *ids = malloc((size_t)rm->n_ctx * sizeof *ids);
    float *logits = malloc((size_t)rm->n_vocab * sizeof *logits);
    char *line = NULL, *prompt = NULL;
    size_t cap = 0;
    int turns = 0, n_prefill = 0, n_decoded = 0;
    double t_prefill = 0, t_decode = 0;
    if (!smp || !stream || !ids || !logits || (o->system && !run_conv_add(&conv, "system", o->system))) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    run_catch_sigint();
    for (;;) {
        if (tty) fputs("> ", stderr);
        errno = 0;
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) { /* EOF, or Ctrl-C at the prompt */
            if (tty) fputc('\n', stderr);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!strcmp(line, "/exit")) break;
        if (!len) continue;
        if (!run_conv_add(&conv, "user", line)) { fprintf(stderr, "error: out of memory\n"); goto done; }
        free(prompt);
        if (!(prompt = apr_chat_format(fam, conv.v, conv.n, true, bos_t, eos_t))) { fprintf(stderr, "error: out of memory\n"); goto done; }
        size_t plen = strlen(prompt);
        if (!s || plen < done_text.len || (done_text.len && memcmp(prompt, done_text.buf, done_text.len) != 0)) {
            apr_llama_session_free(s);
            s = NULL;
            done_text.len = 0;
            if (run_session(rm, &s, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
        }
        const char *suffix = prompt + done_text.len;
        unsigned flags = TOK_PARSE_SPECIAL;
        /* BOS once, at the start, unless the template writes it itself */
        if (apr_llama_session_pos(s) == 0 && !o->no_bos && !(*bos_t && !strncmp(prompt, bos_t, strlen(bos_t)))) flags |= TOK_ADD_BOS;
        int room = rm->n_ctx - apr_llama_session_pos(s);
        int64_t n = apr_tok_encode(rm->vocab, suffix, strlen(suffix), flags, ids, rm->n_ctx);
        if (n < 0) { fprintf(stderr, "error: out of memory tokenizing the prompt\n"); goto done; }
        if (n >= room) {
            fprintf(stderr, "error: the conversation no longer fits the context of %d positions (--ctx)\n", rm->n_ctx);
            goto done;
        }
        if (n == 0) continue;
        double t0 = cli_now();
        if (apr_llama_session_eval(s, ids, (int)n, false, logits, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
        t_prefill += cli_now() - t0;
        n_prefill += (int)n;
        for (int64_t i = 0; i < n; i++) apr_sampler_accept(smp, ids[i]);
        run_text_add(&done_text, suffix, strlen(suffix));
        answer.len = 0;
        run_gen g = {.to_stdout = true, .text = &answer, .rm = rm};
        llama_gen_params gp = run_gen_params(rm, &g, o->n_predict);
        gp.eog = eog;
        gp.n_eog = n_eog;
        gp.eval_all = true; /* the cache then holds exactly the text, for the next turn */
        llama_gen_result r;
        if (apr_llama_gen_run(s, smp, stream, logits, logits, &gp, &r, &e) != APR_OK) { fprintf(stderr, "\nerror: %s\n", e.msg); goto done; }
        fputc('\n', stdout);
        fflush(stdout);
        turns++;
        n_decoded += r.n_decoded;
        t_decode += r.t_decode;
        const char *said = answer.buf ? answer.buf : "";
        if (!run_conv_add(&conv, "assistant", said) || !run_text_add(&done_text, said, strlen(said))) {
            fprintf(stderr, "error: out of memory\n");
            goto done;
        }
        if (r.stop == LLAMA_GEN_STOP_CONTEXT) {
            fprintf(stderr, "error: the conversation filled the context of %d positions (--ctx)\n", rm->n_ctx);
            goto done;
        }
        if (run_stop) { fprintf(stderr, "(answer stopped by Ctrl-C)\n"); run_stop = 0; }
    }
    fprintf(stderr, "%s: load %.3f s%s, %d turns, prefill %d tokens at %.1f tok/s, decode %d tokens at %.1f tok/s, backend %s (%d threads)\n",
            o->model, rm->t_load, rm->load_note, turns, n_prefill, run_rate(n_prefill, t_prefill), n_decoded, run_rate(n_decoded, t_decode),
            apr_backend_name(rm->be), apr_backend_threads(rm->be));
    rc = CLI_EXIT_OK;
done:
    free(line);
    free(prompt);
    free(answer.buf);
    free(done_text.buf);
    free(logits);
    free(ids);
    apr_tok_stream_free(stream);
    apr_sampler_free(smp);
    apr_llama_session_free(s);
    run_conv_free(&conv);
    return rc;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    run_opts o = {0};
    int rc = run_parse(argc, argv, &o);
    if (rc != CLI_EXIT_OK) return rc;
    if (o.c.help) {
        printf(run_usage, cli_common_help);
        return CLI_EXIT_OK;
    }
    double t0 = cli_now();
    apr_error e;
    run_model rm = {.o = &o};
    gguf_file *f = NULL;
    llama_model *m = NULL;
    lora_adapter *adapters[RUN_MAX_LORA] = {0};
    int n_adapters = 0;
    lora_applied *applied = NULL;
    rc = CLI_EXIT_FAIL;
    cli_signal_cleanup_temps(); /* a folder is converted through a temporary folder; Ctrl-C is taken over after loading */
    if (apr_hf_open_as_gguf(o.model, &f, &e) != APR_OK || apr_llama_model_load(f, &m, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    for (int i = 0; i < o.n_lora; i++) {
        if (apr_lora_open(o.lora[i], &adapters[i], &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
        n_adapters++;
    }
    if (o.n_lora && apr_lora_apply(m, adapters, o.lora_scale, o.n_lora, &applied, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        goto done;
    }
    rm.f = f;
    rm.m = m;
    if (apr_llama_gen_check_ids(f, m->hp.n_vocab, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
    if ((rc = cli_open_backend(&o.c, &rm.reg, &rm.be)) != CLI_EXIT_OK) goto done;
    rc = CLI_EXIT_FAIL;
    const llama_hparams *hp = &m->hp;
    rm.n_ctx = o.n_ctx ? (int)o.n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    rm.n_vocab = hp->n_vocab;
    rm.bos = 1;
    rm.eos = 2;
    apr_gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &rm.bos);
    apr_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &rm.eos);
    apr_status tst = apr_tok_load_gguf(f, &rm.vocab, &e);
    if (tst != APR_OK) {
        /* ids still work without a vocabulary, or with one of a kind apr lacks; text does not, and a broken one is an error */
        rm.vocab = NULL;
        bool broken = tst == APR_ERR_FORMAT && apr_gguf_get_str(f, "tokenizer.ggml.model");
        if (broken || o.prompt || o.prompt_file || o.chat || o.batch) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
        fprintf(stderr, "warning: %s; printing token ids\n", e.msg);
    }
    run_collect_eog(&rm);
    /* packed here, once: the sessions of --chat and --batch-jsonl then only take references */
    if (!o.no_pack && apr_llama_pack_new(m, rm.be, &rm.pack, &e) != APR_OK) { fprintf(stderr, "error: %s\n", e.msg); goto done; }
    int64_t packed = apr_backend_packed_bytes(rm.be);
    if (packed > 0) snprintf(rm.load_note, sizeof rm.load_note, ", %.1f MiB of weights packed", (double)packed / (1 << 20));
    rm.t_load = cli_now() - t0;
    rc = o.chat ? run_chat(&rm) : o.batch ? run_batch(&rm) : run_single(&rm);
done:
    apr_tok_free(rm.vocab);
    apr_llama_pack_free(rm.pack);
    apr_backend_close(rm.be);
    apr_registry_close(rm.reg);
    apr_lora_applied_free(applied);
    for (int i = 0; i < n_adapters; i++) apr_lora_close(adapters[i]);
    apr_llama_model_free(m);
    apr_gguf_close(f);
    return rc;
}

/* apr-genmodel.c — writes a GGUF model of random weights in the exact shape of a real one, for demos and
 * benchmarks: the command line over llm/model_init.h, which holds the shapes and writes the model. */
#include <cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/cli_signal.h"
#include "hf_import.h"
#include "model_init.h"

static const char *genmodel_usage =
    "usage: apr-genmodel [--shape NAME | --shape-spec SPEC] [--dtype f16|f32|bf16] [--seed S] [--vocab-from FILE.gguf | --no-vocab] OUT.gguf\n"
    "\n"
    "Writes a model of random weights (normal, std 0.02; norms 1) in the exact shape of a real one,\n"
    "so that the runtime can be run and timed without a trained checkpoint. The text it generates\n"
    "is gibberish: general.name says these are random weights. OUT is written atomically: an unnamed\n"
    "file linked into place when done (where the filesystem lacks that, a temporary file renamed\n"
    "over OUT, removed on Ctrl-C, TERM or HUP).\n"
    "\n"
    "shapes:\n"
    "  tiny            llama: 4 layers, width 256, 8 heads / 4 KV heads, ffn 688, vocab 32000 (default)\n"
    "  tinyllama-1.1b  llama: 22 layers, width 2048, 32 / 4 heads, ffn 5632, vocab 32000\n"
    "  qwen2.5-0.5b    qwen2: 24 layers, width 896, 14 / 2 heads, ffn 4864, vocab 151936, tied, q/k/v bias\n"
    "  llama-3.2-1b    llama: 16 layers, width 2048, 32 / 8 heads, ffn 8192, vocab 128256, tied, Llama 3 rope scaling\n"
    "\n"
    "options:\n"
    "  --shape-spec SPEC a custom shape instead: key=value pairs, as layers=4,embd=192,heads=6,kv_heads=2,ff=512;\n"
    "                    keys not given keep tiny's values (or those of base=NAME), but for vocab, which without\n"
    "                    vocab= is the --vocab-from file's token count (32000 without one). Keys: base, arch\n"
    "                    (llama, qwen2, qwen3), layers, embd, heads, kv_heads, head_dim, ff, vocab, ctx, rope_base,\n"
    "                    rms_eps, tied, qkv_bias, llama3_rope (0 or 1)\n"
    "  --dtype T         weight type of the matrices (norms, biases and rope factors stay f32); default f16\n"
    "  --seed S          random seed (default 1)\n"
    "  --vocab-from F    copy the tokenizer.* keys of F, so that apr-run can print text and llama.cpp can load\n"
    "                    the model; a vocabulary smaller than the shape's is padded with [PAD<id>] tokens (type\n"
    "                    unused, the lowest score), as Hugging Face's converter pads embedding rows past the\n"
    "                    tokenizer; a larger one is refused. Without it no tokenizer is written (apr-run then\n"
    "                    prints ids and takes --tokens)\n"
    "  --no-vocab        write no tokenizer (the default; kept for scripts); not with --vocab-from\n"
    "  --json            a JSON summary on stdout when done\n"
    "  -h, --help        this text (--backend and --threads are accepted and ignored)\n"
    "\n"
    "exit status: 0 ok, 1 failure, 2 usage error\n";

/* Progress on stderr: the tokenizer and the size first, then a line rewritten in place on a
 * terminal, else one line per 10%. */
typedef struct genmodel_progress {
    const char *out;
    bool started;
    uint64_t last; /* bytes done at the previous call */
} genmodel_progress;

static void genmodel_progress_cb(void *ctx, const apr_model_init_info *in) {
    genmodel_progress *p = ctx;
    if (!p->started) {
        p->started = true;
        if (in->tok_path && in->padded)
            fprintf(stderr, "apr-genmodel: padded the vocabulary of %s from %lld to %d tokens with [PAD<id>] placeholders\n",
                    in->tok_path, (long long)in->n_tokens, in->shape->n_vocab);
        else if (in->tok_path) fprintf(stderr, "apr-genmodel: tokenizer from %s\n", in->tok_path);
        fprintf(stderr, "apr-genmodel: writing %s (%s, %s, %llu MiB of random weights)\n", p->out, in->shape->name,
                apr_dtype_name(in->dtype), (unsigned long long)(in->total >> 20));
        return;
    }
    const bool tty = isatty(2);
    const uint64_t steps = tty ? 200 : 10;
    const uint64_t before = p->last * steps / in->total;
    p->last = in->done;
    if (in->done * steps / in->total != before)
        fprintf(stderr, "%sapr-genmodel: %llu of %llu MiB%s", tty ? "\r" : "", (unsigned long long)(in->done >> 20),
                (unsigned long long)(in->total >> 20), tty && in->done < in->total ? "" : "\n");
}

int main(int argc, char **argv) {
    const char *shape = NULL, *spec = NULL, *dtype_s = "f16", *vocab = NULL, *out = NULL, *v;
    long seed = 1;
    bool no_vocab = false;
    cli_common common = {0};
    for (int i = 1; i < argc; i++) {
        int c = cli_parse_common(argc, argv, &i, &common); /* --backend and --threads: accepted, nothing computes */
        if (c < 0) return CLI_EXIT_USAGE;
        if (common.help) {
            fputs(genmodel_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (c > 0) continue;
        if ((v = cli_option_value(argc, argv, &i, "--shape"))) shape = v;
        else if ((v = cli_option_value(argc, argv, &i, "--shape-spec"))) spec = v;
        else if ((v = cli_option_value(argc, argv, &i, "--dtype"))) dtype_s = v;
        else if ((v = cli_option_value(argc, argv, &i, "--vocab-from"))) vocab = v;
        else if (!strcmp(argv[i], "--no-vocab")) no_vocab = true;
        else if ((v = cli_option_value(argc, argv, &i, "--seed"))) {
            if (!cli_parse_int(v, 0, LONG_MAX, &seed)) {
                fprintf(stderr, "apr-genmodel: --seed takes a non-negative integer\n");
                return CLI_EXIT_USAGE;
            }
        } else if (argv[i][0] == '-' || out) {
            fprintf(stderr, "apr-genmodel: unexpected argument '%s'\n%s", argv[i], genmodel_usage);
            return CLI_EXIT_USAGE;
        } else out = argv[i];
    }
    apr_error e;
    apr_model_init_shape custom;
    if (shape && spec) {
        fprintf(stderr, "apr-genmodel: --shape and --shape-spec contradict each other; give one\n");
        return CLI_EXIT_USAGE;
    }
    if (spec && apr_model_init_shape_parse(spec, &custom, &e) != APR_OK) {
        fprintf(stderr, "apr-genmodel: %s\n", e.msg);
        return CLI_EXIT_USAGE;
    }
    const apr_model_init_shape *sh = spec ? &custom : apr_model_init_shape_find(shape ? shape : "tiny");
    apr_dtype dt;
    if (!sh || !apr_dtype_parse(dtype_s, &dt) || (dt != APR_F16 && dt != APR_F32 && dt != APR_BF16) || !out) {
        fprintf(stderr, "apr-genmodel: %s\n%s",
                !sh ? "unknown --shape" : !out ? "no output file given" : "--dtype must be f16, f32 or bf16", genmodel_usage);
        return CLI_EXIT_USAGE;
    }
    if (no_vocab && vocab) {
        fprintf(stderr, "apr-genmodel: --vocab-from and --no-vocab contradict each other; give one\n");
        return CLI_EXIT_USAGE;
    }
    if (vocab && apr_hf_import_check_output(vocab, NULL, out, &e) != APR_OK) {
        fprintf(stderr, "apr-genmodel: %s\n", e.msg);
        return CLI_EXIT_USAGE;
    }
    cli_signal_cleanup_temps();
    genmodel_progress prog = {.out = out};
    const apr_model_init_tok tok = {.gguf_path = vocab};
    const apr_model_init_opts opts = {.producer = "apr-genmodel", .progress = genmodel_progress_cb, .progress_ctx = &prog};
    if (apr_model_init_write(sh, dt, (uint64_t)seed, &tok, &opts, out, &e) != APR_OK) {
        fprintf(stderr, "apr-genmodel: %s\n", e.msg);
        return CLI_EXIT_FAIL;
    }
    if (common.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", out);
        cJSON_AddStringToObject(o, "shape", sh->name);
        if (spec) cJSON_AddStringToObject(o, "spec", spec);
        cJSON_AddStringToObject(o, "dtype", dtype_s);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON_AddBoolToObject(o, "tokenizer", vocab != NULL);
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) puts(txt);
        free(txt);
        cJSON_Delete(o);
    }
    return CLI_EXIT_OK;
}

/* apr-import.c — converts a Hugging Face folder or a llama2.c checkpoint into a GGUF file apr-run and llama.cpp can load. */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/cli.h"
#include "common/cli_signal.h"
#include "hf_import.h"

static const char *import_usage =
    "usage: apr-import IN OUT.gguf [--tokenizer FILE] [--json]\n"
    "\n"
    "Converts IN into a GGUF file, written atomically: an unnamed file linked into place at the end\n"
    "(where the filesystem lacks that, a temporary file renamed over OUT, removed on Ctrl-C, TERM, HUP):\n"
    "  - a Hugging Face folder: config.json (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,\n"
    "    Qwen3ForCausalLM), model.safetensors or model.safetensors.index.json with its shards\n"
    "    (F32, F16, BF16 kept as they are), tokenizer.json (byte-level BPE); Llama q/k rows are\n"
    "    permuted as llama.cpp's converter does;\n"
    "  - a llama2.c checkpoint (model.bin) with its tokenizer (--tokenizer tokenizer.bin).\n"
    "OUT may not be, or replace, any file IN reads (its config, tokenizer, weights, shards, index,\n"
    "the --tokenizer file): that is a usage error and nothing is touched. Progress goes to stderr.\n"
    "\n"
    "options:\n"
    "  --tokenizer FILE  llama2.c tokenizer.bin (required for a .bin checkpoint)\n"
    "  --json            a one-object summary on stdout\n"
    "  -h, --help        this text\n"
    "\n"
    "exit status: 0 ok, 1 the conversion failed, 2 usage error\n";

/* Whether path starts with GGUF's magic (the caller has checked it is a regular file). */
static bool import_is_gguf(const char *path) {
    char magic[4] = {0};
    FILE *fp = fopen(path, "rb");
    bool gguf = fp && fread(magic, 1, 4, fp) == 4 && !memcmp(magic, "GGUF", 4);
    if (fp) fclose(fp);
    return gguf;
}

/* 0 when path is a regular file (or, with dir_ok, a folder); else the message is printed and 1
 * returned, before anything opens it (a FIFO or a device would block or never end). */
static int import_check_kind(const char *path, bool dir_ok, bool *is_dir) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if (!S_ISREG(st.st_mode) && !(dir_ok && S_ISDIR(st.st_mode))) {
        fprintf(stderr, "error: %s: not a regular file%s\n", path, dir_ok ? " or a folder" : "");
        return CLI_EXIT_FAIL;
    }
    if (is_dir) *is_dir = S_ISDIR(st.st_mode);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
    const char *pos[2] = {0}, *tok = NULL, *v;
    bool json = false;
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { fputs(import_usage, stdout); return CLI_EXIT_OK; }
        if (!strcmp(argv[i], "--json")) { json = true; continue; }
        if ((v = cli_option_value(argc, argv, &i, "--tokenizer"))) {
            if (!*v) { fprintf(stderr, "error: --tokenizer needs a FILE\n"); return CLI_EXIT_USAGE; }
            tok = v;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) { fprintf(stderr, "error: unknown option %s (see apr-import --help)\n", argv[i]); return CLI_EXIT_USAGE; }
        if (n_pos == 2) { fprintf(stderr, "error: more than IN and OUT given (see apr-import --help)\n"); return CLI_EXIT_USAGE; }
        pos[n_pos++] = argv[i];
    }
    if (n_pos != 2) { fprintf(stderr, "error: IN and OUT.gguf are required (see apr-import --help)\n"); return CLI_EXIT_USAGE; }
    const char *in = pos[0], *out = pos[1];
    bool dir = false;
    int rc = import_check_kind(in, true, &dir);
    if (!rc && tok) rc = import_check_kind(tok, false, NULL);
    if (rc) return rc;
    if (!dir && import_is_gguf(in)) {
        fprintf(stderr, "error: %s is already a GGUF file: apr-run, apr-quantize and apr-perplexity read it as it is\n", in);
        return CLI_EXIT_USAGE;
    }
    if (!dir && !tok) { fprintf(stderr, "error: %s is a file: a llama2.c checkpoint needs --tokenizer FILE\n", in); return CLI_EXIT_USAGE; }
    apr_error e;
    if (apr_hf_import_check_output(in, tok, out, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        return CLI_EXIT_USAGE;
    }
    cli_signal_cleanup_temps();
    double t0 = cli_now();
    hf_import *im = NULL;
    fprintf(stderr, "reading %s%s%s ...\n", in, tok ? " with " : "", tok ? tok : "");
    apr_status s = dir ? apr_hf_import_folder(in, &im, &e) : apr_hf_import_llama2c(in, tok, &im, &e);
    if (!s) {
        fprintf(stderr, "writing %s: architecture %s, %lld tensors, %lld parameters ...\n", out, apr_hf_import_arch(im),
                (long long)apr_hf_import_tensors(im), (long long)apr_hf_import_params(im));
        s = apr_hf_import_write(im, out, &e);
    }
    if (s) {
        fprintf(stderr, "error: %s\n", e.msg);
        apr_hf_import_free(im);
        return CLI_EXIT_FAIL;
    }
    double secs = cli_now() - t0;
    fprintf(stderr, "done in %.2f s\n", secs);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "input", in);
        cJSON_AddStringToObject(o, "output", out);
        cJSON_AddStringToObject(o, "format", dir ? "huggingface" : "llama2.c");
        cJSON_AddStringToObject(o, "architecture", apr_hf_import_arch(im));
        cJSON_AddNumberToObject(o, "tensors", (double)apr_hf_import_tensors(im));
        cJSON_AddNumberToObject(o, "parameters", (double)apr_hf_import_params(im));
        cJSON_AddNumberToObject(o, "seconds", secs);
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) puts(txt);
        free(txt);
        cJSON_Delete(o);
    }
    apr_hf_import_free(im);
    return CLI_EXIT_OK;
}

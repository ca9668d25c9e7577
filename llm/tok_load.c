/* tok_load.c — apr_tok_load_file: a GGUF file (by its magic) or a Hugging Face tokenizer. */
#include <stdio.h>
#include <string.h>

#include "tok_internal.h"

apr_status apr_tok_load_file(const char *path, tok_vocab **out, apr_error *err) {
    *out = NULL;
    char magic[4] = {0};
    FILE *fp = fopen(path, "rb");
    bool gguf = fp && fread(magic, 1, 4, fp) == 4 && !memcmp(magic, "GGUF", 4);
    if (fp) fclose(fp);
    if (!gguf) return apr_tok_load_hf(path, out, err);
    gguf_file *f;
    apr_status st = apr_gguf_open(path, &f, err);
    if (st) return st;
    st = apr_tok_load_gguf(f, out, err);
    apr_gguf_close(f);
    return st;
}

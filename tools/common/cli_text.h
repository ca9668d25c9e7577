/* cli_text.h — the text files and streams the frontends read: bounded, with clear errors. */
#ifndef APR_TOOLS_CLI_TEXT_H
#define APR_TOOLS_CLI_TEXT_H

#include <stddef.h>
#include <stdio.h>

#include "tokenizer.h"

/* The most text a tool reads from one file or stdin where no context bounds it: 256 MiB. */
#define CLI_TEXT_MAX ((size_t)256 << 20)

/* The whole file at path, NUL-terminated, its length in *len; NULL with errno set when it cannot
 * be read: EISDIR for a directory, EFBIG when it holds more than max bytes (at most max + 1 bytes
 * are read, so /dev/zero ends too). The caller frees it. */
char *cli_read_file(const char *path, size_t max, size_t *len);

/* The rest of fp the same way (stdin, a pipe). */
char *cli_read_stream(FILE *fp, size_t max, size_t *len);

/* The most bytes of text one token of v can stand for: twice the longest token's text (room for
 * normalization that shortens the text), at least 8. n tokens never hold more than n times it. */
size_t cli_text_bytes_per_token(const tok_vocab *v);

/* The bound on a text that n tokens of v could hold: n x cli_text_bytes_per_token, at most
 * CLI_TEXT_MAX. */
size_t cli_text_bound(const tok_vocab *v, long n);

#endif

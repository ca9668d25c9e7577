/* tu_run.h — runs a built tool from a test and captures its exit status, stdout and stderr. */
#ifndef TU_RUN_H
#define TU_RUN_H

typedef struct tu_run_result {
    int status;     /* exit status, or -1 when killed by a signal */
    char *out, *err;
} tu_run_result;

/* Runs bin with args (NULL-terminated, at most 38) and input on stdin (NULL: empty). stdout and
 * stderr go to temporary files so that neither can fill a pipe and stall the child. fsize_limit > 0
 * caps the files the child may write (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past it fails
 * with EFBIG the way a full disk fails with ENOSPC). Failing to start is a test failure. */
tu_run_result tu_run(const char *bin, const char *input, const char *const *args, long fsize_limit);

void tu_run_free(tu_run_result *r);

#endif

/* hf_open.c — a Hugging Face folder opened as a GGUF file through an unlinked temporary file. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_import.h"

apr_status apr_hf_open_as_gguf(const char *dir, gguf_file **out, apr_error *err) {
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return apr_gguf_open(dir, out, err); /* a file: GGUF as it is */
    const char *tmp = secure_getenv("TMPDIR"); /* a setuid or setgid program ignores it */
    char tdir[4096];
    snprintf(tdir, sizeof tdir, "%s/apr-import-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    /* made and registered with the cleanup signals blocked, so an interrupt never leaves it behind */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    const bool made = mkdtemp(tdir) != NULL;
    const int held = made ? apr_gguf_writer_hold_temp_dir(tdir) : -1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!made) {
        if (err) snprintf(err->msg, sizeof err->msg, "%.400s: cannot create a temporary folder: %s", tdir, strerror(errno));
        return APR_ERR_IO;
    }
    /* named after the folder, since later messages (the loader's) name this file */
    char base[256], path[4400];
    const char *end = dir + strlen(dir);
    while (end > dir + 1 && end[-1] == '/') end--;
    const char *start = end;
    while (start > dir && start[-1] != '/') start--;
    snprintf(base, sizeof base, "%.*s", (int)(end - start), start);
    snprintf(path, sizeof path, "%s/%s.gguf", tdir, *base && strcmp(base, "/") ? base : "model");
    hf_import *im = NULL;
    apr_status st = apr_hf_import_folder(dir, &im, err);
    if (!st) st = apr_hf_import_write(im, path, err);
    apr_hf_import_free(im);
    if (!st) st = apr_gguf_open(path, out, err);
    /* the mapping keeps the data alive; the name can go now */
    unlink(path);
    rmdir(tdir);
    apr_gguf_writer_forget_temp_dir(held);
    return st;
}

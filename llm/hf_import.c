/* hf_import.c — the import object: owned buffers, tensor bookkeeping, the q/k row permutation, the final write. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_internal.h"

hf_import *hf_import_new(void) {
    hf_import *im = calloc(1, sizeof *im);
    if (im && !(im->w = apr_gguf_writer_new())) { free(im); im = NULL; }
    return im;
}

void *hf_import_alloc(hf_import *im, size_t bytes) {
    if (im->n_bufs == im->cap_bufs) {
        size_t cap = im->cap_bufs ? 2 * im->cap_bufs : 16;
        void **b = realloc(im->bufs, cap * sizeof *b);
        if (!b) return NULL;
        im->bufs = b;
        im->cap_bufs = cap;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (p) im->bufs[im->n_bufs++] = p;
    return p;
}

void hf_import_add(hf_import *im, const char *name, apr_dtype dt, int n_dims, const int64_t *ne, const void *data,
                   uint64_t size) {
    apr_gguf_writer_add_tensor(im->w, name, (uint32_t)dt, n_dims, ne, data, size);
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++) n *= ne[i];
    im->n_tensors++;
    im->n_params += n;
}

void hf_import_permute_rows(void *dst, const void *src, int n_head, int head_dim, size_t row_bytes) {
    const int half = head_dim / 2;
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) {
                size_t to = (size_t)h * head_dim + (size_t)i * 2 + j;        /* [head, half, 2] */
                size_t from = (size_t)h * head_dim + (size_t)j * half + i;  /* [head, 2, half] */
                memcpy((char *)dst + to * row_bytes, (const char *)src + from * row_bytes, row_bytes);
            }
}

char *hf_import_slurp(const char *path, size_t max, size_t *len_out, apr_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the import */
    struct stat sb;
    if (fd < 0) { apr_error_set(err, APR_ERR_IO, "%s: %s", path, strerror(errno)); return NULL; }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        apr_error_set(err, APR_ERR_IO, "%s: not a regular file", path);
        return NULL;
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        apr_error_set(err, APR_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap ? 2 * cap : 131072;
            char *b = cap > max + 65537 ? NULL : realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(fp);
                apr_error_set(err, APR_ERR_FORMAT, "%s: larger than %zu bytes or out of memory", path, max);
                return NULL;
            }
            buf = b;
        }
        size_t got = fread(buf + len, 1, 65536, fp);
        len += got;
        if (got < 65536) break;
    }
    bool bad = ferror(fp) || len > max;
    fclose(fp);
    if (bad) {
        free(buf);
        apr_error_set(err, APR_ERR_IO, "%s: read error or larger than %zu bytes", path, max);
        return NULL;
    }
    buf[len] = 0;
    if (len_out) *len_out = len;
    return buf;
}

apr_status apr_hf_import_write(hf_import *im, const char *path, apr_error *err) { return apr_gguf_writer_write(im->w, path, err); }

void apr_hf_import_free(hf_import *im) {
    if (!im) return;
    apr_gguf_writer_free(im->w);
    for (size_t i = 0; i < im->n_bufs; i++) free(im->bufs[i]);
    free(im->bufs);
    for (int i = 0; i < im->n_shards; i++) apr_safetensors_close(im->shards[i]);
    free(im->shards);
    if (im->map) munmap(im->map, im->map_size);
    free(im);
}

const char *apr_hf_import_arch(const hf_import *im) { return im->arch; }
int64_t apr_hf_import_tensors(const hf_import *im) { return im->n_tensors; }
int64_t apr_hf_import_params(const hf_import *im) { return im->n_params; }

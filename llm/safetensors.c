/* safetensors.c — parses and validates a safetensors header against the file, then serves tensors from the mapping. */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

#define SAFETENSORS_MAX_HEADER (100u << 20) /* the reference implementation's limit */

struct safetensors_file {
    char *name;                  /* path, for messages */
    void *map;                   /* the whole file (NULL for memory images) */
    size_t map_size;
    safetensors_tensor *t;       /* [n] in header order */
    int64_t n;
    cJSON *meta;                 /* "__metadata__" object or NULL (detached from the header) */
};

/* A JSON number that is a non-negative integer exactly representable (< 2^53). */
static bool safetensors_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0) || d >= 9007199254740992.0 || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static int safetensors_by_offset(const void *a, const void *b) {
    const safetensors_tensor *x = *(const safetensors_tensor *const *)a, *y = *(const safetensors_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* True when s holds no control bytes: names and dtypes are echoed in one-line messages. */
static bool safetensors_printable(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

/* One header entry: dtype, shape, offsets, all checked against the data section [data, data+dsize). */
static apr_status safetensors_entry(const char *fname, const cJSON *e, const unsigned char *data, uint64_t dsize,
                                    safetensors_tensor *t, apr_error *err) {
    if (!cJSON_IsObject(e)) return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': entry is not an object", fname, t->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': dtype is missing", fname, t->name);
    uint64_t esize;
    if (!safetensors_printable(dt->valuestring))
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': dtype holds control characters", fname, t->name);
    if (!strcmp(dt->valuestring, "F32")) t->dtype = APR_F32, esize = 4;
    else if (!strcmp(dt->valuestring, "F16")) t->dtype = APR_F16, esize = 2;
    else if (!strcmp(dt->valuestring, "BF16")) t->dtype = APR_BF16, esize = 2;
    else return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %.32s is not supported (F32, F16, BF16 are)",
                                 fname, t->name, dt->valuestring);
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > SAFETENSORS_MAX_DIMS)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': shape is not an array of at most %d dims", fname,
                                t->name, SAFETENSORS_MAX_DIMS);
    uint64_t elems = 1;
    const cJSON *d;
    t->n_dims = 0;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (!safetensors_uint(d, &v) || v > INT64_MAX)
            return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': shape holds a non-integer or negative size", fname, t->name);
        if (v && elems > UINT64_MAX / v / esize)
            return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': shape overflows", fname, t->name);
        elems *= v;
        t->shape[t->n_dims++] = (int64_t)v;
    }
    uint64_t b, en;
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !safetensors_uint(cJSON_GetArrayItem(of, 0), &b) ||
        !safetensors_uint(cJSON_GetArrayItem(of, 1), &en) || b > en)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': data_offsets is not [begin, end] with begin <= end", fname, t->name);
    if (en > dsize)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': data [%llu, %llu) runs past the end of the data (%llu bytes)",
                                fname, t->name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)dsize);
    if (en - b != elems * esize)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s': %llu bytes of data for %llu elements of %s", fname,
                                t->name, (unsigned long long)(en - b), (unsigned long long)elems, dt->valuestring);
    t->size = en - b;
    t->data = data + b;
    return APR_OK;
}

static apr_status safetensors_parse(safetensors_file *f, const unsigned char *img, size_t size, apr_error *err) {
    const char *fn = f->name;
    if (size < 8) return apr_error_set(err, APR_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", fn, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | img[i];
    if (hlen > SAFETENSORS_MAX_HEADER || hlen > size - 8)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: header length %llu exceeds the file (%zu bytes) or the 100 MiB limit",
                                fn, (unsigned long long)hlen, size);
    char *js = malloc(hlen + 1);
    if (!js) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory for the header", fn);
    memcpy(js, img + 8, hlen);
    js[hlen] = 0;
    cJSON *root = cJSON_ParseWithLength(js, hlen);
    free(js);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return apr_error_set(err, APR_ERR_FORMAT, "%s: the header is not a JSON object", fn);
    }
    f->meta = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
    if (f->meta && !cJSON_IsObject(f->meta)) {
        cJSON_Delete(root);
        return apr_error_set(err, APR_ERR_FORMAT, "%s: __metadata__ is not an object", fn);
    }
    apr_status st = APR_OK;
    int n = cJSON_GetArraySize(root);
    const unsigned char *data = img + 8 + hlen;
    uint64_t dsize = size - 8 - hlen;
    f->t = calloc((size_t)n + 1, sizeof *f->t);
    safetensors_tensor **order = calloc((size_t)n + 1, sizeof *order);
    if (!f->t || !order) st = apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", fn);
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (st) break;
        safetensors_tensor *t = &f->t[f->n];
        t->name = strdup(e->string ? e->string : "");
        if (!t->name) { st = apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", fn); break; }
        f->n++;
        if (!*t->name) { st = apr_error_set(err, APR_ERR_FORMAT, "%s: a tensor has an empty name", fn); break; }
        if (!safetensors_printable(t->name)) {
            st = apr_error_set(err, APR_ERR_FORMAT, "%s: tensor %lld has a name with control characters", fn, (long long)f->n - 1);
            break;
        }
        if (apr_safetensors_find(f, t->name) != t) { st = apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s' appears twice", fn, t->name); break; }
        st = safetensors_entry(fn, e, data, dsize, t, err);
        order[f->n - 1] = t;
    }
    cJSON_Delete(root);
    if (!st) {
        /* empty tensors occupy nothing; the others must not share a byte */
        qsort(order, (size_t)f->n, sizeof *order, safetensors_by_offset);
        const safetensors_tensor *prev = NULL;
        for (int64_t i = 0; i < f->n && !st; i++) {
            if (!order[i]->size) continue;
            if (prev && (const unsigned char *)prev->data + prev->size > (const unsigned char *)order[i]->data)
                st = apr_error_set(err, APR_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", fn, prev->name, order[i]->name);
            prev = order[i];
        }
    }
    free(order);
    return st;
}

static apr_status safetensors_new(const char *name, safetensors_file **out, apr_error *err) {
    *out = calloc(1, sizeof **out);
    if (*out) (*out)->name = strdup(name);
    if (!*out || !(*out)->name) {
        apr_safetensors_close(*out);
        *out = NULL;
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    return APR_OK;
}

apr_status apr_safetensors_open_memory(const void *data, size_t size, const char *name, safetensors_file **out, apr_error *err) {
    safetensors_file *f;
    apr_status st = safetensors_new(name, &f, err);
    if (!st) st = safetensors_parse(f, data, size, err);
    if (st) { apr_safetensors_close(f); f = NULL; }
    *out = f;
    return st;
}

apr_status apr_safetensors_open(const char *path, safetensors_file **out, apr_error *err) {
    *out = NULL;
    /* O_NONBLOCK: a FIFO in a shard's place is refused below instead of waiting for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return apr_error_set(err, APR_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return apr_error_set(err, APR_ERR_IO, "%s: not a regular file", path);
    }
    safetensors_file *f;
    apr_status st = safetensors_new(path, &f, err);
    if (st) { close(fd); return st; }
    f->map_size = (size_t)sb.st_size;
    if (f->map_size) {
        f->map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            st = apr_error_set(err, APR_ERR_IO, "%s: mmap: %s", path, strerror(errno));
        }
    }
    close(fd);
    if (!st) st = safetensors_parse(f, f->map, f->map_size, err);
    if (st) { apr_safetensors_close(f); return st; }
    *out = f;
    return APR_OK;
}

void apr_safetensors_close(safetensors_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n; i++) free((char *)f->t[i].name);
    free(f->t);
    cJSON_Delete(f->meta);
    if (f->map) munmap(f->map, f->map_size);
    free(f->name);
    free(f);
}

int64_t apr_safetensors_count(const safetensors_file *f) { return f->n; }
const safetensors_tensor *apr_safetensors_at(const safetensors_file *f, int64_t i) { return i >= 0 && i < f->n ? &f->t[i] : NULL; }

const safetensors_tensor *apr_safetensors_find(const safetensors_file *f, const char *name) {
    for (int64_t i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const char *apr_safetensors_metadata(const safetensors_file *f, const char *key) {
    const cJSON *v = f->meta ? cJSON_GetObjectItemCaseSensitive(f->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

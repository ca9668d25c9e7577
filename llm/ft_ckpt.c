/* ft_ckpt.c — fine-tuning checkpoints: saved by the atomic GGUF writer, loaded by the GGUF reader with every key's type checked. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft_ckpt.h"
#include "gguf.h"

#define CK_PREFIX "apr.ckpt."
#define CK_TEMP APR_FTCKPT_FILE ".tmp."   /* the writer's named temporary files: OUT.tmp.XXXXXX, OUT.tmp.PID.K */
#define CK_GGUF_F32 0u                    /* the GGML type id of f32 */

/* ---------------------------------------------------------------- paths */

/* DIR without trailing slashes ("/" stays "/"), malloc'd; NULL when out of memory. */
static char *ck_dir_copy(const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    return strndup(dir, n);
}

/* DIR/checkpoint.gguf, malloc'd; NULL when out of memory. */
static char *ck_file_path(const char *dir) {
    char *d = ck_dir_copy(dir);
    if (!d) return NULL;
    size_t n = strlen(d) + sizeof "/" APR_FTCKPT_FILE;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s" APR_FTCKPT_FILE, d, strcmp(d, "/") ? "/" : "");
    free(d);
    return p;
}

/* fsyncs the directory holding path (a name just created in it); 0 or an errno value. */
static int ck_sync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char *parent = !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!parent) return ENOMEM;
    int e = 0, fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) e = errno;
    else {
        if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) e = errno;
        close(fd);
    }
    free(parent);
    return e;
}

/* mkdir -p path (no trailing slash), each new directory's entry synced; 0 or an errno value. An
 * existing path is fine here: the caller checks that it is a directory. */
static int ck_mkdirs(char *path) {
    if (mkdir(path, 0777) == 0) return ck_sync_parent(path);
    if (errno != ENOENT) return errno == EEXIST ? 0 : errno;
    char *slash = strrchr(path, '/');
    if (!slash || slash == path) return ENOENT;
    *slash = 0;
    int e = ck_mkdirs(path);
    *slash = '/';
    if (e) return e;
    if (mkdir(path, 0777) == 0) return ck_sync_parent(path);
    return errno == EEXIST ? 0 : errno;
}

/* Removes the named temporary files a killed save left in DIR (the writer's fallback where the
 * filesystem has no O_TMPFILE). Only under the DIR lock, so never another save's file. */
static void ck_remove_leftovers(int dirfd) {
    int fd = dup(dirfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    struct stat sb;
    for (struct dirent *de; (de = readdir(d));)
        if (!strncmp(de->d_name, CK_TEMP, strlen(CK_TEMP)) &&
            fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
            unlinkat(dirfd, de->d_name, 0);
    closedir(d);
}

LLM_API bool apr_ftckpt_exists(const char *dir) {
    if (!dir || !*dir) return false;
    char *path = ck_file_path(dir);
    struct stat sb;
    bool ok = path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    free(path);
    return ok;
}

/* ---------------------------------------------------------------- argument checks (both directions) */

static bool ck_reserved(const char *key) {
    return !strncmp(key, CK_PREFIX, strlen(CK_PREFIX)) || !strcmp(key, "general.alignment");
}

/* Elements of t, or -1 (and err set) when its name, dims, ne or data are invalid. */
static int64_t ck_tensor_elems(const apr_ftckpt_tensor *t, int i, const char *fn, apr_error *err) {
    if (!t->name || !*t->name)
        return apr_error_set(err, APR_ERR_INVALID, "%s: tensor %d has no name", fn, i), -1;
    if (t->n_dims < 1 || t->n_dims > 4)
        return apr_error_set(err, APR_ERR_INVALID, "%s: tensor '%s': %d dims, want 1..4", fn, t->name, t->n_dims), -1;
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) {
        if (t->ne[d] < 1)
            return apr_error_set(err, APR_ERR_INVALID, "%s: tensor '%s': ne[%d] = %" PRId64 ", want >= 1", fn, t->name,
                                 d, t->ne[d]), -1;
        if (__builtin_mul_overflow(n, t->ne[d], &n) || n > INT64_MAX / 4)
            return apr_error_set(err, APR_ERR_INVALID, "%s: tensor '%s' is too large", fn, t->name), -1;
    }
    if (!t->data) return apr_error_set(err, APR_ERR_INVALID, "%s: tensor '%s' has no data", fn, t->name), -1;
    return n;
}

/* "[4096, 16]" into buf. */
static const char *ck_shape(char *buf, size_t cap, int n_dims, const int64_t *ne) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < n_dims && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, d ? ", " : "", ne[d]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}

/* ---------------------------------------------------------------- saving */

static int ck_name_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Tensor names must be distinct (sorted copies of the pointers, so thousands of tensors stay cheap). */
static apr_status ck_check_unique(const char *dir, const apr_ftckpt_tensor *t, int n, apr_error *err) {
    if (n < 2) return APR_OK;
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", dir);
    for (int i = 0; i < n; i++) names[i] = t[i].name;
    qsort(names, (size_t)n, sizeof *names, ck_name_cmp);
    apr_status s = APR_OK;
    for (int i = 1; i < n && !s; i++)
        if (!strcmp(names[i - 1], names[i]))
            s = apr_error_set(err, APR_ERR_INVALID, "apr_ftckpt_save: %s: tensor '%s' given twice", dir, names[i]);
    free(names);
    return s;
}

static apr_status ck_check_save(const char *dir, const apr_ftckpt_meta *m, const apr_ftckpt_tensor *t, int n,
                                apr_error *err) {
    static const char fn[] = "apr_ftckpt_save";
    if (!dir || !*dir) return apr_error_set(err, APR_ERR_INVALID, "%s: no directory", fn);
    if (!m) return apr_error_set(err, APR_ERR_INVALID, "%s: %s: no metadata", fn, dir);
    if (n < 0 || (n > 0 && !t))
        return apr_error_set(err, APR_ERR_INVALID, "%s: %s: %d tensors, %s", fn, dir, n, t ? "given" : "none given");
    if (m->n_extra < 0 || (m->n_extra > 0 && !m->extra))
        return apr_error_set(err, APR_ERR_INVALID, "%s: %s: %d extra keys, %s", fn, dir, m->n_extra,
                             m->extra ? "given" : "none given");
    for (int i = 0; i < m->n_extra; i++) {
        const apr_ftckpt_kv *kv = &m->extra[i];
        if (!kv->key || !*kv->key) return apr_error_set(err, APR_ERR_INVALID, "%s: %s: extra key %d has no name", fn, dir, i);
        if (ck_reserved(kv->key))
            return apr_error_set(err, APR_ERR_INVALID, "%s: %s: extra key '%s' is reserved", fn, dir, kv->key);
        if (kv->kind != APR_FTCKPT_STR && kv->kind != APR_FTCKPT_U64 && kv->kind != APR_FTCKPT_F32)
            return apr_error_set(err, APR_ERR_INVALID, "%s: %s: extra key '%s' has kind %d", fn, dir, kv->key, (int)kv->kind);
        if (kv->kind == APR_FTCKPT_STR && !kv->str)
            return apr_error_set(err, APR_ERR_INVALID, "%s: %s: extra key '%s' is a NULL string", fn, dir, kv->key);
        for (int j = 0; j < i; j++)
            if (!strcmp(m->extra[j].key, kv->key))
                return apr_error_set(err, APR_ERR_INVALID, "%s: %s: extra key '%s' given twice", fn, dir, kv->key);
    }
    for (int i = 0; i < n; i++)
        if (ck_tensor_elems(&t[i], i, fn, err) < 0) return APR_ERR_INVALID;
    return ck_check_unique(dir, t, n, err);
}

/* The GGUF image of m and t, written to path by the atomic writer. */
static apr_status ck_write(const char *path, const apr_ftckpt_meta *m, const apr_ftckpt_tensor *t, int n, apr_error *err) {
    gguf_writer *w = apr_gguf_writer_new();
    if (!w) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
    apr_gguf_writer_set_u32(w, CK_PREFIX "version", APR_FTCKPT_VERSION);
    gguf_value v = {.type = GGUF_UINT64};
    v.u = m->step;
    apr_gguf_writer_set_value(w, CK_PREFIX "step", &v);
    v.u = m->epoch;
    apr_gguf_writer_set_value(w, CK_PREFIX "epoch", &v);
    v.u = m->data_index;
    apr_gguf_writer_set_value(w, CK_PREFIX "data_index", &v);
    apr_gguf_writer_set_arr(w, CK_PREFIX "rng", GGUF_UINT64, m->rng, 4);
    apr_gguf_writer_set_str(w, CK_PREFIX "config", m->config ? m->config : "");
    for (int i = 0; i < m->n_extra; i++) {
        const apr_ftckpt_kv *kv = &m->extra[i];
        if (kv->kind == APR_FTCKPT_STR) apr_gguf_writer_set_str(w, kv->key, kv->str);
        else if (kv->kind == APR_FTCKPT_F32) apr_gguf_writer_set_f32(w, kv->key, kv->f32);
        else {
            v.u = kv->u64;
            apr_gguf_writer_set_value(w, kv->key, &v);
        }
    }
    for (int i = 0; i < n; i++) {
        int64_t elems = ck_tensor_elems(&t[i], i, "apr_ftckpt_save", NULL);
        apr_gguf_writer_add_tensor(w, t[i].name, CK_GGUF_F32, t[i].n_dims, t[i].ne, t[i].data, (uint64_t)elems * 4);
    }
    apr_status s = apr_gguf_writer_write(w, path, err);
    apr_gguf_writer_free(w);
    return s;
}

LLM_API apr_status apr_ftckpt_save(const char *dir, const apr_ftckpt_meta *m, const apr_ftckpt_tensor *t, int n,
                                   apr_error *err) {
    apr_status s = ck_check_save(dir, m, t, n, err);
    if (s) return s;
    char *d = ck_dir_copy(dir), *path = ck_file_path(dir);
    int dirfd = -1;
    if (!d || !path) {
        s = apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    int e = ck_mkdirs(d);
    if (e) {
        s = apr_error_set(err, APR_ERR_IO, "%s: cannot create the directory: %s", d, strerror(e));
        goto done;
    }
    if ((dirfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        e = errno;
        s = apr_error_set(err, APR_ERR_IO, "%s: %s", d, e == ENOTDIR ? "not a directory" : strerror(e));
        goto done;
    }
    /* One save per DIR at a time. Where the filesystem has no flock (ENOLCK, EINVAL, some network
     * filesystems) the save goes on, unlocked, and leaves any leftovers alone. */
    if (flock(dirfd, LOCK_EX | LOCK_NB) == 0) ck_remove_leftovers(dirfd);
    else if (errno == EWOULDBLOCK) {
        s = apr_error_set(err, APR_ERR_IO, "%s: another process is saving a checkpoint here", d);
        goto done;
    }
    s = ck_write(path, m, t, n, err);
done:
    if (dirfd >= 0) close(dirfd);   /* releases the lock */
    free(d);
    free(path);
    return s;
}

/* ---------------------------------------------------------------- loading */

/* The value of key, required to be of type want; NULL (and err set) otherwise. */
static const gguf_value *ck_key(const gguf_file *f, const char *key, gguf_type want, apr_error *err) {
    int64_t i = apr_gguf_kv_find(f, key);
    if (i < 0)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: not a checkpoint: key '%s' is missing", apr_gguf_path(f), key),
               NULL;
    const gguf_value *v = apr_gguf_kv_value(f, i);
    if (v->type != want)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: key '%s' is a %s, want a %s", apr_gguf_path(f), key,
                             apr_gguf_type_name(v->type), apr_gguf_type_name(want)), NULL;
    return v;
}

/* A string value as a C string: refused when it holds a NUL byte before its end. */
static bool ck_str_ok(const gguf_file *f, const char *key, const gguf_value *v, apr_error *err) {
    if (strlen(v->str.ptr) == v->str.len) return true;
    apr_error_set(err, APR_ERR_FORMAT, "%s: key '%s': the string holds a NUL byte", apr_gguf_path(f), key);
    return false;
}

static apr_status ck_rng(const gguf_file *f, uint64_t rng[4], apr_error *err) {
    const char *key = CK_PREFIX "rng";
    const gguf_value *v = ck_key(f, key, GGUF_ARRAY, err);
    if (!v) return APR_ERR_FORMAT;
    if (v->arr.type == GGUF_UINT64 && v->arr.n == 4) {
        memcpy(rng, v->arr.data, 32);
    } else if (v->arr.type == GGUF_UINT32 && v->arr.n == 8) {
        uint32_t w[8];
        memcpy(w, v->arr.data, 32);
        for (int i = 0; i < 4; i++) rng[i] = (uint64_t)w[2 * i] | (uint64_t)w[2 * i + 1] << 32;
    } else {
        return apr_error_set(err, APR_ERR_FORMAT, "%s: key '%s' is %" PRIu64 " x %s, want 4 x uint64 or 8 x uint32",
                             apr_gguf_path(f), key, v->arr.n, apr_gguf_type_name(v->arr.type));
    }
    return APR_OK;
}

/* Whether entry i is an extra key (not the checkpoint's own, not the writer's alignment). */
static bool ck_is_extra(const gguf_file *f, int64_t i) {
    const char *key = apr_gguf_kv_key(f, i);
    return !ck_reserved(key);
}

/* Every extra key in one malloc'd block (the array, then the keys and strings). */
static apr_status ck_extras(const gguf_file *f, apr_ftckpt_kv **out, int *n_out, apr_error *err) {
    size_t n = 0, bytes = 0;
    for (int64_t i = 0; i < apr_gguf_kv_count(f); i++) {
        if (!ck_is_extra(f, i)) continue;
        const char *key = apr_gguf_kv_key(f, i);
        const gguf_value *v = apr_gguf_kv_value(f, i);
        if (v->type != GGUF_STRING && v->type != GGUF_UINT64 && v->type != GGUF_FLOAT32)
            return apr_error_set(err, APR_ERR_FORMAT, "%s: key '%s' is a %s, want a string, uint64 or float32",
                                 apr_gguf_path(f), key, apr_gguf_type_name(v->type));
        if (v->type == GGUF_STRING && !ck_str_ok(f, key, v, err)) return APR_ERR_FORMAT;
        if (n == INT32_MAX) return apr_error_set(err, APR_ERR_FORMAT, "%s: too many keys", apr_gguf_path(f));
        n++;
        bytes += strlen(key) + 1 + (v->type == GGUF_STRING ? v->str.len + 1 : 0);
    }
    *out = NULL;
    *n_out = 0;
    if (!n) return APR_OK;
    apr_ftckpt_kv *kv = malloc(n * sizeof *kv + bytes);
    if (!kv) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory for %zu extra keys", apr_gguf_path(f), n);
    char *p = (char *)(kv + n);
    size_t k = 0;
    for (int64_t i = 0; i < apr_gguf_kv_count(f); i++) {
        if (!ck_is_extra(f, i)) continue;
        const char *key = apr_gguf_kv_key(f, i);
        const gguf_value *v = apr_gguf_kv_value(f, i);
        size_t len = strlen(key) + 1;
        kv[k].key = memcpy(p, key, len);
        p += len;
        if (v->type == GGUF_STRING) {
            kv[k].kind = APR_FTCKPT_STR;
            kv[k].str = memcpy(p, v->str.ptr, v->str.len + 1);
            p += v->str.len + 1;
        } else if (v->type == GGUF_UINT64) {
            kv[k].kind = APR_FTCKPT_U64;
            kv[k].u64 = v->u;
        } else {
            kv[k].kind = APR_FTCKPT_F32;
            kv[k].f32 = (float)v->f;
        }
        k++;
    }
    *out = kv;
    *n_out = (int)n;
    return APR_OK;
}

/* Finds the file's tensor for t[i] and checks its type and shape against t's. */
static apr_status ck_tensor(const gguf_file *f, const apr_ftckpt_tensor *t, int i, const gguf_tensor **out,
                            apr_error *err) {
    int64_t elems = ck_tensor_elems(t, i, "apr_ftckpt_load", err);
    if (elems < 0) return APR_ERR_INVALID;
    const gguf_tensor *g = apr_gguf_tensor_find(f, t->name);
    if (!g) return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s' is missing", apr_gguf_path(f), t->name);
    if (g->dtype != CK_GGUF_F32) {
        const char *dt = apr_gguf_dtype_name(g->dtype);
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s' is %s, want f32", apr_gguf_path(f), t->name,
                             dt ? dt : "of an unknown type");
    }
    bool same = g->n_dims == t->n_dims;
    for (int d = 0; same && d < t->n_dims; d++) same = g->ne[d] == t->ne[d];
    if (!same || g->size != (uint64_t)elems * 4) {
        char a[128], b[128];
        return apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s' is %s, this run's is %s", apr_gguf_path(f), t->name,
                             ck_shape(a, sizeof a, g->n_dims, g->ne), ck_shape(b, sizeof b, t->n_dims, t->ne));
    }
    *out = g;
    return APR_OK;
}

/* Everything checked and copied out of the open file f; nothing of the caller's changed on failure. */
static apr_status ck_read(const gguf_file *f, apr_ftckpt_meta *m, apr_ftckpt_tensor *t, int n, apr_error *err) {
    const char *path = apr_gguf_path(f);
    const gguf_value *ver = ck_key(f, CK_PREFIX "version", GGUF_UINT32, err);
    if (!ver) return APR_ERR_FORMAT;
    if (ver->u != APR_FTCKPT_VERSION)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: checkpoint version %" PRIu64 ", this build reads version %u", path,
                             ver->u, APR_FTCKPT_VERSION);
    apr_ftckpt_meta r = {0};
    const gguf_value *v;
    if (!(v = ck_key(f, CK_PREFIX "step", GGUF_UINT64, err))) return APR_ERR_FORMAT;
    r.step = v->u;
    if (!(v = ck_key(f, CK_PREFIX "epoch", GGUF_UINT64, err))) return APR_ERR_FORMAT;
    r.epoch = v->u;
    if (!(v = ck_key(f, CK_PREFIX "data_index", GGUF_UINT64, err))) return APR_ERR_FORMAT;
    r.data_index = v->u;
    if (ck_rng(f, r.rng, err)) return APR_ERR_FORMAT;
    const gguf_value *cfg = ck_key(f, CK_PREFIX "config", GGUF_STRING, err);
    if (!cfg || !ck_str_ok(f, CK_PREFIX "config", cfg, err)) return APR_ERR_FORMAT;

    const gguf_tensor **src = n ? malloc((size_t)n * sizeof *src) : NULL;
    if (n && !src) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
    apr_status s = APR_OK;
    for (int i = 0; i < n && !s; i++) s = ck_tensor(f, &t[i], i, &src[i], err);
    apr_ftckpt_kv *extra = NULL;
    if (!s) s = ck_extras(f, &extra, &r.n_extra, err);
    char *config = s ? NULL : malloc(cfg->str.len + 1);
    if (!s && !config) s = apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", path);
    if (s) {
        free(extra);
        free(src);
        return s;
    }
    memcpy(config, cfg->str.ptr, cfg->str.len + 1);
    for (int i = 0; i < n; i++) memcpy(t[i].data, src[i]->data, src[i]->size);
    free(src);
    r.config = config;
    r.extra = extra;
    *m = r;
    return APR_OK;
}

LLM_API apr_status apr_ftckpt_load(const char *dir, apr_ftckpt_meta *m, apr_ftckpt_tensor *t, int n, apr_error *err) {
    static const char fn[] = "apr_ftckpt_load";
    if (!dir || !*dir) return apr_error_set(err, APR_ERR_INVALID, "%s: no directory", fn);
    if (!m) return apr_error_set(err, APR_ERR_INVALID, "%s: %s: no metadata", fn, dir);
    if (n < 0 || (n > 0 && !t))
        return apr_error_set(err, APR_ERR_INVALID, "%s: %s: %d tensors, %s", fn, dir, n, t ? "given" : "none given");
    char *path = ck_file_path(dir);
    if (!path) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", dir);
    struct stat sb;
    apr_status s;
    if (stat(path, &sb) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
        s = apr_error_set(err, APR_ERR_NOT_FOUND, "%s: no checkpoint: %s", path, strerror(errno));
        free(path);
        return s;
    }
    gguf_file *f = NULL;
    s = apr_gguf_open(path, &f, err);
    free(path);
    if (s) return s;
    s = ck_read(f, m, t, n, err);
    apr_gguf_close(f);
    return s;
}

LLM_API void apr_ftckpt_meta_free(apr_ftckpt_meta *m) {
    if (!m) return;
    free((void *)m->config);
    free((void *)m->extra);
    m->config = NULL;
    m->extra = NULL;
    m->n_extra = 0;
}

LLM_API const apr_ftckpt_kv *apr_ftckpt_meta_find(const apr_ftckpt_meta *m, const char *key) {
    if (!m || !key) return NULL;
    for (int i = 0; i < m->n_extra; i++)
        if (!strcmp(m->extra[i].key, key)) return &m->extra[i];
    return NULL;
}

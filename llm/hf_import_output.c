/* hf_import_output.c — apr_hf_import_check_output: refuses an output path that is, or would replace, a
 * file the input reads (compared by device and inode, and by resolved directory and name). */
#include <cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf_internal.h"

/* What identifies a path: the file it names, and the directory entry it names. */
typedef struct out_id {
    bool exists;            /* stat succeeded: dev/ino are the file's (symlinks followed) */
    dev_t dev;
    ino_t ino;
    bool entry;             /* the parent directory exists and the last name is a real name */
    dev_t pdev;             /* the parent directory, resolved */
    ino_t pino;
    char name[NAME_MAX + 1];
} out_id;

static out_id out_id_of(const char *path) {
    out_id id = {0};
    struct stat sb;
    if (stat(path, &sb) == 0) id.exists = true, id.dev = sb.st_dev, id.ino = sb.st_ino;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/') start--;
    size_t len = n - start;
    if (len == 0 || len > NAME_MAX || (len == 1 && path[start] == '.') || (len == 2 && !strncmp(path + start, "..", 2)))
        return id;
    memcpy(id.name, path + start, len);
    id.name[len] = 0;
    char parent[PATH_MAX];
    if (start == 0) snprintf(parent, sizeof parent, ".");
    else if (start == 1) snprintf(parent, sizeof parent, "/");
    else if (start - 1 < sizeof parent) snprintf(parent, sizeof parent, "%.*s", (int)(start - 1), path);
    else return id;
    if (stat(parent, &sb) == 0 && S_ISDIR(sb.st_mode)) id.entry = true, id.pdev = sb.st_dev, id.pino = sb.st_ino;
    return id;
}

static bool out_same(const out_id *a, const out_id *b) {
    if (a->exists && b->exists && a->dev == b->dev && a->ino == b->ino) return true;
    return a->entry && b->entry && a->pdev == b->pdev && a->pino == b->pino && !strcmp(a->name, b->name);
}

static apr_status out_refuse(const char *out, const char *in, const char *file, apr_error *err) {
    if (file == in) return apr_error_set(err, APR_ERR_INVALID, "OUT %s is the input %s; choose another name (the input is left as it is)", out, in);
    return apr_error_set(err, APR_ERR_INVALID, "OUT %s would replace %s, which the input reads; choose another name (the input is left as it is)",
                         out, file);
}

/* Every shard the index of folder dir names (plain names only, as hf_weights_open takes them). */
static apr_status out_check_shards(const char *dir, const char *out, const out_id *o, apr_error *err) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return APR_OK;
    apr_error ignored;
    char *js = hf_import_slurp(path, 64u << 20, NULL, &ignored);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    free(js);
    const cJSON *e, *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    apr_status st = APR_OK;
    if (!cJSON_IsObject(map)) map = NULL;
    cJSON_ArrayForEach(e, map) {
        const char *f = cJSON_GetStringValue(e);
        if (!f || !*f || strchr(f, '/') || !strcmp(f, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, f);
        out_id s = out_id_of(path);
        if (out_same(o, &s)) {
            st = out_refuse(out, dir, path, err);
            break;
        }
    }
    cJSON_Delete(root);
    return st;
}

apr_status apr_hf_import_check_output(const char *in, const char *tokenizer, const char *out, apr_error *err) {
    static const char *const folder_files[] = {
        "config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer.json.gz",
        "tokenizer_config.json", "generation_config.json",
    };
    out_id o = out_id_of(out), c = out_id_of(in);
    if (out_same(&o, &c)) return out_refuse(out, in, in, err);
    if (tokenizer) {
        c = out_id_of(tokenizer);
        if (out_same(&o, &c)) return out_refuse(out, in, tokenizer, err);
    }
    struct stat sb;
    if (stat(in, &sb) != 0 || !S_ISDIR(sb.st_mode)) return APR_OK;
    char path[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof folder_files / sizeof *folder_files; i++) {
        snprintf(path, sizeof path, "%s/%s", in, folder_files[i]);
        c = out_id_of(path);
        if (out_same(&o, &c)) return out_refuse(out, in, path, err);
    }
    return out_check_shards(in, out, &o, err);
}

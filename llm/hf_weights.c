/* hf_weights.c — the safetensors files of a Hugging Face folder: one model.safetensors or the shards of its index. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_internal.h"

static apr_status hf_weights_add(hf_import *im, const char *dir, const char *file, apr_error *err) {
    if (!*file || strchr(file, '/') || !strcmp(file, "..") )
        return apr_error_set(err, APR_ERR_FORMAT, "%s: shard name '%s' is not a plain file name", dir, file);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    safetensors_file **s = realloc(im->shards, (size_t)(im->n_shards + 1) * sizeof *s);
    if (!s) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    im->shards = s;
    apr_status st = apr_safetensors_open(path, &im->shards[im->n_shards], err);
    if (!st) im->n_shards++;
    return st;
}

apr_status hf_weights_open(hf_import *im, const char *dir, apr_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (access(path, F_OK) != 0)
            return apr_error_set(err, APR_ERR_NOT_FOUND, "%s: neither model.safetensors nor model.safetensors.index.json is there", dir);
        return hf_weights_add(im, dir, "model.safetensors", err);
    }
    char *js = hf_import_slurp(path, 64u << 20, NULL, err);
    if (!js) return APR_ERR_IO;
    cJSON *root = cJSON_Parse(js);
    free(js);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    apr_status st = APR_OK;
    if (!cJSON_IsObject(map)) st = apr_error_set(err, APR_ERR_FORMAT, "%s: no weight_map object", path);
    const cJSON *e;
    /* each distinct shard once, in the order first named */
    cJSON_ArrayForEach(e, map) {
        if (st) break;
        if (!cJSON_IsString(e)) { st = apr_error_set(err, APR_ERR_FORMAT, "%s: weight_map['%s'] is not a file name", path, e->string); break; }
        bool seen = false;
        for (const cJSON *p = map->child; p != e && !seen; p = p->next) seen = cJSON_IsString(p) && !strcmp(p->valuestring, e->valuestring);
        if (!seen) st = hf_weights_add(im, dir, e->valuestring, err);
    }
    /* every mapped tensor must be in its shard */
    cJSON_ArrayForEach(e, map) {
        if (st) break;
        if (!hf_weights_find(im, e->string))
            st = apr_error_set(err, APR_ERR_FORMAT, "%s: tensor '%s' is not in %s", path, e->string, e->valuestring);
    }
    cJSON_Delete(root);
    return st;
}

const safetensors_tensor *hf_weights_find(const hf_import *im, const char *name) {
    for (int i = 0; i < im->n_shards; i++) {
        const safetensors_tensor *t = apr_safetensors_find(im->shards[i], name);
        if (t) return t;
    }
    return NULL;
}

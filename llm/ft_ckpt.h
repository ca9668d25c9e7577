/* ft_ckpt.h — crash-safe fine-tuning checkpoints: DIR/checkpoint.gguf, the training position and f32 tensors. */
#ifndef APR_FT_CKPT_H
#define APR_FT_CKPT_H

/*
 * A checkpoint is everything a training run needs to continue where it stopped: the step, the
 * epoch and the position in it, the RNG state, the options the run was started with, and named
 * f32 tensors (LoRA weights, the optimizer's moments). It is one GGUF v3 file, DIR/checkpoint.gguf:
 *
 *   apr.ckpt.version      uint32   1 (APR_FTCKPT_VERSION)
 *   apr.ckpt.step         uint64   optimizer steps done
 *   apr.ckpt.epoch        uint64   the epoch in progress
 *   apr.ckpt.data_index   uint64   the next example of that epoch
 *   apr.ckpt.rng          [uint64; 4]   the RNG state (loading also takes [uint32; 8], low word first)
 *   apr.ckpt.config       string   the run's options as the caller formats them
 *   any extra keys        string, uint64 or float32 (apr_ftckpt_kv)
 *   tensors               f32, 1..4 dims, named by the caller
 *
 * Saving is atomic: the file is written through the GGUF writer (gguf.h) into an unnamed file
 * (O_TMPFILE) in DIR, fsynced, linked or renamed over checkpoint.gguf, and DIR is fsynced; so at
 * every moment, even after SIGKILL or a power cut, checkpoint.gguf is either the previous
 * checkpoint, whole, or the new one, whole. A failed write (ENOSPC, EFBIG, EIO ...) leaves the
 * previous checkpoint as it was and says "DIR/checkpoint.gguf: cannot write it: No space left on
 * device". Where DIR's filesystem has no O_TMPFILE the writer uses a named temporary file
 * "checkpoint.gguf.tmp.XXXXXX", which a killed save leaves behind; the next save removes such
 * leftovers. A DIR belongs to one run: a save holds an exclusive flock on DIR for its duration and
 * refuses (APR_ERR_IO "DIR: another process is saving a checkpoint here") when another holds it.
 *
 * Loading checks everything before changing anything: the GGUF reader validates the file (a
 * truncated or corrupt one is APR_ERR_FORMAT naming it), then every key's presence and type,
 * the version, and every tensor the caller asks for (present, f32, exactly the shape given).
 * Tensors in the file that the caller does not ask for are ignored (to export only the LoRA
 * weights, say): comparing apr.ckpt.config with the current run's is what refuses a changed run.
 *
 * Example: save every N steps, resume if there is a checkpoint
 *
 *     apr_ftckpt_tensor t[] = {{"blk.0.attn_q.weight.lora_a", 2, {rank, dim}, a},
 *                              {"blk.0.attn_q.weight.lora_a/m", 2, {rank, dim}, a_m}, ...};
 *     if (apr_ftckpt_exists(dir)) {
 *         apr_ftckpt_meta m;
 *         if (apr_ftckpt_load(dir, &m, t, n, &e)) die(e.msg);
 *         if (strcmp(m.config, config)) die("the checkpoint was made with other options");
 *         step = m.step; ...; apr_ftckpt_meta_free(&m);
 *     }
 *     ...
 *     apr_ftckpt_meta m = {.step = step, .epoch = epoch, .data_index = i, .rng = {...}, .config = config};
 *     if (apr_ftckpt_save(dir, &m, t, n, &e)) fprintf(stderr, "warning: %s\n", e.msg);
 */

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr.h"

#include "llm_api.h"

#define APR_FTCKPT_VERSION 1u
#define APR_FTCKPT_FILE "checkpoint.gguf"

/* A named f32 tensor of the caller's: ne innermost first, dims past n_dims ignored (saving) or
 * required to be absent (loading compares n_dims and ne[0..n_dims) exactly). data holds
 * ne[0] * ... * ne[n_dims - 1] floats; loading writes it. */
typedef struct apr_ftckpt_tensor {
    const char *name;           /* 1 byte or more, unique */
    int n_dims;                 /* 1..4 */
    int64_t ne[4];              /* each >= 1 */
    float *data;
} apr_ftckpt_tensor;

typedef enum apr_ftckpt_kind { APR_FTCKPT_STR = 0, APR_FTCKPT_U64 = 1, APR_FTCKPT_F32 = 2 } apr_ftckpt_kind;

/* An extra metadata entry (a learning-rate schedule's state, the best validation loss, ...). */
typedef struct apr_ftckpt_kv {
    const char *key;            /* not "general.alignment" nor under "apr.ckpt." (reserved) */
    apr_ftckpt_kind kind;
    union {
        const char *str;        /* APR_FTCKPT_STR: NUL-terminated */
        uint64_t u64;           /* APR_FTCKPT_U64 */
        float f32;              /* APR_FTCKPT_F32 */
    };
} apr_ftckpt_kv;

typedef struct apr_ftckpt_meta {
    uint64_t step;              /* optimizer steps done */
    uint64_t epoch;             /* the epoch in progress */
    uint64_t data_index;        /* the next example in that epoch */
    uint64_t rng[4];            /* the RNG state */
    const char *config;         /* the run's options, NUL-terminated; NULL saves "" */
    const apr_ftckpt_kv *extra; /* n_extra entries with distinct keys; may be NULL when n_extra is 0 */
    int n_extra;
} apr_ftckpt_meta;

/* Writes DIR/checkpoint.gguf atomically (see above) from m and the n tensors t (n >= 0), creating
 * DIR and any missing parent with mode 0777 & ~umask. Errors: APR_ERR_INVALID for bad arguments
 * (a NULL name or data, n_dims outside 1..4, ne < 1, a duplicate or reserved key, a duplicate
 * tensor name), APR_ERR_IO naming the file or directory and the system's reason, APR_ERR_NOMEM.
 * On any error the previous checkpoint is unchanged. The tensors are read, never changed. */
LLM_API apr_status apr_ftckpt_save(const char *dir, const apr_ftckpt_meta *m, const apr_ftckpt_tensor *t, int n,
                                   apr_error *err);

/* Reads DIR/checkpoint.gguf into *m and into the data of the n tensors t, whose names and shapes
 * say what to load. On success m->config (never NULL) and m->extra (every key not under
 * "apr.ckpt.", in file order; its strings live in the same block) are malloc'd: release them with
 * apr_ftckpt_meta_free. Errors: APR_ERR_NOT_FOUND when there is no checkpoint file; APR_ERR_FORMAT
 * for a corrupt or truncated file, a missing or mistyped key, another version, a tensor missing,
 * not f32 or of another shape (each message names the file and the key or tensor); APR_ERR_IO,
 * APR_ERR_NOMEM, APR_ERR_INVALID (bad arguments). On any error neither *m nor any tensor data is
 * changed. */
LLM_API apr_status apr_ftckpt_load(const char *dir, apr_ftckpt_meta *m, apr_ftckpt_tensor *t, int n,
                                   apr_error *err);

/* Frees what apr_ftckpt_load allocated in m (config, extra) and clears those fields. */
LLM_API void apr_ftckpt_meta_free(apr_ftckpt_meta *m);

/* The extra entry named key in m, or NULL. */
LLM_API const apr_ftckpt_kv *apr_ftckpt_meta_find(const apr_ftckpt_meta *m, const char *key);

/* Whether DIR/checkpoint.gguf exists as a regular file (whether it loads is apr_ftckpt_load's business). */
LLM_API bool apr_ftckpt_exists(const char *dir);

#endif

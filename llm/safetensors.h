/* safetensors.h — a hardened safetensors reader (mmap, zero-copy) for Hugging Face weight files. */
#ifndef APR_SAFETENSORS_H
#define APR_SAFETENSORS_H

/*
 * File layout: u64 little-endian header length N, N bytes of JSON ({"name": {"dtype", "shape",
 * "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}), then the data section that
 * the offsets index. Every file is treated as hostile: N is bounded (100 MiB, as the reference
 * implementation does) and must fit the file; each tensor's offsets must lie in the data section,
 * its byte count must equal prod(shape) * dtype size (computed with overflow checks) and no two
 * tensors may overlap. F32, F16 and BF16 are accepted; any other dtype is APR_ERR_UNSUPPORTED
 * naming the tensor. Messages name the file, the tensor and the problem.
 */

#include <stddef.h>
#include <stdint.h>

#include "apr/apr.h"
#include "llm_api.h"

#define SAFETENSORS_MAX_DIMS 8

typedef struct safetensors_tensor {
    const char *name;           /* NUL-terminated, owned by the file */
    apr_dtype dtype;            /* APR_F32, APR_F16 or APR_BF16 */
    int n_dims;                 /* 0..SAFETENSORS_MAX_DIMS (0 = scalar) */
    int64_t shape[SAFETENSORS_MAX_DIMS]; /* outermost first, as in the file (PyTorch order) */
    uint64_t size;              /* bytes */
    const void *data;           /* in the mapping; valid until apr_safetensors_close */
} safetensors_tensor;

typedef struct safetensors_file safetensors_file;

LLM_API apr_status apr_safetensors_open(const char *path, safetensors_file **out, apr_error *err);
/* The same checks on an image in memory (tests, fuzzing); data must outlive the file. */
LLM_API apr_status apr_safetensors_open_memory(const void *data, size_t size, const char *name, safetensors_file **out,
                                               apr_error *err);
LLM_API void apr_safetensors_close(safetensors_file *f);
LLM_API int64_t apr_safetensors_count(const safetensors_file *f);
LLM_API const safetensors_tensor *apr_safetensors_at(const safetensors_file *f, int64_t i);
LLM_API const safetensors_tensor *apr_safetensors_find(const safetensors_file *f, const char *name);
/* A "__metadata__" string value, or NULL. */
LLM_API const char *apr_safetensors_metadata(const safetensors_file *f, const char *key);

#endif

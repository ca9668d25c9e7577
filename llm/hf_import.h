/* hf_import.h — models from other formats to GGUF: Hugging Face folders (safetensors) and llama2.c checkpoints. */
#ifndef APR_HF_IMPORT_H
#define APR_HF_IMPORT_H

/*
 * An import reads its source (mapping the weights, copying only the tensors it must change) into
 * a GGUF writer laid out as llama.cpp's converters write it: keys "{arch}.*", "tokenizer.ggml.*",
 * tensors token_embd / blk.N.* / output_norm / output. For architecture "llama" the rows of the
 * q and k projections are permuted from Hugging Face's split-half rope layout to GGUF's
 * adjacent pairs, as convert_hf_to_gguf.py does; qwen2 / qwen3 stay unpermuted (NEOX rope).
 *
 *     hf_import *im;
 *     if (apr_hf_import_folder("Llama-3.2-1B/", &im, &e) || apr_hf_import_write(im, "out.gguf", &e)) die(e.msg);
 *     apr_hf_import_free(im);
 */

#include <stdint.h>

#include "apr/apr.h"
#include "gguf.h"
#include "llm_api.h"

typedef struct hf_import hf_import;

/* A Hugging Face folder: config.json, model.safetensors or model.safetensors.index.json with its
 * shards, tokenizer.json (+ tokenizer_config.json, generation_config.json when present). */
LLM_API apr_status apr_hf_import_folder(const char *dir, hf_import **out, apr_error *err);
/* A llama2.c checkpoint (model.bin) and its tokenizer.bin. */
LLM_API apr_status apr_hf_import_llama2c(const char *bin, const char *tokenizer, hf_import **out, apr_error *err);
/* Writes the GGUF atomically (the writer's temp-file-and-rename). Call once. */
LLM_API apr_status apr_hf_import_write(hf_import *im, const char *path, apr_error *err);
LLM_API void apr_hf_import_free(hf_import *im);
/* APR_ERR_INVALID, with a message naming the file, when out is, or would replace, a file that importing
 * in reads: in itself, tokenizer (may be NULL), and for a folder its config, tokenizer files, weights,
 * index and every shard the index names. Compared by device and inode (symlinks and hard links
 * count) and, for names that do not exist yet, by resolved directory and name. */
LLM_API apr_status apr_hf_import_check_output(const char *in, const char *tokenizer, const char *out, apr_error *err);

/* For summaries: the architecture written, tensors and parameters (elements). */
LLM_API const char *apr_hf_import_arch(const hf_import *im);
LLM_API int64_t apr_hf_import_tensors(const hf_import *im);
LLM_API int64_t apr_hf_import_params(const hf_import *im);

/* A GGUF file is opened as it is (apr_gguf_open); a folder is opened as if it were a GGUF file: imported into a temporary file in $TMPDIR (or
 * /tmp), mapped, and unlinked at once, so nothing is left behind. Costs a disk copy of the
 * weights (page cache, not heap) while the file is open; the heap holds only the permuted q/k
 * copies until the write ends. */
LLM_API apr_status apr_hf_open_as_gguf(const char *dir, gguf_file **out, apr_error *err);

#endif

/* hf_import_llama2c.c — a llama2.c checkpoint (model.bin + tokenizer.bin) into an import, as llama.cpp's llama2c converter lays it out. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_internal.h"
#include "tokenizer.h"

/* The checkpoint header: 7 little-endian int32. */
typedef struct hf_import_llama2c_hdr {
    int32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len; /* vocab < 0: unshared classifier */
} hf_import_llama2c_hdr;

/* tokenizer.bin: int32 max_token_length, then per token f32 score, int32 len, len bytes. llama2.c's
 * exporter turned "▁" into spaces and BOS/EOS into "\n<s>\n" / "\n</s>\n": undo both for an SPM vocab. */
static apr_status hf_import_llama2c_vocab(hf_import *im, const char *path, int32_t n, apr_error *err) {
    size_t size = 0, off = 4;
    char *buf = hf_import_slurp(path, 256u << 20, &size, err);
    if (!buf) return APR_ERR_IO;
    if (size < 4) { free(buf); return apr_error_set(err, APR_ERR_FORMAT, "%s: too short for a llama2.c tokenizer", path); }
    char **texts = calloc((size_t)n, sizeof *texts);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    apr_status st = texts && scores && types ? APR_OK : apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; !st && i < n; i++) {
        int32_t len;
        if (size - off < 8) { st = apr_error_set(err, APR_ERR_FORMAT, "%s: truncated at token %d", path, i); break; }
        memcpy(&scores[i], buf + off, 4);
        memcpy(&len, buf + off + 4, 4);
        off += 8;
        if (len < 0 || (size_t)len > size - off) { st = apr_error_set(err, APR_ERR_FORMAT, "%s: token %d has a bad length %d", path, i, len); break; }
        const char *t = buf + off;
        off += (size_t)len;
        char *out = hf_import_alloc(im, 3 * (size_t)len + 8);
        if (!out) { st = apr_error_set(err, APR_ERR_NOMEM, "out of memory"); break; }
        types[i] = TOK_TYPE_NORMAL;
        if (i == 0) strcpy(out, "<unk>"), types[i] = TOK_TYPE_UNKNOWN;
        else if (i == 1) strcpy(out, "<s>"), types[i] = TOK_TYPE_CONTROL;
        else if (i == 2) strcpy(out, "</s>"), types[i] = TOK_TYPE_CONTROL;
        else {
            size_t k = 0;
            for (int32_t j = 0; j < len; j++) {
                if (t[j] == ' ') { memcpy(out + k, "\xe2\x96\x81", 3); k += 3; }
                else out[k++] = t[j];
            }
            out[k] = 0;
            if (k == 6 && !strncmp(out, "<0x", 3) && out[5] == '>') types[i] = TOK_TYPE_BYTE;
        }
        texts[i] = out;
    }
    if (!st) {
        apr_gguf_writer_set_str(im->w, "tokenizer.ggml.model", "llama");
        apr_gguf_writer_set_arr_str(im->w, "tokenizer.ggml.tokens", (const char *const *)texts, (uint64_t)n);
        apr_gguf_writer_set_arr(im->w, "tokenizer.ggml.scores", GGUF_FLOAT32, scores, (uint64_t)n);
        apr_gguf_writer_set_arr(im->w, "tokenizer.ggml.token_type", GGUF_INT32, types, (uint64_t)n);
        apr_gguf_writer_set_u32(im->w, "tokenizer.ggml.unknown_token_id", 0);
        apr_gguf_writer_set_u32(im->w, "tokenizer.ggml.bos_token_id", 1);
        apr_gguf_writer_set_u32(im->w, "tokenizer.ggml.eos_token_id", 2);
    }
    free(texts);
    free(scores);
    free(types);
    free(buf);
    return st;
}

/* Adds layer-stacked tensor blk.L.<name> for every layer from a run of n_layer [ne1, ne0] f32 matrices. */
static const float *hf_import_llama2c_stack(hf_import *im, const float *p, int layers, const char *name, int64_t ne0, int64_t ne1) {
    for (int l = 0; l < layers; l++) {
        char full[64];
        snprintf(full, sizeof full, "blk.%d.%s", l, name);
        int64_t ne[2] = {ne0, ne1};
        hf_import_add(im, full, APR_F32, ne1 == 1 ? 1 : 2, ne, p, (uint64_t)(ne0 * ne1) * 4);
        p += ne0 * ne1;
    }
    return p;
}

apr_status apr_hf_import_llama2c(const char *bin, const char *tokenizer, hf_import **out, apr_error *err) {
    *out = NULL;
    hf_import *im = hf_import_new();
    if (!im) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    apr_status st = APR_OK;
    int fd = open(bin, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the import */
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) st = apr_error_set(err, APR_ERR_IO, "%s: %s", bin, fd < 0 ? strerror(errno) : "not a regular file");
    else if (sb.st_size < (off_t)sizeof(hf_import_llama2c_hdr)) st = apr_error_set(err, APR_ERR_FORMAT, "%s: too short for a llama2.c header", bin);
    if (!st) {
        im->map_size = (size_t)sb.st_size;
        im->map = mmap(NULL, im->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (im->map == MAP_FAILED) { im->map = NULL; st = apr_error_set(err, APR_ERR_IO, "%s: mmap: %s", bin, strerror(errno)); }
    }
    if (fd >= 0) close(fd);
    if (st) { apr_hf_import_free(im); return st; }
    hf_import_llama2c_hdr h;
    memcpy(&h, im->map, sizeof h);
    bool shared = h.vocab > 0;
    int64_t V = shared ? h.vocab : -(int64_t)h.vocab, D = h.dim, F = h.hidden, L = h.layers;
    if (D < 2 || F < 1 || L < 1 || h.heads < 1 || h.kv_heads < 1 || V < 3 || h.seq_len < 1 || D > 65536 || F > 1 << 20 ||
        L > 4096 || V > 1 << 24 || h.seq_len > 1 << 24 || D % h.heads || h.heads % h.kv_heads || (D / h.heads) % 2) {
        st = apr_error_set(err, APR_ERR_FORMAT, "%s: implausible llama2.c header (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, seq %d)",
                           bin, h.dim, h.hidden, h.layers, h.heads, h.kv_heads, h.vocab, h.seq_len);
        apr_hf_import_free(im);
        return st;
    }
    int64_t hs = D / h.heads, KV = hs * h.kv_heads;
    /* every count is bounded above, so this sum fits in int64 */
    int64_t floats = V * D + L * (2 * D + D * D + 2 * D * KV + D * D + 3 * D * F) + D + (int64_t)h.seq_len * hs + (shared ? 0 : V * D);
    if ((uint64_t)floats * 4 > im->map_size - sizeof h) {
        /* the message reads im, so it is written before im is freed */
        st = apr_error_set(err, APR_ERR_FORMAT, "%s: %zu bytes, but the header asks for %lld floats of weights", bin, im->map_size,
                           (long long)floats);
        apr_hf_import_free(im);
        return st;
    }
    im->arch[0] = 0;
    snprintf(im->arch, sizeof im->arch, "llama");
    apr_gguf_writer_set_str(im->w, "general.architecture", "llama");
    const char *slash = strrchr(bin, '/');
    apr_gguf_writer_set_str(im->w, "general.name", slash ? slash + 1 : bin);
    apr_gguf_writer_set_u32(im->w, "llama.context_length", (uint32_t)h.seq_len);
    apr_gguf_writer_set_u32(im->w, "llama.embedding_length", (uint32_t)D);
    apr_gguf_writer_set_u32(im->w, "llama.feed_forward_length", (uint32_t)F);
    apr_gguf_writer_set_u32(im->w, "llama.attention.head_count", (uint32_t)h.heads);
    apr_gguf_writer_set_u32(im->w, "llama.attention.head_count_kv", (uint32_t)h.kv_heads);
    apr_gguf_writer_set_u32(im->w, "llama.block_count", (uint32_t)L);
    apr_gguf_writer_set_u32(im->w, "llama.rope.dimension_count", (uint32_t)hs);
    apr_gguf_writer_set_f32(im->w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);

    /* llama2.c order; its q/k rows are already Meta's interleaved layout (run.c rotates adjacent
     * pairs), which is GGUF's, so they are copied as they are. */
    const float *p = (const float *)((const char *)im->map + sizeof h), *emb = p;
    hf_import_add(im, "token_embd.weight", APR_F32, 2, (int64_t[]){D, V}, emb, (uint64_t)(V * D) * 4);
    p += V * D;
    p = hf_import_llama2c_stack(im, p, (int)L, "attn_norm.weight", D, 1);
    p = hf_import_llama2c_stack(im, p, (int)L, "attn_q.weight", D, D);
    p = hf_import_llama2c_stack(im, p, (int)L, "attn_k.weight", D, KV);
    p = hf_import_llama2c_stack(im, p, (int)L, "attn_v.weight", D, KV);
    p = hf_import_llama2c_stack(im, p, (int)L, "attn_output.weight", D, D);
    p = hf_import_llama2c_stack(im, p, (int)L, "ffn_norm.weight", D, 1);
    p = hf_import_llama2c_stack(im, p, (int)L, "ffn_gate.weight", D, F);   /* w1 */
    p = hf_import_llama2c_stack(im, p, (int)L, "ffn_down.weight", F, D);   /* w2 */
    p = hf_import_llama2c_stack(im, p, (int)L, "ffn_up.weight", D, F);     /* w3 */
    hf_import_add(im, "output_norm.weight", APR_F32, 1, (int64_t[]){D}, p, (uint64_t)D * 4);
    p += D + (int64_t)h.seq_len * hs; /* skip freq_cis_real and freq_cis_imag (seq_len * hs/2 each) */
    const float *cls = shared ? emb : p;
    hf_import_add(im, "output.weight", APR_F32, 2, (int64_t[]){D, V}, cls, (uint64_t)(V * D) * 4);
    st = hf_import_llama2c_vocab(im, tokenizer, (int32_t)V, err);
    if (st) { apr_hf_import_free(im); return st; }
    *out = im;
    return APR_OK;
}

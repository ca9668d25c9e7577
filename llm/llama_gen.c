/* llama_gen.c — the generation loop: sampling, end-of-generation ids, streamed text, stop reasons. */
#include "llama_gen.h"

#include <string.h>
#include <time.h>

static double gen_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool gen_has(const int32_t *ids, int n, int32_t id) {
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

/* Appends id when it is a token of the model, not listed yet, and there is room. */
static void gen_add(int32_t *eog, int *n, int cap, int64_t id, int n_vocab) {
    if (id >= 0 && id < n_vocab && *n < cap && !gen_has(eog, *n, (int32_t)id)) eog[(*n)++] = (int32_t)id;
}

apr_status apr_llama_gen_check_ids(const gguf_file *f, int n_vocab, apr_error *err) {
    static const char *const keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                       "tokenizer.ggml.eom_token_id"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t id;
        if (apr_gguf_kv_find(f, keys[i]) < 0) continue;
        if (!apr_gguf_get_i64(f, keys[i], &id))
            return apr_error_set(err, APR_ERR_FORMAT, "%s: %s is not an integer", apr_gguf_path(f), keys[i]);
        if (id != -1 && id != (int64_t)UINT32_MAX && (id < 0 || id >= n_vocab))
            return apr_error_set(err, APR_ERR_FORMAT, "%s: %s is %lld, outside the vocabulary of %d tokens", apr_gguf_path(f),
                                 keys[i], (long long)id, n_vocab);
    }
    return APR_OK;
}

int apr_llama_gen_collect_eog(const gguf_file *f, const tok_vocab *vocab, int n_vocab, int32_t *eog, int cap) {
    static const char *const keys[] = {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    static const char *const marks[] = {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|end_of_text|>", "<EOT>"};
    int n = 0;
    uint32_t u;
    if (f && apr_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &u)) gen_add(eog, &n, cap, u, n_vocab);
    else if (vocab) gen_add(eog, &n, cap, apr_tok_eos(vocab), n_vocab);
    for (size_t i = 0; f && i < sizeof keys / sizeof keys[0]; i++)
        if (apr_gguf_get_u32(f, keys[i], &u)) gen_add(eog, &n, cap, u, n_vocab);
    for (size_t i = 0; vocab && i < sizeof marks / sizeof marks[0]; i++) {
        int32_t id = apr_tok_find(vocab, marks[i], strlen(marks[i]));
        if (id >= 0 && apr_tok_token_type(vocab, id) == TOK_TYPE_CONTROL) gen_add(eog, &n, cap, id, n_vocab);
    }
    return n;
}

const char *apr_llama_gen_stop_name(llama_gen_stop stop) {
    switch (stop) {
    case LLAMA_GEN_STOP_LENGTH: return "length";
    case LLAMA_GEN_STOP_EOS: return "eos";
    case LLAMA_GEN_STOP_CONTEXT: return "context";
    case LLAMA_GEN_STOP_INTERRUPTED: return "interrupted";
    case LLAMA_GEN_STOP_CALLBACK: return "callback";
    }
    return "?";
}

llama_gen_params apr_llama_gen_defaults(int n_ctx) { return (llama_gen_params){.n_ctx = n_ctx}; }

/* Hands a kept id and the text it completes to on_token; false when the callback asks to stop. */
static bool gen_emit(const llama_gen_params *p, tok_stream *stream, int32_t id) {
    size_t len = 0;
    const char *piece = stream ? apr_tok_stream_push(stream, id, &len) : NULL;
    return p->on_token ? p->on_token(p->user, id, piece, len) : true;
}

static apr_status gen_check(const llama_session *s, const sampler *smp, const float *last, const float *buf,
                            const llama_gen_params *p, const llama_gen_result *out, apr_error *err) {
    if (!s || !smp || !last || !buf || !p || !out) return apr_error_set(err, APR_ERR_INVALID, "apr_llama_gen_run: a required argument is NULL");
    if (p->n_predict < 0 || p->n_ctx <= 0 || p->n_eog < 0 || (p->n_eog && !p->eog))
        return apr_error_set(err, APR_ERR_INVALID, "apr_llama_gen_run: bad parameters (n_predict %d, n_ctx %d, n_eog %d)",
                             p->n_predict, p->n_ctx, p->n_eog);
    return APR_OK;
}

apr_status apr_llama_gen_run(llama_session *s, sampler *smp, tok_stream *stream, float *last_logits, float *logits_buf,
                             const llama_gen_params *p, llama_gen_result *out, apr_error *err) {
    apr_status st = gen_check(s, smp, last_logits, logits_buf, p, out, err);
    if (st != APR_OK) return st;
    *out = (llama_gen_result){.stop = LLAMA_GEN_STOP_LENGTH};
    double t0 = gen_now();
    float *last = last_logits;
    while (out->n_gen < p->n_predict) {
        if (p->stop && *p->stop) { out->stop = LLAMA_GEN_STOP_INTERRUPTED; break; }
        int32_t next = apr_sampler_sample(smp, last);
        if (gen_has(p->eog, p->n_eog, next)) { out->stop = LLAMA_GEN_STOP_EOS; break; }
        apr_sampler_accept(smp, next);
        out->n_gen++;
        bool go_on = gen_emit(p, stream, next);
        if (!go_on) out->stop = LLAMA_GEN_STOP_CALLBACK;
        /* without eval_all the last kept token is not worth a forward pass */
        if ((!go_on || out->n_gen == p->n_predict) && !p->eval_all) break;
        if (apr_llama_session_pos(s) >= p->n_ctx) { out->stop = LLAMA_GEN_STOP_CONTEXT; break; }
        if ((st = apr_llama_session_eval(s, &next, 1, false, logits_buf, err)) != APR_OK) break;
        out->n_decoded++;
        last = logits_buf;
        if (p->on_logits && (st = p->on_logits(p->user, logits_buf, err)) != APR_OK) break;
        if (!go_on) break;
    }
    if (st == APR_OK && stream) {
        size_t len;
        const char *rest = apr_tok_stream_flush(stream, &len);
        if (p->on_token) p->on_token(p->user, -1, rest, len);
    }
    out->t_decode = gen_now() - t0;
    return st;
}

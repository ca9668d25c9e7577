/* llama_gen.h — the generation loop the frontends share: sample from logits, stop at end-of-generation ids, stream the text out. */
#ifndef APR_LLAMA_GEN_H
#define APR_LLAMA_GEN_H

/*
 * A caller evaluates the prompt itself (apr_llama_session_eval, apr_sampler_accept for each prompt id,
 * apr_tok_stream_push for each when the first generated piece should be spaced as in the full
 * text), then hands the last position's logits to apr_llama_gen_run, which samples a token, stops
 * when it is an end-of-generation id, hands it to on_token, runs it through the model and
 * samples again, until n_predict tokens, the end of the context, the stop flag or on_token
 * ends it.
 *
 *     int32_t eog[LLAMA_GEN_MAX_EOG];
 *     int n_eog = apr_llama_gen_collect_eog(f, vocab, n_vocab, eog, LLAMA_GEN_MAX_EOG);
 *     llama_gen_params p = apr_llama_gen_defaults(n_ctx);
 *     p.n_predict = 128; p.eog = eog; p.n_eog = n_eog; p.on_token = print_piece;
 *     llama_gen_result r;
 *     if (apr_llama_gen_run(s, smp, stream, logits, logits, &p, &r, &e)) die(e.msg);
 *     printf("stopped by %s\n", apr_llama_gen_stop_name(r.stop));
 */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apr/apr.h"
#include "gguf.h"
#include "llama.h"
#include "llm_api.h"
#include "sampler.h"
#include "tokenizer.h"

/* Room enough for every id apr_llama_gen_collect_eog can find. */
#define LLAMA_GEN_MAX_EOG 12

/* The ids that end generation, as llama.cpp collects them: the file's EOS
 * (tokenizer.ggml.eos_token_id, else the vocabulary's), EOT and EOM ids, and the control tokens
 * spelled like a chat family's end-of-turn marker (Llama 3 lists <|eot_id|> besides its EOS,
 * Qwen <|im_end|> besides <|endoftext|>). vocab may be NULL (ids only). Writes at most cap
 * distinct ids below n_vocab and returns their count. */
LLM_API int apr_llama_gen_collect_eog(const gguf_file *f, const tok_vocab *vocab, int n_vocab, int32_t *eog, int cap);

/* The special ids a frontend and apr_llama_gen_collect_eog read from f: tokenizer.ggml.bos_token_id,
 * eos, eot and eom. Each one present must be an id below n_vocab, or all ones (-1, 0xFFFFFFFF),
 * which means none; otherwise APR_ERR_FORMAT naming the file, the key and the value. */
LLM_API apr_status apr_llama_gen_check_ids(const gguf_file *f, int n_vocab, apr_error *err);

/* Why a generation ended. */
typedef enum llama_gen_stop {
    LLAMA_GEN_STOP_LENGTH = 0,      /* n_predict tokens kept */
    LLAMA_GEN_STOP_EOS = 1,         /* the sampler picked an end-of-generation id (not kept) */
    LLAMA_GEN_STOP_CONTEXT = 2,     /* the KV cache is full: the last kept token could not be evaluated */
    LLAMA_GEN_STOP_INTERRUPTED = 3, /* *stop was set */
    LLAMA_GEN_STOP_CALLBACK = 4,    /* on_token returned false */
} llama_gen_stop;

/* "length", "eos", "context", "interrupted", "callback"; "?" for another value. */
LLM_API const char *apr_llama_gen_stop_name(llama_gen_stop stop);

typedef struct llama_gen_params {
    int n_predict;        /* tokens to keep at most; 0 keeps none */
    int n_ctx;            /* positions the session holds (llama_session_params.n_ctx) */
    const int32_t *eog;   /* ids that end generation, not kept: apr_llama_gen_collect_eog's and the caller's */
    int n_eog;
    bool eval_all;        /* evaluate even the last kept token, so that the cache holds every kept token
                           * (a chat continues from it); otherwise the loop ends without running it */
    volatile sig_atomic_t *stop; /* polled before each token: nonzero ends with INTERRUPTED; may be NULL */
    /* Each kept id with the text it completes: "" while a UTF-8 character is incomplete, NULL when
     * no stream was given. With a stream, the loop ends by flushing it: the rest (maybe "") comes
     * with id -1, and what the call returns is ignored. false ends with CALLBACK, after the id is
     * evaluated when eval_all. May be NULL. */
    bool (*on_token)(void *user, int32_t id, const char *piece, size_t len);
    /* The n_vocab logits of each token run through the model, before the sampler changes them
     * (--dump-logits); a status other than APR_OK, with err filled, ends the run with that status.
     * May be NULL. */
    apr_status (*on_logits)(void *user, const float *logits, apr_error *err);
    void *user;           /* passed to both callbacks */
} llama_gen_params;

/* n_ctx, no tokens, no end-of-generation ids, no flag and no callbacks. */
LLM_API llama_gen_params apr_llama_gen_defaults(int n_ctx);

typedef struct llama_gen_result {
    int n_gen;            /* tokens kept */
    int n_decoded;        /* tokens run through the model */
    llama_gen_stop stop;
    double t_decode;      /* seconds the loop took */
} llama_gen_result;

/* Generates at the session's position from last_logits (n_vocab floats: the prompt's last
 * position), accepting every kept id into smp and pushing it into stream (may be NULL: no
 * text). The sampler uses last_logits and logits_buf (n_vocab floats the decode steps write;
 * it may be last_logits) as scratch. Bad arguments are APR_ERR_INVALID with nothing run; on an
 * error of the model or on_logits, out holds the counts so far and the stream is not flushed. */
LLM_API apr_status apr_llama_gen_run(llama_session *s, sampler *smp, tok_stream *stream, float *last_logits, float *logits_buf,
                                     const llama_gen_params *p, llama_gen_result *out, apr_error *err);

#endif

/* tokenizer.h — text to token ids and back: SentencePiece-style and GPT-2-style byte-level BPE. */
#ifndef APR_TOKENIZER_H
#define APR_TOKENIZER_H

/*
 * OVERVIEW
 *
 * A tok_vocab is loaded from a GGUF file (tokenizer.ggml.* keys) or from a Hugging Face
 * tokenizer.json, and is read-only afterwards: one vocab may be used by many threads at once.
 *
 *   - "llama" models (SPM): scores decide merges, a space becomes U+2581 "▁", a "▁" is put in
 *     front of the text (add_space_prefix), and characters no token covers fall back to the
 *     <0xXX> byte tokens.
 *   - "gpt2" models (BPE): the text is split by the pre-tokenizer regexes of its model family
 *     (tokenizer.ggml.pre, or the pre_tokenizer of tokenizer.json; PCRE2, Unicode properties,
 *     JIT), every byte becomes one printable character (the GPT-2 byte map) and the merges are
 *     applied by rank.
 *
 * Special and added tokens are cut out of the text before either algorithm runs: user-defined
 * tokens always, control tokens (<s>, <|eot_id|>, ...) only with TOK_PARSE_SPECIAL.
 *
 * Example
 *
 *     tok_vocab *v; apr_error e;
 *     if (apr_tok_load_file("model.gguf", &v, &e)) die(e.msg);
 *     int32_t ids[256];
 *     int64_t n = apr_tok_encode(v, text, strlen(text), TOK_ADD_SPECIAL, ids, 256);
 *     tok_stream *s = apr_tok_stream_new(v, 0);
 *     for (int64_t i = 0; i < n && i < 256; i++) { size_t len; fputs(apr_tok_stream_push(s, ids[i], &len), stdout); }
 *     apr_tok_stream_free(s); apr_tok_free(v);
 *
 * A tokenizer.json's normalizer (NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, or a
 * Sequence of them; utf8proc's Unicode data) is applied to the text between special tokens
 * before pre-tokenization, as Hugging Face tokenizers does; any other normalizer is refused when
 * loading. GGUF files carry no normalizer and none is applied, as in llama.cpp.
 *
 * Known limits: the HF Metaspace / SentencePiece-as-BPE form of tokenizer.json is supported only
 * with the normalizer SentencePiece itself implies (Prepend "▁" + Replace " " -> "▁"; else use
 * the GGUF).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apr/apr.h"
#include "gguf.h"

#include "llm_api.h"

typedef struct tok_vocab tok_vocab;

typedef enum tok_model { TOK_MODEL_SPM = 1, TOK_MODEL_BPE = 2 } tok_model;

/* Token types, numbered as in GGUF's tokenizer.ggml.token_type. */
typedef enum tok_type {
    TOK_TYPE_NORMAL = 1, TOK_TYPE_UNKNOWN = 2, TOK_TYPE_CONTROL = 3, TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5, TOK_TYPE_BYTE = 6,
} tok_type;

/* ---------------------------------------------------------------- loading */

/* From an open GGUF file; f may be closed afterwards (the vocab keeps copies). */
LLM_API apr_status apr_tok_load_gguf(const gguf_file *f, tok_vocab **out, apr_error *err);
/* From a Hugging Face tokenizer: a folder holding tokenizer.json (or tokenizer.json.gz, read
 * through the system's gzip) and optionally tokenizer_config.json (add_bos_token,
 * add_eos_token, bos_token, eos_token, unk_token, pad_token), or the path of a tokenizer.json
 * (tokenizer_config.json is then looked for beside it). */
LLM_API apr_status apr_tok_load_hf(const char *path, tok_vocab **out, apr_error *err);
/* A GGUF file, or otherwise what apr_tok_load_hf takes. */
LLM_API apr_status apr_tok_load_file(const char *path, tok_vocab **out, apr_error *err);
LLM_API void apr_tok_free(tok_vocab *v);

/* ---------------------------------------------------------------- queries */

LLM_API tok_model apr_tok_model_kind(const tok_vocab *v);
LLM_API const char *apr_tok_pre_name(const tok_vocab *v);     /* "llama3", "gpt-2", "tokenizer.json", "" for SPM */
LLM_API int32_t apr_tok_n_vocab(const tok_vocab *v);
LLM_API int32_t apr_tok_bos(const tok_vocab *v);              /* -1 when the model has none */
LLM_API int32_t apr_tok_eos(const tok_vocab *v);
LLM_API int32_t apr_tok_unk(const tok_vocab *v);
LLM_API int32_t apr_tok_pad(const tok_vocab *v);
LLM_API bool apr_tok_add_bos(const tok_vocab *v);             /* what TOK_ADD_SPECIAL adds */
LLM_API bool apr_tok_add_eos(const tok_vocab *v);
/* The token's text as stored in the vocabulary ("▁the", "Ġthe", "<0x0A>"); NULL when out of range. */
LLM_API const char *apr_tok_piece(const tok_vocab *v, int32_t id);
LLM_API tok_type apr_tok_token_type(const tok_vocab *v, int32_t id);
/* The id of a token text, or -1. */
LLM_API int32_t apr_tok_find(const tok_vocab *v, const char *text, size_t len);

/* ---------------------------------------------------------------- encoding */

enum {
    TOK_ADD_BOS = 1 << 0,        /* put BOS in front if the model asks for it (apr_tok_add_bos) */
    TOK_ADD_EOS = 1 << 2,        /* put EOS at the end if the model asks for it (apr_tok_add_eos) */
    TOK_ADD_SPECIAL = TOK_ADD_BOS | TOK_ADD_EOS,
    TOK_PARSE_SPECIAL = 1 << 1,  /* control tokens written in the text become their ids */
};

/* Tokenizes len bytes of text (need not be NUL-terminated or valid UTF-8). Writes up to cap ids
 * and returns how many the text needs (call again with a larger array when that exceeds cap);
 * -1 when memory ran out. */
LLM_API int64_t apr_tok_encode(const tok_vocab *v, const char *text, size_t len, unsigned flags, int32_t *ids,
                               int64_t cap);

/* The text as the vocabulary's normalizer leaves it (no normalizer: a copy): malloc'd,
 * NUL-terminated, *out_len (may be NULL) its length; NULL when out of memory. Special tokens are
 * not cut out first, as apr_tok_encode does. Bytes that are not valid UTF-8 pass through. */
LLM_API char *apr_tok_normalize(const tok_vocab *v, const char *text, size_t len, size_t *out_len);

/* ---------------------------------------------------------------- decoding */

enum {
    TOK_DECODE_SPECIAL = 1 << 0,     /* render control / unknown tokens as their text ("<s>") */
    TOK_DECODE_STRIP_FIRST = 1 << 1, /* SPM: also drop the leading space of the very first piece */
};

/* The bytes token id stands for (a byte token is one byte, "▁" is a space, a GPT-2 byte
 * character is its byte; possibly part of a UTF-8 character). Returns the length, which may
 * exceed cap (nothing past cap is written); -1 for an id out of range. No leading-space rule. */
LLM_API int apr_tok_token_bytes(const tok_vocab *v, int32_t id, unsigned flags, char *buf, int cap);

/* Streaming detokenizer: feed ids one at a time, get back only complete UTF-8 characters. A
 * character split over several tokens comes out with the token that completes it; bytes that
 * can never form a valid character come out as U+FFFD. With SPM models the leading space of
 * the piece after BOS is dropped (as SentencePiece and llama2.c do). */
typedef struct tok_stream tok_stream;
LLM_API tok_stream *apr_tok_stream_new(const tok_vocab *v, unsigned flags);   /* NULL when out of memory */
LLM_API void apr_tok_stream_free(tok_stream *s);
/* Returns the newly completed text, NUL-terminated, owned by s and valid until the next call;
 * *len (may be NULL) gets its length. Never NULL (out of memory or a bad id gives ""). */
LLM_API const char *apr_tok_stream_push(tok_stream *s, int32_t id, size_t *len);
/* Ends the stream: bytes of an unfinished character come out as U+FFFD. s may be reused. */
LLM_API const char *apr_tok_stream_flush(tok_stream *s, size_t *len);

/* All of ids decoded at once (push every id, then flush); malloc'd, NUL-terminated, caller
 * frees; NULL when out of memory. *len (may be NULL) gets the length. */
LLM_API char *apr_tok_decode(const tok_vocab *v, const int32_t *ids, size_t n, unsigned flags, size_t *len);

#endif

/* bpe_train.h — learning a GPT-2-style byte-level BPE vocabulary from a text corpus, and writing it
 * as the tokenizer.ggml.* keys of a GGUF file that apr's tokenizer (tokenizer.h) loads. */
#ifndef APR_BPE_TRAIN_H
#define APR_BPE_TRAIN_H

/*
 * OVERVIEW
 *
 * apr_bpe_train splits the text with the pre-tokenizer regexes apr's tokenizer applies when the
 * vocabulary is loaded (the family named by opts->pre, "gpt-2" by default; apr's own code in
 * tok_pre.c), counts every distinct piece ("word") once with its frequency, starts each word as
 * its bytes and then learns merges greedily: each step merges, in every word, the adjacent pair
 * of tokens that occurs most often in the corpus (counted with the words' frequencies), and the
 * pair counts are updated incrementally from the words that pair occurs in. Ties go to the lowest
 * pair of ids: the lowest left id, then the lowest right id (byte tokens are ordered by byte
 * value and come before every merged token, merged tokens are ordered by when they were learned).
 * A pair already merged is never learned twice, and no merge spells a special token's text
 * ("<s>" in the corpus stays text). Training is deterministic: the same text and
 * options always give the same vocabulary.
 *
 * The vocabulary, ids in order:
 *
 *   0 "<s>" (BOS), 1 "</s>" (EOS), [2 "<pad>" with opts->pad]      TOK_TYPE_CONTROL
 *   then the 256 byte tokens, byte b as its GPT-2 character            TOK_TYPE_NORMAL
 *        ("Ġ" for a space, "Ċ" for a newline, "a" for 'a'; tok_bytemap.c), in byte order
 *   then one token per merge that made new text, in the order learned TOK_TYPE_NORMAL
 *
 * so the special ids never depend on how many merges were learned. A merge whose text already is a
 * token (two different splits of one string) reuses that token: vocab->n_merges may then exceed
 * n_tokens - 256 - specials. Training stops when n_tokens reaches opts->vocab_size or when no pair
 * occurring at least opts->min_count times is left; in the latter case the call still succeeds,
 * with complete false and note saying how far it got.
 *
 * The file keys (apr_bpe_gguf_set): tokenizer.ggml.model "gpt2", tokenizer.ggml.pre (the family),
 * .tokens, .token_type (int32), .merges ("left right" in GPT-2 characters, rank order),
 * .bos_token_id, .eos_token_id, .padding_token_id (with a pad), .add_bos_token true,
 * .add_eos_token false. Loaded by apr_tok_load_gguf, apr_tok_encode then reproduces exactly the
 * tokenization the merges imply (per pre-tokenized piece, lowest-rank adjacent pair first,
 * leftmost on ties), and apr_tok_decode gives back any valid UTF-8 text exactly, bytes never seen
 * in training included (every byte is a token).
 *
 * Example: a vocabulary of 4096 tokens for a model a tool writes
 *
 *     apr_bpe_options o = {.vocab_size = 4096};          // pre NULL = "gpt-2", no <pad>
 *     apr_bpe_vocab *bv; apr_error e;
 *     if (apr_bpe_train_file("kjv.txt", &o, &bv, &e)) die(e.msg);
 *     if (!bv->complete) warn(bv->note);                 // the corpus ran out of pairs
 *     gguf_writer *w = apr_gguf_writer_new();
 *     apr_gguf_writer_set_str(w, "general.architecture", "llama");
 *     ... llama.vocab_size = bv->n_tokens, tensors of bv->n_tokens rows ...
 *     apr_bpe_gguf_set(bv, w);                           // the tokenizer.ggml.* keys
 *     apr_gguf_writer_write(w, "model.gguf", &e);
 *     apr_gguf_writer_free(w); apr_bpe_free(bv);
 *
 * or apr_bpe_write_gguf(bv, "vocab.gguf", &e) for a vocab-only file (apr_tok_load_file reads it).
 *
 * Errors are statuses with a message in err naming what failed; nothing exits or aborts.
 * Single-threaded. Memory and time go with the number of pieces and distinct pieces, and a merge
 * rescans each word holding its pair: a corpus of natural text trains in well under a second, a
 * megabyte with no break for the pre-tokenizer (one piece) takes seconds.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apr/apr.h"
#include "gguf.h"

#include "llm_api.h"

typedef struct apr_bpe_options {
    int32_t vocab_size;     /* tokens in all (specials + 256 bytes + merged), 256 + specials .. 1 << 22 */
    const char *pre;        /* pre-tokenizer family (tokenizer.ggml.pre, a name tok_pre.c knows); NULL = "gpt-2".
                             * The llama3 family also makes the loader take a piece that is a whole token as is. */
    bool pad;               /* also a "<pad>" control token (id 2) */
    int64_t min_count;      /* merge only pairs occurring at least this often; 0 = 1 (any pair) */
} apr_bpe_options;

/* A learned vocabulary. Read-only for the caller; one owner, released by apr_bpe_free. */
typedef struct apr_bpe_vocab {
    int32_t n_tokens;
    char **tokens;          /* [n_tokens] NUL-terminated texts as the GGUF holds them ("Ġthe", "<s>") */
    int32_t *token_type;    /* [n_tokens] tok_type values (TOK_TYPE_CONTROL, TOK_TYPE_NORMAL) */
    int32_t n_merges;
    char **merges;          /* [n_merges] "left right", rank order */
    int64_t *merge_count;   /* [n_merges] how often the pair occurred when it was merged */
    int32_t bos, eos, pad;  /* ids; pad -1 when not asked for */
    int32_t n_special;      /* control tokens at the front (2 or 3); byte b is token n_special + b */
    char pre[64];           /* the pre-tokenizer family */
    int32_t n_requested;    /* opts->vocab_size */
    bool complete;          /* n_tokens == n_requested */
    char note[256];         /* when not complete: why training stopped early; else "" */
    int64_t n_pieces;       /* pre-tokenized pieces in the text */
    int64_t n_words;        /* distinct pieces among them */
} apr_bpe_vocab;

/* Learns a vocabulary from text[0, len) (UTF-8; invalid bytes are trained on as bytes). *out is
 * set on APR_OK (also when the corpus ran out of pairs: see complete) and NULL otherwise.
 * APR_ERR_INVALID for bad options (vocab_size out of range, an unknown pre name), APR_ERR_NOMEM. */
LLM_API apr_status apr_bpe_train(const char *text, size_t len, const apr_bpe_options *opts, apr_bpe_vocab **out,
                                 apr_error *err);
/* The same on a whole file (APR_ERR_IO naming path when it cannot be read). */
LLM_API apr_status apr_bpe_train_file(const char *path, const apr_bpe_options *opts, apr_bpe_vocab **out,
                                      apr_error *err);
LLM_API void apr_bpe_free(apr_bpe_vocab *v);

/* Sets the tokenizer.ggml.* keys of v on w (see OVERVIEW), replacing any already set. Like every
 * writer set call it cannot fail: a problem is reported by apr_gguf_writer_write. */
LLM_API void apr_bpe_gguf_set(const apr_bpe_vocab *v, gguf_writer *w);
/* A vocab-only GGUF file at path (atomically, as apr_gguf_writer_write does): the keys above and
 * general.name "apr-bpe", no tensors. */
LLM_API apr_status apr_bpe_write_gguf(const apr_bpe_vocab *v, const char *path, apr_error *err);

#endif

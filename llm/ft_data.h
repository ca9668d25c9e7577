/* ft_data.h — training data for fine-tuning: text, prompt/completion and chat files cut into windows of token ids with loss targets. */
#ifndef APR_FT_DATA_H
#define APR_FT_DATA_H

/*
 * OVERVIEW
 *
 * apr_ftdata_open reads a training file (and optionally a validation file) once, tokenizes it
 * and keeps one stream of token ids with a loss flag per token; training windows are then cut
 * out of the stream on demand, in an order that depends only on (seed, epoch).
 *
 * Formats. A file whose name ends in ".jsonl" or ".json" is JSON lines: one object per line,
 * blank lines ignored, a trailing "\r" dropped. Each object is one example, in one of three forms:
 *
 *   {"text": "..."}                          loss on every token
 *   {"prompt": "...", "completion": "..."}   loss on the completion's tokens only
 *   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
 *                                            loss on the assistant turns' tokens only
 *
 * Any other file is plain text: the whole file is one document with loss everywhere (an empty
 * file holds no example). Text and prompt/completion are tokenized without TOK_PARSE_SPECIAL, so
 * "<s>" in the data stays text; a conversation is rendered with apr_chat_format (opts.chat,
 * opts.bos_text, opts.eos_text) and tokenized with TOK_PARSE_SPECIAL.
 *
 * Where a turn's tokens begin. Tokenizers may merge characters across the join of two texts,
 * so the tokens of one part are not looked up in isolation:
 *   - prompt/completion: the prompt alone and prompt + completion are tokenized; the completion's
 *     ids are those of the whole after the longest common prefix of the two, so the stream holds
 *     the whole's ids and a token straddling the join is counted with the completion.
 *   - messages: the whole conversation is tokenized once (F). For each assistant turn i, the
 *     conversation before it with the generation prompt (A) and the conversation through it (B)
 *     are rendered and tokenized; the turn's loss tokens are F[lcp(A, F) .. lcp(B, F)), lcp being
 *     the length of the common prefix. They hold the turn's content and the template's end of
 *     turn ("<|im_end|>\n", "</s>", ...), so the model learns to stop. Turns after the last
 *     assistant turn stay in the stream without loss. A conversation with no assistant turn is
 *     malformed.
 *
 * The stream. Each example becomes BOS + its tokens + EOS, where the vocabulary has a BOS / EOS
 * (apr_tok_bos / apr_tok_eos >= 0) and the rendered conversation does not already begin / end
 * with it. BOS never carries loss; EOS carries loss after a text or a completion and after a
 * conversation that ends with an assistant turn. The examples are concatenated.
 *
 * Windows. Window k of a stream of N tokens holds stream[k*L .. k*L + L] (L = seq_len, so L+1
 * tokens: consecutive windows overlap by one), for k = 0 .. ceil((N-1)/L) - 1:
 *     ids[t]     = stream[k*L + t], or the pad id past the end
 *     targets[t] = stream[k*L + t + 1] when that token carries loss, else -1 (prompt tokens,
 *                  padding past the end)
 * The pad id is the vocabulary's pad, else its EOS, else 0. A window without any target >= 0 is
 * dropped.
 *
 * Splits. With opts.val_file, that file's windows are the validation split and every window of
 * the training file trains. Otherwise round(val_split * W) of the W windows, chosen from the
 * seed, are held out for validation: at least 1 when val_split > 0 and W >= 2, at most W - 1.
 * Validation windows keep file order whatever the epoch. Training window i of epoch e is
 * window perm(seed, e)(i) of the training list: a keyed Feistel permutation of [0, count)
 * (integer arithmetic only, so the same on every machine and for every thread; no state).
 *
 * Errors. Every message names the file, and for a line of a JSON-lines file its 1-based number
 * and the problem: "data.jsonl:17: not a JSON object", "data.jsonl:3: invalid JSON at byte 12",
 * "data.jsonl:4: \"messages\"[1] has no \"content\" string", "data.jsonl:5: \"messages\"[0]:
 * unknown role \"bot\"", "data.jsonl:9: line longer than 64 MiB". Unless opts.strict, a
 * malformed line is written to opts.warn as "FILE:LINE: problem (skipped)", counted in
 * apr_ftdata_stats.skipped, and reading goes on; with strict, apr_ftdata_open fails with
 * APR_ERR_FORMAT and that message. No window in the training split: APR_ERR_FORMAT
 * "FILE: no training examples" (likewise "VAL: no validation examples" for an empty val_file).
 * A file that cannot be opened or read: APR_ERR_IO naming it; a directory: APR_ERR_IO
 * "PATH: is a directory". Bad options: APR_ERR_INVALID. Out of memory: APR_ERR_NOMEM.
 *
 * Memory: 5 bytes per token (an int32 id and a loss byte), plus 8 bytes per window. JSON lines
 * are read one at a time. A plain-text file is read whole; a text longer than 512 KiB is
 * tokenized in pieces of about 256 KiB cut after a newline (or before a space), each behind the
 * text before it as context, which gives the same ids as one piece (checked at every cut: where
 * the context's ids are not a prefix of context + piece, the text is tokenized in one piece).
 *
 * Example
 *
 *     apr_ftdata_opts o = {.seq_len = 512, .seed = 1, .val_split = 0.05, .chat = CHAT_CHATML};
 *     apr_ftdata *d; apr_error e;
 *     if (apr_ftdata_open("train.jsonl", v, &o, &d, &e)) die(e.msg);
 *     int32_t ids[512], targets[512];
 *     for (int64_t ep = 0; ep < epochs; ep++)
 *         for (int64_t i = 0; i < apr_ftdata_count(d, APR_FTDATA_TRAIN); i++) {
 *             apr_ftdata_window(d, APR_FTDATA_TRAIN, ep, i, ids, targets);
 *             ... forward ids, cross-entropy against targets (skipping -1), backward, step ...
 *         }
 *     apr_ftdata_free(d);
 *
 * Threading: a dataset is read-only once open; any number of threads may call
 * apr_ftdata_count / apr_ftdata_window / apr_ftdata_stats_get on it at once.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "apr/apr.h"
#include "chat.h"
#include "tokenizer.h"

#include "llm_api.h"

typedef struct apr_ftdata apr_ftdata;

enum { APR_FTDATA_TRAIN = 0, APR_FTDATA_VAL = 1 };

typedef struct apr_ftdata_opts {
    int seq_len;               /* tokens per training window (>= 2) */
    uint64_t seed;             /* shuffling and the validation split */
    double val_split;          /* fraction of windows held out when val_file is NULL, in [0, 1) (0 = none) */
    const char *val_file;      /* a separate validation file (same formats), or NULL */
    bool strict;               /* a malformed line is fatal instead of skipped */
    chat_family chat;          /* the model's chat template family, for {"messages": ...} */
    const char *bos_text;      /* the template's bos_token / eos_token, passed to apr_chat_format */
    const char *eos_text;      /*   (NULL = the family's usual "<s>", "</s>", ...) */
    FILE *warn;                /* where "FILE:LINE: ... (skipped)" warnings go (NULL = stderr) */
    size_t max_line;           /* longest JSON line accepted, in bytes (0 = 64 MiB) */
} apr_ftdata_opts;

/* Reads and tokenizes path (and o->val_file) with vocabulary v, which is not kept: it may be freed
 * afterwards. On success *out is the dataset (free with apr_ftdata_free); on failure *out is
 * NULL, err says why, and nothing is left allocated. */
LLM_API apr_status apr_ftdata_open(const char *path, const tok_vocab *v, const apr_ftdata_opts *o,
                                   apr_ftdata **out, apr_error *err);
LLM_API void apr_ftdata_free(apr_ftdata *d);   /* NULL is fine */

/* The windows in split (APR_FTDATA_TRAIN or APR_FTDATA_VAL); 0 for any other value. */
LLM_API int64_t apr_ftdata_count(const apr_ftdata *d, int split);
LLM_API int apr_ftdata_seq_len(const apr_ftdata *d);

/* Window i (0 <= i < apr_ftdata_count(d, split)) of split in the order of epoch `epoch` (see
 * OVERVIEW: a permutation drawn from (seed, epoch) for training, file order for validation).
 * Writes seq_len ids (input tokens) and seq_len targets (the next token at each position, or -1
 * where no loss is taken). An i out of range is a programmer error (assert). */
LLM_API void apr_ftdata_window(const apr_ftdata *d, int split, int64_t epoch, int64_t i, int32_t *ids,
                               int32_t *targets);

/* Statistics over everything read (the training file and val_file together), for a progress line. */
typedef struct apr_ftdata_stats {
    int64_t examples;          /* examples read (a plain-text file is one) */
    int64_t skipped;           /* malformed lines skipped */
    int64_t tokens;            /* tokens in the streams, BOS and EOS included */
    int64_t loss_tokens;       /* tokens that carry loss */
} apr_ftdata_stats;
LLM_API void apr_ftdata_stats_get(const apr_ftdata *d, apr_ftdata_stats *out);

#endif

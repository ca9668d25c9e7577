/* tu_tokjson.h — small Hugging Face tokenizer.json files written by a test: byte-level BPE over
 * the 256 GPT-2 byte characters and no merges, so the ids of a text decode back to exactly the
 * text its normalizer made. */
#ifndef TU_TOKJSON_H
#define TU_TOKJSON_H

#include "tokenizer.h"

/* Writes tokenizer.json into a temporary folder with the normalizer given as JSON text ("null"
 * for none) and the added tokens as a JSON array text (NULL for none; ids from 256 on), loads it
 * with apr_tok_load_hf and removes the folder. Returns the loader's status; on success *v is the
 * vocabulary. *path (may be NULL) gets the tokenizer.json path the loader saw. */
apr_status tu_tokjson_load(const char *normalizer, const char *added, tok_vocab **v, apr_error *err, char path[256]);

/* The vocabulary's normalizer applied to s (a NUL-terminated string), as a malloc'd string. */
char *tu_tokjson_norm(const tok_vocab *v, const char *s);

/* s encoded (no specials added) and decoded again: the normalized text, malloc'd. */
char *tu_tokjson_roundtrip(const tok_vocab *v, const char *s);

#endif

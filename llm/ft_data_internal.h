/* ft_data_internal.h — the token stream the ft_data*.c files share: reading files into it (ft_data_read.c) and one example's tokens (ft_data_example.c). */
#ifndef APR_FT_DATA_INTERNAL_H
#define APR_FT_DATA_INTERNAL_H

#include <cJSON.h>

#include "ft_data.h"

/* Token ids with a loss flag each; grows by doubling. */
typedef struct ftd_stream {
    int32_t *ids;              /* [n] */
    uint8_t *loss;             /* [n] 1 = the token is a target */
    int64_t n, cap;
} ftd_stream;

/* Appends n ids, each with loss flag loss[i] (loss NULL: all flagged all_loss). false when out of memory. */
bool ftd_stream_put(ftd_stream *s, const int32_t *ids, const uint8_t *loss, int64_t n, bool all_loss);
void ftd_stream_free(ftd_stream *s);

/* ---- ft_data_example.c: one example into the stream */

/* Appends a text example: BOS (no loss), the tokens of text[0, len) with loss, EOS with loss. */
apr_status ftd_example_text(const char *text, size_t len, const tok_vocab *v, ftd_stream *s, apr_error *err);
/* Appends the example a JSON line holds (any of the three forms). APR_ERR_FORMAT with a message
 * naming only the problem (the caller adds "FILE:LINE: ") leaves s as it was; APR_ERR_NOMEM. */
apr_status ftd_example_json(const cJSON *obj, const tok_vocab *v, const apr_ftdata_opts *o, ftd_stream *s,
                            apr_error *err);

/* ---- ft_data_read.c: one file into the stream */

/* Reads path (JSON lines or plain text, by its name) and appends its examples to s, adding to
 * st's counts. Errors name path (and the line); see ft_data.h for which are fatal. */
apr_status ftd_read_file(const char *path, const tok_vocab *v, const apr_ftdata_opts *o, ftd_stream *s,
                         apr_ftdata_stats *st, apr_error *err);

#endif

/* gguf_writer_place.h — where apr_gguf_writer_write puts its bytes and how they become OUT: an unnamed
 * file (O_TMPFILE) in OUT's directory linked into place, or a named temporary file renamed over OUT. */
#ifndef APR_GGUF_WRITER_PLACE_H
#define APR_GGUF_WRITER_PLACE_H

#include <stdbool.h>

typedef struct gguf_place {
    const char *path;   /* OUT, as given */
    char *dir;          /* OUT's directory ("." when OUT names no directory) */
    int fd;             /* the file being written, or -1 */
    bool unnamed;       /* fd has no name until gguf_place_commit links it */
    char *tmp;          /* the named temporary file while it exists, else NULL */
    int slot;           /* tmp's entry in the signal-cleanup table, or -1 */
} gguf_place;

/* Opens the file OUT's bytes go to: unnamed where the filesystem allows it (and
 * APR_GGUF_NO_TMPFILE is unset or "0"), else OUT.tmp.XXXXXX. 0 or an errno value. */
int gguf_place_open(gguf_place *pl, const char *path);
/* Makes the written and synced file OUT (link or rename) and closes it; 0, or an errno value with
 * *step saying what failed ("cannot rename the temporary file onto"). */
int gguf_place_commit(gguf_place *pl, const char **step);
/* fsyncs OUT's directory, so that the new name survives a crash; 0 or an errno value. */
int gguf_place_sync_dir(const gguf_place *pl);
/* Releases pl. Before a successful commit this drops the file (a named temporary file is removed)
 * and leaves OUT as it was. */
void gguf_place_close(gguf_place *pl);

#endif

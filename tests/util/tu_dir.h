/* tu_dir.h — what a scratch folder holds, for tests that check a tool left nothing behind. */
#ifndef TU_DIR_H
#define TU_DIR_H

#include <stddef.h>

/* The names in dir (no "." or ".."), sorted and joined by commas, "" when empty, into out. */
const char *tu_dir_list(const char *dir, char *out, size_t cap);

#endif

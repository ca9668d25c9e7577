/* tu_dir.c — what a scratch folder holds, for tests that check a tool left nothing behind. */
#include "util/tu_dir.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tu_dir_list(const char *dir, char *out, size_t cap) {
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    cr_assert(n >= 0, "scandir %s: %s", dir, strerror(errno));
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..") && len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? "," : "", ents[i]->d_name);
        free(ents[i]);
    }
    free(ents);
    return out;
}

/* tu_paths.c — where a test program finds the repository and the shared fixtures, and reads files. */
#include "util/tu_paths.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *tu_repo_dir(void) {
    static char repo[PATH_MAX];
    if (repo[0]) return repo;
    ssize_t n = readlink("/proc/self/exe", repo, sizeof repo - 1);
    if (n <= 0) return strcpy(repo, ".");
    repo[n] = 0;
    for (int up = 0; up < 3; up++) { /* <repo>/<build>/tests/X -> <repo> */
        char *slash = strrchr(repo, '/');
        if (slash) *slash = 0;
    }
    return repo;
}

const char *tu_fixtures_dir(void) {
    static char dir[PATH_MAX + 32];
    if (!dir[0]) snprintf(dir, sizeof dir, "%s/../shared/fixtures", tu_repo_dir());
    return dir;
}

bool tu_have_fixtures(void) { return access(tu_fixtures_dir(), R_OK) == 0; }

const char *tu_test_plugins_dir(void) {
    static char dir[PATH_MAX + 16];
    if (dir[0]) return dir;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return strcpy(dir, "plugins");
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(dir, sizeof dir, "%s/plugins", exe);
    return dir;
}

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    cr_assert(n >= 0, "cannot size %s", path);
    char *buf = malloc((size_t)n + 1);
    cr_assert(buf && fread(buf, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
    fclose(f);
    buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

/* tu_paths.c — where a test program finds the build tree, the repository and the shared fixtures. */
#include "util/tu_paths.h"

#include <limits.h>
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

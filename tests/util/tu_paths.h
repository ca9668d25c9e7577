/* tu_paths.h — where a test program finds the repository and the shared fixtures, and reads files. */
#ifndef TU_PATHS_H
#define TU_PATHS_H

#include <stdbool.h>
#include <stddef.h>

/* <repo>: the test binary lives in <repo>/<build>/tests/. */
const char *tu_repo_dir(void);
/* <repo>/../shared/fixtures, whether or not it exists (for skip messages). */
const char *tu_fixtures_dir(void);
/* True when the fixtures folder is readable. */
bool tu_have_fixtures(void);
/* <build>/tests/plugins, where the test plugins (packtest, opaque, ...) are built. */
const char *tu_test_plugins_dir(void);

/* A whole file, NUL-terminated, malloc'd; *len (may be NULL) its size. Fails the test when the
 * file cannot be read. */
char *tu_read_file(const char *path, size_t *len);

#endif

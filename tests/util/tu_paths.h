/* tu_paths.h — where a test program finds the build tree, the repository and the shared fixtures. */
#ifndef TU_PATHS_H
#define TU_PATHS_H

#include <stdbool.h>

/* <repo>: the test binary lives in <repo>/<build>/tests/. */
const char *tu_repo_dir(void);
/* <repo>/../shared/fixtures, whether or not it exists (for skip messages). */
const char *tu_fixtures_dir(void);
/* True when the fixtures folder is readable. */
bool tu_have_fixtures(void);

#endif

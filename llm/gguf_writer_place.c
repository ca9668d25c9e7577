/* gguf_writer_place.c — putting a written GGUF file in place as OUT without ever showing a partial OUT:
 * an unnamed O_TMPFILE file linked into place at the end (so even SIGKILL leaves no name behind), or,
 * where the filesystem lacks O_TMPFILE, a named OUT.tmp.XXXXXX that apr_gguf_writer_unlink_temps
 * removes from a tool's signal handler. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_internal.h"
#include "gguf_writer_place.h"

/* ---------------------------------------------------------------- named temporary files a signal handler may remove */

enum { PLACE_SLOTS = 8, PLACE_FREE = 0, PLACE_FILLING = 1, PLACE_READY = 2 };
static atomic_int place_state[PLACE_SLOTS];
static char place_name[PLACE_SLOTS][PATH_MAX];

static int place_register(const char *tmp) {
    if (strlen(tmp) >= PATH_MAX) return -1;
    for (int i = 0; i < PLACE_SLOTS; i++) {
        int want = PLACE_FREE;
        if (atomic_compare_exchange_strong(&place_state[i], &want, PLACE_FILLING)) {
            strcpy(place_name[i], tmp);
            atomic_store(&place_state[i], PLACE_READY);
            return i;
        }
    }
    return -1;
}

LLM_API void apr_gguf_writer_unlink_temps(void) {
    for (int i = 0; i < PLACE_SLOTS; i++)
        if (atomic_load(&place_state[i]) == PLACE_READY) unlink(place_name[i]);
    /* then the temporary folders, empty now (rmdir fails on anything else) */
    for (int i = 0; i < PLACE_SLOTS; i++)
        if (atomic_load(&place_state[i]) == PLACE_READY) rmdir(place_name[i]);
}

LLM_API int apr_gguf_writer_hold_temp_dir(const char *dir) { return place_register(dir); }

LLM_API void apr_gguf_writer_forget_temp_dir(int handle) {
    if (handle >= 0 && handle < PLACE_SLOTS) atomic_store(&place_state[handle], PLACE_FREE);
}

/* Blocks the signals a tool cleans up on, so that a name is never created without being registered. */
static void place_block(sigset_t *old) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &s, old);
}

static void place_unblock(const sigset_t *old) { pthread_sigmask(SIG_SETMASK, old, NULL); }

/* The temporary name no longer exists (renamed or removed): forget it. */
static void place_forget(gguf_place *pl) {
    if (pl->slot >= 0) atomic_store(&place_state[pl->slot], PLACE_FREE);
    pl->slot = -1;
    free(pl->tmp);
    pl->tmp = NULL;
}

/* ---------------------------------------------------------------- opening */

static bool place_no_tmpfile(void) {
    const char *v = secure_getenv("APR_GGUF_NO_TMPFILE");
    return v && *v && strcmp(v, "0") != 0;
}

/* An unnamed file in pl->dir; 0, or an errno value (EOPNOTSUPP also when /proc cannot link it later). */
static int place_open_unnamed(gguf_place *pl) {
    if (place_no_tmpfile()) return EOPNOTSUPP;
    int fd = open(pl->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    char proc[32];
    struct stat a, b;
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (fstat(fd, &a) != 0 || stat(proc, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
        close(fd);
        return EOPNOTSUPP;
    }
    pl->fd = fd;
    pl->unnamed = true;
    return 0;
}

static int place_open_named(gguf_place *pl) {
    size_t n = strlen(pl->path);
    char *tmp = malloc(n + sizeof ".tmp.XXXXXX");
    if (!tmp) return ENOMEM;
    memcpy(tmp, pl->path, n);
    memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    sigset_t old;
    place_block(&old);
    int fd = mkostemp(tmp, O_CLOEXEC), e = errno;
    if (fd >= 0) {
        pl->fd = fd;
        pl->tmp = tmp;
        pl->slot = place_register(tmp);
    }
    place_unblock(&old);
    if (fd < 0) {
        free(tmp);
        return e;
    }
    return 0;
}

int gguf_place_open(gguf_place *pl, const char *path) {
    *pl = (gguf_place){.path = path, .fd = -1, .slot = -1};
    const char *slash = strrchr(path, '/');
    pl->dir = !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!pl->dir) return ENOMEM;
    int e = place_open_unnamed(pl);
    if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL) e = place_open_named(pl);
    if (e) {
        free(pl->dir);
        pl->dir = NULL;
    }
    return e;
}

/* ---------------------------------------------------------------- committing */

/* OUT exists, and linkat cannot replace it: link under a temporary name, then rename that over OUT. */
static int place_link_over(gguf_place *pl, const char *proc, const char **step) {
    size_t n = strlen(pl->path);
    char *tmp = malloc(n + 48);
    if (!tmp) return *step = "out of memory linking", ENOMEM;
    int e = EEXIST;
    for (unsigned k = 0; k < 100 && e == EEXIST; k++) {
        snprintf(tmp, n + 48, "%s.tmp.%ld.%u", pl->path, (long)getpid(), k);
        sigset_t old;
        place_block(&old);
        e = linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
        if (!e) {
            pl->tmp = tmp;
            pl->slot = place_register(tmp);
        }
        place_unblock(&old);
    }
    if (e) {
        free(tmp);
        return *step = "cannot link the new file beside", e;
    }
    if (rename(pl->tmp, pl->path) != 0) return *step = "cannot rename the temporary file onto", errno;
    place_forget(pl);
    return 0;
}

int gguf_place_commit(gguf_place *pl, const char **step) {
    int e = 0;
    if (!pl->unnamed) {
        int fd = pl->fd;
        pl->fd = -1;
        if (close(fd) != 0) return *step = "cannot close", errno;
        if (rename(pl->tmp, pl->path) != 0) return *step = "cannot rename the temporary file onto", errno;
        place_forget(pl);
        return 0;
    }
    char proc[32];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", pl->fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, pl->path, AT_SYMLINK_FOLLOW) != 0) {
        if (errno != EEXIST) return *step = "cannot link the new file as", errno;
        if ((e = place_link_over(pl, proc, step))) return e;
    }
    int fd = pl->fd;
    pl->fd = -1;
    if (close(fd) != 0) return *step = "cannot close", errno;
    return 0;
}

void gguf_place_close(gguf_place *pl) {
    if (pl->fd >= 0) close(pl->fd);
    pl->fd = -1;
    if (pl->tmp) unlink(pl->tmp);
    place_forget(pl);
    free(pl->dir);
    pl->dir = NULL;
}

int gguf_place_sync_dir(const gguf_place *pl) {
    int e = 0, fd = open(pl->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) e = errno;
    close(fd);
    return e;
}

/* test_interrupt.c — apr-import, apr-quantize and apr-genmodel killed mid-write by INT, TERM, HUP or KILL leave no
 * file behind and the previous OUT intact, through O_TMPFILE and through the named temporary file it falls back
 * to; writes that finish create or replace OUT in both ways; apr-genmodel's vocabulary options. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apr/apr.h"
#include "gguf.h"
#include "util/tu_dir.h"
#include "util/tu_paths.h"
#include "util/tu_spawn.h"

/* ---------------------------------------------------------------- scratch folders */

static void it_mkdir(char *dir, size_t n) {
    snprintf(dir, n, "/tmp/apr-test-interrupt-XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void it_rmdir(const char *dir) {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* The names in dir, sorted and joined by commas ("" when empty); static storage. */
static const char *it_list(const char *dir) {
    static char out[4096];
    return tu_dir_list(dir, out, sizeof out);
}

static void it_write(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    cr_assert(fp && fputs(text, fp) >= 0 && fclose(fp) == 0, "cannot write %s", path);
}

/* Whether process pid holds an unnamed file of dir open ("<dir>/#<inode> (deleted)": O_TMPFILE). */
static bool it_holds_unnamed(pid_t pid, const char *dir) {
    char fds[64], link[PATH_MAX + 32], target[PATH_MAX];
    snprintf(fds, sizeof fds, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(fds);
    if (!d) return false;
    bool found = false;
    size_t n = strlen(dir);
    for (struct dirent *de; !found && (de = readdir(d));) {
        snprintf(link, sizeof link, "%s/%s", fds, de->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = 0;
        found = !strncmp(target, dir, n) && !strncmp(target + n, "/#", 2) && strstr(target, " (deleted)");
    }
    closedir(d);
    return found;
}

/* The size of the named temporary file dir/o.gguf.tmp.*, or -1 when there is none. */
static long it_temp_size(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d);
    long size = -1;
    char path[PATH_MAX + 256];
    struct stat sb;
    for (struct dirent *de; (de = readdir(d));) {
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (!strncmp(de->d_name, "o.gguf.tmp.", 11) && stat(path, &sb) == 0) size = (long)sb.st_size;
    }
    closedir(d);
    return size;
}

/* ---------------------------------------------------------------- one interrupted run */

static const char *const it_previous = "the previous OUT, which an interrupted write must leave as it is\n";

/* Runs tool (args, with OUT = dir/o.gguf among them) with APR_GGUF_WRITE_STOP=OUT: the writer stops the
 * process (SIGSTOP) right after OUT's first tensor, so that sig always lands mid-write, without sleeps
 * or races. named forces the named-temporary fallback (APR_GGUF_NO_TMPFILE=1). With previous, OUT
 * exists before and must be unchanged after; either way nothing else may be left in dir. */
static void it_interrupt(const char *tool, const char *const *args, const char *dir, int sig, bool previous, bool named) {
    char out[PATH_MAX], stop[PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    snprintf(stop, sizeof stop, "APR_GGUF_WRITE_STOP=%s", out);
    if (previous) it_write(out, it_previous);
    const char *env[] = {stop, named ? "APR_GGUF_NO_TMPFILE=1" : "APR_GGUF_NO_TMPFILE=0", NULL};
    const char *want = previous ? "o.gguf" : "";
    tu_proc p = tu_spawn(tu_tool(tool), args, env, 120);
    if (!tu_proc_wait(&p)) {
        char *log = tu_proc_output(&p);
        cr_assert_fail("%s ended (status 0x%x) before its first tensor was written: %s", tool, p.status, log);
    }
    cr_expect_eq(WSTOPSIG(p.status), SIGSTOP);
    const char *mid = it_list(dir);
    if (named) {
        cr_expect_gt(it_temp_size(dir), 0, "%s, sig %d: no partly written temporary file mid-write: %s", tool, sig, mid);
    } else {
        cr_expect_str_eq(mid, want, "%s, sig %d: a name is visible mid-write", tool, sig);
        cr_expect(it_holds_unnamed(p.pid, dir), "%s, sig %d: no unnamed (O_TMPFILE) file open mid-write", tool, sig);
    }
    cr_assert_eq(kill(p.pid, sig), 0);
    if (sig != SIGKILL) cr_assert_eq(kill(p.pid, SIGCONT), 0);
    cr_assert(!tu_proc_wait(&p), "%s stopped again", tool);
    char *log = tu_proc_output(&p);
    cr_expect(WIFSIGNALED(p.status) && WTERMSIG(p.status) == sig, "%s, sig %d: status 0x%x, want death by the signal: %s", tool, sig,
              p.status, log);
    free(log);
    cr_expect_str_eq(it_list(dir), want, "%s, sig %d (%s): files left behind", tool, sig, named ? "named temporary" : "O_TMPFILE");
    if (previous) {
        char *kept = tu_read_file(out, NULL);
        cr_expect_str_eq(kept, it_previous, "%s, sig %d: the previous OUT changed", tool, sig);
        free(kept);
    }
    unlink(out);
}

static const int it_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGKILL};

/* The arguments of each tool writing dir/o.gguf, or false when its fixtures are missing. */
static bool it_args(const char *tool, const char *dir, const char **args, char (*buf)[PATH_MAX + 64]) {
    const char *fx = tu_fixtures_dir();
    snprintf(buf[0], sizeof buf[0], "%s/o.gguf", dir);
    if (!strcmp(tool, "apr-genmodel")) {
        const char *a[] = {"--shape", "tiny", "--no-vocab", buf[0], NULL};
        memcpy(args, a, sizeof a);
        return true;
    }
    if (!strcmp(tool, "apr-import")) {
        snprintf(buf[1], sizeof buf[1], "%s/stories260K/stories260K.bin", fx);
        snprintf(buf[2], sizeof buf[2], "%s/stories260K/tok512.bin", fx);
        const char *a[] = {buf[1], "--tokenizer", buf[2], buf[0], NULL};
        memcpy(args, a, sizeof a);
    } else {
        snprintf(buf[1], sizeof buf[1], "%s/stories260K/stories260K.gguf", fx);
        const char *a[] = {buf[1], buf[0], "--type", "q8_0", NULL};
        memcpy(args, a, sizeof a);
    }
    return access(buf[1], R_OK) == 0;
}

static void it_every_signal(const char *tool) {
    char dir[64], buf[3][PATH_MAX + 64];
    const char *args[8];
    it_mkdir(dir, sizeof dir);
    if (!it_args(tool, dir, args, buf)) {
        it_rmdir(dir);
        cr_skip_test("fixtures not found at %s", tu_fixtures_dir());
    }
    for (size_t k = 0; k < sizeof it_signals / sizeof *it_signals; k++) it_interrupt(tool, args, dir, it_signals[k], k % 2 == 0, false);
    it_rmdir(dir);
}

Test(interrupt, apr_import_killed_mid_write_leaves_nothing_behind, .timeout = 120) { it_every_signal("apr-import"); }
Test(interrupt, apr_quantize_killed_mid_write_leaves_nothing_behind, .timeout = 120) { it_every_signal("apr-quantize"); }
Test(interrupt, apr_genmodel_killed_mid_write_leaves_nothing_behind, .timeout = 120) { it_every_signal("apr-genmodel"); }

/* Where the filesystem has no O_TMPFILE (forced here), the named temporary file is removed on INT, TERM and HUP. */
Test(interrupt, named_temporary_fallback_is_removed_on_int_term_hup, .timeout = 180) {
    const char *tools[] = {"apr-import", "apr-quantize", "apr-genmodel"};
    for (size_t t = 0; t < 3; t++) {
        char dir[64], buf[3][PATH_MAX + 64];
        const char *args[8];
        it_mkdir(dir, sizeof dir);
        if (it_args(tools[t], dir, args, buf))
            for (size_t k = 0; k < 3; k++) it_interrupt(tools[t], args, dir, it_signals[k], k == 1, true);
        else
            cr_log_warn("%s skipped: fixtures not found at %s", tools[t], tu_fixtures_dir());
        it_rmdir(dir);
    }
}

/* ---------------------------------------------------------------- writes that finish, both ways */

static mode_t it_umask(void) {
    mode_t m = umask(022);
    umask(m);
    return m;
}

static void it_write_small(const char *path, float value) {
    gguf_writer *w = apr_gguf_writer_new();
    apr_gguf_writer_set_str(w, "general.architecture", "llama");
    float v[4] = {value, value, value, value};
    apr_gguf_writer_add_tensor(w, "t", APR_F32, 1, (int64_t[]){4}, v, sizeof v);
    apr_error e;
    cr_assert_eq(apr_gguf_writer_write(w, path, &e), APR_OK, "%s", e.msg);
    apr_gguf_writer_free(w);
}

static void it_expect_small(const char *path, float value) {
    gguf_file *f;
    apr_error e;
    cr_assert_eq(apr_gguf_open(path, &f, &e), APR_OK, "%s", e.msg);
    const gguf_tensor *t = apr_gguf_tensor_find(f, "t");
    cr_expect(t && ((const float *)t->data)[3] == value, "%s: wrong data", path);
    apr_gguf_close(f);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0666 & ~it_umask(), "%s: mode %o", path, sb.st_mode & 0777);
}

/* A new OUT is linked into place, an existing one replaced (through a temporary name renamed over it), a
 * symlink OUT replaced by the file as rename does; the same through the named fallback; nothing else is left. */
Test(interrupt, finished_writes_create_or_replace_out_in_both_ways) {
    for (int named = 0; named < 2; named++) {
        if (named) setenv("APR_GGUF_NO_TMPFILE", "1", 1);
        char dir[64], fresh[128], old[128], link[128];
        it_mkdir(dir, sizeof dir);
        snprintf(fresh, sizeof fresh, "%s/new.gguf", dir);
        snprintf(old, sizeof old, "%s/old.gguf", dir);
        snprintf(link, sizeof link, "%s/sym.gguf", dir);
        it_write(old, "an older file");
        cr_assert_eq(symlink("old.gguf", link), 0);
        it_write_small(fresh, 1.5f);
        it_write_small(old, 2.5f);
        it_write_small(old, 3.5f);
        it_write_small(link, 4.5f);
        it_expect_small(fresh, 1.5f);
        it_expect_small(old, 3.5f);
        struct stat sb;
        cr_expect(lstat(link, &sb) == 0 && S_ISREG(sb.st_mode), "the symlink OUT was not replaced by a file");
        it_expect_small(link, 4.5f);
        it_expect_small(old, 3.5f);
        cr_expect_str_eq(it_list(dir), "new.gguf,old.gguf,sym.gguf", "named %d", named);
        it_rmdir(dir);
    }
}

/* ---------------------------------------------------------------- apr-genmodel's vocabulary options */

Test(genmodel, vocab_from_with_no_vocab_is_a_usage_error_and_vocab_from_is_never_out, .timeout = 30) {
    char dir[64], out[128], voc[128];
    it_mkdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/o.gguf", dir);
    snprintf(voc, sizeof voc, "%s/v.gguf", dir);
    it_write_small(voc, 1.0f);
    size_t n0, n1;
    char *before = tu_read_file(voc, &n0);
    const char *const cases[][6] = {
        {"--vocab-from", voc, "--no-vocab", out, NULL},
        {"--no-vocab", "--vocab-from", voc, out, NULL},
        {"--vocab-from", voc, voc, NULL},
    };
    for (size_t k = 0; k < 3; k++) {
        tu_proc p = tu_spawn(tu_tool("apr-genmodel"), cases[k], NULL, 60);
        cr_assert(!tu_proc_wait(&p));
        char *log = tu_proc_output(&p);
        cr_expect(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 2, "case %zu: status 0x%x: %s", k, p.status, log);
        cr_expect(strstr(log, k < 2 ? "--no-vocab" : "is the input"), "case %zu: %s", k, log);
        free(log);
    }
    char *after = tu_read_file(voc, &n1);
    cr_expect(n0 == n1 && !memcmp(before, after, n0), "--vocab-from's file changed");
    cr_expect_str_eq(it_list(dir), "v.gguf");
    free(before);
    free(after);
    it_rmdir(dir);
}

/* test_discovery.c — plugin discovery against hostile plugin files: plugins that crash, abort, exit,
 * hang or print while loading, FIFOs named *.so, messages left unterminated, a NULL table; the
 * trial cache; loading only a chosen backend's plugins; and APR_PLUGIN_PATH in a setuid copy. */
#include <criterion/criterion.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apr/apr.h"
#include "util/tu_paths.h"
#include "util/tu_run.h"

static char disc_build[PATH_MAX]; /* build tree root: the test binary lives in <build>/tests */
static char disc_tmp[PATH_MAX];   /* per test: plugins/ (the plugin dir), cache/ (XDG_CACHE_HOME), log */
static char disc_dir[PATH_MAX + 16];
static char disc_log[PATH_MAX + 16];

static void disc_setup(void) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* <build>/tests */
    *strrchr(exe, '/') = 0; /* <build> */
    snprintf(disc_build, sizeof disc_build, "%s", exe);
    snprintf(disc_tmp, sizeof disc_tmp, "/tmp/apr-discovery-XXXXXX");
    cr_assert(mkdtemp(disc_tmp));
    snprintf(disc_dir, sizeof disc_dir, "%s/plugins", disc_tmp);
    cr_assert(mkdir(disc_dir, 0755) == 0);
    char cache[PATH_MAX + 16];
    snprintf(cache, sizeof cache, "%s/cache", disc_tmp);
    setenv("XDG_CACHE_HOME", cache, 1); /* every test starts with a cold cache of its own */
    snprintf(disc_log, sizeof disc_log, "%s/log", disc_tmp);
    setenv("APR_TEST_TRIAL_LOG", disc_log, 1);
    unsetenv("APR_PLUGIN_PATH");
    unsetenv("APR_PLUGIN_TIMEOUT");
}

static void disc_teardown(void) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", disc_tmp);
    cr_assert(system(cmd) == 0);
}

TestSuite(discovery, .init = disc_setup, .fini = disc_teardown, .timeout = 60);

/* Copies <build>/<from> into the plugin dir as name. */
static void disc_copy(const char *from, const char *name) {
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp '%s/%s' '%s/%s'", disc_build, from, disc_dir, name);
    cr_assert(system(cmd) == 0, "%s", cmd);
}

static void disc_copy_bad(const char *name) {
    char from[128], to[128];
    snprintf(from, sizeof from, "tests/badplugins/%s.so", name);
    snprintf(to, sizeof to, "%s.so", name);
    disc_copy(from, to);
}

static apr_registry *disc_open(const char *backends) {
    apr_registry_options o = {.plugin_path = disc_dir, .skip_default_dir = true, .backends = backends};
    apr_registry *reg = NULL;
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, &reg, &e), APR_OK, "%s", e.msg);
    return reg;
}

static const apr_plugin_record *disc_find(const apr_registry *reg, const char *file) {
    for (int i = 0; i < apr_registry_count(reg); i++) {
        const apr_plugin_record *r = apr_registry_record(reg, i);
        const char *base = strrchr(r->path, '/');
        if (base && strcmp(base + 1, file) == 0) return r;
    }
    return NULL;
}

static void disc_expect_rejected(const apr_registry *reg, const char *file, const char *reason_part) {
    const apr_plugin_record *r = disc_find(reg, file);
    cr_assert(r, "%s was not reported at all", file);
    cr_expect_eq(r->state, APR_PLUGIN_REJECTED, "%s should be rejected (%s)", file, r->reason);
    cr_expect(strstr(r->reason, reason_part), "%s: reason '%s' lacks '%s'", file, r->reason, reason_part);
}

/* Times the constructor of ctor_segv.so ran: each run is one trial in a child. */
static long disc_trials(void) {
    struct stat st;
    return stat(disc_log, &st) == 0 ? (long)st.st_size : 0;
}

static void disc_mkfifo(const char *name) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", disc_dir, name);
    cr_assert(mkfifo(path, 0644) == 0, "mkfifo %s: %s", path, strerror(errno));
}

/* The crashing plugins of the issue, a FIFO, a printing plugin and the reference together. */
static void disc_populate_hostile(void) {
    static const char *const bad[] = {"ctor_segv", "ctor_abort", "ctor_exit", "entry_crash",
                                      "probe_crash", "ctor_print", "null_table"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) disc_copy_bad(bad[i]);
    disc_mkfifo("x.so");
    disc_copy("lib/apr/plugins/reference.so", "reference.so");
}

static void disc_expect_hostile_verdicts(const apr_registry *reg) {
    disc_expect_rejected(reg, "ctor_segv.so", "killed by SIGSEGV (Segmentation fault) while loading");
    disc_expect_rejected(reg, "ctor_abort.so", "killed by SIGABRT");
    disc_expect_rejected(reg, "ctor_exit.so", "called exit(0) while loading");
    disc_expect_rejected(reg, "entry_crash.so", "killed by SIGSEGV (Segmentation fault) in apr_plugin_entry");
    disc_expect_rejected(reg, "probe_crash.so", "killed by SIGSEGV (Segmentation fault) in probe");
    disc_expect_rejected(reg, "x.so", "not a regular file (a FIFO)");
    disc_expect_rejected(reg, "null_table.so", "returned no plugin table");
    const apr_plugin_record *r = disc_find(reg, "ctor_print.so");
    cr_assert(r);
    cr_expect_eq(r->state, APR_PLUGIN_OK, "%s", r->reason);
    r = disc_find(reg, "reference.so");
    cr_assert(r);
    cr_expect_eq(r->state, APR_PLUGIN_OK, "%s", r->reason);
}

Test(discovery, plugins_that_crash_abort_or_exit_are_rejected_with_what_happened) {
    disc_populate_hostile();
    apr_registry *reg = disc_open(NULL);
    disc_expect_hostile_verdicts(reg);
    /* the good plugins still work */
    apr_backend *be = NULL;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, "reference", 1, &be, &e), APR_OK, "%s", e.msg);
    apr_backend_close(be);
    cr_expect_not_null(apr_registry_default(reg));
    apr_registry_close(reg);
}

Test(discovery, a_null_table_is_refused_with_a_clear_reason) {
    disc_copy_bad("null_table");
    apr_registry *reg = disc_open(NULL);
    const apr_plugin_record *r = disc_find(reg, "null_table.so");
    cr_assert(r);
    cr_expect_eq(r->state, APR_PLUGIN_REJECTED);
    cr_expect_str_eq(r->reason, "apr_plugin_entry returned no plugin table (status ok, table NULL)");
    cr_expect_null(strstr(r->reason, ": ok"), "%s", r->reason);
    apr_registry_close(reg);
}

Test(discovery, a_hanging_probe_is_stopped_after_the_timeout_and_not_remembered) {
    /* the reference is judged first at the default timeout, so a busy machine cannot make it the one
     * that times out below */
    disc_copy("lib/apr/plugins/reference.so", "reference.so");
    apr_registry_close(disc_open(NULL));
    disc_copy_bad("probe_hang");
    setenv("APR_PLUGIN_TIMEOUT", "0.5", 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    apr_registry *reg = disc_open(NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    disc_expect_rejected(reg, "probe_hang.so", "no answer within 0.5 s in probe");
    cr_expect_eq(disc_find(reg, "reference.so")->state, APR_PLUGIN_OK);
    apr_registry_close(reg);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_expect_lt(s, 5.0, "discovery took %.1f s", s);
    /* a loaded machine can slow a good plugin, so a timeout is tried again next time */
    char cache[PATH_MAX + 32];
    snprintf(cache, sizeof cache, "%s/cache/apr/plugins", disc_tmp);
    char *text = tu_read_file(cache, NULL);
    cr_expect_null(strstr(text, "probe_hang.so"), "%s", text);
    cr_expect(strstr(text, "reference.so"), "%s", text);
    free(text);
}

/* Each message a plugin leaves unterminated is cut at its buffer: the reason holds exactly the
 * buffer's bytes less the terminator (under the sanitizers a read past it fails the run). */
static void disc_expect_run(const apr_plugin_record *r, const char *prefix, char fill, size_t run) {
    cr_assert(r);
    cr_expect_eq(r->state, APR_PLUGIN_REJECTED);
    cr_assert(strncmp(r->reason, prefix, strlen(prefix)) == 0, "reason '%s' lacks '%s'", r->reason, prefix);
    const char *p = r->reason + strlen(prefix);
    cr_expect_eq(strspn(p, (char[]){fill, 0}), run, "run of %c: %zu", fill, strspn(p, (char[]){fill, 0}));
    cr_expect_eq(p[run], 0);
}

Test(discovery, messages_a_plugin_leaves_unterminated_are_cut_at_the_buffer) {
    static const char *const names[] = {"unterm_entry", "unterm_probe", "unterm_reason", "unterm_device", "unterm_create"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) disc_copy_bad(names[i]);
    apr_registry *reg = disc_open(NULL);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "plugin refused core ABI %d: ", APR_ABI_VERSION);
    disc_expect_run(disc_find(reg, "unterm_entry.so"), prefix, 'E', 255);
    disc_expect_run(disc_find(reg, "unterm_probe.so"), "probe failed: ", 'P', 255);
    const apr_plugin_record *r = disc_find(reg, "unterm_reason.so");
    disc_expect_run(r, "probe score 0: ", 'R', sizeof(((apr_probe_result *)0)->reason) - 1);
    cr_expect_eq(strlen(r->features), sizeof(((apr_probe_result *)0)->features) - 1);
    int devices = 0;
    for (int i = 0; i < apr_registry_count(reg); i++) {
        r = apr_registry_record(reg, i);
        if (!strstr(r->path, "unterm_device.so")) continue;
        devices++;
        if (r->device == 0) {
            disc_expect_run(r, "device 0: probe score 0: ", 'S', sizeof(((apr_probe_result *)0)->reason) - 1);
            cr_expect_eq(strlen(r->features), sizeof(((apr_probe_result *)0)->features) - 1);
        } else {
            disc_expect_run(r, "device 1: probe failed: ", 'D', 255);
        }
    }
    cr_expect_eq(devices, 2);
    /* and the message of a create that fails */
    apr_backend *be = NULL;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, "untermcreate", 1, &be, &e), APR_ERR_DEVICE);
    const char *c = strstr(e.msg, "failed to start: ");
    cr_assert(c, "%s", e.msg);
    c += strlen("failed to start: ");
    cr_expect_eq(strspn(c, "C"), 255);
    cr_expect_eq(c[255], 0);
    apr_registry_close(reg);
}

/* A first start over the hostile plugin files: one trial run, its verdicts written to the cache
 * whose path goes to cache. */
static void disc_first_start(char *cache, size_t size) {
    disc_populate_hostile();
    apr_registry_close(disc_open(NULL));
    cr_expect_eq(disc_trials(), 1);
    snprintf(cache, size, "%s/cache/apr/plugins", disc_tmp);
}

Test(discovery, verdicts_are_remembered_so_later_starts_do_not_try_again) {
    char cache[PATH_MAX + 32];
    disc_first_start(cache, sizeof cache);
    apr_registry *reg;
    char *text = tu_read_file(cache, NULL);
    cr_expect(strstr(text, "ctor_segv.so\tkilled by SIGSEGV"), "%s", text);
    free(text);
    /* the second start reads the verdicts: no trial, the same reasons */
    reg = disc_open(NULL);
    disc_expect_hostile_verdicts(reg);
    apr_registry_close(reg);
    cr_expect_eq(disc_trials(), 1, "the crashing plugin was tried again");
    /* a changed file is tried again */
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/ctor_segv.so", disc_dir);
    struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
    cr_assert(utimensat(AT_FDCWD, path, times, 0) == 0);
    reg = disc_open(NULL);
    disc_expect_rejected(reg, "ctor_segv.so", "SIGSEGV");
    apr_registry_close(reg);
    cr_expect_eq(disc_trials(), 2);
    /* a verdict of another kind of machine (another CPU model or feature set) does not count here,
     * and both are kept */
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "sed -i -E '2,$ s/^(([0-9]+ ){5})[0-9a-f]+ /\\1abc /' '%s'", cache);
    cr_assert(system(cmd) == 0, "%s", cmd);
    reg = disc_open(NULL);
    disc_expect_hostile_verdicts(reg);
    apr_registry_close(reg);
    cr_expect_eq(disc_trials(), 3);
    text = tu_read_file(cache, NULL);
    int n_segv = 0;
    for (const char *p = text; (p = strstr(p, "ctor_segv.so\tkilled")); p++) n_segv++;
    cr_expect_eq(n_segv, 2, "%s", text);
    cr_expect(strstr(text, " abc bad\t"), "%s", text);
    free(text);
    /* a file that is gone leaves the cache when it is next written */
    char gone[PATH_MAX + 32];
    snprintf(gone, sizeof gone, "%s/ctor_abort.so", disc_dir);
    cr_assert(unlink(gone) == 0);
    times[1].tv_sec = 2000000000;
    cr_assert(utimensat(AT_FDCWD, path, times, 0) == 0);
    reg = disc_open(NULL);
    apr_registry_close(reg);
    cr_expect_eq(disc_trials(), 4);
    text = tu_read_file(cache, NULL);
    cr_expect_null(strstr(text, "ctor_abort.so"), "%s", text);
    cr_expect(strstr(text, "ctor_segv.so"), "%s", text);
    free(text);
}

Test(discovery, a_corrupt_or_unreadable_cache_is_ignored) {
    char cache[PATH_MAX + 32];
    disc_first_start(cache, sizeof cache);
    apr_registry *reg;
    /* a verdict line damaged: the whole file is ignored and every file tried again */
    size_t len;
    char *text = tu_read_file(cache, &len);
    char *ok = strstr(text, " ok\t");
    cr_assert(ok);
    memcpy(ok, " ?!\t", 4);
    FILE *f = fopen(cache, "w");
    cr_assert(f);
    cr_assert(fwrite(text, 1, len, f) == len);
    fclose(f);
    free(text);
    reg = disc_open(NULL);
    disc_expect_hostile_verdicts(reg);
    apr_registry_close(reg);
    cr_expect_eq(disc_trials(), 2);
    text = tu_read_file(cache, NULL);
    cr_expect_null(strstr(text, "?!"), "the damaged cache was not rewritten: %s", text);
    free(text);
    /* binary junk, then a directory where the file should be */
    f = fopen(cache, "w");
    cr_assert(f);
    cr_assert(fwrite("\x01\x02\0junk", 1, 7, f) == 7);
    fclose(f);
    reg = disc_open(NULL);
    disc_expect_hostile_verdicts(reg);
    apr_registry_close(reg);
    cr_expect_eq(disc_trials(), 3);
    cr_assert(unlink(cache) == 0);
    cr_assert(mkdir(cache, 0755) == 0);
    reg = disc_open(NULL);
    disc_expect_hostile_verdicts(reg);
    apr_registry_close(reg);
    cr_expect_eq(disc_trials(), 4);
}

Test(discovery, a_chosen_backend_loads_only_the_plugins_it_needs) {
    disc_populate_hostile();
    apr_registry *reg = disc_open("reference");
    cr_expect_eq(apr_registry_count(reg), 1, "only reference.so should be listed");
    cr_expect_str_eq(apr_registry_record(reg, 0)->name, "reference");
    cr_expect_eq(disc_trials(), 0, "ctor_segv.so was tried though not asked for");
    apr_backend *be = NULL;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, "reference", 1, &be, &e), APR_OK, "%s", e.msg);
    apr_backend_close(be);
    apr_registry_close(reg);
    /* a backend whose file is named otherwise (ctor_print.so holds "ctorprint"): every file is loaded,
     * and an unknown name lists what is usable */
    reg = disc_open("ctorprint");
    cr_expect_gt(apr_registry_count(reg), 5);
    cr_expect_eq(disc_trials(), 1);
    cr_expect_eq(apr_backend_open(reg, "nope", 1, &be, &e), APR_ERR_NOT_FOUND);
    cr_expect(strstr(e.msg, "ctorprint, reference") || strstr(e.msg, "reference, ctorprint"), "%s", e.msg);
    apr_registry_close(reg);
    /* now the cache knows ctor_print.so holds "ctorprint": that file alone is loaded */
    reg = disc_open("ctorprint");
    cr_expect_eq(apr_registry_count(reg), 1);
    cr_expect_str_eq(apr_registry_record(reg, 0)->name, "ctorprint");
    apr_registry_close(reg);
}

/* Runs a tool with APR_PLUGIN_PATH at the hostile plugin dir. */
static tu_run_result disc_tool(const char *tool, const char *const *args) {
    char bin[PATH_MAX + 32];
    snprintf(bin, sizeof bin, "%s/bin/%s", disc_build, tool);
    setenv("APR_PLUGIN_PATH", disc_dir, 1);
    tu_run_result r = tu_run(bin, NULL, args, 0);
    unsetenv("APR_PLUGIN_PATH");
    return r;
}

Test(discovery, tools_survive_hostile_plugins_and_json_stays_valid) {
    disc_populate_hostile();
    for (int pass = 0; pass < 2; pass++) { /* a cold cache, then a warm one */
        tu_run_result r = disc_tool("apr-probe", (const char *const[]){"--json", NULL});
        cr_expect_eq(r.status, 0, "apr-probe --json: %d\n%s", r.status, r.err);
        cJSON *doc = cJSON_Parse(r.out);
        cr_assert(doc, "apr-probe --json printed invalid JSON:\n%s", r.out);
        const cJSON *plugins = cJSON_GetObjectItemCaseSensitive(doc, "plugins");
        cr_assert(cJSON_IsArray(plugins));
        int seen = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, plugins) {
            const char *path = cJSON_GetObjectItemCaseSensitive(p, "path")->valuestring;
            const char *status = cJSON_GetObjectItemCaseSensitive(p, "status")->valuestring;
            const char *reason = cJSON_GetObjectItemCaseSensitive(p, "reason")->valuestring;
            if (strstr(path, "/ctor_exit.so")) { seen++; cr_expect(strstr(reason, "exit(0)"), "%s", reason); }
            if (strstr(path, "/ctor_segv.so")) { seen++; cr_expect(strstr(reason, "SIGSEGV"), "%s", reason); }
            if (strstr(path, "/x.so")) { seen++; cr_expect(strstr(reason, "FIFO"), "%s", reason); }
            if (strstr(path, "/ctor_print.so")) { seen++; cr_expect_str_eq(status, "ok"); }
        }
        cr_expect_eq(seen, 4);
        cJSON_Delete(doc);
        cr_expect_null(strstr(r.out, "ctorprint says"), "a constructor's output reached stdout");
        tu_run_free(&r);
    }
    /* a backend chosen by name: the tool runs as usual */
    tu_run_result r = disc_tool("apr-probe", (const char *const[]){"--backend", "reference", "--json", NULL});
    cr_expect_eq(r.status, 0, "%s", r.err);
    cJSON *chosen = cJSON_Parse(r.out);
    cr_expect(chosen, "%s", r.out);
    cJSON_Delete(chosen);
    tu_run_free(&r);
    if (!tu_have_fixtures()) cr_skip_test("apr-run part: fixtures missing at %s", tu_fixtures_dir());
    char model[PATH_MAX + 64];
    snprintf(model, sizeof model, "%s/stories260K/stories260K.gguf", tu_fixtures_dir());
    /* with a chosen backend (only reference.so is loaded) and with the default (every file is) */
    for (int chosen = 1; chosen >= 0; chosen--) {
        r = disc_tool("apr-run", (const char *const[]){"--model", model, "--prompt", "Once", "-n", "4", "--temp", "0",
                                                        "--json", chosen ? "--backend" : NULL, "reference", NULL});
        cr_expect_eq(r.status, 0, "apr-run: %d\n%s", r.status, r.err);
        cJSON *doc = cJSON_Parse(r.out);
        cr_expect(doc, "apr-run --json printed invalid JSON:\n%s", r.out);
        cJSON_Delete(doc);
        tu_run_free(&r);
    }
}

/* Runs bin --json as user and group 65534 with APR_PLUGIN_PATH=plugin_dir; returns its stdout. */
static char *disc_run_unprivileged(const char *bin, const char *plugin_dir, const char *out_path) {
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(fd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fd, 1);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 2);
        setenv("APR_PLUGIN_PATH", plugin_dir, 1);
        unsetenv("XDG_CACHE_HOME");
        setenv("HOME", "/nonexistent", 1);
        if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
            _exit(125);
        execl(bin, bin, "--json", (char *)NULL);
        _exit(127);
    }
    close(fd);
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 125) cr_skip_test("cannot switch to uid and gid 65534 here");
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) cr_skip_test("uid 65534 cannot run %s (a directory above it is closed to others)", bin);
    cr_assert(WIFEXITED(st), "%s did not exit (status %d)", bin, st);
    return tu_read_file(out_path, NULL);
}

Test(discovery, a_setuid_program_ignores_apr_plugin_path) {
    if (geteuid() != 0) cr_skip_test("needs root to make a setuid copy of apr-probe (running as uid %d)", (int)geteuid());
    struct statvfs fs;
    if (statvfs(disc_tmp, &fs) == 0 && (fs.f_flag & ST_NOSUID)) cr_skip_test("%s is on a filesystem mounted nosuid", disc_tmp);
    /* a directory everyone can read: the copies, and a marker plugin dir of the unprivileged user's */
    cr_assert(chmod(disc_tmp, 0755) == 0);
    char cmd[8 * PATH_MAX], suid[PATH_MAX + 32], plain[PATH_MAX + 32], out[PATH_MAX + 32];
    snprintf(suid, sizeof suid, "%s/apr-probe-suid", disc_tmp);
    snprintf(plain, sizeof plain, "%s/apr-probe-plain", disc_tmp);
    snprintf(cmd, sizeof cmd, "cp '%s/tests/badplugins/apr-probe-core' '%s' && cp '%s' '%s' && cp '%s/lib/apr/plugins/reference.so' '%s/marker.so'",
             disc_build, suid, suid, plain, disc_build, disc_dir);
    cr_assert(system(cmd) == 0, "%s", cmd);
    cr_assert(chown(suid, 0, 0) == 0 && chmod(suid, 04755) == 0);
    cr_assert(chmod(plain, 0755) == 0);
    snprintf(out, sizeof out, "%s/out.json", disc_tmp);
    /* the same copy without the setuid bit lists the marker: the test can see it */
    char *text = disc_run_unprivileged(plain, disc_dir, out);
    cr_expect(strstr(text, "/plugins/marker.so"), "the plain copy did not list the marker plugin:\n%s", text);
    free(text);
    struct stat sb;
    cr_assert(stat(suid, &sb) == 0 && (sb.st_mode & S_ISUID) && sb.st_uid == 0);
    text = disc_run_unprivileged(suid, disc_dir, out);
    cJSON *doc = cJSON_Parse(text);
    cr_expect(doc, "the setuid copy printed no JSON:\n%s", text);
    cJSON_Delete(doc);
    cr_expect_null(strstr(text, "marker.so"), "the setuid copy loaded a plugin from APR_PLUGIN_PATH:\n%s", text);
    cr_expect_null(strstr(text, disc_dir), "the setuid copy searched APR_PLUGIN_PATH:\n%s", text);
    free(text);
}

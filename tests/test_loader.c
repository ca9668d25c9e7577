/* test_loader.c — plugin discovery with real files: bad files are rejected with the right reason,
 * nothing crashes, good plugins still load, and APR_PLUGIN_PATH is searched first. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apr/apr.h"

static char loader_build[PATH_MAX]; /* build tree root: the test binary lives in <build>/tests */
static char loader_tmp[PATH_MAX];   /* a fresh plugin directory per test */

static void loader_setup(void) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = 0;
    *strrchr(exe, '/') = 0; /* <build>/tests */
    *strrchr(exe, '/') = 0; /* <build> */
    snprintf(loader_build, sizeof loader_build, "%s", exe);
    snprintf(loader_tmp, sizeof loader_tmp, "/tmp/apr-loader-XXXXXX");
    cr_assert(mkdtemp(loader_tmp));
}

static void loader_teardown(void) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", loader_tmp);
    cr_assert(system(cmd) == 0);
}

static void loader_copy(const char *from, const char *to_name) {
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/%s'", from, loader_tmp, to_name);
    cr_assert(system(cmd) == 0, "%s", cmd);
}

static void loader_write(const char *name, const void *data, size_t size) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", loader_tmp, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert(fwrite(data, 1, size, f) == size);
    fclose(f);
}

static const apr_plugin_record *loader_find(const apr_registry *reg, const char *file) {
    for (int i = 0; i < apr_registry_count(reg); i++) {
        const apr_plugin_record *r = apr_registry_record(reg, i);
        const char *base = strrchr(r->path, '/');
        if (base && strcmp(base + 1, file) == 0) return r;
    }
    return NULL;
}

static void loader_expect_rejected(const apr_registry *reg, const char *file, const char *reason_part) {
    const apr_plugin_record *r = loader_find(reg, file);
    cr_assert(r, "%s was not reported at all", file);
    cr_expect_eq(r->state, APR_PLUGIN_REJECTED, "%s should be rejected", file);
    cr_expect_eq(r->score, 0);
    cr_expect(strstr(r->reason, reason_part), "%s: reason '%s' lacks '%s'", file, r->reason, reason_part);
}

static apr_registry *loader_open(bool with_default) {
    apr_registry_options o = {.plugin_path = loader_tmp, .skip_default_dir = !with_default};
    apr_registry *reg = NULL;
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, &reg, &e), APR_OK, "%s", e.msg);
    return reg;
}

/* ELF machine numbers: this build's own and a foreign one, for the header-only test files. */
#if defined(__aarch64__)
#define LOADER_EM_HOST 183
#define LOADER_EM_OTHER 62
#define LOADER_OTHER_NAME "x86-64"
#else
#define LOADER_EM_HOST 62
#define LOADER_EM_OTHER 183
#define LOADER_OTHER_NAME "aarch64"
#endif

TestSuite(loader, .init = loader_setup, .fini = loader_teardown);

Test(loader, bad_files_are_rejected_with_reasons_and_good_plugins_load) {
    char path[PATH_MAX + 64];
    loader_write("text.so", "this is not a library\n", 22);
    loader_write("empty.so", "", 0);
    /* a 64-bit little-endian ELF header for the other architecture, type ET_DYN */
    unsigned char arm[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
    arm[16] = 3;
    arm[18] = LOADER_EM_OTHER;
    loader_write("wrongarch.so", arm, sizeof arm);
    /* an ELF relocatable object (ET_REL) of this architecture is not a shared object */
    unsigned char rel[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
    rel[16] = 1;
    rel[18] = LOADER_EM_HOST;
    loader_write("object.so", rel, sizeof rel);
    const char *built[] = {"noentry", "newerabi", "score0", "missingdep"};
    for (size_t i = 0; i < sizeof built / sizeof *built; i++) {
        snprintf(path, sizeof path, "%s/tests/plugins/%s.so", loader_build, built[i]);
        char name[64];
        snprintf(name, sizeof name, "%s.so", built[i]);
        loader_copy(path, name);
    }
    apr_registry *reg = loader_open(true);
    loader_expect_rejected(reg, "text.so", "not an ELF");
    loader_expect_rejected(reg, "empty.so", "not an ELF");
    loader_expect_rejected(reg, "wrongarch.so", "wrong architecture: built for " LOADER_OTHER_NAME);
    loader_expect_rejected(reg, "object.so", "not a shared object");
    loader_expect_rejected(reg, "noentry.so", "no entry symbol apr_plugin_entry");
    char newer[96]; /* newerabi.so claims the core's ABI + 1, so the expected words follow the header */
    snprintf(newer, sizeof newer, "ABI version %d is newer than this core's ABI version %d", APR_ABI_VERSION + 1,
             APR_ABI_VERSION);
    loader_expect_rejected(reg, "newerabi.so", newer);
    loader_expect_rejected(reg, "score0.so", "probe score 0: needs a flux capacitor");
    loader_expect_rejected(reg, "missingdep.so", "libaprmissing.so");
    /* the build tree's own plugins are still there and usable */
    const apr_plugin_record *ref = loader_find(reg, "reference.so");
    cr_assert(ref, "reference.so not found in the default directory");
    cr_expect_eq(ref->state, APR_PLUGIN_OK, "reference rejected: %s", ref->reason);
    cr_expect_gt(ref->score, 0);
    cr_expect_not_null(apr_registry_default(reg));
    apr_registry_close(reg);
}

Test(loader, plugin_path_is_searched_first_and_makes_a_copied_plugin_appear) {
    char path[PATH_MAX + 64];
    apr_registry *reg = loader_open(false);
    cr_expect_eq(apr_registry_count(reg), 0);
    cr_expect_null(apr_registry_default(reg));
    apr_registry_close(reg);

    snprintf(path, sizeof path, "%s/tests/plugins/partial.so", loader_build);
    loader_copy(path, "partial.so");
    snprintf(path, sizeof path, "%s/lib/apr/plugins/reference.so", loader_build);
    loader_copy(path, "reference.so");
    setenv("APR_PLUGIN_PATH", loader_tmp, 1);
    apr_error e;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    unsetenv("APR_PLUGIN_PATH");
    const apr_plugin_record *partial = loader_find(reg, "partial.so");
    cr_assert(partial);
    cr_expect_eq(partial->state, APR_PLUGIN_OK, "%s", partial->reason);
    cr_expect_str_eq(partial->name, "partial");
    /* the copy in APR_PLUGIN_PATH wins; the build tree's reference.so is reported as shadowed */
    int n_ref = 0;
    for (int i = 0; i < apr_registry_count(reg); i++) {
        const apr_plugin_record *r = apr_registry_record(reg, i);
        if (strcmp(r->name, "reference") != 0) continue;
        n_ref++;
        if (strncmp(r->path, loader_tmp, strlen(loader_tmp)) == 0) cr_expect_eq(r->state, APR_PLUGIN_OK);
        else cr_expect(strstr(r->reason, "already loaded from"), "%s", r->reason);
    }
    cr_expect_eq(n_ref, 2);
    apr_registry_close(reg);
}

Test(loader, default_is_the_highest_score_and_unknown_names_list_usable_backends) {
    char path[PATH_MAX + 64];
    /* this architecture's SIMD plugins, best first; the reference is the last resort */
#if defined(__aarch64__)
    static const char *const simd[] = {"cpu-neon"};
#else
    static const char *const simd[] = {"cpu-avx512", "cpu-avx2"};
#endif
    const int n_simd = (int)(sizeof simd / sizeof *simd);
    for (int i = -1; i < n_simd; i++) {
        const char *name = i < 0 ? "reference" : simd[i];
        char file[64];
        snprintf(path, sizeof path, "%s/lib/apr/plugins/%s.so", loader_build, name);
        snprintf(file, sizeof file, "%s.so", name);
        loader_copy(path, file);
    }
    apr_registry *reg = loader_open(false);
    int best = 0;
    for (int i = 0; i < apr_registry_count(reg); i++)
        if (apr_registry_record(reg, i)->score > best) best = apr_registry_record(reg, i)->score;
    const char *def = apr_registry_default(reg);
    cr_assert_not_null(def);
    for (int i = 0; i < apr_registry_count(reg); i++) {
        const apr_plugin_record *r = apr_registry_record(reg, i);
        if (!strcmp(r->name, def)) cr_expect_eq(r->score, best);
    }
    apr_backend *be = NULL;
    apr_error e;
    cr_expect_eq(apr_backend_open(reg, "no-such-backend", 1, &be, &e), APR_ERR_NOT_FOUND);
    cr_expect_null(be);
    cr_expect(strstr(e.msg, "unknown backend 'no-such-backend'"), "%s", e.msg);
    cr_expect(strstr(e.msg, "reference"), "usable list missing: %s", e.msg);
    cr_assert_eq(apr_backend_open(reg, NULL, 1, &be, &e), APR_OK, "%s", e.msg);
    cr_expect_str_eq(apr_backend_name(be), def);
    apr_backend_close(be);
    char file[64];
    snprintf(file, sizeof file, "%s.so", simd[0]);
    const apr_plugin_record *top = loader_find(reg, file);
    cr_assert(top, "%s not found", file);
    if (top->state == APR_PLUGIN_OK) cr_expect_str_eq(def, simd[0]);
    apr_registry_close(reg);

    /* without the best plugin the next best takes over, with no other change */
    snprintf(path, sizeof path, "%s/%s", loader_tmp, file);
    cr_assert_eq(unlink(path), 0);
    reg = loader_open(false);
    def = apr_registry_default(reg);
    cr_assert_not_null(def);
    cr_expect_str_neq(def, simd[0]);
    const char *want = "reference";
    for (int i = 1; i < n_simd; i++) {
        snprintf(file, sizeof file, "%s.so", simd[i]);
        const apr_plugin_record *r = loader_find(reg, file);
        cr_assert(r, "%s not found", file);
        if (r->state == APR_PLUGIN_OK) { want = simd[i]; break; }
    }
    cr_expect_str_eq(def, want);
    apr_registry_close(reg);
}

Test(loader, host_topology_is_reported) {
    apr_host_info h;
    apr_error e;
    cr_assert_eq(apr_host_query(&h, &e), APR_OK, "%s", e.msg);
    cr_expect_gt(h.n_physical_cores, 0);
    cr_expect_geq(h.n_logical_cpus, h.n_physical_cores);
    cr_expect_gt(h.n_numa_nodes, 0);
    cr_expect_gt(strlen(h.cpu_model), 0);
    cr_expect_eq(h.struct_size, sizeof h);
    cr_expect_eq(h.core_abi_version, APR_ABI_VERSION);
}

/* A CPU plugin serves a core of ABI 2 with a table stamped 2 (which such a core reads only up to
 * compute) and a core of the current ABI with weight_pack; a core older than 2 is refused. */
Test(loader, cpu_plugins_serve_older_cores_with_the_table_of_their_abi) {
#if defined(__aarch64__)
    const char *names[] = {"cpu-neon.so"};
#else
    const char *names[] = {"cpu-avx2.so", "cpu-avx512.so"};
#endif
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/lib/apr/plugins/%s", loader_build, names[i]);
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        cr_assert(h, "%s: %s", path, dlerror());
        apr_plugin_entry_fn entry;
        *(void **)&entry = dlsym(h, APR_PLUGIN_ENTRY_SYMBOL);
        cr_assert(entry, "%s has no entry", names[i]);
        const apr_plugin *t = NULL;
        char err[256] = "";
        cr_assert_eq(entry(APR_ABI_VERSION, &t, err, sizeof err), APR_OK, "%s", err);
        cr_expect_eq(t->abi_version, APR_ABI_VERSION);
        cr_expect(t->struct_size >= offsetof(apr_plugin, weight_pack) + sizeof t->weight_pack && t->weight_pack,
                  "%s: no weight_pack slot", names[i]);
        cr_assert_eq(entry(2, &t, err, sizeof err), APR_OK, "%s", err);
        cr_expect_eq(t->abi_version, 2u, "%s stamps %u for a core of ABI 2", names[i], t->abi_version);
        cr_expect(t->compute != NULL);
        t = (const apr_plugin *)1;
        cr_expect_eq(entry(1, &t, err, sizeof err), APR_ERR_ABI);
        cr_expect_null(t);
        cr_expect(strstr(err, "ABI"), "%s", err);
        dlclose(h);
    }
}

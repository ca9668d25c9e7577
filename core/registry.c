/* registry.c — finds plugin files, checks and loads them, probes them, and records every verdict.
 *
 * A file's first load is tried in a child process (plugin_trial.c) and the verdict remembered
 * (plugin_cache.c), so that a plugin that crashes, exits or hangs is listed as rejected instead of
 * taking the host down; only then is it loaded here, with stdout pointed at /dev/null meanwhile. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "plugin_cache.h"
#include "plugin_file.h"
#include "plugin_trial.h"

/* One scan: the registry being filled, the trial cache, and the files found in search order. */
typedef struct registry_scan {
    apr_registry *reg;
    plugin_cache *cache;
    double timeout_s;
    char **paths;      /* [n_paths] every *.so found, directory by directory, each sorted */
    bool *taken;       /* [n_paths] already handled */
    size_t n_paths, cap_paths;
} registry_scan;

/* A message a plugin wrote into a buffer of size bytes, terminated on this side whatever it did. */
static const char *registry_msg(char *msg, size_t size) {
    msg[size - 1] = 0;
    return msg;
}

/* Loads the plugin in s (whose file passed plugin_file_check) and probes it; returns true when it
 * is usable. The host runs this after the file's trial, and the trial's child runs the same code. */
static bool registry_load(apr_registry *reg, apr_plugin_slot *s) {
    plugin_trial_stage(PLUGIN_TRIAL_LOAD);
    dlerror();
    void *dl = dlopen(s->path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        snprintf(s->reason, sizeof s->reason, "cannot load (missing dependency or bad library): %s", e ? e : "?");
        return false;
    }
    apr_plugin_entry_fn entry;
    void *sym = dlsym(dl, APR_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(s->reason, sizeof s->reason, "no entry symbol %s: not an apr plugin", APR_PLUGIN_ENTRY_SYMBOL);
        dlclose(dl);
        return false;
    }
    memcpy(&entry, &sym, sizeof entry); /* object-to-function pointer, as POSIX dlsym requires */
    const apr_plugin *api = NULL;
    char msg[256] = "";
    plugin_trial_stage(PLUGIN_TRIAL_ENTRY);
    apr_status st = entry(APR_ABI_VERSION, &api, msg, sizeof msg);
    registry_msg(msg, sizeof msg);
    if (st != APR_OK) {
        snprintf(s->reason, sizeof s->reason, "plugin refused core ABI %d: %s", APR_ABI_VERSION,
                 msg[0] ? msg : apr_status_name(st));
        dlclose(dl);
        return false;
    }
    if (!api) {
        snprintf(s->reason, sizeof s->reason, "%s returned no plugin table (status ok, table NULL)",
                 APR_PLUGIN_ENTRY_SYMBOL);
        dlclose(dl);
        return false;
    }
    if (api->struct_size < offsetof(apr_plugin, compute) + sizeof api->compute) {
        snprintf(s->reason, sizeof s->reason, "plugin table too small (%u bytes) for ABI %u", api->struct_size,
                 api->abi_version);
        dlclose(dl);
        return false;
    }
    s->rec.abi_version = api->abi_version;
    /* the precisions bound what is read of strings the plugin may have left unterminated */
    if (api->name) snprintf(s->name, sizeof s->name, "%.*s", (int)sizeof s->name - 1, api->name);
    snprintf(s->plugin_name, sizeof s->plugin_name, "%s", s->name);
    if (api->description)
        snprintf(s->description, sizeof s->description, "%.*s", (int)sizeof s->description - 1, api->description);
    if (api->abi_version > APR_ABI_VERSION) {
        snprintf(s->reason, sizeof s->reason, "plugin ABI version %u is newer than this core's ABI version %d; "
                 "update apr or use a plugin built for ABI %d", api->abi_version, APR_ABI_VERSION, APR_ABI_VERSION);
        dlclose(dl);
        return false;
    }
    if (api->abi_version < APR_ABI_MIN_VERSION) {
        snprintf(s->reason, sizeof s->reason, "plugin ABI version %u is older than the oldest this core accepts (%d)",
                 api->abi_version, APR_ABI_MIN_VERSION);
        dlclose(dl);
        return false;
    }
    if (!api->name || !api->probe || !api->create || !api->destroy || !api->supports || !api->buffer_alloc ||
        !api->buffer_free || !api->buffer_write || !api->buffer_read || !api->compute) {
        snprintf(s->reason, sizeof s->reason, "plugin table lacks a required entry point");
        dlclose(dl);
        return false;
    }
    for (int i = 0; i < reg->n_slots; i++) {
        apr_plugin_slot *o = &reg->slots[i];
        if (o != s && o->api && strcmp(o->plugin_name, s->plugin_name) == 0) {
            snprintf(s->reason, sizeof s->reason, "backend '%s' already loaded from %s (earlier in the search path)",
                     s->name, o->path);
            dlclose(dl);
            return false;
        }
    }
    apr_probe_result pr;
    memset(&pr, 0, sizeof pr);
    pr.struct_size = sizeof pr;
    msg[0] = 0;
    plugin_trial_stage(PLUGIN_TRIAL_PROBE);
    st = api->probe(&reg->host, &pr, msg, sizeof msg);
    registry_msg(msg, sizeof msg);
    registry_msg(pr.reason, sizeof pr.reason);
    registry_msg(pr.features, sizeof pr.features);
    snprintf(s->features, sizeof s->features, "%s", pr.features);
    if (st != APR_OK) {
        snprintf(s->reason, sizeof s->reason, "probe failed: %s", msg[0] ? msg : apr_status_name(st));
        dlclose(dl);
        return false;
    }
    if (pr.score <= 0) {
        snprintf(s->reason, sizeof s->reason, "probe score 0: %s", pr.reason[0] ? pr.reason : "unusable here");
        dlclose(dl);
        return false;
    }
    snprintf(s->reason, sizeof s->reason, "%s", pr.reason);
    s->rec.score = pr.score;
    s->dl = dl;
    s->api = api;
    if (api->abi_version >= 4 && pr.n_devices > 0 && APR_PLUGIN_HAS(api, probe_device))
        s->rec.device = pr.n_devices; /* a count until registry_devices gives each device its slot */
    return true;
}

/* Probes device d of the plugin in s (a slot already named after the device) and records the verdict. */
static void registry_probe_device(apr_registry *reg, apr_plugin_slot *s, int d) {
    apr_probe_result pr;
    memset(&pr, 0, sizeof pr);
    pr.struct_size = sizeof pr;
    char msg[256] = "";
    s->rec.device = d;
    snprintf(s->name, sizeof s->name, "%.40s:%d", s->plugin_name, d);
    plugin_trial_stage(PLUGIN_TRIAL_DEVICE);
    apr_status st = s->api->probe_device(&reg->host, (uint32_t)d, &pr, msg, sizeof msg);
    registry_msg(msg, sizeof msg);
    registry_msg(pr.reason, sizeof pr.reason);
    registry_msg(pr.features, sizeof pr.features);
    snprintf(s->features, sizeof s->features, "%s", pr.features);
    if (st != APR_OK || pr.score <= 0) {
        if (st != APR_OK) snprintf(s->reason, sizeof s->reason, "device %d: probe failed: %s", d, msg[0] ? msg : apr_status_name(st));
        else snprintf(s->reason, sizeof s->reason, "device %d: probe score 0: %s", d, pr.reason[0] ? pr.reason : "unusable here");
        s->api = NULL; /* rejected; the first device's slot keeps the library open for the others */
        s->rec.score = 0;
        return;
    }
    snprintf(s->reason, sizeof s->reason, "%s", pr.reason);
    s->rec.score = pr.score;
}
#define REGISTRY_MAX_DEVICES 64

/* A plugin that reports devices gets one slot per device, "name:0" (the slot it was loaded into,
 * which keeps the library open) up to "name:N-1", each probed on its own. */
static apr_status registry_devices(apr_registry *reg, int first, apr_error *err) {
    int n = reg->slots[first].rec.device;
    if (n > REGISTRY_MAX_DEVICES) n = REGISTRY_MAX_DEVICES;
    apr_plugin_slot *slots = realloc(reg->slots, (size_t)(reg->n_slots + n - 1) * sizeof *slots);
    if (!slots) return apr_error_set(err, APR_ERR_NOMEM, "out of memory listing plugins");
    reg->slots = slots;
    const apr_plugin *api = slots[first].api;
    for (int d = 1; d < n; d++) {
        apr_plugin_slot *s = &slots[reg->n_slots];
        *s = slots[first];
        s->dl = NULL;
        s->api = api;
        if (!(s->path = strdup(slots[first].path))) return apr_error_set(err, APR_ERR_NOMEM, "out of memory listing plugins");
        reg->n_slots++;
        registry_probe_device(reg, s, d);
    }
    registry_probe_device(reg, &slots[first], 0);
    return APR_OK;
}

typedef struct registry_trial_ctx {
    apr_registry *reg;
    int slot;
} registry_trial_ctx;

/* The trial's child: the host's own load and probes, then the plugin's name for the cache. */
static void registry_trial_child(void *p) {
    registry_trial_ctx *c = p;
    apr_registry *reg = c->reg;
    reg->slots[0] = reg->slots[c->slot]; /* this copy of the process judges the file alone, as a later start may */
    reg->n_slots = 1;
    if (registry_load(reg, &reg->slots[0]) && reg->slots[0].rec.device > 0) registry_devices(reg, 0, NULL);
    if (reg->slots[0].rec.abi_version) plugin_trial_name(reg->slots[0].plugin_name);
}

/* True when the file in slot i may be loaded here: its trial in a child, remembered or run now,
 * finished. Otherwise the slot's reason says how the child died. */
static bool registry_tried(registry_scan *sc, int i, const struct stat *st) {
    apr_plugin_slot *s = &sc->reg->slots[i];
    const plugin_cache_entry *ce = plugin_cache_find(sc->cache, s->path, st);
    if (ce) {
        if (!ce->ok) snprintf(s->reason, sizeof s->reason, "%s", ce->reason);
        return ce->ok;
    }
    registry_trial_ctx ctx = {sc->reg, i};
    char name[64], why[400];
    bool transient;
    bool ok = plugin_trial_run(registry_trial_child, &ctx, sc->timeout_s, name, sizeof name, why, sizeof why, &transient);
    if (!ok) snprintf(s->reason, sizeof s->reason, "%s", why);
    if (!transient) plugin_cache_put(sc->cache, s->path, st, ok, name, ok ? "" : why);
    return ok;
}

static apr_status registry_append(registry_scan *sc, const char *path, apr_error *err) {
    apr_registry *reg = sc->reg;
    apr_plugin_slot *slots = realloc(reg->slots, (size_t)(reg->n_slots + 1) * sizeof *slots);
    if (!slots) return apr_error_set(err, APR_ERR_NOMEM, "out of memory listing plugins");
    reg->slots = slots;
    int i = reg->n_slots;
    apr_plugin_slot *s = &slots[i];
    memset(s, 0, sizeof *s);
    s->path = strdup(path);
    if (!s->path) return apr_error_set(err, APR_ERR_NOMEM, "out of memory listing plugins");
    reg->n_slots++;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(s->name, sizeof s->name, "%.*s", (int)(strlen(base) > 3 ? strlen(base) - 3 : strlen(base)), base);
    snprintf(s->plugin_name, sizeof s->plugin_name, "%s", s->name);
    s->rec.device = -1;
    struct stat st;
    if (!plugin_file_check(path, &st, s->reason, sizeof s->reason) || !registry_tried(sc, i, &st)) return APR_OK;
    if (registry_load(reg, s) && s->rec.device > 0) return registry_devices(reg, i, err);
    if (s->rec.device > 0) s->rec.device = -1;
    return APR_OK;
}

static int registry_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static apr_status registry_push_path(registry_scan *sc, const char *dir, const char *name, apr_error *err) {
    if (sc->n_paths == sc->cap_paths) {
        size_t cap = sc->cap_paths ? 2 * sc->cap_paths : 16;
        char **np = realloc(sc->paths, cap * sizeof *np);
        if (!np) return apr_error_set(err, APR_ERR_NOMEM, "out of memory scanning %s", dir);
        sc->paths = np;
        bool *nt = realloc(sc->taken, cap * sizeof *nt);
        if (!nt) return apr_error_set(err, APR_ERR_NOMEM, "out of memory scanning %s", dir);
        sc->taken = nt;
        sc->cap_paths = cap;
    }
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (!p) return apr_error_set(err, APR_ERR_NOMEM, "out of memory scanning %s", dir);
    snprintf(p, len, "%s/%s", dir, name);
    sc->taken[sc->n_paths] = false;
    sc->paths[sc->n_paths++] = p;
    return APR_OK;
}

/* Lists one directory's *.so files, sorted; a missing directory is not an error (the default may
 * not exist yet). Nothing is opened here. */
static apr_status registry_scan_dir(registry_scan *sc, const char *dir, apr_error *err) {
    DIR *d = opendir(dir);
    if (!d) return APR_OK;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    apr_status st = APR_OK;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) { st = apr_error_set(err, APR_ERR_NOMEM, "out of memory scanning %s", dir); break; }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) { st = apr_error_set(err, APR_ERR_NOMEM, "out of memory"); break; }
        n++;
    }
    closedir(d);
    if (st == APR_OK && n) qsort(names, n, sizeof *names, registry_cmp);
    for (size_t i = 0; i < n; i++) {
        if (st == APR_OK) st = registry_push_path(sc, dir, names[i], err);
        free(names[i]);
    }
    free(names);
    return st;
}

/* <dir of libapr>/apr/plugins: the build tree and an installed prefix share this layout. */
static bool registry_default_dir(char *out, size_t size) {
    Dl_info info;
    if (!dladdr((void *)&registry_default_dir, &info) || !info.dli_fname) return false;
    char lib[4096];
    if (!realpath(info.dli_fname, lib)) snprintf(lib, sizeof lib, "%s", info.dli_fname);
    const char *slash = strrchr(lib, '/');
    if (!slash) return false;
    snprintf(out, size, "%.*s/apr/plugins", (int)(slash - lib), lib);
    return true;
}

static apr_status registry_add_dir(registry_scan *sc, const char *dir, apr_error *err) {
    apr_registry *reg = sc->reg;
    size_t old = reg->search_path ? strlen(reg->search_path) : 0;
    char *p = realloc(reg->search_path, old + strlen(dir) + 2);
    if (!p) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    if (old) p[old++] = ':';
    strcpy(p + old, dir);
    reg->search_path = p;
    return registry_scan_dir(sc, dir, err);
}

/* Whether name (a backend or file name, without any ":device") is in the comma-separated list,
 * whose items may name a device ("cuda:1"). */
static bool registry_wanted(const char *list, const char *name, size_t name_len) {
    for (const char *item = list; *item;) {
        size_t len = strcspn(item, ",");
        size_t base = strcspn(item, ",:");
        if (base == name_len && !strncmp(item, name, name_len)) return true;
        item += len;
        if (*item == ',') item++;
    }
    return false;
}

/* Whether every backend in the list was loaded and is usable. */
static bool registry_all_usable(const apr_registry *reg, const char *list) {
    for (const char *item = list; *item;) {
        size_t len = strcspn(item, ",");
        bool found = len == 0;
        for (int i = 0; i < reg->n_slots && !found; i++) {
            const apr_plugin_slot *s = &reg->slots[i];
            found = s->api && ((strlen(s->name) == len && !strncmp(s->name, item, len)) ||
                               (strlen(s->plugin_name) == len && !strncmp(s->plugin_name, item, len)));
        }
        if (!found) return false;
        item += len;
        if (*item == ',') item++;
    }
    return true;
}

/* Loads the files a backend list names: by file name ("cpu-avx2.so") or by the plugin name their
 * trial reported. When that leaves a named backend missing, the caller loads the rest. */
static apr_status registry_load_wanted(registry_scan *sc, const char *list, apr_error *err) {
    apr_status st = APR_OK;
    for (size_t i = 0; i < sc->n_paths && st == APR_OK; i++) {
        const char *path = sc->paths[i];
        const char *base = strrchr(path, '/') + 1;
        bool want = registry_wanted(list, base, strlen(base) - 3);
        struct stat sb;
        const plugin_cache_entry *ce = !want && stat(path, &sb) == 0 ? plugin_cache_find(sc->cache, path, &sb) : NULL;
        if (ce && ce->name[0]) want = registry_wanted(list, ce->name, strlen(ce->name));
        if (!want) continue;
        sc->taken[i] = true;
        st = registry_append(sc, path, err);
    }
    if (st == APR_OK && registry_all_usable(sc->reg, list))
        for (size_t i = 0; i < sc->n_paths; i++) sc->taken[i] = true;
    return st;
}

/* Points stdout at /dev/null while plugins load, so that a constructor's output cannot reach the
 * tool's (a --json document, say); returns the saved descriptor, or -1 when nothing was redirected. */
static int registry_quiet_begin(void) {
    fflush(stdout);
    int saved = fcntl(1, F_DUPFD_CLOEXEC, 3);
    if (saved < 0) return -1;
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 1) < 0) {
        if (null >= 0) close(null);
        close(saved);
        return -1;
    }
    close(null);
    return saved;
}

static void registry_quiet_end(int saved) {
    if (saved < 0) return;
    fflush(stdout); /* what a plugin left in stdio's buffer goes to /dev/null too */
    dup2(saved, 1);
    close(saved);
}

static apr_status registry_scan_all(registry_scan *sc, const apr_registry_options *opts, apr_error *err) {
    apr_status st = APR_OK;
    /* a setuid or setgid program ignores the variable: the invoking user must not choose its code */
    const char *env = opts && opts->plugin_path ? opts->plugin_path : secure_getenv("APR_PLUGIN_PATH");
    if (env && *env) {
        char *copy = strdup(env);
        if (!copy) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        char *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir && st == APR_OK; dir = strtok_r(NULL, ":", &save))
            st = registry_add_dir(sc, dir, err);
        free(copy);
    }
    char dir[4096];
    if (st == APR_OK && !(opts && opts->skip_default_dir) && registry_default_dir(dir, sizeof dir))
        st = registry_add_dir(sc, dir, err);
    if (st != APR_OK) return st;
    int quiet = registry_quiet_begin();
    const char *list = opts && opts->backends && *opts->backends ? opts->backends : NULL;
    if (list) st = registry_load_wanted(sc, list, err);
    for (size_t i = 0; i < sc->n_paths && st == APR_OK; i++)
        if (!sc->taken[i]) st = registry_append(sc, sc->paths[i], err);
    registry_quiet_end(quiet);
    return st;
}

APR_API apr_status apr_registry_open(const apr_registry_options *opts, apr_registry **out, apr_error *err) {
    *out = NULL;
    apr_registry *reg = calloc(1, sizeof *reg);
    if (!reg) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    apr_status st = apr_host_query(&reg->host, err);
    if (st != APR_OK) { apr_registry_close(reg); return st; }
    reg->search_path = calloc(1, 1);
    if (!reg->search_path) { apr_registry_close(reg); return apr_error_set(err, APR_ERR_NOMEM, "out of memory"); }
    registry_scan sc = {.reg = reg, .timeout_s = plugin_trial_timeout(),
                        .cache = plugin_cache_open(plugin_cache_machine(reg->host.cpu_model, reg->host.cpu_features))};
    st = registry_scan_all(&sc, opts, err);
    plugin_cache_close(sc.cache);
    for (size_t i = 0; i < sc.n_paths; i++) free(sc.paths[i]);
    free(sc.paths);
    free(sc.taken);
    if (st != APR_OK) { apr_registry_close(reg); return st; }
    for (int i = 0; i < reg->n_slots; i++) {
        apr_plugin_slot *s = &reg->slots[i];
        s->rec.name = s->name;
        s->rec.path = s->path;
        s->rec.state = s->api ? APR_PLUGIN_OK : APR_PLUGIN_REJECTED;
        s->rec.reason = s->reason;
        s->rec.features = s->features;
        s->rec.description = s->description;
    }
    *out = reg;
    return APR_OK;
}
APR_API void apr_registry_close(apr_registry *reg) {
    if (!reg) return;
    for (int i = 0; i < reg->n_slots; i++) {
        if (reg->slots[i].dl) dlclose(reg->slots[i].dl);
        free(reg->slots[i].path);
    }
    free(reg->slots);
    free(reg->search_path);
    free(reg);
}

APR_API int apr_registry_count(const apr_registry *reg) { return reg->n_slots; }

APR_API const apr_plugin_record *apr_registry_record(const apr_registry *reg, int i) {
    return (i >= 0 && i < reg->n_slots) ? &reg->slots[i].rec : NULL;
}

APR_API const apr_host_info *apr_registry_host(const apr_registry *reg) { return &reg->host; }

APR_API const char *apr_registry_search_path(const apr_registry *reg) { return reg->search_path; }

APR_API const char *apr_registry_default(const apr_registry *reg) {
    const apr_plugin_slot *best = NULL;
    for (int i = 0; i < reg->n_slots; i++)
        if (reg->slots[i].api && (!best || reg->slots[i].rec.score > best->rec.score)) best = &reg->slots[i];
    return best ? best->name : NULL;
}

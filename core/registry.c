/* registry.c — finds plugin files, checks and loads them, probes them, and records every verdict. */
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__)
#define REGISTRY_ELF_MACHINE EM_X86_64
#define REGISTRY_ARCH_NAME "x86-64"
#elif defined(__aarch64__)
#define REGISTRY_ELF_MACHINE EM_AARCH64
#define REGISTRY_ARCH_NAME "aarch64"
#else
#define REGISTRY_ELF_MACHINE EM_NONE
#define REGISTRY_ARCH_NAME "this architecture"
#endif

static const char *registry_machine_name(unsigned m) {
    switch (m) {
    case EM_X86_64: return "x86-64";
    case EM_AARCH64: return "aarch64";
    case EM_386: return "i386";
    case EM_ARM: return "32-bit arm";
    case EM_RISCV: return "riscv";
    case EM_PPC64: return "ppc64";
    case EM_S390: return "s390";
    default: return NULL;
    }
}

/* Reads the ELF header so that the common mistakes get a precise reason before dlopen. */
static bool registry_check_elf(const char *path, char *why, size_t why_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_size, "cannot open: %s", strerror(errno));
        return false;
    }
    unsigned char h[64] = {0};
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n < 20 || memcmp(h, ELFMAG, SELFMAG) != 0) {
        snprintf(why, why_size, "not an ELF shared object (%s)", n < 4 ? "file too short" : "bad magic bytes");
        return false;
    }
    if (h[EI_CLASS] != ELFCLASS64) {
        snprintf(why, why_size, "32-bit ELF file; this machine needs 64-bit %s", REGISTRY_ARCH_NAME);
        return false;
    }
    if (h[EI_DATA] != ELFDATA2LSB) {
        snprintf(why, why_size, "big-endian ELF file; this machine is little-endian");
        return false;
    }
    unsigned type = (unsigned)h[16] | (unsigned)h[17] << 8;
    unsigned machine = (unsigned)h[18] | (unsigned)h[19] << 8;
    if (machine != REGISTRY_ELF_MACHINE) {
        const char *name = registry_machine_name(machine);
        if (name) snprintf(why, why_size, "wrong architecture: built for %s, this machine is %s", name, REGISTRY_ARCH_NAME);
        else snprintf(why, why_size, "wrong architecture: ELF machine %u, this machine is %s", machine, REGISTRY_ARCH_NAME);
        return false;
    }
    if (type != ET_DYN) {
        snprintf(why, why_size, "not a shared object (ELF type %u)", type);
        return false;
    }
    return true;
}

/* Opens one file and fills the slot; returns true when the plugin is usable. */
static bool registry_load(apr_registry *reg, apr_plugin_slot *s) {
    if (!registry_check_elf(s->path, s->reason, sizeof s->reason)) return false;
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
    apr_status st = entry(APR_ABI_VERSION, &api, msg, sizeof msg);
    if (st != APR_OK || !api) {
        snprintf(s->reason, sizeof s->reason, "plugin refused core ABI %d: %s", APR_ABI_VERSION,
                 msg[0] ? msg : apr_status_name(st));
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
    if (api->name) snprintf(s->name, sizeof s->name, "%s", api->name);
    snprintf(s->plugin_name, sizeof s->plugin_name, "%s", s->name);
    if (api->description) snprintf(s->description, sizeof s->description, "%s", api->description);
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
    st = api->probe(&reg->host, &pr, msg, sizeof msg);
    pr.reason[sizeof pr.reason - 1] = 0;
    pr.features[sizeof pr.features - 1] = 0;
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
    apr_status st = s->api->probe_device(&reg->host, (uint32_t)d, &pr, msg, sizeof msg);
    pr.reason[sizeof pr.reason - 1] = 0;
    pr.features[sizeof pr.features - 1] = 0;
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

static int registry_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static apr_status registry_append(apr_registry *reg, const char *path, apr_error *err) {
    apr_plugin_slot *slots = realloc(reg->slots, (size_t)(reg->n_slots + 1) * sizeof *slots);
    if (!slots) return apr_error_set(err, APR_ERR_NOMEM, "out of memory listing plugins");
    reg->slots = slots;
    apr_plugin_slot *s = &slots[reg->n_slots];
    memset(s, 0, sizeof *s);
    s->path = strdup(path);
    if (!s->path) return apr_error_set(err, APR_ERR_NOMEM, "out of memory listing plugins");
    reg->n_slots++;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(s->name, sizeof s->name, "%.*s", (int)(strlen(base) > 3 ? strlen(base) - 3 : strlen(base)), base);
    snprintf(s->plugin_name, sizeof s->plugin_name, "%s", s->name);
    s->rec.device = -1;
    if (registry_load(reg, s) && s->rec.device > 0) return registry_devices(reg, reg->n_slots - 1, err);
    if (s->rec.device > 0) s->rec.device = -1;
    return APR_OK;
}

/* Scans one directory; a missing directory is not an error (the default may not exist yet). */
static apr_status registry_scan_dir(apr_registry *reg, const char *dir, apr_error *err) {
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
        if (st == APR_OK) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            st = registry_append(reg, path, err);
        }
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

static apr_status registry_add_dir(apr_registry *reg, const char *dir, apr_error *err) {
    size_t old = reg->search_path ? strlen(reg->search_path) : 0;
    char *p = realloc(reg->search_path, old + strlen(dir) + 2);
    if (!p) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    if (old) p[old++] = ':';
    strcpy(p + old, dir);
    reg->search_path = p;
    return registry_scan_dir(reg, dir, err);
}

APR_API apr_status apr_registry_open(const apr_registry_options *opts, apr_registry **out, apr_error *err) {
    *out = NULL;
    apr_registry *reg = calloc(1, sizeof *reg);
    if (!reg) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    apr_status st = apr_host_query(&reg->host, err);
    if (st != APR_OK) { apr_registry_close(reg); return st; }
    reg->search_path = calloc(1, 1);
    const char *env = opts && opts->plugin_path ? opts->plugin_path : getenv("APR_PLUGIN_PATH");
    if (env && *env) {
        char *copy = strdup(env);
        if (!copy) { apr_registry_close(reg); return apr_error_set(err, APR_ERR_NOMEM, "out of memory"); }
        char *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir && st == APR_OK; dir = strtok_r(NULL, ":", &save))
            st = registry_add_dir(reg, dir, err);
        free(copy);
    }
    char dir[4096];
    if (st == APR_OK && !(opts && opts->skip_default_dir) && registry_default_dir(dir, sizeof dir))
        st = registry_add_dir(reg, dir, err);
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

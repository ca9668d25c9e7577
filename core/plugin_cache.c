/* plugin_cache.c — the verdicts of plugin trials, one line per file, in the user's cache directory.
 *
 * Format: a header "apr-plugin-cache 2 abi N", then per file "DEV INO SIZE MTIME_S MTIME_NS MACHINE
 * ok|bad<TAB>NAME<TAB>PATH<TAB>REASON" (MACHINE in hex). Any line that does not parse discards the
 * whole file; it is rewritten through a temporary file renamed into place. */
#include "plugin_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "apr/apr_abi.h"

#define CACHE_MAX_ENTRIES 256
#define CACHE_MAX_BYTES (1 << 20)
#define CACHE_MAGIC "apr-plugin-cache 2 abi"

struct plugin_cache {
    char dir[4096];
    unsigned long long machine;
    plugin_cache_entry *e; /* [n], oldest first */
    int n;
    bool dirty;
};

static void cache_clear(plugin_cache *c) {
    for (int i = 0; i < c->n; i++) free(c->e[i].path);
    free(c->e);
    c->e = NULL;
    c->n = 0;
}

/* A field fit for one line of the file: no tab, newline or other control byte. */
static bool cache_clean(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

static bool cache_add(plugin_cache *c, const plugin_cache_entry *src) {
    if (c->n == CACHE_MAX_ENTRIES) { /* the oldest goes */
        free(c->e[0].path);
        memmove(c->e, c->e + 1, (size_t)(c->n - 1) * sizeof *c->e);
        c->n--;
    }
    plugin_cache_entry *ne = realloc(c->e, (size_t)(c->n + 1) * sizeof *ne);
    if (!ne) return false;
    c->e = ne;
    ne[c->n] = *src;
    if (!(ne[c->n].path = strdup(src->path))) return false;
    c->n++;
    return true;
}

/* Splits the next tab-separated field off *s (the last one runs to the end). */
static char *cache_field(char **s) {
    char *f = *s;
    if (!f) return NULL;
    char *tab = strchr(f, '\t');
    if (tab) {
        *tab = 0;
        *s = tab + 1;
    } else {
        *s = NULL;
    }
    return f;
}

static bool cache_parse_line(plugin_cache *c, char *line) {
    plugin_cache_entry e;
    memset(&e, 0, sizeof e);
    char verdict[8];
    int used = 0;
    if (sscanf(line, "%llu %llu %llu %llu %llu %llx %7s%n", &e.dev, &e.ino, &e.size, &e.mtime_s, &e.mtime_ns, &e.machine,
               verdict, &used) != 7)
        return false;
    if (line[used] != '\t') return false;
    if (!strcmp(verdict, "ok")) e.ok = true;
    else if (strcmp(verdict, "bad") != 0) return false;
    char *rest = line + used + 1;
    char *name = cache_field(&rest), *path = cache_field(&rest), *reason = cache_field(&rest);
    if (!name || !path || !reason || path[0] != '/' || strlen(name) >= sizeof e.name || strlen(reason) >= sizeof e.reason)
        return false;
    snprintf(e.name, sizeof e.name, "%s", name);
    snprintf(e.reason, sizeof e.reason, "%s", reason);
    if (!e.ok && !e.reason[0]) return false;
    e.path = path;
    return cache_add(c, &e);
}

static void cache_read(plugin_cache *c) {
    char path[4200];
    snprintf(path, sizeof path, "%s/plugins", c->dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *buf = malloc(CACHE_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, CACHE_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!buf) return;
    bool good = n > 0 && n <= CACHE_MAX_BYTES && buf[n - 1] == '\n' && memchr(buf, 0, n) == NULL;
    if (good) {
        buf[n] = 0;
        char *save = NULL;
        char *line = strtok_r(buf, "\n", &save);
        char magic[64];
        snprintf(magic, sizeof magic, "%s %d", CACHE_MAGIC, APR_ABI_VERSION);
        good = line && !strcmp(line, magic);
        while (good && (line = strtok_r(NULL, "\n", &save))) good = cache_parse_line(c, line);
    }
    if (!good) cache_clear(c); /* corrupt, or of another core: every file is tried again */
    free(buf);
}

static bool cache_dir(char *out, size_t size) {
    const char *xdg = secure_getenv("XDG_CACHE_HOME");
    if (xdg && xdg[0] == '/') {
        snprintf(out, size, "%s/apr", xdg);
        return strlen(out) + 32 < size;
    }
    const char *home = secure_getenv("HOME");
    if (!home || home[0] != '/') return false;
    snprintf(out, size, "%s/.cache/apr", home);
    return strlen(out) + 32 < size;
}

unsigned long long plugin_cache_machine(const char *cpu_model, const char *cpu_features) {
    unsigned long long h = 14695981039346656037ull; /* FNV-1a */
    for (const char *s = cpu_model; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *s = cpu_features; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

plugin_cache *plugin_cache_open(unsigned long long machine) {
    if (getauxval(AT_SECURE)) return NULL; /* setuid or setgid: the invoking user's files are not trusted */
    plugin_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->machine = machine;
    if (!cache_dir(c->dir, sizeof c->dir)) {
        free(c);
        return NULL;
    }
    cache_read(c);
    return c;
}

static bool cache_matches(const plugin_cache_entry *e, const struct stat *st) {
    return e->dev == (unsigned long long)st->st_dev && e->ino == (unsigned long long)st->st_ino &&
           e->size == (unsigned long long)st->st_size && e->mtime_s == (unsigned long long)st->st_mtim.tv_sec &&
           e->mtime_ns == (unsigned long long)st->st_mtim.tv_nsec;
}

const plugin_cache_entry *plugin_cache_find(const plugin_cache *c, const char *path, const struct stat *st) {
    if (!c) return NULL;
    for (int i = c->n - 1; i >= 0; i--)
        if (c->e[i].machine == c->machine && !strcmp(c->e[i].path, path))
            return cache_matches(&c->e[i], st) ? &c->e[i] : NULL;
    return NULL;
}

void plugin_cache_put(plugin_cache *c, const char *path, const struct stat *st, bool ok, const char *name,
                      const char *reason) {
    if (!c || path[0] != '/' || !cache_clean(path) || !cache_clean(name) || !cache_clean(reason)) return;
    for (int i = 0; i < c->n; i++)
        if (c->e[i].machine == c->machine && !strcmp(c->e[i].path, path)) {
            free(c->e[i].path);
            memmove(c->e + i, c->e + i + 1, (size_t)(c->n - i - 1) * sizeof *c->e);
            c->n--;
            break;
        }
    plugin_cache_entry e;
    memset(&e, 0, sizeof e);
    e.path = (char *)path;
    e.dev = (unsigned long long)st->st_dev;
    e.ino = (unsigned long long)st->st_ino;
    e.size = (unsigned long long)st->st_size;
    e.mtime_s = (unsigned long long)st->st_mtim.tv_sec;
    e.mtime_ns = (unsigned long long)st->st_mtim.tv_nsec;
    e.machine = c->machine;
    e.ok = ok;
    snprintf(e.name, sizeof e.name, "%s", name);
    snprintf(e.reason, sizeof e.reason, "%s", reason);
    if (cache_add(c, &e)) c->dirty = true;
}

/* mkdir -p for the cache directory, private to the user. */
static bool cache_mkdirs(char *dir) {
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int r = mkdir(dir, 0700);
        *p = '/';
        if (r != 0 && errno != EEXIST) return false;
    }
    return mkdir(dir, 0700) == 0 || errno == EEXIST;
}

static void cache_write(plugin_cache *c) {
    if (!cache_mkdirs(c->dir)) return;
    char tmp[4200], path[4200];
    snprintf(tmp, sizeof tmp, "%s/plugins.XXXXXX", c->dir);
    snprintf(path, sizeof path, "%s/plugins", c->dir);
    int fd = mkstemp(tmp);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return;
    }
    fprintf(f, "%s %d\n", CACHE_MAGIC, APR_ABI_VERSION);
    for (int i = 0; i < c->n; i++) {
        const plugin_cache_entry *e = &c->e[i];
        struct stat sb;
        if (stat(e->path, &sb) != 0 && errno == ENOENT) continue; /* a file gone (a test's temporary one) */
        fprintf(f, "%llu %llu %llu %llu %llu %llx %s\t%s\t%s\t%s\n", e->dev, e->ino, e->size, e->mtime_s, e->mtime_ns,
                e->machine, e->ok ? "ok" : "bad", e->name, e->path, e->reason);
    }
    bool bad = fflush(f) != 0 || ferror(f);
    if (fclose(f) != 0) bad = true;
    if (bad || rename(tmp, path) != 0) unlink(tmp);
}

void plugin_cache_close(plugin_cache *c) {
    if (!c) return;
    if (c->dirty) cache_write(c);
    cache_clear(c);
    free(c);
}

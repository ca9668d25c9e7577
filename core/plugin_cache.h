/* plugin_cache.h — remembers, per plugin file, the verdict of its trial in a child process, so that
 * later starts neither fork nor load a file that crashed. */
#ifndef APR_CORE_PLUGIN_CACHE_H
#define APR_CORE_PLUGIN_CACHE_H

#include <stdbool.h>
#include <sys/stat.h>

/* One file's verdict. A file is known by its path, device, inode, size and modification time, so a
 * rebuilt or replaced file is tried again, and a verdict holds for one kind of machine (its CPU model
 * and features: a home shared between machines, or qemu's CPU models, keeps one per kind). */
typedef struct plugin_cache_entry {
    char *path;
    unsigned long long dev, ino, size, mtime_s, mtime_ns;
    unsigned long long machine; /* plugin_cache_machine of the host that judged it */
    bool ok;          /* the trial finished; otherwise reason says how it died */
    char name[64];    /* the plugin's name as the trial reported it ("" if unknown) */
    char reason[256];
} plugin_cache_entry;

typedef struct plugin_cache plugin_cache;

/* Reads $XDG_CACHE_HOME/apr/plugins (or ~/.cache/apr/plugins) for a machine of kind machine; an
 * unreadable or corrupt file gives an empty cache. NULL when the process runs with elevated
 * privileges (the cache is never trusted then) or no cache directory can be named. */
plugin_cache *plugin_cache_open(unsigned long long machine);
/* A number naming the kind of machine: a hash of the CPU model and features. */
unsigned long long plugin_cache_machine(const char *cpu_model, const char *cpu_features);
/* The entry for path on this kind of machine whose identity matches st, or NULL. cache may be NULL. */
const plugin_cache_entry *plugin_cache_find(const plugin_cache *cache, const char *path, const struct stat *st);
/* Records a verdict, replacing any entry for path on this kind of machine. Paths or names that
 * would break a line are not kept. */
void plugin_cache_put(plugin_cache *cache, const char *path, const struct stat *st, bool ok, const char *name,
                      const char *reason);
/* Writes the cache if something was put (a temporary file renamed into place), then frees it. */
void plugin_cache_close(plugin_cache *cache);

#endif

/* plugin_cache.h — remembers, per plugin file, the verdict of its trial in a child process, so that
 * later starts neither fork nor load a file that crashed. */
#ifndef APR_CORE_PLUGIN_CACHE_H
#define APR_CORE_PLUGIN_CACHE_H

#include <stdbool.h>
#include <sys/stat.h>

/* One file's verdict. A file is known by its path, device, inode, size and modification time, so a
 * rebuilt or replaced file is tried again. */
typedef struct plugin_cache_entry {
    char *path;
    unsigned long long dev, ino, size, mtime_s, mtime_ns;
    bool ok;          /* the trial finished; otherwise reason says how it died */
    char name[64];    /* the plugin's name as the trial reported it ("" if unknown) */
    char reason[256];
} plugin_cache_entry;

typedef struct plugin_cache plugin_cache;

/* Reads $XDG_CACHE_HOME/apr/plugins (or ~/.cache/apr/plugins); an unreadable or corrupt file gives
 * an empty cache. NULL when the process runs with elevated privileges (the cache is never trusted
 * then) or no cache directory can be named. */
plugin_cache *plugin_cache_open(void);
/* The entry for path whose identity matches st, or NULL. cache may be NULL. */
const plugin_cache_entry *plugin_cache_find(const plugin_cache *cache, const char *path, const struct stat *st);
/* Records a verdict, replacing any entry for path. Paths or names that would break a line are not kept. */
void plugin_cache_put(plugin_cache *cache, const char *path, const struct stat *st, bool ok, const char *name,
                      const char *reason);
/* Writes the cache if something was put (a temporary file renamed into place), then frees it. */
void plugin_cache_close(plugin_cache *cache);

#endif

/* vk_cache.c — the pipeline cache on disk, so that the driver compiles each kernel once per
 * machine: $XDG_CACHE_HOME/apr (else ~/.cache/apr) holds one file per device, driver and plugin
 * build, read when a backend is created and rewritten atomically when it made new pipelines. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vk_internal.h"

/* The plugin build: a hash of every kernel's SPIR-V, so a rebuilt plugin never reads an old cache. */
static uint64_t vkcache_build_hash(void) {
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (int k = 0; k < vk_kernel_count; k++) {
        const unsigned char *p = (const unsigned char *)vk_kernels[k].spirv;
        for (size_t i = 0; i < vk_kernels[k].spirv_size; i++) h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

bool vkcache_path(const vk_device_info *d, char *out, size_t size) {
    if (getauxval(AT_SECURE)) return false; /* setuid or setgid: the invoking user's files are not trusted */
    const char *xdg = secure_getenv("XDG_CACHE_HOME"), *home = secure_getenv("HOME");
    char dir[4096];
    if (xdg && xdg[0] == '/') snprintf(dir, sizeof dir, "%s/apr", xdg);
    else if (home && home[0] == '/') snprintf(dir, sizeof dir, "%s/.cache/apr", home);
    else return false;
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++) snprintf(uuid + 2 * i, 3, "%02x", d->cache_uuid[i]);
    int n = snprintf(out, size, "%s/vulkan-%04x-%04x-%08x-%s-%016llx.pipelines", dir, d->vendor_id, d->device_id,
                     d->driver_version, uuid, (unsigned long long)vkcache_build_hash());
    return n > 0 && (size_t)n < size;
}

void *vkcache_load(const char *path, size_t *size) {
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return NULL;
    struct stat sb;
    void *data = NULL;
    if (!fstat(fd, &sb) && S_ISREG(sb.st_mode) && sb.st_size > 0 && sb.st_size < (64 << 20)) {
        data = malloc((size_t)sb.st_size);
        if (data && read(fd, data, (size_t)sb.st_size) == sb.st_size) *size = (size_t)sb.st_size;
        else free(data), data = NULL;
    }
    close(fd);
    return data;
}

/* mkdir -p of path's parent directories. */
static void vkcache_mkdirs(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0700);
            *p = '/';
        }
}

void vkcache_save(const char *path, const void *data, size_t size) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    vkcache_mkdirs(path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return; /* a cache that cannot be written costs time on the next start, nothing else */
    bool ok = write(fd, data, size) == (ssize_t)size && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

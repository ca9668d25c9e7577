/* plugin_file.h — checks a plugin file before anything opens it as a library. */
#ifndef APR_CORE_PLUGIN_FILE_H
#define APR_CORE_PLUGIN_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* True when path is a regular file holding a 64-bit ELF shared object of this machine's
 * architecture; *st then identifies it (the plugin cache's key). Anything else (a FIFO, a directory,
 * text, another architecture) is false with why filled, and a file that is not regular is never opened. */
bool plugin_file_check(const char *path, struct stat *st, char *why, size_t why_size);

#endif

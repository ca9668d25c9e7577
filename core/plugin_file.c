/* plugin_file.c — the checks a plugin file passes before dlopen: a regular file, then its ELF header. */
#include "plugin_file.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#define FILE_ELF_MACHINE EM_X86_64
#define FILE_ARCH_NAME "x86-64"
#elif defined(__aarch64__)
#define FILE_ELF_MACHINE EM_AARCH64
#define FILE_ARCH_NAME "aarch64"
#else
#define FILE_ELF_MACHINE EM_NONE
#define FILE_ARCH_NAME "this architecture"
#endif

static const char *file_machine_name(unsigned m) {
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

static const char *file_kind(mode_t m) {
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "of an unknown kind";
}

/* The common mistakes get a precise reason from the ELF header before dlopen. */
static bool file_check_elf(const unsigned char *h, size_t n, char *why, size_t why_size) {
    if (n < 20 || memcmp(h, ELFMAG, SELFMAG) != 0) {
        snprintf(why, why_size, "not an ELF shared object (%s)", n < 4 ? "file too short" : "bad magic bytes");
        return false;
    }
    if (h[EI_CLASS] != ELFCLASS64) {
        snprintf(why, why_size, "32-bit ELF file; this machine needs 64-bit %s", FILE_ARCH_NAME);
        return false;
    }
    if (h[EI_DATA] != ELFDATA2LSB) {
        snprintf(why, why_size, "big-endian ELF file; this machine is little-endian");
        return false;
    }
    unsigned type = (unsigned)h[16] | (unsigned)h[17] << 8;
    unsigned machine = (unsigned)h[18] | (unsigned)h[19] << 8;
    if (machine != FILE_ELF_MACHINE) {
        const char *name = file_machine_name(machine);
        if (name) snprintf(why, why_size, "wrong architecture: built for %s, this machine is %s", name, FILE_ARCH_NAME);
        else snprintf(why, why_size, "wrong architecture: ELF machine %u, this machine is %s", machine, FILE_ARCH_NAME);
        return false;
    }
    if (type != ET_DYN) {
        snprintf(why, why_size, "not a shared object (ELF type %u)", type);
        return false;
    }
    return true;
}

bool plugin_file_check(const char *path, struct stat *st, char *why, size_t why_size) {
    if (stat(path, st) != 0) {
        snprintf(why, why_size, "cannot open: %s", strerror(errno));
        return false;
    }
    if (!S_ISREG(st->st_mode)) { /* opening a FIFO would block, a device could act */
        snprintf(why, why_size, "not a regular file (%s); not opened", file_kind(st->st_mode));
        return false;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, why_size, "cannot open: %s", strerror(errno));
        return false;
    }
    struct stat now;
    if (fstat(fd, &now) != 0 || !S_ISREG(now.st_mode) || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
        close(fd);
        snprintf(why, why_size, "the file changed while it was checked");
        return false;
    }
    *st = now;
    unsigned char h[64] = {0};
    ssize_t n;
    while ((n = read(fd, h, sizeof h)) < 0 && errno == EINTR) {}
    close(fd);
    if (n < 0) {
        snprintf(why, why_size, "cannot read: %s", strerror(errno));
        return false;
    }
    return file_check_elf(h, (size_t)n, why, why_size);
}

/* host_cpu.c — the CPU model and the ISA features that both the CPU and the OS enable. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t host_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void host_add(char *buf, size_t size, const char *feature) {
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "%s%s", len ? " " : "", feature);
}

void apr_host_cpu_identify(apr_host_info *out) {
    unsigned a, b, c, d;
    char brand[49] = {0};
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++) {
            __get_cpuid(0x80000002u + i, &a, &b, &c, &d);
            memcpy(brand + 16 * i, (unsigned[]){a, b, c, d}, 16);
        }
    }
    const char *s = brand;
    while (*s == ' ') s++;
    snprintf(out->cpu_model, sizeof out->cpu_model, "%s", *s ? s : "unknown x86-64");

    char *f = out->cpu_features;
    size_t fs = sizeof out->cpu_features;
    f[0] = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned ecx1 = c, edx1 = d;
    if (edx1 & (1u << 26)) host_add(f, fs, "sse2");
    if (ecx1 & (1u << 0)) host_add(f, fs, "sse3");
    if (ecx1 & (1u << 9)) host_add(f, fs, "ssse3");
    if (ecx1 & (1u << 19)) host_add(f, fs, "sse4.1");
    if (ecx1 & (1u << 20)) host_add(f, fs, "sse4.2");
    /* Vector state must be enabled by the OS (XCR0), or the first ymm/zmm instruction faults. */
    uint64_t xcr0 = (ecx1 & (1u << 27)) ? host_xgetbv0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;
    int os_avx512 = (xcr0 & 0xe6) == 0xe6;
    int os_amx = (xcr0 & 0x60000) == 0x60000;
    if (!os_avx) return;
    if (ecx1 & (1u << 28)) host_add(f, fs, "avx");
    if (ecx1 & (1u << 12)) host_add(f, fs, "fma");
    if (ecx1 & (1u << 29)) host_add(f, fs, "f16c");
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned ebx7 = b, ecx7 = c, edx7 = d;
    __cpuid_count(7, 1, a, b, c, d);
    unsigned eax71 = a;
    if (ebx7 & (1u << 5)) host_add(f, fs, "avx2");
    if (eax71 & (1u << 4)) host_add(f, fs, "avx-vnni");
    if (os_avx512) {
        static const struct { unsigned bit; const char *name; } ebx_bits[] = {
            {16, "avx512f"}, {17, "avx512dq"}, {28, "avx512cd"}, {30, "avx512bw"}, {31, "avx512vl"}};
        for (size_t i = 0; i < sizeof ebx_bits / sizeof *ebx_bits; i++)
            if (ebx7 & (1u << ebx_bits[i].bit)) host_add(f, fs, ebx_bits[i].name);
        if (ecx7 & (1u << 1)) host_add(f, fs, "avx512vbmi");
        if (ecx7 & (1u << 11)) host_add(f, fs, "avx512vnni");
        if (eax71 & (1u << 5)) host_add(f, fs, "avx512bf16");
    }
    if (os_amx) {
        if (edx7 & (1u << 24)) host_add(f, fs, "amx-tile");
        if (edx7 & (1u << 25)) host_add(f, fs, "amx-int8");
        if (edx7 & (1u << 22)) host_add(f, fs, "amx-bf16");
    }
}

#elif defined(__aarch64__)
#include <sys/auxv.h>

void apr_host_cpu_identify(apr_host_info *out) {
    snprintf(out->cpu_model, sizeof out->cpu_model, "aarch64");
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    char *f = out->cpu_features;
    size_t fs = sizeof out->cpu_features;
    f[0] = 0;
    /* Bit numbers from the Linux arm64 ABI (asm/hwcap.h). */
    snprintf(f, fs, "%s%s%s%s%s", (hw & (1ul << 1)) ? "neon" : "", (hw & (1ul << 9)) ? " fp16" : "",
             (hw & (1ul << 20)) ? " dotprod" : "", (hw2 & (1ul << 13)) ? " i8mm" : "",
             (hw2 & (1ul << 14)) ? " bf16" : "");
}

#else
void apr_host_cpu_identify(apr_host_info *out) {
    snprintf(out->cpu_model, sizeof out->cpu_model, "unknown");
    out->cpu_features[0] = 0;
}
#endif

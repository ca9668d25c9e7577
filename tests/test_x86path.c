/* test_x86path.c — the int8 dot-product kernels cpu-avx2 and cpu-avx512 say they will run (the probe's
 * int8dot= feature), checked against cpuid and XCR0 read here, and APR_X86_NO_VNNI switching them off. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr.h"
#include "util/tu_paths.h"

#if defined(__x86_64__)
#include <cpuid.h>

/* What this CPU and OS offer, read independently of the plugins' probe. */
typedef struct xp_cpu {
    int avxvnni, avx512f, avx512vl, avx512vnni, avx512_state;
} xp_cpu;

static xp_cpu xp_read(void) {
    xp_cpu c = {0};
    unsigned a, b, cx, d;
    if (__get_cpuid_max(0, NULL) < 7) return c;
    __cpuid_count(1, 0, a, b, cx, d);
    const int osxsave = (cx >> 27) & 1;
    __cpuid_count(7, 0, a, b, cx, d);
    const unsigned subleaves = a;
    c.avx512f = (b >> 16) & 1;
    c.avx512vl = (b >> 31) & 1;
    c.avx512vnni = (cx >> 11) & 1;
    if (subleaves >= 1) {
        __cpuid_count(7, 1, a, b, cx, d);
        c.avxvnni = (a >> 4) & 1;
    }
    if (osxsave) {
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        c.avx512_state = (lo & 0xe6) == 0xe6;
    }
    return c;
}

/* The int8dot= word a plugin should report: cpu-avx2 prefers AVX-VNNI (VEX), then AVX512-VNNI on
 * ymm (EVEX, needs VL); cpu-avx512 uses AVX512-VNNI on zmm. */
static const char *xp_expected(const char *plugin, const xp_cpu *c) {
    if (!strcmp(plugin, "cpu-avx512")) return c->avx512vnni && c->avx512_state ? "avx512vnni" : "vpmaddubsw";
    if (c->avxvnni) return "avxvnni";
    return c->avx512vnni && c->avx512f && c->avx512vl && c->avx512_state ? "avx512vnni-ymm" : "vpmaddubsw";
}

static apr_registry *xp_open(void) {
    apr_registry_options o = {.plugin_path = tu_test_plugins_dir()};
    apr_registry *reg;
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, &reg, &e), APR_OK, "%s", e.msg);
    return reg;
}

/* The features of the usable plugin named name, or NULL when it is absent or rejected. */
static const char *xp_features(apr_registry *reg, const char *name) {
    for (int i = 0; i < apr_registry_count(reg); i++) {
        const apr_plugin_record *r = apr_registry_record(reg, i);
        if (!strcmp(r->name, name) && r->state == APR_PLUGIN_OK) return r->features;
    }
    return NULL;
}

/* The word after "int8dot=" in features, up to the next space, into out. */
static const char *xp_word(const char *features, char *out, size_t cap) {
    const char *p = strstr(features, "int8dot=");
    if (!p) return NULL;
    p += strlen("int8dot=");
    size_t n = strcspn(p, " ");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
    return out;
}

static const char *const xp_plugins[] = {"cpu-avx2", "cpu-avx512"};

/* Opens the registry with APR_X86_NO_VNNI set or not and checks the int8dot= word of every usable x86
 * plugin: what the CPU allows, or vpmaddubsw (with the reason where the CPU had something faster). */
static void xp_check(int no_vnni) {
    if (no_vnni) setenv("APR_X86_NO_VNNI", "1", 1);
    else unsetenv("APR_X86_NO_VNNI");
    const xp_cpu c = xp_read();
    apr_registry *reg = xp_open();
    int seen = 0;
    for (size_t i = 0; i < sizeof xp_plugins / sizeof *xp_plugins; i++) {
        const char *f = xp_features(reg, xp_plugins[i]);
        if (!f) continue;
        seen++;
        char word[64];
        cr_assert(xp_word(f, word, sizeof word), "%s reports no int8dot= feature: '%s'", xp_plugins[i], f);
        const char *allowed = xp_expected(xp_plugins[i], &c);
        const char *want = !no_vnni ? allowed
                           : strcmp(allowed, "vpmaddubsw") ? "vpmaddubsw(APR_X86_NO_VNNI)" : "vpmaddubsw";
        cr_expect_str_eq(word, want, "%s: features '%s' (cpuid: avxvnni %d, avx512vnni %d, vl %d)", xp_plugins[i], f,
                         c.avxvnni, c.avx512vnni, c.avx512vl);
    }
    apr_registry_close(reg);
    unsetenv("APR_X86_NO_VNNI");
    if (!seen) cr_skip_test("neither cpu-avx2 nor cpu-avx512 is usable on this CPU: nothing to check");
}

Test(x86path, each_x86_plugin_names_the_int8_kernels_this_cpu_allows) { xp_check(0); }

Test(x86path, apr_x86_no_vnni_makes_both_plugins_use_vpmaddubsw_and_says_why) { xp_check(1); }

#else

Test(x86path, x86_only) { cr_skip_test("cpu-avx2 and cpu-avx512 exist only on x86-64"); }

#endif

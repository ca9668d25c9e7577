/* probe.c — cpuid + XCR0 feature probe for the cpu-avx2 / cpu-avx512 variants; compiled for baseline x86-64. */
#include "probe.h"

#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/msg.h"

#ifndef APR_X86_LEVEL
#error "APR_X86_LEVEL must be 2 (avx2) or 3 (avx512)"
#endif

#if APR_X86_LEVEL >= 3
const char probe_name[] = "cpu-avx512";
const char probe_description[] = "x86-64 CPU backend, AVX-512 F/BW/VL kernels, multithreaded";
#else
const char probe_name[] = "cpu-avx2";
const char probe_description[] = "x86-64 CPU backend, AVX2+FMA+F16C kernels, multithreaded";
#endif

/* What cpuid and XCR0 say; nothing here executes a vector instruction. */
typedef struct probe_cpu {
    int osxsave, avx, fma, f16c, avx2;     /* leaf 1 / leaf 7 bits */
    int avx512f, avx512dq, avx512bw, avx512vl, avx512vnni;
    int avxvnni;                           /* leaf 7 subleaf 1, EAX bit 4 */
    uint64_t xcr0;                         /* 0 when OSXSAVE is off (xgetbv would fault) */
} probe_cpu;

static void probe_read(probe_cpu *c) {
    memset(c, 0, sizeof *c);
    unsigned a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return;
    c->osxsave = (cx >> 27) & 1;
    c->avx = (cx >> 28) & 1;
    c->fma = (cx >> 12) & 1;
    c->f16c = (cx >> 29) & 1;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, cx, d);
        c->avx2 = (b >> 5) & 1;
        c->avx512f = (b >> 16) & 1;
        c->avx512dq = (b >> 17) & 1;
        c->avx512bw = (b >> 30) & 1;
        c->avx512vl = (b >> 31) & 1;
        c->avx512vnni = (cx >> 11) & 1;
        if (a >= 1) { /* leaf 7's highest subleaf */
            __cpuid_count(7, 1, a, b, cx, d);
            c->avxvnni = (a >> 4) & 1;
        }
    }
    if (c->osxsave) {
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        c->xcr0 = ((uint64_t)hi << 32) | lo;
    }
}

static int probe_qpath_of(const probe_cpu *c);
static int probe_no_vnni(void);

#define PROBE_XCR0_AVX 0x6ull     /* SSE and AVX (ymm upper halves) state */
#define PROBE_XCR0_AVX512 0xe0ull /* opmask, zmm0-15 upper halves, zmm16-31 */

/* The first missing requirement, or NULL. The ISA flags the Makefile gives this variant are the
 * requirements (avx512 builds with -mavx512dq too, so DQ is required as well). */
static const char *probe_missing(const probe_cpu *c, char *buf, size_t size) {
    if (!c->avx) return "AVX not supported by CPU";
    if (!c->osxsave) return "AVX state not enabled by the OS (OSXSAVE off)";
    if ((c->xcr0 & PROBE_XCR0_AVX) != PROBE_XCR0_AVX) {
        snprintf(buf, size, "AVX state not enabled by the OS (XCR0=0x%llx)", (unsigned long long)c->xcr0);
        return buf;
    }
    if (!c->avx2) return "AVX2 not supported by CPU";
    if (!c->fma) return "FMA not supported by CPU";
    if (!c->f16c) return "F16C not supported by CPU";
#if APR_X86_LEVEL >= 3
    if (!c->avx512f) return "AVX-512F not supported by CPU";
    if (!c->avx512bw) return "AVX-512BW not supported by CPU";
    if (!c->avx512vl) return "AVX-512VL not supported by CPU";
    if (!c->avx512dq) return "AVX-512DQ not supported by CPU";
    if ((c->xcr0 & PROBE_XCR0_AVX512) != PROBE_XCR0_AVX512) {
        snprintf(buf, size, "AVX-512 state not enabled by the OS (XCR0=0x%llx)", (unsigned long long)c->xcr0);
        return buf;
    }
#endif
    return NULL;
}

int probe_usable(char *why, size_t why_size) {
    probe_cpu c;
    char buf[128];
    probe_read(&c);
    const char *miss = probe_missing(&c, buf, sizeof buf);
    if (miss) msg_set(why, why_size, APR_ERR_UNSUPPORTED, "%s", miss);
    return miss == NULL;
}

apr_status probe_run(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size) {
    (void)host;
    if (!out || out->struct_size < offsetof(apr_probe_result, reason))
        return msg_set(err, err_size, APR_ERR_INVALID, "probe: result struct too small");
    probe_cpu c;
    char buf[128], feat[256] = "";
    probe_read(&c);
    const char *miss = probe_missing(&c, buf, sizeof buf);
    int score = 0;
    if (!miss) {
#if APR_X86_LEVEL >= 3
        score = 30 + c.avx512vnni;
        snprintf(feat, sizeof feat, "avx2 fma f16c avx512f avx512bw avx512vl avx512dq%s",
                 c.avx512vnni ? " avx512vnni" : "");
#else
        score = 20;
        snprintf(feat, sizeof feat, "avx2 fma f16c%s%s", c.avxvnni ? " avxvnni" : "",
                 c.avx512vnni && c.avx512vl ? " avx512vnni avx512vl" : "");
#endif
        /* which int8 kernels quantized matmuls will run, and why not the faster ones */
        const int qp = probe_no_vnni() ? X86_QDOT_PLAIN : probe_qpath_of(&c);
        const size_t used = strlen(feat);
        snprintf(feat + used, sizeof feat - used, " int8dot=%s%s", probe_qpath_name(qp),
                 qp == X86_QDOT_PLAIN && probe_qpath_of(&c) != X86_QDOT_PLAIN ? "(APR_X86_NO_VNNI)" : "");
    }
    out->score = score;
    /* write only the fields that fit in the caller's struct */
    if (out->struct_size >= offsetof(apr_probe_result, features)) {
        if (miss) snprintf(out->reason, sizeof out->reason, "%s", miss);
        else snprintf(out->reason, sizeof out->reason, "%s supported by CPU and enabled by the OS (XCR0=0x%llx)",
                      APR_X86_LEVEL >= 3 ? "AVX-512 F/BW/VL/DQ" : "AVX2+FMA+F16C", (unsigned long long)c.xcr0);
    }
    if (out->struct_size >= sizeof(apr_probe_result)) snprintf(out->features, sizeof out->features, "%s", feat);
    return APR_OK;
}

/* The qpath this CPU and OS allow, ignoring APR_X86_NO_VNNI. */
static int probe_qpath_of(const probe_cpu *c) {
    const int avx512_state = (c->xcr0 & PROBE_XCR0_AVX512) == PROBE_XCR0_AVX512;
#if APR_X86_LEVEL >= 3
    return c->avx512vnni && avx512_state ? X86_QDOT_VNNI : X86_QDOT_PLAIN;
#else
    if (c->avxvnni) return X86_QDOT_AVXVNNI;
    return c->avx512vnni && c->avx512f && c->avx512vl && avx512_state ? X86_QDOT_VNNI : X86_QDOT_PLAIN;
#endif
}

/* APR_X86_NO_VNNI=1 forces the vpmaddubsw kernels, so tests can cover both paths on one machine */
static int probe_no_vnni(void) {
    const char *no_vnni = getenv("APR_X86_NO_VNNI");
    return no_vnni && *no_vnni && strcmp(no_vnni, "0") != 0;
}

const char *probe_qpath_name(int qpath) {
    switch (qpath) {
    case X86_QDOT_AVXVNNI: return "avxvnni";
    case X86_QDOT_VNNI: return APR_X86_LEVEL >= 3 ? "avx512vnni" : "avx512vnni-ymm";
    default: return "vpmaddubsw";
    }
}

int probe_qpath(void) {
    probe_cpu c;
    probe_read(&c);
    return probe_no_vnni() ? X86_QDOT_PLAIN : probe_qpath_of(&c);
}

/* probe.c — HWCAP/HWCAP2 feature probe for cpu-neon (the aarch64 twin of cpu-x86's cpuid + XCR0 probe). */
#include "probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/msg.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

const char probe_name[] = "cpu-neon";
const char probe_description[] =
    "aarch64 CPU backend, NEON kernels (int8 dot products: sdot / smmla where HWCAP has them), multithreaded";

/* Bit numbers of the Linux arm64 ABI (arch/arm64/include/uapi/asm/hwcap.h); spelled out so the
 * probe builds against any libc headers. */
#define PROBE_HWCAP_ASIMD (1ul << 1)
#define PROBE_HWCAP_FPHP (1ul << 9)
#define PROBE_HWCAP_ASIMDHP (1ul << 10)
#define PROBE_HWCAP_ASIMDDP (1ul << 20)
#define PROBE_HWCAP2_I8MM (1ul << 13)

void probe_read(probe_caps *c) {
    memset(c, 0, sizeof *c);
#if defined(__aarch64__) && defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    c->asimd = (hw & PROBE_HWCAP_ASIMD) != 0;
    c->fphp = (hw & PROBE_HWCAP_FPHP) != 0;
    c->asimdhp = (hw & PROBE_HWCAP_ASIMDHP) != 0;
    c->dotprod = (hw & PROBE_HWCAP_ASIMDDP) != 0;
    c->i8mm = (hw2 & PROBE_HWCAP2_I8MM) != 0;
#endif
}

int probe_usable(char *why, size_t why_size) {
    probe_caps c;
    probe_read(&c);
    if (!c.asimd) msg_set(why, why_size, APR_ERR_UNSUPPORTED, "Advanced SIMD (asimd) not reported by the kernel (HWCAP)");
    return c.asimd;
}

apr_status probe_run(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size) {
    if (!out || out->struct_size < offsetof(apr_probe_result, reason))
        return msg_set(err, err_size, APR_ERR_INVALID, "probe: result struct too small");
    probe_caps c;
    probe_read(&c);
    char feat[256] = "";
    if (c.asimd)
        snprintf(feat, sizeof feat, "asimd%s%s%s%s", c.fphp ? " fphp" : "", c.asimdhp ? " asimdhp" : "",
                 c.dotprod ? " asimddp" : "", c.i8mm ? " i8mm" : "");
    out->score = c.asimd ? 20 + c.dotprod + c.i8mm : 0;
    if (out->struct_size >= offsetof(apr_probe_result, features)) {
        /* the core's hwloc view of the host, when it handed one over */
        char where[96] = "";
        if (host && host->struct_size >= offsetof(apr_host_info, cpu_features) && host->n_physical_cores > 0)
            snprintf(where, sizeof where, " on %d cores (%.60s)", (int)host->n_physical_cores, host->cpu_model);
        if (!c.asimd) snprintf(out->reason, sizeof out->reason, "Advanced SIMD (asimd) not reported by the kernel (HWCAP)");
        else
            snprintf(out->reason, sizeof out->reason, "asimd reported by HWCAP%s; int8 dot products: %s%s",
                     where, c.i8mm ? "i8mm (smmla)" : c.dotprod ? "dotprod (sdot)" : "plain NEON (smull)",
                     c.i8mm && c.dotprod ? " + dotprod" : "");
    }
    if (out->struct_size >= sizeof(apr_probe_result)) snprintf(out->features, sizeof out->features, "%s", feat);
    return APR_OK;
}

int probe_qpath(void) {
    /* the best int8 path HWCAP allows; APR_NEON_QDOT=plain|dotprod caps it, so tests can cover
     * every path on one machine (it never enables what the CPU lacks) */
    probe_caps caps;
    probe_read(&caps);
    int qpath = caps.i8mm && caps.dotprod ? NEON_QDOT_I8MM : caps.dotprod ? NEON_QDOT_DOTPROD : NEON_QDOT_PLAIN;
    const char *cap = getenv("APR_NEON_QDOT");
    if (cap && !strcmp(cap, "plain")) qpath = NEON_QDOT_PLAIN;
    else if (cap && !strcmp(cap, "dotprod") && qpath > NEON_QDOT_DOTPROD) qpath = NEON_QDOT_DOTPROD;
    return qpath;
}

/* probe.h — what this CPU and kernel offer cpu-neon, read from the auxiliary vector (HWCAP/HWCAP2); no vector instructions. */
#ifndef APR_NEON_PROBE_H
#define APR_NEON_PROBE_H

#include <stddef.h>

#include "apr/apr_abi.h"

/* The features cpu-neon cares about, as Linux reports them (getauxval), never by trying an
 * instruction. */
typedef struct probe_caps {
    int asimd;   /* HWCAP_ASIMD: Advanced SIMD (required) */
    int fphp;    /* HWCAP_FPHP / HWCAP_ASIMDHP: half-precision arithmetic (reported; conversions are baseline) */
    int asimdhp;
    int dotprod; /* HWCAP_ASIMDDP: SDOT/UDOT (vdotq_s32) */
    int i8mm;    /* HWCAP2_I8MM: SMMLA (vmmlaq_s32) */
} probe_caps;

void probe_read(probe_caps *c);

/* The probe slot: score 20 (+1 with dotprod, +1 with i8mm), or 0 without asimd, with what was
 * found in features and the host's model. */
apr_status probe_run(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size);
/* 1 when cpu-neon can run here; else 0 and the reason in why. */
int probe_usable(char *why, size_t why_size);

#endif

/* probe.h — what this CPU and kernel offer cpu-neon, read from the auxiliary vector (HWCAP/HWCAP2); no vector instructions. */
#ifndef APR_NEON_PROBE_H
#define APR_NEON_PROBE_H

#include <stddef.h>

#include "apr/apr_abi.h"
#include "../common/cpu_probe.h"

/* The int8 dot-product paths (probe_qpath, cpu_backend.qpath), from the most widely available up. */
#define NEON_QDOT_PLAIN 0   /* smull + sadalp: every AArch64 CPU */
#define NEON_QDOT_DOTPROD 1 /* sdot (vdotq_s32): HWCAP_ASIMDDP */
#define NEON_QDOT_I8MM 2    /* smmla (vmmlaq_s32): HWCAP2_I8MM (the dotprod kernel serves single rows) */

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

/* This file also implements ../common/cpu_probe.h for cpu-neon. probe_run: score 20 (+1 with
 * dotprod, +1 with i8mm), or 0 without asimd, with what was found in features and the host's
 * model. probe_qpath: the best NEON_QDOT_* HWCAP allows, capped by APR_NEON_QDOT. */

#endif

/* probe.h — what this CPU and OS offer the cpu-x86 variant being built (baseline code, no vector instructions). */
#ifndef APR_X86_PROBE_H
#define APR_X86_PROBE_H

#include <stddef.h>

#include "apr/apr_abi.h"
#include "../common/cpu_probe.h"

/* This file implements ../common/cpu_probe.h for cpu-avx2 / cpu-avx512. probe_run: score 30
 * (+1 with VNNI) for cpu-avx512, 20 for cpu-avx2, 0 with the missing feature named; it reads
 * cpuid and, only after OSXSAVE is seen, XCR0. probe_qpath: one of these (APR_X86_NO_VNNI=1 forces
 * X86_QDOT_PLAIN); cpu-avx2 prefers AVX-VNNI's VEX encoding to the EVEX one where both exist. */
#define X86_QDOT_PLAIN 0   /* vpmaddubsw kernels: both variants */
#define X86_QDOT_VNNI 1    /* the _vnni copies (EVEX vpdpbusd): a CPU with AVX512-VNNI (and, for
                            * cpu-avx2's ymm kernels, AVX512-VL) with AVX-512 state enabled */
#define X86_QDOT_AVXVNNI 2 /* the _avxvnni copies (VEX vpdpbusd): cpu-avx2 on a CPU with AVX-VNNI */

/* The int8dot= word of the probe's features for a qpath. */
const char *probe_qpath_name(int qpath);

#endif

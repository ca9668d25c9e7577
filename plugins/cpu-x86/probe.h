/* probe.h — what this CPU and OS offer the cpu-x86 variant being built (baseline code, no vector instructions). */
#ifndef APR_X86_PROBE_H
#define APR_X86_PROBE_H

#include <stddef.h>

#include "apr/apr_abi.h"

/* The probe slot: score 30 (+1 with VNNI) for cpu-avx512, 20 for cpu-avx2, 0 with the missing
 * feature named. Reads cpuid and, only after OSXSAVE is seen, XCR0. */
apr_status probe_run(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size);
/* 1 when this variant can run here; else 0 and the reason in why. */
int probe_usable(char *why, size_t why_size);
/* 1 when this is the avx512 variant and the CPU has AVX512-VNNI (vpdpbusd), so the _vnni kernels may run. */
int probe_has_vnni(void);

#endif

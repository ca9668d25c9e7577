/* cpu_probe.h — what every CPU plugin's probe.c provides to the shared cpu_backend.c / cpu_entry.c (baseline code). */
#ifndef APR_CPU_PROBE_H
#define APR_CPU_PROBE_H

#include <stddef.h>

#include "apr/apr_abi.h"

/* The plugin's table name ("cpu-avx2", "cpu-neon", ...) and one-line description. */
extern const char probe_name[];
extern const char probe_description[];

/* The probe slot: score 0 with the missing feature named, otherwise higher for more features. */
apr_status probe_run(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size);
/* 1 when this plugin can run here; else 0 and the reason in why. */
int probe_usable(char *why, size_t why_size);
/* The int8 dot-product kernels a new instance's qmatmul uses (cpu_backend.qpath): the plugin's own
 * numbering, 0 = the ones every CPU the probe accepts has; an environment variable may cap it. */
int probe_qpath(void);

#endif

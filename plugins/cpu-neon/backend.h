/* backend.h — the cpu-neon instance slots of the plugin table (create, destroy, compute). */
#ifndef APR_NEON_BACKEND_SLOTS_H
#define APR_NEON_BACKEND_SLOTS_H

#include "neon_backend.h"

apr_status backend_create(const apr_backend_config *cfg, void **backend, char *err, size_t err_size);
void backend_destroy(void *backend);
apr_status backend_compute(void *backend, const apr_subgraph *g, char *err, size_t err_size);

#endif

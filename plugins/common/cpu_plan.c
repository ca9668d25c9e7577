/* cpu_plan.c — the plugin-side plan slots (ABI 4) of every CPU plugin: a plan keeps its subgraph and
 * whether its nodes have passed their checks, so that reruns skip them. */
#include <stdlib.h>

#include "cpu_backend.h"
#include "msg.h"

typedef struct cpu_plan {
    apr_subgraph g;   /* the core's subgraph; its nodes stay valid until plan_free */
    int checked;      /* a run succeeded: every node passed its checks with these very descs */
} cpu_plan;

apr_status cpu_plan_create(void *backend, const apr_subgraph *g, void **plan, char *err, size_t err_size) {
    if (!backend || !g || !plan) return msg_set(err, err_size, APR_ERR_INVALID, "plan_create: NULL argument");
    if (g->struct_size < sizeof(apr_subgraph)) return msg_set(err, err_size, APR_ERR_ABI, "plan_create: subgraph struct too small");
    cpu_plan *p = calloc(1, sizeof *p);
    if (!p) return msg_set(err, err_size, APR_ERR_NOMEM, "plan_create: out of memory");
    p->g = *g;
    *plan = p;
    return APR_OK;
}

apr_status cpu_plan_compute(void *backend, void *plan, char *err, size_t err_size) {
    cpu_plan *p = plan;
    if (!p) return msg_set(err, err_size, APR_ERR_INVALID, "plan_compute: NULL plan");
    p->g.flags = p->checked ? APR_SUBGRAPH_CHECKED : 0;
    apr_status s = cpu_backend_compute(backend, &p->g, err, err_size);
    if (s == APR_OK) p->checked = 1;
    return s;
}

void cpu_plan_free(void *backend, void *plan) {
    (void)backend;
    free(plan);
}

/* apr-probe.c — shows the machine, every plugin file found with its verdict, and the default backend. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"

static const char *probe_usage =
    "usage: apr-probe [--json] [--backend NAME]\n"
    "\n"
    "Prints this machine (CPU model, ISA features the CPU and OS enable, cores, caches, NUMA nodes),\n"
    "every backend plugin file found with its status (ok or rejected), probe score and reason, and\n"
    "the backend apr uses by default (the highest score). Plugins are searched in the directories of\n"
    "APR_PLUGIN_PATH (colon-separated) first, then in <prefix>/lib/apr/plugins.\n"
    "\n"
    "options:\n"
    "%s"
    "\n"
    "With --backend NAME it also checks that NAME can be started and reports it as the selected\n"
    "backend. Exit status: 0 ok, 1 no usable backend or the named one fails to start, 2 usage error\n"
    "(including a backend name that is unknown or unusable here).\n";

static void probe_print_bytes(const char *label, int64_t b) {
    if (b >= (1 << 20)) printf("  %-16s %lld MiB\n", label, (long long)(b >> 20));
    else if (b > 0) printf("  %-16s %lld KiB\n", label, (long long)(b >> 10));
    else printf("  %-16s unknown\n", label);
}

static void probe_text(const apr_registry *reg, const char *selected) {
    const apr_host_info *h = apr_registry_host(reg);
    printf("machine\n");
    printf("  %-16s %s\n", "cpu", h->cpu_model);
    printf("  %-16s %s\n", "features", h->cpu_features[0] ? h->cpu_features : "(none detected)");
    printf("  %-16s %d physical, %d logical\n", "cores", h->n_physical_cores, h->n_logical_cpus);
    probe_print_bytes("L1d cache", h->l1d_bytes);
    probe_print_bytes("L2 cache", h->l2_bytes);
    probe_print_bytes("L3 cache", h->l3_bytes);
    printf("  %-16s %d\n", "NUMA nodes", h->n_numa_nodes);
    printf("\nplugins (searched: %s)\n", apr_registry_search_path(reg));
    int n = apr_registry_count(reg);
    if (!n) printf("  (no .so files found)\n");
    for (int i = 0; i < n; i++) {
        const apr_plugin_record *r = apr_registry_record(reg, i);
        printf("  %-12s %-8s score %-3d %s\n", r->name, r->state == APR_PLUGIN_OK ? "ok" : "rejected", r->score, r->path);
        printf("  %-12s %s\n", "", r->reason);
        if (r->features[0]) printf("  %-12s features: %s\n", "", r->features);
    }
    const char *def = apr_registry_default(reg);
    printf("\ndefault backend: %s\n", def ? def : "none");
    if (selected) printf("selected backend: %s\n", selected);
}

static int probe_json(const apr_registry *reg, const char *selected) {
    const apr_host_info *h = apr_registry_host(reg);
    cJSON *root = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(root, "machine");
    cJSON_AddStringToObject(m, "cpu", h->cpu_model);
    cJSON *feats = cJSON_AddArrayToObject(m, "features");
    char buf[sizeof h->cpu_features];
    snprintf(buf, sizeof buf, "%s", h->cpu_features);
    char *save = NULL;
    for (char *f = strtok_r(buf, " ", &save); f; f = strtok_r(NULL, " ", &save))
        cJSON_AddItemToArray(feats, cJSON_CreateString(f));
    cJSON_AddNumberToObject(m, "physical_cores", h->n_physical_cores);
    cJSON_AddNumberToObject(m, "logical_cpus", h->n_logical_cpus);
    cJSON_AddNumberToObject(m, "l1d_bytes", (double)h->l1d_bytes);
    cJSON_AddNumberToObject(m, "l2_bytes", (double)h->l2_bytes);
    cJSON_AddNumberToObject(m, "l3_bytes", (double)h->l3_bytes);
    cJSON_AddNumberToObject(m, "numa_nodes", h->n_numa_nodes);
    cJSON_AddStringToObject(root, "search_path", apr_registry_search_path(reg));
    cJSON *plugins = cJSON_AddArrayToObject(root, "plugins");
    for (int i = 0; i < apr_registry_count(reg); i++) {
        const apr_plugin_record *r = apr_registry_record(reg, i);
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", r->name);
        cJSON_AddStringToObject(p, "path", r->path);
        cJSON_AddStringToObject(p, "status", r->state == APR_PLUGIN_OK ? "ok" : "rejected");
        cJSON_AddNumberToObject(p, "score", r->score);
        cJSON_AddStringToObject(p, "reason", r->reason);
        cJSON_AddStringToObject(p, "features", r->features);
        cJSON_AddNumberToObject(p, "abi_version", r->abi_version);
        if (r->device >= 0) cJSON_AddNumberToObject(p, "device", r->device); /* one of a plugin's devices */
        cJSON_AddItemToArray(plugins, p);
    }
    const char *def = apr_registry_default(reg);
    if (def) cJSON_AddStringToObject(root, "default_backend", def);
    else cJSON_AddNullToObject(root, "default_backend");
    if (selected) cJSON_AddStringToObject(root, "selected_backend", selected);
    char *text = cJSON_Print(root);
    int rc = text ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (text) puts(text);
    free(text);
    cJSON_Delete(root);
    return rc;
}

int main(int argc, char **argv) {
    cli_common opts = {0};
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_common(argc, argv, &i, &opts);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "error: unknown argument '%s' (see apr-probe --help)\n", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (opts.help) {
        printf(probe_usage, cli_common_help);
        return CLI_EXIT_OK;
    }
    apr_error e;
    apr_registry *reg;
    if (apr_registry_open(NULL, &reg, &e) != APR_OK) {
        fprintf(stderr, "error: %s\n", e.msg);
        return CLI_EXIT_FAIL;
    }
    int rc = CLI_EXIT_OK;
    const char *selected = NULL;
    if (opts.backend) {
        apr_backend *be;
        apr_status st = apr_backend_open(reg, opts.backend, opts.threads, &be, &e);
        if (st != APR_OK) {
            fprintf(stderr, "error: %s\n", e.msg);
            apr_registry_close(reg);
            return st == APR_ERR_NOT_FOUND ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
        selected = opts.backend;
        apr_backend_close(be);
    }
    if (opts.json) rc = probe_json(reg, selected);
    else probe_text(reg, selected);
    if (rc == CLI_EXIT_OK && !apr_registry_default(reg)) {
        fprintf(stderr, "error: no usable backend (see the reasons above)\n");
        rc = CLI_EXIT_FAIL;
    }
    apr_registry_close(reg);
    return rc;
}

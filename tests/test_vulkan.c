/* test_vulkan.c — the vulkan plugin as a user meets it: apr-probe lists each device with its name,
 * driver and subgroup size; a machine whose loader finds no device lists the plugin as rejected
 * with the reason; apr-run --backend vulkan gives the published greedy text of stories260K. (The
 * conformance suite checks every op it runs against the reference; test_llama decodes on it too.)
 * Skipped, saying so, where the plugin was not built or no Vulkan device (lavapipe included) exists. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "apr/apr.h"
#include "util/tu_paths.h"
#include "util/tu_run.h"

static char vk_build[PATH_MAX];

/* The build tree, or a skip when vulkan.so is not in it. */
static void vk_need_plugin(void) {
    const char *b = getenv("APR_TEST_BUILD");
    snprintf(vk_build, sizeof vk_build, "%s", b && *b ? b : "build");
    char so[PATH_MAX + 64];
    snprintf(so, sizeof so, "%s/lib/apr/plugins/vulkan.so", vk_build);
    if (access(so, R_OK) != 0)
        cr_skip_test("%s is not built (it needs libvulkan-dev and glslc, which scripts/deps.sh installs)", so);
}

/* apr-probe --json's record of the first vulkan device, or NULL; *root owns it. */
static cJSON *vk_probe_record(cJSON **root) {
    char tool[PATH_MAX + 32];
    snprintf(tool, sizeof tool, "%s/bin/apr-probe", vk_build);
    tu_run_result r = tu_run(tool, NULL, (const char *[]){"--json", NULL}, 0);
    cr_assert_eq(r.status, 0, "apr-probe --json: exit %d: %s", r.status, r.err);
    *root = cJSON_Parse(r.out);
    cr_assert(*root, "apr-probe --json printed no JSON: %s", r.out);
    tu_run_free(&r);
    cJSON *plugins = cJSON_GetObjectItem(*root, "plugins"), *p;
    cJSON_ArrayForEach(p, plugins) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(p, "name"));
        if (name && !strncmp(name, "vulkan", 6)) return p;
    }
    return NULL;
}

Test(vulkan, probe_names_each_device_and_its_subgroup) {
    vk_need_plugin();
    cJSON *root;
    cJSON *p = vk_probe_record(&root);
    cr_assert(p, "apr-probe lists no vulkan record");
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(p, "status"));
    const char *reason = cJSON_GetStringValue(cJSON_GetObjectItem(p, "reason"));
    cr_assert(state && reason);
    if (strcmp(state, "ok") != 0) {
        cJSON_Delete(root);
        cr_skip_test("no usable Vulkan device here: %s", reason);
    }
    cr_expect(strstr(reason, "driver ") && strstr(reason, "subgroup ") && strstr(reason, "Vulkan 1."),
              "the reason should name the device, driver, Vulkan version and subgroup size: %s", reason);
    cJSON_Delete(root);
}

/* A loader that finds no driver: the plugin is listed, rejected, with the loader's answer. */
Test(vulkan, no_device_is_a_rejection_with_the_reason) {
    vk_need_plugin();
    cJSON *root;
    setenv("VK_ICD_FILENAMES", "/nonexistent/icd.json", 1);
    setenv("VK_DRIVER_FILES", "/nonexistent/icd.json", 1);
    cJSON *p = vk_probe_record(&root);
    unsetenv("VK_ICD_FILENAMES");
    unsetenv("VK_DRIVER_FILES");
    cr_assert(p, "apr-probe lists no vulkan record when the loader finds no device");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(p, "status")), "rejected");
    const char *reason = cJSON_GetStringValue(cJSON_GetObjectItem(p, "reason"));
    cr_expect(reason && strstr(reason, "device"), "reason: %s", reason ? reason : "(none)");
    cJSON_Delete(root);
}

Test(vulkan, apr_run_gives_the_published_greedy_text, .timeout = 300) {
    vk_need_plugin();
    if (!tu_have_fixtures()) cr_skip_test("fixtures not found at %s", tu_fixtures_dir());
    char model[PATH_MAX + 64], expected[PATH_MAX + 64], tool[PATH_MAX + 32];
    snprintf(model, sizeof model, "%s/stories260K/stories260K.gguf", tu_fixtures_dir());
    snprintf(expected, sizeof expected, "%s/stories260K/expected_generation.json", tu_fixtures_dir());
    snprintf(tool, sizeof tool, "%s/bin/apr-run", vk_build);
    FILE *f = fopen(expected, "rb");
    cr_assert(f, "cannot open %s", expected);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    cr_assert(root, "%s is not JSON", expected);
    const char *want = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "cases"), 0), "text"));
    cr_assert(want, "%s: no cases[0].text", expected);
    tu_run_result r = tu_run(tool, NULL, (const char *[]){"--model", model, "-n", "256", "--temp", "0", "--backend", "vulkan", NULL}, 0);
    if (r.status != 0 && strstr(r.err, "vulkan") && strstr(r.err, "usable backends")) {
        tu_run_free(&r);
        cJSON_Delete(root);
        cr_skip_test("no usable Vulkan device here");
    }
    cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    size_t len = strlen(r.out);
    cr_assert(len > 0 && r.out[len - 1] == '\n', "output does not end in a newline");
    r.out[len - 1] = 0;
    cr_expect_str_eq(r.out, want);
    cr_expect(strstr(r.err, "backend vulkan:0"), "the statistics line names another backend: %s", r.err);
    tu_run_free(&r);
    cJSON_Delete(root);
}

/* The pipeline cache: written under $XDG_CACHE_HOME/apr after a first run, one file per device,
 * driver and plugin build; a damaged file is ignored and the run gives the same text. */
Test(vulkan, pipeline_cache_is_written_and_a_damaged_one_is_ignored, .timeout = 300) {
    vk_need_plugin();
    if (!tu_have_fixtures()) cr_skip_test("fixtures not found at %s", tu_fixtures_dir());
    char cache[] = "/tmp/apr-test-vkcache-XXXXXX";
    cr_assert(mkdtemp(cache));
    setenv("XDG_CACHE_HOME", cache, 1);
    char model[PATH_MAX + 64], tool[PATH_MAX + 32];
    snprintf(model, sizeof model, "%s/stories260K/stories260K-q4_0.gguf", tu_fixtures_dir());
    snprintf(tool, sizeof tool, "%s/bin/apr-run", vk_build);
    const char *args[] = {"--model", model, "-n", "8", "--temp", "0", "--backend", "vulkan", NULL};
    tu_run_result first = tu_run(tool, NULL, args, 0);
    if (first.status != 0 && strstr(first.err, "usable backends")) {
        tu_run_free(&first);
        unsetenv("XDG_CACHE_HOME");
        cr_skip_test("no usable Vulkan device here");
    }
    cr_assert_eq(first.status, 0, "exit %d: %s", first.status, first.err);
    char cmd[256], found[PATH_MAX] = "";
    snprintf(cmd, sizeof cmd, "ls %s/apr/vulkan-*.pipelines 2>/dev/null", cache);
    FILE *ls = popen(cmd, "r");
    cr_assert(ls);
    if (!fgets(found, sizeof found, ls)) found[0] = 0;
    pclose(ls);
    found[strcspn(found, "\n")] = 0;
    cr_assert(found[0], "no pipeline cache under %s/apr after a run", cache);
    FILE *f = fopen(found, "wb");
    cr_assert(f);
    for (int i = 0; i < 4096; i++) fputc((i * 2654435761u) >> 13 & 255, f);
    fclose(f);
    tu_run_result second = tu_run(tool, NULL, args, 0);
    cr_assert_eq(second.status, 0, "with a damaged cache: exit %d: %s", second.status, second.err);
    cr_expect_str_eq(second.out, first.out, "the damaged cache changed the text");
    tu_run_free(&first);
    tu_run_free(&second);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    cr_expect_eq(system(cmd), 0);
    unsetenv("XDG_CACHE_HOME");
}

/* A plan on vulkan records its subgraph once (a plugin plan) and reruns it: new inputs give new
 * results, a bad id in one run is APR_ERR_INVALID naming the node, and the next run is right again. */
Test(vulkan, a_plan_is_recorded_once_and_rerun) {
    vk_need_plugin();
    apr_registry *reg;
    apr_error e;
    cr_assert_eq(apr_registry_open(NULL, &reg, &e), APR_OK, "%s", e.msg);
    apr_backend *be;
    if (apr_backend_open(reg, "vulkan", 1, &be, &e) != APR_OK) {
        apr_registry_close(reg);
        cr_skip_test("no usable Vulkan device here: %s", e.msg);
    }
    static const float table[4][3] = {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}};
    apr_graph *g = apr_graph_new();
    apr_tensor *t = apr_weight(g, APR_F32, 2, (int64_t[]){3, 4}, table, "table");
    apr_tensor *ids = apr_input(g, APR_I32, 1, (int64_t[]){2}, "ids");
    apr_tensor *out = apr_scale(g, apr_get_rows(g, t, ids), 2.0f);
    apr_graph_output(g, out);
    apr_plan *p;
    cr_assert_eq(apr_plan_new(g, &be, 1, &p, &e), APR_OK, "%s", e.msg);
    const int32_t runs[3][2] = {{0, 3}, {2, 7}, {1, 2}};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(apr_plan_set_input(p, ids, runs[k], sizeof runs[k], &e), APR_OK, "%s", e.msg);
        apr_status st = apr_plan_run(p, &e);
        if (k == 1) {
            cr_expect_eq(st, APR_ERR_INVALID, "id 7 of a 4-row table: %s", e.msg);
            cr_expect(strstr(e.msg, "get_rows") && strstr(e.msg, "outside [0, 4)"), "%s", e.msg);
            continue;
        }
        cr_assert_eq(st, APR_OK, "run %d: %s", k, e.msg);
        float got[6];
        cr_assert_eq(apr_plan_get_output(p, out, got, sizeof got, &e), APR_OK, "%s", e.msg);
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < 3; c++)
                cr_expect_eq(got[3 * r + c], 2.0f * table[runs[k][r]][c], "run %d row %d col %d", k, r, c);
    }
    apr_plan_stats s;
    apr_plan_stats_get(p, &s);
    cr_expect_eq(s.n_plugin_plans, 1, "the subgraph should run as one plugin plan");
    apr_plan_free(p);
    apr_graph_free(g);
    apr_backend_close(be);
    apr_registry_close(reg);
}

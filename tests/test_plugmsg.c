/* test_plugmsg.c — messages a plugin leaves unterminated in the executor's calls (supports while
 * placing nodes, compute while running) are cut at their buffer: the error names the node and
 * holds at most the buffer's bytes, and nothing reads past it (the sanitizer build checks that). */
#include <criterion/criterion.h>
#include <string.h>

#include "apr/apr.h"
#include "util/tu_paths.h"

static size_t plugmsg_run_of(const char *s, char c) {
    size_t best = 0, run = 0;
    for (; *s; s++) {
        run = *s == c ? run + 1 : 0;
        if (run > best) best = run;
    }
    return best;
}

static apr_backend *plugmsg_open(apr_registry **reg) {
    apr_registry_options o = {.plugin_path = tu_test_plugins_dir()};
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, reg, &e), APR_OK, "%s", e.msg);
    apr_backend *be;
    cr_assert_eq(apr_backend_open(*reg, "untermrun", 1, &be, &e), APR_OK, "%s", e.msg);
    return be;
}

Test(plugmsg, an_unterminated_supports_reason_is_cut_at_its_buffer) {
    apr_registry *reg;
    apr_backend *be = plugmsg_open(&reg);
    apr_graph *g = apr_graph_new();
    apr_tensor *x = apr_input(g, APR_F32, 1, (int64_t[]){8}, "x");
    apr_graph_output(g, apr_add(g, x, x));
    apr_plan *p = NULL;
    apr_error e;
    cr_assert_eq(apr_plan_new(g, &be, 1, &p, &e), APR_ERR_UNSUPPORTED);
    cr_expect(strstr(e.msg, "untermrun: SSS"), "%s", e.msg);
    cr_expect_leq(plugmsg_run_of(e.msg, 'S'), 159, "more of the reason than its buffer holds: %s", e.msg);
    apr_graph_free(g);
    apr_backend_close(be);
    apr_registry_close(reg);
}

Test(plugmsg, an_unterminated_compute_error_is_cut_at_its_buffer) {
    apr_registry *reg;
    apr_backend *be = plugmsg_open(&reg);
    apr_graph *g = apr_graph_new();
    apr_tensor *x = apr_input(g, APR_F32, 1, (int64_t[]){8}, "x");
    apr_graph_output(g, apr_scale(g, x, 2.0f));
    apr_plan *p = NULL;
    apr_error e;
    cr_assert_eq(apr_plan_new(g, &be, 1, &p, &e), APR_OK, "%s", e.msg);
    float data[8] = {0};
    cr_assert_eq(apr_plan_set_input(p, x, data, sizeof data, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_run(p, &e), APR_ERR_DEVICE);
    cr_expect(strstr(e.msg, "RRR"), "%s", e.msg);
    cr_expect_leq(plugmsg_run_of(e.msg, 'R'), 255, "more of the message than its buffer holds: %s", e.msg);
    apr_plan_free(p);
    apr_graph_free(g);
    apr_backend_close(be);
    apr_registry_close(reg);
}

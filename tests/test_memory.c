/* test_memory.c — the executor's memory model without a model: weights placed once, memory that
 * lives on a backend, in-place writes of host state, copies between two devices the host cannot
 * address, and queued work, on the opaque test plugin (tests/plugins/opaque.c) and the CPU. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apr/apr.h"
#include "plugins/opaque.h"
#include "util/tu_paths.h"

static apr_registry *mem_registry(void) {
    apr_registry_options o = {.plugin_path = tu_test_plugins_dir()};
    apr_registry *reg;
    apr_error e;
    cr_assert_eq(apr_registry_open(&o, &reg, &e), APR_OK, "%s", e.msg);
    return reg;
}

static apr_backend *mem_open(apr_registry *reg, const char *name) {
    apr_backend *be;
    apr_error e;
    cr_assert_eq(apr_backend_open(reg, name, 1, &be, &e), APR_OK, "%s", e.msg);
    return be;
}

static opaque_counters *mem_counters(apr_backend *be) {
    opaque_counters *c = apr_backend_instance(be);
    cr_assert_eq(c->magic, OPAQUE_MAGIC);
    return c;
}

/* y = W x with W placed on the opaque backend: the plan uploads nothing; an unplaced weight is
 * uploaded by the plan and counted. */
Test(memory, placed_weights_cross_once_and_plans_never_upload_them) {
    apr_registry *reg = mem_registry();
    apr_backend *op = mem_open(reg, "opaque");
    opaque_counters *c = mem_counters(op);
    enum { K = 16, N = 8 };
    float w[K * N], x[K], y[N];
    for (int i = 0; i < K * N; i++) w[i] = (float)((i * 7) % 11) - 5.0f;
    for (int i = 0; i < K; i++) x[i] = 0.25f * (float)i - 1.0f;
    apr_error e;
    opaque_counters_reset(c);
    cr_assert_eq(apr_backend_place_weight(op, APR_F32, 2, (int64_t[]){K, N}, w, APR_PLACE_PACK, "w", &e), APR_OK, "%s", e.msg);
    cr_expect_eq(c->bytes_in_by_usage[APR_USAGE_WEIGHTS], sizeof w, "the weight crosses once, into a weights buffer");
    cr_expect_eq(apr_backend_uploaded_bytes(op), (int64_t)sizeof w);
    cr_expect_eq(apr_backend_packed_bytes(op), 0, "opaque has no packed layout: PACK is not an error");
    for (int round = 0; round < 2; round++) {
        apr_graph *g = apr_graph_new();
        apr_tensor *tw = apr_weight(g, APR_F32, 2, (int64_t[]){K, N}, w, "w");
        apr_tensor *tx = apr_input(g, APR_F32, 2, (int64_t[]){K, 1}, "x");
        apr_tensor *ty = apr_matmul(g, tw, tx);
        apr_graph_output(g, ty);
        apr_plan *p;
        cr_assert_eq(apr_plan_new(g, &op, 1, &p, &e), APR_OK, "%s", e.msg);
        apr_plan_stats st;
        apr_plan_stats_get(p, &st);
        cr_expect_eq(st.n_weight_uploads, 0, "plan %d uploaded a placed weight", round);
        cr_expect_eq(st.n_plugin_plans, 1);
        cr_assert_eq(apr_plan_set_input(p, tx, x, sizeof x, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_get_output(p, ty, y, sizeof y, &e), APR_OK, "%s", e.msg);
        for (int n = 0; n < N; n++) {
            double want = 0;
            for (int k = 0; k < K; k++) want += (double)w[n * K + k] * x[k];
            cr_expect_float_eq(y[n], (float)want, 1e-5, "y[%d]", n);
        }
        apr_plan_free(p);
        apr_graph_free(g);
    }
    cr_expect_eq(c->bytes_in_by_usage[APR_USAGE_WEIGHTS], sizeof w, "two plans later the weight has crossed once");
    apr_backend_release_weight(op, w);
    cr_expect_eq(apr_backend_uploaded_bytes(op), 0);

    /* not placed: the plan uploads it itself, and says so */
    apr_graph *g = apr_graph_new();
    apr_tensor *ty = apr_matmul(g, apr_weight(g, APR_F32, 2, (int64_t[]){K, N}, w, "w"),
                                apr_input(g, APR_F32, 2, (int64_t[]){K, 1}, "x"));
    apr_graph_output(g, ty);
    apr_plan *p;
    cr_assert_eq(apr_plan_new(g, &op, 1, &p, &e), APR_OK, "%s", e.msg);
    apr_plan_stats st;
    apr_plan_stats_get(p, &st);
    cr_expect_eq(st.n_weight_uploads, 1);
    apr_plan_free(p);
    apr_graph_free(g);
    apr_backend_close(op);
    apr_registry_close(reg);
}

/* Rows computed on device 0 and written into a table on device 1, neither memory host-visible:
 * two peers of one plugin copy device to device, the destination waiting for an event recorded on
 * the source; peers that cannot reach each other (refuse_peer_copy) go through the staging buffer
 * the executor made with the plan. */
static void mem_two_devices(bool peers) {
    apr_registry *reg = mem_registry();
    apr_backend *d0 = mem_open(reg, "opaque:0"), *d1 = mem_open(reg, "opaque:1");
    opaque_counters *c0 = mem_counters(d0), *c1 = mem_counters(d1);
    c1->refuse_peer_copy = !peers;
    enum { D = 6, R = 4 };
    apr_error e;
    apr_mem *table;
    cr_assert_eq(apr_mem_new(d1, sizeof(float) * D * R, APR_USAGE_STATE, "table", &table, &e), APR_OK, "%s", e.msg);
    apr_graph *g = apr_graph_new();
    apr_tensor *x = apr_input(g, APR_F32, 2, (int64_t[]){D, 1}, "x");
    apr_tensor *rows = apr_scale(g, x, 3.0f);
    apr_tensor *ids = apr_input(g, APR_I32, 1, (int64_t[]){1}, "ids");
    apr_tensor *t = apr_set_rows(g, apr_resident(g, APR_F32, 2, (int64_t[]){D, R}, table, 0, "table"), rows, ids);
    apr_graph_output(g, t);
    apr_plan *p;
    cr_assert_eq(apr_plan_new(g, (apr_backend *[]){d0, d1}, 2, &p, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_plan_placement(p, rows), d0);
    cr_expect_eq(apr_plan_placement(p, t), d1, "set_rows runs where its table lives");
    for (int r = 0; r < R; r++) {
        float xv[D];
        for (int i = 0; i < D; i++) xv[i] = (float)(r * 10 + i);
        opaque_counters_reset(c0);
        opaque_counters_reset(c1);
        cr_assert_eq(apr_plan_set_input(p, x, xv, sizeof xv, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_set_input(p, ids, (int32_t[]){R - 1 - r}, 4, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
        if (peers) {
            cr_expect_eq(c0->bytes_out, 0, "run %d: the rows went device to device", r);
            cr_expect_eq(c1->bytes_peer_copied, sizeof(float) * D, "run %d", r);
            cr_expect_eq(c1->bytes_in, 4, "run %d: device 1 took in only the id from the host", r);
            cr_expect_eq(c0->n_event_records, 1, "run %d", r);
            cr_expect_eq(c1->n_event_waits, 1, "run %d", r);
        } else {
            cr_expect_eq(c0->bytes_out, sizeof(float) * D, "run %d: device 0 gave out only the rows", r);
            cr_expect_eq(c1->bytes_in, sizeof(float) * D + 4, "run %d: device 1 took in only the rows and the id", r);
            cr_expect_eq(c1->bytes_peer_copied, 0, "run %d", r);
        }
    }
    float got[D * R];
    cr_assert_eq(apr_mem_read(table, 0, got, sizeof got, &e), APR_OK, "%s", e.msg);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < D; i++)
            cr_expect_eq(got[(R - 1 - r) * D + i], 3.0f * (float)(r * 10 + i), "table[%d, %d]", i, R - 1 - r);
    apr_plan_free(p);
    apr_graph_free(g);
    apr_mem_free(table);
    apr_backend_close(d1);
    apr_backend_close(d0);
    apr_registry_close(reg);
}

Test(memory, peer_devices_copy_device_to_device_ordered_by_an_event) { mem_two_devices(true); }

Test(memory, devices_that_cannot_reach_each_other_copy_through_staging) { mem_two_devices(false); }

/* Host state written in place on a CPU backend: the caller sees the rows after the run; on the
 * opaque backend, which cannot reach host memory, the plan is refused with the reason. */
Test(memory, set_rows_writes_host_state_in_place_where_the_backend_reaches_host_memory) {
    apr_registry *reg = mem_registry();
    apr_backend *cpu = mem_open(reg, "reference"), *op = mem_open(reg, "opaque");
    enum { D = 4, R = 3 };
    uint16_t state[D * R];
    memset(state, 0, sizeof state);
    apr_error e;
    apr_graph *g = apr_graph_new();
    apr_tensor *rows = apr_input(g, APR_F32, 2, (int64_t[]){D, 1}, "rows");
    apr_tensor *ids = apr_input(g, APR_I32, 1, (int64_t[]){1}, "ids");
    apr_tensor *t = apr_set_rows(g, apr_state(g, APR_F16, 2, (int64_t[]){D, R}, state, "cache"), rows, ids);
    apr_graph_output(g, t);
    apr_plan *p;
    cr_assert_eq(apr_plan_new(g, &cpu, 1, &p, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_set_input(p, rows, (float[]){1.0f, -2.0f, 0.5f, 65504.0f}, 16, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_set_input(p, ids, (int32_t[]){1}, 4, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
    const uint16_t want[D] = {0x3c00, 0xc000, 0x3800, 0x7bff}; /* 1, -2, 0.5, 65504 in binary16 */
    for (int i = 0; i < D * R; i++)
        cr_expect_eq(state[i], i / D == 1 ? want[i % D] : 0, "state[%d] = 0x%04x", i, state[i]);
    apr_plan_free(p);
    cr_expect_neq(apr_plan_new(g, &op, 1, &p, &e), APR_OK, "opaque cannot write host memory in place");
    cr_expect(strstr(e.msg, "set_rows") && strstr(e.msg, "host state"), "%s", e.msg);
    apr_graph_free(g);
    apr_backend_close(op);
    apr_backend_close(cpu);
    apr_registry_close(reg);
}

/* apr_mem's host calls: bounds are errors naming the memory; copies within a backend work through
 * the plugin's buffer_copy (opaque) and on host memory (reference). */
Test(memory, memory_on_a_backend_is_written_read_and_copied_within_bounds) {
    apr_registry *reg = mem_registry();
    const char *names[] = {"opaque", "reference"};
    for (int b = 0; b < 2; b++) {
        apr_backend *be = mem_open(reg, names[b]);
        apr_mem *m, *m2;
        apr_error e;
        cr_assert_eq(apr_mem_new(be, 64, APR_USAGE_STATE, "kv", &m, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_mem_new(be, 64, APR_USAGE_STATE, "kv2", &m2, &e), APR_OK, "%s", e.msg);
        cr_expect_eq(apr_mem_size(m), 64);
        cr_expect_eq(apr_mem_backend(m), be);
        unsigned char zero[64], buf[64], pat[32];
        memset(zero, 0, sizeof zero);
        cr_assert_eq(apr_mem_read(m, 0, buf, 64, &e), APR_OK, "%s", e.msg);
        cr_expect(!memcmp(buf, zero, 64), "%s: new memory is not zero", names[b]);
        for (int i = 0; i < 32; i++) pat[i] = (unsigned char)(i * 5 + 1);
        cr_assert_eq(apr_mem_write(m, 8, pat, 32, &e), APR_OK, "%s", e.msg);
        cr_expect_eq(apr_mem_write(m, 40, pat, 32, &e), APR_ERR_INVALID);
        cr_expect(strstr(e.msg, "kv") && strstr(e.msg, "past"), "%s", e.msg);
        cr_expect_eq(apr_mem_read(m, 65, buf, 1, &e), APR_ERR_INVALID);
        cr_assert_eq(apr_mem_copy(m2, 16, m, 8, 32, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_mem_read(m2, 16, buf, 32, &e), APR_OK, "%s", e.msg);
        cr_expect(!memcmp(buf, pat, 32), "%s: copy", names[b]);
        cr_assert_eq(apr_mem_read(m2, 0, buf, 16, &e), APR_OK, "%s", e.msg);
        cr_expect(!memcmp(buf, zero, 16), "%s: the copy wrote outside its range", names[b]);
        cr_expect_eq(apr_mem_copy(m2, 40, m, 0, 32, &e), APR_ERR_INVALID);
        apr_mem_free(m2);
        apr_mem_free(m);
        apr_backend_close(be);
    }
    apr_registry_close(reg);
}

/* Inputs written asynchronously by one run are not overwritten by the next set_input before the
 * queue has read them: ten runs queued back to back, each result read at the end of its run. */
Test(memory, queued_input_writes_are_settled_before_the_next_input_lands) {
    apr_registry *reg = mem_registry();
    apr_backend *op = mem_open(reg, "opaque");
    opaque_counters *c = mem_counters(op);
    apr_error e;
    apr_graph *g = apr_graph_new();
    apr_tensor *a = apr_input(g, APR_F32, 1, (int64_t[]){8}, "a");
    apr_tensor *b = apr_input(g, APR_F32, 1, (int64_t[]){8}, "b");
    apr_tensor *y = apr_add(g, a, b);
    apr_graph_output(g, y);
    apr_plan *p;
    cr_assert_eq(apr_plan_new(g, &op, 1, &p, &e), APR_OK, "%s", e.msg);
    opaque_counters_reset(c);
    for (int r = 0; r < 10; r++) {
        float av[8], bv[8], yv[8];
        for (int i = 0; i < 8; i++) av[i] = (float)(r * 100 + i), bv[i] = 0.5f * (float)r;
        cr_assert_eq(apr_plan_set_input(p, a, av, sizeof av, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_set_input(p, b, bv, sizeof bv, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_run(p, &e), APR_OK, "%s", e.msg);
        cr_assert_eq(apr_plan_get_output(p, y, yv, sizeof yv, &e), APR_OK, "%s", e.msg);
        for (int i = 0; i < 8; i++) cr_expect_eq(yv[i], av[i] + bv[i], "run %d, y[%d]", r, i);
    }
    cr_expect_eq(c->n_writes_async, 20, "the inputs went through the queue");
    cr_expect_eq(c->n_plan_runs, 10);
    apr_plan_free(p);
    apr_graph_free(g);
    apr_backend_close(op);
    apr_registry_close(reg);
}

/* The CPU plugins still serve cores from before ABI 4, whose node descriptors end before src_ext:
 * two ADD nodes laid out at that stride run, and supports() takes the shorter struct. */
Test(memory, cpu_plugins_take_the_node_size_of_cores_before_abi_4) {
    apr_registry *reg = mem_registry();
    const char *names[] = {"reference", NULL};
    for (int b = 0; b < 2; b++) {
        apr_backend *be;
        apr_error e;
        cr_assert_eq(apr_backend_open(reg, names[b], 1, &be, &e), APR_OK, "%s", e.msg);
        const apr_plugin *api = apr_backend_plugin(be);
        void *inst = apr_backend_instance(be);
        float a[8], c[8], y[8], z[8];
        for (int i = 0; i < 8; i++) a[i] = (float)i, c[i] = 10.0f * (float)i;
        const size_t stride = (APR_NODE_DESC_SIZE_V3 + _Alignof(apr_node_desc) - 1) / _Alignof(apr_node_desc) * _Alignof(apr_node_desc);
        char *nodes = calloc(2, stride);
        for (int k = 0; k < 2; k++) {
            apr_node_desc full;
            memset(&full, 0, sizeof full);
            full.struct_size = (uint32_t)APR_NODE_DESC_SIZE_V3;
            full.op = APR_OP_ADD;
            full.n_src = 2;
            apr_tensor_desc *t[3] = {&full.src[0], &full.src[1], &full.dst};
            float *data[3] = {k ? y : a, c, k ? z : y}; /* y = a + c, then z = y + c */
            for (int j = 0; j < 3; j++) {
                t[j]->struct_size = sizeof(apr_tensor_desc);
                t[j]->dtype = APR_F32;
                t[j]->ne[0] = 8;
                t[j]->ne[1] = t[j]->ne[2] = t[j]->ne[3] = 1;
                t[j]->nb[0] = 4;
                for (int d = 1; d < 4; d++) t[j]->nb[d] = 32;
                t[j]->data = data[j];
            }
            full.name = "add";
            memcpy(nodes + k * stride, &full, APR_NODE_DESC_SIZE_V3); /* what an older core lays out */
        }
        char why[256] = "";
        /* each tensor in a host buffer of its own (a, c, y, z), at offset 0 */
        apr_buffer bufs[4];
        for (int k = 0; k < 2; k++) {
            apr_node_desc *n = (apr_node_desc *)(nodes + k * stride);
            apr_tensor_desc *t[3] = {&n->src[0], &n->src[1], &n->dst};
            for (int j = 0; j < 3; j++) {
                apr_buffer *bb = &bufs[k ? (j == 0 ? 2 : j == 1 ? 1 : 3) : (j == 0 ? 0 : j == 1 ? 1 : 2)];
                *bb = (apr_buffer){.struct_size = sizeof *bb, .flags = APR_BUFFER_HOST_VISIBLE, .size = sizeof a,
                                   .host_ptr = t[j]->data};
                t[j]->buffer = bb;
            }
        }
        cr_expect_eq(api->supports(inst, (apr_node_desc *)nodes, why, sizeof why), APR_OK, "%s: %s", apr_backend_name(be), why);
        apr_subgraph sg = {.struct_size = sizeof sg, .node_stride = (uint32_t)stride, .n_nodes = 2,
                           .nodes = (const apr_node_desc *)nodes};
        cr_assert_eq(api->compute(inst, &sg, why, sizeof why), APR_OK, "%s: %s", apr_backend_name(be), why);
        for (int i = 0; i < 8; i++) cr_expect_eq(z[i], 21.0f * (float)i, "%s: z[%d]", apr_backend_name(be), i);
        free(nodes);
        apr_backend_close(be);
    }
    apr_registry_close(reg);
}

/* oprun.c — one case as a one-node apr graph on one backend, planned and timed. */
#include "oprun.h"

#include <math.h>
#include <stdio.h>

typedef struct oprun_copy {
    apr_graph *g;
    apr_plan *plan;
    apr_tensor *in;    /* the input leaf */
    apr_tensor *out;   /* the op node */
} oprun_copy;

typedef struct oprun_ctx {
    oprun_copy copy[OPERANDS_MAX_COPIES];
} oprun_ctx;

/* The one-node graph of case c over copy i of the operands. */
static void oprun_graph(oprun_copy *k, const operands *o, int i) {
    const cases_case *c = o->c;
    apr_graph *g = k->g = apr_graph_new();
    if (!g) return;
    switch (c->kind) {
    case CASES_MATMUL: {
        apr_tensor *w = apr_weight(g, c->dtype, 2, (int64_t[]){c->k, c->n}, o->w[i], "w");
        k->in = apr_input(g, APR_F32, 2, (int64_t[]){c->k, c->m}, "x");
        k->out = apr_matmul(g, w, k->in);
        break;
    }
    case CASES_RMS_NORM:
        k->in = apr_input(g, APR_F32, 2, (int64_t[]){c->cols, c->rows}, "x");
        k->out = apr_rms_norm(g, k->in, 1e-5f);
        break;
    case CASES_SOFTMAX:
        k->in = apr_input(g, APR_F32, 2, (int64_t[]){c->cols, c->rows}, "x");
        k->out = apr_softmax(g, k->in, NULL, 1.0f, false);
        break;
    case CASES_ATTENTION: {
        k->in = apr_input(g, APR_F32, 3, (int64_t[]){c->d, c->t, c->h}, "q");
        apr_tensor *kk = apr_weight(g, c->dtype, 3, (int64_t[]){c->d, c->s, c->hkv}, o->w[i], "k");
        apr_tensor *vv = apr_weight(g, c->dtype, 3, (int64_t[]){c->d, c->s, c->hkv}, o->v[i], "v");
        k->out = apr_attention(g, k->in, kk, vv, NULL, 1.0f / sqrtf((float)c->d), c->causal);
        break;
    }
    }
    if (k->out) apr_graph_output(g, k->out);
}

static int oprun_once(void *ctx, int copy, char *err, size_t err_size) {
    oprun_ctx *x = ctx;
    apr_error e;
    if (apr_plan_run(x->copy[copy].plan, &e) != APR_OK) {
        snprintf(err, err_size, "%s", e.msg);
        return -1;
    }
    return 0;
}

oprun_status oprun_case(apr_backend *be, const operands *o, const sampler_opts *so, sampler_result *r, float *out0,
                        char *note, size_t note_size) {
    oprun_ctx x = {0};
    oprun_status st = OPRUN_OK;
    apr_error e;
    for (int i = 0; i < o->copies && st == OPRUN_OK; i++) {
        oprun_copy *k = &x.copy[i];
        oprun_graph(k, o, i);
        if (!k->g) {
            snprintf(note, note_size, "out of memory building the graph");
            st = OPRUN_FAILED;
        } else if (apr_graph_error(k->g)) {
            snprintf(note, note_size, "graph: %s", apr_graph_error(k->g));
            st = OPRUN_FAILED;
        } else {
            apr_status s = apr_plan_new(k->g, &be, 1, &k->plan, &e);
            if (s != APR_OK) {
                snprintf(note, note_size, "%s", e.msg);
                st = s == APR_ERR_UNSUPPORTED ? OPRUN_UNSUPPORTED : OPRUN_FAILED;
            } else if (apr_plan_set_input(k->plan, k->in, o->x, o->x_bytes, &e) != APR_OK) {
                snprintf(note, note_size, "%s", e.msg);
                st = OPRUN_FAILED;
            }
        }
    }
    if (st == OPRUN_OK && sampler_run(oprun_once, &x, o->copies, so, r, note, note_size)) st = OPRUN_FAILED;
    if (st == OPRUN_OK && out0 && apr_plan_get_output(x.copy[0].plan, x.copy[0].out, out0, o->out_bytes, &e) != APR_OK) {
        snprintf(note, note_size, "%s", e.msg);
        st = OPRUN_FAILED;
    }
    for (int i = 0; i < o->copies; i++) {
        if (x.copy[i].plan) apr_plan_free(x.copy[i].plan);
        if (x.copy[i].g) apr_graph_free(x.copy[i].g);
    }
    return st;
}

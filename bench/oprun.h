/* oprun.h — one case as a one-node apr graph on one backend, planned and timed. */
#ifndef BENCH_OPRUN_H
#define BENCH_OPRUN_H

#include <stddef.h>

#include "apr/apr.h"
#include "operands.h"
#include "sampler.h"

typedef enum oprun_status {
    OPRUN_OK = 0,
    OPRUN_UNSUPPORTED = 1, /* the backend declined the node (note says why) */
    OPRUN_FAILED = 2,      /* a runtime failure (note says what) */
} oprun_status;

/* Builds one graph and plan per operand copy with only backend be, sets the input, and times
 * apr_plan_run with the sampler. When out0 is not NULL it receives copy 0's result afterwards
 * (o->out_bytes). note gets a one-line reason when the status is not OK. */
oprun_status oprun_case(apr_backend *be, const operands *o, const sampler_opts *so, sampler_result *r, float *out0,
                        char *note, size_t note_size);

#endif

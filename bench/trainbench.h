/* trainbench.h — training step speed of a whole model (apr-bench --train): tokens/s and the matmul
 * rate against the FMA peak measured in the same run. */
#ifndef BENCH_TRAINBENCH_H
#define BENCH_TRAINBENCH_H

#include "apr/apr.h"
#include "ceiling.h"
#include "opts.h"

struct llama_model;

/* Checks that o->method fits the model's base (LoRA a float one, QLoRA a quantized one), before any
 * measurement. Returns 0, or -1 after printing a one-line error. */
int trainbench_check(const opts *o, const struct llama_model *m);

/* Trains m (o->train) on every backend x thread count: a trainer built for each, a warm-up step, then
 * o->steps timed steps; prints a table (or JSON) to stdout. ceilings[] (measured at start-up) hold
 * the FMA peak per thread count; it is measured again right before each timed step and after the
 * last, and the highest of them all is the peak the rate is held to. loadavg (< 0: unknown) goes into
 * the header. Returns 0, or -1 after printing an error. */
int trainbench_run(const opts *o, const struct llama_model *m, apr_registry *reg, const char *const *backends,
                   int n_backends, const ceiling *ceilings, int n_ceilings, double loadavg);

#endif

/* modelbench.h — prefill and decode speed of a whole model, as ratios to its bandwidth floor. */
#ifndef BENCH_MODELBENCH_H
#define BENCH_MODELBENCH_H

#include "apr/apr.h"
#include "ceiling.h"
#include "opts.h"

/* A model file opened and checked, so that a bad path fails before any measurement. */
typedef struct modelbench_model modelbench_model;

/* Opens the GGUF at path as a llama model; NULL after printing a one-line error. */
modelbench_model *modelbench_load(const char *path);
void modelbench_free(modelbench_model *mm);
struct llama_model;
/* The llama model behind mm (llm/llama.h); it lives as long as mm. */
const struct llama_model *modelbench_llama(const modelbench_model *mm);

/* Runs mm (o->model) on every backend x thread count; prints a table (or JSON) to stdout. Returns 0,
 * or -1 after printing an error. The read bandwidth is measured on reader, at the sample's
 * thread count, right before every decode sample; each sample's ratio to the floor uses its own
 * measurement, and the table gives medians. reader must allow every count in o->threads.
 * ceilings[] (measured at start-up) go into the JSON document as they are. */
int modelbench_run(const opts *o, const modelbench_model *mm, apr_registry *reg, const char *const *backends, int n_backends,
                   const ceiling *ceilings, int n_ceilings, ceiling_reader *reader);

#endif

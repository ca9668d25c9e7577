/* hostbuf.h — large aligned host buffers for operands, filled with reproducible random values. */
#ifndef BENCH_HOSTBUF_H
#define BENCH_HOSTBUF_H

#include <stddef.h>
#include <stdint.h>

#include "apr/apr.h"

/* bytes rounded up to 2 MiB, 2 MiB aligned, transparent huge pages requested; NULL on failure.
 * Free with hostbuf_free(p, bytes). */
void *hostbuf_alloc(size_t bytes);
void hostbuf_free(void *p, size_t bytes);

/* Fills n elements of dtype t (f32, f16 or bf16) with uniform values in [lo, hi) from seed. */
void hostbuf_fill(void *p, apr_dtype t, int64_t n, float lo, float hi, uint64_t seed);

#endif

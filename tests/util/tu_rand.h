/* tu_rand.h — seeded random numbers for tests: one printable seed reproduces a whole run. */
#ifndef TU_RAND_H
#define TU_RAND_H

#include <stdint.h>

/* splitmix64: tiny, fast, and every 64-bit seed gives a good stream, so per-case seeds can be
 * derived by mixing instead of being stored. */
typedef struct tu_rng {
    uint64_t state;
} tu_rng;

/* The run's seed: APR_TEST_SEED (decimal or 0x hex) when set, so a failure can be replayed,
 * otherwise taken from the clock and the pid so parallel test processes differ. */
uint64_t tu_seed(void);

/* A seed for sub-stream `index` of `seed` (e.g. one per case), independent of the others. */
uint64_t tu_seed_mix(uint64_t seed, uint64_t index);

void tu_rng_init(tu_rng *r, uint64_t seed);
uint64_t tu_rng_u64(tu_rng *r);
/* Uniform in [lo, hi). */
double tu_rng_uniform(tu_rng *r, double lo, double hi);
/* Uniform integer in [lo, hi] (inclusive). */
int64_t tu_rng_int(tu_rng *r, int64_t lo, int64_t hi);

#endif

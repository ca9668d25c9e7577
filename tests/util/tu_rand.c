/* tu_rand.c — seeded random numbers for tests: one printable seed reproduces a whole run. */
#include "tu_rand.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

uint64_t tu_seed(void) {
    const char *env = getenv("APR_TEST_SEED");
    if (env && *env) return strtoull(env, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Printed seeds stay short (32 bits) so they are easy to paste back into APR_TEST_SEED. */
    return (uint32_t)((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16));
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t tu_seed_mix(uint64_t seed, uint64_t index) {
    uint64_t s = seed ^ (index * 0xd1b54a32d192ed03ull);
    return splitmix(&s);
}

void tu_rng_init(tu_rng *r, uint64_t seed) { r->state = seed; }

uint64_t tu_rng_u64(tu_rng *r) { return splitmix(&r->state); }

double tu_rng_uniform(tu_rng *r, double lo, double hi) {
    double u = (double)(tu_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); /* 53 bits in [0, 1) */
    return lo + (hi - lo) * u;
}

int64_t tu_rng_int(tu_rng *r, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1u;
    if (span == 0) return (int64_t)tu_rng_u64(r); /* the full 64-bit range */
    return lo + (int64_t)(tu_rng_u64(r) % span);
}

/* packtest.h — what the weight-packing test plugins (packtest.c, packold.c) share with their tests: the counters and the packed layout. */
#ifndef APR_PACKTEST_H
#define APR_PACKTEST_H

#include <stdint.h>

#define PACKTEST_MAGIC 0x5041434bu     /* "PACK": heads the counters and every packed copy */
#define PACKTEST_ROWS 4                /* rows per interleaved group; other row counts are declined */
#define PACKTEST_FAIL_BITS 0x7fa0fa11u /* a weight whose first f32 element has these bits (a NaN no
                                        * real weight holds) fails to pack with APR_ERR_DEVICE */

/* A plugin's instance (apr_backend_instance) is its one static set of counters, so a test can
 * read them after apr_backend_close too, while the registry keeps the plugin loaded. Every
 * instance of one plugin shares them, so tests compare counts before and after. */
typedef struct packtest_counters {
    uint32_t magic;      /* PACKTEST_MAGIC */
    int pack_calls;      /* weight_pack calls */
    int packs;           /* of those, the ones that returned APR_OK */
    int packed_frees;    /* buffer_free calls on packed copies */
    int packed_matmuls;  /* MATMUL nodes run that read a packed W */
    int plain_matmuls;   /* MATMUL nodes run that read W in its own layout */
    int get_rows;        /* GET_ROWS nodes run */
} packtest_counters;

/* The packed layout of an f32 weight W [K, N] (row n = W[n K .. n K + K)): groups of
 * PACKTEST_ROWS rows, each group k-major with its rows interleaved, and every value negated, so a
 * reader that takes the copy for the original gets visibly wrong numbers:
 *     packed[packtest_index(K, n, k)] = -W[n K + k]. */
static inline int64_t packtest_index(int64_t K, int64_t n, int64_t k) {
    return n / PACKTEST_ROWS * PACKTEST_ROWS * K + k * PACKTEST_ROWS + n % PACKTEST_ROWS;
}

#endif

/* peer.h — OpenBLAS as the peer to compare with, loaded at run time when it is installed. */
#ifndef BENCH_PEER_H
#define BENCH_PEER_H

#include <stdbool.h>

typedef struct peer peer;

/* Describes what was (or was not) found, for the report header. Strings live as long as the peer. */
typedef struct peer_info {
    bool loaded;
    const char *library;      /* the soname that loaded, or NULL */
    const char *corename;     /* openblas_get_corename(), or "" */
    const char *config;       /* openblas_get_config(), or "" */
    const char *coretype;     /* OPENBLAS_CORETYPE in effect, or "" */
    bool coretype_set_by_us;  /* true when apr-bench set OPENBLAS_CORETYPE before loading */
    const char *why_not;      /* when not loaded: why */
} peer_info;

/* Sets OPENBLAS_CORETYPE (SkylakeX with avx512f, Haswell with avx2, unless already set), then
 * dlopens libopenblas.so.0 or libopenblas.so. Never fails: *info says whether it loaded. The
 * returned peer (NULL when not loaded) is freed with peer_close. */
peer *peer_open(peer_info *info);
void peer_close(peer *p);

/* Thread count for the calls below (openblas_set_num_threads). */
void peer_set_threads(peer *p, int n);

/* Our matmul semantics: C[m][n] = sum_k X[m][k] * W[n][k], X M x K row-major, W N x K row-major,
 * C M x N row-major, all f32. M == 1 calls cblas_sgemv, otherwise cblas_sgemm(NoTrans, Trans). */
void peer_matmul(peer *p, int M, int N, int K, const float *w, const float *x, float *c);

#endif

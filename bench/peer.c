/* peer.c — OpenBLAS as the peer to compare with, loaded at run time when it is installed.
 *
 * Debian's OpenBLAS 0.3.21 does not recognise recent AMD cores and falls back to its slowest
 * kernels, so unless the user chose one we name the core type before dlopen (OpenBLAS reads the
 * variable while its constructor runs). */
#include "peer.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CBLAS enum values (cblas.h), declared here so OpenBLAS is not a build dependency. */
enum { PEER_ROW_MAJOR = 101, PEER_NO_TRANS = 111, PEER_TRANS = 112 };

typedef void (*peer_sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                              const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*peer_sgemv_fn)(int order, int ta, int m, int n, float alpha, const float *a, int lda, const float *x,
                              int incx, float beta, float *y, int incy);
typedef void (*peer_set_threads_fn)(int n);
typedef char *(*peer_str_fn)(void);

struct peer {
    void *dl;
    peer_sgemm_fn sgemm;
    peer_sgemv_fn sgemv;
    peer_set_threads_fn set_threads;
    char library[64];
    char corename[64];
    char config[256];
    char coretype[64];
};

static char peer_why[256];

peer *peer_open(peer_info *info) {
    memset(info, 0, sizeof *info);
    info->corename = info->config = info->coretype = "";
    const char *env = getenv("OPENBLAS_CORETYPE");
    if (!env || !*env) {
        __builtin_cpu_init();
        const char *type = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                           : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                              : NULL;
        if (type) {
            setenv("OPENBLAS_CORETYPE", type, 1);
            info->coretype_set_by_us = true;
        }
    }
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
    void *dl = NULL;
    const char *name = NULL;
    peer_why[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !dl; i++) {
        dl = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (dl) name = names[i];
        else if (!peer_why[0]) snprintf(peer_why, sizeof peer_why, "%s", dlerror());
    }
    if (!dl) {
        info->why_not = peer_why;
        return NULL;
    }
    peer *p = calloc(1, sizeof *p);
    if (!p) {
        dlclose(dl);
        info->why_not = "out of memory";
        return NULL;
    }
    p->dl = dl;
    *(void **)&p->sgemm = dlsym(dl, "cblas_sgemm");
    *(void **)&p->sgemv = dlsym(dl, "cblas_sgemv");
    *(void **)&p->set_threads = dlsym(dl, "openblas_set_num_threads");
    peer_str_fn corename, config;
    *(void **)&corename = dlsym(dl, "openblas_get_corename");
    *(void **)&config = dlsym(dl, "openblas_get_config");
    if (!p->sgemm || !p->sgemv) {
        snprintf(peer_why, sizeof peer_why, "%s lacks cblas_sgemm/cblas_sgemv", name);
        info->why_not = peer_why;
        peer_close(p);
        return NULL;
    }
    snprintf(p->library, sizeof p->library, "%s", name);
    snprintf(p->corename, sizeof p->corename, "%s", corename ? corename() : "unknown");
    snprintf(p->config, sizeof p->config, "%s", config ? config() : "");
    env = getenv("OPENBLAS_CORETYPE");
    snprintf(p->coretype, sizeof p->coretype, "%s", env ? env : "");
    info->loaded = true;
    info->library = p->library;
    info->corename = p->corename;
    info->config = p->config;
    info->coretype = p->coretype;
    return p;
}

void peer_close(peer *p) {
    if (!p) return;
    dlclose(p->dl);
    free(p);
}

void peer_set_threads(peer *p, int n) {
    if (p->set_threads) p->set_threads(n);
}

void peer_matmul(peer *p, int M, int N, int K, const float *w, const float *x, float *c) {
    if (M == 1) p->sgemv(PEER_ROW_MAJOR, PEER_NO_TRANS, N, K, 1.0f, w, K, x, 1, 0.0f, c, 1);
    else p->sgemm(PEER_ROW_MAJOR, PEER_NO_TRANS, PEER_TRANS, M, N, K, 1.0f, x, K, w, K, 0.0f, c, N);
}

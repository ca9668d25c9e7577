/* optim.c — the optimizer steps ADAMW and SGD (with momentum), written in place into parameters and their state. */
#include <math.h>
#include <stdbool.h>

#include "../common/msg.h"
#include "simd_ops.h"
#include "rows.h"
#include "vec.h"

/* The elements of a row are cut into chunks so that one long row (a 1-D parameter) still spreads
 * over every worker. */
#define ADAMW_CHUNK 4096

typedef struct adamw_job {
    const apr_node_desc *n;
    int64_t chunks_per_row, n_chunks;
    float h[APR_ADAMW_HP_COUNT];
} adamw_job;

/* The definition's operations, in its order and without fused multiply-adds, so each element
 * comes out as the reference computes it. */
static void adamw_span_strided(const adamw_job *j, char *w, const char *g, char *m, char *v, int64_t len) {
    const apr_node_desc *n = j->n;
    const int64_t sw = n->src[0].nb[0], sg = n->src[1].nb[0], sm = n->src[2].nb[0], sv = n->src[3].nb[0];
    const float *h = j->h, one_b1 = 1.0f - h[APR_ADAMW_BETA1], one_b2 = 1.0f - h[APR_ADAMW_BETA2];
    for (int64_t i = 0; i < len; i++) {
        float *pw = (float *)(w + i * sw), *pm = (float *)(m + i * sm), *pv = (float *)(v + i * sv);
        float gi = *(const float *)(g + i * sg) * h[APR_ADAMW_GSCALE];
        float mi = h[APR_ADAMW_BETA1] * *pm + one_b1 * gi;
        float vi = h[APR_ADAMW_BETA2] * *pv + one_b2 * gi * gi;
        float step = h[APR_ADAMW_WEIGHT_DECAY] * *pw + (mi * h[APR_ADAMW_C1]) / (sqrtf(vi * h[APR_ADAMW_C2]) + h[APR_ADAMW_EPS]);
        *pm = mi;
        *pv = vi;
        *pw = *pw - h[APR_ADAMW_LR] * step;
    }
}

static void adamw_span_dense(const adamw_job *j, float *w, const float *g, float *m, float *v, int64_t len) {
    const float *h = j->h;
    const vec_t b1 = vec_set1(h[APR_ADAMW_BETA1]), b2 = vec_set1(h[APR_ADAMW_BETA2]);
    const vec_t one_b1 = vec_set1(1.0f - h[APR_ADAMW_BETA1]), one_b2 = vec_set1(1.0f - h[APR_ADAMW_BETA2]);
    const vec_t lr = vec_set1(h[APR_ADAMW_LR]), eps = vec_set1(h[APR_ADAMW_EPS]), wd = vec_set1(h[APR_ADAMW_WEIGHT_DECAY]);
    const vec_t c1 = vec_set1(h[APR_ADAMW_C1]), c2 = vec_set1(h[APR_ADAMW_C2]), gs = vec_set1(h[APR_ADAMW_GSCALE]);
    int64_t i = 0;
    for (; i + VEC_W <= len; i += VEC_W) {
        vec_t gi = vec_mul(vec_load(g + i), gs);
        vec_t mi = vec_add(vec_mul(b1, vec_load(m + i)), vec_mul(one_b1, gi));
        vec_t vi = vec_add(vec_mul(b2, vec_load(v + i)), vec_mul(vec_mul(one_b2, gi), gi));
        vec_t wi = vec_load(w + i);
        vec_t step = vec_add(vec_mul(wd, wi), vec_div(vec_mul(mi, c1), vec_add(vec_sqrt(vec_mul(vi, c2)), eps)));
        vec_store(m + i, mi);
        vec_store(v + i, vi);
        vec_store(w + i, vec_sub(wi, vec_mul(lr, step)));
    }
    if (i < len) adamw_span_strided(j, (char *)(w + i), (const char *)(g + i), (char *)(m + i), (char *)(v + i), len - i);
}

static void adamw_worker(void *ctx, int ith, int nth) {
    const adamw_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *tw = &n->src[0], *tg = &n->src[1], *tm = &n->src[2], *tv = &n->src[3];
    const bool dense = tw->nb[0] == 4 && tg->nb[0] == 4 && tm->nb[0] == 4 && tv->nb[0] == 4;
    for (int64_t c = ith; c < j->n_chunks; c += nth) {
        const int64_t r = c / j->chunks_per_row, at = c % j->chunks_per_row * ADAMW_CHUNK;
        const int64_t len = tw->ne[0] - at < ADAMW_CHUNK ? tw->ne[0] - at : ADAMW_CHUNK;
        char *w = rows_ptr(tw, r) + at * tw->nb[0], *m = rows_ptr(tm, r) + at * tm->nb[0], *v = rows_ptr(tv, r) + at * tv->nb[0];
        const char *g = rows_ptr(tg, r) + at * tg->nb[0];
        if (dense) adamw_span_dense(j, (float *)w, (const float *)g, (float *)m, (float *)v, len);
        else adamw_span_strided(j, w, g, m, v, len);
    }
}

apr_status adamw_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    (void)err;
    (void)err_size;
    adamw_job j = {.n = n};
    const apr_tensor_desc *hp = &n->src_ext[0];
    for (int i = 0; i < APR_ADAMW_HP_COUNT; i++) j.h[i] = *(const float *)((const char *)hp->data + i * hp->nb[0]);
    const int64_t ne0 = n->src[0].ne[0];
    if (ne0 == 0 || rows_count(&n->src[0]) == 0) return APR_OK;
    j.chunks_per_row = (ne0 + ADAMW_CHUNK - 1) / ADAMW_CHUNK;
    j.n_chunks = j.chunks_per_row * rows_count(&n->src[0]);
    cpu_backend_run(be, adamw_worker, &j, 4 * ne0 * rows_count(&n->src[0]));
    return APR_OK;
}

/* ---------------------------------------------------------------- SGD */

typedef struct sgd_job {
    const apr_node_desc *n;
    int64_t chunks_per_row, n_chunks;
    float h[APR_SGD_HP_COUNT];
} sgd_job;

/* g' = g * gscale + weight_decay * w;  b = momentum * b + g';  w = w - lr * b: the definition's
 * operations in its order, without fused multiply-adds, as the reference computes them. */
static void sgd_span_strided(const sgd_job *j, char *w, const char *g, char *b, int64_t len) {
    const apr_node_desc *n = j->n;
    const int64_t sw = n->src[0].nb[0], sg = n->src[1].nb[0], sb = n->src[2].nb[0];
    const float *h = j->h;
    for (int64_t i = 0; i < len; i++) {
        float *pw = (float *)(w + i * sw), *pb = (float *)(b + i * sb);
        float gi = *(const float *)(g + i * sg) * h[APR_SGD_GSCALE] + h[APR_SGD_WEIGHT_DECAY] * *pw;
        float bi = h[APR_SGD_MOMENTUM] * *pb + gi;
        *pb = bi;
        *pw = *pw - h[APR_SGD_LR] * bi;
    }
}

static void sgd_span_dense(const sgd_job *j, float *w, const float *g, float *b, int64_t len) {
    const float *h = j->h;
    const vec_t lr = vec_set1(h[APR_SGD_LR]), mom = vec_set1(h[APR_SGD_MOMENTUM]);
    const vec_t wd = vec_set1(h[APR_SGD_WEIGHT_DECAY]), gs = vec_set1(h[APR_SGD_GSCALE]);
    int64_t i = 0;
    for (; i + VEC_W <= len; i += VEC_W) {
        vec_t wi = vec_load(w + i);
        vec_t gi = vec_add(vec_mul(vec_load(g + i), gs), vec_mul(wd, wi));
        vec_t bi = vec_add(vec_mul(mom, vec_load(b + i)), gi);
        vec_store(b + i, bi);
        vec_store(w + i, vec_sub(wi, vec_mul(lr, bi)));
    }
    if (i < len) sgd_span_strided(j, (char *)(w + i), (const char *)(g + i), (char *)(b + i), len - i);
}

static void sgd_worker(void *ctx, int ith, int nth) {
    const sgd_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *tw = &n->src[0], *tg = &n->src[1], *tb = &n->src[2];
    const bool dense = tw->nb[0] == 4 && tg->nb[0] == 4 && tb->nb[0] == 4;
    for (int64_t c = ith; c < j->n_chunks; c += nth) {
        const int64_t r = c / j->chunks_per_row, at = c % j->chunks_per_row * ADAMW_CHUNK;
        const int64_t len = tw->ne[0] - at < ADAMW_CHUNK ? tw->ne[0] - at : ADAMW_CHUNK;
        char *w = rows_ptr(tw, r) + at * tw->nb[0], *b = rows_ptr(tb, r) + at * tb->nb[0];
        const char *g = rows_ptr(tg, r) + at * tg->nb[0];
        if (dense) sgd_span_dense(j, (float *)w, (const float *)g, (float *)b, len);
        else sgd_span_strided(j, w, g, b, len);
    }
}

apr_status sgd_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    (void)err;
    (void)err_size;
    sgd_job j = {.n = n};
    const apr_tensor_desc *hp = &n->src[3];
    for (int i = 0; i < APR_SGD_HP_COUNT; i++) j.h[i] = *(const float *)((const char *)hp->data + i * hp->nb[0]);
    const int64_t ne0 = n->src[0].ne[0];
    if (ne0 == 0 || rows_count(&n->src[0]) == 0) return APR_OK;
    j.chunks_per_row = (ne0 + ADAMW_CHUNK - 1) / ADAMW_CHUNK;
    j.n_chunks = j.chunks_per_row * rows_count(&n->src[0]);
    cpu_backend_run(be, sgd_worker, &j, 3 * ne0 * rows_count(&n->src[0]));
    return APR_OK;
}

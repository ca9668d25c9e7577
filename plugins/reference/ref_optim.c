/* ref_optim.c — reference ADAMW, SGD and ACC: the optimizer steps and the gradient sum, written in place. */
#include <math.h>

#include "ref_ops.h"
#include "ref_tensor.h"

/* Each operation of the definition in f32, in its order (the build contracts nothing into FMAs). */
void refoptim_adamw(const apr_node_desc *n) {
    const apr_tensor_desc *w = &n->src[0], *g = &n->src[1], *m = &n->src[2], *v = &n->src[3], *hp = &n->src_ext[0];
    float h[APR_ADAMW_HP_COUNT];
    for (int i = 0; i < APR_ADAMW_HP_COUNT; i++) h[i] = (float)reftensor_getf(hp, i, 0, 0, 0);
    const float lr = h[APR_ADAMW_LR], b1 = h[APR_ADAMW_BETA1], b2 = h[APR_ADAMW_BETA2], eps = h[APR_ADAMW_EPS];
    const float wd = h[APR_ADAMW_WEIGHT_DECAY], c1 = h[APR_ADAMW_C1], c2 = h[APR_ADAMW_C2], gs = h[APR_ADAMW_GSCALE];
    const float one_b1 = 1.0f - b1, one_b2 = 1.0f - b2;
    for (int64_t i3 = 0; i3 < w->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < w->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < w->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < w->ne[0]; i0++) {
                    float gi = (float)reftensor_getf(g, i0, i1, i2, i3) * gs;
                    float mi = b1 * (float)reftensor_getf(m, i0, i1, i2, i3) + one_b1 * gi;
                    float vi = b2 * (float)reftensor_getf(v, i0, i1, i2, i3) + one_b2 * gi * gi;
                    float wi = (float)reftensor_getf(w, i0, i1, i2, i3);
                    float step = wd * wi + (mi * c1) / (sqrtf(vi * c2) + eps);
                    reftensor_setf(m, i0, i1, i2, i3, mi);
                    reftensor_setf(v, i0, i1, i2, i3, vi);
                    reftensor_setf(w, i0, i1, i2, i3, wi - lr * step);
                }
}

/* SGD with momentum, each operation of the definition in f32 and in its order (no FMA: the build
 * compiles ISO C, whose default contracts nothing): g' = g * gscale + weight_decay * w;
 * b = momentum * b + g'; w = w - lr * b. */
void refoptim_sgd(const apr_node_desc *n) {
    const apr_tensor_desc *w = &n->src[0], *g = &n->src[1], *b = &n->src[2], *hp = &n->src[3];
    float h[APR_SGD_HP_COUNT];
    for (int i = 0; i < APR_SGD_HP_COUNT; i++) h[i] = reftensor_getf(hp, i, 0, 0, 0);
    const float lr = h[APR_SGD_LR], mom = h[APR_SGD_MOMENTUM], wd = h[APR_SGD_WEIGHT_DECAY], gs = h[APR_SGD_GSCALE];
    for (int64_t i3 = 0; i3 < w->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < w->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < w->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < w->ne[0]; i0++) {
                    float wi = reftensor_getf(w, i0, i1, i2, i3);
                    float gs_g = reftensor_getf(g, i0, i1, i2, i3) * gs;
                    float wd_w = wd * wi;
                    float gi = gs_g + wd_w;
                    float mb = mom * reftensor_getf(b, i0, i1, i2, i3);
                    float bi = mb + gi;
                    float step = lr * bi;
                    reftensor_setf(b, i0, i1, i2, i3, bi);
                    reftensor_setf(w, i0, i1, i2, i3, wi - step);
                }
}

/* a = a + b in place, one f32 addition per element (b may be a itself). */
void refoptim_acc(const apr_node_desc *n) {
    const apr_tensor_desc *a = &n->src[0], *b = &n->src[1];
    for (int64_t i3 = 0; i3 < a->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < a->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < a->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < a->ne[0]; i0++) {
                    float sum = reftensor_getf(a, i0, i1, i2, i3) + reftensor_getf(b, i0, i1, i2, i3);
                    reftensor_setf(a, i0, i1, i2, i3, sum);
                }
}

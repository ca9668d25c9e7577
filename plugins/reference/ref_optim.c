/* ref_optim.c — reference ADAMW: the optimizer step, written in place into parameters and moments. */
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

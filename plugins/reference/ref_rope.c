/* ref_rope.c — reference ROPE and ROPE_GRAD: rotates pairs of dims by an angle that grows with the token position (the gradient by its transpose). */
#include <math.h>
#include <stdbool.h>

#include "../common/opcheck.h"
#include "ref_ops.h"
#include "ref_tensor.h"

void refrope_rotate(const apr_node_desc *n, bool transposed) {
    const apr_tensor_desc *x = &n->src[0], *pos = &n->src[1], *dst = &n->dst;
    const apr_tensor_desc *ff = opcheck_src_present(n, 2) ? &n->src[2] : NULL;
    int64_t D = x->ne[0], H = x->ne[1], T = x->ne[2];
    int64_t n_rot = n->iparams[0], half = n_rot / 2;
    bool split_half = n->iparams[1] == 1;
    double base = n->fparams[0], scale = n->fparams[1];
    for (int64_t t = 0; t < T; t++) {
        double p = reftensor_geti(pos, t, 0, 0, 0);
        for (int64_t h = 0; h < H; h++) {
            for (int64_t i = 0; i < half; i++) {
                /* The angle is computed directly from its definition in double, not by the running
                 * product fast kernels use, so it stays exact to a few ulps at long positions. */
                double theta = p * scale * pow(base, -2.0 * (double)i / (double)n_rot);
                if (ff) theta /= reftensor_getf(ff, i, 0, 0, 0);
                int64_t ia = split_half ? i : 2 * i;
                int64_t ib = split_half ? i + half : 2 * i + 1;
                double a = reftensor_getf(x, ia, h, t, 0), b = reftensor_getf(x, ib, h, t, 0);
                /* the transpose rotates by -theta: sin is odd, and negating s is exact */
                double c = cos(theta), s = transposed ? -sin(theta) : sin(theta);
                reftensor_setf(dst, ia, h, t, 0, (float)(a * c - b * s));
                reftensor_setf(dst, ib, h, t, 0, (float)(a * s + b * c));
            }
            for (int64_t d = n_rot; d < D; d++) reftensor_setf(dst, d, h, t, 0, reftensor_getf(x, d, h, t, 0));
        }
    }
}

void refrope_run(const apr_node_desc *n) { refrope_rotate(n, false); }

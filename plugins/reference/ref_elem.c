/* ref_elem.c — reference ADD, MUL, SCALE, SILU, GELU and SWIGLU: element-wise arithmetic. */
#include <math.h>

#include "ref_ops.h"
#include "ref_tensor.h"

/* dst = f(a, b) with b indexed modulo its shape; unary ops pass b = NULL. The activations are
 * evaluated in double so the only rounding left is the final one to f32. */
typedef double elem_fn(double a, double b, float param);

static void map(const apr_node_desc *n, const apr_tensor_desc *b, elem_fn *f) {
    const apr_tensor_desc *a = &n->src[0], *dst = &n->dst;
    for (int64_t i3 = 0; i3 < dst->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < dst->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < dst->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < dst->ne[0]; i0++) {
                    double va = reftensor_getf(a, i0, i1, i2, i3);
                    double vb = b ? reftensor_getf(b, i0 % b->ne[0], i1 % b->ne[1], i2 % b->ne[2], i3 % b->ne[3]) : 0.0;
                    reftensor_setf(dst, i0, i1, i2, i3, (float)f(va, vb, n->fparams[0]));
                }
}

static double silu(double x) { return x / (1.0 + exp(-x)); }

/* Sums and products of two floats are done in float: that is the one correctly rounded IEEE
 * result, which a detour through double could round twice. */
static double op_add(double a, double b, float p) { (void)p; return (float)a + (float)b; }
static double op_mul(double a, double b, float p) { (void)p; return (float)a * (float)b; }
static double op_scale(double a, double b, float s) { (void)b; return (float)a * s; }
static double op_silu(double a, double b, float p) { (void)b; (void)p; return silu(a); }
static double op_swiglu(double a, double b, float p) { (void)p; return silu(a) * b; }

static double op_gelu(double x, double b, float p) {
    (void)b;
    (void)p;
    const double sqrt_2_over_pi = 0.79788456080286535588;
    return 0.5 * x * (1.0 + tanh(sqrt_2_over_pi * (x + 0.044715 * x * x * x)));
}

void refelem_add(const apr_node_desc *n) { map(n, &n->src[1], op_add); }
void refelem_mul(const apr_node_desc *n) { map(n, &n->src[1], op_mul); }
void refelem_scale(const apr_node_desc *n) { map(n, NULL, op_scale); }
void refelem_silu(const apr_node_desc *n) { map(n, NULL, op_silu); }
void refelem_gelu(const apr_node_desc *n) { map(n, NULL, op_gelu); }
void refelem_swiglu(const apr_node_desc *n) { map(n, &n->src[1], op_swiglu); }

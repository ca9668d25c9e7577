/* cpu_supports.c — decides which nodes a CPU plugin runs, and says why not; baseline code (no vector instructions). */
#include "cpu_supports.h"

#include <stdint.h>
#include <stdio.h>

#include "apr/apr_quant.h"

#include "cpu_backend.h"
#include "msg.h"
#include "opcheck.h"

static const char *cpu_supports_dtype_name(uint32_t t) {
    const char *name = opcheck_dtype_name(t);
    return name ? name : "unknown";
}

/* A weight (MATMUL src0) or table (GET_ROWS src0) of a block type: why not, or NULL. */
static const char *cpu_supports_block(const apr_tensor_desc *t, int matmul, char *buf, size_t size) {
    const int64_t blk = opcheck_dtype_block(t->dtype);
    if (t->dtype == APR_Q8_K) return "q8_K is an activation format, not a weight";
    if (blk <= 1) return "not a block type";
    if (t->ne[0] % blk) {
        snprintf(buf, size, "ne[0] = %lld is not a multiple of the %s block (%lld)", (long long)t->ne[0],
                 cpu_supports_dtype_name(t->dtype), (long long)blk);
        return buf;
    }
    if (t->nb[0] != (int64_t)opcheck_dtype_size(t->dtype)) {
        snprintf(buf, size, "nb[0] = %lld, want the %s block size %zu (dense blocks)", (long long)t->nb[0],
                 cpu_supports_dtype_name(t->dtype), opcheck_dtype_size(t->dtype));
        return buf;
    }
    if (!supports_block_kernels(t->dtype, matmul)) return "no kernels for it are built into this plugin";
    return NULL;
}

static int cpu_supports_is_float(uint32_t t) { return t == APR_F32 || t == APR_F16 || t == APR_BF16; }

static int cpu_supports_same_shape(const apr_tensor_desc *a, const apr_tensor_desc *b) {
    for (int i = 0; i < APR_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i]) return 0;
    return 1;
}

static int cpu_supports_nonneg(const apr_tensor_desc *t) {
    for (int i = 0; i < APR_MAX_DIMS; i++)
        if (t->ne[i] < 0) return 0;
    return 1;
}

int cpu_supports_has_src(const apr_node_desc *n, int i) { return opcheck_src_present(n, (uint32_t)i); }

#define SUP_FAIL(...) return msg_set(why, why_size, APR_ERR_UNSUPPORTED, __VA_ARGS__)
#define SUP_BAD(...) return msg_set(why, why_size, APR_ERR_INVALID, __VA_ARGS__)
#define SUP_F32(t, what) \
    if ((t)->dtype != APR_F32) SUP_FAIL("%s: %s dtype %s not supported (f32 only)", op, what, cpu_supports_dtype_name((t)->dtype))

/* Dtypes and shapes this backend implements, per op. Structure the shared validator already
 * checked is re-checked where a kernel would read out of bounds otherwise. */
static apr_status cpu_supports_op(const apr_node_desc *n, char *why, size_t why_size) {
    const apr_tensor_desc *d = &n->dst, *a = &n->src[0], *b = &n->src[1];
    const char *op = "op";
    if (!cpu_supports_nonneg(d)) SUP_BAD("negative dimension in dst");
    for (uint32_t i = 0; i < n->n_src; i++)
        if (!cpu_supports_nonneg(opcheck_src(n, i))) SUP_BAD("negative dimension in src%u", i);
    switch (n->op) {
    case APR_OP_GET_ROWS:
        op = "get_rows";
        if (!cpu_supports_is_float(a->dtype) && opcheck_dtype_block(a->dtype) > 1) {
            char buf[120];
            const char *no = cpu_supports_block(a, 0, buf, sizeof buf);
            if (no) SUP_FAIL("get_rows: %s table: %s", cpu_supports_dtype_name(a->dtype), no);
        } else if (!cpu_supports_is_float(a->dtype)) SUP_FAIL("get_rows: table dtype %s not supported", cpu_supports_dtype_name(a->dtype));
        if (b->dtype != APR_I32) SUP_FAIL("get_rows: ids dtype %s not supported (i32 only)", cpu_supports_dtype_name(b->dtype));
        SUP_F32(d, "dst");
        if (a->ne[2] != 1 || a->ne[3] != 1 || b->ne[1] != 1 || b->ne[2] != 1 || b->ne[3] != 1 || d->ne[2] != 1 ||
            d->ne[3] != 1)
            SUP_FAIL("get_rows: batched tables or ids not supported");
        if (d->ne[0] != a->ne[0] || d->ne[1] != b->ne[0]) SUP_BAD("get_rows: dst shape does not match table and ids");
        return APR_OK;
    case APR_OP_MATMUL:
        op = "matmul";
        if (!cpu_supports_is_float(a->dtype) && opcheck_dtype_block(a->dtype) > 1) {
            char buf[120];
            const char *no = cpu_supports_block(a, 1, buf, sizeof buf);
            if (no) SUP_FAIL("matmul: %s weight: %s", cpu_supports_dtype_name(a->dtype), no);
        } else if (!cpu_supports_is_float(a->dtype)) SUP_FAIL("matmul: weight dtype %s not supported", cpu_supports_dtype_name(a->dtype));
        SUP_F32(b, "activation");
        SUP_F32(d, "dst");
        if (a->ne[0] != b->ne[0]) SUP_BAD("matmul: K differs (weight %lld, activations %lld)", (long long)a->ne[0], (long long)b->ne[0]);
        if (d->ne[0] != a->ne[1] || d->ne[1] != b->ne[1] || d->ne[2] != b->ne[2] || d->ne[3] != b->ne[3])
            SUP_BAD("matmul: dst shape does not match weight and activations");
        if (a->ne[2] == 0 || a->ne[3] == 0 || b->ne[2] % a->ne[2] || b->ne[3] % a->ne[3])
            SUP_BAD("matmul: activation batch dims are not multiples of the weight's");
        return APR_OK;
    case APR_OP_ADD:
    case APR_OP_MUL:
        op = n->op == APR_OP_ADD ? "add" : "mul";
        SUP_F32(a, "src0");
        SUP_F32(b, "src1");
        SUP_F32(d, "dst");
        if (!cpu_supports_same_shape(a, d)) SUP_BAD("%s: dst shape differs from src0", op);
        for (int i = 0; i < APR_MAX_DIMS; i++)
            if (b->ne[i] == 0 ? a->ne[i] != 0 : a->ne[i] % b->ne[i] != 0) SUP_BAD("%s: src1 does not repeat over src0 in dim %d", op, i);
        return APR_OK;
    case APR_OP_SCALE:
    case APR_OP_RMS_NORM:
    case APR_OP_SILU:
    case APR_OP_GELU:
        op = n->op == APR_OP_SCALE ? "scale" : n->op == APR_OP_RMS_NORM ? "rms_norm" : n->op == APR_OP_SILU ? "silu" : "gelu";
        SUP_F32(a, "src0");
        SUP_F32(d, "dst");
        if (!cpu_supports_same_shape(a, d)) SUP_BAD("%s: dst shape differs from src0", op);
        return APR_OK;
    case APR_OP_SWIGLU:
        op = "swiglu";
        SUP_F32(a, "gate");
        SUP_F32(b, "up");
        SUP_F32(d, "dst");
        if (!cpu_supports_same_shape(a, d) || !cpu_supports_same_shape(b, d)) SUP_BAD("swiglu: shapes differ");
        return APR_OK;
    case APR_OP_ROPE:
    case APR_OP_ROPE_GRAD: {
        op = n->op == APR_OP_ROPE ? "rope" : "rope_grad";
        SUP_F32(a, "src0");
        SUP_F32(d, "dst");
        if (b->dtype != APR_I32) SUP_FAIL("%s: positions dtype %s not supported (i32 only)", op, cpu_supports_dtype_name(b->dtype));
        if (!cpu_supports_same_shape(a, d)) SUP_BAD("%s: dst shape differs from src0", op);
        if (a->ne[3] != 1) SUP_FAIL("%s: ne[3] = %lld not supported (must be 1)", op, (long long)a->ne[3]);
        if (b->ne[0] != a->ne[2]) SUP_BAD("%s: %lld positions for %lld tokens", op, (long long)b->ne[0], (long long)a->ne[2]);
        int n_rot = n->iparams[0];
        if (n_rot < 0 || n_rot % 2 || n_rot > a->ne[0]) SUP_BAD("%s: n_rot %d must be even and <= %lld", op, n_rot, (long long)a->ne[0]);
        if (n->iparams[1] != 0 && n->iparams[1] != 1) SUP_FAIL("%s: layout %d not supported", op, n->iparams[1]);
        if (cpu_supports_has_src(n, 2)) {
            SUP_F32(&n->src[2], "freq factors");
            if (n->src[2].ne[0] < n_rot / 2) SUP_BAD("%s: %lld freq factors for %d pairs", op, (long long)n->src[2].ne[0], n_rot / 2);
        }
        return APR_OK;
    }
    case APR_OP_SOFTMAX:
        op = "softmax";
        SUP_F32(a, "src0");
        SUP_F32(d, "dst");
        if (!cpu_supports_same_shape(a, d)) SUP_BAD("softmax: dst shape differs from src0");
        if (cpu_supports_has_src(n, 1)) {
            SUP_F32(b, "mask");
            if (b->ne[0] != a->ne[0] || b->ne[1] != a->ne[1]) SUP_BAD("softmax: mask shape is not [N, R]");
        }
        return APR_OK;
    case APR_OP_ATTENTION: {
        op = "attention";
        const apr_tensor_desc *k = &n->src[1], *v = &n->src[2];
        SUP_F32(a, "q");
        SUP_F32(d, "dst");
        if (k->dtype != APR_F32 && k->dtype != APR_F16) SUP_FAIL("attention: k/v dtype %s not supported (f32, f16)", cpu_supports_dtype_name(k->dtype));
        if (v->dtype != k->dtype) SUP_BAD("attention: k is %s but v is %s", cpu_supports_dtype_name(k->dtype), cpu_supports_dtype_name(v->dtype));
        if (a->ne[3] != 1 || k->ne[3] != 1 || v->ne[3] != 1) SUP_FAIL("attention: ne[3] > 1 not supported");
        if (k->ne[0] != a->ne[0]) SUP_BAD("attention: q and k head sizes differ");
        if (v->ne[1] != k->ne[1] || v->ne[2] != k->ne[2]) SUP_BAD("attention: k and v shapes differ");
        if (k->ne[2] == 0 || a->ne[2] % k->ne[2]) SUP_BAD("attention: %lld heads not a multiple of %lld kv heads", (long long)a->ne[2], (long long)k->ne[2]);
        if (d->ne[0] != v->ne[0] || d->ne[1] != a->ne[2] || d->ne[2] != a->ne[1] || d->ne[3] != 1)
            SUP_BAD("attention: dst is not [Dv, H, T]");
        if (cpu_supports_has_src(n, 3)) {
            SUP_F32(&n->src[3], "mask");
            if (n->src[3].ne[0] != k->ne[1] || n->src[3].ne[1] != a->ne[1]) SUP_BAD("attention: mask is not [S, T]");
        }
        return APR_OK;
    }
    case APR_OP_CPY:
        op = "cpy";
        if (!cpu_supports_same_shape(a, d)) SUP_BAD("cpy: shapes differ");
        if (a->dtype == APR_I32 || d->dtype == APR_I32) {
            if (a->dtype != d->dtype) SUP_FAIL("cpy: %s to %s not supported", cpu_supports_dtype_name(a->dtype), cpu_supports_dtype_name(d->dtype));
            return APR_OK;
        }
        if (!cpu_supports_is_float(a->dtype) || !cpu_supports_is_float(d->dtype))
            SUP_FAIL("cpy: %s to %s not supported", cpu_supports_dtype_name(a->dtype), cpu_supports_dtype_name(d->dtype));
        return APR_OK;
    case APR_OP_CONCAT: {
        op = "concat";
        int dim = n->iparams[0];
        if (dim < 0 || dim >= APR_MAX_DIMS) SUP_BAD("concat: dim %d out of range", dim);
        if (!cpu_supports_is_float(a->dtype) && a->dtype != APR_I32) SUP_FAIL("concat: dtype %s not supported", cpu_supports_dtype_name(a->dtype));
        if (b->dtype != a->dtype || d->dtype != a->dtype) SUP_BAD("concat: dtypes differ");
        for (int i = 0; i < APR_MAX_DIMS; i++) {
            if (i == dim ? d->ne[i] != a->ne[i] + b->ne[i] : (a->ne[i] != d->ne[i] || b->ne[i] != d->ne[i]))
                SUP_BAD("concat: shapes do not join along dim %d", dim);
        }
        return APR_OK;
    }
    case APR_OP_SET_ROWS: {
        op = "set_rows";
        const apr_tensor_desc *ids = &n->src[2];
        if (!cpu_supports_is_float(a->dtype)) SUP_FAIL("set_rows: table dtype %s not supported", cpu_supports_dtype_name(a->dtype));
        if (b->dtype != APR_F32 && b->dtype != a->dtype)
            SUP_FAIL("set_rows: %s rows into a %s table not supported (f32 or the table's dtype)", cpu_supports_dtype_name(b->dtype),
                     cpu_supports_dtype_name(a->dtype));
        if (ids->dtype != APR_I32) SUP_FAIL("set_rows: ids dtype %s not supported (i32 only)", cpu_supports_dtype_name(ids->dtype));
        if (a->ne[2] != 1 || a->ne[3] != 1 || b->ne[2] != 1 || b->ne[3] != 1 || ids->ne[1] != 1 || ids->ne[2] != 1 || ids->ne[3] != 1)
            SUP_FAIL("set_rows: batched tables, rows or ids not supported");
        if (b->ne[0] != a->ne[0] || b->ne[1] != ids->ne[0]) SUP_BAD("set_rows: rows shape does not match table and ids");
        if (!cpu_same_tensor(d, a)) SUP_BAD("set_rows: dst is not the table itself");
        return APR_OK;
    }
    case APR_OP_ADAMW:
        op = "adamw";
        for (uint32_t i = 0; i < 4; i++)
            if (n->src[i].dtype != APR_F32) SUP_FAIL("adamw: src%u dtype %s not supported (f32 only)", i, cpu_supports_dtype_name(n->src[i].dtype));
        if (n->src_ext[0].dtype != APR_F32) SUP_FAIL("adamw: hyperparameters of dtype %s not supported (f32 only)",
                                                     cpu_supports_dtype_name(n->src_ext[0].dtype));
        if (!cpu_same_tensor(d, a)) SUP_BAD("adamw: dst is not the parameters themselves");
        return APR_OK;
    case APR_OP_MATMUL_GRAD_X:
        op = "matmul_grad_x";
        if (!cpu_supports_is_float(a->dtype) && opcheck_dtype_block(a->dtype) > 1) {
            char buf[120];
            const char *no = cpu_supports_block(a, 0, buf, sizeof buf); /* rows dequantized, as GET_ROWS's */
            if (no) SUP_FAIL("matmul_grad_x: %s weight: %s", cpu_supports_dtype_name(a->dtype), no);
        } else if (!cpu_supports_is_float(a->dtype)) SUP_FAIL("matmul_grad_x: weight dtype %s not supported", cpu_supports_dtype_name(a->dtype));
        SUP_F32(b, "dY");
        SUP_F32(d, "dst");
        if (b->ne[0] != a->ne[1]) SUP_BAD("matmul_grad_x: N differs (weight %lld, dY %lld)", (long long)a->ne[1], (long long)b->ne[0]);
        if (a->ne[2] == 0 || a->ne[3] == 0 || b->ne[2] % a->ne[2] || b->ne[3] % a->ne[3])
            SUP_BAD("matmul_grad_x: dY batch dims are not multiples of the weight's");
        if (d->ne[0] != a->ne[0] || d->ne[1] != b->ne[1] || d->ne[2] != b->ne[2] || d->ne[3] != b->ne[3])
            SUP_BAD("matmul_grad_x: dst shape does not match weight and dY");
        return APR_OK;
    case APR_OP_MATMUL_GRAD_W:
        op = "matmul_grad_w";
        SUP_F32(a, "X");
        SUP_F32(b, "dY");
        SUP_F32(d, "dst");
        if (b->ne[1] != a->ne[1] || b->ne[2] != a->ne[2] || b->ne[3] != a->ne[3]) SUP_BAD("matmul_grad_w: X and dY differ in M or batches");
        if (d->ne[0] != a->ne[0] || d->ne[1] != b->ne[0]) SUP_BAD("matmul_grad_w: dst is not [K, N]");
        if (d->ne[2] == 0 || d->ne[3] == 0 || a->ne[2] % d->ne[2] || a->ne[3] % d->ne[3])
            SUP_BAD("matmul_grad_w: dst batch dims do not divide X's");
        return APR_OK;
    case APR_OP_GET_ROWS_GRAD:
        op = "get_rows_grad";
        SUP_F32(a, "dY");
        SUP_F32(d, "dst");
        if (b->dtype != APR_I32) SUP_FAIL("get_rows_grad: ids dtype %s not supported (i32 only)", cpu_supports_dtype_name(b->dtype));
        if (a->ne[2] != 1 || a->ne[3] != 1 || b->ne[0] != a->ne[1] || b->ne[1] != 1 || b->ne[2] != 1 || b->ne[3] != 1 ||
            d->ne[0] != a->ne[0] || d->ne[2] != 1 || d->ne[3] != 1)
            SUP_BAD("get_rows_grad: shapes are not dY [D, N], ids [N], dst [D, R]");
        return APR_OK;
    case APR_OP_SUM_REPEATS:
        op = "sum_repeats";
        SUP_F32(a, "src0");
        SUP_F32(d, "dst");
        for (int i = 0; i < APR_MAX_DIMS; i++)
            if (d->ne[i] == 0 || a->ne[i] % d->ne[i]) SUP_BAD("sum_repeats: dst does not repeat over src0 in dim %d", i);
        return APR_OK;
    case APR_OP_RMS_NORM_GRAD:
    case APR_OP_SOFTMAX_GRAD:
    case APR_OP_SILU_GRAD:
    case APR_OP_GELU_GRAD:
        op = n->op == APR_OP_RMS_NORM_GRAD ? "rms_norm_grad" : n->op == APR_OP_SOFTMAX_GRAD ? "softmax_grad"
             : n->op == APR_OP_SILU_GRAD   ? "silu_grad"
                                           : "gelu_grad";
        SUP_F32(a, "src0");
        SUP_F32(b, "dY");
        SUP_F32(d, "dst");
        if (!cpu_supports_same_shape(a, d) || !cpu_supports_same_shape(b, d)) SUP_BAD("%s: shapes differ", op);
        return APR_OK;
    case APR_OP_ATTENTION_GRAD: {
        op = "attention_grad";
        const apr_tensor_desc *k = &n->src[1], *v = &n->src[2], *dO = &n->src_ext[0];
        SUP_F32(a, "q");
        SUP_F32(dO, "dO");
        SUP_F32(d, "dst");
        if (!cpu_supports_is_float(k->dtype)) SUP_FAIL("attention_grad: k/v dtype %s not supported", cpu_supports_dtype_name(k->dtype));
        if (v->dtype != k->dtype) SUP_BAD("attention_grad: k is %s but v is %s", cpu_supports_dtype_name(k->dtype), cpu_supports_dtype_name(v->dtype));
        if (a->ne[3] != 1 || k->ne[3] != 1 || v->ne[3] != 1) SUP_BAD("attention_grad: ne[3] > 1");
        if (k->ne[0] != a->ne[0]) SUP_BAD("attention_grad: q and k head sizes differ");
        if (v->ne[1] != k->ne[1] || v->ne[2] != k->ne[2]) SUP_BAD("attention_grad: k and v shapes differ");
        if (k->ne[2] == 0 || a->ne[2] % k->ne[2]) SUP_BAD("attention_grad: %lld heads not a multiple of %lld kv heads", (long long)a->ne[2], (long long)k->ne[2]);
        if (dO->ne[0] != v->ne[0] || dO->ne[1] != a->ne[2] || dO->ne[2] != a->ne[1] || dO->ne[3] != 1)
            SUP_BAD("attention_grad: dO is not [Dv, H, T]");
        if (d->ne[0] != a->ne[0] * a->ne[1] * a->ne[2] + k->ne[0] * k->ne[1] * k->ne[2] + v->ne[0] * v->ne[1] * v->ne[2] ||
            d->ne[1] != 1 || d->ne[2] != 1 || d->ne[3] != 1)
            SUP_BAD("attention_grad: dst is not the vector dQ | dK | dV");
        if (cpu_supports_has_src(n, 3)) {
            SUP_F32(&n->src[3], "mask");
            if (n->src[3].ne[0] != k->ne[1] || n->src[3].ne[1] != a->ne[1]) SUP_BAD("attention_grad: mask is not [S, T]");
        }
        return APR_OK;
    }
    case APR_OP_CROSS_ENTROPY:
    case APR_OP_CROSS_ENTROPY_GRAD:
        op = n->op == APR_OP_CROSS_ENTROPY ? "cross_entropy" : "cross_entropy_grad";
        SUP_F32(a, "logits");
        SUP_F32(d, "dst");
        if (b->dtype != APR_I32) SUP_FAIL("%s: targets dtype %s not supported (i32 only)", op, cpu_supports_dtype_name(b->dtype));
        if (a->ne[2] != 1 || a->ne[3] != 1 || b->ne[0] != a->ne[1] || b->ne[1] != 1 || b->ne[2] != 1 || b->ne[3] != 1)
            SUP_BAD("%s: shapes are not logits [V, T], targets [T]", op);
        if (n->op == APR_OP_CROSS_ENTROPY) {
            if (opcheck_nelements(d) != 1) SUP_BAD("cross_entropy: dst is not one element");
        } else {
            SUP_F32(&n->src[2], "g");
            if (opcheck_nelements(&n->src[2]) != 1) SUP_BAD("cross_entropy_grad: g is not one element");
            if (!cpu_supports_same_shape(a, d)) SUP_BAD("cross_entropy_grad: dst shape differs from logits");
        }
        return APR_OK;
    case APR_OP_SGD:
        op = "sgd";
        for (uint32_t i = 0; i < 4; i++)
            if (n->src[i].dtype != APR_F32) SUP_FAIL("sgd: src%u dtype %s not supported (f32 only)", i, cpu_supports_dtype_name(n->src[i].dtype));
        if (!cpu_supports_same_shape(a, b) || !cpu_supports_same_shape(a, &n->src[2])) SUP_BAD("sgd: shapes differ");
        if (opcheck_nelements(&n->src[3]) < APR_SGD_HP_COUNT) SUP_BAD("sgd: fewer than %d hyperparameters", APR_SGD_HP_COUNT);
        if (!cpu_same_tensor(d, a)) SUP_BAD("sgd: dst is not the parameters themselves");
        return APR_OK;
    case APR_OP_ACC:
        op = "acc";
        SUP_F32(a, "src0");
        SUP_F32(b, "src1");
        if (!cpu_supports_same_shape(a, b)) SUP_BAD("acc: shapes differ");
        if (!cpu_same_tensor(d, a)) SUP_BAD("acc: dst is not src0 itself");
        return APR_OK;
    case APR_OP_ARGMAX:
        op = "argmax";
        SUP_F32(a, "src0");
        if (d->dtype != APR_I32) SUP_FAIL("argmax: dst dtype %s not supported (i32 only)", cpu_supports_dtype_name(d->dtype));
        if (d->ne[0] != a->ne[1] || d->ne[1] != a->ne[2] || d->ne[2] != a->ne[3] || d->ne[3] != 1)
            SUP_BAD("argmax: dst is not [R, B2, B3]");
        return APR_OK;
    default:
        SUP_FAIL("op %u not supported by this backend", n->op);
    }
}

apr_status cpu_supports_node(void *backend, const apr_node_desc *n, char *why, size_t why_size) {
    (void)backend;
    if (!n) return msg_set(why, why_size, APR_ERR_INVALID, "NULL node");
    if (n->struct_size < APR_NODE_DESC_SIZE_V3) return msg_set(why, why_size, APR_ERR_ABI, "node struct too small");
    if (n->n_src > APR_MAX_SRC + APR_MAX_SRC_EXT)
        return msg_set(why, why_size, APR_ERR_INVALID, "n_src %u > %d", n->n_src, APR_MAX_SRC + APR_MAX_SRC_EXT);
    /* structure first (shared with every backend); the ABI wants UNSUPPORTED from supports() */
    if (opcheck_node(n, why, why_size) != APR_OK) return APR_ERR_UNSUPPORTED;
    apr_status st = cpu_supports_op(n, why, why_size);
    return st == APR_OK ? APR_OK : APR_ERR_UNSUPPORTED;
}

/* cases.c — the benchmark cases: op, shape, dtype, and the work and traffic each one implies. */
#include "cases.h"

#include <stdio.h>
#include <string.h>

#define CASES_MM(id_, dt, M, N, K, bnd, q, hl) \
    {.id = id_, .kind = CASES_MATMUL, .dtype = dt, .m = M, .n = N, .k = K, .bound = bnd, .quick = q, .headline = hl}
#define CASES_ATTN(id_, dt, D, H, HKV, T, S, c, bnd, q) \
    {.id = id_, .kind = CASES_ATTENTION, .dtype = dt, .d = D, .h = H, .hkv = HKV, .t = T, .s = S, .causal = c, \
     .bound = bnd, .quick = q}

static const cases_case cases_table[] = {
    /* decode: one token against a 4096 x 4096 weight, bound by reading the weight */
    CASES_MM("gemv-f32", APR_F32, 1, 4096, 4096, CASES_BOUND_READ, true, true),
    CASES_MM("gemv-f16", APR_F16, 1, 4096, 4096, CASES_BOUND_READ, true, false),
    /* prefill: 512 tokens at once */
    CASES_MM("gemm-prefill-f32", APR_F32, 512, 4096, 4096, CASES_BOUND_FMA, false, false),
    CASES_MM("gemm-prefill-f16", APR_F16, 512, 4096, 4096, CASES_BOUND_FMA, false, false),
    /* square f32 */
    CASES_MM("gemm-256", APR_F32, 256, 256, 256, CASES_BOUND_FMA, false, false),
    CASES_MM("gemm-512", APR_F32, 512, 512, 512, CASES_BOUND_FMA, false, false),
    CASES_MM("gemm-1024", APR_F32, 1024, 1024, 1024, CASES_BOUND_FMA, true, true),
    CASES_MM("gemm-2048", APR_F32, 2048, 2048, 2048, CASES_BOUND_FMA, false, false),
    /* row ops over 512 rows of 4096 */
    {.id = "rms_norm", .kind = CASES_RMS_NORM, .dtype = APR_F32, .rows = 512, .cols = 4096, .bound = CASES_BOUND_READ,
     .quick = true},
    {.id = "softmax", .kind = CASES_SOFTMAX, .dtype = APR_F32, .rows = 512, .cols = 4096, .bound = CASES_BOUND_READ},
    /* attention: 32 query heads over 8 kv heads */
    CASES_ATTN("attn-prefill-d128", APR_F32, 128, 32, 8, 512, 512, true, CASES_BOUND_FMA, false),
    CASES_ATTN("attn-prefill-d64", APR_F32, 64, 32, 8, 512, 512, true, CASES_BOUND_FMA, false),
    CASES_ATTN("attn-decode-d128", APR_F32, 128, 32, 8, 1, 4096, true, CASES_BOUND_READ, true),
    CASES_ATTN("attn-decode-d128-f16kv", APR_F16, 128, 32, 8, 1, 4096, true, CASES_BOUND_READ, false),
};

const cases_case *cases_all(int *n) {
    *n = (int)(sizeof cases_table / sizeof cases_table[0]);
    return cases_table;
}

const cases_case *cases_find(const char *id) {
    int n;
    const cases_case *all = cases_all(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(all[i].id, id)) return &all[i];
    return NULL;
}

/* Query-key pairs one head computes: with causal masking query t sees keys s <= t + (S - T). */
static double cases_attn_pairs(const cases_case *c) {
    if (!c->causal) return (double)c->s * (double)c->t;
    double pairs = 0;
    for (int64_t t = 0; t < c->t; t++) {
        int64_t seen = t + (c->s - c->t) + 1;
        pairs += (double)(seen < 0 ? 0 : seen > c->s ? c->s : seen);
    }
    return pairs;
}

double cases_flops(const cases_case *c) {
    switch (c->kind) {
    case CASES_MATMUL: return 2.0 * (double)c->m * (double)c->n * (double)c->k;
    case CASES_ATTENTION: return (double)c->h * cases_attn_pairs(c) * 4.0 * (double)c->d; /* q.k and p.v */
    default: return 0;
    }
}

double cases_bytes(const cases_case *c) {
    switch (c->kind) {
    case CASES_MATMUL:
        return (double)apr_dtype_row_bytes(c->dtype, c->k) * (double)c->n + 4.0 * (double)c->k * (double)c->m +
               4.0 * (double)c->n * (double)c->m;
    case CASES_RMS_NORM:
    case CASES_SOFTMAX: return 2.0 * 4.0 * (double)c->rows * (double)c->cols;
    case CASES_ATTENTION:
        return 4.0 * (double)c->d * (double)c->t * (double)c->h * 2.0 /* q and dst */ +
               2.0 * (double)apr_dtype_row_bytes(c->dtype, c->d) * (double)c->s * (double)c->hkv; /* k and v */
    }
    return 0;
}

void cases_describe(const cases_case *c, char *buf, size_t size) {
    switch (c->kind) {
    case CASES_MATMUL:
        if (c->m == 1) snprintf(buf, size, "gemv K%lld N%lld", (long long)c->k, (long long)c->n);
        else if (c->m == c->n && c->n == c->k) snprintf(buf, size, "gemm %lld^3", (long long)c->m);
        else snprintf(buf, size, "gemm M%lld K%lld N%lld", (long long)c->m, (long long)c->k, (long long)c->n);
        break;
    case CASES_RMS_NORM:
    case CASES_SOFTMAX:
        snprintf(buf, size, "%s %lld x %lld rows", c->kind == CASES_RMS_NORM ? "rms_norm" : "softmax",
                 (long long)c->cols, (long long)c->rows);
        break;
    case CASES_ATTENTION:
        snprintf(buf, size, "attn D%lld H%lld/%lld T%lld S%lld%s", (long long)c->d, (long long)c->h,
                 (long long)c->hkv, (long long)c->t, (long long)c->s, c->causal && c->t > 1 ? " causal" : "");
        break;
    }
}

bool cases_has_peer(const cases_case *c) { return c->kind == CASES_MATMUL && c->dtype == APR_F32; }

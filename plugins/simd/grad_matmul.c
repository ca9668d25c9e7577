/* grad_matmul.c — MATMUL_GRAD_X (dX = W^T dY, W of any weight dtype) and MATMUL_GRAD_W (dW = X dY^T over m and batches): gemm.c's blocking and gemm_tile.h's register tile over panels packed for the transposed product. */
#include "matmul.h"

#include <string.h>

#include "../common/msg.h"
#include "../common/opcheck.h"
#include "simd_ops.h"
#include "qmatmul.h"
#include "rows.h"

/*
 * Both gradients are one product C[p, q] = sum_r A(r, p) B(r, q), where C's row q is contiguous along p:
 *   GRAD_X  C = dX [K, M]:  p = k, q = m, r = n;      A(r, .) = W row n (along k),  B(., q) = dY row m (along n = r)
 *   GRAD_W  C = dW [K, N]:  p = k, q = n, r = (b, m); A(r, .) = X row m (along k),  B(r, .) = dY row m (along n = q)
 * (for GRAD_W r runs over the m of every batch b that folds onto the weight's batch, batch by batch).
 * As in gemm.c, A is packed per (p block, r block) into panels of GEMM_NR p-values, r-major, kept in
 * L2 and read by every q block; B per q block into panels of GEMM_MR q-values, r-major; the
 * micro-kernel holds a GEMM_MR x GEMM_NR tile of C in registers. A's rows run along p, so its
 * panels are plain copies of row pieces (converted from f16/bf16, or dequantized for a block-type W);
 * GRAD_X's B rows run along r, which is gemm.c's X packing; GRAD_W's run along q, copies again.
 * Every element of C is accumulated over r in blocks of GEMM_KC in the same order whatever the
 * work split, so results do not depend on the thread count.
 */

static inline int64_t gmm_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t gmm_ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* One unit of work: C[p0..p1) x [q0..q1) of one batch. */
typedef struct gmm_slice {
    uint32_t op;
    /* A: GRAD_X the W rows of this batch (row r at a + r * anb1); GRAD_W the X rows of batch group (see gmm_row) */
    const char *a;
    int64_t anb0, anb1, anb2, anb3;
    uint32_t atype;        /* f32/f16/bf16 or (GRAD_X) a block type */
    /* B: dY, row (batch, m) as for A */
    const char *b;
    int64_t bnb0, bnb1, bnb2, bnb3;
    /* GRAD_W: the reduction is G = r2 * r3 batches of Mr rows: index r is batch g = r / Mr (dims 2, 3 offsets
     * g % r2, g / r2 from the group's first batch, already in a and b), row m = r % Mr */
    int64_t Mr, r2;
    char *d;               /* C element [p, q] at d + q * dnb1 + p * dnb0 */
    int64_t dnb0, dnb1;
    int64_t R;             /* reduction length */
    int64_t p0, p1, q0, q1;
} gmm_slice;

/* Row r of a GRAD_W operand (base, strides nb1..nb3). */
static inline const char *gmm_row(const gmm_slice *s, const char *base, int64_t nb1, int64_t nb2, int64_t nb3, int64_t r) {
    const int64_t g = r / s->Mr, m = r % s->Mr;
    return base + m * nb1 + (g % s->r2) * nb2 + (g / s->r2) * nb3;
}

/* The scratch of one worker, in floats: the A block, the B block, a converted A row piece (with room
 * for the blocks that straddle its ends) and the dequantizer's own scratch. */
#define GMM_ROW_FLOATS ((int64_t)GEMM_NC + 2 * 256 + 16)
static int64_t gmm_scratch_floats(void) {
    return (int64_t)GEMM_NC * GEMM_KC + (int64_t)(GEMM_MC + GEMM_MR) * GEMM_KC + GMM_ROW_FLOATS +
           (qmatmul_dequant_scratch(GMM_ROW_FLOATS) + 63) / 4;
}

static inline int gmm_is_float(uint32_t t) { return t == APR_F32 || t == APR_F16 || t == APR_BF16; }

/* Where A's row r holds p0 .. p0 + n: *at the first byte, *bytes how many (whole blocks for a block type). */
static inline void gmm_a_span(const gmm_slice *s, int64_t r, int64_t p0, int64_t n, const char **at, int64_t *bytes) {
    const char *row = s->op == APR_OP_MATMUL_GRAD_X ? s->a + r * s->anb1 : gmm_row(s, s->a, s->anb1, s->anb2, s->anb3, r);
    if (gmm_is_float(s->atype)) {
        *at = row + p0 * s->anb0;
        *bytes = n * s->anb0;
        return;
    }
    const int64_t blk = opcheck_dtype_block(s->atype), b0 = p0 / blk, b1 = gmm_ceil(p0 + n, blk);
    *at = row + b0 * s->anb0;
    *bytes = (b1 - b0) * s->anb0;
}

/* A(r, p0 .. p0 + n) as contiguous f32: the row itself, or converted / dequantized into tmp. */
static const float *gmm_a_piece(const gmm_slice *s, const char *at, int64_t p0, int64_t n, float *tmp) {
    if (gmm_is_float(s->atype)) return rows_f32(at, n, s->anb0, s->atype, tmp);
    /* a block row: the whole blocks that cover [p0, p0 + n) */
    const int64_t blk = opcheck_dtype_block(s->atype), b0 = p0 / blk, b1 = gmm_ceil(p0 + n, blk);
    qmatmul_dequant_row(s->atype, at, (b1 - b0) * blk, tmp, tmp + GMM_ROW_FLOATS);
    return tmp + (p0 - b0 * blk);
}

/* A for p in [p, p + nc), r in [r0, r0 + kc) into panels of GEMM_NR p-values (panel j at bp + j * kc,
 * step r at + (r - r0) * GEMM_NR), zero past nc. */
static void gmm_pack_a(const gmm_slice *s, int64_t p, int64_t nc, int64_t r0, int64_t kc, float *bp, float *tmp) {
    const int dense = !gmm_is_float(s->atype) || s->anb0 == rows_esize(s->atype);
    const char *at, *next = NULL;
    int64_t bytes;
    gmm_a_span(s, r0, p, nc, &at, &bytes);
    for (int64_t k = 0; k < kc; k++) {
        /* each row piece is a short stream of its own that the hardware prefetcher picks up late:
         * the next one is asked for while this one is copied */
        if (k + 1 < kc) {
            gmm_a_span(s, r0 + k + 1, p, nc, &next, &bytes);
            for (int64_t o = 0; dense && o < bytes; o += 64) __builtin_prefetch(next + o, 0, 3);
        }
        const float *x = gmm_a_piece(s, at, p, nc, tmp);
        at = next;
        int64_t jr = 0;
        for (; jr + GEMM_NR <= nc; jr += GEMM_NR) {
            float *o = bp + jr * kc + k * GEMM_NR;
#pragma GCC unroll 4
            for (int v = 0; v < GEMM_NV; v++) vec_store(o + v * VEC_W, vec_load(x + jr + v * VEC_W));
        }
        if (jr < nc) {
            float *o = bp + jr * kc + k * GEMM_NR;
            int j = 0;
            for (; j < nc - jr; j++) o[j] = x[jr + j];
            for (; j < GEMM_NR; j++) o[j] = 0.0f;
        }
    }
}

/* B for q in [q, q + mc), r in [r0, r0 + kc) into panels of GEMM_MR q-values, r-major, zero past mc. */
static void gmm_pack_b(const gmm_slice *s, int64_t q, int64_t mc, int64_t r0, int64_t kc, float *ap) {
    if (s->op == APR_OP_MATMUL_GRAD_W) {
        /* dY row (b, m) runs along q: each step r copies GEMM_MR neighbours of one row */
        for (int64_t k = 0; k < kc; k++) {
            const char *row = gmm_row(s, s->b, s->bnb1, s->bnb2, s->bnb3, r0 + k) + q * s->bnb0;
            for (int64_t ir = 0; ir < mc; ir += GEMM_MR) {
                float *o = ap + ir * kc + k * GEMM_MR;
                const int nr = mc - ir < GEMM_MR ? (int)(mc - ir) : GEMM_MR;
                if (s->bnb0 == 4) memcpy(o, row + ir * 4, (size_t)nr * 4);
                else
                    for (int i = 0; i < nr; i++) memcpy(&o[i], row + (ir + i) * s->bnb0, 4);
                for (int i = nr; i < GEMM_MR; i++) o[i] = 0.0f;
            }
        }
        return;
    }
    /* GRAD_X: dY row m runs along r, as gemm.c packs X */
    for (int64_t ir = 0; ir < mc; ir += GEMM_MR) {
        float *panel = ap + ir * kc;
        const char *row[GEMM_MR];
        const int nr = mc - ir < GEMM_MR ? (int)(mc - ir) : GEMM_MR;
        for (int i = 0; i < nr; i++) row[i] = s->b + (q + ir + i) * s->bnb1 + r0 * s->bnb0;
        if (s->bnb0 == 4 && nr == GEMM_MR) {
            for (int64_t k = 0; k < kc; k++)
#pragma GCC unroll 16
                for (int i = 0; i < GEMM_MR; i++) panel[k * GEMM_MR + i] = ((const float *)row[i])[k];
            continue;
        }
        for (int64_t k = 0; k < kc; k++)
            for (int i = 0; i < GEMM_MR; i++) {
                if (i < nr) memcpy(&panel[k * GEMM_MR + i], row[i] + k * s->bnb0, 4);
                else panel[k * GEMM_MR + i] = 0.0f;
            }
    }
}

/* gemm.c's micro-kernel (static there): a GEMM_MR x GEMM_NR block of C from one B panel (a) and one A
 * panel (b); each r step loads GEMM_NV vectors of A and broadcasts GEMM_MR values of B. */
static inline __attribute__((always_inline)) void gmm_micro(int64_t kc, const float *restrict a, const float *restrict b,
                                                            vec_t acc[GEMM_MR][GEMM_NV]) {
#pragma GCC unroll 16
    for (int r = 0; r < GEMM_MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vec_zero();
    for (int64_t k = 0; k < kc; k++) {
        vec_t bv[GEMM_NV];
#pragma GCC unroll 4
        for (int v = 0; v < GEMM_NV; v++) bv[v] = vec_load(b + k * GEMM_NR + v * VEC_W);
#pragma GCC unroll 16
        for (int r = 0; r < GEMM_MR; r++) {
            vec_t av = vec_set1(a[k * GEMM_MR + r]);
#pragma GCC unroll 4
            for (int v = 0; v < GEMM_NV; v++) acc[r][v] = vec_fma(av, bv[v], acc[r][v]);
        }
    }
}

/* C rows [q, q + mr) x columns [p, p + nr) = (first ? 0 : C) + the tile. */
static void gmm_tile(const gmm_slice *s, const float *a, const float *b, int64_t kc, int64_t q, int64_t p, int mr, int nr,
                     int first) {
    vec_t acc[GEMM_MR][GEMM_NV];
    gmm_micro(kc, a, b, acc);
    if (mr == GEMM_MR && nr == GEMM_NR && s->dnb0 == 4) {
#pragma GCC unroll 16
        for (int r = 0; r < GEMM_MR; r++) {
            float *c = (float *)(s->d + (q + r) * s->dnb1 + p * 4);
#pragma GCC unroll 4
            for (int v = 0; v < GEMM_NV; v++) vec_store(c + v * VEC_W, first ? acc[r][v] : vec_add(vec_load(c + v * VEC_W), acc[r][v]));
        }
        return;
    }
    float t[GEMM_MR][GEMM_NR];
    for (int r = 0; r < GEMM_MR; r++)
        for (int v = 0; v < GEMM_NV; v++) vec_store(&t[r][v * VEC_W], acc[r][v]);
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) {
            float *c = (float *)(s->d + (q + r) * s->dnb1 + (p + j) * s->dnb0);
            *c = first ? t[r][j] : *c + t[r][j];
        }
}

static void gmm_slice_run(const gmm_slice *s, float *scratch) {
    if (s->R == 0) { /* an empty sum */
        const float zero = 0.0f;
        for (int64_t q = s->q0; q < s->q1; q++)
            for (int64_t p = s->p0; p < s->p1; p++) memcpy(s->d + q * s->dnb1 + p * s->dnb0, &zero, 4);
        return;
    }
    float *bp = scratch;                                      /* [GEMM_NC x GEMM_KC] packed A block */
    float *ap = bp + (int64_t)GEMM_NC * GEMM_KC;              /* [(GEMM_MC + GEMM_MR) x GEMM_KC] packed B block */
    float *tmp = ap + (int64_t)(GEMM_MC + GEMM_MR) * GEMM_KC; /* one converted A row piece, then the dequantizer's */
    for (int64_t jc = s->p0; jc < s->p1; jc += GEMM_NC) {
        const int64_t nc = gmm_min(GEMM_NC, s->p1 - jc);
        for (int64_t pc = 0; pc < s->R; pc += GEMM_KC) {
            const int64_t kc = gmm_min(GEMM_KC, s->R - pc);
            gmm_pack_a(s, jc, nc, pc, kc, bp, tmp);
            for (int64_t ic = s->q0; ic < s->q1; ic += GEMM_MC) {
                const int64_t mc = gmm_min(GEMM_MC, s->q1 - ic);
                gmm_pack_b(s, ic, mc, pc, kc, ap);
                for (int64_t jr = 0; jr < nc; jr += GEMM_NR) {
                    const int nr = (int)gmm_min(GEMM_NR, nc - jr);
                    for (int64_t ir = 0; ir < mc; ir += GEMM_MR)
                        gmm_tile(s, ap + ir * kc, bp + jr * kc, kc, ic + ir, jc + jr, (int)gmm_min(GEMM_MR, mc - ir), nr, pc == 0);
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- the split over workers */

/* Units are (batch of C, p chunk, q chunk), p first so that each worker packs its own part of A. */
typedef struct gmm_plan {
    const apr_node_desc *n;
    cpu_backend *be;
    int64_t P, Q, batches; /* C is [P, Q, batches] */
    int64_t p_chunk, q_chunk, units_p, units_q, n_units;
} gmm_plan;

static void gmm_worker(void *ctx, int ith, int nth) {
    const gmm_plan *pl = ctx;
    const apr_node_desc *n = pl->n;
    const apr_tensor_desc *s0 = &n->src[0], *dy = &n->src[1], *d = &n->dst;
    long long u0, u1;
    tpool_split(pl->n_units, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t uq = u % pl->units_q, up = (u / pl->units_q) % pl->units_p, bt = u / (pl->units_q * pl->units_p);
        const int64_t b2 = bt % d->ne[2], b3 = bt / d->ne[2];
        gmm_slice s = {.op = n->op, .atype = s0->dtype, .anb0 = s0->nb[0], .anb1 = s0->nb[1], .anb2 = s0->nb[2], .anb3 = s0->nb[3],
                       .bnb0 = dy->nb[0], .bnb1 = dy->nb[1], .bnb2 = dy->nb[2], .bnb3 = dy->nb[3],
                       .d = (char *)d->data + b2 * d->nb[2] + b3 * d->nb[3], .dnb0 = d->nb[0], .dnb1 = d->nb[1]};
        if (n->op == APR_OP_MATMUL_GRAD_X) {
            /* dX batch (b2, b3) reads W batch (b2 / (B2 / Bw2), b3 / (B3 / Bw3)) */
            const int64_t r2 = dy->ne[2] / s0->ne[2], r3 = dy->ne[3] / s0->ne[3];
            s.a = (const char *)s0->data + (b2 / r2) * s0->nb[2] + (b3 / r3) * s0->nb[3];
            s.b = (const char *)dy->data + b2 * dy->nb[2] + b3 * dy->nb[3];
            s.R = s0->ne[1];
        } else {
            /* dW batch (b2, b3) sums X and dY batches [b2 r2, (b2 + 1) r2) x [b3 r3, (b3 + 1) r3) */
            const int64_t r2 = s0->ne[2] / d->ne[2], r3 = s0->ne[3] / d->ne[3];
            s.a = (const char *)s0->data + b2 * r2 * s0->nb[2] + b3 * r3 * s0->nb[3];
            s.b = (const char *)dy->data + b2 * r2 * dy->nb[2] + b3 * r3 * dy->nb[3];
            s.Mr = s0->ne[1];
            s.r2 = r2;
            s.R = s0->ne[1] * r2 * r3;
        }
        s.p0 = up * pl->p_chunk;
        s.p1 = gmm_min(s.p0 + pl->p_chunk, pl->P);
        s.q0 = uq * pl->q_chunk;
        s.q1 = gmm_min(s.q0 + pl->q_chunk, pl->Q);
        gmm_slice_run(&s, (float *)pl->be->scratch[ith]);
    }
}

static apr_status gmm_run(cpu_backend *be, const apr_node_desc *n, const char *op, char *err, size_t err_size) {
    const apr_tensor_desc *d = &n->dst;
    gmm_plan pl = {.n = n, .be = be, .P = d->ne[0], .Q = d->ne[1], .batches = d->ne[2] * d->ne[3]};
    if (pl.P == 0 || pl.Q == 0 || pl.batches == 0) return APR_OK;
    if (cpu_backend_reserve(be, (size_t)gmm_scratch_floats() * sizeof(float)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "%s: cannot allocate packing buffers", op);
    const int nth = be->n_threads;
    /* p chunks of whole 64 columns (and whole weight blocks, so none is dequantized twice); too few
     * units for the workers: q split too, in whole register tiles */
    const int64_t blk = opcheck_dtype_block(n->src[0].dtype), align = blk > 64 ? blk : 64;
    const int64_t want_p = pl.batches >= nth ? 1 : gmm_ceil(nth, pl.batches);
    pl.p_chunk = gmm_ceil(gmm_ceil(pl.P, want_p), align) * align;
    pl.units_p = gmm_ceil(pl.P, pl.p_chunk);
    const int64_t have = pl.batches * pl.units_p, want_q = have >= nth ? 1 : gmm_ceil(nth, have);
    pl.q_chunk = gmm_ceil(gmm_ceil(pl.Q, want_q), GEMM_MR) * GEMM_MR;
    pl.units_q = gmm_ceil(pl.Q, pl.q_chunk);
    pl.n_units = pl.batches * pl.units_p * pl.units_q;
    const int64_t R = n->op == APR_OP_MATMUL_GRAD_X ? n->src[0].ne[1] : opcheck_nelements(&n->src[0]) / (pl.P ? pl.P : 1);
    cpu_backend_run(be, gmm_worker, &pl, pl.P * pl.Q * pl.batches * (R + 1));
    return APR_OK;
}

apr_status matmul_grad_x_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    return gmm_run(be, n, "matmul_grad_x", err, err_size);
}

apr_status matmul_grad_w_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    return gmm_run(be, n, "matmul_grad_w", err, err_size);
}

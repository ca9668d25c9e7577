/* qpack.h — packed weights on cpu-x86: 16 rows of Q4_0 / Q5_0 / Q8_0 / Q4_K / Q6_K blocks interleaved into one stream, and the MATMUL that reads them. */
#ifndef APR_X86_QPACK_H
#define APR_X86_QPACK_H

/*
 * Why: a decode matmul reads each weight row once. Row by row, every 18-byte Q4_0 block costs
 * its own unpacking and a fresh read of the 32 activation values, so one core streams well below
 * a plain read; sixteen rows side by side as sixteen streams are worse still. So weight_pack
 * rewrites a weight once, at load, as one stream in which each block position of 16 consecutive
 * rows lies together ("x16"):
 *
 *   group g (rows 16 g .. 16 g + 15), block b (elements 32 b .. 32 b + 31), QPACK_BLOCK_BYTES(t):
 *     d[16]     f16: the block scale of row 16 g + i
 *     qs[T][16] uint32: word t of lane i = bytes 4 t .. 4 t + 3 of row i's block quants
 *               (Q4_0: T = 4, nibbles as stored; Q8_0: T = 8, each byte xor 0x80 so it is unsigned)
 *
 * Q5_0 (16 x 22 B) is Q4_0's layout with the fifth bits between d and qs, the nibbles at 96: eight
 * uint64 masks, bit 4 i + j of mask t the fifth bit of row i's element 4 t + j, so that mask t
 * marks exactly the bytes of nibble word t (t < 4: the low nibbles of qs word t, t >= 4: the high
 * nibbles of word t - 4) to which the kernels add 16, with one masked add.
 *
 * so one 64-byte load gives the same 4 quant bytes of 16 rows, and vpdpbusd against the matching
 * 4 activation bytes broadcast forms 16 rows' partial dots at once: the activation is read once
 * per 16 rows and nothing is shuffled. Rows past N in the last group are zero (scales and quants)
 * and never stored. Groups follow each other; a weight of K elements has K / 32 blocks per group.
 *
 * The K-quants keep their arithmetic and size but not their bit layout (super-blocks of 256):
 *
 *   Q4_K (16 x 148 B): d[16] f16, dmin[16] f16, sc[8][16] u8, m[8][16] u8 (the 6-bit scales and
 *     mins of sub-block j, unpacked), then per pair p of sub-blocks qs[p][8][16] uint32: word t of
 *     lane i = bytes 32 p + 4 t .. + 3 of row i's qs (low nibbles: sub-block 2 p, elements 4 t..;
 *     high nibbles: sub-block 2 p + 1);
 *   Q6_K (16 x 210 B): d[16] f16, sc[16][16] int8, then per group G of 64 elements
 *     lo[8][16] uint32 (byte b of word t: q[64 G + 4 t + b] & 15 | (q[64 G + 32 + 4 t + b] & 15) << 4)
 *     and hi[4][16] uint32 (byte b of word u: the top 2 bits of q at 64 G + 8 u + b, 64 G + 32 + 8 u + b,
 *     64 G + 8 u + 4 + b, 64 G + 36 + 8 u + b, from bit 0 up), q the 6-bit value 0..63.
 *   Activation rows are arrays of apr_block_q8_K, as for the row kernels; a sub-block's dot starts
 *   from -32 (Q6_K) times its bsums, and Q4_K subtracts dmin * sum_j m_j * (the sub-block sums).
 *
 * The packed buffer (APR_BUFFER_PACKED) is one aligned allocation: a qpack_head, then the groups at
 * host_ptr = the allocation + QPACK_HEAD_BYTES; handle points at the head, so hostmem_free frees it.
 *
 * Activation rows (qact_quantize_row_packed) are Q8_0-rounded exactly as for the row kernels:
 *   q[K]        int8, natural order
 *   d[K / 32]   f32 block scales
 *   c[K / 32]   int32 -off * (sum of the block's q): off = 8 (Q4_0's nibble offset), 16 (Q5_0's) or 128 (Q8_0's bias)
 * each part starting on a 64-byte boundary.
 *
 * Each (weight row, activation row) dot is sum over blocks b, in order, of
 *     float(c_b + sum_t dot(qs_t, a_t)) * (d_w[b] * d_a[b])
 * accumulated in one f32 lane, whatever the tile or thread count.
 */

#include <stdint.h>

#include "apr/apr_abi.h"
#include "apr/apr_quant.h"
#include "../../common/cpu_backend.h"
#include "qmatmul.h"

#define QPACK_ROWS 16
#define QPACK_MAGIC 0x4b435051u /* "QPCK" */
#define QPACK_HEAD_BYTES 64

typedef struct qpack_head {
    uint32_t magic;       /* QPACK_MAGIC */
    uint32_t dtype;       /* APR_Q4_0, APR_Q5_0, APR_Q8_0, APR_Q4_K or APR_Q6_K */
    int64_t K;            /* elements per row */
    int64_t N;            /* rows */
    int64_t groups;       /* ceil(N / 16) */
    int64_t group_bytes;  /* bytes of one group: K / block elements blocks of qpack_block_bytes */
} qpack_head;

/* Elements and bytes of one packed block position of 16 rows (0 for a format without a layout). */
static inline int64_t qpack_block_elems(uint32_t dtype) { return dtype == APR_Q4_K || dtype == APR_Q6_K ? APR_QK_K : APR_QK; }
static inline int64_t qpack_block_bytes(uint32_t dtype) {
    switch (dtype) {
    case APR_Q4_0: return 16 * 18;
    case APR_Q8_0: return 16 * 34;
    case APR_Q5_0: return 16 * 22;
    case APR_Q4_K: return 16 * 148;
    case APR_Q6_K: return 16 * 210;
    default: return 0;
    }
}
/* Offsets inside a Q4_K / Q6_K block position. */
#define QPACK_Q4K_SC 64
#define QPACK_Q4K_M 192
#define QPACK_Q4K_QS 320
#define QPACK_Q6K_SC 32
#define QPACK_Q6K_Q 288
#define QPACK_Q6K_GROUP 768 /* lo[8][16] + hi[4][16] words */

/* ---- qact.c: activation rows for the packed kernels */
int64_t QDOT_NAME(qact_packed_row_bytes)(int64_t K);
void QDOT_NAME(qact_quantize_row_packed)(uint32_t wtype, const float *x, int64_t K, void *dst);

/* ---- qdot_pack.c (Q4_0 / Q5_0 / Q8_0) and qdot_packk.c (Q4_K / Q6_K): the kernels; a lookup
 * answers NULL for a format this copy has no kernel for (weight_pack then declines it) */

/* out[j * os + 16 r + i] = the dot of row i of group r (r < ng consecutive groups from w) with
 * activation row j < na (a + j * as); the last group stores only its rows i < nr (1..16). K a
 * multiple of 32; as in bytes, os in floats. */
typedef void qpack_dot_fn(int64_t K, const char *w, int64_t ng, int nr, const char *a, int64_t as, int na,
                          float *out, int64_t os);
qpack_dot_fn *QDOT_NAME(qpack_dot_lookup)(uint32_t wtype);

/* Decode with one activation row, Q4_0 / Q5_0 / Q8_0: one round computes, for each stream s <
 * QPACK_STREAMS with w[s] != NULL, out[s][i] = the dot of row i of the group at w[s] with the
 * activation row a for the rows i whose bit is set in keep[s], the streams advancing through their
 * groups together. The groups may belong to different weights of one K (a fused decode of several
 * matmuls that read the same activation row). w[0] != NULL. Each row's sum is the one qpack_dot_fn
 * forms. NULL for the formats without one. */
#ifndef QPACK_STREAMS
#define QPACK_STREAMS 4 /* see qp_round in qdot_pack.c */
#endif
typedef void qpack_round_fn(int64_t K, const char *const *w, float *const *out, const uint16_t *keep, const char *a);
qpack_round_fn *QDOT_NAME(qpack_round_lookup)(uint32_t wtype);
qpack_dot_fn QDOT_NAME(qpack_dot_q4_K), QDOT_NAME(qpack_dot_q6_K); /* qdot_packk.c */
#if !(defined(QDOT_VNNI) && QDOT_VNNI)
int64_t qact_packed_row_bytes_vnni(int64_t K);
void qact_quantize_row_packed_vnni(uint32_t wtype, const float *x, int64_t K, void *dst);
qpack_dot_fn *qpack_dot_lookup_vnni(uint32_t wtype);
qpack_round_fn *qpack_round_lookup_vnni(uint32_t wtype);
#if APR_X86_LEVEL == 2
int64_t qact_packed_row_bytes_avxvnni(int64_t K);
void qact_quantize_row_packed_avxvnni(uint32_t wtype, const float *x, int64_t K, void *dst);
qpack_dot_fn *qpack_dot_lookup_avxvnni(uint32_t wtype);
qpack_round_fn *qpack_round_lookup_avxvnni(uint32_t wtype);
#endif
#endif

/* ---- qpack.c */

/* The head of a packed buffer, or NULL when buf is not one of ours. */
const qpack_head *qpack_of(const apr_buffer *buf);
/* Runs a MATMUL whose src[0] is a packed buffer (called by qmatmul_run). */
apr_status qpack_matmul_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size);

/* Decode matmuls that read one activation row run fused, up to QPACK_MAX_PARTS at a time (see
 * qpack_part in qpack.c). qpack_group_len: how many of nodes[0..n) from the first one pass can
 * run: each with a packed weight of the first's format and K that has a round kernel, the same X
 * (one row) and a dense dst; 0 when not even the first. qpack_matmul_run_group runs such a group. */
#define QPACK_MAX_PARTS 4
int qpack_group_len(const cpu_backend *be, const apr_node_desc *const *nodes, int n);
apr_status qpack_matmul_run_group(cpu_backend *be, const apr_node_desc *const *nodes, int n, char *err, size_t err_size);
/* Fills be->ahead[1..] with what each helper's share of the round pass over nodes[0..n) reads
 * first (the first rounds of each of its streams, up to half of L2), as qpack_run_rounds will
 * split it; leaves be->ahead empty when the first node is not roundable. */
void qpack_prefetch_plan(cpu_backend *be, const apr_node_desc *const *nodes, int n);

#endif

/* qpack.c — weight_pack for cpu-x86 (Q4_0 / Q5_0 / Q8_0 / Q4_K / Q6_K weights rewritten 16 rows interleaved) and the MATMUL over packed weights. */
#include <stdlib.h>
#include <string.h>

#include "../../common/hostmem.h"
#include "../../common/msg.h"
#include "qpack.h"

/*
 * Packing runs once per weight, split over the workers by groups. The matmul mirrors qmatmul.c:
 * decode (at most 4 activation rows, several workers; or one row and a round kernel) is one
 * dispatch in which every worker rounds the activation rows itself and then walks its own share
 * of the units of groups, or with one row of Q4_0 / Q5_0 / Q8_0 its rounds of QPACK_STREAMS streams,
 * stealing from the others' once done (tpool_steal); prefill rounds all rows
 * into the shared scratch first, then splits (batch, chunk of groups) units, each walking its
 * groups in L2-sized pieces against tiles of 4 activation rows.
 */

/* The variant's activation rounding and kernel, for the backend's qpath: the 32-element formats
 * read qact_quantize_row_packed rows, the K-quants the q8_K rows of the row kernels. */
typedef struct qpack_variant {
    int64_t (*row_bytes)(uint32_t wtype, int64_t K);
    void (*quant)(uint32_t wtype, const float *x, int64_t K, void *dst);
    qpack_dot_fn *dot;
    qpack_round_fn *round; /* NULL for the K-quants */
} qpack_variant;

static int64_t qpack_row_bytes(uint32_t wtype, int64_t K) { (void)wtype; return qact_packed_row_bytes(K); }
static int64_t qpack_row_bytes_vnni(uint32_t wtype, int64_t K) { (void)wtype; return qact_packed_row_bytes_vnni(K); }
#if APR_X86_LEVEL == 2
static int64_t qpack_row_bytes_avxvnni(uint32_t wtype, int64_t K) { (void)wtype; return qact_packed_row_bytes_avxvnni(K); }
#endif

static qpack_variant qpack_variant_for(const cpu_backend *be, uint32_t dtype) {
    const int kq = dtype == APR_Q4_K || dtype == APR_Q6_K;
    qpack_variant v = {kq ? qact_row_bytes : qpack_row_bytes, kq ? qact_quantize_row : qact_quantize_row_packed,
                       qpack_dot_lookup(dtype), qpack_round_lookup(dtype)};
    if (be->qpath == X86_QDOT_VNNI) {
        v.row_bytes = kq ? qact_row_bytes_vnni : qpack_row_bytes_vnni;
        v.quant = kq ? qact_quantize_row_vnni : qact_quantize_row_packed_vnni;
        v.dot = qpack_dot_lookup_vnni(dtype);
        v.round = qpack_round_lookup_vnni(dtype);
    }
#if APR_X86_LEVEL == 2
    if (be->qpath == X86_QDOT_AVXVNNI) {
        v.row_bytes = kq ? qact_row_bytes_avxvnni : qpack_row_bytes_avxvnni;
        v.quant = kq ? qact_quantize_row_avxvnni : qact_quantize_row_packed_avxvnni;
        v.dot = qpack_dot_lookup_avxvnni(dtype);
        v.round = qpack_round_lookup_avxvnni(dtype);
    }
#endif
    return v;
}

const qpack_head *qpack_of(const apr_buffer *buf) {
    if (!buf || !(buf->flags & APR_BUFFER_PACKED) || !buf->handle) return NULL;
    const qpack_head *h = buf->handle;
    return h->magic == QPACK_MAGIC ? h : NULL;
}

/* ---------------------------------------------------------------- packing */

static const char *qpack_name(uint32_t dtype) {
    switch (dtype) {
    case APR_Q4_0: return "q4_0";
    case APR_Q8_0: return "q8_0";
    case APR_Q5_0: return "q5_0";
    case APR_Q4_K: return "q4_K";
    case APR_Q6_K: return "q6_K";
    default: return NULL;
    }
}

/* Bytes of one ggml block of the formats packed here. */
static int64_t qpack_ggml_block_bytes(uint32_t dtype) {
    switch (dtype) {
    case APR_Q4_0: return sizeof(apr_block_q4_0);
    case APR_Q8_0: return sizeof(apr_block_q8_0);
    case APR_Q5_0: return sizeof(apr_block_q5_0);
    case APR_Q4_K: return sizeof(apr_block_q4_K);
    case APR_Q6_K: return sizeof(apr_block_q6_K);
    default: return 0;
    }
}

typedef struct qpack_job {
    const char *src;    /* the weight as ggml lays it out: N rows of K / 32 blocks */
    int64_t row_bytes;  /* bytes of one source row */
    char *dst;          /* the groups */
    const qpack_head *h;
} qpack_job;

static void qpack_put_word(char *o, uint32_t v) { memcpy(o, &v, 4); }

/* Row i's block blk into the block position o of its group, per format (qpack.h). */
static void qpack_put_q4_0(char *o, int i, const char *blk) {
    memcpy(o + 2 * i, blk, 2);
    for (int t = 0; t < 4; t++) memcpy(o + 32 + 64 * t + 4 * i, blk + 2 + 4 * t, 4);
}

static void qpack_put_q5_0(char *o, int i, const char *blk) {
    const apr_block_q5_0 *b = (const apr_block_q5_0 *)blk;
    memcpy(o + 2 * i, &b->d, 2);
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    /* fifth bits of elements 4 t .. 4 t + 3 to bits 4 i .. 4 i + 3 of mask t (the group is zeroed first) */
    for (int t = 0; t < 8; t++) o[32 + 8 * t + i / 2] |= (char)(((qh >> (4 * t)) & 0xFu) << (4 * (i & 1)));
    for (int t = 0; t < 4; t++) memcpy(o + 96 + 64 * t + 4 * i, b->qs + 4 * t, 4);
}

static void qpack_put_q8_0(char *o, int i, const char *blk) {
    memcpy(o + 2 * i, blk, 2);
    for (int t = 0; t < 8; t++) {
        uint32_t v;
        memcpy(&v, blk + 2 + 4 * t, 4);
        qpack_put_word(o + 32 + 64 * t + 4 * i, v ^ 0x80808080u); /* unsigned for vpdpbusd */
    }
}

static void qpack_put_q4_K(char *o, int i, const char *blk) {
    const apr_block_q4_K *b = (const apr_block_q4_K *)blk;
    memcpy(o + 2 * i, &b->d, 2);
    memcpy(o + 32 + 2 * i, &b->dmin, 2);
    const uint8_t *q = b->scales;
    for (int j = 0; j < 8; j++) {
        /* ggml's 6-bit scale/min packing (apr_quant.h, apr_block_q4_K) */
        const uint8_t sc = j < 4 ? q[j] & 63 : (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        const uint8_t m = j < 4 ? q[j + 4] & 63 : (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
        o[QPACK_Q4K_SC + 16 * j + i] = (char)sc;
        o[QPACK_Q4K_M + 16 * j + i] = (char)m;
    }
    for (int p = 0; p < 4; p++)
        for (int t = 0; t < 8; t++) memcpy(o + QPACK_Q4K_QS + 512 * p + 64 * t + 4 * i, b->qs + 32 * p + 4 * t, 4);
}

static void qpack_put_q6_K(char *o, int i, const char *blk) {
    const apr_block_q6_K *b = (const apr_block_q6_K *)blk;
    memcpy(o + 2 * i, &b->d, 2);
    for (int s = 0; s < 16; s++) o[QPACK_Q6K_SC + 16 * s + i] = (char)b->scales[s];
    uint8_t q[APR_QK_K]; /* the 6-bit values, as ggml's dequantize_row_q6_K reads them */
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++)
            for (int k = 0; k < 4; k++)
                q[128 * h + l + 32 * k] = (uint8_t)(((b->ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xF) |
                                                    (((b->qh[32 * h + l] >> (2 * k)) & 3) << 4));
    for (int G = 0; G < 4; G++) {
        char *g = o + QPACK_Q6K_Q + QPACK_Q6K_GROUP * G;
        const uint8_t *e = q + 64 * G;
        for (int t = 0; t < 8; t++)
            for (int c = 0; c < 4; c++) g[64 * t + 4 * i + c] = (char)((e[4 * t + c] & 15) | (e[32 + 4 * t + c] & 15) << 4);
        for (int u = 0; u < 4; u++)
            for (int c = 0; c < 4; c++)
                g[512 + 64 * u + 4 * i + c] = (char)((e[8 * u + c] >> 4) | (e[32 + 8 * u + c] >> 4) << 2 |
                                                     (e[8 * u + 4 + c] >> 4) << 4 | (e[36 + 8 * u + c] >> 4) << 6);
    }
}

typedef void qpack_put_fn(char *o, int i, const char *blk);

static qpack_put_fn *qpack_put_for(uint32_t dtype) {
    switch (dtype) {
    case APR_Q4_0: return qpack_put_q4_0;
    case APR_Q8_0: return qpack_put_q8_0;
    case APR_Q5_0: return qpack_put_q5_0;
    case APR_Q4_K: return qpack_put_q4_K;
    case APR_Q6_K: return qpack_put_q6_K;
    default: return NULL;
    }
}

static void qpack_group(const qpack_job *j, int64_t g) {
    const qpack_head *h = j->h;
    const int64_t nb = h->K / qpack_block_elems(h->dtype), bb = qpack_block_bytes(h->dtype);
    const int64_t bs = (int64_t)qpack_ggml_block_bytes(h->dtype);
    qpack_put_fn *put = qpack_put_for(h->dtype);
    char *p = j->dst + g * h->group_bytes;
    memset(p, 0, (size_t)h->group_bytes); /* rows past N: zero scales and quants */
    for (int i = 0; i < QPACK_ROWS && QPACK_ROWS * g + i < h->N; i++) {
        const char *row = j->src + (QPACK_ROWS * g + i) * j->row_bytes;
        for (int64_t b = 0; b < nb; b++) put(p + b * bb, i, row + b * bs);
    }
}

static void qpack_worker(void *ctx, int ith, int nth) {
    const qpack_job *j = ctx;
    long long g0, g1;
    tpool_split(j->h->groups, ith, nth, &g0, &g1);
    for (long long g = g0; g < g1; g++) qpack_group(j, g);
}

apr_status cpu_isa_weight_pack(cpu_backend *be, const apr_tensor_desc *w, apr_buffer *out, char *err, size_t err_size) {
    const char *name = qpack_name(w->dtype);
    if (!name)
        return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "no packed layout for dtype %u (q4_0, q5_0, q8_0, q4_K and q6_K have one)", w->dtype);
    if (!qpack_variant_for(be, w->dtype).dot)
        return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "no packed %s kernel for this CPU's int8 dot products (%s)",
                       name, probe_qpath_name(be->qpath));
    const int64_t K = w->ne[0], N = w->ne[1], be_elems = qpack_block_elems(w->dtype);
    const int64_t bs = qpack_ggml_block_bytes(w->dtype);
    if (K <= 0 || N <= 0 || K % be_elems || w->ne[2] != 1 || w->ne[3] != 1 || w->nb[0] != bs ||
        w->nb[1] != K / be_elems * bs || !w->data)
        return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "packing takes a dense 2-D %s weight with rows of whole blocks", name);
    const int64_t groups = (N + QPACK_ROWS - 1) / QPACK_ROWS, group_bytes = K / be_elems * qpack_block_bytes(w->dtype);
    if (groups > (INT64_MAX - QPACK_HEAD_BYTES) / group_bytes)
        return msg_set(err, err_size, APR_ERR_INVALID, "a %lld x %lld weight is too large to pack", (long long)K, (long long)N);
    const uint64_t bytes = (uint64_t)(QPACK_HEAD_BYTES + groups * group_bytes);
    /* Every byte is written below, so the memory is not cleared first (first touch of fresh
     * pages is most of the cost of packing). hostmem_free frees it. No huge pages: they stream
     * no faster and fault in slower. */
    void *mem = aligned_alloc(HOSTMEM_ALIGNMENT, (bytes + HOSTMEM_ALIGNMENT - 1) / HOSTMEM_ALIGNMENT * HOSTMEM_ALIGNMENT);
    if (!mem) return msg_set(err, err_size, APR_ERR_NOMEM, "cannot allocate %llu bytes for a packed %s weight", (unsigned long long)bytes, name);
    apr_buffer buf = {.handle = mem};
    qpack_head *h = buf.handle;
    *h = (qpack_head){.magic = QPACK_MAGIC, .dtype = w->dtype, .K = K, .N = N, .groups = groups, .group_bytes = group_bytes};
    qpack_job j = {.src = w->data, .row_bytes = w->nb[1], .dst = (char *)buf.handle + QPACK_HEAD_BYTES, .h = h};
    cpu_backend_run(be, qpack_worker, &j, (int64_t)bytes);
    out->flags = APR_BUFFER_PACKED | APR_BUFFER_HOST_VISIBLE;
    out->size = bytes - QPACK_HEAD_BYTES;
    out->host_ptr = j.dst;
    out->handle = buf.handle; /* hostmem_free frees the allocation through handle */
    return APR_OK;
}

/* ---------------------------------------------------------------- matmul */

/* ---------------------------------------------------------------- matmul */

/* One weight of a round pass. A fused decode reads the weights of several matmuls that share one
 * activation row (and one format and K) as one sequence of groups, split over the workers and
 * their streams as if it were one weight: one dispatch, one rounding of the row, and no short
 * matrix left to run on its own (Qwen2.5-0.5B's k and v are 8 groups each). */
typedef struct qpack_part {
    const char *w;    /* its packed groups */
    float *out;       /* its dst row (dense) */
    int64_t g0;       /* index of its first group in the sequence */
    int64_t groups;   /* its groups */
    uint16_t last;    /* rows of its last group, as a mask */
} qpack_part;

typedef struct qpack_plan {
    const apr_node_desc *node;  /* the (first) node: its X is every part's */
    cpu_backend *be;
    const qpack_head *h;        /* the (first) weight's head: dtype, K and group_bytes are every part's */
    qpack_variant v;
    int64_t abytes;      /* bytes of one activation row */
    int64_t chunk;       /* groups per unit */
    int64_t units_n;     /* ceil(groups / chunk) */
    int64_t units;       /* batches * units_n */
    int64_t l2_groups;   /* groups per L2-sized piece */
    int own_act;         /* decode: every worker rounds the activation rows into its scratch */
    int64_t act_off;     /* where in a worker's scratch those rows start */
    int64_t rounds;      /* one activation row and v.round: rounds of streams per worker's share; else 0 */
    tpool_steal steal;   /* over the units, or the rounds when rounds > 0, when own_act */
    qpack_part parts[QPACK_MAX_PARTS]; /* rounds: the weights in sequence order */
    int n_parts;
    int64_t seq_groups;  /* rounds: groups of all parts */
} qpack_plan;

/* Rounds activation rows [r0, r1) (flattened over m and the batches) into dst; tmp holds K floats. */
static void qpack_quant_rows(const qpack_plan *p, long long r0, long long r1, float *tmp, char *dst) {
    const apr_tensor_desc *x = &p->node->src[1];
    const int64_t K = x->ne[0], M = x->ne[1], B2 = x->ne[2];
    for (long long r = r0; r < r1; r++) {
        const char *xr = (const char *)x->data + (r % M) * x->nb[1] + ((r / M) % B2) * x->nb[2] + (r / (M * B2)) * x->nb[3];
        const float *xf = (const float *)xr;
        if (x->nb[0] != 4 || (uintptr_t)xr % 4) {
            for (int64_t k = 0; k < K; k++) memcpy(&tmp[k], xr + k * x->nb[0], 4);
            xf = tmp;
        }
        p->v.quant(p->h->dtype, xf, K, dst + r * p->abytes);
    }
}

static void qpack_quant_worker(void *ctx, int ith, int nth) {
    const qpack_plan *p = ctx;
    const apr_tensor_desc *x = &p->node->src[1];
    long long r0, r1;
    tpool_split(x->ne[1] * x->ne[2] * x->ne[3], ith, nth, &r0, &r1);
    qpack_quant_rows(p, r0, r1, (float *)p->be->scratch[ith], p->be->shared);
}

/* Unit u: batch u / units_n, groups of chunk u % units_n, every activation row of the batch. */
static void qpack_unit(const qpack_plan *p, long long u, const char *act) {
    const apr_tensor_desc *d = &p->node->dst;
    const int64_t K = p->h->K, N = p->h->N, M = d->ne[1], B2 = d->ne[2];
    const int64_t b = u / p->units_n, g0 = (u % p->units_n) * p->chunk;
    const int64_t g1 = g0 + p->chunk < p->h->groups ? g0 + p->chunk : p->h->groups;
    const char *wg = (const char *)p->node->src[0].data;
    const char *ab = act + b * M * p->abytes;
    char *db = (char *)d->data + (b % B2) * d->nb[2] + (b / B2) * d->nb[3];
    const int dense = d->nb[0] == 4 && d->nb[1] % 4 == 0 && (uintptr_t)db % 4 == 0;
    /* L2-sized pieces let 4-row tiles after the first find the weight in L2; with one pass over
     * the activation rows (decode) there is nothing to find again, and the unit is read whole */
    const int64_t piece = M > 4 ? p->l2_groups : g1 - g0;
    for (int64_t gc = g0; gc < g1; gc += piece) {
        const int64_t gc1 = gc + piece < g1 ? gc + piece : g1;
        const int nr = gc1 * QPACK_ROWS > N ? (int)(N - (gc1 - 1) * QPACK_ROWS) : QPACK_ROWS;
        for (int64_t m = 0; m < M; m += 4) {
            const int na = M - m < 4 ? (int)(M - m) : 4;
            if (dense) {
                p->v.dot(K, wg + gc * p->h->group_bytes, gc1 - gc, nr, ab + m * p->abytes, p->abytes, na,
                         (float *)(db + m * d->nb[1]) + gc * QPACK_ROWS, d->nb[1] / 4);
                continue;
            }
            for (int64_t g = gc; g < gc1; g++) {
                float tile[4 * QPACK_ROWS];
                const int rows = g + 1 == gc1 ? nr : QPACK_ROWS;
                p->v.dot(K, wg + g * p->h->group_bytes, 1, rows, ab + m * p->abytes, p->abytes, na, tile, QPACK_ROWS);
                for (int j = 0; j < na; j++)
                    for (int i = 0; i < rows; i++)
                        memcpy(db + (m + j) * d->nb[1] + (g * QPACK_ROWS + i) * d->nb[0], &tile[j * QPACK_ROWS + i], 4);
            }
        }
    }
}

/* Round item of the steal: the share of worker item / rounds (tpool_split of the sequence of
 * groups) read as QPACK_STREAMS streams of p->rounds groups each, round item % rounds of them.
 * The owner takes its rounds from the front, so each of its streams runs in order; a thief takes
 * them from the back. */
static void qpack_round(const qpack_plan *p, long long item, int nth, const char *act) {
    const int64_t k = item % p->rounds;
    long long a, b;
    tpool_split(p->seq_groups, (int)(item / p->rounds), nth, &a, &b);
    const char *w[QPACK_STREAMS];
    float *out[QPACK_STREAMS];
    uint16_t keep[QPACK_STREAMS];
    int j = 0;
    for (int s = 0; s < QPACK_STREAMS; s++) {
        const int64_t v = a + s * p->rounds + k; /* grows with s, so the part index only moves on */
        w[s] = NULL;
        out[s] = NULL;
        keep[s] = 0;
        if (v >= b) continue;
        while (v >= p->parts[j].g0 + p->parts[j].groups) j++;
        const qpack_part *pt = &p->parts[j];
        const int64_t lg = v - pt->g0;
        w[s] = pt->w + lg * p->h->group_bytes;
        out[s] = pt->out + QPACK_ROWS * lg;
        keep[s] = lg + 1 == pt->groups ? pt->last : 0xFFFF;
    }
    if (w[0]) p->v.round(p->h->K, w, out, keep, act);
}

static void qpack_dot_worker(void *ctx, int ith, int nth) {
    qpack_plan *p = ctx;
    const char *act = p->be->shared;
    long long u0, u1;
    if (p->own_act) {
        const apr_tensor_desc *x = &p->node->src[1];
        char *mine = p->be->scratch[ith] + p->act_off;
        qpack_quant_rows(p, 0, x->ne[1] * x->ne[2] * x->ne[3], (float *)p->be->scratch[ith], mine);
        act = mine;
        long long u;
        if (p->rounds)
            while (tpool_steal_next(&p->steal, ith, &u)) qpack_round(p, u, p->be->n_threads, act);
        else
            while (tpool_steal_next(&p->steal, ith, &u)) qpack_unit(p, u, act);
        return;
    }
    tpool_split(p->units, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) qpack_unit(p, u, act);
}

/* The head of the packed weight node n multiplies, or NULL when its buffer does not hold it. */
static const qpack_head *qpack_head_for(const apr_node_desc *n) {
    const apr_tensor_desc *w = &n->src[0];
    const qpack_head *h = qpack_of(w->buffer);
    if (!h || h->dtype != w->dtype || h->K != w->ne[0] || h->N != w->ne[1] || w->ne[2] != 1 || w->ne[3] != 1 ||
        w->data != (const char *)h + QPACK_HEAD_BYTES)
        return NULL;
    return h;
}

/* Whether node n is a decode matmul a round pass runs: one activation row, a packed weight with a
 * round kernel on this CPU, a dense dst. */
static const qpack_head *qpack_roundable(const cpu_backend *be, const apr_node_desc *n) {
    const apr_tensor_desc *d = &n->dst;
    const qpack_head *h = qpack_head_for(n);
    if (!h || d->ne[1] * d->ne[2] * d->ne[3] != 1 || d->nb[0] != 4 || (uintptr_t)d->data % 4 ||
        !qpack_variant_for(be, h->dtype).round)
        return NULL;
    return h;
}

int qpack_group_len(const cpu_backend *be, const apr_node_desc *const *nodes, int n) {
    const qpack_head *h0 = qpack_roundable(be, nodes[0]);
    if (!h0) return 0;
    int r = 1;
    while (r < n && r < QPACK_MAX_PARTS) {
        const qpack_head *h = qpack_roundable(be, nodes[r]);
        if (!h || h->dtype != h0->dtype || h->K != h0->K || !cpu_same_tensor(&nodes[r]->src[1], &nodes[0]->src[1])) break;
        r++;
    }
    return r;
}

/* The parts of a round pass over nodes[0..n) (qpack_group_len of them) in sequence order;
 * returns the groups of all. */
static int64_t qpack_fill_parts(const apr_node_desc *const *nodes, int n, qpack_part *parts) {
    int64_t g0 = 0;
    for (int i = 0; i < n; i++) {
        const qpack_head *h = qpack_head_for(nodes[i]);
        const int nr = (int)(h->N - (h->groups - 1) * QPACK_ROWS);
        parts[i] = (qpack_part){.w = (const char *)h + QPACK_HEAD_BYTES, .out = nodes[i]->dst.data, .g0 = g0,
                                .groups = h->groups, .last = (uint16_t)((1u << nr) - 1u)};
        g0 += h->groups;
    }
    return g0;
}

/* Rounds per worker's share when nth workers read a sequence of groups QPACK_STREAMS streams each. */
static int64_t qpack_rounds(int64_t groups, int nth) {
    return (groups + (int64_t)nth * QPACK_STREAMS - 1) / ((int64_t)nth * QPACK_STREAMS);
}

/* Units of groups per worker in decode, the grain of stealing (as QMM_UNITS in qmatmul.c). */
#ifndef QPACK_UNITS
#define QPACK_UNITS 8
#endif


void qpack_prefetch_plan(cpu_backend *be, const apr_node_desc *const *nodes, int n) {
    const int r = qpack_group_len(be, nodes, n);
    if (r == 0) return;
    qpack_part parts[QPACK_MAX_PARTS];
    const int64_t groups = qpack_fill_parts(nodes, r, parts), gb = qpack_head_for(nodes[0])->group_bytes;
    const int nth = be->n_threads;
    const int64_t rounds = qpack_rounds(groups, nth);
    /* the first rounds of every stream, together at most half of L2 */
    int64_t per_stream = be->l2_bytes / 2 / (QPACK_STREAMS * gb);
    if (per_stream < 1) per_stream = 1;
    if (per_stream > rounds) per_stream = rounds;
    for (int t = 1; t < nth; t++) {
        cpu_prefetch *pf = &be->ahead[t];
        pf->n = 0;
        long long a, b;
        tpool_split(groups, t, nth, &a, &b);
        int j = 0;
        for (int s = 0; s < QPACK_STREAMS; s++) {
            int64_t v = a + s * rounds, v1 = v + per_stream < b ? v + per_stream : b;
            while (v < v1 && pf->n < CPU_PF_RANGES) {
                while (v >= parts[j].g0 + parts[j].groups) j++;
                const int64_t end = v1 < parts[j].g0 + parts[j].groups ? v1 : parts[j].g0 + parts[j].groups;
                pf->p[pf->n] = parts[j].w + (v - parts[j].g0) * gb;
                pf->bytes[pf->n] = (end - v) * gb;
                pf->n++;
                v = end;
            }
        }
    }
}

/* Rounds of streams over the weights of nodes[0..n), every one roundable with the first's format,
 * K and X (qpack_group_len). */
static apr_status qpack_run_rounds(cpu_backend *be, const apr_node_desc *const *nodes, int n, char *err, size_t err_size) {
    qpack_plan p = {.node = nodes[0], .be = be, .h = qpack_head_for(nodes[0])};
    p.v = qpack_variant_for(be, p.h->dtype);
    p.abytes = p.v.row_bytes(p.h->dtype, p.h->K);
    p.seq_groups = qpack_fill_parts(nodes, n, p.parts);
    p.n_parts = n;
    const int nth = be->n_threads;
    p.rounds = qpack_rounds(p.seq_groups, nth);
    p.own_act = 1;
    p.act_off = (p.h->K * 4 + 63) / 64 * 64;
    if (cpu_backend_reserve(be, (size_t)(p.act_off + p.abytes)) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "matmul: cannot allocate an activation row");
    tpool_steal_init(&p.steal, nth * p.rounds, nth);
    cpu_backend_run(be, qpack_dot_worker, &p, p.seq_groups * QPACK_ROWS * (p.h->K / 8 + 1));
    return APR_OK;
}

apr_status qpack_matmul_run_group(cpu_backend *be, const apr_node_desc *const *nodes, int n, char *err, size_t err_size) {
    if (n < 1 || n > QPACK_MAX_PARTS || qpack_group_len(be, nodes, n) != n)
        return msg_set(err, err_size, APR_ERR_INTERNAL, "matmul: %d nodes are not one group of packed decode matmuls", n);
    return qpack_run_rounds(be, nodes, n, err, err_size);
}

apr_status qpack_matmul_run(cpu_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *w = &n->src[0], *d = &n->dst;
    const qpack_head *h = qpack_head_for(n);
    if (!h)
        return msg_set(err, err_size, APR_ERR_INVALID, "matmul: src0 is a packed buffer that does not hold this %lld x %lld weight",
                       (long long)w->ne[0], (long long)w->ne[1]);
    const int64_t K = h->K, M = d->ne[1], batches = d->ne[2] * d->ne[3];
    if (M == 0 || batches == 0) return APR_OK;
    /* one row into a dense dst: rounds of streams, p.rounds streams of groups covering a worker's share */
    if (qpack_roundable(be, n)) return qpack_run_rounds(be, &n, 1, err, err_size);
    qpack_plan p = {.node = n, .be = be, .h = h, .v = qpack_variant_for(be, h->dtype)};
    if (!p.v.dot) return msg_set(err, err_size, APR_ERR_INTERNAL, "matmul: packed weight without a kernel on this CPU");
    p.abytes = p.v.row_bytes(h->dtype, K);
    const int64_t rows = M * batches;
    const int nth = be->n_threads;
    p.own_act = rows <= 4 && nth > 1;
    p.act_off = (K * 4 + 63) / 64 * 64;
    const size_t scratch = p.own_act ? (size_t)(p.act_off + rows * p.abytes) : (size_t)K * 4;
    if ((!p.own_act && cpu_backend_reserve_shared(be, (size_t)(rows * p.abytes)) != 0) || cpu_backend_reserve(be, scratch) != 0)
        return msg_set(err, err_size, APR_ERR_NOMEM, "matmul: cannot allocate %lld activation rows", (long long)rows);
    if (!p.own_act) cpu_backend_run(be, qpack_quant_worker, &p, rows * K);
    const int64_t want = p.own_act ? (int64_t)QPACK_UNITS * nth : batches >= nth ? 1 : (nth + batches - 1) / batches;
    p.chunk = (h->groups + want - 1) / want;
    p.units_n = (h->groups + p.chunk - 1) / p.chunk;
    p.units = batches * p.units_n;
    if (p.own_act) tpool_steal_init(&p.steal, p.units, nth);
    p.l2_groups = be->l2_bytes / 2 / h->group_bytes;
    if (p.l2_groups < 1) p.l2_groups = 1;
    cpu_backend_run(be, qpack_dot_worker, &p, h->N * rows * (K / 8 + 1));
    return APR_OK;
}

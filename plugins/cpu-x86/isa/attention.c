/* attention.c — fused ATTENTION: online softmax over key blocks (flash style), GQA, causal, f32/f16 K/V. */
#include <math.h>
#include <string.h>

#include "../../common/msg.h"
#include "../supports.h"
#include "../x86_ops.h"
#include "rows.h"
#include "vec.h"

#define ATTENTION_BLOCK 64 /* keys scored before one rescale of the running output */

typedef struct attention_job {
    const apr_node_desc *n;
    x86_backend *be;
} attention_job;

/* q . k over D for one key row (contiguous, f32 or f16). */
static inline float attention_dot(const float *q, const char *k, int64_t D, uint32_t kt) {
    vec_t s0 = vec_zero(), s1 = vec_zero();
    int64_t i = 0;
    if (kt == APR_F16) {
        const uint16_t *h = (const uint16_t *)k;
        for (; i + 2 * VEC_W <= D; i += 2 * VEC_W) {
            s0 = vec_fma(vec_load(q + i), vec_load_f16(h + i), s0);
            s1 = vec_fma(vec_load(q + i + VEC_W), vec_load_f16(h + i + VEC_W), s1);
        }
        for (; i < D; i += VEC_W) {
            int r = D - i < VEC_W ? (int)(D - i) : VEC_W;
            s0 = vec_fma(vec_loadn(q + i, r), vec_loadn_f16(h + i, r), s0);
        }
    } else {
        const float *f = (const float *)k;
        for (; i + 2 * VEC_W <= D; i += 2 * VEC_W) {
            s0 = vec_fma(vec_load(q + i), vec_load(f + i), s0);
            s1 = vec_fma(vec_load(q + i + VEC_W), vec_load(f + i + VEC_W), s1);
        }
        for (; i < D; i += VEC_W) {
            int r = D - i < VEC_W ? (int)(D - i) : VEC_W;
            s0 = vec_fma(vec_loadn(q + i, r), vec_loadn(f + i, r), s0);
        }
    }
    return vec_hsum(vec_add(s0, s1));
}

/* acc[0..Dv) = acc * c + p * v for one value row (contiguous, f32 or f16); c == 1 skips the scale. */
static inline void attention_axpy(float *acc, float p, const char *v, int64_t Dv, uint32_t vt) {
    vec_t vp = vec_set1(p);
    for (int64_t i = 0; i < Dv; i += VEC_W) {
        int r = Dv - i < VEC_W ? (int)(Dv - i) : VEC_W;
        vec_t x = vt == APR_F16 ? vec_loadn_f16((const uint16_t *)v + i, r) : vec_loadn((const float *)v + i, r);
        vec_storen(acc + i, vec_fma(vp, x, vec_loadn(acc + i, r)), r);
    }
}

static void attention_worker(void *ctx, int ith, int nth) {
    const attention_job *j = ctx;
    const apr_node_desc *n = j->n;
    const apr_tensor_desc *q = &n->src[0], *k = &n->src[1], *v = &n->src[2], *mk = &n->src[3], *d = &n->dst;
    const int64_t D = q->ne[0], T = q->ne[1], H = q->ne[2], S = k->ne[1], Hkv = k->ne[2], Dv = v->ne[0];
    const int64_t group = H / Hkv;
    const uint32_t kt = k->dtype;
    const int esz = rows_esize(kt), has_mask = supports_has_src(n, 3), causal = n->iparams[0] != 0;
    const float scale = n->fparams[0];
    /* scratch: q row, output accumulator, scores, one gathered k row, one gathered v row */
    float *qb = (float *)j->be->scratch[ith], *acc = qb + D + VEC_W, *sc = acc + Dv + VEC_W;
    char *kb = (char *)(sc + ATTENTION_BLOCK + VEC_W), *vb = kb + (D + VEC_W) * 4;
    long long u0, u1;
    tpool_split(T * H, ith, nth, &u0, &u1);
    for (long long u = u0; u < u1; u++) {
        const int64_t h = u % H, t = u / H, hk = h / group;
        const float *qr = rows_f32(rows_at(q, t, h, 0), D, q->nb[0], APR_F32, qb);
        int64_t L = S;
        if (causal) {
            int64_t lim = t + (S - T) + 1;
            L = lim < 0 ? 0 : lim < S ? lim : S;
        }
        memset(acc, 0, (size_t)Dv * 4);
        float mrun = -INFINITY; /* running max of the scores */
        double lsum = 0.0;      /* running sum of exp(score - mrun) */
        for (int64_t s0 = 0; s0 < L; s0 += ATTENTION_BLOCK) {
            const int nb = L - s0 < ATTENTION_BLOCK ? (int)(L - s0) : ATTENTION_BLOCK;
            float bmax = -INFINITY;
            for (int b = 0; b < nb; b++) {
                const char *kr = rows_at(k, s0 + b, hk, 0);
                if (k->nb[0] != esz) {
                    for (int64_t i = 0; i < D; i++) memcpy(kb + i * esz, kr + i * k->nb[0], (size_t)esz);
                    kr = kb;
                }
                float s = attention_dot(qr, kr, D, kt) * scale;
                if (has_mask) {
                    float mv;
                    memcpy(&mv, (const char *)mk->data + t * mk->nb[1] + (s0 + b) * mk->nb[0], 4);
                    s += mv;
                }
                sc[b] = s;
                if (s > bmax) bmax = s;
            }
            if (bmax == -INFINITY) continue; /* every key in the block masked */
            if (bmax > mrun) {
                /* new max: rescale what was accumulated under the old one */
                float c = expf(mrun - bmax);
                vec_t vc = vec_set1(c);
                for (int64_t i = 0; i < Dv; i += VEC_W) {
                    int r = Dv - i < VEC_W ? (int)(Dv - i) : VEC_W;
                    vec_storen(acc + i, vec_mul(vec_loadn(acc + i, r), vc), r);
                }
                lsum *= c;
                mrun = bmax;
            }
            vec_t vm = vec_set1(mrun);
            for (int b = 0; b < nb; b += VEC_W) {
                int r = nb - b < VEC_W ? nb - b : VEC_W;
                vec_storen(sc + b, vec_exp(vec_sub(vec_loadn(sc + b, r), vm)), r);
            }
            for (int b = 0; b < nb; b++) {
                if (sc[b] == 0.0f) continue;
                lsum += sc[b];
                const char *vr = rows_at(v, s0 + b, hk, 0);
                if (v->nb[0] != esz) {
                    for (int64_t i = 0; i < Dv; i++) memcpy(vb + i * esz, vr + i * v->nb[0], (size_t)esz);
                    vr = vb;
                }
                attention_axpy(acc, sc[b], vr, Dv, kt);
            }
        }
        /* dst [Dv, H, T]: element (i, h, t) */
        char *drow = (char *)d->data + h * d->nb[1] + t * d->nb[2];
        float inv = lsum > 0.0 ? (float)(1.0 / lsum) : 0.0f;
        for (int64_t i = 0; i < Dv; i++) {
            float o = acc[i] * inv;
            memcpy(drow + i * d->nb[0], &o, 4);
        }
    }
}

apr_status attention_run(x86_backend *be, const apr_node_desc *n, char *err, size_t err_size) {
    const apr_tensor_desc *q = &n->src[0], *v = &n->src[2];
    const int64_t D = q->ne[0], Dv = v->ne[0];
    if (q->ne[1] == 0 || q->ne[2] == 0 || Dv == 0) return APR_OK;
    size_t need = (size_t)(2 * D + 2 * Dv + ATTENTION_BLOCK + 8 * VEC_W) * sizeof(float);
    if (backend_reserve(be, need) != 0) return msg_set(err, err_size, APR_ERR_NOMEM, "attention: cannot allocate scratch");
    attention_job j = {n, be};
    backend_run(be, attention_worker, &j, q->ne[1] * q->ne[2] * n->src[1].ne[1] * (D + Dv));
    return APR_OK;
}

/* llama_train.c — a trainer: the trainable tensors in memory on a backend, the kept step, norm and update
 * plans, and one optimizer step over micro-batches (llama_train.h). */
#include "llama_train_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr_float16.h"
#include "apr/apr_quant.h"

llama_train_params apr_llama_train_defaults(void) {
    return (llama_train_params){.method = LLAMA_TRAIN_LORA, .lora_rank = 8, .lora_alpha = 16.0f, .lora_dropout = 0.0f,
                                .lora_targets = LLAMA_LORA_Q | LLAMA_LORA_V, .seq_len = 256, .n_seqs = 1,
                                .opt = LLAMA_OPT_ADAMW, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                .weight_decay = 0.0f, .momentum = 0.9f, .clip = 1.0f, .seed = 42};
}

/* ---------------------------------------------------------------- random numbers (xoshiro256**) */

static uint64_t train_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t llama_train_rand(uint64_t s[4]) {
    const uint64_t r = train_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = train_rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 24 random bits. */
float llama_train_uniform(uint64_t s[4]) { return (float)(llama_train_rand(s) >> 40) * (1.0f / 16777216.0f); }

void llama_train_seed(uint64_t s[4], uint64_t seed) {
    for (int i = 0; i < 4; i++) { /* splitmix64 */
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        s[i] = z ^ (z >> 31);
    }
}

/* ---------------------------------------------------------------- trainable tensors */

static apr_status train_add_tensor(llama_train *t, const char *name, int n_dims, const int64_t *ne,
                                   const gguf_tensor *src, apr_error *err) {
    if (t->n_params == t->cap_params) {
        int cap = t->cap_params ? 2 * t->cap_params : 64;
        train_param *np = realloc(t->params, (size_t)cap * sizeof *np);
        if (!np) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        t->params = np;
        t->cap_params = cap;
    }
    train_param *p = &t->params[t->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->info.n_dims = n_dims;
    p->info.n = 1;
    for (int d = 0; d < 4; d++) {
        p->info.ne[d] = d < n_dims ? ne[d] : 1;
        p->info.n *= p->info.ne[d];
    }
    p->src = src;
    const uint64_t bytes = (uint64_t)p->info.n * 4u;
    apr_mem **mems[4] = {&p->w, &p->m, &p->v, &p->g};
    static const char *const what[4] = {"weights", "first moment", "second moment", "gradient"};
    for (int i = 0; i < 4; i++) {
        if (i == 2 && t->p.opt == LLAMA_OPT_SGD) continue; /* SGD keeps one buffer, its momentum */
        char mname[200];
        snprintf(mname, sizeof mname, "%s (%s)", p->name, what[i]);
        apr_status s = apr_mem_new(t->be, bytes, APR_USAGE_STATE, mname, mems[i], err);
        if (s != APR_OK) {
            for (int j = 0; j < i; j++) apr_mem_free(*mems[j]);
            return s;
        }
    }
    t->n_params++;
    return APR_OK;
}

/* The f32 values of a model tensor (any dtype apr reads) into dst. */
static apr_status train_to_f32(const gguf_tensor *src, float *dst, apr_error *err) {
    const int64_t n = src->ne[0] * src->ne[1] * src->ne[2] * src->ne[3];
    const apr_dtype dt = (apr_dtype)src->dtype;
    if (dt == APR_F32) {
        memcpy(dst, src->data, (size_t)n * 4u);
        return APR_OK;
    }
    if (dt == APR_F16 || dt == APR_BF16) {
        const uint16_t *h = src->data;
        for (int64_t i = 0; i < n; i++) dst[i] = dt == APR_F16 ? apr_f16_to_f32(h[i]) : apr_bf16_to_f32(h[i]);
        return APR_OK;
    }
    const int64_t row = src->ne[0], rows = n / row, rb = apr_dtype_row_bytes(dt, row);
    for (int64_t r = 0; rb > 0 && r < rows; r++)
        if (!apr_dequant_row(dt, (const char *)src->data + r * rb, dst + r * row, row)) break;
        else if (r == rows - 1) return APR_OK;
    return apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: dtype %s cannot be converted to f32 for training", src->name,
                         apr_dtype_name(dt) ? apr_dtype_name(dt) : "?");
}

/* Initial values: LoRA A uniform in +-1/sqrt(in), B zero; full training the model's own weights. */
static apr_status train_init_tensor(llama_train *t, train_param *p, apr_error *err) {
    float *buf = malloc((size_t)p->info.n * sizeof *buf);
    if (!buf) return apr_error_set(err, APR_ERR_NOMEM, "out of memory for %s", p->name);
    apr_status s = APR_OK;
    if (p->src) {
        s = train_to_f32(p->src, buf, err);
    } else if (p->lora_a) {
        const float bound = 1.0f / sqrtf((float)p->info.ne[0]);
        for (int64_t i = 0; i < p->info.n; i++) buf[i] = (2.0f * llama_train_uniform(t->rng) - 1.0f) * bound;
    } else {
        memset(buf, 0, (size_t)p->info.n * sizeof *buf);
    }
    if (s == APR_OK) s = apr_mem_write(p->w, 0, buf, (uint64_t)p->info.n * 4u, err);
    free(buf);
    return s;
}

static bool train_is_float(uint32_t dt) { return dt == APR_F32 || dt == APR_F16 || dt == APR_BF16; }

/* The matmul weights of layer l that LoRA may adapt, in LLAMA_LORA_* bit order. */
static const gguf_tensor *train_lora_weight(const llama_layer *L, int bit) {
    const gguf_tensor *w[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    return w[bit];
}

/* Which method a base fits: quantized matmul weights want QLoRA, float ones LoRA. */
static apr_status train_check_base(const llama_train *t, apr_error *err) {
    const llama_model *m = t->m;
    for (int l = 0; l < m->hp.n_layer; l++)
        for (int b = 0; b < 7; b++) {
            const gguf_tensor *w = train_lora_weight(&m->layers[l], b);
            const bool fl = train_is_float(w->dtype);
            if (t->p.method == LLAMA_TRAIN_LORA && !fl)
                return apr_error_set(err, APR_ERR_INVALID, "%s is %s: LoRA trains over a float base; a quantized base is --method qlora",
                                     w->name, apr_dtype_name((apr_dtype)w->dtype) ? apr_dtype_name((apr_dtype)w->dtype) : "?");
            if (t->p.method == LLAMA_TRAIN_QLORA && fl && b == 0 && l == 0)
                return apr_error_set(err, APR_ERR_INVALID, "%s is %s: QLoRA trains over a quantized base (quantize it with "
                                     "apr-quantize first); a float base is --method lora", w->name,
                                     apr_dtype_name((apr_dtype)w->dtype));
        }
    return APR_OK;
}

static apr_status train_make_tensors(llama_train *t, apr_error *err) {
    const llama_model *m = t->m;
    apr_status s = APR_OK;
    if (t->p.method == LLAMA_TRAIN_FULL) {
        const gguf_tensor *globals[3] = {m->tok_embd, m->out_norm, m->output != m->tok_embd ? m->output : NULL};
        for (int i = 0; i < 3 && s == APR_OK; i++)
            if (globals[i]) s = train_add_tensor(t, globals[i]->name, globals[i]->n_dims, globals[i]->ne, globals[i], err);
        for (int l = 0; l < m->hp.n_layer && s == APR_OK; l++) {
            const llama_layer *L = &m->layers[l];
            const gguf_tensor *w[14] = {L->attn_norm, L->wq, L->wk, L->wv, L->bq, L->bk, L->bv, L->q_norm, L->k_norm,
                                        L->wo, L->ffn_norm, L->w_gate, L->w_up, L->w_down};
            for (int i = 0; i < 14 && s == APR_OK; i++)
                if (w[i]) s = train_add_tensor(t, w[i]->name, w[i]->n_dims, w[i]->ne, w[i], err);
        }
    } else {
        for (int l = 0; l < m->hp.n_layer && s == APR_OK; l++)
            for (int b = 0; b < 7 && s == APR_OK; b++) {
                if (!(t->p.lora_targets >> b & 1u)) continue;
                const gguf_tensor *w = train_lora_weight(&m->layers[l], b);
                char name[160];
                snprintf(name, sizeof name, "%s.lora_a", w->name);
                s = train_add_tensor(t, name, 2, (int64_t[]){w->ne[0], t->p.lora_rank}, NULL, err);
                if (s != APR_OK) break;
                t->params[t->n_params - 1].lora_a = true;
                t->params[t->n_params - 1].layer = l;
                t->params[t->n_params - 1].target = b;
                snprintf(name, sizeof name, "%s.lora_b", w->name);
                s = train_add_tensor(t, name, 2, (int64_t[]){t->p.lora_rank, w->ne[1]}, NULL, err);
                if (s != APR_OK) break;
                t->params[t->n_params - 1].layer = l;
                t->params[t->n_params - 1].target = b;
            }
    }
    /* the array moved as it grew: names point into their final places only now */
    for (int i = 0; i < t->n_params; i++) t->params[i].info.name = t->params[i].name;
    for (int i = 0; i < t->n_params && s == APR_OK; i++) s = train_init_tensor(t, &t->params[i], err);
    return s;
}

/* ---------------------------------------------------------------- life */

static apr_status train_check_params(const llama_train_params *p, apr_error *err) {
    if (p->method < LLAMA_TRAIN_LORA || p->method > LLAMA_TRAIN_FULL) return apr_error_set(err, APR_ERR_INVALID, "unknown method %d", (int)p->method);
    if (p->method != LLAMA_TRAIN_FULL) {
        if (p->lora_rank < 1 || p->lora_rank > 4096) return apr_error_set(err, APR_ERR_INVALID, "LoRA rank %d (1..4096)", p->lora_rank);
        if (!(p->lora_alpha > 0) || !isfinite(p->lora_alpha)) return apr_error_set(err, APR_ERR_INVALID, "LoRA alpha %g must be > 0", (double)p->lora_alpha);
        if (!(p->lora_dropout >= 0 && p->lora_dropout < 1)) return apr_error_set(err, APR_ERR_INVALID, "LoRA dropout %g (0 <= p < 1)", (double)p->lora_dropout);
        if (!(p->lora_targets & 0x7fu)) return apr_error_set(err, APR_ERR_INVALID, "no LoRA target modules");
    }
    if (p->seq_len < 2 || p->n_seqs < 1 || (int64_t)p->seq_len * p->n_seqs > (1 << 20))
        return apr_error_set(err, APR_ERR_INVALID, "%d windows of %d tokens per micro-batch", p->n_seqs, p->seq_len);
    if (p->opt < LLAMA_OPT_ADAMW || p->opt > LLAMA_OPT_SGD) return apr_error_set(err, APR_ERR_INVALID, "unknown optimizer %d", (int)p->opt);
    if (!(p->clip >= 0)) return apr_error_set(err, APR_ERR_INVALID, "gradient clip %g must be >= 0", (double)p->clip);
    return APR_OK;
}

apr_status apr_llama_train_new(const llama_model *m, const llama_train_params *p, apr_backend *const *backends, int n_backends,
                               llama_train **out, apr_error *err) {
    *out = NULL;
    if (n_backends < 1 || n_backends > LLAMA_TRAIN_MAX_BACKENDS) return apr_error_set(err, APR_ERR_INVALID, "%d backends given", n_backends);
    apr_status s = train_check_params(p, err);
    if (s != APR_OK) return s;
    llama_train *t = calloc(1, sizeof *t);
    if (!t) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    t->m = m;
    t->p = *p;
    t->be = backends[0];
    t->n_backends = n_backends;
    memcpy(t->backends, backends, (size_t)n_backends * sizeof *backends);
    t->n_tok = p->seq_len * p->n_seqs;
    llama_train_seed(t->rng, p->seed);
    if (p->method != LLAMA_TRAIN_FULL) s = train_check_base(t, err);
    if (s == APR_OK) s = apr_llama_place_new(m, t->be, true, &t->placed, err);
    if (s == APR_OK) s = train_make_tensors(t, err);
    if (s == APR_OK) s = llama_train_build(t, err);
    if (s != APR_OK) {
        apr_llama_train_free(t);
        return s;
    }
    *out = t;
    return APR_OK;
}

void apr_llama_train_free(llama_train *t) {
    if (!t) return;
    llama_train_unbuild(t);
    for (int i = 0; i < t->n_params; i++) {
        apr_mem_free(t->params[i].w);
        apr_mem_free(t->params[i].m);
        apr_mem_free(t->params[i].v);
        apr_mem_free(t->params[i].g);
    }
    free(t->params);
    apr_llama_pack_free(t->placed);
    free(t);
}

/* ---------------------------------------------------------------- steps */

/* Dropout masks of one micro-batch: 0 or 1 / (1 - p) per element, from the trainer's generator. */
static void train_fill_dropout(llama_train *t) {
    const float keep = 1.0f / (1.0f - t->p.lora_dropout);
    for (int i = 0; i < t->n_drop; i++)
        for (int64_t j = 0; j < t->drop_len[i]; j++)
            t->drop_data[i][j] = llama_train_uniform(t->rng) < t->p.lora_dropout ? 0.0f : keep;
}

static int64_t train_count_targets(const int32_t *targets, int n) {
    int64_t c = 0;
    for (int i = 0; i < n; i++) c += targets[i] >= 0;
    return c;
}

apr_status apr_llama_train_step(llama_train *t, int n_micro, const int32_t *ids, const int32_t *targets, float lr,
                                llama_train_result *res, apr_error *err) {
    memset(res, 0, sizeof *res);
    if (n_micro < 1) return apr_error_set(err, APR_ERR_INVALID, "%d micro-batches", n_micro);
    const int n = t->n_tok;
    int64_t count = 0;
    for (int i = 0; i < n_micro; i++) count += train_count_targets(targets + (size_t)i * n, n);
    if (count == 0) return apr_error_set(err, APR_ERR_INVALID, "step %lld: no token carries a loss", (long long)t->steps + 1);
    /* the gradient of the mean over every target of the step */
    const float dloss = 1.0f / (float)count;
    apr_status s = APR_OK;
    for (int i = 0; i < t->n_params && s == APR_OK; i++) s = llama_train_zero(t, t->params[i].g, err);
    double loss_sum = 0;
    for (int i = 0; i < n_micro && s == APR_OK; i++) {
        if (t->n_drop) train_fill_dropout(t);
        float part = 0;
        s = llama_train_run_step(t, ids + (size_t)i * n, targets + (size_t)i * n, dloss, &part, err);
        loss_sum += part;
    }
    if (s != APR_OK) return s;
    res->tokens = count;
    res->loss = loss_sum / (double)count;
    if (!isfinite(res->loss))
        return apr_error_set(err, APR_ERR_INVALID, "step %lld: the loss is not finite (%g); no tensor was updated",
                             (long long)t->steps + 1, res->loss);
    double norm2 = 0;
    s = llama_train_run_norms(t, err);
    for (int i = 0; i < t->n_params && s == APR_OK; i++) {
        if (!isfinite(t->norms[i]))
            return apr_error_set(err, APR_ERR_INVALID, "step %lld: the gradient of %s is not finite; no tensor was updated",
                                 (long long)t->steps + 1, t->params[i].name);
        norm2 += t->norms[i];
    }
    if (s != APR_OK) return s;
    res->grad_norm = sqrt(norm2);
    const float gscale = t->p.clip > 0 && res->grad_norm > t->p.clip ? (float)(t->p.clip / res->grad_norm) : 1.0f;
    t->steps++;
    s = llama_train_run_update(t, lr, gscale, err);
    if (s != APR_OK) t->steps--;
    return s;
}

apr_status apr_llama_train_eval(llama_train *t, const int32_t *ids, const int32_t *targets, double *loss_sum, int64_t *count,
                                apr_error *err) {
    float part = 0;
    apr_status s = llama_train_run_eval(t, ids, targets, &part, err);
    *loss_sum = part;
    *count = train_count_targets(targets, t->n_tok);
    return s;
}

int64_t apr_llama_train_steps(const llama_train *t) { return t->steps; }
void apr_llama_train_set_steps(llama_train *t, int64_t steps) { t->steps = steps; }
int apr_llama_train_count(const llama_train *t) { return t->n_params; }

const llama_train_tensor *apr_llama_train_tensor(const llama_train *t, int i) {
    return i >= 0 && i < t->n_params ? &t->params[i].info : NULL;
}

static apr_mem *train_which(llama_train *t, int i, int which) {
    if (i < 0 || i >= t->n_params) return NULL;
    train_param *p = &t->params[i];
    return which == LLAMA_TRAIN_WEIGHT ? p->w : which == LLAMA_TRAIN_M ? p->m : which == LLAMA_TRAIN_V ? p->v : NULL;
}

apr_status apr_llama_train_read(llama_train *t, int i, int which, float *dst, apr_error *err) {
    apr_mem *mem = train_which(t, i, which);
    if (!mem) {
        if (i >= 0 && i < t->n_params && which == LLAMA_TRAIN_V) { /* SGD keeps no second moment */
            memset(dst, 0, (size_t)t->params[i].info.n * sizeof *dst);
            return APR_OK;
        }
        return apr_error_set(err, APR_ERR_INVALID, "no trainable tensor %d / %d", i, which);
    }
    return apr_mem_read(mem, 0, dst, (uint64_t)t->params[i].info.n * 4u, err);
}

apr_status apr_llama_train_write(llama_train *t, int i, int which, const float *src, apr_error *err) {
    apr_mem *mem = train_which(t, i, which);
    if (!mem) {
        if (i >= 0 && i < t->n_params && which == LLAMA_TRAIN_V) return APR_OK;
        return apr_error_set(err, APR_ERR_INVALID, "no trainable tensor %d / %d", i, which);
    }
    return apr_mem_write(mem, 0, src, (uint64_t)t->params[i].info.n * 4u, err);
}

void apr_llama_train_rng_get(const llama_train *t, uint64_t rng[4]) { memcpy(rng, t->rng, sizeof t->rng); }
void apr_llama_train_rng_set(llama_train *t, const uint64_t rng[4]) { memcpy(t->rng, rng, sizeof t->rng); }

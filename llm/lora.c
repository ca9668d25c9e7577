/* lora.c — LoRA adapter files (write, open, check) and their application to a loaded model (lora.h). */
#include "lora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apr/apr_float16.h"
#include "apr/apr_quant.h"

typedef struct lora_entry {
    char weight[160];             /* the base weight's name */
    const gguf_tensor *a, *b;     /* [in, r] and [r, out] */
} lora_entry;

struct lora_adapter {
    gguf_file *f;
    char path[512];
    char arch[32];
    float alpha;
    lora_entry *e;
    int n;
};

typedef struct lora_slot {
    const gguf_tensor **field;    /* the model's pointer that was replaced */
    const gguf_tensor *orig;
    gguf_tensor merged;           /* name, f32, data = sum */
    char name[160];
    float *sum;
} lora_slot;

struct lora_applied {
    lora_slot *s;                 /* [n_slots], one per weight of the model; orig set where replaced */
    int n_slots;
    int n;                        /* slots replaced */
};

/* ---------------------------------------------------------------- writing */

apr_status apr_lora_write(const char *path, const char *arch, float alpha, const lora_pair *pairs, int n, apr_error *err) {
    gguf_writer *w = apr_gguf_writer_new();
    if (!w) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    apr_gguf_writer_set_str(w, "general.architecture", arch);
    apr_gguf_writer_set_str(w, "general.type", "adapter");
    apr_gguf_writer_set_str(w, "adapter.type", "lora");
    apr_gguf_writer_set_f32(w, "adapter.lora.alpha", alpha);
    char name[200];
    for (int i = 0; i < n; i++) {
        const lora_pair *p = &pairs[i];
        snprintf(name, sizeof name, "%s.lora_a", p->weight);
        apr_gguf_writer_add_tensor(w, name, APR_F32, 2, (int64_t[]){p->n_in, p->r}, p->a, (uint64_t)(p->n_in * p->r) * 4u);
        snprintf(name, sizeof name, "%s.lora_b", p->weight);
        apr_gguf_writer_add_tensor(w, name, APR_F32, 2, (int64_t[]){p->r, p->n_out}, p->b, (uint64_t)(p->r * p->n_out) * 4u);
    }
    apr_status s = apr_gguf_writer_write(w, path, err);
    apr_gguf_writer_free(w);
    return s;
}

/* ---------------------------------------------------------------- reading */

static bool lora_ends_with(const char *s, const char *suffix, size_t *stem) {
    size_t ls = strlen(s), lx = strlen(suffix);
    if (ls <= lx || strcmp(s + ls - lx, suffix)) return false;
    *stem = ls - lx;
    return true;
}

static bool lora_float(uint32_t dt) { return dt == APR_F32 || dt == APR_F16 || dt == APR_BF16; }

apr_status apr_lora_open(const char *path, lora_adapter **out, apr_error *err) {
    *out = NULL;
    lora_adapter *a = calloc(1, sizeof *a);
    if (!a) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    snprintf(a->path, sizeof a->path, "%s", path);
    apr_status s = apr_gguf_open(path, &a->f, err);
    if (s != APR_OK) {
        free(a);
        return s;
    }
    const char *type = apr_gguf_get_str(a->f, "general.type"), *atype = apr_gguf_get_str(a->f, "adapter.type");
    const char *arch = apr_gguf_get_str(a->f, "general.architecture");
    if (!type || strcmp(type, "adapter") || !atype || strcmp(atype, "lora")) {
        s = apr_error_set(err, APR_ERR_FORMAT, "%s: not a LoRA adapter (general.type \"%s\", adapter.type \"%s\"; want \"adapter\" "
                          "and \"lora\")", path, type ? type : "", atype ? atype : "");
    } else if (!apr_gguf_get_f32(a->f, "adapter.lora.alpha", &a->alpha) || !(a->alpha > 0)) {
        s = apr_error_set(err, APR_ERR_FORMAT, "%s: adapter.lora.alpha is missing or not a positive f32", path);
    } else {
        snprintf(a->arch, sizeof a->arch, "%s", arch ? arch : "");
        const int64_t nt = apr_gguf_tensor_count(a->f);
        if (!(a->e = calloc((size_t)(nt / 2 + 1), sizeof *a->e))) s = apr_error_set(err, APR_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; s == APR_OK && i < nt; i++) {
            const gguf_tensor *t = apr_gguf_tensor_at(a->f, i);
            size_t stem;
            if (lora_ends_with(t->name, ".lora_b", &stem)) continue; /* found from its lora_a */
            if (!lora_ends_with(t->name, ".lora_a", &stem) || stem >= sizeof a->e[0].weight) {
                s = apr_error_set(err, APR_ERR_FORMAT, "%s: tensor %s is neither a .lora_a nor a .lora_b", path, t->name);
                break;
            }
            lora_entry *e = &a->e[a->n];
            memcpy(e->weight, t->name, stem);
            e->weight[stem] = 0;
            char bname[200];
            snprintf(bname, sizeof bname, "%s.lora_b", e->weight);
            e->a = t;
            e->b = apr_gguf_tensor_find(a->f, bname);
            if (!e->b) s = apr_error_set(err, APR_ERR_FORMAT, "%s: %s has no %s", path, t->name, bname);
            else if (!lora_float(e->a->dtype) || !lora_float(e->b->dtype))
                s = apr_error_set(err, APR_ERR_FORMAT, "%s: %s: adapter tensors must be f32, f16 or bf16", path, e->weight);
            else if (e->a->n_dims != 2 || e->b->n_dims != 2 || e->a->ne[1] != e->b->ne[0] || e->a->ne[1] < 1)
                s = apr_error_set(err, APR_ERR_FORMAT, "%s: %s: lora_a [%lld, %lld] and lora_b [%lld, %lld] do not make a rank-r pair",
                                  path, e->weight, (long long)e->a->ne[0], (long long)e->a->ne[1], (long long)e->b->ne[0],
                                  (long long)e->b->ne[1]);
            else a->n++;
        }
        if (s == APR_OK && a->n * 2 != nt)
            s = apr_error_set(err, APR_ERR_FORMAT, "%s: %lld tensors for %d lora_a/lora_b pairs", path, (long long)nt, a->n);
        if (s == APR_OK && a->n == 0) s = apr_error_set(err, APR_ERR_FORMAT, "%s: the adapter has no tensors", path);
    }
    if (s != APR_OK) {
        apr_lora_close(a);
        return s;
    }
    *out = a;
    return APR_OK;
}

void apr_lora_close(lora_adapter *a) {
    if (!a) return;
    apr_gguf_close(a->f);
    free(a->e);
    free(a);
}

float apr_lora_alpha(const lora_adapter *a) { return a->alpha; }
int apr_lora_count(const lora_adapter *a) { return a->n; }

/* ---------------------------------------------------------------- applying */

/* Value i of a float tensor. */
static float lora_at(const gguf_tensor *t, int64_t i) {
    if (t->dtype == APR_F32) return ((const float *)t->data)[i];
    const uint16_t h = ((const uint16_t *)t->data)[i];
    return t->dtype == APR_F16 ? apr_f16_to_f32(h) : apr_bf16_to_f32(h);
}

/* Every weight pointer of the model, for finding a weight by name. */
static int lora_fields(llama_model *m, const gguf_tensor ***fields, int cap) {
    int n = 0;
    const gguf_tensor **g[] = {&m->tok_embd, &m->out_norm, &m->output};
    for (int i = 0; i < 3 && n < cap; i++) fields[n++] = g[i];
    for (int l = 0; l < m->hp.n_layer; l++) {
        llama_layer *L = &m->layers[l];
        const gguf_tensor **f[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->bq, &L->bk, &L->bv, &L->q_norm, &L->k_norm,
                                   &L->wo, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof f / sizeof *f && n < cap; i++)
            if (*f[i]) fields[n++] = f[i];
    }
    return n;
}

/* The weight's values as f32 into dst (float or block dtypes). */
static bool lora_weight_f32(const gguf_tensor *w, float *dst) {
    const int64_t n = w->ne[0] * w->ne[1] * w->ne[2] * w->ne[3];
    if (lora_float(w->dtype)) {
        for (int64_t i = 0; i < n; i++) dst[i] = lora_at(w, i);
        return true;
    }
    const int64_t row = w->ne[0], rb = apr_dtype_row_bytes((apr_dtype)w->dtype, row);
    if (rb <= 0) return false;
    for (int64_t r = 0; r < n / row; r++)
        if (!apr_dequant_row((apr_dtype)w->dtype, (const char *)w->data + r * rb, dst + r * row, row)) return false;
    return true;
}

static void lora_add(float *sum, const lora_entry *e, float s) {
    const int64_t nin = e->a->ne[0], r = e->a->ne[1], nout = e->b->ne[1];
    float *brow = malloc((size_t)r * sizeof *brow);
    if (!brow) return;
    for (int64_t o = 0; o < nout; o++) {
        for (int64_t j = 0; j < r; j++) brow[j] = s * lora_at(e->b, o * r + j);
        float *w = sum + o * nin;
        for (int64_t j = 0; j < r; j++) {
            const float bj = brow[j];
            for (int64_t i = 0; i < nin; i++) w[i] += bj * lora_at(e->a, j * nin + i);
        }
    }
    free(brow);
}

apr_status apr_lora_apply(llama_model *m, lora_adapter *const *adapters, const float *scales, int n, lora_applied **out,
                          apr_error *err) {
    *out = NULL;
    const int cap = 3 + 14 * m->hp.n_layer;
    const gguf_tensor ***fields = malloc((size_t)cap * sizeof *fields);
    lora_applied *ap = calloc(1, sizeof *ap);
    if (!fields || !ap || !(ap->s = calloc((size_t)cap, sizeof *ap->s))) {
        free(fields);
        free(ap);
        return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    }
    const int nf = lora_fields(m, fields, cap);
    ap->n_slots = nf;
    apr_status s = APR_OK;
    for (int k = 0; k < n && s == APR_OK; k++) {
        const lora_adapter *a = adapters[k];
        if (a->arch[0] && strcmp(a->arch, m->hp.arch))
            s = apr_error_set(err, APR_ERR_INVALID, "%s: an adapter for %s, the model is %s", a->path, a->arch, m->hp.arch);
        for (int i = 0; s == APR_OK && i < a->n; i++) {
            const lora_entry *e = &a->e[i];
            int f = 0;
            while (f < nf && strcmp((*fields[f])->name, e->weight) && !(ap->s[f].orig && !strcmp(ap->s[f].orig->name, e->weight)))
                f++;
            if (f == nf) {
                s = apr_error_set(err, APR_ERR_INVALID, "%s: the model has no weight %s", a->path, e->weight);
                break;
            }
            lora_slot *sl = &ap->s[f];
            const gguf_tensor *w = sl->orig ? sl->orig : *fields[f];
            if (w->n_dims != 2 || w->ne[0] != e->a->ne[0] || w->ne[1] != e->b->ne[1]) {
                s = apr_error_set(err, APR_ERR_INVALID, "%s: %s is [%lld, %lld], the adapter makes [%lld, %lld]", a->path, e->weight,
                                  (long long)w->ne[0], (long long)w->ne[1], (long long)e->a->ne[0], (long long)e->b->ne[1]);
                break;
            }
            if (!sl->orig) {
                const int64_t cnt = w->ne[0] * w->ne[1];
                if (!(sl->sum = malloc((size_t)cnt * sizeof *sl->sum))) {
                    s = apr_error_set(err, APR_ERR_NOMEM, "out of memory for %s", e->weight);
                    break;
                }
                if (!lora_weight_f32(w, sl->sum)) {
                    s = apr_error_set(err, APR_ERR_UNSUPPORTED, "%s: dtype %u cannot take an adapter", e->weight, w->dtype);
                    break;
                }
                sl->field = fields[f];
                sl->orig = w;
                snprintf(sl->name, sizeof sl->name, "%s", w->name);
                sl->merged = (gguf_tensor){.name = sl->name, .dtype = APR_F32, .n_dims = 2, .ne = {w->ne[0], w->ne[1], 1, 1},
                                           .size = (uint64_t)cnt * 4u, .data = sl->sum};
                *sl->field = &sl->merged;
                ap->n++;
            }
            lora_add(sl->sum, e, scales[k] * a->alpha / (float)e->a->ne[1]);
        }
    }
    free(fields);
    if (s != APR_OK) {
        apr_lora_applied_free(ap);
        return s;
    }
    *out = ap;
    return APR_OK;
}

void apr_lora_applied_free(lora_applied *ap) {
    if (!ap) return;
    for (int i = 0; i < ap->n_slots; i++) {
        lora_slot *sl = &ap->s[i];
        if (sl->orig) *sl->field = sl->orig;
        free(sl->sum);
    }
    free(ap->s);
    free(ap);
}

int apr_lora_applied_count(const lora_applied *ap) { return ap ? ap->n : 0; }

const gguf_tensor *apr_lora_applied_tensor(const lora_applied *ap, int i) {
    for (int k = 0, seen = 0; ap && k < ap->n_slots; k++)
        if (ap->s[k].orig && seen++ == i) return &ap->s[k].merged;
    return NULL;
}

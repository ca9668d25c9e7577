/* sampler.c — penalties, greedy, temperature, top-k, top-p and min-p sampling with a seeded generator. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct sampler_cand {
    int32_t id;
    float p;          /* logit, then probability */
} sampler_cand;

struct sampler {
    sampler_params p;
    int n_vocab;
    int32_t *recent;          /* ring of the last penalty_last_n accepted ids */
    int n_recent, head;
    uint64_t rng;             /* xorshift64* state, never 0 */
    sampler_cand *cand;       /* [n_vocab] scratch */
};

sampler_params apr_sampler_defaults(void) {
    return (sampler_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f,
                            .frequency_penalty = 0.0f, .presence_penalty = 0.0f, .penalty_last_n = 64, .seed = 0};
}

sampler *apr_sampler_new(const sampler_params *p, int n_vocab) {
    sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    if (s->p.penalty_last_n < 0) s->p.penalty_last_n = 0;
    s->recent = calloc((size_t)s->p.penalty_last_n + 1, sizeof *s->recent);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (!s->recent || !s->cand) { apr_sampler_free(s); return NULL; }
    s->rng = p->seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    if (!s->rng) s->rng = 1;
    return s;
}

void apr_sampler_free(sampler *s) {
    if (!s) return;
    free(s->recent);
    free(s->cand);
    free(s);
}

void apr_sampler_accept(sampler *s, int32_t id) {
    if (!s->p.penalty_last_n) return;
    s->recent[s->head] = id;
    s->head = (s->head + 1) % s->p.penalty_last_n;
    if (s->n_recent < s->p.penalty_last_n) s->n_recent++;
}

/* Uniform in [0, 1) from xorshift64*. */
static double sampler_uniform(sampler *s) {
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 0x2545f4914f6cdd1dull) >> 11) * (1.0 / 9007199254740992.0);
}

static void sampler_penalize(sampler *s, float *logits) {
    const sampler_params *p = &s->p;
    if (!s->n_recent || (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f)) return;
    for (int i = 0; i < s->n_recent; i++) {
        int32_t id = s->recent[i];
        if (id < 0 || id >= s->n_vocab) continue;
        int count = 0, first = 1;
        for (int j = 0; j < s->n_recent; j++) {
            if (s->recent[j] != id) continue;
            if (j < i) first = 0; /* penalise each distinct id once, at its first occurrence */
            count++;
        }
        if (!first) continue;
        float *l = &logits[id];
        *l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
        *l -= (float)count * p->frequency_penalty + p->presence_penalty;
    }
}

static int sampler_by_p_desc(const void *a, const void *b) {
    const sampler_cand *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Moves the k first candidates in sampler_by_p_desc order to c[0 .. k), in some order
 * (quickselect; the order is total, so they are the same k a full sort would put first). */
static void sampler_select(sampler_cand *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        const sampler_cand pivot = c[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (sampler_by_p_desc(&c[i], &pivot) < 0) i++;
            while (sampler_by_p_desc(&c[j], &pivot) > 0) j--;
            if (i <= j) {
                const sampler_cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

int32_t apr_sampler_sample(sampler *s, float *logits) {
    const sampler_params *p = &s->p;
    sampler_penalize(s, logits);
    if (p->temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < s->n_vocab; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    int n = s->n_vocab;
    for (int i = 0; i < n; i++) {
        float v = logits[i] / p->temperature;
        s->cand[i] = (sampler_cand){i, v == v ? v : -INFINITY}; /* NaN ranks last: the order stays total */
    }
    /* With top-k only the best k need sorting: select them first (a 152k vocabulary took longer
     * to sort than the token took to compute) */
    if (p->top_k > 0 && p->top_k < n) {
        sampler_select(s->cand, n, p->top_k);
        n = p->top_k;
    }
    qsort(s->cand, (size_t)n, sizeof *s->cand, sampler_by_p_desc);
    double mx = s->cand[0].p, sum = 0;
    for (int i = 0; i < n; i++) sum += (s->cand[i].p = (float)exp(s->cand[i].p - mx));
    for (int i = 0; i < n; i++) s->cand[i].p = (float)(s->cand[i].p / sum);
    if (p->min_p > 0.0f) {
        float floor = p->min_p * s->cand[0].p;
        int keep = 1;
        while (keep < n && s->cand[keep].p >= floor) keep++;
        n = keep;
    }
    if (p->top_p < 1.0f) {
        double acc = 0;
        int keep = 0;
        while (keep < n && acc < p->top_p) acc += s->cand[keep++].p;
        n = keep > 0 ? keep : 1;
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += s->cand[i].p;
    double r = sampler_uniform(s) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->cand[i].p;
        if (r < acc) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}

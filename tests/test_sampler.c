/* test_sampler.c — the sampler chain: top-k keeps exactly the k best (ties to the lowest id), seeds repeat, NaN logits never win. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

#define SMP_N 3001

static const float *smp_sort_logits; /* for smp_by_logit_desc */

static int smp_by_logit_desc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    float lx = smp_sort_logits[x], ly = smp_sort_logits[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Logits from a few levels, so many tie; level 0 (the best) is held by `top` ids spread over the
 * vocabulary, the rest by a fixed pseudo-random pattern. */
static void smp_logits(float *l, int top) {
    unsigned s = 12345u;
    for (int i = 0; i < SMP_N; i++) {
        s = s * 1103515245u + 12345u;
        l[i] = -1.0f - (float)((s >> 16) % 5);
    }
    for (int t = 0; t < top; t++) l[(t * 977 + 13) % SMP_N] = 0.0f;
}

/* The ids a full sort by (logit desc, id asc) puts first: marks[id] = 1 for the first k. */
static void smp_expected(const float *l, int k, unsigned char *marks) {
    int *idx = malloc(sizeof(int) * SMP_N);
    cr_assert_not_null(idx);
    for (int i = 0; i < SMP_N; i++) idx[i] = i;
    smp_sort_logits = l;
    qsort(idx, SMP_N, sizeof *idx, smp_by_logit_desc);
    memset(marks, 0, SMP_N);
    for (int i = 0; i < k; i++) marks[idx[i]] = 1;
    free(idx);
}

/* draws with temperature 1 and only top-k active; counts[id] += 1 per draw */
static void smp_draw(const float *l, int k, uint64_t seed, int draws, int *counts) {
    sampler_params p = apr_sampler_defaults();
    p.temperature = 1.0f;
    p.top_k = k;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    sampler *s = apr_sampler_new(&p, SMP_N);
    cr_assert_not_null(s);
    float *scratch = malloc(sizeof(float) * SMP_N);
    cr_assert_not_null(scratch);
    for (int d = 0; d < draws; d++) {
        memcpy(scratch, l, sizeof(float) * SMP_N);
        int32_t id = apr_sampler_sample(s, scratch);
        cr_assert(id >= 0 && id < SMP_N, "draw %d: id %d outside the vocabulary", d, id);
        counts[id]++;
    }
    free(scratch);
    apr_sampler_free(s);
}

Test(sampler, top_k_keeps_exactly_the_k_best_ties_to_the_lowest_id) {
    static float l[SMP_N];
    static unsigned char marks[SMP_N];
    static int counts[SMP_N];
    /* k inside the tied best level (7 of 12 ids at logit 0), at its edge, past it, and most of
     * the vocabulary */
    const int ks[] = {1, 7, 12, 40, 2900};
    smp_logits(l, 12);
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        const int k = ks[t];
        smp_expected(l, k, marks);
        memset(counts, 0, sizeof counts);
        smp_draw(l, k, 1000 + (uint64_t)k, 3000, counts);
        int seen = 0;
        for (int i = 0; i < SMP_N; i++) {
            cr_assert(counts[i] == 0 || marks[i], "top_k=%d drew id %d (logit %g), which is not among the %d best", k,
                      i, (double)l[i], k);
            seen += counts[i] > 0;
        }
        /* within the tied level every kept id is equally likely: 3000 draws see all of them */
        if (k <= 12) cr_assert_eq(seen, k, "top_k=%d: %d distinct ids drawn, want all %d", k, seen, k);
    }
}

Test(sampler, the_same_seed_repeats_and_another_seed_differs) {
    static float l[SMP_N];
    static int a[SMP_N], b[SMP_N], c[SMP_N];
    smp_logits(l, 12);
    smp_draw(l, 40, 77, 500, a);
    smp_draw(l, 40, 77, 500, b);
    smp_draw(l, 40, 78, 500, c);
    cr_assert(!memcmp(a, b, sizeof a), "the same seed gave different draws");
    cr_assert(memcmp(a, c, sizeof a), "seeds 77 and 78 gave the same 500 draws");
}

Test(sampler, nan_logits_are_never_drawn) {
    static float l[SMP_N];
    static int counts[SMP_N];
    smp_logits(l, 3);
    for (int i = 0; i < SMP_N; i += 2) l[i] = NAN;
    for (int k = 1; k <= 5; k += 2) {
        memset(counts, 0, sizeof counts);
        smp_draw(l, k, 5, 400, counts);
        for (int i = 0; i < SMP_N; i += 2) cr_assert_eq(counts[i], 0, "top_k=%d drew id %d, whose logit is NaN", k, i);
    }
}

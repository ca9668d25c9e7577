/* ft_data.c — the fine-tuning dataset: windows over the token stream, the validation split and each epoch's order. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ft_data_internal.h"

/* One split: windows (numbers k of window stream[k*L .. k*L + L]) of one stream, in file order. */
typedef struct ftd_split {
    const ftd_stream *s;
    int64_t *win;              /* [n] */
    int64_t n;
} ftd_split;

struct apr_ftdata {
    int seq_len;
    uint64_t seed;
    int32_t pad;               /* ids past the end of the stream */
    ftd_stream train, val;     /* val: only with a val_file */
    ftd_split split[2];        /* APR_FTDATA_TRAIN, APR_FTDATA_VAL */
    apr_ftdata_stats stats;
};

/* ---------------------------------------------------------------- random numbers */

/* splitmix64 (Steele, Lea, Flood): one step of the sequence whose state is *s. */
static uint64_t ftd_splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound), bound > 0, without modulo bias. */
static uint64_t ftd_below(uint64_t *s, uint64_t bound) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = ftd_splitmix(s);
    while (x >= lim);
    return x % bound;
}

#define FTD_ROUNDS 6

/* Position i of a keyed pseudo-random permutation of [0, n): a balanced Feistel network over the
 * smallest 4^h >= n, walked until it lands inside [0, n) (fewer than 4 steps on average). */
static int64_t ftd_permute(int64_t n, uint64_t seed, int64_t epoch, int64_t i) {
    uint64_t st = seed ^ ftd_splitmix(&(uint64_t){(uint64_t)epoch ^ 0x70657270ull});
    uint64_t key[FTD_ROUNDS];
    for (int r = 0; r < FTD_ROUNDS; r++) key[r] = ftd_splitmix(&st);
    int h = 1;
    while (h < 31 && ((uint64_t)1 << (2 * h)) < (uint64_t)n) h++;
    uint64_t mask = ((uint64_t)1 << h) - 1, x = (uint64_t)i;
    do {
        uint64_t l = x >> h, r = x & mask;
        for (int k = 0; k < FTD_ROUNDS; k++) {
            uint64_t t = r ^ key[k];
            uint64_t f = ftd_splitmix(&t) & mask;
            uint64_t nr = l ^ f;
            l = r;
            r = nr;
        }
        x = (l << h) | r;
    } while (x >= (uint64_t)n);
    return (int64_t)x;
}

/* ---------------------------------------------------------------- windows */

/* Every window of s that has a target (see ft_data.h) into sp. false when out of memory. */
static bool ftd_windows(const ftd_stream *s, int L, ftd_split *sp) {
    sp->s = s;
    sp->n = 0;
    if (s->n < 2) return true;
    int64_t total = (s->n - 1 + L - 1) / L;
    sp->win = malloc((size_t)total * sizeof *sp->win);
    if (!sp->win) return false;
    for (int64_t k = 0; k < total; k++) {
        int64_t lo = k * L + 1, hi = k * L + L < s->n - 1 ? k * L + L : s->n - 1;
        if (memchr(s->loss + lo, 1, (size_t)(hi - lo + 1))) sp->win[sp->n++] = k;
    }
    return true;
}

/* Moves round(frac * W) of the training windows (at least 1 when frac > 0 and W >= 2, at most
 * W - 1), drawn from the seed, into the validation split; both keep file order. */
static bool ftd_hold_out(apr_ftdata *d, double frac) {
    ftd_split *tr = &d->split[APR_FTDATA_TRAIN], *va = &d->split[APR_FTDATA_VAL];
    int64_t w = tr->n, k = (int64_t)llround(frac * (double)w);
    if (frac > 0 && k < 1) k = 1;
    if (k > w - 1) k = w - 1;
    va->s = tr->s;
    if (k <= 0) return true;
    int64_t *order = malloc((size_t)w * sizeof *order);
    uint8_t *held = calloc((size_t)w, 1);
    va->win = malloc((size_t)k * sizeof *va->win);
    if (!order || !held || !va->win) { free(order); free(held); return false; }
    for (int64_t i = 0; i < w; i++) order[i] = i;
    uint64_t st = d->seed ^ 0x76616c6964617465ull;   /* "validate" */
    for (int64_t i = 0; i < k; i++) {   /* the first k of a Fisher-Yates shuffle */
        int64_t j = i + (int64_t)ftd_below(&st, (uint64_t)(w - i));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
        held[order[i]] = 1;
    }
    int64_t nt = 0;
    for (int64_t i = 0; i < w; i++) {
        if (held[i]) va->win[va->n++] = tr->win[i];
        else tr->win[nt++] = tr->win[i];
    }
    tr->n = nt;
    free(order);
    free(held);
    return true;
}

/* ---------------------------------------------------------------- open / free */

static void ftd_count(const ftd_stream *s, apr_ftdata_stats *st) {
    st->tokens += s->n;
    for (int64_t i = 0; i < s->n; i++) st->loss_tokens += s->loss[i];
}

static apr_status ftd_build(apr_ftdata *d, const char *path, const tok_vocab *v, const apr_ftdata_opts *o,
                            apr_error *err) {
    apr_status rc = ftd_read_file(path, v, o, &d->train, &d->stats, err);
    if (!rc && o->val_file) rc = ftd_read_file(o->val_file, v, o, &d->val, &d->stats, err);
    if (rc) return rc;
    ftd_count(&d->train, &d->stats);
    ftd_count(&d->val, &d->stats);
    bool ok = ftd_windows(&d->train, o->seq_len, &d->split[APR_FTDATA_TRAIN]);
    if (ok && o->val_file) ok = ftd_windows(&d->val, o->seq_len, &d->split[APR_FTDATA_VAL]);
    else if (ok) ok = ftd_hold_out(d, o->val_split);
    if (!ok) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    if (!d->split[APR_FTDATA_TRAIN].n) return apr_error_set(err, APR_ERR_FORMAT, "%s: no training examples", path);
    if (o->val_file && !d->split[APR_FTDATA_VAL].n)
        return apr_error_set(err, APR_ERR_FORMAT, "%s: no validation examples", o->val_file);
    return APR_OK;
}

apr_status apr_ftdata_open(const char *path, const tok_vocab *v, const apr_ftdata_opts *o, apr_ftdata **out,
                           apr_error *err) {
    if (out) *out = NULL;
    if (!path || !v || !o || !out) return apr_error_set(err, APR_ERR_INVALID, "apr_ftdata_open: NULL argument");
    if (o->seq_len < 2) return apr_error_set(err, APR_ERR_INVALID, "%s: seq_len %d (at least 2)", path, o->seq_len);
    if (!(o->val_split >= 0 && o->val_split < 1))
        return apr_error_set(err, APR_ERR_INVALID, "%s: val_split %g (want 0 <= val_split < 1)", path, o->val_split);
    apr_ftdata *d = calloc(1, sizeof *d);
    if (!d) return apr_error_set(err, APR_ERR_NOMEM, "out of memory");
    d->seq_len = o->seq_len;
    d->seed = o->seed;
    int32_t pad = apr_tok_pad(v), eos = apr_tok_eos(v);
    d->pad = pad >= 0 ? pad : eos >= 0 ? eos : 0;
    apr_status rc = ftd_build(d, path, v, o, err);
    if (rc) {
        apr_ftdata_free(d);
        return rc;
    }
    *out = d;
    return APR_OK;
}

void apr_ftdata_free(apr_ftdata *d) {
    if (!d) return;
    ftd_stream_free(&d->train);
    ftd_stream_free(&d->val);
    free(d->split[0].win);
    free(d->split[1].win);
    free(d);
}

/* ---------------------------------------------------------------- queries */

int64_t apr_ftdata_count(const apr_ftdata *d, int split) {
    return split == APR_FTDATA_TRAIN || split == APR_FTDATA_VAL ? d->split[split].n : 0;
}

int apr_ftdata_seq_len(const apr_ftdata *d) { return d->seq_len; }

void apr_ftdata_window(const apr_ftdata *d, int split, int64_t epoch, int64_t i, int32_t *ids, int32_t *targets) {
    assert((split == APR_FTDATA_TRAIN || split == APR_FTDATA_VAL) && i >= 0 && i < apr_ftdata_count(d, split));
    int L = d->seq_len;
    if (!(split == APR_FTDATA_TRAIN || split == APR_FTDATA_VAL) || i < 0 || i >= d->split[split].n) {
        for (int t = 0; t < L; t++) { ids[t] = d->pad; targets[t] = -1; }   /* NDEBUG builds: an empty window */
        return;
    }
    const ftd_split *sp = &d->split[split];
    int64_t j = split == APR_FTDATA_TRAIN ? ftd_permute(sp->n, d->seed, epoch, i) : i;
    const ftd_stream *s = sp->s;
    int64_t start = sp->win[j] * L;
    for (int t = 0; t < L; t++) {
        int64_t p = start + t;
        ids[t] = p < s->n ? s->ids[p] : d->pad;
        targets[t] = p + 1 < s->n && s->loss[p + 1] ? s->ids[p + 1] : -1;
    }
}

void apr_ftdata_stats_get(const apr_ftdata *d, apr_ftdata_stats *out) { *out = d->stats; }

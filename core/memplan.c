/* memplan.c — offsets in one arena for buffers with known lifetimes: first fit, coalescing frees. */
#include <stdlib.h>

#include "internal.h"

typedef struct memplan_hole {
    int64_t offset;   /* bytes */
    int64_t size;     /* bytes */
} memplan_hole;

struct apr_memplan {
    int64_t alignment;     /* bytes; every offset and size is a multiple */
    int64_t top;           /* end of the highest block ever handed out: the arena's size */
    memplan_hole *holes;   /* free ranges below top, sorted by offset, never adjacent */
    int n_holes;
    int cap_holes;
};

static int64_t memplan_round(const apr_memplan *mp, int64_t size) {
    if (size <= 0) size = 1;
    return (size + mp->alignment - 1) / mp->alignment * mp->alignment;
}

apr_memplan *apr_memplan_new(int64_t alignment) {
    apr_memplan *mp = calloc(1, sizeof *mp);
    if (mp) mp->alignment = alignment > 0 ? alignment : 64;
    return mp;
}

void apr_memplan_free(apr_memplan *mp) {
    if (!mp) return;
    free(mp->holes);
    free(mp);
}

int64_t apr_memplan_alloc(apr_memplan *mp, int64_t size) {
    size = memplan_round(mp, size);
    /* Best fit keeps large holes for large tensors. */
    int best = -1;
    for (int i = 0; i < mp->n_holes; i++)
        if (mp->holes[i].size >= size && (best < 0 || mp->holes[i].size < mp->holes[best].size)) best = i;
    if (best >= 0) {
        int64_t off = mp->holes[best].offset;
        mp->holes[best].offset += size;
        mp->holes[best].size -= size;
        if (mp->holes[best].size == 0) {
            for (int i = best; i + 1 < mp->n_holes; i++) mp->holes[i] = mp->holes[i + 1];
            mp->n_holes--;
        }
        return off;
    }
    /* A hole touching the top can grow instead of starting a new block above it. */
    if (mp->n_holes && mp->holes[mp->n_holes - 1].offset + mp->holes[mp->n_holes - 1].size == mp->top) {
        int64_t off = mp->holes[--mp->n_holes].offset;
        mp->top = off + size;
        return off;
    }
    int64_t off = mp->top;
    mp->top += size;
    return off;
}

void apr_memplan_release(apr_memplan *mp, int64_t offset, int64_t size) {
    size = memplan_round(mp, size);
    if (mp->n_holes == mp->cap_holes) {
        int cap = mp->cap_holes ? 2 * mp->cap_holes : 16;
        memplan_hole *h = realloc(mp->holes, (size_t)cap * sizeof *h);
        if (!h) return; /* the range simply stays used: correct, only less reuse */
        mp->holes = h;
        mp->cap_holes = cap;
    }
    int i = 0;
    while (i < mp->n_holes && mp->holes[i].offset < offset) i++;
    for (int j = mp->n_holes; j > i; j--) mp->holes[j] = mp->holes[j - 1];
    mp->holes[i] = (memplan_hole){offset, size};
    mp->n_holes++;
    if (i + 1 < mp->n_holes && mp->holes[i].offset + mp->holes[i].size == mp->holes[i + 1].offset) {
        mp->holes[i].size += mp->holes[i + 1].size;
        for (int j = i + 1; j + 1 < mp->n_holes; j++) mp->holes[j] = mp->holes[j + 1];
        mp->n_holes--;
    }
    if (i > 0 && mp->holes[i - 1].offset + mp->holes[i - 1].size == mp->holes[i].offset) {
        mp->holes[i - 1].size += mp->holes[i].size;
        for (int j = i; j + 1 < mp->n_holes; j++) mp->holes[j] = mp->holes[j + 1];
        mp->n_holes--;
    }
}

int64_t apr_memplan_peak(const apr_memplan *mp) { return mp->top; }

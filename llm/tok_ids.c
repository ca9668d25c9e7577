/* tok_ids.c — the growable id array the tokenizers append to. */
#include <stdlib.h>

#include "tok_internal.h"

bool ids_grow(tok_ids *a) {
    if (a->oom) return false;
    size_t cap = a->cap ? a->cap * 2 : 64;
    int32_t *p = realloc(a->v, cap * sizeof *p);
    if (!p) { a->oom = true; return false; }
    a->v = p;
    a->cap = cap;
    return true;
}

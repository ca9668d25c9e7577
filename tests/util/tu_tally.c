/* tu_tally.c — per-backend totals (passed, failed, unsupported) summed across Criterion's test processes through a file. */
#include "tu_tally.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tu_tally_start(const tu_tally *t) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/apr-%s-XXXXXX", t->tag);
    int fd = mkstemp(path);
    if (fd < 0) return;
    close(fd);
    setenv(t->env, path, 1);
}

void tu_tally_add(const tu_tally *t, const char *backend, long passed, long failed, long unsupported) {
    const char *path = getenv(t->env);
    if (!path) return;
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0) return;
    char line[128];
    int len = snprintf(line, sizeof line, "%s %ld %ld %ld\n", backend, passed, failed, unsupported);
    if (len > 0 && write(fd, line, (size_t)len) != len) { /* a lost line only shortens the summary */ }
    close(fd);
}

void tu_tally_finish(const tu_tally *t) {
    const char *path = getenv(t->env);
    if (!path) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char names[TU_TALLY_MAX_BACKENDS][64];
    long totals[TU_TALLY_MAX_BACKENDS][3];
    int n = 0;
    char name[64];
    long p, fl, u;
    while (fscanf(f, "%63s %ld %ld %ld", name, &p, &fl, &u) == 4) {
        int i = 0;
        while (i < n && strcmp(names[i], name)) i++;
        if (i == n) {
            if (n == TU_TALLY_MAX_BACKENDS) continue;
            snprintf(names[n], sizeof names[n], "%s", name);
            memset(totals[n], 0, sizeof totals[n]);
            n++;
        }
        totals[i][0] += p;
        totals[i][1] += fl;
        totals[i][2] += u;
    }
    fclose(f);
    unlink(path);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%s%s: %ld passed, %ld failed, %ld unsupported\n", t->prefix, names[i], totals[i][0], totals[i][1],
                totals[i][2]);
}

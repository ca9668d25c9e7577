/* opts.h — apr-bench's command line. */
#ifndef BENCH_OPTS_H
#define BENCH_OPTS_H

#include <stdbool.h>
#include <stdio.h>

#define OPTS_MAX_THREADS 16
#define OPTS_MAX_CASES 64

typedef struct opts {
    const char *backend;               /* --backend NAME; NULL = every usable backend */
    int threads[OPTS_MAX_THREADS];     /* --threads N[,N...]; empty = physical cores */
    int n_threads;
    int repeat;                        /* --repeat N; 0 = the mode's default */
    double ref_cap_gflop;              /* --ref-cap G; < 0 = the mode's default */
    long timeout_s;                    /* --timeout S per benchmark; 0 = none */
    long bw_mib;                       /* --bw-mib N; 0 = max(1024, 8 x L3) */
    const char *cases[OPTS_MAX_CASES]; /* --case ID[,ID...]; empty = the mode's set */
    int n_cases;
    char *case_list;                   /* storage behind cases[] */
    bool quick, json, help, list, no_peer;
    const char *model;                 /* --model FILE: decode/prefill speed of a model instead of ops */
    int prefill;                       /* --prefill N tokens per prefill sample (default 128) */
    int decode;                        /* --decode N tokens per decode sample (default 32) */
    bool no_pack;                      /* --no-pack: with --model, weights stay in the file's layout */
    const char *train;                 /* --train FILE: training step speed of a model instead of ops */
    int method;                        /* --method lora|qlora|full (llama_train_method; default lora) */
    int seq_len;                       /* --seq-len N tokens per training step (default 256) */
    int lora_rank;                     /* --lora-rank R (default 8) */
    unsigned lora_targets;             /* --lora-targets q,v|all (LLAMA_LORA_* bits; default q,v) */
    int steps;                         /* --steps N timed training steps (default --repeat if given, else 3) */
} opts;

/* Parses argv. Returns 0, or 2 (usage error, message printed on stderr). Free with opts_free. */
int opts_parse(int argc, char **argv, opts *o);
void opts_free(opts *o);
void opts_help(FILE *f);

#endif

/* opts.c — apr-bench's command line. */
#include "opts.h"

#include <stdlib.h>
#include <string.h>

#include "cases.h"
#include "common/cli.h"
#include "llama_train.h"

void opts_help(FILE *f) {
    fprintf(f,
        "usage: apr-bench [options]\n"
        "\n"
        "Times single ops (each a one-node apr graph, apr_plan_run timed) on every usable backend and\n"
        "compares them with this machine's ceilings, measured at the start of the same run (read\n"
        "bandwidth, peak f32 FMA rate, per thread count), and with OpenBLAS where it is installed.\n"
        "Each figure is the MEDIAN of the samples after a warm-up run. Progress goes to stderr, one\n"
        "line per benchmark; results go to stdout.\n"
        "\n"
        "options:\n"
        "  --backend NAME   only this backend (an unknown name is an error listing the usable ones)\n"
        "  --threads N[,N]  thread counts to run, e.g. --threads 1,2 (default: physical cores); each at\n"
        "                   most 4 x the logical CPUs (never less than 8)\n"
        "  --quick          a short subset: GEMV f32/f16 4096x4096, GEMM 1024^3, rms_norm, decode\n"
        "                   attention (under a minute on a 2-core machine)\n"
        "  --repeat N       samples per benchmark (default 7; 5 with --quick). A sample repeats the run\n"
        "                   until it lasts ~20 ms; runs over 1 s take at most 3 samples\n"
        "  --case ID[,ID]   only these cases (see --list); overrides the --quick set\n"
        "  --list           list the cases and exit\n"
        "  --ref-cap G      skip cases above G GFLOP per run on the naive 'reference' backend\n"
        "                   (default 3; 0.5 with --quick)\n"
        "  --no-peer        do not load OpenBLAS\n"
        "  --model FILE     instead of ops: prefill and decode speed of a GGUF model (e.g. one made by\n"
        "                   apr-genmodel); decode as a ratio to its bandwidth floor = read bandwidth /\n"
        "                   bytes of weights read per token, the bandwidth measured again right before\n"
        "                   and right after every decode sample, the higher of the two taken (the\n"
        "                   median of the per-sample ratios is reported)\n"
        "  --prefill N      tokens per prefill sample with --model (default 128)\n"
        "  --decode N       tokens per decode sample with --model (default 32)\n"
        "  --no-pack        with --model: keep weights in the file's block layout (no repacking for\n"
        "                   faster kernels)\n"
        "  --train FILE     instead of ops: training speed of a GGUF model (llm/llama_train.h) on the\n"
        "                   default backend (or --backend), per thread count: a warm-up step, then\n"
        "                   --steps optimizer steps over random token windows (fixed seed); the median\n"
        "                   step time, tokens/s, the matmul FLOPs of one step, GFLOP/s = those FLOPs /\n"
        "                   step time and its ratio to the FMA peak at the same thread count (the\n"
        "                   highest of the start-up figure and measurements right before each timed\n"
        "                   step and after the last). The executor has no per-node timing: the time is the whole\n"
        "                   step's (forward, backward, gradient norms, optimizer), so GFLOP/s is a lower\n"
        "                   bound of the matmuls' own rate. Matmul FLOPs, T = tokens per step, a K x N\n"
        "                   weight: forward 2*K*N*T for every matmul (q k v o gate up down of every layer,\n"
        "                   the output projection, LoRA's A: K->r and B: r->N); backward dX = W^T dY\n"
        "                   (2*K*N*T) for every matmul whose input depends on a trainable tensor, and\n"
        "                   dW (2*K*N*T) for trainable weights only. Attention is printed apart, not in\n"
        "                   the ratio: 2*hd*P per head for QK^T and for PV forward (P = L(L+1)/2 causal\n"
        "                   pairs of a window of L), four such products backward\n"
        "  --method M       with --train: lora (float base), qlora (quantized base) or full (default lora)\n"
        "  --seq-len N      with --train: tokens per step, one window (default 256)\n"
        "  --lora-rank R    with --train: LoRA rank (default 8; alpha 2R)\n"
        "  --lora-targets L with --train: q,k,v,o,gate,up,down separated by commas, or all (default q,v)\n"
        "  --steps N        with --train: timed steps per thread count (default --repeat if given, else 3)\n"
        "  --timeout S      a benchmark running longer than S seconds (a hung backend) ends the run\n"
        "                   with exit status 1 (default 300; 0 = no limit); with --train, each step\n"
        "                   and each trainer's construction\n"
        "  --bw-mib N       array size for the bandwidth ceiling (default max(1024, 8 x L3))\n"
        "  --json           one JSON document on stdout instead of the table\n"
        "  -h, --help       this text\n"
        "\n"
        "columns: GFLOP/s (matmul, attention; an FMA counts 2), GB/s (weights + activations read and\n"
        "results written, once each), 'of ceil' (GB/s over read bandwidth for memory-bound cases:\n"
        "GEMV, row ops, decode attention; GFLOP/s over FMA peak for GEMM and prefill attention; same\n"
        "thread count), 'vs OpenBLAS' (OpenBLAS time / ours, > 1 means faster than OpenBLAS; f32 matmul\n"
        "only: cblas_sgemv for M=1, cblas_sgemm(NoTrans, Trans) otherwise, as C = X W^T).\n"
        "\n"
        "OpenBLAS: libopenblas.so.0 (or libopenblas.so) is dlopen'ed when present, with\n"
        "OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2) unless already set, because Debian's\n"
        "0.3.21 misdetects recent AMD cores. Our f32 matmul results are checked against it.\n"
        "\n"
        "Memory-bound cases rotate over enough copies of their operands to exceed 4 x L3, so every\n"
        "run streams from memory.\n"
        "\n"
        "exit status: 0 ok, 1 runtime failure (an op failed or disagreed with OpenBLAS), 2 usage error\n");
}

static int opts_threads(const char *v, opts *o) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    o->n_threads = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long n, cap = cli_max_threads();
        if (!cli_parse_int(tok, 1, cap, &n)) {
            fprintf(stderr, "error: --threads wants numbers from 1 to %ld (%d per logical CPU, at least %d) separated by commas, got '%s'\n",
                    cap, CLI_THREADS_PER_CPU, CLI_THREADS_FLOOR, v);
            return 2;
        }
        bool dup = false;
        for (int j = 0; j < o->n_threads; j++) dup |= o->threads[j] == (int)n;
        if (dup) continue;
        if (o->n_threads == OPTS_MAX_THREADS) {
            fprintf(stderr, "error: --threads takes at most %d counts\n", OPTS_MAX_THREADS);
            return 2;
        }
        o->threads[o->n_threads++] = (int)n;
    }
    if (!o->n_threads) {
        fprintf(stderr, "error: --threads needs a number\n");
        return 2;
    }
    return 0;
}

static int opts_cases(const char *v, opts *o) {
    free(o->case_list);
    o->case_list = strdup(v);
    o->n_cases = 0;
    if (!o->case_list) return 2;
    for (char *save = NULL, *tok = strtok_r(o->case_list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!cases_find(tok)) {
            int n;
            const cases_case *all = cases_all(&n);
            fprintf(stderr, "error: unknown case '%s'; cases:", tok);
            for (int j = 0; j < n; j++) fprintf(stderr, " %s", all[j].id);
            fprintf(stderr, "\n");
            return 2;
        }
        if (o->n_cases == OPTS_MAX_CASES) return 2;
        o->cases[o->n_cases++] = tok;
    }
    if (!o->n_cases) {
        fprintf(stderr, "error: --case needs at least one id (see --list)\n");
        return 2;
    }
    return 0;
}

/* --lora-targets: names separated by commas, or all. */
static bool opts_targets(const char *v, unsigned *out) {
    static const char *const names[] = {"q", "k", "v", "o", "gate", "up", "down"};
    if (!strcmp(v, "all")) {
        *out = 0x7fu;
        return true;
    }
    char buf[128];
    if (snprintf(buf, sizeof buf, "%s", v) >= (int)sizeof buf) return false;
    unsigned t = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < 7 && strcmp(tok, names[i])) i++;
        if (i == 7) return false;
        t |= 1u << i;
    }
    *out = t;
    return t != 0;
}

int opts_parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->ref_cap_gflop = -1;
    o->timeout_s = 300;
    o->method = LLAMA_TRAIN_LORA;
    o->lora_targets = LLAMA_LORA_Q | LLAMA_LORA_V;
    const char *train_only = NULL, *lora_only = NULL; /* the last option of each kind given */
    bool repeat_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
        if (!strcmp(a, "--quick")) o->quick = true;
        else if (!strcmp(a, "--list")) o->list = true;
        else if (!strcmp(a, "--no-peer")) o->no_peer = true;
        else if (!strcmp(a, "--no-pack")) o->no_pack = true;
        else if ((v = cli_option_value(argc, argv, &i, "--threads"))) {
            if (opts_threads(v, o)) return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--repeat"))) {
            if (!cli_option_int("--repeat", v, 1, 1000, &n)) return 2;
            o->repeat = (int)n;
            repeat_given = true;
        } else if ((v = cli_option_value(argc, argv, &i, "--timeout"))) {
            if (!cli_option_int("--timeout", v, 0, 86400, &n)) return 2;
            o->timeout_s = n;
        } else if ((v = cli_option_value(argc, argv, &i, "--bw-mib"))) {
            if (!cli_option_int("--bw-mib", v, 16, 1 << 20, &n)) return 2;
            o->bw_mib = n;
        } else if ((v = cli_option_value(argc, argv, &i, "--ref-cap"))) {
            if (!cli_option_float("--ref-cap", v, 0, 1e9, &o->ref_cap_gflop)) return 2;
        } else if ((v = cli_option_value(argc, argv, &i, "--model"))) {
            o->model = v;
        } else if ((v = cli_option_value(argc, argv, &i, "--prefill")) || (v = cli_option_value(argc, argv, &i, "--decode"))) {
            bool pre = !strncmp(a, "--prefill", 9);
            if (!cli_option_int(pre ? "--prefill" : "--decode", v, 1, 65536, &n)) return 2;
            *(pre ? &o->prefill : &o->decode) = (int)n;
        } else if ((v = cli_option_value(argc, argv, &i, "--train"))) {
            o->train = v;
        } else if ((v = cli_option_value(argc, argv, &i, "--method"))) {
            train_only = "--method";
            if (!strcmp(v, "lora")) o->method = LLAMA_TRAIN_LORA;
            else if (!strcmp(v, "qlora")) o->method = LLAMA_TRAIN_QLORA;
            else if (!strcmp(v, "full")) o->method = LLAMA_TRAIN_FULL;
            else {
                fprintf(stderr, "error: --method %s: lora, qlora or full\n", v);
                return 2;
            }
        } else if ((v = cli_option_value(argc, argv, &i, "--seq-len"))) {
            train_only = "--seq-len";
            if (!cli_option_int("--seq-len", v, 2, 65536, &n)) return 2;
            o->seq_len = (int)n;
        } else if ((v = cli_option_value(argc, argv, &i, "--steps"))) {
            train_only = "--steps";
            if (!cli_option_int("--steps", v, 1, 1000, &n)) return 2;
            o->steps = (int)n;
        } else if ((v = cli_option_value(argc, argv, &i, "--lora-rank"))) {
            train_only = lora_only = "--lora-rank";
            if (!cli_option_int("--lora-rank", v, 1, 4096, &n)) return 2;
            o->lora_rank = (int)n;
        } else if ((v = cli_option_value(argc, argv, &i, "--lora-targets"))) {
            train_only = lora_only = "--lora-targets";
            if (!opts_targets(v, &o->lora_targets)) {
                fprintf(stderr, "error: --lora-targets %s: a comma-separated list of q, k, v, o, gate, up, down, or all\n", v);
                return 2;
            }
        } else if ((v = cli_option_value(argc, argv, &i, "--case"))) {
            if (opts_cases(v, o)) return 2;
        } else {
            cli_common common = {0};
            int r = cli_parse_common(argc, argv, &i, &common);
            if (r < 0) return 2;
            if (r == 0) {
                fprintf(stderr, "error: unknown option '%s' (see --help)\n", a);
                return 2;
            }
            if (common.backend) o->backend = common.backend;
            o->json |= common.json;
            o->help |= common.help;
        }
    }
    if (o->train && o->model) {
        fprintf(stderr, "error: --train and --model measure different things; give one of them\n");
        return 2;
    }
    if (train_only && !o->train) {
        fprintf(stderr, "error: %s only applies to --train FILE\n", train_only);
        return 2;
    }
    if (lora_only && o->method == LLAMA_TRAIN_FULL) {
        fprintf(stderr, "error: %s does not apply to --method full (no adapters)\n", lora_only);
        return 2;
    }
    if (!o->steps) o->steps = repeat_given ? o->repeat : 3;
    if (!o->seq_len) o->seq_len = 256;
    if (!o->lora_rank) o->lora_rank = 8;
    if (!o->repeat) o->repeat = o->quick ? 5 : 7;
    if (!o->prefill) o->prefill = 128;
    if (!o->decode) o->decode = 32;
    if (o->ref_cap_gflop < 0) o->ref_cap_gflop = o->quick ? 0.5 : 3.0;
    return 0;
}

void opts_free(opts *o) {
    free(o->case_list);
    o->case_list = NULL;
}

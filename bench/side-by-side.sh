#!/usr/bin/env bash
# bench/side-by-side.sh — apr and llama.cpp (the peer: a directory with bench.mjs and node-llama-cpp installed) timed
# alternately on the same models, prompt ids and thread counts; prints a Markdown table of medians.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/side-by-side.sh --models M1.gguf[,M2.gguf...] [options] [MORE.gguf ...]

Times prefill and decode of apr (apr-run --json) and of llama.cpp through the peer's bench.mjs
(node-llama-cpp) on the same GGUF files and the same prompt token ids, the two engines in turn
(apr, peer, apr, peer, ...) for every round, model and thread count, every run under
flock /tmp/apr-bench.lock so that runs of others on this host wait. Prints one Markdown row per
model and thread count: medians over the rounds, and ratios apr / peer (above 1: apr faster).
Every round's numbers go to a log file (tab-separated, with the settings as # lines).

options:
  --models LIST     comma-separated GGUF files (also taken as plain arguments); the peer needs a
                    tokenizer in them (apr-genmodel --vocab-from)
  --threads LIST    comma-separated thread counts (default 1)
  --prompt N        prompt tokens (default 128)
  --gen N           tokens to generate (default 64); apr stops early at an end token, the peer not
  --rounds R        rounds (default 3)
  --ids FILE        the prompt as space-separated token ids (its first N are used); default: N
                    pseudo-random ids in [100, 31000) from awk with a fixed seed
  --apr-bin DIR     where apr-run is (default build/bin)
  --backend NAME    apr's backend (default cpu-avx2)
  --env VAR=val     set for the apr runs only, e.g. APR_X86_NO_VNNI=1 (repeatable)
  --peer-dir DIR    the peer (bench.mjs and node_modules); default $APR_PEER_DIR; one of the
                    two is required
  --log FILE        the per-round log (default /tmp/apr-side-by-side-DATE.log)
  --lock FILE       the lock every run holds (default /tmp/apr-bench.lock)
  -h, --help        this text

Needs bash, awk, flock and node (and the peer's npm install); jq when present, else sed.
exit status: 0 ok, 1 a run failed (the table still shows the others), 2 usage or setup error
EOF
}

die() { echo "side-by-side: $*" >&2; exit 2; }

# ---------------------------------------------------------------- options

apr_bin=build/bin backend=cpu-avx2 threads=1 nprompt=128 ngen=64 rounds=3 ids="" log="" lock=/tmp/apr-bench.lock
peer_dir=${APR_PEER_DIR:-}
models=() apr_env=()
need() { [ $# -ge 2 ] || die "$1 needs a value (--help)"; }
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --models) need "$@"; IFS=, read -r -a more <<<"$2"; models+=("${more[@]}"); shift ;;
    --threads) need "$@"; threads=$2; shift ;;
    --prompt) need "$@"; nprompt=$2; shift ;;
    --gen) need "$@"; ngen=$2; shift ;;
    --rounds) need "$@"; rounds=$2; shift ;;
    --ids) need "$@"; ids=$2; shift ;;
    --apr-bin) need "$@"; apr_bin=$2; shift ;;
    --backend) need "$@"; backend=$2; shift ;;
    --env) need "$@"; [[ $2 == [A-Za-z_]*=* ]] || die "--env takes VAR=value, not '$2'"; apr_env+=("$2"); shift ;;
    --peer-dir) need "$@"; peer_dir=$2; shift ;;
    --log) need "$@"; log=$2; shift ;;
    --lock) need "$@"; lock=$2; shift ;;
    -*) die "unknown option '$1' (--help)" ;;
    *) models+=("$1") ;;
    esac
    shift
done

posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 takes a positive integer, not '$2'"; }
posint --prompt "$nprompt"; posint --gen "$ngen"; posint --rounds "$rounds"
[[ $threads =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--threads takes a list like 1,2, not '$threads'"
IFS=, read -r -a thread_list <<<"$threads"
[ ${#models[@]} -gt 0 ] || die "no model given (--models; --help)"
for m in "${models[@]}"; do [ -r "$m" ] || die "cannot read the model '$m'"; done

# ---------------------------------------------------------------- what the runs need

command -v node >/dev/null || die "node not found: the peer (llama.cpp through node-llama-cpp) runs under Node.js"
command -v flock >/dev/null || die "flock not found (util-linux): every run holds $lock"
[ -n "$peer_dir" ] || die "no peer given: --peer-dir DIR or APR_PEER_DIR (a directory with bench.mjs and node-llama-cpp installed)"
[ -f "$peer_dir/bench.mjs" ] || die "no peer at '$peer_dir' (no bench.mjs): give --peer-dir or APR_PEER_DIR"
[ -d "$peer_dir/node_modules/node-llama-cpp" ] || die "the peer at '$peer_dir' is not installed: run npm install there"
peer_dir=$(cd "$peer_dir" && pwd)
[ -x "$apr_bin/apr-run" ] || die "no apr-run in '$apr_bin' (--apr-bin; make builds it)"
have_jq=false
command -v jq >/dev/null && have_jq=true

work=$(mktemp -d "${TMPDIR:-/tmp}/apr-side-by-side.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP

# The prompt: the first nprompt ids of --ids, or pseudo-random ones (fixed seed, so runs repeat).
if [ -n "$ids" ]; then
    [ -r "$ids" ] || die "cannot read --ids '$ids'"
    tr -s '[:space:]' '\n' <"$ids" | grep . | head -n "$nprompt" | tr '\n' ' ' | sed 's/ $//' >"$work/ids"
else
    awk -v n="$nprompt" 'BEGIN { srand(20261); for (i = 0; i < n; i++) printf "%s%d", i ? " " : "", 100 + int(rand() * 30900) }' >"$work/ids"
fi
prompt=$(cat "$work/ids")
nprompt=$(wc -w <"$work/ids")
[ "$nprompt" -gt 0 ] || die "--ids '$ids' holds no token ids"
echo >>"$work/ids"

[ -n "$log" ] || log=/tmp/apr-side-by-side-$(date +%Y%m%d-%H%M%S).log
{
    echo "# bench/side-by-side.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
    echo "# apr: $apr_bin/apr-run --backend $backend, env: ${apr_env[*]:-(none)}, source $(git -C "$apr_bin" describe --always --dirty 2>/dev/null || echo '? (not in a git checkout)')"
    echo "# peer: $peer_dir"
    echo "# prompt $nprompt ids, generate $ngen, $rounds rounds, threads $threads"
    echo "# ids: $prompt"
    printf 'round\tmodel\tthreads\tengine\tprefill_tok_s\tdecode_tok_s\tgenerated\n'
} >"$log" || die "cannot write the log '$log'"

# ---------------------------------------------------------------- one run of each engine

# json_num KEY FILE: the number KEY of the last JSON line in FILE ("" when absent).
json_num() {
    local line
    line=$(grep '^{' "$2" | tail -n 1) || return 0
    if $have_jq; then
        jq -r --arg k "$1" '.[$k] // empty' <<<"$line" 2>/dev/null || true
    else
        sed -n "s/.*\"$1\":\\(-\\{0,1\\}[0-9][0-9.eE+-]*\\).*/\\1/p" <<<"$line"
    fi
}

# run_engine ENGINE MODEL THREADS: prints "prefill decode generated", or returns 1 (output in $work/out).
run_engine() {
    local st=0 gen
    if [ "$1" = apr ]; then
        flock "$lock" env ${apr_env[@]+"${apr_env[@]}"} "$apr_bin/apr-run" --model "$2" --backend "$backend" \
            --tokens "$prompt" --no-bos -n "$ngen" --temp 0 --threads "$3" --json >"$work/out" 2>&1 || st=$?
        gen=$(grep '^{' "$work/out" | tail -n 1 | grep -o '"generated_ids":\[[^]]*\]' | grep -o '[0-9][0-9]*' | wc -l) || true
    else
        flock "$lock" node "$peer_dir/bench.mjs" "$2" "$3" "$nprompt" "$ngen" --ids "$work/ids" >"$work/out" 2>&1 || st=$?
        gen=$(json_num gen "$work/out")
    fi
    local pf dc
    pf=$(json_num prefill_tok_s "$work/out")
    dc=$(json_num decode_tok_s "$work/out")
    [ "$st" -eq 0 ] && [ -n "$pf" ] && [ -n "$dc" ] || return 1
    echo "$pf $dc $gen"
}

# ---------------------------------------------------------------- the rounds

failed=0
for ((r = 1; r <= rounds; r++)); do
    for m in "${models[@]}"; do
        for t in "${thread_list[@]}"; do
            for e in apr peer; do
                if res=$(run_engine "$e" "$m" "$t"); then
                    read -r pf dc gen <<<"$res"
                    printf '%d\t%s\t%d\t%s\t%s\t%s\t%s\n' "$r" "$m" "$t" "$e" "$pf" "$dc" "$gen" >>"$log"
                    printf 'side-by-side: round %d/%d %s %s threads %d: prefill %.1f, decode %.1f tok/s\n' \
                        "$r" "$rounds" "$e" "$(basename "$m")" "$t" "$pf" "$dc" >&2
                else
                    failed=1
                    printf '%d\t%s\t%d\t%s\tfailed\tfailed\t\n' "$r" "$m" "$t" "$e" >>"$log"
                    # the first line that names an error (node puts a stack under it), else the last lines
                    why=$(grep -m 1 -i 'error' "$work/out" || tail -n 3 "$work/out")
                    printf 'side-by-side: round %d %s %s threads %d failed: %s\n' "$r" "$e" "$m" "$t" "$why" >&2
                    { echo "# round $r $e $m threads $t failed:"; sed 's/^/#   /' "$work/out" | tail -n 30; } >>"$log"
                fi
            done
        done
    done
done

# ---------------------------------------------------------------- the table of medians

echo "| model | threads | apr prefill | peer prefill | ratio | apr decode | peer decode | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for m in "${models[@]}"; do
    for t in "${thread_list[@]}"; do
        awk -F'\t' -v m="$m" -v t="$t" -v name="$(basename "$m")" '
            function median(a, n,   i, j, x) {   # sorts a[1..n] in place (insertion sort: n is small)
                if (n == 0) return -1
                for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
                return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            }
            function num(x) { return x < 0 ? "—" : sprintf("%.1f", x) }
            function ratio(a, b) { return a < 0 || b <= 0 ? "—" : sprintf("%.2f", a / b) }
            /^#/ || $1 == "round" || $5 == "failed" || $2 != m || $3 != t { next }
            $4 == "apr" { ap[++na] = $5; ad[na] = $6 }
            $4 == "peer" { pp[++np] = $5; pd[np] = $6 }
            END {
                a1 = median(ap, na); p1 = median(pp, np); a2 = median(ad, na); p2 = median(pd, np)
                printf "| %s | %d | %s | %s | %s | %s | %s | %s |\n", name, t, num(a1), num(p1), ratio(a1, p1), num(a2), num(p2), ratio(a2, p2)
            }' "$log"
    done
done
echo
echo "prefill and decode in tok/s, medians of rounds: $rounds; ratio = apr / peer; prompt $nprompt ids, $ngen generated;" \
    "apr --backend $backend${apr_env[*]:+ with ${apr_env[*]}}; per-round numbers in $log"
exit $failed

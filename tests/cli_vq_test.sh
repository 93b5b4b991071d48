#!/usr/bin/env bash
# tests/cli_vq_test.sh — command-line behaviour of `nsvq toy-drift` and `nsvq bench vq`: one-line
# errors and non-zero exits on bad input, well-formed JSON lines. Usage: cli_vq_test.sh NSVQ
set -u
nsvq=${1:?usage: cli_vq_test.sh path/to/nsvq}
. "$(dirname "$0")/cli_lib.sh"

expect_ok "toy-drift help" "usage: nsvq toy-drift" "$nsvq" toy-drift --help
expect_ok "bench vq help" "usage: nsvq bench vq" "$nsvq" bench vq --help
expect_fail "unknown quantizer" "unknown quantizer 'pq'" "$nsvq" toy-drift --quantizer pq
expect_fail "unknown drift" "unknown drift 'spin'" "$nsvq" toy-drift --drift spin
expect_fail "zero codes" "--codes must be >= 1" "$nsvq" toy-drift --codes 0
expect_fail "negative steps" "--steps must be >= 1" "$nsvq" toy-drift --steps -5
expect_fail "bad integer" "expects an integer" "$nsvq" toy-drift --codes 6x
expect_fail "unknown flag" "unknown option '--bogus'" "$nsvq" toy-drift --bogus
expect_fail "bad lr" "--lr must be > 0" "$nsvq" toy-drift --lr 0 --steps 2
expect_fail "bench vq zero codes" "must be >= 1" "$nsvq" bench vq --codes 0
expect_fail "bench vq bad tau" "--tau must be > 0" "$nsvq" bench vq --n 8 --codes 8 --dim 2 --tau -1
expect_fail "bench vq bad device" "unknown device" "$nsvq" bench vq --device tpu
expect_fail "bench vq unknown flag" "unknown option '--k'" "$nsvq" bench vq --k 16

# a short run prints its trace and the end; --json lines carry the agreed keys
expect_ok "toy-drift text" "final: utilization" "$nsvq" toy-drift --quantizer vq --steps 20 --log-every 10 -t 1
"$nsvq" toy-drift --quantizer nsvq --drift shrink --steps 30 --log-every 10 --json -t 1 >"$tmp/t.json" 2>&1
lines=$(wc -l <"$tmp/t.json")
good=$(grep -cE '^\{"quantizer": "nsvq", "drift": "shrink", "step": [0-9]+, "final": (true|false), "utilization": [0-9.]+, "quant_error": [0-9.e+-]+, "perplexity": [0-9.]+, "replaced": -?[0-9]+, "tau": [0-9.e+-]+\}$' "$tmp/t.json")
if [ "$lines" -eq 4 ] && [ "$good" -eq 4 ] && tail -1 "$tmp/t.json" | grep -q '"step": 30, "final": true'; then pass=$((pass+1))
else fail=$((fail+1)); echo "FAIL: toy-drift --json ($good of $lines well-formed)"; cat "$tmp/t.json"; fi
"$nsvq" bench vq --n 100 --codes 300 --dim 8 --reps 2 --gemm --json -t 1 >"$tmp/b.json" 2>&1
lines=$(wc -l <"$tmp/b.json")
good=$(grep -cE '^\{"name": "vq [^"]+", "ms_median": [0-9.]+, "gflops": [0-9.]+, "threads": [0-9]+, "device": "[^"]+"\}$' "$tmp/b.json")
if [ "$lines" -eq 6 ] && [ "$good" -eq 5 ] && head -1 "$tmp/b.json" | grep -q '^{"cpu": '; then pass=$((pass+1))
else fail=$((fail+1)); echo "FAIL: bench vq --json ($good of $lines well-formed)"; cat "$tmp/b.json"; fi

echo "cli vq: $pass passed, $fail failed"
[ $fail -eq 0 ]

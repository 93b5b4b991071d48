#!/usr/bin/env bash
# tests/cli_test.sh — command-line behaviour of the nsvq binary: one-line errors and non-zero exits
# on bad input, --version/info/help, and well-formed JSON benchmark lines. Usage: cli_test.sh NSVQ
set -u
nsvq=${1:?usage: cli_test.sh path/to/nsvq}
. "$(dirname "$0")/cli_lib.sh"

expect_ok "version" "nsvq 0" "$nsvq" --version
expect_ok "info" "simd: " "$nsvq" info
expect_ok "info threads" "threads: 1" "$nsvq" info -t 1
expect_ok "help" "usage" "$nsvq" fmnist-mlp --help
expect_fail "unknown command" "unknown command" "$nsvq" frobnicate
expect_fail "unknown flag" "unknown option '--bogus'" "$nsvq" fmnist-mlp --bogus 1
expect_fail "missing value" "needs a value" "$nsvq" bench gemm --m
expect_fail "bad integer" "expects an integer" "$nsvq" bench gemm --m 12x
expect_fail "bad device" "unknown device" "$nsvq" bench ops --device tpu
expect_fail "unknown bench" "unknown benchmark" "$nsvq" bench nothing
expect_fail "tf32 on the cpu" "needs a CUDA device" "$nsvq" bench gemm --m 8 --precision tf32
expect_fail "unknown precision" "unknown precision 'fp8'" "$nsvq" train --precision fp8 --steps 1
expect_fail "missing dataset" "cannot open" "$nsvq" fmnist-mlp --data-dir "$tmp/none"
echo "not gzip and not idx" >"$tmp/train-images-idx3-ubyte.gz"
cp "$tmp/train-images-idx3-ubyte.gz" "$tmp/train-labels-idx1-ubyte.gz"
expect_fail "corrupt dataset" "not an IDX image file" "$nsvq" fmnist-mlp --data-dir "$tmp"
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  head -c 20000 /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz >"$tmp/train-images-idx3-ubyte.gz"
  expect_fail "truncated dataset" "train-images-idx3-ubyte.gz" "$nsvq" fmnist-mlp --data-dir "$tmp"
fi

# JSON benchmark lines carry the agreed keys
"$nsvq" bench gemm --m 64 --n 64 --k 64 --reps 3 --json -t 1 >"$tmp/g.json" 2>&1
"$nsvq" bench ops --filter "reduce sum" --reps 2 --json >"$tmp/o.json" 2>&1
lines=$(cat "$tmp/g.json" "$tmp/o.json" | wc -l)
good=$(cat "$tmp/g.json" "$tmp/o.json" | grep -E '^\{"name": "[^"]+", "ms_median": [0-9.]+, "(gflops|gbps)": [0-9.]+, "threads": [0-9]+, "device": "[^"]+"\}$' | wc -l)
if [ "$lines" -ge 3 ] && [ "$good" -eq "$lines" ]; then pass=$((pass+1))
else fail=$((fail+1)); echo "FAIL: bench --json lines ($good of $lines well-formed)"; cat "$tmp/g.json" "$tmp/o.json"; fi

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]

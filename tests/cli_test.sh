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

# JSON benchmark lines carry the agreed keys, after a first line naming the kernels in use
"$nsvq" bench gemm --m 64 --n 64 --k 64 --reps 3 --json -t 1 >"$tmp/g.json" 2>&1
"$nsvq" bench ops --filter "reduce sum" --reps 2 --json >"$tmp/o.json" 2>&1
cpu_re='^\{"cpu": "(x86-64|aarch64|portable)", "simd": "(avx512|avx2|neon|scalar)", "gemm_kernel": "[a-z0-9]+"\}$'
heads=$(for f in g o; do head -1 "$tmp/$f.json"; done | grep -cE "$cpu_re")
lines=$(for f in g o; do tail -n +2 "$tmp/$f.json"; done | wc -l)
good=$(for f in g o; do tail -n +2 "$tmp/$f.json"; done | grep -E '^\{"name": "[^"]+", "ms_median": [0-9.]+, "(gflops|gbps)": [0-9.]+, "threads": [0-9]+, "device": "[^"]+"\}$' | wc -l)
if [ "$heads" -eq 2 ] && [ "$lines" -ge 3 ] && [ "$good" -eq "$lines" ]; then pass=$((pass+1))
else fail=$((fail+1)); echo "FAIL: bench --json lines ($heads of 2 cpu lines, $good of $lines well-formed)"; cat "$tmp/g.json" "$tmp/o.json"; fi
expect_ok "bench names the kernels first" "^cpu: [a-z0-9-]* [a-z0-9]* (gemm kernel" "$nsvq" bench gemm --m 8 --n 8 --k 8 --reps 1
expect_ok "version names the kernels" "cpu: [a-z0-9-]* [a-z0-9]*)" "$nsvq" --version

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# tools/qemu-check.sh [X86_BUILD] [ARM_BUILD] — the ARM64 step of CI (.ci/run), after tools/setup.sh and
# tools/cross-aarch64.sh: under qemu-aarch64-static,
#   1. the kernel and quantizer cases of the doctest suite on the aarch64 test binary (a named subset,
#      time-bounded: under qemu the whole suite takes far too long) at the NEON level, and the op table
#      and SGEMM edge shapes again at NSVQ_SIMD=scalar (the portable micro-kernel);
#   2. the cross-architecture check: a tokenizer trained here on x86 (quickstart preset, 40 steps: past
#      the step-0 code replacement, its codes spread over the data; the reference must use >= 64 codes),
#      the first 64 Fashion-MNIST test images (4,096 tokens; CI time) tokenized by the x86 build at every SIMD level this CPU has
#      (avx512, avx2, scalar) and by the aarch64 build at neon (its portable level runs the same C++ as
#      x86's scalar one, and step 1 checks its kernels; left out for CI time); every token list must agree
#      with the x86 best level's on >= 99.9% of the tokens (float near-ties may differ). Prints the counts.
# Defaults: build and build-aarch64. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
X86=${1:-build}
ARM=${2:-build-aarch64}
QEMU="qemu-aarch64-static"
W="$ARM/qemu-check"
rm -rf "$W"
mkdir -p "$W"
status=0
t0=$(date +%s)
export OMP_WAIT_POLICY=passive
summary=()
step() {  # step NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  local s=$(date +%s) rc=0
  timeout "$limit" "$@" >"$W/step.log" 2>&1 || rc=$?
  local d=$(( $(date +%s) - s ))
  if [ $rc = 0 ]; then summary+=("ok      ${d}s  $name")
  else
    summary+=("FAILED  ${d}s  $name (rc $rc)")
    grep -m20 -E 'ERROR|FAIL|error' "$W/step.log" || tail -20 "$W/step.log"
    status=1
  fi
  return 0
}

# 1. kernels and quantizers under qemu (NEON, then the portable SGEMM micro-kernel)
kernels='op table*,sgemm dispatcher*,sgemm matches*,sgemm degenerate*,sgemm alpha*,nsvq_expf*,nsvq_tanhf*'
# left out for time (under qemu they take 30-170 s each; the op table's conv cases check the same kernels,
# and the thread-count independence is checked natively): the conv2d forward and backward fast-path
# cases and the two-thread training step
kernels="$kernels,group norm*,attention fast*"
quant='vq search: ties*,vq search: blockwise*,vq dense*,ema:*,nsvq replacement*,nsvq: relative*,straight-through*'
quant="$quant,quantizers take*,quantizer: bad*,nsvq and ema resume*,token files*"
step "qemu: kernel and quantizer cases at neon" 600 $QEMU "$ARM/bin/nsvq_tests" -tc="$kernels,$quant"
step "qemu: op table and SGEMM edges at NSVQ_SIMD=scalar" 300 env NSVQ_SIMD=scalar $QEMU "$ARM/bin/nsvq_tests" \
  -tc='op table*,sgemm degenerate*'

# 2. the same tokens on x86 and aarch64
step "x86: train a quickstart tokenizer (40 steps)" 300 "$X86/bin/nsvq" train --preset quickstart -q --steps 40 --probe 16 \
  --eval-n 0 --out "$W/tok"
step "x86: export the first 64 test images" 60 "$X86/bin/nsvq" export-images --n 64 -o "$W/img"
M="$W/tok/checkpoint.safetensors"
x86_levels="scalar"
lvl=$("$X86/bin/nsvq" info | sed -n 's/^simd: \([a-z0-9]*\).*/\1/p')
case "$lvl" in avx512) x86_levels="avx512 avx2 scalar" ;; avx2) x86_levels="avx2 scalar" ;; esac
for l in $x86_levels; do
  step "x86: tokenize at $l" 120 env NSVQ_SIMD=$l "$X86/bin/nsvq" tokenize -m "$M" "$W"/img/*.png -o "$W/x86-$l.txt"
done
for l in neon; do
  step "aarch64 (qemu): tokenize at $l" 300 env NSVQ_SIMD=$l $QEMU "$ARM/bin/nsvq" tokenize -m "$M" "$W"/img/*.png \
    -o "$W/arm-$l.txt"
done
ref="$W/x86-${x86_levels%% *}.txt"
# agreement means something only if the tokens vary: the reference must use many codes
distinct=$(awk '{ for (i = 2; i <= NF; i++) u[$i] = 1 } END { print length(u) }' "$ref" 2>/dev/null || echo 0)
if [ "${distinct:-0}" -ge 64 ]; then summary+=("ok      the reference tokens use $distinct distinct codes")
else summary+=("FAILED  the reference tokens use ${distinct:-0} distinct codes (needs >= 64)"); status=1; fi
for f in "$W"/x86-*.txt "$W"/arm-*.txt; do
  [ "$f" = "$ref" ] && continue
  [ -s "$f" ] && [ -s "$ref" ] || { summary+=("FAILED  agreement: $f or $ref missing"); status=1; continue; }
  # a line: the image path, then its tokens
  read -r same total < <(paste -d'\n' "$ref" "$f" | awk 'NR % 2 == 1 { n = split($0, a, " ") } NR % 2 == 0 {
      m = split($0, b, " "); if (m != n) { print 0, 1; bad = 1; exit }
      for (i = 2; i <= n; i++) { t++; if (a[i] == b[i]) s++ } } END { if (!bad) print s + 0, t + 0 }')
  pct=$(awk -v s="$same" -v t="$total" 'BEGIN { printf "%.3f", t ? 100 * s / t : 0 }')
  line="tokens $(basename "$f" .txt) vs $(basename "$ref" .txt): $same of $total agree ($pct%)"
  if [ "$total" -gt 0 ] && [ $(( same * 1000 )) -ge $(( total * 999 )) ]; then summary+=("ok      $line")
  else summary+=("FAILED  $line (needs >= 99.9%)"); status=1; fi
done
echo "qemu-check: $(( $(date +%s) - t0 ))s in all ($(file -b "$ARM/bin/nsvq" | cut -d, -f1-2))"
printf '  %s\n' "${summary[@]}"
exit $status

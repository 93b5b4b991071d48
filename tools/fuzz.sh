#!/usr/bin/env bash
# tools/fuzz.sh — runs one libFuzzer target of tests/fuzz/ for SECONDS, starting from its committed seed
# corpus (tests/fuzz/corpus/TARGET) in a scratch copy (new inputs do not touch the tree), with ASan and
# UBSan fatal, a 2 GB memory limit and a 10 s limit per input. Builds the fuzz build first when needed
# (clang, -DNSVQ_SANITIZE=address,undefined -DNSVQ_FUZZ=ON, in build-san/, shared with tools/sanitize.sh). A crash leaves its input in
# build-san/crashes/ and fails; keep it as tests/fuzz/corpus/TARGET/regress-* once fixed.
#   tools/fuzz.sh TARGET SECONDS          e.g. tools/fuzz.sh safetensors 600
#   tools/fuzz.sh all SECONDS             every target in turn, SECONDS each
# Prints one line per target: execs, execs/s, corpus size, coverage, result.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: tools/fuzz.sh TARGET|all SECONDS} secs=${2:?usage: tools/fuzz.sh TARGET|all SECONDS}
B=${NSVQ_FUZZ_BUILD:-build-san}
if [ ! -f "$B/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNSVQ_SANITIZE=address,undefined \
    -DNSVQ_FUZZ=ON -DNSVQ_CUDA=OFF >/dev/null
fi
targets=$target
[ "$target" = all ] && targets=$(ls tests/fuzz/fuzz_*.cpp | sed 's|.*/fuzz_||; s|\.cpp$||')
cmake --build "$B" -j"$(nproc)" --target $(for t in $targets; do printf 'fuzz_%s ' "$t"; done) >/dev/null
mkdir -p "$B/crashes"
status=0
for t in $targets; do
  work=$(mktemp -d)
  cp -r "tests/fuzz/corpus/$t/." "$work/" 2>/dev/null || true
  log=$B/fuzz_$t.log
  set +e
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$B/bin/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$B/crashes/$t-" "$work" >"$log" 2>&1
  rc=$?
  set -e
  # (a crash prints the final stats twice: once from the crash handler, once at exit)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  echo "fuzz $t: ${secs}s, $execs execs, $rate execs/s, coverage $cov, corpus $(ls "$work" | wc -l) inputs: $([ $rc = 0 ] && echo ok || echo "FAILED (rc $rc, see $log)")"
  [ $rc = 0 ] || { status=1; grep -m5 -E 'ERROR|SUMMARY|runtime error' "$log" || true; }
  rm -rf "$work"
done
exit $status

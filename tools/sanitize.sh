#!/usr/bin/env bash
# tools/sanitize.sh — the sanitizer and fuzzing step of CI (.ci/run): builds the CPU library, the
# command, the tests and the fuzz targets with clang, AddressSanitizer + UndefinedBehaviorSanitizer and
# libFuzzer coverage (build-san/; every error fatal), then runs
#   1. the doctest suite at this machine's best SIMD level, a named subset (below): the op table, every
#      kernel family, the quantizers, every parser of outside input;
#   2. the kernel cases again at every lower level down to the portable path (NSVQ_SIMD=avx2: every kernel
#      case; scalar: the op table and the SGEMM edge shapes, the only code that level changes);
#   3. a short training run, tokenize / decode / export and the C API test on the sanitized binaries;
#   4. every fuzz target for FUZZ_SECONDS (default 15; tools/fuzz.sh) from its seed corpus.
# Installs clang, its runtimes and libomp from Debian when missing. Each step is time-bounded.
#   tools/sanitize.sh [FUZZ_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
. tools/need-packages.sh
need_packages sanitize clang-14 libclang-rt-14-dev libomp-14-dev
B=build-san
t0=$(date +%s)
if [ ! -f "$B/CMakeCache.txt" ]; then
  # -O1 with line tables only (the sanitizers' usual setting): builds in about half the time of -O2 -g
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1" \
    -DCMAKE_C_FLAGS_SANITIZE="-O1" -DNSVQ_SANITIZE=address,undefined \
    -DNSVQ_FUZZ=ON -DNSVQ_CUDA=OFF >/dev/null
fi
cmake --build "$B" -j"$(nproc)" >/dev/null
echo "sanitize: built in $(( $(date +%s) - t0 ))s"
# errors fatal; a huge allocation the tests ask for on purpose returns null (our 'out of memory' error)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export OMP_WAIT_POLICY=passive
summary=()
step() {  # step NAME SECONDS CMD...: runs it with a time bound, records the result
  local name=$1 limit=$2; shift 2
  local s=$(date +%s) rc=0
  timeout "$limit" "$@" >"$B/step.log" 2>&1 || rc=$?
  local d=$(( $(date +%s) - s ))
  if [ $rc = 0 ]; then summary+=("ok      ${d}s  $name")
  else
    summary+=("FAILED  ${d}s  $name (rc $rc)")
    grep -m20 -E 'ERROR|runtime error|SUMMARY|FAIL|error' "$B/step.log" || tail -20 "$B/step.log"
  fi
  return $rc
}
status=0
level=$("$B/bin/nsvq" info | sed -n 's/^simd: \([a-z0-9]*\).*/\1/p')
# a named subset, for time (CI stays under 25 minutes): where memory errors hide — every kernel's index
# arithmetic (the op table, SGEMM edges, conv, norm, attention, VQ search), the quantizers' state, and
# every parser of outside input (checkpoints, token files, images, datasets, JSON configs); the model-
# and training-level cases run the same kernels at larger sizes (minutes each under ASan) and are
# covered by the sanitized training run of step 3
cases='op table*,sgemm matches*,sgemm degenerate*,sgemm alpha*,conv2d forward*,group norm*,attention fast*'
# the conv backward case reaches every register tile of the AVX-512 weight gradient; below AVX-512 it runs
# im2col + SGEMM, which the op table's conv cases cover (and it takes a minute under ASan)
[ "$level" = avx512 ] && cases="$cases,conv2d backward*"
cases="$cases,vq search: ties*,vq search: blockwise*,vq dense*,ema:*,nsvq replacement*,nsvq: relative*"
cases="$cases,straight-through*,quantizers take*,quantizer: bad*,nsvq and ema resume*,token files*"
cases="$cases,model checkpoints*,image*,Fashion-MNIST*,CIFAR-10*,batch loader*,fdnet errors*,fdnet save*"
cases="$cases,trainer: config*,ldm config*,bad input*,Philox*,argmax*,nsvq_expf*,nsvq_tanhf*"
cases="$cases,pool ops*,max_pool2d*,conv2d: images with small*,pretrained weights*"
step "doctest suite at $level, kernels / quantizers / parsers (ASan + UBSan)" 900 "$B/bin/nsvq_tests" -tc="$cases" || status=1
# below AVX-512 the hand-written kernels give way to the portable C++ ones, so the AVX2 level reruns every
# kernel case; the scalar level changes only the SGEMM micro-kernel under that same portable code (and
# 'sgemm matches' above already runs every SGEMM level), so it reruns the op table and the SGEMM edge shapes
kernels='op table*,sgemm matches*,sgemm degenerate*,conv2d*,group norm*,attention*,vq search*,vq dense*'
for l in avx2 scalar; do
  case "$level:$l" in avx2:avx2 | scalar:*) continue ;; esac
  cases=$kernels
  [ $l = scalar ] && cases='op table*,sgemm degenerate*'
  step "kernel cases at NSVQ_SIMD=$l" 600 env NSVQ_SIMD=$l "$B/bin/nsvq_tests" -tc="$cases" || status=1
done
step "training, tokenize, decode, export, C API (sanitized binaries)" 600 \
  tests/c_api_test.sh "$B/bin/nsvq" "$B/bin/nsvq_c_api_test" || status=1
step "fuzz: every target ${secs}s" $(( 60 + 10 * secs )) env NSVQ_FUZZ_BUILD="$B" tools/fuzz.sh all "$secs" || status=1
sed -n 's/^fuzz /  fuzz /p' "$B/step.log"
echo "sanitize: $(( $(date +%s) - t0 ))s in all"
printf '  %s\n' "${summary[@]}"
exit $status

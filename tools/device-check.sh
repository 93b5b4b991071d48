#!/usr/bin/env bash
# tools/device-check.sh — the GPU-machine check, run from the repository root of a fresh machine that
# has nvcc, CMake and a driver but no Debian -dev packages and no network. It builds nsvq with the
# CUDA backend for sm_90 into build-cuda/ from the headers/static libraries carried in .deps/
# (made by tools/prepare-device-deps.sh on the dev machine), then runs:
#   nsvq info, nsvq_tests (CPU-vs-CUDA parity runs when a device exists), the kernel-path parity
#   driver tests/cuda_emu/emu_parity.cpp linked against the real library, nsvq bench ops and
#   nsvq bench gemm 1024^3 on cuda, a 1-epoch Fashion-MNIST MLP on cuda (when the data is there), a
#   400-step cifar10 NSVQ tokenizer training run on cuda that must learn (tools/bench/check_run.py)
#   and its evaluation, a 300-step latent-diffusion run on that tokenizer with a sample grid, and the
#   GPU benchmarks side by side with PyTorch (train step at batch 64 and
#   256, nearest-code search vs cuBLAS GEMM at K = 65,536, conv), tabled by tools/bench/bench_table.py.
# Everything is logged to $OUT/device-check.log (or build-cuda/device-check.log); a summary table
# (step, status, seconds) is printed last. Exit status: 0 when every step passed.
# Environment: NSVQ_ARCH (default 90), NSVQ_JOBS (default: all cores), NSVQ_SKIP_FMNIST=1,
# NSVQ_TORCH_COMPILE=1 (also time torch.compile; slow to compile).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=build-cuda
ARCH=${NSVQ_ARCH:-90}
JOBS=${NSVQ_JOBS:-$(nproc 2>/dev/null || echo 8)}
DEPS=$ROOT/.deps
DATA=$DEPS/data/fashion-mnist
mkdir -p "$BUILD"
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; LOG=$OUT/device-check.log; else LOG=$ROOT/$BUILD/device-check.log; fi
: > "$LOG"

# nvcc is often installed but not on PATH
if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then export PATH=$d:$PATH; break; fi
  done
fi

NAMES=() STATUS=() SECS=()
FAILED=0
# step NAME TIMEOUT_S CMD...: runs CMD with a time limit, output to the terminal and the log
step() {
  local name=$1 limit=$2
  shift 2
  echo "=== [$name] $*" | tee -a "$LOG"
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  local st="ok"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then st="TIMEOUT(${limit}s)"; elif [ "$rc" -ne 0 ]; then st="FAIL(rc=$rc)"; fi
  [ "$st" = ok ] || FAILED=1
  NAMES+=("$name"); STATUS+=("$st"); SECS+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')")
  echo "=== [$name] $st" | tee -a "$LOG"
  [ "$st" = ok ]
}
skip() {
  NAMES+=("$1"); STATUS+=("skipped: $2"); SECS+=("0.0")
  echo "=== [$1] skipped: $2" | tee -a "$LOG"
}

summary() {
  {
    echo
    echo "device-check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), log: $LOG)"
    printf '%-14s %-26s %8s\n' step status seconds
    printf '%-14s %-26s %8s\n' -------------- -------------------------- --------
    for i in "${!NAMES[@]}"; do printf '%-14s %-26s %8s\n' "${NAMES[$i]}" "${STATUS[$i]}" "${SECS[$i]}"; done
    if [ "$FAILED" -eq 0 ]; then echo "RESULT: all steps passed"; else echo "RESULT: FAILED"; fi
  } | tee -a "$LOG"
}

# ---- environment (informational, never fails the check)
{
  echo "host: $(uname -srm); cores: $(nproc 2>/dev/null)"
  echo "nvcc: $(command -v nvcc || echo missing) $(nvcc --version 2>/dev/null | tail -1)"
  echo "cmake: $(cmake --version 2>/dev/null | head -1 || echo missing)"
  command -v nvidia-smi >/dev/null 2>&1 &&
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
} 2>&1 | tee -a "$LOG"

# ---- dependencies carried in .deps/
if [ ! -f "$DEPS/include/zstd.h" ] || [ ! -f "$DEPS/lib/libzstd.a" ] || [ ! -f "$DEPS/lib/libstb.a" ] ||
   [ ! -f "$DEPS/include/doctest/doctest.h" ]; then
  echo "device-check: $DEPS is incomplete: run tools/prepare-device-deps.sh on the dev machine and carry .deps" | tee -a "$LOG"
  skip configure "no .deps"
  FAILED=1
  summary
  exit 1
fi
# Fashion-MNIST: the default data folder (/usr/share/datasets/fashion-mnist) is linked to the
# carried copy when it is missing and we may create it, so commands and tests that use the
# default find the data.
export NSVQ_FMNIST_DIR=$DATA
if [ -d "$DATA" ] && [ ! -e /usr/share/datasets/fashion-mnist ]; then
  (mkdir -p /usr/share/datasets && ln -s "$DATA" /usr/share/datasets/fashion-mnist) 2>/dev/null &&
    echo "device-check: linked /usr/share/datasets/fashion-mnist -> $DATA" | tee -a "$LOG"
fi

# ---- build
if step configure 120 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
     -DCMAKE_PREFIX_PATH="$DEPS" -DZSTD_INCLUDE_DIR="$DEPS/include" -DZSTD_LIBRARY="$DEPS/lib/libzstd.a" \
     -DZLIB_INCLUDE_DIR="$DEPS/include" -DZLIB_LIBRARY="$DEPS/lib/libz.a" \
     -DSTB_INCLUDE_DIR="$DEPS/include/stb" -DSTB_LIBRARY="$DEPS/lib/libstb.a" \
     -DDOCTEST_INCLUDE_DIR="$DEPS/include" -DNSVQ_CUDA=ON -DNSVQ_TESTS=ON; then
  if ! grep -q "CUDA backend ON" "$LOG"; then
    echo "device-check: CMake did not enable the CUDA backend (is nvcc working?)" | tee -a "$LOG"
    STATUS[${#STATUS[@]}-1]="FAIL(no CUDA backend)"
    FAILED=1
  fi
  step build 360 cmake --build "$BUILD" -j "$JOBS" --target nsvq nsvq_tests
fi

BIN=$BUILD/bin
if [ -x "$BIN/nsvq" ]; then
  step info 30 "$BIN/nsvq" info
  if [ -x "$BIN/nsvq_tests" ]; then step tests 300 "$BIN/nsvq_tests"; else skip tests "no nsvq_tests binary"; fi
  # tests/cuda_emu/emu_parity.cpp against the real device: CPU-vs-CUDA parity on shapes that reach
  # every kernel path (two-pass reductions, block variants, multi-tile attention, index errors)
  CUDA_HOME=$(dirname "$(dirname "$(command -v nvcc)")")
  if step parity-build 180 g++ -std=c++17 -O2 -fopenmp -I. -DNSVQ_CUDA=1 tests/cuda_emu/emu_parity.cpp -o "$BIN/cuda_parity" \
       "$BUILD/libnsvq.a" "$DEPS/lib/libzstd.a" "$DEPS/lib/libstb.a" "$DEPS/lib/libz.a" \
       -L"$CUDA_HOME/lib64" -L"$CUDA_HOME/targets/x86_64-linux/lib" -lcublas -lcudart -lpthread -ldl -lrt -lm; then
    step parity 300 "$BIN/cuda_parity"
  fi
  step bench-ops 120 "$BIN/nsvq" bench ops --device cuda
  step bench-gemm 60 "$BIN/nsvq" bench gemm --m 1024 --n 1024 --k 1024 --device cuda
  if [ "${NSVQ_SKIP_FMNIST:-0}" = 1 ]; then
    skip fmnist-cuda "NSVQ_SKIP_FMNIST=1"
  elif [ -f "$DATA/train-images-idx3-ubyte.gz" ]; then
    step fmnist-cuda 150 "$BIN/nsvq" fmnist-mlp --device cuda --epochs 1 --data-dir "$DATA"
  else
    skip fmnist-cuda "no $DATA"
  fi
  # a short cifar10 tokenizer training run on the GPU (NSVQ, all three stages) that must learn
  CIFAR=$DEPS/data/cifar10
  if [ -f "$DEPS/data/cifar10-slice.bin.xz" ] && step cifar-unpack 60 tools/device-cifar-slice.sh "$DEPS/data/cifar10-slice.bin.xz" "$CIFAR"; then
    RUN=$BUILD/run-cifar-cuda
    rm -rf "$RUN"
    if step train-cuda 240 "$BIN/nsvq" train --preset cifar10 --data "cifar10:$CIFAR" --device cuda --steps 400 --batch 64 \
         --codes 1024 --log-every 20 --drift-every 100 --eval-n 1000 --ckpt-every 200 -o "$RUN"; then
      step train-learns 30 python3 tools/bench/check_run.py "$RUN"
      [ -n "${OUT:-}" ] && cp "$RUN/recon.png" "$OUT/cifar-cuda-recon.png" 2>/dev/null
      step eval-cuda 60 "$BIN/nsvq" eval -m "$RUN/checkpoint.safetensors" --data "cifar10:$CIFAR" --n 1000 --device cuda
      # latent diffusion on that tokenizer: a short DiT run and a sample grid, both on the GPU
      rm -rf "$BUILD/ldm-cuda"
      if step ldm-cuda 180 "$BIN/nsvq" ldm-train -m "$RUN/checkpoint.safetensors" --data "cifar10:$CIFAR" --steps 300 \
           --lr 5e-4 --log-every 50 --device cuda -o "$BUILD/ldm-cuda"; then
        step sample-cuda 60 "$BIN/nsvq" sample -m "$BUILD/ldm-cuda/checkpoint.safetensors" --n 4 --device cuda -o "$BUILD/ldm-cuda/grid.png"
        [ -n "${OUT:-}" ] && cp "$BUILD/ldm-cuda/grid.png" "$OUT/ldm-cuda-grid.png" 2>/dev/null
      fi
    fi
  else
    skip train-cuda "no .deps/data/cifar10-slice.bin.xz"
  fi
  # GPU benchmarks, nsvq and PyTorch side by side (JSON lines into bench.jsonl, table at the end)
  BJ=$BUILD/bench.jsonl
  : > "$BJ"
  for pb in "fmnist 64" "fmnist 256" "cifar10 64" "cifar10 256"; do
    set -- $pb
    step "ts-$1-$2" 90 sh -c "\"$BIN/nsvq\" bench train-step --preset $1 --batch $2 --reps 20 --device cuda --json | tee -a $BJ"
    step "torch-$1-$2" 120 sh -c "python3 tools/bench/torch_train_step.py --device cuda --preset $1 --batch $2 --reps 20 | tee -a $BJ"
  done
  # the same step with TF32 tensor cores, and replayed as a CUDA graph (bitwise check of the graph
  # replay: a short training run with and without it must write the same checkpoint)
  step ts-cifar10-256-tf32 90 sh -c "\"$BIN/nsvq\" bench train-step --preset cifar10 --batch 256 --reps 20 --device cuda --precision tf32 --json | tee -a $BJ"
  step ts-cifar10-256-graph 90 sh -c "NSVQ_CUDA_GRAPH=1 \"$BIN/nsvq\" bench train-step --preset cifar10 --batch 256 --reps 20 --device cuda --json | tee -a $BJ"
  for gm in 0 1; do
    rm -rf "$BUILD/graph-$gm"
    step "train-graph-$gm" 90 env NSVQ_CUDA_GRAPH=$gm "$BIN/nsvq" train --preset fmnist --steps 30 --eval-n 0 \
      --device cuda -q -o "$BUILD/graph-$gm"
  done
  step graph-bitwise 10 cmp "$BUILD/graph-0/checkpoint.safetensors" "$BUILD/graph-1/checkpoint.safetensors"
  step dit-step 60 sh -c "\"$BIN/nsvq\" bench dit-step --batch 256 --reps 20 --device cuda --json | tee -a $BJ"
  step torch-tf32 120 sh -c "python3 tools/bench/torch_train_step.py --device cuda --preset cifar10 --batch 256 --reps 20 --tf32 | tee -a $BJ"
  for d in 16 128; do
    step "vq-d$d" 90 sh -c "\"$BIN/nsvq\" bench vq --n 2048 --codes 65536 --dim $d --device cuda --json | tee -a $BJ"
    step "gemm-d$d" 60 sh -c "\"$BIN/nsvq\" bench gemm --m 2048 --n 65536 --k $d --tb --device cuda --json | tee -a $BJ"
  done
  step metrics-cuda 90 sh -c "\"$BIN/nsvq\" bench metrics --batch 32 --size 32 --device cuda --json | tee -a $BJ"
  step torch-metrics 120 sh -c "python3 tools/bench/torch_metrics.py --batch 32 --size 32 --device cuda | tee -a $BJ"
  step conv-cuda 60 sh -c "\"$BIN/nsvq\" bench conv --batch 64 --cin 64 --cout 64 --hw 32 --device cuda --json | tee -a $BJ"
  [ "${NSVQ_TORCH_COMPILE:-0}" = 1 ] &&
    step torch-compile 240 sh -c "python3 tools/bench/torch_train_step.py --device cuda --preset cifar10 --batch 256 --reps 20 --compile | tee -a $BJ"
  [ -n "${OUT:-}" ] && cp "$BJ" "$OUT/bench.jsonl"
else
  for s in info tests parity bench-ops bench-gemm fmnist-cuda train-cuda; do skip "$s" "no nsvq binary"; done
  FAILED=1
fi

summary
[ -s "${BJ:-/nonexistent}" ] && python3 tools/bench/bench_table.py "$BJ" | tee -a "$LOG"
exit "$FAILED"

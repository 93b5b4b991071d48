#!/usr/bin/env bash
# tests/cuda_emu/emu_check.sh — runs the CUDA backend's own code (engine/cuda/*.cu, ops/cuda/*.cu) on
# the CPU through the emulator in tests/cuda_emu/cuda_emu.h, for machines without a GPU (nvcc is
# still needed: the CPU objects come from a CUDA-enabled CMake build, compiled with NSVQ_CUDA=1).
#   1. builds the library objects (nsvq_obj) and the nsvq_tests objects in BUILD (default build-cudaemu, sm_90 only);
#   2. rewrites each .cu for the emulator (kernel<<<cfg>>>(args) -> emu::launch(...), extern
#      __shared__ arrays -> the launch's buffer) and compiles it with g++;
#   3. links emu_parity (tests/cuda_emu/emu_parity.cpp) and emu_tests (the doctest suite, whose
#      CPU-vs-CUDA parity cases then run on the emulated device) and runs both.
# Usage: tests/cuda_emu/emu_check.sh [BUILD] [doctest arguments for emu_tests...]
#   e.g. tests/cuda_emu/emu_check.sh build-cudaemu -sce='conv2d*'   (skip families without CUDA kernels)
# Environment: EMU_SMS (SM count reported by the emulated device, default 2), EMU_ASAN=1 (compile the
# emulated kernels and the parity driver with AddressSanitizer), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${1:-build-cudaemu}
[ $# -gt 0 ] && shift
JOBS=${JOBS:-2}
OUTD=$ROOT/$B/emu
mkdir -p "$OUTD"/fake "$OUTD"/src "$OUTD"/obj

if [ ! -f "$B/CMakeCache.txt" ]; then
  cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNSVQ_TESTS=ON >/dev/null
fi
if ! grep -q 'NSVQ_CUDA=1' "$B/CMakeFiles/nsvq_obj.dir/flags.make" 2>/dev/null; then
  echo "emu_check: $B is not a CUDA-enabled build (nvcc not found by CMake?)" >&2
  exit 1
fi
cmake --build "$B" --target nsvq_obj -j "$JOBS"
cmake --build "$B" --target nsvq_tests -j "$JOBS" >/dev/null 2>&1 || echo "emu_check: nsvq_tests did not link; using its objects"

# ---- rewrite the CUDA sources for the emulator
printf '#pragma once\n#include "tests/cuda_emu/cuda_emu.h"\n' > "$OUTD/fake/cuda_runtime.h"
cp "$OUTD/fake/cuda_runtime.h" "$OUTD/fake/cublas_v2.h"
python3 - "$ROOT" "$OUTD/src" <<'EOF'
import os, re, sys
root, dst = sys.argv[1], sys.argv[2]
for d in ('engine/cuda', 'ops/cuda'):
    for f in sorted(os.listdir(os.path.join(root, d))):
        if not (f.endswith('.cu') or f.endswith('.cuh')):
            continue
        s = open(os.path.join(root, d, f)).read()
        s = re.sub(r'extern __shared__ ([\w ]+?) (\w+)\[\];', r'\1* \2 = (\1*)emu::dyn_smem;', s)
        s = re.sub(r'([A-Za-z_][A-Za-z_0-9:]*(?:<[^<>;()]*>)?)<<<(.*?)>>>\(',
                   lambda m: 'emu::launch(emu::Cfg(%s), %s, ' % (m.group(2), m.group(1)), s, flags=re.S)
        os.makedirs(os.path.join(dst, d), exist_ok=True)
        out = os.path.join(dst, d, f)
        if not os.path.exists(out) or open(out).read() != s:
            open(out, 'w').write(s)
EOF

# ---- compile (everything, every time: header dependencies are not tracked)
SAN=""
[ "${EMU_ASAN:-0}" = 1 ] && SAN="-fsanitize=address -fno-omit-frame-pointer"
CXXF="-std=c++17 -O1 -g $SAN -fopenmp -Wno-unknown-pragmas -DNSVQ_CUDA=1 -DNSVQ_CUDA_ARCHS=\"90\" -DNSVQ_VERSION=\"emu\" -DNSVQ_BUILD_TYPE=\"emu\""
INC="-I$OUTD/fake -I$OUTD/src -I$ROOT"
rm -f "$OUTD"/obj/*.o
n=0
for f in "$OUTD"/src/engine/cuda/*.cu "$OUTD"/src/ops/cuda/*.cu "$ROOT/tests/cuda_emu/emu_glue.cpp"; do
  g++ $CXXF $INC -include "$ROOT/tests/cuda_emu/cuda_emu.h" -x c++ -c "$f" -o "$OUTD/obj/$(basename "$f").o" &
  n=$((n + 1))
  [ $((n % JOBS)) -eq 0 ] && wait
done
wait
for f in "$OUTD"/src/engine/cuda/*.cu "$OUTD"/src/ops/cuda/*.cu "$ROOT/tests/cuda_emu/emu_glue.cpp"; do
  [ -f "$OUTD/obj/$(basename "$f").o" ] || { echo "emu_check: $(basename "$f") did not compile" >&2; exit 1; }
done
g++ $CXXF -I"$ROOT" -c "$ROOT/tests/cuda_emu/emu_parity.cpp" -o "$OUTD/emu_parity.o"

# ---- link against the CPU objects of the CUDA-enabled build (its real CUDA objects left out)
CPUOBJS=$(find "$B/CMakeFiles/nsvq_obj.dir" -name '*.o' ! -name '*.cu.o' ! -name 'cmake_device_link.o' | sort)
TESTOBJS=$(find "$B/CMakeFiles/nsvq_tests.dir" -name '*.o' | sort)
LIBS="-fopenmp -lzstd -lz -lstb"
g++ $SAN -o "$OUTD/emu_parity" "$OUTD/emu_parity.o" "$OUTD"/obj/*.o $CPUOBJS $LIBS
g++ $SAN -o "$OUTD/emu_tests" $TESTOBJS "$OUTD"/obj/*.o $CPUOBJS $LIBS

# ---- run
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:detect_stack_use_after_return=0:allocator_may_return_null=1}
rc=0
echo "== emu_parity"
"$OUTD/emu_parity" || rc=1
echo "== emu_tests $*"
"$OUTD/emu_tests" "$@" || rc=1
exit $rc

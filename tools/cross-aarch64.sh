#!/usr/bin/env bash
# tools/cross-aarch64.sh [DIR] — cross-builds a fully static 64-bit ARM (AArch64) `nsvq` and its test binary
# into DIR (default build-aarch64): DIR/bin/nsvq, DIR/bin/nsvq_tests. Installs what it needs from Debian when
# missing (the cross compiler, qemu-user-static to run the result here, and the arm64 -dev packages through
# multiarch), configures with cmake/aarch64-linux-gnu.cmake and builds. Idempotent like tools/setup.sh: a
# second run with nothing changed takes seconds. Extra arguments after DIR go to CMake's configure step.
# Run the results here with qemu-aarch64-static DIR/bin/nsvq ... (tools/qemu-check.sh does, in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-aarch64}
[ $# -gt 0 ] && shift
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "cross-aarch64: enabling the arm64 architecture (multiarch)"
  $SUDO dpkg --add-architecture arm64
fi
. tools/need-packages.sh
need_packages cross-aarch64 cmake make file g++-aarch64-linux-gnu qemu-user-static doctest-dev \
  libzstd-dev:arm64 zlib1g-dev:arm64 libstb-dev:arm64
if [ ! -f "$dir/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DNSVQ_STATIC=ON -DNSVQ_CUDA=OFF "$@" >/dev/null
fi
# the static libgomp's "dlopen in statically linked applications" link warning is expected (OpenACC
# profiling hooks nsvq never uses)
if ! cmake --build "$dir" -j"$(nproc)" --target nsvq nsvq_tests >"$dir/build.log" 2>&1; then
  grep -E "error|Error" "$dir/build.log" | head -20 >&2
  echo "cross-aarch64: build failed (log: $dir/build.log)" >&2
  exit 1
fi
file "$dir/bin/nsvq" | grep -q "ARM aarch64.*statically linked" || { echo "cross-aarch64: $dir/bin/nsvq is not a static aarch64 binary" >&2; exit 1; }
echo "cross-aarch64: $dir/bin/nsvq ($(stat -c %s "$dir/bin/nsvq") bytes, $(file -b "$dir/bin/nsvq" | cut -d, -f1-2), static)"

#!/usr/bin/env bash
# tools/setup.sh — installs the Debian packages nsvq needs (only those missing), then configures and
# builds Release into build/. Idempotent: a second run with nothing changed takes seconds.
# Extra arguments go to CMake's configure step, e.g. tools/setup.sh -DNSVQ_STATIC=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/need-packages.sh
need_packages setup cmake g++ make pkg-config libstb-dev doctest-dev libzstd-dev zlib1g-dev dataset-fashion-mnist
build=${NSVQ_BUILD_DIR:-build}
if [ ! -f "$build/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
cmake --build "$build" -j"$(nproc)"

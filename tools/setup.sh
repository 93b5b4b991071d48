#!/usr/bin/env bash
# tools/setup.sh — installs the Debian packages nsvq needs (only those missing), then configures and
# builds Release into build/. Idempotent: a second run with nothing changed takes seconds.
# Extra arguments go to CMake's configure step, e.g. tools/setup.sh -DNSVQ_STATIC=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs="cmake g++ make pkg-config libstb-dev doctest-dev libzstd-dev zlib1g-dev dataset-fashion-mnist"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
build=${NSVQ_BUILD_DIR:-build}
if [ ! -f "$build/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
cmake --build "$build" -j"$(nproc)"

#!/usr/bin/env bash
# tools/setup.sh — installs the Debian packages nsvq needs (only those missing), then configures and
# builds Release into build/. Idempotent: a second run with nothing changed takes seconds.
# Extra arguments go to CMake's configure step, e.g. tools/setup.sh -DNSVQ_STATIC=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/need-packages.sh
need_packages setup cmake g++ make pkg-config libstb-dev doctest-dev libzstd-dev zlib1g-dev dataset-fashion-mnist \
  libopenmpi-dev openmpi-bin  # OpenMPI: data-parallel training over several processes (docs/distributed.md)
# where Debian's PyTorch is installed, the rFID / LPIPS parity test (tests/torch_metrics_test.sh) also needs
# torchvision (InceptionV3, VGG16) and scipy (pytorch-fid's sqrtm); without PyTorch that test skips
if dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed"; then
  need_packages setup python3-torchvision python3-scipy
fi
build=${NSVQ_BUILD_DIR:-build}
if [ ! -f "$build/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
cmake --build "$build" -j"$(nproc)"

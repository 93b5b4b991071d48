#!/usr/bin/env bash
# tools/prepare-device-deps.sh — run on the Debian dev machine (from anywhere): copies into .deps/
# what the GPU machine lacks, so that tools/device-check.sh can build there without -dev packages
# or network:
#   .deps/include/stb/stb_image*.h      (Debian's libstb-dev layout: found by find_path(... PATH_SUFFIXES stb))
#   .deps/include/doctest/              (doctest/doctest.h)
#   .deps/include/{zstd,zstd_errors,zdict,zlib,zconf}.h
#   .deps/lib/{libzstd,libz,libstb}.a   (static: nothing to install on the GPU machine)
#   .deps/data/fashion-mnist/*.gz       (the Fashion-MNIST IDX files, ~30 MB)
#   .deps/data/cifar10-slice.bin.xz     (the first 7,000 records of CIFAR-10's data_batch_1, ~13 MB;
#                                        tools/device-cifar-slice.sh unpacks it there)
# .deps/ is git-ignored; it must stay under ~60 MiB (it travels with the working tree).
set -euo pipefail
cd "$(dirname "$0")/.."

D=.deps
LIBDIR=/usr/lib/x86_64-linux-gnu
INC=/usr/include
FMNIST=/usr/share/datasets/fashion-mnist
CIFAR=${NSVQ_CIFAR_DIR:-$(cd .. && pwd)/shared/data/cifar10}
MAX_MIB=60

need() {
  for f in "$@"; do
    [ -e "$f" ] || { echo "prepare-device-deps: missing $f (install the Debian package that provides it)" >&2; exit 1; }
  done
}
need "$INC"/stb/stb_image.h "$INC"/doctest/doctest.h "$INC"/zstd.h "$INC"/zstd_errors.h "$INC"/zdict.h \
     "$INC"/zlib.h "$INC"/zconf.h "$LIBDIR"/libzstd.a "$LIBDIR"/libz.a "$LIBDIR"/libstb.a
ls "$FMNIST"/*.gz >/dev/null 2>&1 || { echo "prepare-device-deps: no $FMNIST/*.gz" >&2; exit 1; }

rm -rf "$D"
mkdir -p "$D"/include/stb "$D"/lib "$D"/data/fashion-mnist
cp "$INC"/stb/stb_image*.h "$D"/include/stb/
cp -r "$INC"/doctest "$D"/include/
cp "$INC"/zstd.h "$INC"/zstd_errors.h "$INC"/zdict.h "$INC"/zlib.h "$INC"/zconf.h "$D"/include/
cp "$LIBDIR"/libzstd.a "$LIBDIR"/libz.a "$LIBDIR"/libstb.a "$D"/lib/
cp "$FMNIST"/*.gz "$D"/data/fashion-mnist/
if [ -f "$CIFAR/data_batch_1.bin.xz" ]; then
  xz -dc "$CIFAR/data_batch_1.bin.xz" | head -c $((7000 * 3073)) | xz -6 > "$D"/data/cifar10-slice.bin.xz
else
  echo "prepare-device-deps: no $CIFAR/data_batch_1.bin.xz: the GPU training check will be skipped" >&2
fi

mib=$(du -sm "$D" | cut -f1)
echo "prepare-device-deps: $D holds ${mib} MiB:"
find "$D" -type f -printf '  %p (%s bytes)\n' | sort
if [ "$mib" -gt "$MAX_MIB" ]; then
  echo "prepare-device-deps: $D is ${mib} MiB, over the ${MAX_MIB} MiB limit" >&2
  exit 1
fi
grep -qx '.deps/' .gitignore 2>/dev/null || echo "prepare-device-deps: note: .deps/ is not in .gitignore" >&2
echo "prepare-device-deps: done (carry '.deps' to the GPU machine, then run tools/device-check.sh there)"

#!/usr/bin/env bash
# tests/install_test.sh — libnsvq as a user installs and uses it: `cmake --install` into a temporary
# prefix (header, libnsvq.so exporting only nsvq_*, libnsvq.a, pkg-config files, CMake package), then
# examples/tokenize.c built by a C compiler four ways — pkg-config shared and static, a CMake project
# with find_package shared and static — and the shared one again under AddressSanitizer; every build,
# given a training checkpoint or an exported inference file, writes the same tokens as `nsvq tokenize`.
# Usage: install_test.sh BUILD_DIR NSVQ
set -u
build=${1:?usage: install_test.sh BUILD_DIR NSVQ} nsvq=${2:?usage: install_test.sh BUILD_DIR NSVQ}
. "$(dirname "$0")/cli_lib.sh"
src=$(cd "$(dirname "$0")/.." && pwd)
export OMP_WAIT_POLICY=passive
P=$tmp/prefix
run_ok "cmake --install" cmake --install "$build" --prefix "$P"
for f in include/nsvq.h lib/libnsvq.a lib/libnsvq.so lib/pkgconfig/nsvq.pc lib/pkgconfig/nsvq-static.pc \
  lib/cmake/nsvq/nsvqConfig.cmake; do
  check "installed $f" test -e "$P/$f"
done
check "versioned SONAME" sh -c "readelf -d '$P/lib/libnsvq.so' | grep -q 'SONAME.*libnsvq.so.0'"
exports=$(nm -D --defined-only "$P/lib/libnsvq.so" | awk '{ print $3 }' | sed 's/@.*//' | grep -v '^NSVQ_0$' | sort)
check "libnsvq.so exports only nsvq_* ($(echo $exports | wc -w) symbols)" sh -c "! echo '$exports' | grep -qv '^nsvq_'"
check "libnsvq.so exports the C API" sh -c "echo '$exports' | grep -qx nsvq_tokenize && echo '$exports' | grep -qx nsvq_open"

# a tokenizer, its export, images and the command line's tokens
run_ok "tokenizer" "$nsvq" train --preset quickstart -q --batch 8 --steps 3 --codes 64 --eval-n 0 --drift-every 100 --probe 16 --out "$tmp/tok"
C=$tmp/tok/checkpoint.safetensors E=$tmp/model.safetensors.zst
run_ok "export" "$nsvq" export -m "$C" -o "$E"
run_ok "images" "$nsvq" export-images --n 7 -o "$tmp/img"
run_ok "nsvq tokenize" "$nsvq" tokenize -m "$C" "$tmp"/img/*.png -o "$tmp/ref.txt"
check "text tokens: 7 lines of 1 + 64 fields" awk 'NF != 65 { exit 1 } END { exit NR != 7 }' "$tmp/ref.txt"

export PKG_CONFIG_PATH=$P/lib/pkgconfig
CC=${CC:-cc}
CF="-std=c99 -Wall -Wextra -pedantic -Werror"
run_ok "pkg-config shared build" $CC $CF "$src/examples/tokenize.c" $(pkg-config --cflags --libs nsvq) -lstb -o "$tmp/ex-pc-shared"
run_ok "pkg-config static build" $CC $CF "$src/examples/tokenize.c" $(pkg-config --cflags --libs nsvq-static) -o "$tmp/ex-pc-static"
for kind in OFF ON; do
  run_ok "cmake find_package build (static $kind)" sh -c "cmake -S '$src/examples' -B '$tmp/cm-$kind' -DCMAKE_PREFIX_PATH='$P' \
    -DNSVQ_EXAMPLE_STATIC=$kind >'$tmp/cm-$kind.log' 2>&1 && cmake --build '$tmp/cm-$kind' >>'$tmp/cm-$kind.log' 2>&1"
done
cp "$tmp/cm-OFF/tokenize" "$tmp/ex-cm-shared" 2>/dev/null
cp "$tmp/cm-ON/tokenize" "$tmp/ex-cm-static" 2>/dev/null
check "shared builds load libnsvq.so.0" sh -c "LD_LIBRARY_PATH='$P/lib' ldd '$tmp/ex-pc-shared' | grep -q libnsvq.so.0"
check "static builds do not" sh -c "! ldd '$tmp/ex-pc-static' | grep -q libnsvq && ! ldd '$tmp/ex-cm-static' | grep -q libnsvq"
for ex in pc-shared pc-static cm-shared cm-static; do
  for m in "$C" "$E"; do
    run_ok "$ex on $(basename "$m")" env LD_LIBRARY_PATH="$P/lib" "$tmp/ex-$ex" "$m" "$tmp/$ex.txt" "$tmp"/img/*.png
    check "$ex on $(basename "$m"): the tokens of nsvq tokenize" cmp -s "$tmp/ref.txt" "$tmp/$ex.txt"
  done
done
# the example under AddressSanitizer (its own memory, and every malloc/free the library makes)
if $CC -fsanitize=address -g "$src/examples/tokenize.c" $(pkg-config --cflags --libs nsvq) -lstb -o "$tmp/ex-asan" 2>/dev/null; then
  run_ok "example under AddressSanitizer" env LD_LIBRARY_PATH="$P/lib" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
    "$tmp/ex-asan" "$C" "$tmp/asan.txt" "$tmp"/img/*.png
  check "ASan run: the same tokens" cmp -s "$tmp/ref.txt" "$tmp/asan.txt"
  expect_fail_ex() { "$@" >"$tmp/out" 2>"$tmp/err"; [ $? -ne 0 ] && grep -q "tokenize: " "$tmp/err" && ! grep -q "AddressSanitizer" "$tmp/err"; }
  check "ASan run on a missing model: one error, no memory error" expect_fail_ex env LD_LIBRARY_PATH="$P/lib" "$tmp/ex-asan" "$tmp/none" "$tmp/x.txt" "$tmp"/img/00000.png
else
  echo "install_test: no AddressSanitizer runtime for $CC; the ASan run is skipped"
fi
echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

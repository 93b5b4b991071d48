#!/usr/bin/env bash
# tests/cli_fdnet_test.sh — `nsvq fd-net`: help, one-line errors (subcommand, unlabelled data, missing
# output folder, truncated file), and a tiny training run on a two-class folder of TGA images followed
# by `fd-net info`. Usage: cli_fdnet_test.sh NSVQ
set -u
nsvq=${1:?usage: cli_fdnet_test.sh path/to/nsvq}
. "$(dirname "$0")/cli_lib.sh"

# a 32x32 8-bit grayscale uncompressed TGA: 18-byte header, then 1024 pixel bytes from stdin
tga() { { printf '\0\0\3\0\0\0\0\0\0\0\0\0\40\0\40\0\10\0'; head -c 1024; } >"$1"; }
mkdir -p "$tmp/cls/noise" "$tmp/cls/flat" "$tmp/flat"
for i in 0 1 2 3 4 5 6 7; do
  tga "$tmp/cls/noise/$i.tga" </dev/urandom
  tr '\0' '\140' </dev/zero | tga "$tmp/cls/flat/$i.tga"
  tr '\0' '\140' </dev/zero | tga "$tmp/flat/$i.tga"
done

expect_ok "fd-net help" "--feature-dim" "$nsvq" fd-net train --help
expect_fail "fd-net no subcommand" "missing subcommand" "$nsvq" fd-net
expect_fail "fd-net unknown subcommand" "unknown subcommand 'frob'" "$nsvq" fd-net frob
expect_fail "fd-net negative --n-train" "--n-train must be >= 0" "$nsvq" fd-net train --n-train -1
expect_fail "fd-net unlabelled" "needs a labelled dataset" "$nsvq" fd-net train --data "folder:$tmp/flat" --out "$tmp/u.safetensors"
expect_fail "fd-net missing out folder" "does not exist" "$nsvq" fd-net train --data "folder:$tmp/cls" --out "$tmp/no/f.safetensors"
expect_ok "fd-net train" "final test accuracy" "$nsvq" fd-net train --data "folder:$tmp/cls" --epochs 2 --batch 4 \
  --width 8 --feature-dim 16 -t 1 --out "$tmp/f.safetensors"
expect_ok "fd-net info" "trained on folder, 3 channels at 32x32, 2 classes" "$nsvq" fd-net info "$tmp/f.safetensors"
head -c 300 "$tmp/f.safetensors" >"$tmp/cut.safetensors"
expect_fail "fd-net truncated" "cut.safetensors" "$nsvq" fd-net info "$tmp/cut.safetensors"
expect_fail "fd-net missing file" "none.safetensors" "$nsvq" fd-net info "$tmp/none.safetensors"

echo "cli fd-net: $pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# tests/c_api_test.sh — inference files and the C API: `nsvq export` of each part against the training
# checkpoint (the same tokens and images; the wrong part refused), the --max-pixels limit, then
# tests/c_api_test.c (the C API through libnsvq.so) on a tiny tokenizer, an encoder-only export (.zst),
# a truncated checkpoint, a junk file and a safetensors file that is not a tokenizer.
# (tests/install_test.sh runs the example program under AddressSanitizer.)
# Usage: c_api_test.sh NSVQ C_API_TEST
set -u
nsvq=${1:?usage: c_api_test.sh NSVQ C_API_TEST} capi=${2:?usage: c_api_test.sh NSVQ C_API_TEST}
. "$(dirname "$0")/cli_lib.sh"
export OMP_WAIT_POLICY=passive
run_ok "tokenizer" "$nsvq" train --preset quickstart -q --batch 8 --steps 3 --codes 32 --eval-n 0 --drift-every 100 --probe 16 --out "$tmp/tok"
C=$tmp/tok/checkpoint.safetensors
run_ok "export the encoder (zstd)" "$nsvq" export -m "$C" --part encoder -o "$tmp/enc.safetensors.zst"
head -c 300000 "$C" >"$tmp/trunc.safetensors"
echo "this is not a model" >"$tmp/junk.safetensors"
# a valid safetensors file without a tokenizer's metadata
printf '\x38\x00\x00\x00\x00\x00\x00\x00{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  \x00\x00\x80\x3f' \
  >"$tmp/plain.safetensors"
# the inference files of `nsvq export` against the training checkpoint, through the command line
run_ok "images" "$nsvq" export-images --n 5 -o "$tmp/img"
run_ok "tokenize (checkpoint)" "$nsvq" tokenize -m "$C" "$tmp"/img/*.png -o "$tmp/t0.nsvqt"
run_ok "export all" "$nsvq" export -m "$C" -o "$tmp/all.safetensors"
run_ok "export the decoder" "$nsvq" export -m "$C" --part decoder -o "$tmp/dec.safetensors"
check "an export is a fraction of the checkpoint" test "$(stat -c %s "$tmp/all.safetensors")" -lt "$(( $(stat -c %s "$C") / 2 ))"
for m in enc.safetensors.zst all.safetensors; do
  run_ok "tokenize ($m)" "$nsvq" tokenize -m "$tmp/$m" "$tmp"/img/*.png -o "$tmp/t-$m.nsvqt"
  check "tokens of $m equal the checkpoint's" cmp -s "$tmp/t0.nsvqt" "$tmp/t-$m.nsvqt"
done
run_ok "decode (checkpoint)" "$nsvq" decode -m "$C" "$tmp/t0.nsvqt" -o "$tmp/d0"
run_ok "decode (decoder export)" "$nsvq" decode -m "$tmp/dec.safetensors" "$tmp/t0.nsvqt" -o "$tmp/d1"
check "decoded images equal the checkpoint's" diff -r "$tmp/d0" "$tmp/d1"
expect_ok "info of an export" "inference file: decoder" "$nsvq" info -m "$tmp/dec.safetensors"
expect_fail "decode with the encoder only" "encoder only" "$nsvq" decode -m "$tmp/enc.safetensors.zst" "$tmp/t0.nsvqt" -o "$tmp/d2"
expect_fail "reconstruct with the decoder only" "decoder only" "$nsvq" reconstruct -m "$tmp/dec.safetensors" "$tmp/img/00000.png" -o "$tmp/r.png"
expect_fail "export an unknown part" "unknown model part" "$nsvq" export -m "$C" --part head -o "$tmp/x.safetensors"
expect_fail "export a truncated checkpoint" "trunc.safetensors" "$nsvq" export -m "$tmp/trunc.safetensors" -o "$tmp/x.safetensors"
check "nothing written for bad input" test ! -e "$tmp/x.safetensors"
# image limits: refused from the header, before decoding
expect_fail "an image over --max-pixels" "over the limit of 1000" "$nsvq" --max-pixels 1000 tokenize -m "$C" "$tmp/img/00000.png" -o "$tmp/x.nsvqt"
mkdir -p "$tmp/folder"
cp "$tmp/img/00000.png" "$tmp/img/00001.png" "$tmp/folder/"
printf '\0\0\3\0\0\0\0\0\0\0\0\0\60\165\60\165\10\0' >"$tmp/folder/huge.tga"  # 30000x30000 gray, header only
"$nsvq" export-images --data "folder:$tmp/folder" --size 32 --channels 1 --n 2 -o "$tmp/fo" >"$tmp/out" 2>"$tmp/err"
check "a folder dataset skips an image over the limit" grep -q "huge.tga: 30000x30000 = 900000000 pixels, over the limit" "$tmp/err"
check "and keeps the others" test -s "$tmp/fo/00001.png"
expect_fail "--max-pixels needs a number" "positive integer" "$nsvq" tokenize --max-pixels 0 -m "$C" "$tmp/img/00000.png" -o "$tmp/x.nsvqt"

run_ok "C API test" "$capi" "$C" "$tmp/enc.safetensors.zst" "$tmp/trunc.safetensors" "$tmp/junk.safetensors" "$tmp/plain.safetensors"
cat "$tmp/out" "$tmp/err"
echo "c_api: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

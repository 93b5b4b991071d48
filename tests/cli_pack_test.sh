#!/usr/bin/env bash
# tests/cli_pack_test.sh — `nsvq pack` and --data shards:DIR from the command line: help, one-line
# errors (missing options, unknown or missing datasets, bad sizes, options of another pack, a split of
# another geometry, a missing split, a corrupt chunk), and a pack stopped by --max-chunks and resumed,
# byte for byte the uninterrupted one; then the shards through export-images and bench data.
# Usage: cli_pack_test.sh NSVQ
set -u
nsvq=${1:?usage: cli_pack_test.sh path/to/nsvq}
. "$(dirname "$0")/cli_lib.sh"

# a 32x32 8-bit grayscale uncompressed TGA: 18-byte header, then 1024 pixel bytes from stdin
tga() { { printf '\0\0\3\0\0\0\0\0\0\0\0\0\40\0\40\0\10\0'; head -c 1024; } >"$1"; }
mkdir -p "$tmp/img/a" "$tmp/img/b"
for i in 0 1 2 3 4 5 6 7 8 9 10 11; do
  tga "$tmp/img/a/$i.tga" </dev/urandom
  tga "$tmp/img/b/$i.tga" </dev/urandom
done
echo "not an image" >"$tmp/img/b/broken.png"
src="folder:$tmp/img"

expect_ok "pack help" "--chunk-mb" "$nsvq" pack --help
expect_fail "pack no data" "--data is required" "$nsvq" pack -o "$tmp/x"
expect_fail "pack no output" "-o DIR is required" "$nsvq" pack --data "$src"
expect_fail "pack unknown dataset" "unknown dataset 'mnist9'" "$nsvq" pack --data mnist9 -o "$tmp/x"
expect_fail "pack missing folder" "not a folder" "$nsvq" pack --data "folder:$tmp/none" -o "$tmp/x"
expect_fail "pack bad size" "--size 2 out of range" "$nsvq" pack --data "$src" --size 2 -o "$tmp/x"
expect_fail "pack bad split" "--split must be train or test" "$nsvq" pack --data "$src" --split val -o "$tmp/x"
expect_fail "pack size of a fixed set" "apply to folder sources" "$nsvq" pack --data fmnist --size 64 -o "$tmp/x"
expect_fail "pack bad chunk" "--chunk-mb and --shard-mb must be positive" "$nsvq" pack --data "$src" --chunk-mb 0 -o "$tmp/x"

# stopped after 2 chunks, resumed, then complete: the same bytes as one uninterrupted run
opts=(--data "$src" --size 16 --channels 1 --chunk-mb 0.002 --shard-mb 0.006 -q)
expect_ok "pack stopped" "stopped after 2 chunks" "$nsvq" pack "${opts[@]}" --max-chunks 2 -o "$tmp/a"
expect_fail "pack unfinished split" "not finished" "$nsvq" export-images --data "shards:$tmp/a" --split train --size 16 --channels 1 -o "$tmp/e"
expect_fail "pack other options mid-run" "packed with other options" "$nsvq" pack "${opts[@]}" --level 5 -o "$tmp/a"
expect_ok "pack resumed" "24 train images.*resumed after 2 chunks" "$nsvq" pack "${opts[@]}" -o "$tmp/a"
expect_ok "pack again" "nothing to do" "$nsvq" pack "${opts[@]}" -o "$tmp/a"
expect_fail "pack other options" "already holds a train split" "$nsvq" pack "${opts[@]}" --level 5 -o "$tmp/a"
expect_ok "pack uninterrupted" "1 skipped" "$nsvq" pack "${opts[@]}" -t 1 -o "$tmp/b"
check "pack resume is byte-identical" diff -r "$tmp/a" "$tmp/b"
expect_fail "pack test of another size" "holds a train split of 1x16" "$nsvq" pack --data "$src" --split test --size 32 -o "$tmp/a"

# the shards in use
expect_ok "shards export-images" "4 images" "$nsvq" export-images --data "shards:$tmp/a" --split train --size 16 --channels 1 --n 4 -o "$tmp/e"
expect_ok "shards bench data" "images/s per core" "$nsvq" bench data --data "shards:$tmp/a" --size 16 --channels 1 --batch 4 --seconds 0.2
expect_fail "shards missing split" "has no test split" "$nsvq" export-images --data "shards:$tmp/a" --split test --size 16 --channels 1 -o "$tmp/e"
expect_fail "shards wrong size" "short side 16" "$nsvq" export-images --data "shards:$tmp/a" --split train --size 32 --channels 1 -o "$tmp/e"
printf '\377\377\377\377' | dd of="$tmp/a/train-00000.shard" bs=1 seek=700 conv=notrunc status=none
expect_fail "shards corrupt chunk" "train-00000.shard: chunk 0 .*checksum mismatch" "$nsvq" export-images --data "shards:$tmp/a" --split train --size 16 --channels 1 -o "$tmp/e"

echo "cli pack: $pass passed, $fail failed"
[ $fail -eq 0 ]

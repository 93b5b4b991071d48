#!/usr/bin/env bash
# tools/device-cifar-slice.sh SLICE.bin.xz DIR — on the GPU machine: unpacks the CIFAR-10 slice that
# tools/prepare-device-deps.sh carried (7,000 records of data_batch_1, official binary layout) into
# the folder layout nsvq reads: data_batch_1..5.bin (1,200 records each) and test_batch.bin (1,000).
set -euo pipefail
src=$1 dir=$2
REC=3073
mkdir -p "$dir"
tmp=$dir/slice.bin
if command -v xz >/dev/null 2>&1; then xz -dc "$src" > "$tmp"
else python3 -c 'import lzma,sys; open(sys.argv[2],"wb").write(lzma.open(sys.argv[1]).read())' "$src" "$tmp"; fi
n=$(( $(stat -c %s "$tmp") / REC ))
[ "$n" -ge 7000 ] || { echo "device-cifar-slice: $src holds $n records, expected 7000" >&2; exit 1; }
for i in 1 2 3 4 5; do dd if="$tmp" of="$dir/data_batch_$i.bin" bs=$REC skip=$(( (i - 1) * 1200 )) count=1200 status=none; done
dd if="$tmp" of="$dir/test_batch.bin" bs=$REC skip=6000 count=1000 status=none
rm -f "$tmp"
echo "device-cifar-slice: $dir: 6000 training and 1000 test images"

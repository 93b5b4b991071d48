#!/usr/bin/env bash
# tools/bench/conv_shapes.sh — every conv2d shape of the fmnist preset (encoder, decoder,
# discriminator; batch 32, forward + backward), nsvq beside PyTorch (Debian python3-torch) in the same
# run, at 1 and 2 threads; prints a markdown table with the ratio nsvq/torch (> 1: nsvq faster).
# The Downsample's (0,1,0,1) padding is timed as padding 1 (same work). Usage: [THREADS="1 2"] conv_shapes.sh [NSVQ]
set -euo pipefail
nsvq=${1:-build/bin/nsvq}
py=/usr/bin/python3
here=$(dirname "$0")
# cin cout hw kernel stride pad  (where)
shapes="1 32 32 3 1 1 enc.conv_in
32 32 32 3 1 1 enc.level0
32 32 32 3 2 1 enc.down0
32 64 16 3 1 1 enc.level1_in
32 64 16 1 1 0 enc.nin1
64 64 16 3 1 1 enc/dec.level1
64 64 16 3 2 1 enc.down1
64 64 8 3 1 1 enc/dec.level2_mid
64 16 8 3 1 1 enc.conv_out
16 16 8 1 1 0 quant_conv
16 64 8 3 1 1 dec.conv_in
64 64 32 3 1 1 dec.upsample0
64 32 32 3 1 1 dec.level0_in
64 32 32 1 1 0 dec.nin0
32 1 32 3 1 1 dec.conv_out
1 32 32 4 2 1 disc.main0
32 64 16 4 2 1 disc.main2
64 128 8 4 1 1 disc.main5
128 1 7 4 1 1 disc.main8"
echo "| conv (batch 32, fwd+bwd) | where | threads | nsvq GFLOP/s | torch GFLOP/s | nsvq / torch |"
echo "|---|---|---|---|---|---|"
while read -r ci co hw k s p where; do
  for t in ${THREADS:-1 2}; do
    args="--batch 32 --cin $ci --cout $co --hw $hw --kernel $k --stride $s --pad $p --reps 7"
    n=$("$nsvq" bench conv $args -t "$t" --json | grep "\"name\"" | sed -E 's/.*"gflops": ([0-9.]+).*/\1/')
    o=$(OMP_NUM_THREADS=$t $py "$here/torch_conv.py" $args --threads "$t" 2>/dev/null | sed -E 's/.*"gflops": ([0-9.]+).*/\1/')
    r=$(awk -v a="$n" -v b="$o" 'BEGIN { printf "%.2f", a / b }')
    echo "| ${ci}->${co} ${hw}x${hw} k$k s$s p$p | $where | $t | $n | $o | $r |"
  done
done <<<"$shapes"

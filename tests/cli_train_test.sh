#!/usr/bin/env bash
# tests/cli_train_test.sh — end to end through the command line, kept small: train a few dozen
# steps, stop and resume and compare with an uninterrupted run bit for bit (plain and zstd), all five
# quantizers, tokenize -> decode equals reconstruct, eval/info on the checkpoint, the outputs of a
# run, the experiment pipeline in miniature (tools/experiments/table.sh, studies.sh + nsvq report), and a
# one-line error with a non-zero exit (nothing written over) for every bad input. Batches of 8 and 16-image
# drift probes throughout: the mechanics are under test here, not the learning.
# Usage: cli_train_test.sh NSVQ
set -u
nsvq=${1:?usage: cli_train_test.sh path/to/nsvq}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/cli_lib.sh"
export OMP_WAIT_POLICY=passive
T="train --preset quickstart -q --batch 8 --steps 24 --eval-n 0 --drift-every 6 --probe 16 --log-every 4 --ckpt-every 8 --codes 64"

# ---- an uninterrupted run vs one stopped twice and resumed: byte-identical checkpoints
run_ok "train a" "$nsvq" $T --out "$tmp/a"
run_ok "train b part 1" "$nsvq" $T --out "$tmp/b" --stop-after 7
run_ok "train b part 2" "$nsvq" train --out "$tmp/b" --resume -q --stop-after 9
run_ok "train b part 3: the same command again, with --resume" "$nsvq" $T --out "$tmp/b" --resume
check "resume is bitwise exact" cmp -s "$tmp/a/checkpoint.safetensors" "$tmp/b/checkpoint.safetensors"
check "previous checkpoint kept" test -s "$tmp/a/checkpoint.prev.safetensors"
check "metrics lines identical but timing" diff <(sed 's/"ms_per_step.*//' "$tmp/a/metrics.jsonl") \
  <(sed 's/"ms_per_step.*//' "$tmp/b/metrics.jsonl")
for f in utilization.svg loss.svg drift.svg metrics.jsonl; do check "output $f" test -s "$tmp/a/$f"; done
check "stage events logged" grep -q '"event": "warmup"' "$tmp/a/metrics.jsonl"
check "drift logged" grep -q '"drift":' "$tmp/a/metrics.jsonl"

# ---- zstd checkpoints resume too
run_ok "train zstd 1" "$nsvq" $T --steps 8 --zstd on --drift-every 0 --out "$tmp/z1"
run_ok "train zstd 2a" "$nsvq" $T --steps 8 --zstd on --drift-every 0 --out "$tmp/z2" --stop-after 3
run_ok "train zstd 2b" "$nsvq" train --out "$tmp/z2" --resume -q
check "zstd resume is bitwise exact" cmp -s "$tmp/z1/checkpoint.safetensors.zst" "$tmp/z2/checkpoint.safetensors.zst"
expect_ok "info on zstd" "step: 8" "$nsvq" info -m "$tmp/z1/checkpoint.safetensors.zst"
check "--drift-every 0: no probe" test -z "$(grep '"probe": {' "$tmp/z1/metrics.jsonl")"

# ---- every quantizer trains and evaluates; a final evaluation writes its pictures
for q in vq vq-l2 ema simvq nsvq; do
  run_ok "train $q" "$nsvq" train --preset quickstart -q --batch 8 --steps 6 --codes 32 --eval-n 40 --drift-every 3 --probe 16 \
    --quantizer $q --weight-ema 0.9 --out "$tmp/q-$q"
  expect_ok "eval $q" '"utilization"' "$nsvq" eval -m "$tmp/q-$q/checkpoint.safetensors" --n 40 --json
done
for f in recon.png codebook_usage.svg eval.json; do check "output $f" test -s "$tmp/q-nsvq/$f"; done
expect_ok "info" "metrics: {\"images\": 40" "$nsvq" info -m "$tmp/q-nsvq/checkpoint.safetensors"
# ---- the experiment pipeline in miniature: tools/experiments/table.sh (2 quantizers x 2 K, 2 seeds) + report
run_ok "experiment table" "$root/tools/experiments/table.sh" --nsvq "$nsvq" --preset quickstart --steps 4 --codes "16 32" \
  --quantizers "vq nsvq" --seeds "0 1" --eval-n 40 --no-fd-net --out "$tmp/table" -- --drift-every 2 --probe 16 --batch 8
R=$tmp/table/report
check "report table" grep -q '^| nsvq | 0,1 |' "$R/report.md"
check "report spread" grep -q ' ± ' "$R/report.md"
check "report winners" grep -q '^- utilization: \*\*' "$R/report.md"
for f in util_fmnist_K16_4.svg rec_fmnist_K32_4.svg recon_fmnist_K32_4.png util_vs_K_fmnist_4.svg psnr_vs_K_fmnist_4.svg; do
  check "report $f" test -s "$R/$f"
done
run_ok "table rerun keeps finished runs" "$root/tools/experiments/table.sh" --nsvq "$nsvq" --preset quickstart --steps 4 \
  --codes "16 32" --quantizers "vq nsvq" --seeds "0 1" --eval-n 40 --no-fd-net --out "$tmp/table"
# two trainers side by side (one thread each when there are 2 cores) train the same runs bitwise
run_ok "experiment table --jobs 2" "$root/tools/experiments/table.sh" --nsvq "$nsvq" --preset quickstart --steps 4 \
  --codes 32 --quantizers "vq nsvq" --seeds 1 --eval-n 40 --no-fd-net --jobs 2 --out "$tmp/table2" -- --drift-every 2 --probe 16 --batch 8
for r in vq-K32-s1 nsvq-K32-s1; do
  check "--jobs 2 run $r is bitwise the same" cmp -s "$tmp/table/$r/checkpoint.safetensors" "$tmp/table2/$r/checkpoint.safetensors"
done
expect_fail "table: bad --jobs" "--jobs must be an integer" "$root/tools/experiments/table.sh" --nsvq "$nsvq" --jobs 0
expect_fail "report of a non-run" "not a training run folder" "$nsvq" report -o "$tmp/rep2" "$tmp/table/report"
# ---- the studies in miniature (tools/experiments/studies.sh): stress test at m = 2, 4, 8, ablation, sensitivity (one value
# per sweep besides the default, for time) + reports
run_ok "experiment studies" "$root/tools/experiments/studies.sh" --nsvq "$nsvq" --preset quickstart --steps 10 --codes 16 \
  --eval-n 20 --no-fd-net --m "2 4 8" --quantizers "vq nsvq" --studies "stress ablation sensitivity" --lambdas 0.003 --tau-decays 0.3 \
  --stage1-pcts 25 --thresholds 2 --out "$tmp/st" -- --probe 16 --batch 8
S=$tmp/st
# 8 rows, vq and nsvq at m = 1, 2, 4, 8 (vq at m = 1 comes with the ablation): over 6 rows the per-step plots are
# per quantizer
check "stress rows by m" grep -q '^| nsvq | 2 | 0 |' "$S/report-stress/report.md"
check "stress default row" grep -q '^| nsvq | 1 | 0 |' "$S/report-stress/report.md"
check "stress drift column" grep -q '| fd_proxy | drift | train time |' "$S/report-stress/report.md"
for f in util_vs_encoder-lr-mult_fmnist_K16_10.svg psnr_vs_encoder-lr-mult_fmnist_K16_10.svg drift_fmnist_K16_10_nsvq.svg; do
  check "stress $f" test -s "$S/report-stress/$f"
done
check "ablation rows in order" diff <(grep -o '^| nsvq | o[nf]* | o[nf]* | [0-9]* | o[nf]* |' "$S/report-ablation/report.md") \
  <(printf '| nsvq | on | off | 10 | off |\n| nsvq | on | on | 10 | off |\n| nsvq | on | on | 5 | off |\n| nsvq | on | on | 5 | on |\n')
check "ablation: nsvq options do not apply to vq" grep -q '^| vq | — | — | 10 | — |' "$S/report-ablation/report.md"
check "sensitivity lambda rows (0.003 and the default)" test "$(grep -c '^| nsvq | 0\.[0-9]* | 0 |' "$S/report-sensitivity-lambda/report.md")" -eq 2
for f in tau-decay stage1 replace-threshold; do check "sensitivity $f" test -s "$S/report-sensitivity-$f/psnr_vs_${f}_fmnist_K16_10.svg"; done
# a sensitivity sweep given no values is skipped, its report too (the others still run)
run_ok "studies: empty sweeps" "$root/tools/experiments/studies.sh" --nsvq "$nsvq" --preset quickstart --steps 10 --codes 16 \
  --eval-n 20 --no-fd-net --studies sensitivity --lambdas 0.1 --tau-decays '' --stage1-pcts '' --thresholds '' --out "$tmp/st2" -- --probe 16 --batch 8
check "studies: the one sweep reported" test "$(grep -c '^| nsvq | 0\.[0-9]* | 0 |' "$tmp/st2/report-sensitivity-lambda/report.md")" -eq 2
check "studies: no report of an empty sweep" test ! -e "$tmp/st2/report-sensitivity-stage1"
expect_fail "report mixing options" "differ in --encoder-lr-mult" "$nsvq" report -o "$tmp/rep4" "$S/stress/nsvq-m1-s0" "$S/stress/nsvq-m2-s0"
expect_fail "report --by unknown" "no such training option" "$nsvq" report --by nope -o "$tmp/rep4" "$S/stress/nsvq-m1-s0"
expect_fail "report the same run twice" "same run" "$nsvq" report -o "$tmp/rep4" "$S/stress/nsvq-m1-s0" "$S/stress/nsvq-m1-s0"
expect_fail "studies: unknown study" "unknown study" "$root/tools/experiments/studies.sh" --nsvq "$nsvq" --studies nope
run_ok "adaptive adversarial weight" "$nsvq" train --preset quickstart -q --batch 8 --steps 4 --codes 64 --eval-n 0 --probe 16 \
  --disc-start 0 --adv adaptive --gan-loss ns --out "$tmp/adaptive"
check "adaptive lambda logged" grep -q '"lambda_adv"' "$tmp/adaptive/metrics.jsonl"
expect_fail "report of an unevaluated run" "no eval.json" "$nsvq" report -o "$tmp/rep3" "$tmp/adaptive"

# ---- tokenize -> decode equals reconstruct
M="$tmp/a/checkpoint.safetensors"
expect_ok "export" "5 images" "$nsvq" export-images --n 5 -o "$tmp/img"
expect_ok "tokenize" "5 images" "$nsvq" tokenize -m "$M" "$tmp"/img/*.png -o "$tmp/t.nsvqt"
expect_ok "decode" "5 images" "$nsvq" decode -m "$M" "$tmp/t.nsvqt" -o "$tmp/dec"
same=0
for i in 00000 00001 00002 00003 00004; do
  "$nsvq" reconstruct -m "$M" "$tmp/img/$i.png" -o "$tmp/rec-$i.png" && cmp -s "$tmp/rec-$i.png" "$tmp/dec/$i.png" && same=$((same+1))
done
check "decode(tokenize(x)) == reconstruct(x)" test $same -eq 5

# ---- bad input: one line, non-zero exit, nothing written over
head -c 1000 "$M" >"$tmp/trunc.safetensors"
expect_fail "truncated checkpoint" "trunc.safetensors" "$nsvq" eval -m "$tmp/trunc.safetensors"
printf 'garbage' >"$tmp/garbage.safetensors"
expect_fail "garbage checkpoint" "garbage.safetensors" "$nsvq" info -m "$tmp/garbage.safetensors"
expect_fail "missing checkpoint" "cannot open" "$nsvq" tokenize -m "$tmp/none.safetensors" "$tmp/img/00000.png" -o "$tmp/x.nsvqt"
head -c 40 "$tmp/t.nsvqt" >"$tmp/bad.nsvqt"
expect_fail "truncated token file" "bad.nsvqt" "$nsvq" decode -m "$M" "$tmp/bad.nsvqt" -o "$tmp/dec2"
check "no output for a bad token file" test ! -e "$tmp/dec2"
expect_fail "token file of another model" "uses 8x8 over K=32" "$nsvq" decode -m "$tmp/q-vq/checkpoint.safetensors" "$tmp/t.nsvqt" -o "$tmp/dec3"
printf 'not a png' >"$tmp/bad.png"
expect_fail "corrupt image" "bad.png" "$nsvq" tokenize -m "$M" "$tmp/bad.png" -o "$tmp/y.nsvqt"
check "no token file for a corrupt image" test ! -e "$tmp/y.nsvqt"
expect_fail "recon png is the wrong size" "the model takes 32x32" "$nsvq" reconstruct -m "$M" "$tmp/q-nsvq/recon.png" -o "$tmp/r.png"
expect_fail "existing run" "already holds a run" "$nsvq" $T --out "$tmp/a"
expect_fail "resume nothing" "no checkpoint" "$nsvq" train --resume --out "$tmp/empty"
expect_fail "resume with another lr and codes" "started with other values: --codes 32 (stored: 64), --lr 1 (stored: 0.0002)" \
  "$nsvq" train --resume --out "$tmp/a" --lr 1 --codes 32
expect_fail "resume beyond steps" "beyond --steps" "$nsvq" train --resume --out "$tmp/a" --steps 10
expect_fail "unknown quantizer" "unknown quantizer" "$nsvq" train --quantizer pq --out "$tmp/pq"
expect_fail "unknown preset" "unknown preset" "$nsvq" train --preset mnist
expect_fail "cifar10 without data" "needs --data" "$nsvq" train --preset cifar10 --out "$tmp/c"
expect_fail "missing dataset" "nowhere" "$nsvq" train --data cifar10:/nowhere --out "$tmp/c2"
expect_fail "bad switch" "expects on or off" "$nsvq" train --replace maybe --out "$tmp/c3"
expect_fail "unknown flag" "unknown option" "$nsvq" train --bogus 1
cp "$M" "$tmp/copy.safetensors"
sed 's/codes\\": 64/codes\\": 6x/' "$tmp/copy.safetensors" >"$tmp/copy2.safetensors"
check "config edited" test "$(cmp "$tmp/copy.safetensors" "$tmp/copy2.safetensors" | wc -l)" -eq 1
expect_fail "corrupt config" "copy2.safetensors: config" "$nsvq" info -m "$tmp/copy2.safetensors"

echo "cli_train: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

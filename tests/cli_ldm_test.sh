#!/usr/bin/env bash
# tests/cli_ldm_test.sh — latent diffusion end to end through the command line, kept small: a tiny
# tokenizer, ldm-train on 300 Fashion-MNIST latents (the loss falls; stopped, resumed and compared
# with an uninterrupted run bit for bit), the latent cache reused for the same tokenizer and rebuilt
# for another, sample (deterministic under a seed, one row per class), eval-gen, and a one-line
# error with a non-zero exit for every bad input.
# Usage: cli_ldm_test.sh NSVQ
set -u
nsvq=${1:?usage: cli_ldm_test.sh path/to/nsvq}
. "$(dirname "$0")/cli_lib.sh"
export OMP_WAIT_POLICY=passive

for k in a b; do  # two different tokenizers (seeds)
  run_ok "tokenizer $k" "$nsvq" train --preset quickstart -q --batch 8 --steps 4 --codes 32 --eval-n 0 --drift-every 100 --probe 16 \
    --seed $([ $k = a ] && echo 0 || echo 1) --out "$tmp/tok-$k"
done
TA=$tmp/tok-a/checkpoint.safetensors TB=$tmp/tok-b/checkpoint.safetensors
L="ldm-train --n-train 300 --batch 16 --steps 40 --log-every 10 --ckpt-every 15 --preview 1 -q"  # the default lr

# ---- training learns, resume is bitwise exact
run_ok "ldm-train" "$nsvq" $L -m "$TA" --out "$tmp/l1"
first=$(grep -o '"loss": [0-9.e-]*' "$tmp/l1/metrics.jsonl" | head -1 | cut -d' ' -f2)
last=$(grep -o '"loss": [0-9.e-]*' "$tmp/l1/metrics.jsonl" | tail -1 | cut -d' ' -f2)
check "loss falls ($first -> $last)" awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a) }'
for f in checkpoint.safetensors latents.safetensors.zst samples.png metrics.jsonl; do check "output $f" test -s "$tmp/l1/$f"; done
# the defaults are docs/ldm.md's: lr 1e-3 (a command-line default of 1e-4 once left samples at chance)
check "default lr 1e-3 in the stored config" grep -q '"lr": 0.001,' "$tmp/l1/metrics.jsonl"
expect_ok "--help shows the default lr" "(default 0.001)" "$nsvq" ldm-train --help
# --ckpt-every keeps each periodic checkpoint for evaluation part-way
for s in 15 30; do check "checkpoint-$s kept" test -s "$tmp/l1/checkpoint-$s.safetensors"; done
check "no snapshot off the period" test ! -e "$tmp/l1/checkpoint-40.safetensors"
run_ok "ldm-train stopped" "$nsvq" $L -m "$TA" --out "$tmp/l2" --stop-after 17
run_ok "ldm-train resumed" "$nsvq" ldm-train --resume -q --out "$tmp/l2" --preview 0
check "--preview 0 draws no samples" test ! -e "$tmp/l2/samples.png"
check "resume is bitwise exact" cmp -s "$tmp/l1/checkpoint.safetensors" "$tmp/l2/checkpoint.safetensors"
check "metrics identical but timing" diff <(sed 's/"ms_per_step.*//' "$tmp/l1/metrics.jsonl") \
  <(sed 's/"ms_per_step.*//' "$tmp/l2/metrics.jsonl")
check "the snapshots of a resumed run are those of an uninterrupted one" cmp -s "$tmp/l1/checkpoint-30.safetensors" "$tmp/l2/checkpoint-30.safetensors"
run_ok "continue to more steps" "$nsvq" ldm-train --resume -q --out "$tmp/l2" --steps 45 --preview 0

# ---- the latent cache: reused for the same tokenizer, rebuilt for another
mkdir -p "$tmp/l3"
cp "$tmp/l1/latents.safetensors.zst" "$tmp/l3/"
expect_ok "cache reused" "(reused)" "$nsvq" ldm-train --n-train 300 --batch 16 --steps 1 -m "$TA" --out "$tmp/l3" --preview 0
rm -f "$tmp/l3/checkpoint.safetensors"
expect_ok "cache rebuilt for another tokenizer" "re-encoding" "$nsvq" ldm-train --n-train 300 --batch 16 --steps 1 -m "$TB" --out "$tmp/l3" --preview 0
check "cache rewritten" test "$(cmp "$tmp/l1/latents.safetensors.zst" "$tmp/l3/latents.safetensors.zst" | wc -l)" -eq 1

# ---- sampling
M=$tmp/l1/checkpoint.safetensors
expect_ok "sample" "30 images (10 classes x 3" "$nsvq" sample -m "$M" --n 3 --steps 5 --seed 7 -o "$tmp/s1.png"
run_ok "sample again" "$nsvq" sample -m "$M" --n 3 --steps 5 --seed 7 -o "$tmp/s2.png"
check "sampling is deterministic" cmp -s "$tmp/s1.png" "$tmp/s2.png"
run_ok "another seed" "$nsvq" sample -m "$M" --n 3 --steps 5 --seed 8 -o "$tmp/s3.png"
check "another seed differs" test "$(cmp "$tmp/s1.png" "$tmp/s3.png" | wc -l)" -eq 1
expect_ok "one class, no guidance" "3 images (1 class x 3" "$nsvq" sample -m "$M" --class 4 --n 3 --steps 5 --cfg 1 -o "$tmp/s4.png"
# a narrow fd-net (width 8: a sixteenth of the default's conv work; 0.81 test accuracy) on a fifth of the data is enough to test
# the plumbing
run_ok "fd-net" "$nsvq" fd-net train --epochs 2 --n-train 12000 --lr 0.004 --width 8 --feature-dim 32 -o "$tmp/fd.safetensors"
expect_ok "eval-gen" '"class_acc_guided"' "$nsvq" eval-gen -m "$M" --fd-net "$tmp/fd.safetensors" --n 20 --steps 3 --json
acc=$(grep -o '"class_acc_test": [0-9.]*' "$tmp/out" | cut -d' ' -f2)
check "the fd-net classifies the test images it is given ($acc)" awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 0.6) }'
expect_ok "eval-gen of a kept checkpoint" '"ldm_step": 15,' "$nsvq" eval-gen -m "$tmp/l1/checkpoint-15.safetensors" \
  --fd-net "$tmp/fd.safetensors" --n 20 --steps 3 --json

# ---- the generation table in miniature (tools/experiments/gen_table.sh): two tokenizers of a table folder
for q in nsvq vq; do
  run_ok "table tokenizer $q" "$nsvq" train --preset quickstart -q --batch 8 --steps 4 --codes 32 --eval-n 20 --drift-every 100 --probe 16 \
    --quantizer $q --out "$tmp/gt/$q-K32-s0"
done
cp "$tmp/fd.safetensors" "$tmp/gt/fdnet.safetensors"
G="$(dirname "$0")/../tools/experiments/gen_table.sh --nsvq $nsvq --table $tmp/gt --codes 32 --quantizers"
expect_ok "generation table" "| vq | " $G "nsvq vq" --steps 6 --n 20 --grid 1 -- --n-train 300 --batch 16 --log-every 2
for f in table.md samples-nsvq.png samples-raw-vq.png nsvq/eval-gen-ema.json vq/eval-gen-raw.json; do check "gen table $f" test -s "$tmp/gt/gen-K32/$f"; done
check "gen table class accuracy" grep -q '% |$' "$tmp/gt/gen-K32/table.md"
expect_fail "generation table: bad --grid" "--grid must be a positive integer" $G "nsvq" --grid 0
expect_fail "generation table without a table" "no finished tokenizer run" $G "simvq" --steps 6 --n 20

# ---- bad input: one line, non-zero exit
expect_fail "no tokenizer" "-m CKPT" "$nsvq" ldm-train --out "$tmp/x1"
expect_fail "existing run" "already holds a run" "$nsvq" $L -m "$TA" --out "$tmp/l1"
expect_fail "resume nothing" "no checkpoint" "$nsvq" ldm-train --resume --out "$tmp/none"
expect_fail "resume with another lr" "cannot be given" "$nsvq" ldm-train --resume --out "$tmp/l1" --lr 1
expect_fail "resume beyond steps" "beyond --steps" "$nsvq" ldm-train --resume --out "$tmp/l1" --steps 10
expect_fail "tokenizer is not a checkpoint" "not an nsvq tokenizer" "$nsvq" ldm-train -m "$tmp/l1/latents.safetensors.zst" --out "$tmp/x2"
expect_fail "unknown dit" "unknown preset" "$nsvq" ldm-train -m "$TA" --dit huge --out "$tmp/x3"
expect_fail "bad ema" "--ema" "$nsvq" ldm-train -m "$TA" --ema 1 --out "$tmp/x4"
expect_fail "sample a tokenizer" "not an nsvq latent-diffusion" "$nsvq" sample -m "$TA" -o "$tmp/x.png"
expect_fail "class out of range" "out of range" "$nsvq" sample -m "$M" --class 10 -o "$tmp/x.png"
expect_fail "bad steps" "sampling steps" "$nsvq" sample -m "$M" --steps 0 -o "$tmp/x.png"
check "no grid for bad input" test ! -e "$tmp/x.png"
head -c 100000 "$M" >"$tmp/trunc.safetensors"
expect_fail "truncated checkpoint" "trunc.safetensors" "$nsvq" sample -m "$tmp/trunc.safetensors" -o "$tmp/x.png"
expect_fail "eval-gen without fd-net" "--fd-net" "$nsvq" eval-gen -m "$M" --n 20
expect_fail "eval-gen n not a multiple" "multiple of 10" "$nsvq" eval-gen -m "$M" --fd-net "$tmp/fd.safetensors" --n 25

echo "cli_ldm: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

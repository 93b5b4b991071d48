#!/usr/bin/env bash
# tools/experiments/gen_table.sh — the generation table of issue #7: the same class-conditional DiT
# (tier 1) trained on the latents of each tokenizer of a comparison table (tools/experiments/table.sh),
# then `nsvq eval-gen` (fd_proxy and fd-net class accuracy of class-balanced samples, with and without
# guidance) against the table's fd-net, with the weight EMA and with the trained weights; writes
# OUT/table.md, OUT/samples-<quantizer>.png (EMA) and OUT/samples-raw-<quantizer>.png.
# Resumable: a run with samples.png has finished training, one with eval-gen-{ema,raw}.json has been
# evaluated, one with a checkpoint is resumed.
#   tools/experiments/gen_table.sh --table DIR [--codes K] [--quantizers "nsvq simvq vq"] [--seed S]
#                                  [--dit-seed S] [--weights "ema raw"] [--steps N] [--n N] [--out DIR]
#                                  [--grid G] [--nsvq BIN] [-t THREADS] [-- ldm-train options...]
# Defaults: K 1024, quantizers nsvq simvq vq, tokenizer seed 0, DiT seed 0, both weights, 10,000 steps,
# 2,000 samples, 8 samples per class in the grids (--grid), out DIR/gen-K<K> (DIR/gen-K<K>-d<S> for another
# DiT seed), all cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
TABLE="" K=1024 QUANTS="nsvq simvq vq" SEED=0 DSEED=0 WEIGHTS="ema raw" STEPS=10000 N=2000 OUT="" BIN=build/bin/nsvq THREADS=0
GRID=8
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --table) TABLE=$2; shift 2 ;;
    --codes) K=$2; shift 2 ;;
    --quantizers) QUANTS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --dit-seed) DSEED=$2; shift 2 ;;
    --weights) WEIGHTS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --n) N=$2; shift 2 ;;
    --grid) GRID=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --nsvq) BIN=$2; shift 2 ;;
    -t) THREADS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "gen_table.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$TABLE" ] || { echo "gen_table.sh: give the comparison table's folder with --table DIR" >&2; exit 2; }
[[ "$GRID" =~ ^[1-9][0-9]*$ ]] || { echo "gen_table.sh: --grid must be a positive integer" >&2; exit 2; }
[ -x "$BIN" ] || { echo "gen_table.sh: $BIN not found: build first (tools/setup.sh)" >&2; exit 1; }
FD=$TABLE/fdnet.safetensors
[ -f "$FD" ] || { echo "gen_table.sh: $FD not found (tools/experiments/table.sh trains it)" >&2; exit 1; }
for W in $WEIGHTS; do
  [ "$W" = ema ] || [ "$W" = raw ] || { echo "gen_table.sh: --weights takes ema and/or raw, not $W" >&2; exit 2; }
done
[ "$DSEED" = 0 ] && OUT=${OUT:-$TABLE/gen-K$K} || OUT=${OUT:-$TABLE/gen-K$K-d$DSEED}
mkdir -p "$OUT"
# field FILE KEY [SCALE] [FORMAT]: the number KEY of a one-line JSON file, times SCALE, printed with FORMAT; n/a when absent
field() {
  grep -o "\"$2\": [-0-9.e+]*" "$1" | head -1 | awk -v m="${3:-1}" -v f="${4:-%.3f}" '{ printf f, m * $2; ok = 1 }
    END { if (!ok) printf "n/a" }'
}
for Q in $QUANTS; do
  TOK=$TABLE/$Q-K$K-s$SEED
  [ -f "$TOK/checkpoint.safetensors" ] && [ -f "$TOK/eval.json" ] ||
    { echo "gen_table.sh: $TOK has no finished tokenizer run" >&2; exit 1; }
  R=$OUT/$Q
  if [ ! -f "$R/samples.png" ]; then
    if [ -f "$R/checkpoint.safetensors" ]; then
      echo "gen_table.sh: resuming $R"
      "$BIN" ldm-train --resume -o "$R" --steps "$STEPS" --preview "$GRID" -t "$THREADS" -q
    else
      echo "gen_table.sh: $R ($(date -u +%H:%M:%S))"
      rm -rf "$R"
      "$BIN" ldm-train -m "$TOK/checkpoint.safetensors" -o "$R" --steps "$STEPS" --seed "$DSEED" --preview "$GRID" \
        -t "$THREADS" -q \
        "${EXTRA[@]}"
    fi
  fi
  for W in $WEIGHTS; do  # the weight EMA (what samples.png shows) and the trained weights
    J=$R/eval-gen-$W.json RAW=()
    [ $W = raw ] && RAW=(--raw-weights)
    if [ ! -f "$J" ]; then
      "$BIN" eval-gen -m "$R/checkpoint.safetensors" --fd-net "$FD" --n "$N" -t "$THREADS" --json "${RAW[@]}" >"$J.tmp"
      mv "$J.tmp" "$J"
    fi
  done
  cp "$R/samples.png" "$OUT/samples-$Q.png"
  [ -f "$OUT/samples-raw-$Q.png" ] ||
    "$BIN" sample -m "$R/checkpoint.safetensors" --all-classes --n "$GRID" --raw-weights -t "$THREADS" -o "$OUT/samples-raw-$Q.png" >/dev/null
done
{
  echo "| tokenizer | codes used | recon. PSNR | recon. fd_proxy | DiT loss (last 500 steps) | weights | gen. fd_proxy (cfg 1.5) | gen. fd_proxy (no guidance) | class acc. (cfg 1.5) | class acc. (no guidance) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for Q in $QUANTS; do
    T=$TABLE/$Q-K$K-s$SEED/eval.json
    loss=$(grep '"loss"' "$OUT/$Q/metrics.jsonl" | tail -10 | sed -E 's/.*"loss": ([-0-9.e+]+).*/\1/' |
      awk '{ s += $1; n++ } END { printf "%.4f", s / n }')
    for W in $WEIGHTS; do
      G=$OUT/$Q/eval-gen-$W.json
      echo "| $Q | $(field "$T" utilization 100 %.1f%%) | $(field "$T" psnr 1 %.2f) | $(field "$T" fd_proxy) | $loss | $W |" \
        "$(field "$G" fd_proxy_guided) | $(field "$G" fd_proxy_unguided) | $(field "$G" class_acc_guided 100 %.1f%%) |" \
        "$(field "$G" class_acc_unguided 100 %.1f%%) |"
    done
  done
  G=$OUT/$(set -- $QUANTS; echo "$1")/eval-gen-$(set -- $WEIGHTS; echo "$1").json
  echo
  echo "fd-net class accuracy on the $N test images: $(field "$G" class_acc_test 100 %.1f%%)."
} >"$OUT/table.md"
cat "$OUT/table.md"

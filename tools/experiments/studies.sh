#!/usr/bin/env bash
# tools/experiments/studies.sh — the three studies of issue #6 beside the comparison table: the
# encoder-drift stress test (every quantizer at encoder learning-rate multipliers m), the NSVQ
# sensitivity sweep (λ, τ decay, freeze point S1, replacement threshold T; method.md §3.6) and the
# ablation of NSVQ's parts (dense loss only, + replacement, + freezing, + modified STE), plus extra
# seeds of the m = 1 runs. All runs share one autoencoder, step count, K and evaluation; the NSVQ
# schedule is scaled to the step count (τ period S1/10, replacement window steps/10). Runs go
# through a queue of --jobs parallel trainers (each with OMP_NUM_THREADS = cores / jobs); the
# default NSVQ run (m = 1, seed 0) is shared by all three studies. Resumable like table.sh: a run
# with eval.json is kept, one with a checkpoint is resumed. Then `nsvq report --by` writes one
# report per study into OUT/report-<study>.
#   tools/experiments/studies.sh [--preset fmnist|cifar10] [--data SPEC] [--steps N] [--codes K] [--eval-n N]
#                                [--studies "stress ablation sensitivity seeds"] [--m "0.5 1 2 4 8"]
#                                [--quantizers "vq vq-l2 ema simvq nsvq"] [--seeds "1 2"] [--seed-quantizers Q]
#                                [--lambdas "0.001 0.003 0.03 0.1"] [--tau-decays "0.1 0.3 0.8"]
#                                [--stage1-pcts "25 75"] [--thresholds "2 8"] [--jobs J]
#                                [--out DIR] [--nsvq BIN] [--no-fd-net] [--list] [-- extra train options...]
# Defaults: fmnist, 500 steps, K = 1024, 2,000 test images, every study, 2 jobs, out runs/studies-<preset>;
# the sensitivity values are method.md §3.6's besides the defaults (λ 0.01, r 0.5, S1 50%, T 1), which
# are the shared default run. --quantizers applies to the stress test, --seed-quantizers (default: the
# same) to the extra seeds. --list prints the runs (folder and options) without training.
set -euo pipefail
cd "$(dirname "$0")/../.."
PRESET=fmnist DATA="" STEPS=500 K=1024 EVALN=2000 STUDIES="stress ablation sensitivity seeds" MS="0.5 1 2 4 8"
SEEDS="1 2" JOBS=2 OUT="" BIN=build/bin/nsvq FDNET=1 LIST=0 QUANTS="vq vq-l2 ema simvq nsvq" EXTRA="" SQUANTS=""
LAMBDAS="0.001 0.003 0.03 0.1" TAUS="0.1 0.3 0.8" S1PCTS="25 75" THRESHOLDS="2 8"
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --codes) K=$2; shift 2 ;;
    --eval-n) EVALN=$2; shift 2 ;;
    --studies) STUDIES=$2; shift 2 ;;
    --m) MS=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --quantizers) QUANTS=$2; shift 2 ;;
    --seed-quantizers) SQUANTS=$2; shift 2 ;;
    --lambdas) LAMBDAS=$2; shift 2 ;;
    --tau-decays) TAUS=$2; shift 2 ;;
    --stage1-pcts) S1PCTS=$2; shift 2 ;;
    --thresholds) THRESHOLDS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --nsvq) BIN=$2; shift 2 ;;
    --no-fd-net) FDNET=0; shift ;;
    --list) LIST=1; shift ;;
    --) shift; EXTRA="$*"; break ;;
    *) echo "studies.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$STEPS" =~ ^[0-9]+$ && "$STEPS" -ge 10 ]] || { echo "studies.sh: --steps must be an integer >= 10" >&2; exit 2; }
[[ "$JOBS" =~ ^[0-9]+$ && "$JOBS" -ge 1 ]] || { echo "studies.sh: --jobs must be an integer >= 1" >&2; exit 2; }
for s in $STUDIES; do
  case "$s" in stress | ablation | sensitivity | seeds) ;; *) echo "studies.sh: unknown study '$s'" >&2; exit 2 ;; esac
done
[ -x "$BIN" ] || { echo "studies.sh: $BIN not found: build first (tools/setup.sh)" >&2; exit 1; }
OUT=${OUT:-runs/studies-$PRESET}
[ -n "$DATA" ] || case "$PRESET" in fmnist | quickstart) DATA=fmnist ;; esac
[ -n "$DATA" ] || { echo "studies.sh: --data is needed for preset $PRESET (e.g. cifar10:DIR)" >&2; exit 2; }
has() { [[ " $STUDIES " == *" $1 "* ]]; }

S1=$((STEPS / 2)) WIN=$(((STEPS + 9) / 10)) LOG=$(((STEPS + 19) / 20))
COMMON="--preset $PRESET --data $DATA --codes $K --steps $STEPS --eval-n $EVALN --tau-period -1 --replace-window $WIN"
COMMON+=" --log-every $LOG --drift-every $LOG -q $EXTRA"

# the job list: "FOLDER OPTIONS..." per line, the shared default NSVQ run first
JOBLIST=()
job() { JOBLIST+=("$OUT/$1 $COMMON ${*:2}"); }
DEFAULT=stress/nsvq-m1-s0
job $DEFAULT --quantizer nsvq --encoder-lr-mult 1 --seed 0
if has stress; then
  for m in $MS; do
    for q in $QUANTS; do
      [ "stress/$q-m$m-s0" = $DEFAULT ] || job "stress/$q-m$m-s0" --quantizer $q --encoder-lr-mult "$m" --seed 0
    done
  done
fi
if has ablation; then
  # parts are added in the order of the issue; the full method is the default run
  job ablation/dense --quantizer nsvq --replace off --stage1 "$STEPS" --modified-ste off --seed 0
  job ablation/dense+replace --quantizer nsvq --stage1 "$STEPS" --modified-ste off --seed 0
  job ablation/dense+replace+freeze --quantizer nsvq --modified-ste off --seed 0
  # vanilla VQ as the reference row, unless the stress test already has it
  printf '%s\n' "${JOBLIST[@]}" | grep -q "^$OUT/stress/vq-m1-s0 " ||
    job stress/vq-m1-s0 --quantizer vq --encoder-lr-mult 1 --seed 0
fi
if has sensitivity; then
  for v in $LAMBDAS; do job "sensitivity/lambda-$v" --quantizer nsvq --lambda "$v" --seed 0; done
  for v in $TAUS; do job "sensitivity/tau-decay-$v" --quantizer nsvq --tau-decay "$v" --seed 0; done
  for p in $S1PCTS; do
    v=$((STEPS * p / 100))
    job "sensitivity/stage1-$v" --quantizer nsvq --stage1 "$v" --seed 0
  done
  for v in $THRESHOLDS; do job "sensitivity/replace-threshold-$v" --quantizer nsvq --replace-threshold "$v" --seed 0; done
fi
if has seeds; then
  for s in $SEEDS; do
    for q in ${SQUANTS:-$QUANTS}; do job "stress/$q-m1-s$s" --quantizer $q --encoder-lr-mult 1 --seed "$s"; done
  done
fi
if [ "$LIST" = 1 ]; then printf '%s\n' "${JOBLIST[@]}"; exit 0; fi

mkdir -p "$OUT"
FDOPT=""
if [ "$FDNET" = 1 ]; then
  FD=$OUT/fdnet.safetensors
  if [ ! -f "$FD" ]; then
    echo "studies.sh: training the fd-net -> $FD"
    "$BIN" fd-net train --data "$DATA" -o "$FD" >"$OUT/fdnet.log" 2>&1 || { cat "$OUT/fdnet.log" >&2; exit 1; }
  fi
  FDOPT="--fd-net $FD"
fi

# one queued run: kept when evaluated, resumed from its checkpoint, or trained afresh (log in FOLDER.log)
run_one() {
  local dir=${1%% *} opts=${1#* }
  if [ -f "$dir/eval.json" ]; then echo "studies.sh: $dir done"; return 0; fi
  mkdir -p "$(dirname "$dir")"
  if [ -f "$dir/checkpoint.safetensors" ]; then
    echo "studies.sh: resuming $dir"
    # shellcheck disable=SC2086
    "$BIN" train --resume -o "$dir" --steps "$STEPS" $FDOPT -q >>"$dir.log" 2>&1
  else
    echo "studies.sh: $dir ($(date -u +%H:%M:%S))"
    rm -rf "$dir"
    # shellcheck disable=SC2086
    "$BIN" train $opts $FDOPT -o "$dir" >"$dir.log" 2>&1
  fi || { echo "studies.sh: $dir failed:" >&2; tail -3 "$dir.log" >&2; return 1; }
}
export -f run_one
export BIN STEPS FDOPT
NT=$(( $(nproc) / JOBS )); [ "$NT" -ge 1 ] || NT=1
printf '%s\n' "${JOBLIST[@]}" | OMP_NUM_THREADS=$NT xargs -d '\n' -P "$JOBS" -n 1 bash -c 'run_one "$1"' _

# the reports: one per study, rows told apart by the options the study varies
R="$BIN report -q --by"
if has stress || has seeds; then $R encoder-lr-mult -o "$OUT/report-stress" "$OUT"/stress/*-s*[0-9]; fi
if has ablation; then
  $R dense-loss,replace,stage1,modified-ste -o "$OUT/report-ablation" "$OUT/stress/vq-m1-s0" "$OUT"/ablation/{dense,dense+replace,dense+replace+freeze} "$OUT/$DEFAULT"
fi
if has sensitivity; then
  for f in lambda tau-decay stage1 replace-threshold; do
    # a sweep given no values (e.g. --stage1-pcts '') and never run into OUT has no report
    mapfile -t SWEEP < <(compgen -G "$OUT/sensitivity/$f-*[0-9]" || true)
    [ "${#SWEEP[@]}" -gt 0 ] || continue
    $R "$f" -o "$OUT/report-sensitivity-$f" "$OUT/$DEFAULT" "${SWEEP[@]}"
  done
fi

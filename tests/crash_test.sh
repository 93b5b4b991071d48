#!/usr/bin/env bash
# tests/crash_test.sh — crash consistency. (1) A training run SIGKILLed at random moments (a checkpoint
# every step, so many kills land inside a checkpoint write) and resumed after each kill always resumes,
# and its final checkpoint and metrics equal an uninterrupted run's bit for bit. (2) A full disk
# (RLIMIT_FSIZE, with SIGXFSZ ignored so that writes fail with EFBIG as on a full file system) while
# writing a checkpoint, a token file and an export: one error line, a non-zero exit, the previous
# file intact and loadable, no partial file left in its place or beside it.
# Usage: crash_test.sh NSVQ [KILLS]     (KILLS: how many kills at the least, default 8)
set -u
nsvq=${1:?usage: crash_test.sh NSVQ [KILLS]} want=${2:-8}
. "$(dirname "$0")/cli_lib.sh"
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
T="train --preset quickstart -q --steps 40 --batch 8 --codes 32 --eval-n 0 --drift-every 10 --probe 16 --log-every 2 --ckpt-every 1"

# ---- (1) kill -9 at random moments, resume each time
run_ok "uninterrupted run" "$nsvq" $T --out "$tmp/ref"
K=$tmp/killed kills=0 starts=0 done_=0 seed=12345 midwrite=0 at=""
step_of() { head -c 4096 "$K/checkpoint.safetensors" 2>/dev/null | grep -ao '"step":"[0-9]*"' | grep -o '[0-9]*' || echo 0; }
while [ $done_ = 0 ] && [ $starts -lt 100 ]; do
  if [ -e "$K/checkpoint.safetensors" ]; then cmd=(train --resume -q --out "$K"); else rm -rf "$K"; cmd=($T --out "$K"); fi
  last=$(step_of)
  "$nsvq" "${cmd[@]}" >"$tmp/kout" 2>"$tmp/kerr" &
  pid=$!
  starts=$((starts + 1))
  if [ $kills -lt "$want" ]; then
    # let it get past its last checkpoint (start-up takes a while); then every other kill lands a random
    # 0-0.3 s later, the others as soon as the next checkpoint write has begun (its .tmp file exists)
    for _ in $(seq 1 600); do
      [ "$(step_of)" -gt "$last" ] && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.05
    done
    if [ $((kills % 2)) = 0 ]; then
      seed=$(( (seed * 1103515245 + 12345) % 2147483648 ))
      sleep "0.$(printf '%03d' $(( seed % 300 )))"
    else
      for _ in $(seq 1 3000); do
        [ -e "$K/checkpoint.safetensors.tmp" ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.002
      done
    fi
    if kill -9 $pid 2>/dev/null; then
      kills=$((kills + 1))
      ls "$K" 2>/dev/null | grep -q '\.tmp' && midwrite=$((midwrite + 1))  # killed inside a checkpoint write
      at="$at $(step_of)"
    fi
  fi
  wait $pid 2>/dev/null
  rc=$?
  if [ $rc = 0 ]; then
    done_=1
  elif [ $rc != 137 ]; then
    echo "FAIL: a run after $kills kills ended with $rc: $(head -c 300 "$tmp/kerr")"
    fail=$((fail + 1))
    break
  fi
done
check "killed $kills times (at least $want) and finished" test $done_ = 1 -a $kills -ge "$want"
check "the final checkpoint equals the uninterrupted run's" cmp -s "$tmp/ref/checkpoint.safetensors" "$K/checkpoint.safetensors"
check "the metrics equal it too (timing aside)" diff <(sed 's/"ms_per_step.*//' "$tmp/ref/metrics.jsonl") \
  <(sed 's/"ms_per_step.*//' "$K/metrics.jsonl")
check "no temporary files left in the run folder" sh -c "! ls '$K' | grep -q tmp"
# a current checkpoint damaged on disk (no crash can do that: writes are atomic) falls back to the previous one
head -c 100000 "$K/checkpoint.safetensors" >"$tmp/cut" && cp "$tmp/cut" "$K/checkpoint.safetensors"
expect_ok "a damaged checkpoint: resumed from the previous one" "resuming from .*checkpoint.prev.safetensors" \
  "$nsvq" train --resume --out "$K"
check "and the run ends as the uninterrupted one" cmp -s "$tmp/ref/checkpoint.safetensors" "$K/checkpoint.safetensors"
echo "crash: $kills kills in $starts starts, $midwrite inside a checkpoint write; checkpoint steps at the kills:$at"

# ---- (2) a full disk: writes fail past LIMIT KiB (RLIMIT_FSIZE; SIGXFSZ ignored, so write() returns EFBIG)
full() { local kib=$1; shift; (trap '' XFSZ; ulimit -f "$kib"; "$@"); }
# full_fails NAME LIMIT FILE CMD...: one error line, a non-zero exit, FILE as it was, no temporary file
full_fails() {
  local name=$1 kib=$2 file=$3; shift 3
  cp "$file" "$tmp/orig"
  full "$kib" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  check "full disk, $name: fails with one line (rc $rc)" sh -c "[ $rc -ne 0 ] && [ $rc -ne 137 ] && [ \$(wc -l <'$tmp/err') -eq 1 ]"
  check "full disk, $name: the file is the previous one" cmp -s "$file" "$tmp/orig"
  check "full disk, $name: no temporary file beside it" sh -c "! ls '$(dirname "$file")' | grep -q '\.tmp'"
}
C=$tmp/ref/checkpoint.safetensors
run_ok "images" "$nsvq" export-images --n 16 -o "$tmp/img"
full_fails "checkpoint" 1024 "$C" "$nsvq" train --resume -q --out "$tmp/ref" --steps 41
check "full disk, checkpoint: the error names it" grep -q "checkpoint" "$tmp/err"
run_ok "full disk, checkpoint: the previous one still loads" "$nsvq" info -m "$C"
run_ok "full disk, checkpoint: the run resumes once there is room" "$nsvq" train --resume -q --out "$tmp/ref" --steps 41
run_ok "token file" "$nsvq" tokenize -m "$C" "$tmp"/img/*.png -o "$tmp/t.txt"
full_fails "token file" 1 "$tmp/t.txt" "$nsvq" tokenize -m "$C" "$tmp"/img/*.png -o "$tmp/t.txt"
run_ok "export" "$nsvq" export -m "$C" -o "$tmp/e.safetensors"
full_fails "export" 1024 "$tmp/e.safetensors" "$nsvq" export -m "$C" -o "$tmp/e.safetensors"
echo "crash: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

# tests/cli_lib.sh — shared helpers of the CLI test scripts (sourced): counters, a temp folder, and
# expect_fail / expect_ok / run_ok / check; at exit, the steps that took 3 s or more (to keep CI short).
# The sourcing script sets nsvq= first.
pass=0 fail=0
tmp=$(mktemp -d)
slow=""
_t0=0
_start() { _t0=$EPOCHREALTIME; }
_stop() {  # _stop NAME: notes the step when it took 3 s or more
  local d; d=$(awk -v a="$_t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  awk -v d="$d" 'BEGIN { exit !(d >= 3) }' && slow="$slow  ${d}s $1"$'\n'
  return 0
}
trap '[ -n "$slow" ] && printf "slow steps:\n%s" "$slow"; rm -rf "$tmp"' EXIT

# expect_fail NAME PATTERN CMD...: non-zero exit, exactly one stderr line, containing PATTERN
expect_fail() {
  local name=$1 pat=$2; shift 2
  _start; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; _stop "$name"
  local lines; lines=$(wc -l <"$tmp/err")
  if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && grep -q -- "$pat" "$tmp/err"; then pass=$((pass+1))
  else fail=$((fail+1)); echo "FAIL: $name (rc=$rc, stderr lines=$lines): $(head -c 300 "$tmp/err")"; fi
}
# expect_ok NAME PATTERN CMD...: zero exit and stdout containing PATTERN
expect_ok() {
  local name=$1 pat=$2; shift 2
  _start; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; _stop "$name"
  if [ $rc -eq 0 ] && grep -q -- "$pat" "$tmp/out"; then pass=$((pass+1))
  else fail=$((fail+1)); echo "FAIL: $name (rc=$rc): $(head -c 300 "$tmp/out" "$tmp/err")"; fi
}
run_ok() {  # run_ok NAME CMD...: zero exit
  local name=$1; shift
  _start; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; _stop "$name"
  if [ $rc -eq 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $name: $(head -c 300 "$tmp/err")"; fi
}
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $name"; fi
}

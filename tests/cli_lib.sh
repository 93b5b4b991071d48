# tests/cli_lib.sh — shared helpers of the CLI test scripts (sourced): counters, a temp folder, and
# expect_fail / expect_ok / run_ok / check. The sourcing script sets nsvq= first.
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect_fail NAME PATTERN CMD...: non-zero exit, exactly one stderr line, containing PATTERN
expect_fail() {
  local name=$1 pat=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  local lines; lines=$(wc -l <"$tmp/err")
  if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && grep -q -- "$pat" "$tmp/err"; then pass=$((pass+1))
  else fail=$((fail+1)); echo "FAIL: $name (rc=$rc, stderr lines=$lines): $(head -c 300 "$tmp/err")"; fi
}
# expect_ok NAME PATTERN CMD...: zero exit and stdout containing PATTERN
expect_ok() {
  local name=$1 pat=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ $rc -eq 0 ] && grep -q -- "$pat" "$tmp/out"; then pass=$((pass+1))
  else fail=$((fail+1)); echo "FAIL: $name (rc=$rc): $(head -c 300 "$tmp/out" "$tmp/err")"; fi
}
run_ok() {  # run_ok NAME CMD...: zero exit
  local name=$1; shift
  if "$@" >"$tmp/out" 2>"$tmp/err"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $name: $(head -c 300 "$tmp/err")"; fi
}
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $name"; fi
}

# lib.sh -- the shared prelude of the CLI test scripts that count checks
# (sourced by tests/cli_run.sh and tests/cli_theory.sh): the binary and
# Python under test, a scratch directory removed on exit, the pass/fail
# counters and the common expectations.  Environment: RB_BIN (default
# bin/repbench), PYTHON (default /usr/bin/python3).
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }
expect_status() { # want cmd...
  local want=$1; shift
  "$@" >"$T/out" 2>"$T/err"; local got=$?
  if [ "$got" = "$want" ]; then ok; else bad "exit $got (want $want): $* :: $(head -c 300 "$T/err")"; fi
}
one_line() { [ "$(wc -l <"$T/err")" = 1 ] && ok || bad "stderr is not one line: $(cat "$T/err")"; }
# The count line, and the exit status: 0 only when nothing failed.
finish() { echo "$pass passed, $fail failed"; exit $((fail > 0)); }

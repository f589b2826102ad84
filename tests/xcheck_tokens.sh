#!/usr/bin/env bash
# xcheck_tokens.sh -- MP-lite features (moment_probe) and the DINO inputs
# (dino_linear) against NumPy (tests/xcheck_tokens.py).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
make -s --no-print-directory build/tests/test_tokens >/dev/null || { echo "FAIL: build/tests/test_tokens"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RB_BIN=$RB DRIVER=build/tests/test_tokens "$PY" "$(dirname "$0")/xcheck_tokens.py" "$T"

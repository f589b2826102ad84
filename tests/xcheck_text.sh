#!/usr/bin/env bash
# xcheck_text.sh -- zeroshot and retrieval against NumPy (tests/xcheck_text.py).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RB_BIN=$RB "$PY" "$(dirname "$0")/xcheck_text.py" "$T"

#!/usr/bin/env bash
# xcheck_gen.sh -- gen gmm's optional arrays (tests/xcheck_gen.py).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RB_BIN=$RB "$PY" "$(dirname "$0")/xcheck_gen.py" "$T"

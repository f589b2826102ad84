#!/usr/bin/env bash
# xcheck_distshift.sh -- dist_shift (js_div, mmd2) and calib_more (brier,
# ece_adaptive) against NumPy/SciPy (tests/xcheck_distshift.py).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RB_BIN=$RB "$PY" "$(dirname "$0")/xcheck_distshift.py" "$T"

#!/usr/bin/env bash
# xcheck_layer_order.sh -- layer order against layer width on dumps shaped
# like real networks' (issue 10): every depth order x distinct/equal widths x
# every way a writer states the order, against scikit-learn's GaussianNB and
# a NumPy CKA on the named datasets (see tests/xcheck_layer_order.py).
# Needs RB_BIN and PYTHON (make xcheck).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$PY" "$(dirname "$0")/xcheck_layer_order.py" "$RB" "$T"

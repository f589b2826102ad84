#!/bin/bash
# xcheck_weights.sh -- runs tests/xcheck_weights.py (repbench weights vs
# NumPy/SciPy/scikit-learn) in a temporary directory.
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
W=$(mktemp -d /tmp/rb_xcheck_weights.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$PY" "$(dirname "$0")/xcheck_weights.py" "$RB" "$W"

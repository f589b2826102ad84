#!/usr/bin/env bash
# xcheck_lrknn.sh -- logreg and knn against Debian's scikit-learn on digits,
# wine, breast_cancer and a synthetic dump (details in xcheck_lrknn.py).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$PY" "$(dirname "$0")/xcheck_lrknn.py" "$RB" "$T"

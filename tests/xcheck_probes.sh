#!/usr/bin/env bash
# xcheck_probes.sh -- gnb, nb_pooled, lda, ncm and ridge against Debian's
# scikit-learn on digits, wine, breast_cancer and synthetic Gaussian dumps
# (see tests/xcheck_probes.py).  Needs RB_BIN and PYTHON (make xcheck).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RB_BIN=$RB "$PY" "$(dirname "$0")/xcheck_probes.py" "$T"

#!/usr/bin/env bash
# xcheck_posthoc.sh -- ood_posthoc / ood_logits_posthoc (metrics/posthoc.c)
# against NumPy/SciPy/scikit-learn re-implementations of OpenOOD's
# postprocessors (tests/xcheck_posthoc.py).  Needs RB_BIN and PYTHON.
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
make -s --no-print-directory build/tests/test_posthoc >/dev/null || { echo "FAIL: build/tests/test_posthoc"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RB_BIN=$RB DRIVER=build/tests/test_posthoc "$PY" "$(dirname "$0")/xcheck_posthoc.py" "$T"

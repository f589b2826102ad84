#!/usr/bin/env bash
# xcheck_ood.sh -- ood_maha, ood_gauss (full, NPCA, chi2 rows), ood_knn,
# ood_energy and ood_msp and their AUROC / AUPR / FPR@95 rows against
# Debian's scikit-learn and SciPy on a synthetic h5py dump (see
# tests/xcheck_ood.py).  Needs RB_BIN and PYTHON (make xcheck).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RB_BIN=$RB "$PY" "$(dirname "$0")/xcheck_ood.py" "$T"

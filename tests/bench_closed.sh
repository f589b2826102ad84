#!/usr/bin/env bash
# bench_closed.sh -- `make bench` for gnb, nb_pooled, lda, ncm, ridge against
# scikit-learn (details in bench_closed.py).  Never part of `make test`.
# BENCH_DIMS, BENCH_NTRAIN, BENCH_NTEST, BENCH_CLASSES override the sizes;
# BENCH_DIR keeps the dumps (default: a temporary directory).
set -eu
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
if [ -n "${BENCH_DIR:-}" ]; then W=$BENCH_DIR; mkdir -p "$W"; else W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; fi
"$PY" "$(dirname "$0")/bench_closed.py" "$RB" "$W" --dims "${BENCH_DIMS:-512,2048}" \
  --n-train "${BENCH_NTRAIN:-50000}" --n-test "${BENCH_NTEST:-10000}" --classes "${BENCH_CLASSES:-100}"

#!/usr/bin/env bash
# xcheck_groups.sh -- worst_group_acc / mean_group_acc of every probe, and
# the reader's refusals of bad /groups and /text_pairs (tests/xcheck_groups.py).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RB_BIN=$RB "$PY" "$(dirname "$0")/xcheck_groups.py" "$T"

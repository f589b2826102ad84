#!/usr/bin/env bash
# xcheck_export.sh -- datasets/export_torch.py (PyTorch -> feature and weight
# dumps) against a direct forward pass and the state_dict, read back by
# repbench inspect/run/weights (see tests/xcheck_export.py).  Needs torch:
# fails, not skips, without it.  Environment: RB_BIN, PYTHON (make xcheck).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$PY" "$(dirname "$0")/xcheck_export.py" "$RB" "$T"

#!/usr/bin/env bash
# xcheck_geometry.sh -- collapse, spectrum, similarity and idim from the
# command line against NumPy/SciPy on a synthetic dump (1e-6 relative), and
# the designed depth trend of NC1 on the built-in GMM sample.
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
$PY "$HERE/xcheck_geometry.py" make "$T/x.h5" || { echo "FAIL: cannot write the synthetic dump"; echo "0 passed, 1 failed"; exit 1; }
if ! $RB run --methods collapse,spectrum,similarity,idim --head /head/W,/head/b --sim-max-n 1000 \
        -o "$T/out" "$T/x.h5" 2>"$T/err"; then
  echo "FAIL: repbench run: $(head -c 400 "$T/err")"; echo "0 passed, 1 failed"; exit 1
fi
# The head is given only for layer l3 (shape C x 12); on l1/l2 collapse
# refuses that head, so run those layers again with the default head (the
# logreg probe fitted on train): the head-free statistics must not change.
$RB run --methods collapse --layers l1,l2,l4 -o "$T/out2" "$T/x.h5" 2>>"$T/err" || fail=1
grep -q "head=logreg" "$T/out2/results.csv" || { echo "FAIL: no logreg head rows"; fail=1; }
tail -n +2 "$T/out2/results.csv" >> "$T/out/results.csv"
$PY "$HERE/xcheck_geometry.py" check "$T/x.h5" "$T/out/results.csv" || fail=1
$RB gen gmm --seed 1 --classes 10 --dim 64 --layers 6 --n-train 3000 --n-test 1000 --n-ood 0 \
    --model gmm_small -o "$T/s.h5" >/dev/null || fail=1
$RB run --methods collapse --head none -o "$T/s" "$T/s.h5" 2>>"$T/err" || fail=1
$PY "$HERE/xcheck_geometry.py" trend "$T/s/results.csv" || fail=1
exit $fail

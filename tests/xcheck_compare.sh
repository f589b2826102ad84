#!/usr/bin/env bash
# xcheck_compare.sh -- comparison across models and checkpoints (issue 11):
# three models x two checkpoints through `make sweep` and `repbench report`;
# every paired comparison recomputed from the predictions files (McNemar's
# p against SciPy's binomtest), the leaderboard and the comparison table of
# summary.md against the CSVs, the checkpoint-series figures' data; the
# paired bootstrap is seeded (same seed, same bytes; another seed, other
# intervals).  See tests/xcheck_compare.py.  Needs RB_BIN and PYTHON.
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
[ -x "$RB" ] || { echo "FAIL: $RB not built"; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
"$PY" "$HERE/xcheck_compare.py" gen "$T/dumps" >/dev/null || { echo "FAIL: gen"; exit 1; }
# The sweep as a user runs it on their own dumps (a pattern, a method list).
make --no-print-directory -C "$HERE/.." sweep DUMPS="$T/dumps/*.h5" OUT="$T/out" \
    METHODS=gnb,ncm,logreg,collapse,idim,spectrum >"$T/sweep.log" 2>&1 \
    || { echo "FAIL: make sweep"; tail -20 "$T/sweep.log"; exit 1; }
"$PY" "$HERE/xcheck_compare.py" check "$T/out" || fail=1
# Seeded: the same seed gives the same comparison bytes (less seconds), another seed other intervals.
strip() { cut -d, -f1-12 "$1"; }
strip "$T/out/compare/results.csv" >"$T/c0"
"$RB" report --no-draw "$T/out" 2>/dev/null; strip "$T/out/compare/results.csv" >"$T/c1"
cmp -s "$T/c0" "$T/c1" && echo "ok: same seed, same comparison CSV" || { echo "FAIL: report again changed compare/results.csv"; fail=1; }
"$RB" report --no-draw --seed 7 "$T/out" 2>/dev/null; strip "$T/out/compare/results.csv" >"$T/c7"
cmp -s "$T/c0" "$T/c7" && { echo "FAIL: --seed 7 gave the same intervals"; fail=1; } || echo "ok: another seed, other intervals"
cmp -s <(cut -d, -f1-8 "$T/c0") <(cut -d, -f1-8 "$T/c7") && echo "ok: only the intervals depend on the seed" \
    || { echo "FAIL: values changed with the seed"; fail=1; }
"$RB" report --seed -1 "$T/out" 2>"$T/err"; [ $? = 2 ] && echo "ok: bad --seed refused" || { echo "FAIL: --seed -1 accepted"; fail=1; }
# The page with the comparison section renders in headless Chromium without a console message.
"$RB" report "$T/out" 2>/dev/null
make --no-print-directory -C "$HERE/.." plots-check OUT="$T/out" >"$T/pc.log" 2>&1 \
    && echo "ok: index.html with the comparison section renders without console messages" \
    || { echo "FAIL: plots-check"; tail -5 "$T/pc.log"; fail=1; }
grep -q 'id="dump-comparison' "$T/out/index.html" && echo "ok: index.html has the comparison section" \
    || { echo "FAIL: no comparison section in index.html"; fail=1; }
exit $fail

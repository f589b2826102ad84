#!/usr/bin/env bash
# cli_reliab.sh -- reliability from the outside (issue 13): results that do
# not depend on --threads, outputs never lost or mixed (atomic renames,
# target last, one writer per directory), no hangs on FIFOs, memory
# limits, huge class counts, and the smaller refusals.
set -u
. "$(dirname "$0")/lib.sh"
SAN=0; case "$RB" in *build-san*) SAN=1 ;; esac

# ------------------------------------------------------------------ B6
# The built-in samples (the Makefile's `make samples` commands), a reduced
# method/layer set covering every family whose reductions were threaded:
# spectrum, similarity, logreg, collapse, idim, probe_id (and knn).  The
# CSVs of --threads 1, 2 and 3 must be byte-identical less `seconds`.
$RB gen gmm --seed 1 --classes 10 --dim 64 --layers 6 --n-train 3000 --n-test 1000 --n-ood 500 --sep1 2 --sd1 0.8 --model gmm_small -o "$T/gmm_small.h5" >/dev/null || bad "gen gmm_small"
$RB gen gmm --seed 2 --classes 20 --dim 256 --layers 4 --n-train 4000 --n-test 2000 --n-ood 1000 --sep1 2.5 --sd1 0.7 --model gmm_wide -o "$T/gmm_wide.h5" >/dev/null || bad "gen gmm_wide"
DET_DUMPS="$T/gmm_small.h5 $T/gmm_wide.h5"
[ $SAN = 1 ] && DET_DUMPS="$T/gmm_small.h5"
for th in 1 2 3; do
  expect_status 0 $RB run --quiet --threads $th --methods spectrum,similarity,logreg,collapse,idim,probe_id,knn \
    --layers layer1,layer4 --sim-max-n 400 --pid-seeds 1 --pid-max-n 800 --pid-max-d 64 --id-max-n 1000 \
    -o "$T/det$th" $DET_DUMPS
done
cat > "$T/nosec.py" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
i = rows[0].index("seconds")
w = csv.writer(open(sys.argv[2], "w", newline=""), lineterminator="\n")
for r in rows: w.writerow(r[:i] + r[i + 1:])
PY
for th in 1 2 3; do "$PY" "$T/nosec.py" "$T/det$th/results.csv" "$T/det$th.cut"; done
for th in 2 3; do
  if cmp -s "$T/det1.cut" "$T/det$th.cut"; then ok; else
    bad "--threads 1 vs $th: $(diff "$T/det1.cut" "$T/det$th.cut" | grep -c '^<') rows differ: $(diff "$T/det1.cut" "$T/det$th.cut" | grep '^<' | cut -d, -f5,7 | sort -u | head -5 | tr '\n' ' ')"
  fi
done
for m in spectrum similarity logreg collapse idim probe_id knn; do
  grep -q ",$m," "$T/det1.cut" && ok || bad "determinism run has no $m row"
done
# B7: no wall-clock time in a value column; knn's GEMM time is in run.json.
grep -q "gemm_seconds" "$T/det1/results.csv" && bad "gemm_seconds is a results.csv row" || ok
"$PY" -c 'import json,sys; t=json.load(open(sys.argv[1]))["timings"]; assert any(x["method"]=="knn" and x["name"]=="gemm_seconds" and x["seconds"]>=0 for x in t)' "$T/det1/run.json" && ok || bad "run.json has no knn gemm_seconds timing"

finish

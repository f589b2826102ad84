#!/usr/bin/env bash
# cli_knn_stream.sh -- knn and ood_knn stream the train split (issue 15):
# the same bytes for any --mem-limit and --threads, a refusal with need vs
# budget below the smallest blocks, and a peak RSS well below the size of a
# >= 400 MB train layer (a whole-layer load would exceed the bound).
# Environment: RB_BASELINE_BIN (optional): a binary that loads whole layers
# (main before issue 15); the RSS check is then also run on it and must FAIL.
set -u
. "$(dirname "$0")/lib.sh"

$RB gen gmm --seed 4 --classes 12 --dim 256 --layers 2 --n-train 4000 --n-test 1500 --n-ood 600 \
    --n-shift 700 --model kstream -o "$T/s.h5" >/dev/null 2>&1 || { echo "FAIL: gen"; exit 1; }
M="--methods knn,ood_knn --ood-knn-k 1,10,50 --bootstrap 20 --predictions"
expect_status 0 $RB run $M -o "$T/a" "$T/s.h5"
expect_status 0 $RB run $M --mem-limit 16M -o "$T/b" "$T/s.h5"
expect_status 0 $RB run $M --threads 1 -o "$T/c" "$T/s.h5"
expect_status 0 $RB run $M --threads 2 --mem-limit 12M -o "$T/d" "$T/s.h5"
# results.csv without the wall-clock column, predictions.csv as bytes.
cols() { cut -d, -f1-12 "$1/results.csv"; }
for x in b c d; do
  [ -s "$T/a/results.csv" ] && [ "$(cols "$T/a")" = "$(cols "$T/$x")" ] && ok || bad "results.csv of run $x differs from the default run"
  cmp -s "$T/a/predictions.csv" "$T/$x/predictions.csv" && ok || bad "predictions.csv of run $x differs from the default run"
done
# Both methods produced rows on both layers (not an empty comparison).
[ "$(grep -c ',knn,' "$T/a/results.csv")" -ge 48 ] && ok || bad "too few knn rows"
[ "$(grep -c ',ood_knn,' "$T/a/results.csv")" -ge 12 ] && ok || bad "too few ood_knn rows"

# Below the smallest blocks: refused before starting, need vs budget, no rows.
expect_status 0 $RB run --methods knn,ood_knn --mem-limit 2M -o "$T/r" "$T/s.h5"
grep -q "knn: needs .* MiB .*budget 2.0 MiB.*refused before starting" "$T/err" && ok || bad "no need-vs-budget refusal: $(head -c 300 "$T/err")"
grep -q ',knn,\|,ood_knn,' "$T/r/results.csv" && bad "rows written after a refusal" || ok

# Peak RSS on a 100000 x 1024 float train layer (409.6 MB).  Not under the
# sanitizers (their shadow memory and slow-down are not the program's).
case "$RB" in
*san*) echo "(peak RSS check skipped under the sanitizers)" ;;
*)
  BOUND_MB=200
  $RB gen gmm --seed 1 --classes 10 --dim 1024 --layers 1 --n-train 100000 --n-test 256 --n-ood 256 \
      --logit-scale 0 --model big -o "$T/big.h5" >/dev/null 2>&1 || bad "gen of the large dump"
  rss() { # bin outdir -> prints peak RSS in MB of the run, exit status of the run
    "$PY" - "$@" "$T/big.h5" <<'PY'
import resource, subprocess, sys
b, o, f = sys.argv[1:4]
r = subprocess.run([b, "run", "--methods", "knn,ood_knn", "--bootstrap", "0", "--threads", "2", "-o", o, f],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("%.1f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0))
sys.exit(r.returncode)
PY
  }
  [ "$(( $(stat -c %s "$T/big.h5") ))" -gt 400000000 ] && ok || bad "the large dump is under 400 MB"
  peak=$(rss "$RB" "$T/big_o") && ok || bad "run on the large dump failed"
  echo "peak RSS knn+ood_knn on a 409.6 MB train layer: $peak MB (bound $BOUND_MB MB)"
  awk -v p="$peak" -v b=$BOUND_MB 'BEGIN{exit !(p > 0 && p < b)}' && ok || bad "peak RSS $peak MB >= $BOUND_MB MB"
  [ "$(grep -c ',knn,' "$T/big_o/results.csv")" -ge 8 ] && ok || bad "no knn rows on the large dump"
  if [ -n "${RB_BASELINE_BIN:-}" ]; then
    bpeak=$(rss "$RB_BASELINE_BIN" "$T/big_b")
    echo "baseline $RB_BASELINE_BIN: peak RSS $bpeak MB"
    awk -v p="$bpeak" -v b=$BOUND_MB 'BEGIN{exit !(p >= b)}' && ok || bad "baseline stays under the bound: the check cannot fail"
    cmp -s <(cut -d, -f1-12 "$T/big_o/results.csv") <(cut -d, -f1-12 "$T/big_b/results.csv") && ok || bad "baseline results differ"
  fi
  rm -f "$T/big.h5" ;;
esac
finish

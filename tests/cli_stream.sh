#!/usr/bin/env bash
# cli_stream.sh -- the streaming methods (gnb, nb_pooled, ncm, lda, ood_maha,
# ood_gauss, collapse, spectrum) read rows in blocks (core/stream.h):
#  (a) --mem-limit 16M (blocks of 1 MiB) and the default (32 MiB) give the
#      same results.csv (every column but seconds, byte for byte);
#  (b) on a dump whose one train layer is 410 MB (N = 200000, D = 512),
#      each method's peak RSS stays under 150 MB (it was 470 MB to 2 GB when
#      methods received whole layers; collapse with --head none, its default
#      head is a logreg fitted in memory); skipped under the sanitizers;
#  (c) a method whose D x D matrices exceed --mem-limit is refused before it
#      starts with one line naming need and budget, and the others run;
#  (d) a gzip-compressed chunked dump (written by h5py) gives the same
#      results as the contiguous one, also under --mem-limit 16M.
set -u
. "$(dirname "$0")/lib.sh"
SAN=0; case "$RB" in *build-san*) SAN=1 ;; esac
H="$(dirname "$0")/cli_stream.py"
M=gnb,nb_pooled,ncm,lda,ood_maha,ood_gauss,collapse,spectrum

# (a) block size does not change a bit
$RB gen gmm --seed 11 --classes 12 --dim 48 --layers 2 --n-train 5000 --n-test 1500 --n-ood 700 --n-shift 600 --model st -o "$T/st.h5" >/dev/null || { echo "FAIL: gen"; exit 1; }
expect_status 0 $RB run --quiet --methods $M --bootstrap 50 --predictions -o "$T/a0" "$T/st.h5"
expect_status 0 $RB run --quiet --methods $M --bootstrap 50 --predictions --mem-limit 16M -o "$T/a1" "$T/st.h5"
"$PY" "$H" same "$T/a0/results.csv" "$T/a1/results.csv" && ok || bad "(a) --mem-limit 16M changed results"
"$PY" "$H" same "$T/a0/predictions.csv" "$T/a1/predictions.csv" && ok || bad "(a) --mem-limit 16M changed predictions"
# lda under 16M at D = 256, K = 40: a class scatter (512 KiB) and its
# 256-row buffer (512 KiB) each, so only part of the classes fit beside the
# fixed part and its second pass runs in several class groups.
$RB gen gmm --seed 14 --classes 40 --dim 256 --layers 1 --n-train 4000 --n-test 1000 --n-ood 200 --sep1 0.6 --model k40 -o "$T/k40.h5" >/dev/null || bad "gen k40"
expect_status 0 $RB run --quiet --methods lda --bootstrap 20 --predictions -o "$T/l0" "$T/k40.h5"
expect_status 0 $RB run --quiet --methods lda --bootstrap 20 --predictions --mem-limit 16M -o "$T/l1" "$T/k40.h5"
"$PY" "$H" same "$T/l0/results.csv" "$T/l1/results.csv" && ok || bad "(a) lda in class groups differs"
"$PY" "$H" same "$T/l0/predictions.csv" "$T/l1/predictions.csv" && ok || bad "(a) lda predictions in class groups differ"
# D > 256: the scatters are updated in 256-column panels on the worker
# threads (rb_nc_syrk, 300 = one full and one partial panel): the same bits
# for 1 and 3 threads.
$RB gen gmm --seed 15 --classes 6 --dim 300 --layers 1 --n-train 2000 --n-test 500 --n-ood 300 --model p300 -o "$T/p.h5" >/dev/null || bad "gen p300"
expect_status 0 $RB run --quiet --methods $M --bootstrap 20 --predictions --threads 1 -o "$T/p1" "$T/p.h5"
expect_status 0 $RB run --quiet --methods $M --bootstrap 20 --predictions --threads 3 -o "$T/p3" "$T/p.h5"
"$PY" "$H" same "$T/p1/results.csv" "$T/p3/results.csv" && ok || bad "(a) D = 300: --threads 1 and 3 differ"
"$PY" "$H" same "$T/p1/predictions.csv" "$T/p3/predictions.csv" && ok || bad "(a) D = 300: predictions differ across threads"
# every method produced rows (a vacuous comparison would pass too)
for m in ${M//,/ }; do
  grep -q ",$m," "$T/a0/results.csv" && ok || bad "(a) no rows of $m"
done

# (d) gzip-chunked (chunks of 700 x 20: blocks straddle chunk rows and columns)
"$PY" "$H" gzip "$T/st.h5" "$T/stz.h5" 700 20 || bad "(d) h5py gzip copy"
expect_status 0 $RB run --quiet --methods $M --bootstrap 50 -o "$T/d0" "$T/stz.h5"
"$PY" "$H" same "$T/a0/results.csv" "$T/d0/results.csv" && ok || bad "(d) gzip-chunked dump differs from contiguous"
expect_status 0 $RB run --quiet --methods $M --bootstrap 50 --mem-limit 16M -o "$T/d1" "$T/stz.h5"
"$PY" "$H" same "$T/a0/results.csv" "$T/d1/results.csv" && ok || bad "(d) gzip-chunked dump under --mem-limit 16M differs"

# (c) lda holds 4 D x D doubles (32 MiB at D = 1024): refused under 24M
# with need vs budget; gnb and ncm (K x D statistics) still run.
$RB gen gmm --seed 12 --classes 4 --dim 1024 --layers 1 --n-train 600 --n-test 200 --n-ood 100 --model wide -o "$T/w.h5" >/dev/null || bad "gen wide"
expect_status 0 $RB run --quiet --methods gnb,lda,ncm --bootstrap 0 --mem-limit 24M -o "$T/c" "$T/w.h5"
[ "$(grep -c "lda" "$T/err")" = 1 ] && ok || bad "(c) not one line about lda: $(cat "$T/err")"
grep -q "lda on layer layer1: needs about 0.03 GiB (4 double D x D matrices at D = 1024, .*), 0.02 GiB available (the budget: --mem-limit): refused before allocating" "$T/err" \
  && ok || bad "(c) refusal line: $(cat "$T/err")"
"$PY" - "$T/c" <<'PY' && ok || bad "(c) outputs"
import csv, json, sys
d = sys.argv[1]
f = [x["method"] for x in json.load(open(d + "/run.json"))["failed"]]
assert f == ["lda"], f
assert {r["method"] for r in csv.DictReader(open(d + "/results.csv"))} == {"gnb", "ncm"}
PY

# (b) peak memory independent of N
if [ $SAN = 0 ]; then
  $RB gen gmm --seed 13 --classes 10 --dim 512 --layers 1 --n-train 200000 --n-test 20000 --n-ood 5000 --model big -o "$T/big.h5" >/dev/null || bad "gen big"
  METHODS=$M "$PY" "$H" rss 150 "$RB" run --quiet --bootstrap 0 -o "$T/b" "$T/big.h5" && ok || bad "(b) peak RSS"
  rm -f "$T/big.h5"
fi
finish

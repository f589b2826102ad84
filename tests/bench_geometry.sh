#!/usr/bin/env bash
# bench_geometry.sh -- seconds and peak memory of collapse, spectrum and
# idim on a C = 100, D = 2048, N = 50 000 dump (make bench; never make test).
# collapse must read the data in one streaming pass and stay under 2x the
# memory of one D x D double matrix plus one read chunk.
set -u
RB=${RB_BIN:-bin/repbench}
T=${BENCH_DIR:-$(mktemp -d)}
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$T"' EXIT
C=100 D=2048 N=50000 CHUNK=4096
if [ ! -x /usr/bin/time ]; then
  echo "bench_geometry: /usr/bin/time (Debian package 'time') is needed for peak memory"; exit 1
fi
DUMP="$T/geo_bench.h5"
if [ ! -s "$DUMP" ]; then
  $RB gen gmm --seed 1 --classes $C --dim $D --layers 1 --n-train $N --n-test 1000 --n-ood 0 \
      --model geo_bench -o "$DUMP" >/dev/null || { echo "FAIL: gen"; exit 1; }
fi
measure() { # label args...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$T/time" "$@" >/dev/null 2>"$T/err" || { echo "FAIL: $label: $(tail -c 300 "$T/err")"; return 1; }
  read -r secs kb <"$T/time"
  awk -v l="$label" -v s="$secs" -v k="$kb" 'BEGIN{printf "%-30s %8.1f s %9.1f MB\n", l, s, k/1024}'
  eval "${label%% *}_kb=$kb"
}
echo "geometry bench: C=$C D=$D N=$N (train), 2 cores"
fail=0
measure "collapse --head none" $RB run --methods collapse --head none --nc-chunk $CHUNK -o "$T/o1" "$DUMP" || fail=1
measure "spectrum" $RB run --methods spectrum -o "$T/o2" "$DUMP" || fail=1
measure "idim (10000 x 5 subsamples)" $RB run --methods idim -o "$T/o3" "$DUMP" || fail=1
# Memory budget of collapse: 2 x (one D x D double matrix + one float chunk).
budget_kb=$(( 2 * (D * D * 8 + CHUNK * D * 4) / 1024 ))
echo "collapse budget 2 x (D x D doubles + one chunk) = $((budget_kb / 1024)) MB; peak $((collapse_kb / 1024)) MB"
if [ "${collapse_kb:-0}" -gt 0 ] && [ "$collapse_kb" -le "$budget_kb" ]; then echo "1 passed, 0 failed"
else echo "0 passed, 1 failed"; fail=1; fi
exit $fail

#!/usr/bin/env bash
# bench_threads.sh -- `make bench`: thread speed-up 1 -> 2 per method family
# (issue 15) and determinism across thread counts.  For every family of
# `repbench list --families`, `repbench run --family F` on the sample
# datasets/sample/gmm_wide.h5 (BENCH_THREADS_DUMP overrides) with
# --threads 1 and --threads 2: wall seconds (best of BENCH_REPS runs each,
# default 1), the speed-up t1/t2, and the two results.csv compared value by
# value, every column but "seconds": they must be identical (a result must
# not depend on the thread count).  Never part of `make test`.
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
DUMP=${BENCH_THREADS_DUMP:-datasets/sample/gmm_wide.h5}
REPS=${BENCH_REPS:-1}
FAMILIES=${BENCH_FAMILIES:-$($RB list --families)}
if [ ! -s "$DUMP" ]; then echo "bench_threads: $DUMP missing (make samples)"; exit 1; fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
now() { date +%s.%N; }
# best wall seconds of REPS runs of: run --family F --threads N -o T/F.N
timed() { # family threads
  local best= i t0 t1 s
  for ((i = 0; i < REPS; i++)); do
    rm -rf "$T/$1.$2"
    t0=$(now)
    "$RB" run --family "$1" --threads "$2" -o "$T/$1.$2" "$DUMP" >/dev/null 2>"$T/$1.$2.err" \
      || { echo "FAIL: $1 --threads $2: $(tail -c 300 "$T/$1.$2.err")" >&2; return 1; }
    t1=$(now)
    s=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then best=$s; fi
  done
  echo "$best"
}
# identical results.csv but for the seconds column: prints "identical" or
# "N of M values differ (max |rel diff| x: first metric)"
cat > "$T/same.py" <<'PY'
import csv, sys
def load(p):
    with open(p) as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
a, b = load(sys.argv[1]), load(sys.argv[2])
if len(a) != len(b):
    print(f"{len(a)} vs {len(b)} rows"); sys.exit(1)
diff, worst, first = 0, 0.0, None
for x, y in zip(a, b):
    for k in x:
        if x[k] != y[k]:
            diff += 1
            try:
                u, v = float(x[k]), float(y[k])
                rel = abs(u - v) / max(abs(u), abs(v), 1e-300)
            except ValueError:
                rel = float("inf")
            if rel >= worst:
                worst, first = rel, f"{x['method']} {x['metric']} {x['params']} {x['layer']}: {x[k]} vs {y[k]}"
if diff:
    print(f"{diff} of {len(a) * len(a[0])} values differ (max rel diff {worst:.2g}: {first})"); sys.exit(1)
print("identical")
PY
echo "thread speed-up on $DUMP ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)); best of $REPS"
printf "%-10s %8s %8s %8s  %s\n" family "1 thr s" "2 thr s" speed-up "results.csv 1 vs 2 threads"
pass=0 fail=0
for f in $FAMILIES; do
  t1=$(timed "$f" 1) || { fail=$((fail + 1)); continue; }
  t2=$(timed "$f" 2) || { fail=$((fail + 1)); continue; }
  same=$("$PY" "$T/same.py" "$T/$f.1/results.csv" "$T/$f.2/results.csv") && pass=$((pass + 1)) || fail=$((fail + 1))
  printf "%-10s %8.2f %8.2f %8.2f  %s\n" "$f" "$t1" "$t2" "$(echo "$t1 / $t2" | bc -l)" "$same"
done
# Per method at a realistic width: D = 1024 (above 256 the scatter updates
# run in column panels on the workers; knn's tiles are split over them),
# each method's own seconds (results.csv) at 1 and 2 threads.
if [ "${BENCH_THREADS_WIDE:-1}" = 1 ]; then
  "$RB" gen gmm --seed 3 --classes 20 --dim 1024 --layers 1 --n-train 60000 --n-test 5000 --n-ood 2000 \
    --model d1024 -o "$T/wide.h5" >/dev/null || { echo "FAIL: gen d1024"; fail=$((fail + 1)); }
  WM=collapse,spectrum,lda,ood_maha,ood_gauss,knn,gnb,ncm
  for n in 1 2; do
    "$RB" run --quiet --bootstrap 0 --threads $n --methods $WM --head none -o "$T/wide.$n" "$T/wide.h5" \
      2>"$T/wide.err" || { echo "FAIL: d1024 --threads $n: $(tail -c 300 "$T/wide.err")"; fail=$((fail + 1)); }
  done
  echo "per method on a 60000 x 1024 layer (20 classes): its own seconds, 1 -> 2 threads"
  same=$("$PY" "$T/same.py" "$T/wide.1/results.csv" "$T/wide.2/results.csv") && pass=$((pass + 1)) || fail=$((fail + 1))
  "$PY" - "$T/wide.1/results.csv" "$T/wide.2/results.csv" <<'PY'
import csv, sys
sec = [{}, {}]
for i in (0, 1):
    for r in csv.DictReader(open(sys.argv[1 + i])):
        sec[i].setdefault(r["method"], float(r["seconds"]))
for m in sec[0]:
    print(f"  {m:10s} {sec[0][m]:7.2f} {sec[1][m]:7.2f} {sec[0][m] / sec[1][m]:8.2f}")
PY
  echo "  results.csv 1 vs 2 threads: $same"
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

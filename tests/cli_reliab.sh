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

# ------------------------------------------------------------ B8, B9
$RB gen gmm --seed 3 --classes 4 --dim 8 --layers 2 --n-train 300 --n-test 150 --n-ood 60 --model tiny -o "$T/tiny.h5" >/dev/null || bad "gen tiny"
# B8: results.csv (the sweep's make target) is written and renamed last:
# it is not older than run.json, skipped.csv and predictions.csv.
expect_status 0 $RB run --quiet --methods gnb,ncm --predictions -o "$T/ord" "$T/tiny.h5"
"$PY" - "$T/ord" <<'PY' && ok || bad "results.csv is not the last file written"
import os, sys
d = sys.argv[1]
t = {f: os.stat(os.path.join(d, f)).st_mtime_ns for f in ("results.csv", "run.json", "skipped.csv", "predictions.csv")}
assert all(t["results.csv"] >= v for v in t.values()), t
PY
if command -v strace >/dev/null 2>&1; then
  strace -f -e trace=rename,renameat,renameat2 -o "$T/strace" $RB run --quiet --methods gnb -o "$T/ord2" "$T/tiny.h5" 2>/dev/null
  last=$(grep -o '"[^"]*"' "$T/strace" | grep -v '\.tmp"' | tail -n 1)
  [ "$last" = "\"$T/ord2/results.csv\"" ] && ok || bad "last rename is $last, not results.csv"
fi
# B9: a second writer to a directory in use is refused (exit 2, one line
# naming the directory), before any work; the first writer's lock is a
# flock on the directory (util-linux flock(1) takes the same lock).
mkdir -p "$T/busy"
flock -n "$T/busy" sleep 20 & holder=$!
sleep 0.3
expect_status 2 $RB run --quiet --methods gnb -o "$T/busy" "$T/tiny.h5"; one_line
grep -q "busy: output directory in use by another repbench run" "$T/err" && ok || bad "lock refusal message: $(cat "$T/err")"
[ ! -e "$T/busy/results.csv" ] && ok || bad "refused run wrote results.csv"
$RB gen weights --kind init --seed 1 --features "$T/tiny.h5" --model init -o "$T/ckpt.h5" >/dev/null 2>&1 || bad "gen weights"
expect_status 2 $RB weights --methods sparsity -o "$T/busy" "$T/ckpt.h5"; one_line
grep -q "in use by another repbench run" "$T/err" && ok || bad "weights: no lock refusal: $(cat "$T/err")"
kill $holder 2>/dev/null; wait $holder 2>/dev/null
# Two real runs on one directory: one exits 0, the other is refused or runs
# after it; the rows are one complete result set, never a mix.
$RB run --quiet --methods logreg,gnb --C 1 -o "$T/two" "$T/gmm_small.h5" 2>"$T/e1" & p1=$!
sleep 0.2
$RB run --quiet --methods ncm -o "$T/two" "$T/tiny.h5" 2>"$T/e2"; s2=$?
wait $p1; s1=$?
[ "$s1" = 0 ] && [ "$s2" = 2 ] && grep -q "in use" "$T/e2" && ok || bad "concurrent writers: exit $s1 / $s2: $(cat "$T/e2")"
grep -q "^gmm_small," "$T/two/results.csv" && ! grep -q "^tiny," "$T/two/results.csv" && ok || bad "concurrent writers mixed results"
# Unique temporary names: a stale fixed-name temporary (here a directory,
# which the old fixed name could not be opened over) does not stop a run;
# a dead run's NAME.PID.tmp is removed by the next writer.
mkdir -p "$T/stale/results.csv.tmp"; touch "$T/stale/results.csv.999999.tmp"
expect_status 0 $RB run --quiet --methods gnb -o "$T/stale" "$T/tiny.h5"
[ ! -e "$T/stale/results.csv.999999.tmp" ] && ok || bad "dead run's temporary left"
# SIGXFSZ (ulimit -f): a write error with the reason, exit 1, no temporary.
( ulimit -f 1; exec $RB run --quiet --methods knn,gnb,ncm,spectrum -o "$T/fsz" "$T/tiny.h5" ) >"$T/out" 2>"$T/err"; st=$?
[ "$st" = 1 ] && grep -q "results.csv: write failed: File too large" "$T/err" && ok || bad "ulimit -f: exit $st: $(cat "$T/err")"
ls "$T/fsz"/*.tmp >/dev/null 2>&1 && bad "ulimit -f left a temporary" || ok
[ ! -e "$T/fsz/results.csv" ] && ok || bad "ulimit -f: results.csv written"
# A full disk: exit 1 with the system's reason (a 12 KiB tmpfs in a user
# namespace; skipped where unshare is not allowed).
if unshare -rm true 2>/dev/null; then
  unshare -rm sh -c 'mkdir -p "$1/full" && mount -t tmpfs -o size=12k none "$1/full" && exec "$2" run --quiet --methods knn,gnb,ncm,spectrum -o "$1/full/o" "$1/tiny.h5"' sh "$T" "$RB" >"$T/out" 2>"$T/err"; st=$?
  [ "$st" = 1 ] && grep -q "write failed: No space left on device" "$T/err" && ok || bad "full disk: exit $st: $(cat "$T/err")"
else
  echo "note: unshare not permitted; the full-disk check is skipped"
fi

# ------------------------------------------------------------------ B1
# A FIFO (or a device) given as a dump or checkpoint is refused at once,
# never read (a read would block forever); timeout 20 turns a hang into 124.
mkfifo "$T/fifo.h5" "$T/fifo.safetensors"
expect_status 2 timeout 20 $RB inspect "$T/fifo.h5"; one_line
grep -q "fifo.h5: not a regular file (a FIFO)" "$T/err" && ok || bad "inspect FIFO message: $(cat "$T/err")"
expect_status 2 timeout 20 $RB run --quiet --methods gnb -o "$T/fo" "$T/fifo.h5"; one_line
expect_status 2 timeout 20 $RB run --quiet --methods gnb -o "$T/fo" "$T/tiny.h5" "$T/fifo.h5"; one_line
expect_status 2 timeout 20 $RB run --quiet --methods cka_cross --other "$T/fifo.h5" -o "$T/fo" "$T/tiny.h5"; one_line
expect_status 2 timeout 20 $RB inspect "$T/fifo.safetensors"; one_line
expect_status 2 timeout 20 $RB weights --methods sparsity -o "$T/fo" "$T/fifo.safetensors"; one_line
expect_status 2 timeout 20 $RB weights --methods soup --features "$T/fifo.h5" -o "$T/fo" "$T/ckpt.h5"; one_line
expect_status 2 timeout 20 $RB run --quiet --methods gnb -o "$T/fo" /dev/null; one_line

# ------------------------------------------------------------------ B2
# Under an address-space limit OpenBLAS retried its buffer allocation
# forever (knn, logreg on a 200 x 8 dump): now a clear refusal naming the
# limit and the need (exit 1), or a normal run when the limit leaves room.
$RB gen gmm --seed 3 --classes 4 --dim 8 --layers 1 --n-train 200 --n-test 100 --n-ood 50 --model t8 -o "$T/t8.h5" >/dev/null
if [ $SAN = 0 ]; then   # ASan reserves terabytes of address space: no ulimit -v there
  for m in knn logreg; do
    ( ulimit -v 300000; exec timeout 60 $RB run --quiet --threads 2 --methods $m -o "$T/ul$m" "$T/t8.h5" ) >"$T/out" 2>"$T/err"; st=$?
    [ "$st" = 1 ] && grep -q "address-space limit (ulimit -v) of 292 MiB leaves .* MiB; OpenBLAS needs 2 work buffer(s) of 130 MiB" "$T/err" && ok || bad "$m under ulimit -v 300000: exit $st: $(cat "$T/err")"
    ( ulimit -v 900000; exec timeout 60 $RB run --quiet --threads 2 --methods $m -o "$T/ul$m" "$T/t8.h5" ) >"$T/out" 2>"$T/err"; st=$?
    [ "$st" = 0 ] && ok || bad "$m under ulimit -v 900000: exit $st: $(cat "$T/err")"
  done
fi

# ------------------------------------------------------------------ B3
# A wide layer (D = 8000, 400 train rows) under ulimit -v 1.6 GB: each
# O(D^2)-memory method is refused before allocating, naming its need and
# what is available (run.json "failed"), at once (it once spent 22 s in
# LAPACK before failing, or reserved 59 GB); the others still run.
if [ $SAN = 0 ]; then
  $RB gen gmm --seed 3 --classes 4 --dim 8000 --layers 1 --n-train 400 --n-test 100 --n-ood 50 --model wide -o "$T/wide.h5" >/dev/null
  ( ulimit -v 1600000; exec timeout 60 $RB run --quiet --methods lda,spectrum,collapse,idim,similarity,ood_maha,ood_gauss,gnb -o "$T/wide" "$T/wide.h5" ) >"$T/out" 2>"$T/err"; st=$?
  [ "$st" = 0 ] && ok || bad "wide dump under ulimit -v: exit $st: $(tail -n 2 "$T/err")"
  "$PY" - "$T/wide" <<'PY' && ok || bad "wide dump: refusals in run.json"
import json, sys, re, csv
d = sys.argv[1]
f = {x["method"]: x["reason"] for x in json.load(open(d + "/run.json"))["failed"]}
want = {"lda", "spectrum", "collapse", "idim", "similarity", "ood_maha", "ood_gauss"}
assert set(f) == want, f
for m, why in f.items():
    assert re.search(r"needs about [0-9.]+ GiB \([0-9] double D x D matrices at D = 8000.*\), [0-9.]+ GiB available .*refused before allocating", why), why
assert {r["method"] for r in csv.DictReader(open(d + "/results.csv"))} == {"gnb"}
PY
fi

# ------------------------------------------------------------------ B4
# 1000 classes x 2 samples, D = 16, features at scale 100: logreg --C 1
# took over 100 s.  Now a fit stops at its wall-time budget
# (--logreg-max-seconds, default 60) with the rows flagged.
$RB gen gmm --seed 4 --classes 1000 --dim 16 --layers 1 --n-train 2000 --n-test 1000 --n-ood 10 --sep0 100 --sep1 100 --sd0 30 --sd1 30 --model many -o "$T/many.h5" >/dev/null
s0=$(date +%s)
expect_status 0 timeout 60 $RB run --quiet --methods logreg --C 1 --logreg-max-seconds 2 -o "$T/many" "$T/many.h5"
el=$(( $(date +%s) - s0 ))
[ $el -le 15 ] && ok || bad "logreg budget 2 s took $el s"
"$PY" - "$T/many/results.csv" <<'PY' && ok || bad "logreg budget rows"
import csv, sys
v = {r["metric"]: float(r["value"]) for r in csv.DictReader(open(sys.argv[1])) if r["method"] == "logreg"}
assert v["budget_stopped"] == 1 and v["converged"] == 0 and 0 < v["iterations"] < 1000, v
PY
expect_status 2 $RB run --quiet --methods logreg --logreg-max-seconds -1 -o "$T/many" "$T/many.h5"; one_line

# ------------------------------------------------------------- smaller
# B5: a non-UTF-8 model attribute is escaped (\xHH): results.csv and
# run.json stay valid UTF-8 / JSON.
"$PY" - "$T/tiny.h5" "$T/bad8.h5" <<'PY' || bad "make bad8.h5"
import h5py, shutil, sys
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:
    f.attrs["model"] = b"caf\xe9\xff\xc3("
PY
expect_status 0 $RB run --quiet --methods gnb -o "$T/u8" "$T/bad8.h5"
"$PY" - "$T/u8" <<'PY' && ok || bad "non-UTF-8 model: results.csv/run.json not valid UTF-8 or not escaped"
import csv, json, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/results.csv", encoding="utf-8", newline="")))
assert rows and all(r["model"] == "caf\\xE9\\xFF\\xC3(" for r in rows), rows[0]["model"]
json.load(open(d + "/run.json", encoding="utf-8"))
PY
# B10: an empty --layers (or an empty item) is refused like --methods "".
for v in "" "layer1," ",layer1" "layer1,,layer2"; do
  expect_status 2 $RB run --quiet --methods gnb --layers "$v" -o "$T/e" "$T/tiny.h5"; one_line
done
[ ! -e "$T/e/results.csv" ] && ok || bad "empty --layers wrote results.csv"
# Option lists and values: an empty item, the option's dashed name, an
# underflowing number named as out of range (not "not a number").
expect_status 2 $RB run --quiet --methods knn --knn-k 10,,20 -o "$T/e" "$T/tiny.h5"; one_line
grep -q "knn-k: empty item" "$T/err" && ok || bad "--knn-k 10,,20: $(cat "$T/err")"
expect_status 2 $RB run --quiet --methods gnb --knn-k 5 -o "$T/e" "$T/tiny.h5"; one_line
grep -q -- "--knn-k is not read" "$T/err" && ok || bad "refused option not echoed dashed: $(cat "$T/err")"
expect_status 2 $RB run --quiet --methods logreg --C 1e-320 -o "$T/e" "$T/tiny.h5"; one_line
grep -q "is outside" "$T/err" && ok || bad "--C 1e-320: $(cat "$T/err")"
# The same dump twice (two spellings) is refused.
expect_status 2 $RB run --quiet --methods gnb -o "$T/e" "$T/tiny.h5" "$T/../$(basename "$T")/tiny.h5"; one_line
grep -q "given twice" "$T/err" && ok || bad "same dump twice: $(cat "$T/err")"
# B11: a NaN in a checkpoint: inspect and weights agree (both refuse, naming
# the tensor); an integer-only checkpoint is refused by both ("no float
# tensor"), not an empty CSV.
"$PY" - "$T/ckpt.h5" "$T/nan.h5" "$T/int.safetensors" <<'PY' || bad "make bad checkpoints"
import h5py, json, shutil, struct, sys
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:
    names = []
    f["weights"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None)
    ds = f["weights"][names[0]]
    a = ds[()]
    a.flat[0] = float("nan")
    ds[...] = a
hdr = json.dumps({"step": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}).encode()
open(sys.argv[3], "wb").write(struct.pack("<Q", len(hdr)) + hdr + struct.pack("<qq", 1, 2))
PY
expect_status 2 $RB inspect "$T/nan.h5"
grep -q "non-finite value" "$T/out" && ok || bad "inspect does not report the NaN: $(cat "$T/out")"
expect_status 2 $RB weights --methods sparsity -o "$T/w" "$T/nan.h5"; one_line
expect_status 2 $RB inspect "$T/int.safetensors"
grep -q "no float tensor" "$T/out" && ok || bad "inspect integer-only: $(cat "$T/out")"
expect_status 2 $RB weights --methods sparsity -o "$T/w" "$T/int.safetensors"; one_line
grep -q "no float tensor" "$T/err" && ok || bad "weights integer-only: $(cat "$T/err")"

# ------------------------------------------------------------ sweep kill
# Seeded random kill points (SIGINT and SIGKILL), 20 trials (6 under the
# sanitizers): the resumed sweep equals an uninterrupted one.
"$PY" "$(dirname "$0")/sweep_kill.py" "$RB" "$T/sk" 13 $([ $SAN = 1 ] && echo 6 || echo 20) && ok || bad "sweep kill test"

finish

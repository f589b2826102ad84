#!/bin/bash
# cli_dump.sh -- `repbench inspect` and `repbench gen` from the command line.
#
# Builds the malformed-dump corpus with h5py (tests/make_bad_dumps.py: one
# file per refusal of issue 2 item 2), and checks that `repbench inspect`
# exits 2 with a line "problem: FILE: DATASET: ..." naming the file and the
# dataset for each; that valid dumps written by h5py (float16/float64
# features, int64/uint8 labels, optional arrays, unknown objects) are clean
# and listed correctly; the layer-order rules; `repbench gen` determinism and
# usage errors; and, when `repbench run` works, that it refuses the corpus
# with exit 2 and writes no results.csv.
#
# Environment: RB_BIN (default bin/repbench), PYTHON (default /usr/bin/python3).
set -u
RB_BIN=${RB_BIN:-bin/repbench}
PYTHON=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/rb_cli_dump.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

if ! "$PYTHON" "$HERE/make_bad_dumps.py" "$T"; then
    echo "FAIL: make_bad_dumps.py (needs $PYTHON with h5py and numpy)"
    exit 1
fi

# ------------------------------------------------------------- refusals
while IFS=$'\t' read -r file ds words; do
    f="$T/$file"
    "$RB_BIN" inspect "$f" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" = 2 ] && ok || bad "$file: inspect exit $rc, want 2"
    if [ "$ds" = "-" ]; then prefix="problem: $f: "; else prefix="problem: $f: $ds: "; fi
    line=$(grep -F -- "$prefix" "$T/out" | grep -F -- "$words" | head -1)
    [ -n "$line" ] && ok || { bad "$file: no line '$prefix...$words'"; sed 's/^/    /' "$T/out"; }
    tail -1 "$T/out" | grep -Eq '^[0-9]+ problem\(s\)$' && ok || bad "$file: last line is not 'N problem(s)'"
done <"$T/manifest.tsv"
nbad=$(wc -l <"$T/manifest.tsv")
[ "$nbad" -ge 25 ] && ok || bad "corpus has only $nbad files"

# Every problem, not only the first.
"$RB_BIN" inspect "$T/many.h5" >"$T/out"
rc=$?
[ "$rc" = 2 ] && ok || bad "many.h5: exit $rc"
grep -qx "3 problem(s)" "$T/out" && ok || { bad "many.h5: want 3 problems"; cat "$T/out"; }
for w in "/features/test/l3: missing" "/labels/test: label -1 at row 2" "/features/train/l1: NaN at row 3"; do
    grep -qF "problem: $T/many.h5: $w" "$T/out" && ok || bad "many.h5: no '$w'"
done

# Several files: exit 2 when any is bad, every file reported.
"$RB_BIN" inspect "$T/good_depth.h5" "$T/nan.h5" >"$T/out"
[ $? = 2 ] && ok || bad "good+bad: exit not 2"
grep -qx "ok" "$T/out" && grep -qx "1 problem(s)" "$T/out" && ok || bad "good+bad: want ok and 1 problem(s)"

# --------------------------------------------------------------- valid
"$RB_BIN" inspect "$T/good_mixed.h5" >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" = 0 ] && ok || { bad "good_mixed.h5: exit $rc"; cat "$T/out" "$T/err"; }
expect() { # file pattern (fixed string) description
    grep -qF -- "$2" "$1" && ok || { bad "$3: no '$2'"; sed 's/^/    /' "$1"; }
}
expect "$T/out" "model    mixed_model" "model attr"
expect "$T/out" "dataset  good_mixed" "dataset defaults to the base name"
expect "$T/out" "train: [40, 3] float16" "float16 layer"
expect "$T/out" "test: [16, 5] float64" "float64 layer"
expect "$T/out" "labels int64 [40]" "int64 labels"
expect "$T/out" "labels uint8 [16]" "uint8 labels"
expect "$T/out" "ood_noise    N = 7" "ood split"
expect "$T/out" "/logits/test [16, 4] float32" "logits"
expect "$T/out" "/text/clip [4, 5] float32" "text"
expect "$T/out" "/tokens/test/blk2 [16, 3, 5] float32" "tokens"
expect "$T/out" "/meta (group)" "ignored group"
expect "$T/out" "/@author (attribute)" "ignored root attribute"
expect "$T/out" "/features/train/blk2/@units (attribute)" "ignored dataset attribute"
# The attribute lines come from the guard's child process (guard_scan); the
# in-process listing (RB_DUMP_NO_GUARD=1) gives the same report.
RB_DUMP_NO_GUARD=1 "$RB_BIN" inspect "$T/good_mixed.h5" >"$T/out_ng" 2>&1
cmp -s "$T/out" "$T/out_ng" && ok || { bad "inspect differs without the guard"; diff "$T/out" "$T/out_ng" | head; }

# A file whose corrupt attribute message makes libhdf5 1.10.8's attribute
# iteration use an uninitialised table (found by tests/fuzz_dump.c; under
# ASan it is a SEGV in H5A__close).  It must never take repbench down: a
# clean report (release build: the child survives) or a one-line refusal
# (sanitizer build: the child dies), never a signal.
for cmd in inspect run; do
    if [ $cmd = run ]; then args="run --methods ncm --bootstrap 0 -o $T/crash_out"; else args=inspect; fi
    "$RB_BIN" $args tests/fixtures/hdf5/attr_table_crash.h5 >"$T/crash_o" 2>"$T/crash_e"
    rc=$?
    if [ $rc = 0 ]; then ok
    elif [ $rc = 2 ] && grep -q "attr_table_crash.h5: the HDF5 library .* the file is corrupt" "$T/crash_o" "$T/crash_e" &&
         [ "$(grep -c . "$T/crash_e")" -le 1 ]; then ok
    else bad "attr_table_crash.h5 ($cmd): exit $rc"; head -5 "$T/crash_o" "$T/crash_e"; fi
done
# A file on which libhdf5 1.10.8 loops forever reading a vlen string
# attribute (a global heap that points into itself; found by fuzz_dump): the
# guarded scan is ended after RB_SCAN_SECONDS and the file refused in one
# line, exit 2, for inspect and run alike (before: a hang).
for cmd in inspect run; do
    if [ $cmd = run ]; then args="run --methods ncm --bootstrap 0 -o $T/loop_out"; else args=inspect; fi
    RB_SCAN_SECONDS=2 timeout 60 "$RB_BIN" $args tests/fixtures/hdf5/heap_loop.h5 >"$T/loop_o" 2>"$T/loop_e"
    rc=$?
    if [ $rc = 2 ] && grep -q "heap_loop.h5: the HDF5 library did not finish reading the file's structure in 2 s" \
         "$T/loop_o" "$T/loop_e" && [ "$(grep -c . "$T/loop_e")" -le 1 ]; then ok
    else bad "heap_loop.h5 ($cmd): exit $rc"; head -5 "$T/loop_o" "$T/loop_e"; fi
done
grep -Eq '^ +2 +cat +10 +4$' "$T/out" && ok || bad "class 2 'cat' with counts 10 / 4"
# natural order: blk2 before blk10
order=$(awk '/^  layers/{on=1;next} /^  classes/{on=0} on{print $1}' "$T/out" | tr '\n' ' ')
[ "$order" = "blk2 blk10 " ] && ok || bad "natural order: got '$order'"
tail -1 "$T/out" | grep -qx ok && ok || bad "good_mixed.h5: last line not ok"

"$RB_BIN" inspect "$T/good_layers_attr.h5" >"$T/out"
[ $? = 0 ] && ok || bad "good_layers_attr.h5 exit"
expect "$T/out" "order: root attribute layers" "layers attr order"
order=$(awk '/^  layers/{on=1;next} /^  classes/{on=0} on{print $1}' "$T/out" | tr '\n' ' ')
[ "$order" = "zeta mid alpha " ] && ok || bad "layers attr order: got '$order'"

"$RB_BIN" inspect "$T/good_layers_string.h5" >"$T/out"
[ $? = 0 ] && ok || { bad "good_layers_string.h5 exit"; cat "$T/out"; }
expect "$T/out" "order: root attribute layers" "layers string order"
order=$(awk '/^  layers/{on=1;next} /^  classes/{on=0} on{print $1}' "$T/out" | tr '\n' ' ')
[ "$order" = "zeta mid alpha " ] && ok || bad "layers string order: got '$order'"
"$RB_BIN" inspect "$T/good_layers_comma_name.h5" >"$T/out"
[ $? = 0 ] && ok || { bad "good_layers_comma_name.h5 exit"; cat "$T/out"; }

"$RB_BIN" inspect "$T/good_depth.h5" >"$T/out"
[ $? = 0 ] && ok || bad "good_depth.h5 exit"
expect "$T/out" "order: depth attribute" "depth order"
order=$(awk '/^  layers/{on=1;next} /^  classes/{on=0} on{print $1}' "$T/out" | tr '\n' ' ')
[ "$order" = "b c a d " ] && ok || bad "depth order: got '$order'"
"$RB_BIN" inspect "$T/no_train_features.h5" | grep -m1 '^problem:' | grep -qF "/features/train: missing" \
    && ok || bad "no_train_features.h5: first problem should be the missing /features/train"
"$RB_BIN" inspect "$T" >"$T/out"
[ $? = 2 ] && grep -qF "problem: $T: is a directory" "$T/out" && ok || bad "inspect of a directory"

# ----------------------------------------------------------------- gen
g="$RB_BIN gen gmm --seed 5 --classes 3 --dim 8 --layers 2 --n-train 60 --n-test 30 --n-ood 20"
$g --model mm -o "$T/g1.h5" && ok || bad "gen g1"
$g --model mm -o "$T/g2.h5" && ok || bad "gen g2"
cmp -s "$T/g1.h5" "$T/g2.h5" && ok || bad "gen: same seed, different bytes"
[ ! -e "$T/g1.h5.tmp" ] && ok || bad "gen left g1.h5.tmp"
"$RB_BIN" gen gmm --seed 6 --classes 3 --dim 8 --layers 2 --n-train 60 --n-test 30 --n-ood 20 --model mm -o "$T/g3.h5"
cmp -s "$T/g1.h5" "$T/g3.h5" && bad "gen: seeds 5 and 6 give the same file" || ok
"$RB_BIN" inspect "$T/g1.h5" >"$T/out" && ok || bad "gen output not clean"
expect "$T/out" "model    mm" "gen model"
expect "$T/out" "ood_far      N = 20" "gen ood split"
expect "$T/out" "train: [60, 8] float32" "gen shape"
# The values against h5py: class means near sep1 * unit vectors at the last layer.
"$PYTHON" - "$T/g1.h5" <<'EOF' && ok || bad "gen contents checked by h5py"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f.attrs["format"] == "repbench-features" and f.attrs["version"] == 1
assert f.attrs["model"] == "mm" and f.attrs["dataset"] == "gmm_k3_d8"
assert [f["features/train"][l].attrs["depth"] for l in ("layer1", "layer2")] == [1, 2]
assert f["labels/train"].dtype == np.int32 and f["features/train/layer1"].dtype == np.float32
y = f["labels/train"][:]
assert sorted(np.bincount(y)) == [20, 20, 20]
assert "ood_far" not in f["labels"]
EOF

# Usage errors: one line on stderr, exit 2.
usage_case() { # description, args...
    local what=$1
    shift
    "$RB_BIN" gen "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    [ "$rc" = 2 ] && ok || bad "gen $what: exit $rc, want 2"
    [ "$(wc -l <"$T/err")" = 1 ] && ok || { bad "gen $what: want one line on stderr"; cat "$T/err"; }
}
usage_case "non-numeric classes" gmm --classes abc -o "$T/u.h5"
usage_case "classes 1" gmm --classes 1 -o "$T/u.h5"
usage_case "trailing junk" gmm --dim 8x -o "$T/u.h5"
usage_case "dim 0" gmm --dim 0 -o "$T/u.h5"
usage_case "negative seed" gmm --seed -3 -o "$T/u.h5"
usage_case "negative sep" gmm --sep0 -1 -o "$T/u.h5"
usage_case "nan sd" gmm --sd1 nan -o "$T/u.h5"
usage_case "no output" gmm --seed 1
usage_case "unknown kind" blobs -o "$T/u.h5"
usage_case "no kind" -o "$T/u.h5"
usage_case "unknown option" gmm --colour red -o "$T/u.h5"
usage_case "missing value" gmm -o
usage_case "n-train below classes" gmm --classes 10 --n-train 5 -o "$T/u.h5"
[ ! -e "$T/u.h5" ] && ok || bad "a refused gen wrote $T/u.h5"
"$RB_BIN" inspect >/dev/null 2>&1
[ $? = 2 ] && ok || bad "inspect without a dump: exit not 2"

# ----------------------------------------------------------------- run
# When the harness is built, `run` refuses every bad dump the same way and
# writes no results.csv.
"$RB_BIN" gen gmm --seed 1 --classes 3 --dim 4 --layers 1 --n-train 30 --n-test 15 --n-ood 0 -o "$T/tiny.h5" >/dev/null
timeout 120 "$RB_BIN" run --bootstrap 0 -o "$T/run_ok" "$T/tiny.h5" >/dev/null 2>&1 && [ -s "$T/run_ok/results.csv" ] \
    && ok || bad "run on a valid generated dump failed"
if true; then
    while IFS=$'\t' read -r file ds words; do
        "$RB_BIN" run --bootstrap 0 -o "$T/run_bad" "$T/$file" >/dev/null 2>"$T/err"
        rc=$?
        [ "$rc" = 2 ] && ok || bad "run $file: exit $rc, want 2"
        [ ! -e "$T/run_bad/results.csv" ] && ok || bad "run $file: wrote results.csv"
        grep -qF -- "$T/$file" "$T/err" && ok || bad "run $file: message does not name the file"
        rm -rf "$T/run_bad"
    done <"$T/manifest.tsv"
fi

# `inspect` and `run` agree on every file: inspect reports a problem (exit
# 2) exactly when run refuses it (exit 2) -- the corpus, the valid dumps and
# the fixtures alike.
nagree=0
for f in "$T"/*.h5 tests/fixtures/hdf5/*.h5; do
    export RB_SCAN_SECONDS=2 # heap_loop.h5: the guard's time limit, not 20 s
    "$RB_BIN" inspect "$f" >/dev/null 2>&1
    ri=$?
    "$RB_BIN" run --methods gnb --bootstrap 0 --quiet -o "$T/agree_out" "$f" >/dev/null 2>"$T/err"
    rr=$?
    rm -rf "$T/agree_out"
    if { [ $ri = 2 ] && [ $rr = 2 ]; } || { [ $ri = 0 ] && [ $rr = 0 ]; }; then ok
    else bad "$(basename "$f"): inspect exit $ri, run exit $rr (must agree)"; head -2 "$T/err"; fi
    nagree=$((nagree + 1))
done
[ "$nagree" -ge 40 ] && ok || bad "inspect/run agreement checked on only $nagree files"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

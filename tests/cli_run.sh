#!/usr/bin/env bash
# cli_run.sh -- the harness from the outside: usage errors, option checking,
# refusals of bad dumps, atomic outputs, determinism, run.json provenance.
set -u
. "$(dirname "$0")/lib.sh"

$RB gen gmm --seed 3 --classes 4 --dim 8 --layers 3 --n-train 200 --n-test 100 --n-ood 50 --model tiny -o "$T/tiny.h5" || { echo "FAIL: gen"; exit 1; }
M=$($RB list | awk 'NR>1 && $2=="probe"{print $1}' | head -n 1)
[ -n "$M" ] || { echo "FAIL: no probe method registered (a missing method fails the run tests, it is not skipped)"; echo "$pass passed, 1 failed"; exit 1; }

# Usage errors: exit 2, one line.
expect_status 2 $RB run "$T/tiny.h5"
expect_status 2 $RB run --methods no_such_method -o "$T/o" "$T/tiny.h5"; one_line
expect_status 2 $RB run --methods "$M" --no-such-option 3 -o "$T/o" "$T/tiny.h5"; one_line
expect_status 2 $RB run --methods "$M" --seed -4 -o "$T/o" "$T/tiny.h5"; one_line
expect_status 2 $RB run --methods "$M" --layers nope -o "$T/o" "$T/tiny.h5"; one_line
expect_status 2 $RB run --methods "$M" -o "$T/o" "$T/missing.h5"; one_line
grep -q "missing.h5" "$T/err" && ok || bad "error does not name the file"
expect_status 2 $RB frobnicate
# A bad value of a method option stops the run with exit 2 (not a per-layer failure).
expect_status 2 $RB run --methods knn --knn-k 0 -o "$T/o" "$T/tiny.h5"; one_line
[ ! -e "$T/o/results.csv" ] && ok || bad "results.csv written after a refusal"

# A text file and a truncated dump are refused without output.
echo "not hdf5" > "$T/text.h5"
expect_status 2 $RB run --methods "$M" -o "$T/o2" "$T/text.h5"; one_line
head -c 3000 "$T/tiny.h5" > "$T/trunc.h5"
expect_status 2 $RB run --methods "$M" -o "$T/o2" "$T/trunc.h5"; one_line
[ ! -e "$T/o2/results.csv" ] && ok || bad "results.csv written for a bad dump"

# A good run: schema, provenance, determinism (all columns but seconds).
# --help prints the usage and exits 0 (it once asked for a value).
$RB run --help >"$T/help" 2>&1 && grep -q "^usage: repbench run" "$T/help" && ok || bad "run --help"
expect_status 0 $RB run --methods "$M" --seed 5 --bootstrap 50 -o "$T/a" "$T/tiny.h5"
expect_status 0 $RB run --methods "$M" --seed 5 --bootstrap 50 --threads 1 -o "$T/b" "$T/tiny.h5"
ls "$T/a"/*.tmp >/dev/null 2>&1 && bad "temporary file left behind" || ok
# --mem-limit: sizes with suffixes are taken; anything else is one line, exit 2.
expect_status 0 $RB run --methods "$M" --seed 5 --bootstrap 50 --mem-limit 1.5GiB -o "$T/m" "$T/tiny.h5"
cmp -s "$T/a/results.csv" "$T/m/results.csv" 2>/dev/null || \
  "$PY" -c "import csv,sys; f=lambda p:[{k:v for k,v in r.items() if k!='seconds'} for r in csv.DictReader(open(p))]; sys.exit(f(sys.argv[1])!=f(sys.argv[2]))" \
  "$T/a/results.csv" "$T/m/results.csv" && ok || bad "--mem-limit 1.5GiB changed the results"
for v in 1x -5M 0 512K 12Q ''; do
  expect_status 2 $RB run --methods "$M" --mem-limit "$v" -o "$T/m2" "$T/tiny.h5"; one_line
  grep -q -- "--mem-limit" "$T/err" && ok || bad "--mem-limit '$v' refusal does not name the option"
done
"$PY" - "$T/a" "$T/b" "$M" <<'PY' && ok || bad "results/run.json checks"
import csv, json, sys, math
a, b, m = sys.argv[1:4]
ra = list(csv.DictReader(open(a + "/results.csv", newline="")))
rb = list(csv.DictReader(open(b + "/results.csv", newline="")))
hdr = "model,dataset,layer,split,method,params,metric,value,ci_low,ci_high,n,seed,seconds".split(",")
assert list(ra[0].keys()) == hdr, ra[0].keys()
assert len(ra) == len(rb) and len(ra) > 0
for x, y in zip(ra, rb):
    for k in hdr:
        if k != "seconds": assert x[k] == y[k], (k, x[k], y[k])
layers = sorted({r["layer"] for r in ra})
assert layers == ["layer1", "layer2", "layer3"], layers
for r in ra:
    assert r["model"] == "tiny" and r["method"] == m and r["seed"] == "5"
    if r["metric"] in ("top1", "balanced_acc"):
        v, lo, hi = float(r["value"]), float(r["ci_low"]), float(r["ci_high"])
        assert 0 <= lo <= v <= hi <= 1, r
        assert r["n"] == "100", r
    assert float(r["seconds"]) >= 0
j = json.load(open(a + "/run.json"))
for k in ("repbench_version", "git_commit", "inputs", "threads", "start", "end", "host"):
    assert k in j, k
# The checksum, recomputed here from its definition (core/rb.h).
def fnv1a(h, bs):
    for b in bs:
        h = ((h ^ b) * 0x100000001b3) & (2**64 - 1)
    return h
import struct
data = open(j["inputs"][0]["path"], "rb").read()
assert j["inputs"][0]["bytes"] == len(data) > 0
pad = data + bytes(-len(data) % 32)
lanes = [0xcbf29ce484222325 + l for l in range(4)]
for i in range(0, len(pad), 32):
    for l, w in enumerate(struct.unpack_from("<4Q", pad, i)):
        lanes[l] = ((lanes[l] ^ w) * 0x100000001b3) & (2**64 - 1)
want = fnv1a(0xcbf29ce484222325, struct.pack("<5Q", *lanes, len(data)))
assert j["inputs"][0]["fnv1a64x4"] == "%016x" % want, (j["inputs"][0], "%016x" % want)
PY
# run.json names the commit the binary was built from (make rebuilds the
# stamp when HEAD moves; it was once stuck at an old commit).
if head=$(git rev-parse --short=12 HEAD 2>/dev/null); then
  "$PY" - "$T/a/run.json" "$head" <<'PY' && ok || bad "run.json git_commit is HEAD"
import json, sys
c = json.load(open(sys.argv[1]))["git_commit"]
assert c.split("-")[0] == sys.argv[2], (c, sys.argv[2])
PY
fi
# Different seed changes the interval, not the point estimate.
expect_status 0 $RB run --methods "$M" --seed 6 --bootstrap 50 -o "$T/c" "$T/tiny.h5"
"$PY" - "$T/a" "$T/c" <<'PY' && ok || bad "seed dependence"
import csv, sys
ra = list(csv.DictReader(open(sys.argv[1] + "/results.csv")))
rc = list(csv.DictReader(open(sys.argv[2] + "/results.csv")))
assert [r["value"] for r in ra] == [r["value"] for r in rc]
assert [r["ci_low"] for r in ra] != [r["ci_low"] for r in rc]
PY
# --predictions: one row per test sample per result set.
expect_status 0 $RB run --methods "$M" --bootstrap 0 --predictions -o "$T/p" "$T/tiny.h5"
"$PY" - "$T/p" <<'PY' && ok || bad "predictions.csv"
import csv, sys
p = list(csv.DictReader(open(sys.argv[1] + "/predictions.csv")))
r = [x for x in csv.DictReader(open(sys.argv[1] + "/results.csv")) if x["metric"] == "top1"]
assert len(p) == 100 * len(r), (len(p), len(r))
assert list(p[0]) == ["layer", "split", "method", "params", "index", "pred", "label"], list(p[0])
assert all(x["split"] == "test" for x in p)
assert r[0]["ci_low"] == "" and r[0]["ci_high"] == ""
PY
# cka_cross: a dump against itself gives CKA 1 on the diagonal; a dump of
# other samples (different N) is refused with exit 2; without --other the
# method is listed as skipped.
expect_status 0 $RB run --methods cka_cross --other "$T/tiny.h5" -o "$T/x" "$T/tiny.h5"
"$PY" - "$T/x" <<'PY' && ok || bad "cka_cross self"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1] + "/results.csv")))
diag = [r for r in rows if r["method"] == "cka_cross" and r["layer"].split("|")[0] == r["layer"].split("|")[1]]
assert len(diag) >= 3 * 4, len(diag)
for r in diag: assert abs(float(r["value"]) - 1) < 1e-9, r
PY
$RB gen gmm --seed 3 --classes 4 --dim 8 --layers 3 --n-train 200 --n-test 90 --model tiny2 -o "$T/tiny2.h5"
expect_status 2 $RB run --methods cka_cross --other "$T/tiny2.h5" -o "$T/x2" "$T/tiny.h5"; one_line
expect_status 0 $RB run --methods cka_cross,"$M" --bootstrap 0 -o "$T/x3" "$T/tiny.h5"
grep -q '"method": "cka_cross", "layer": "\*", "reason": "needs --other' "$T/x3/run.json" && ok || bad "cka_cross not listed as skipped"
grep -qx 'skipped,cka_cross,\*,needs --other DUMP (a second model on the same samples)' "$T/x3/skipped.csv" && ok || bad "skipped.csv"
[ "$(head -n 1 "$T/a/skipped.csv")" = "status,method,layer,reason" ] && [ "$(wc -l < "$T/a/skipped.csv")" = 1 ] && ok || bad "empty skipped.csv"
# Known answer for calibration: gen writes the Bayes head's logits times
# --logit-scale, so the NLL-optimal temperature fitted on 20000 train
# samples is 2 up to sampling error (measured 1.98).
$RB gen gmm --seed 3 --classes 5 --dim 16 --layers 2 --n-train 20000 --n-test 2000 --n-ood 0 \
    --sep1 1.5 --sd1 1 --logit-scale 2 -o "$T/calib.h5"
expect_status 0 $RB run --methods calib --bootstrap 0 -o "$T/cal" "$T/calib.h5"
"$PY" - "$T/cal" <<'PY' && ok || bad "calib temperature of a 2x over-confident Bayes head"
import csv, sys
r = {x["metric"]: float(x["value"]) for x in csv.DictReader(open(sys.argv[1] + "/results.csv"))}
assert abs(r["temperature"] - 2) < 0.1, r["temperature"]
assert r["nll_ts"] < r["nll"] and r["ece15_ts"] < r["ece15"], r
PY
# list
$RB list --metrics | grep -q '^top1 ' && ok || bad "list --metrics"
[ "$($RB list --families | sort | uniq -d)" = "" ] && ok || bad "duplicate families"
finish

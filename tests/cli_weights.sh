#!/bin/bash
# cli_weights.sh -- `repbench weights`, `repbench gen weights` and `repbench
# inspect` of checkpoints: known answers of the sample checkpoints, refusals
# with exit 2 and one line, the malformed-checkpoint corpus (cli_weights.py).
# Environment: RB_BIN (default bin/repbench), PYTHON (default /usr/bin/python3).
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
W=$(mktemp -d /tmp/rb_cli_weights.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail=0
pass() { echo "PASS $1"; }
bad() { echo "FAIL $1"; fail=1; }

# Refusal: exit 2, exactly one line on stderr containing $2.
refuse() {
    local what=$1 want=$2; shift 2
    "$@" >"$W/out" 2>"$W/err"
    local st=$? n
    n=$(wc -l <"$W/err")
    if [ $st -eq 2 ] && [ "$n" -eq 1 ] && grep -qF -- "$want" "$W/err"; then pass "$what"
    else bad "$what: exit $st, stderr: $(cat "$W/err")"; fi
}

# ---------------------------------------------------------------- samples
$RB gen gmm --seed 1 --classes 10 --dim 64 --layers 3 --n-train 600 --n-test 300 --n-ood 0 \
    --model gmm -o "$W/gmm.h5" || bad "gen gmm"
$RB gen weights --kind pre --seed 3 --degenerate 0.25 --features "$W/gmm.h5" --model pre -o "$W/pre.safetensors" &&
$RB gen weights --kind init --seed 3 --features "$W/gmm.h5" --model init -o "$W/init.h5" &&
$RB gen weights --kind ft --seed 3 --task 1 --rank 3 --degenerate 0.25 --features "$W/gmm.h5" --model ft1 -o "$W/ft1.h5" &&
$RB gen weights --kind ft --seed 3 --task 2 --rank 3 --degenerate 0.25 --dtype f16 --features "$W/gmm.h5" --model ft2 -o "$W/ft2.safetensors" &&
$RB gen weights --kind ft --seed 3 --task 3 --rank 3 --degenerate 0.25 --dtype bf16 --features "$W/gmm.h5" --model ft3 -o "$W/ft3.safetensors" \
    && pass "gen weights (safetensors f32/f16/bf16, hdf5)" || bad "gen weights"
refuse "gen weights: bad kind" "--kind" $RB gen weights --kind nope -o "$W/x.h5"
refuse "gen weights: bf16 to hdf5" "bf16" $RB gen weights --dtype bf16 -o "$W/x.h5"

# ---------------------------------------------------------------- inspect
if $RB inspect "$W/pre.safetensors" >"$W/insp" 2>&1 && grep -q "layer3.0.conv2.weight .*\[64,64,3,3\].*3x3 conv" "$W/insp" \
   && grep -q "format safetensors, model pre" "$W/insp"; then pass "inspect checkpoint"
else bad "inspect checkpoint: $(cat "$W/insp")"; fi

# ------------------------------------------------------------ full run
if $RB weights --seed 5 --features "$W/gmm.h5" -o "$W/run" "$W/pre.safetensors" "$W/ft1.h5" \
     "$W/ft2.safetensors" "$W/ft3.safetensors" "$W/init.h5" 2>"$W/err"; then pass "weights: all methods"
else bad "weights: all methods: $(cat "$W/err")"; fi
for f in results.csv run.json filter_shift.csv filter_shift_models.csv filter_shift_depth.csv filter_basis.csv spectra.csv; do
    [ -s "$W/run/$f" ] && pass "output $f" || bad "output $f missing"
done
if head=$(git rev-parse --short=12 HEAD 2>/dev/null); then
    c=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["git_commit"])' "$W/run/run.json")
    [ "${c%%-*}" = "$head" ] && pass "run.json git_commit is HEAD" || bad "run.json git_commit $c, HEAD $head"
fi
"$PY" - "$W/run" <<'PYEOF' || fail=1
import csv, math, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/results.csv")))
ok = True
def check(what, cond):
    global ok
    print(("PASS " if cond else "FAIL ") + what)
    ok &= bool(cond)
hdr = "model,dataset,layer,split,method,params,metric,value,ci_low,ci_high,n,seed,seconds".split(",")
check("results.csv header", list(rows[0].keys()) == hdr)
def get(model=None, layer=None, metric=None, params=None, split=None):
    return [r for r in rows if (model is None or r["model"] == model) and (layer is None or r["layer"] == layer)
            and (metric is None or r["metric"] == metric) and (params is None or r["params"] == params)
            and (split is None or r["split"] == split)]
convs = ["conv1.weight", "layer1.0.conv1.weight", "layer1.0.conv2.weight", "layer2.0.conv1.weight",
         "layer2.0.conv2.weight", "layer3.0.conv1.weight", "layer3.0.conv2.weight"]
# pre: exactly round(0.25 n)/n degenerate filters in every conv layer.
for l in convs:
    r = get("pre", l, "filter_sparsity")[0]
    n = int(r["n"])
    check("pre %s sparsity = round(0.25 n)/n" % l, abs(float(r["value"]) - math.floor(0.25 * n + 0.5) / n) < 1e-15)
# init: Kaiming uniform -> no degenerate filter, entropy near the untrained curve.
for l in convs[1:]:
    check("init %s sparsity 0" % l, float(get("init", l, "filter_sparsity")[0]["value"]) == 0)
    check("init %s entropy_norm in [0.9, 1.1]" % l, 0.9 <= float(get("init", l, "filter_entropy_norm")[0]["value"]) <= 1.1)
    check("pre %s smooth filters: entropy_norm < 0.8" % l, float(get("pre", l, "filter_entropy_norm")[0]["value"]) < 0.8)
# fine-tunes: every weight block's task vector has rank 3 (rank-3 deltas);
# init as a "task" is full rank.
for m in ("ft1", "ft2", "ft3"):
    for l in convs + ["proj.weight", "fc.weight"]:
        v = get(m, l, "tv_energy_rank")
        check("%s %s task-vector rank 3" % (m, l), len(v) == 1 and float(v[0]["value"]) == 3)
# Task vectors of different tasks are nearly orthogonal (|cos| < 0.2 whole model).
for r in get(layer="all", metric="tv_cosine"):
    if r["model"].startswith("ft") and "with=ft" in r["params"]:
        check("cosine %s %s small" % (r["model"], r["params"]), abs(float(r["value"])) < 0.2)
# pre proj.weight: power-law ESD with alpha = 3 within one standard error.
a = float(get("pre", "proj.weight", "alpha")[0]["value"]); se = float(get("pre", "proj.weight", "alpha_se")[0]["value"])
check("pre proj alpha %.3f within se %.3f of 3" % (a, se), abs(a - 3) <= se)
# WeightWatcher rand_distance / softrank: a random init is its own shuffle
# (softrank ~ 1, distance small); the structured proj.weight is not.
for l in ["layer3.0.conv1.weight", "layer3.0.conv2.weight", "proj.weight"]:
    check("init %s softrank ~ 1" % l, 0.9 <= float(get("init", l, "ww_softrank")[0]["value"]) <= 1.15)
    check("init %s rand_distance < 0.05" % l, float(get("init", l, "ww_rand_distance")[0]["value"]) < 0.05)
check("pre proj softrank < 0.6", float(get("pre", "proj.weight", "ww_softrank")[0]["value"]) < 0.6)
check("pre proj rand_distance > 0.1", float(get("pre", "proj.weight", "ww_rand_distance")[0]["value"]) > 0.1)
# Soup rows.
check("soup head_acc for 5 heads x 2 splits", len(get(metric="head_acc")) == 10)
g = get(metric="greedy_soup_acc", split="test")
check("greedy soup row", len(g) == 1 and "ingredients=" in g[0]["params"])
w = get(metric="wiseft_acc")
check("wiseft 21 alphas x 4 heads", len(w) == 84)
acc0 = float(get("pre", None, "head_acc", split="test")[0]["value"])
w0 = [r for r in w if r["params"].startswith("alpha=0;")]
check("wiseft alpha=0 equals the first head", all(abs(float(r["value"]) - acc0) < 1e-15 for r in w0))
for r in w:
    if r["params"].startswith("alpha=1;"):
        check("wiseft alpha=1 equals head %s" % r["model"],
              abs(float(r["value"]) - float(get(r["model"], None, "head_acc", split="test")[0]["value"])) < 1e-15)
check("every value finite", all(math.isfinite(float(r["value"])) for r in rows))
check("seed column", all(r["seed"] == "5" for r in rows))
# Shift matrix: symmetric with zero diagonal.
m = list(csv.reader(open(d + "/filter_shift.csv")))
names = m[0][1:]
vals = [[float(x) for x in row[1:]] for row in m[1:]]
check("filter_shift.csv square %d" % len(names), len(vals) == len(names) == 35)
check("filter_shift symmetric, zero diagonal",
      all(vals[i][i] == 0 and vals[i][j] == vals[j][i] for i in range(len(vals)) for j in range(len(vals))))
sys.exit(0 if ok else 1)
PYEOF

# Zero-shot WiSE-FT: /text/zs added to a copy of the dump; alpha = 0 is the
# accuracy of argmax(x T^T) (computed here with NumPy), alpha = 1 each head's.
cp "$W/gmm.h5" "$W/gmm_zs.h5"
"$PY" - "$W" <<'PYEOF' || fail=1
import h5py, numpy as np, sys
d = sys.argv[1]
with h5py.File(d + "/gmm_zs.h5", "a") as f:
    layers = sorted(f["features/train"].keys(), key=lambda k: int(f["features/train"][k].attrs.get("depth", 0)))
    last = layers[-1]
    x, y = f["features/train/" + last][...], f["labels/train"][...]
    t = np.stack([x[y == c].mean(0) for c in range(10)]) + np.random.default_rng(0).normal(0, 0.3, (10, x.shape[1]))
    f.create_dataset("text/zs", data=t.astype("f4"))
    xt, yt = f["features/test/" + last][...].astype(np.float64), f["labels/test"][...]
    acc = float(np.mean(np.argmax(xt @ t.astype("f4").astype(np.float64).T, 1) == yt))
open(d + "/zs_acc", "w").write(repr(acc))
PYEOF
if $RB weights --methods soup --features "$W/gmm_zs.h5" --zeroshot zs --alphas 0,0.5,1 -o "$W/zs" \
     "$W/pre.safetensors" "$W/ft1.h5" 2>"$W/err"; then
    "$PY" - "$W" <<'PYEOF' || fail=1
import csv, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/zs/results.csv")))
acc = float(open(d + "/zs_acc").read())
w = [r for r in rows if r["metric"] == "wiseft_acc"]
ok = len(w) == 6 and all("from=/text/zs" in r["params"] for r in w)
a0 = [float(r["value"]) for r in w if r["params"].startswith("alpha=0;")]
ok &= len(a0) == 2 and all(abs(v - acc) < 1e-12 for v in a0)
for r in w:
    if r["params"].startswith("alpha=1;"):
        h = [float(x["value"]) for x in rows if x["metric"] == "head_acc" and x["model"] == r["model"] and x["split"] == "test"]
        ok &= abs(float(r["value"]) - h[0]) < 1e-15
print(("PASS" if ok else "FAIL") + " zero-shot WiSE-FT (alpha=0 acc %.4f vs NumPy %.4f)" % (a0[0] if a0 else -1, acc))
sys.exit(0 if ok else 1)
PYEOF
else bad "zero-shot soup: $(cat "$W/err")"; fi

# Determinism: the same run twice gives the same values.
$RB weights --seed 5 --methods filters,spectra,sparsity -o "$W/run2" "$W/pre.safetensors" "$W/init.h5" 2>/dev/null
$RB weights --seed 5 --methods filters,spectra,sparsity -o "$W/run3" "$W/pre.safetensors" "$W/init.h5" 2>/dev/null
if cmp -s <(cut -d, -f1-12 "$W/run2/results.csv") <(cut -d, -f1-12 "$W/run3/results.csv"); then pass "deterministic"
else bad "two runs differ"; fi

# --layers restricts every method to the named tensors.
if $RB weights --layers fc.weight,layer2.0.conv1.weight -o "$W/lay" "$W/pre.safetensors" "$W/ft1.h5" 2>/dev/null &&
   [ "$(cut -d, -f3 "$W/lay/results.csv" | tail -n +2 | grep -v -e '^fc.weight$' -e '^layer2.0.conv1.weight$' -e '^all$' -e '|' | wc -l)" -eq 0 ] &&
   grep -q '^pre,,layer2.0.conv1.weight,.*filter_sparsity' "$W/lay/results.csv"; then pass "--layers selection"
else bad "--layers selection"; fi
refuse "--layers unknown tensor" "no tensor 'nope'" $RB weights --layers nope -o "$W/r12" "$W/pre.safetensors"

# ---------------------------------------------------------------- refusals
$PY - "$W" <<'PYEOF'
import h5py, numpy as np, sys
with h5py.File(sys.argv[1] + "/other.h5", "w") as f:
    f.create_dataset("weights/fc.weight", data=np.ones((3, 4), "f4"))
PYEOF
$RB gen weights --kind ft --seed 3 --degenerate 0.25 --classes 5 --dim 8 -o "$W/small_head.h5"
refuse "taskvec: shapes differ" "tensor fc.bias: shape [5] differs from [10]" \
    $RB weights --methods taskvec -o "$W/r1" "$W/pre.safetensors" "$W/small_head.h5"
refuse "taskvec: names differ" "tensor conv1.bias: missing (present in" \
    $RB weights --methods taskvec -o "$W/r1" "$W/pre.safetensors" "$W/other.h5"
refuse "taskvec: one checkpoint" "at least one fine-tuned" $RB weights --methods taskvec -o "$W/r2" "$W/pre.safetensors"
refuse "soup without features" "needs --features" $RB weights --methods soup -o "$W/r3" "$W/pre.safetensors"
refuse "soup: head missing" "tensor nohead.weight: missing" \
    $RB weights --methods soup --head nohead.weight,fc.bias --features "$W/gmm.h5" -o "$W/r4" "$W/pre.safetensors"
refuse "soup: head shape" "is not [C, 64]" \
    $RB weights --methods soup --head proj.weight --features "$W/gmm.h5" -o "$W/r5" "$W/pre.safetensors"
refuse "unknown method" "unknown method 'nope'" $RB weights --methods nope -o "$W/r6" "$W/pre.safetensors"
refuse "option of an unselected method" "--bins is not read" $RB weights --methods spectra --bins 5 -o "$W/r7" "$W/pre.safetensors"
refuse "bad option value" "sparsity-eps" $RB weights --methods filters --sparsity-eps -1 -o "$W/r8" "$W/pre.safetensors"
refuse "no checkpoint" "no checkpoint" $RB weights -o "$W/r9"
refuse "missing file" "cannot open" $RB weights -o "$W/r10" "$W/absent.safetensors"
for r in r1 r2 r3 r4 r5 r6 r7 r8 r10; do [ -e "$W/$r" ] && bad "refused run $r left output"; done
# taskvec chosen by default on mixed architectures is skipped, not refused.
if $RB weights -o "$W/r11" "$W/pre.safetensors" "$W/other.h5" 2>"$W/err" && grep -q "taskvec skipped" "$W/err"; then
    pass "default methods skip taskvec on mixed architectures"
else bad "default taskvec skip: $(cat "$W/err")"; fi

# ------------------------------------------------------- malformed corpus
"$PY" "$(dirname "$0")/cli_weights.py" "$RB" "$W/corpus" || fail=1

[ $fail -eq 0 ] && echo "cli_weights: all passed" || echo "cli_weights: FAILED"
exit $fail

#!/usr/bin/env bash
# cli_theory.sh -- `repbench theory` from the outside: usage errors (exit 2,
# one line), PASS lines beside the CSV, exit 1 when an assumption is broken,
# determinism, the --table path.
set -u
. "$(dirname "$0")/lib.sh"

$RB list --subcommands | grep -qx theory || { echo "FAIL: the theory subcommand is not built (a missing subcommand fails, it is not skipped)"; echo "0 passed, 1 failed"; exit 1; }

# Usage errors.
expect_status 2 $RB theory no_such_check; one_line
expect_status 2 $RB theory --fast --no-such-option 3 icl; one_line
expect_status 2 $RB theory --fast --imbalance 3 icl; one_line   # declared by nc_ufm only
expect_status 2 $RB theory --seed -4 icl; one_line
expect_status 2 $RB theory --fast --covariates cauchy icl; one_line
expect_status 2 $RB theory -o; one_line

# A fast run: exit 0, one PASS line per pass row of the CSV.
expect_status 0 $RB theory --fast -o "$T/a" icl nc_ufm
cp "$T/out" "$T/a.out"
head -n 1 "$T/a/results.csv" | grep -qx "model,dataset,layer,split,method,params,metric,value,ci_low,ci_high,n,seed,seconds" && ok || bad "CSV header"
$PY - "$T/a/results.csv" "$T/a.out" <<'PY' && ok || bad "CSV rows vs stdout lines"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
out = [l for l in open(sys.argv[2]) if l.startswith(("PASS", "FAIL"))]
passes = [r for r in rows if r["metric"] == "pass"]
assert len(passes) == len(out) >= 10, (len(passes), len(out))
assert all(r["model"] == "theory" and r["dataset"] in ("icl", "nc_ufm") for r in rows)
assert all(r["value"] == "1" for r in passes)
for line in out:
    assert " predicted " in line and " vs simulated " in line, line
PY

# Same seed, same numbers (the seconds column aside); another seed differs.
$RB theory --fast -o "$T/b" icl nc_ufm >/dev/null
cut -d, -f1-12 "$T/a/results.csv" > "$T/a.cut"; cut -d, -f1-12 "$T/b/results.csv" > "$T/b.cut"
cmp -s "$T/a.cut" "$T/b.cut" && ok || bad "not deterministic"
$RB theory --fast --seed 5 -o "$T/c" icl >/dev/null
grep risk_mc "$T/c/results.csv" | head -n 1 | cut -d, -f8 > "$T/c1"; grep risk_mc "$T/a/results.csv" | head -n 1 | cut -d, -f8 > "$T/a1"
cmp -s "$T/a1" "$T/c1" && bad "seed has no effect" || ok

# Every check (no CHECK argument), fast.
expect_status 0 $RB theory --fast -o "$T/all"
[ "$(grep -c '^PASS' "$T/out")" -ge 30 ] && ok || bad "fewer than 30 PASS lines for all checks"

# The report of every check: the NB-vs-LR figure (log-log, points = the
# CSV's samples_nb/samples_lr, lines = the laws, which equal numpy.polyfit of
# m* on ln n and on n) and one summary row per claim (every pass row).
expect_status 0 $RB report "$T/all"
$PY - "$T/all" <<'PY' && ok || bad "NB-vs-LR figure or per-claim summary rows differ from the CSV"
import csv, re, sys
import numpy as np
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/results.csv")))
nb = [r for r in rows if r["method"] == "samples_needed_K2"]
assert nb, "no samples_needed_K2 rows"
n = sorted({float(re.search(r"(?:^|;)n=([^;]+)", r["params"]).group(1)) for r in nb})
col = {m: [float(next(r["value"] for r in nb if r["metric"] == m and
                      float(re.search(r"(?:^|;)n=([^;]+)", r["params"]).group(1)) == x)) for x in n]
       for m in ("samples_nb", "samples_lr", "law_nb_log", "law_lr_linear")}
base = d + "/figures/theory_nb_vs_lr_samples_needed_K2"
blocks = open(base + ".dat").read().split("\n\n\n")
dat = np.array([[float(v) for v in l.split()] for l in blocks[0].splitlines() if l and not l.startswith("#")])
assert np.allclose(dat[:, 0], n) and np.allclose(dat[:, 1], col["samples_nb"]) and np.allclose(dat[:, 2], col["samples_lr"])
assert np.allclose(dat[:, 3], col["law_nb_log"], rtol=1e-9) and np.allclose(dat[:, 4], col["law_lr_linear"], rtol=1e-9)
b, a = np.polyfit(np.log(n), col["samples_nb"], 1)
assert np.allclose(col["law_nb_log"], a + b * np.log(n), rtol=1e-9), (col["law_nb_log"], a + b * np.log(n))
b, a = np.polyfit(n, col["samples_lr"], 1)
assert np.allclose(col["law_lr_linear"], a + b * np.array(n), rtol=1e-9)
gp = open(base + ".gp").read()
assert "set logscale xy" in gp and gp.count("index 0") == 2 and gp.count("index 1") == 2
summ = open(d + "/summary.md").read()
claims = sum(1 for r in rows if r["metric"] == "pass")
got = sum(1 for l in summ.splitlines() if re.match(r"\| \S+ \| .* \| (approx|at most|at least|within) \| .* \| (yes|NO) \|$", l))
assert got == claims, (got, claims)
PY

# Breaking an assumption: exit 1 and a FAIL line.
expect_status 1 $RB theory --fast --covariates heavy icl
grep -q "^FAIL icl/" "$T/out" && ok || bad "no FAIL line"

# A user table.
printf 'size,metric\n1e6,3.1\n2e6,2.9\n4e6,2.75\n8e6,2.62\n1.6e7,2.52\n3.2e7,2.44\n6.4e7,2.38\n' > "$T/t.csv"
expect_status 0 $RB theory fit --fast --table "$T/t.csv" -o "$T/d"
grep -q "source=table" "$T/d/results.csv" && ok || bad "table rows missing"
# The fitted law against SciPy's curve_fit (Levenberg-Marquardt, tight
# tolerances) of E + A N^-alpha on the same rows, 1e-5 relative; the
# held-out extrapolation against the fit of the 5 smallest sizes.
$PY - "$T/t.csv" "$T/d/results.csv" <<'PY' && ok || bad "--table fit differs from scipy curve_fit"
import csv, sys
import numpy as np
from scipy.optimize import curve_fit
t = list(csv.DictReader(open(sys.argv[1])))
x = np.array([float(r["size"]) for r in t]); y = np.array([float(r["metric"]) for r in t])
f = lambda n, E, A, al: E + A * n ** -al
rows = [r for r in csv.DictReader(open(sys.argv[2])) if "source=table" in r["params"]]
get = lambda m, meth="powerlaw": [float(r["value"]) for r in rows if r["metric"] == m and r["method"] == meth]
p0 = [get("e_inf")[0], get("a")[0], get("alpha")[0]]
p, _ = curve_fit(f, x, y, p0=p0, method="lm", xtol=1e-14, ftol=1e-14, maxfev=100000)
for name, ref in zip(("e_inf", "a", "alpha"), p):
    got = get(name)[0]
    assert abs(got - ref) <= 1e-5 * abs(ref), (name, got, ref)
q, _ = curve_fit(f, x[:5], y[:5], p0=p, method="lm", xtol=1e-14, ftol=1e-14, maxfev=100000)
pred = get("predicted", "extrapolation")
assert len(pred) == 2, pred
assert np.allclose(pred, f(x[5:], *q), rtol=1e-5), (pred, f(x[5:], *q))
PY
# --hold longer than the table allows: exit 2 naming the table (it wrapped
# n - hold and crashed with a bus error).
expect_status 2 $RB theory fit --fast --table "$T/t.csv" --hold 10; one_line
grep -q "t.csv.*--hold 10" "$T/err" && ok || bad "--hold error does not name the table and option"
expect_status 2 $RB theory fit --fast --table "$T/t.csv" --hold 4; one_line
printf 'size,loss\n1,2\n' > "$T/bad.csv"
expect_status 2 $RB theory fit --fast --table "$T/bad.csv"; one_line
grep -q "bad.csv" "$T/err" && ok || bad "error does not name the table"

# Effective robustness of a user table against NumPy's polyfit on logits.
printf 'model,id_acc,ood_acc\nr50,76.1,40.2\nvitb,81.0,48.3\nclip,76.2,70.1\nr101,77.4,42.0\neffb0,77.7,43.9\n' > "$T/er.csv"
expect_status 0 $RB theory fit --fast --er_table "$T/er.csv" -o "$T/e"
$PY - "$T/er.csv" "$T/e/results.csv" <<'PY' && ok || bad "effective robustness differs from numpy.polyfit"
import csv, sys
import numpy as np
t = list(csv.DictReader(open(sys.argv[1])))
i = np.array([float(r["id_acc"]) for r in t]) / 100
o = np.array([float(r["ood_acc"]) for r in t]) / 100
L = lambda p: np.log(p / (1 - p))
b, a = np.polyfit(L(i), L(o), 1)
res = L(o) - (a + b * L(i))
rows = [r for r in csv.DictReader(open(sys.argv[2])) if "source=table" in r["params"]]
get = lambda m: [float(r["value"]) for r in rows if r["metric"] == m]
assert abs(get("slope")[0] - b) < 1e-10 and abs(get("intercept")[0] - a) < 1e-10
assert np.allclose(get("residual_logit"), res, atol=1e-10)
PY

finish

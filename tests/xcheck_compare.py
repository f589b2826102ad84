#!/usr/bin/python3
"""xcheck_compare.py gen OUTDIR | check OUT -- comparison across models (issue 11).

gen: three models (alpha, beta, gamma) x two checkpoints (root attribute
step 0 and 1000) scored on the same samples, written with h5py as a real
writer would: layers in depth order (attr depth) with names that sort
otherwise, widths that differ, and models of different depth (3, 4 and 2
layers).  Labels are shared, so the test samples are the same for every
dump; each model adds its own noise, so predictions differ.

check OUT (after `make sweep DUMPS=... OUT=OUT` and `repbench report OUT`):
  * every OUT/compare/results.csv row is recomputed from the two dumps'
    predictions.csv files: acc_a, acc_b, n_a_only, n_b_only exactly;
    acc_diff = acc_a - acc_b; mcnemar_p = SciPy binomtest(b, b + c, 0.5)
    to 1e-12 relative; the at=best layer of each model is its top1 argmax
    over layers (ties: shallower) and at=last its deepest layer, from its
    own results.csv; the acc_* equal the top1 rows of results.csv;
    the interval holds the difference, inside [-1, 1];
  * the pairs are the 15 pairs of the 6 dumps, each compared on every probe;
  * summary.md's leaderboard rows equal the results.csv values (best and
    last layer, top1 and interval), and its comparison rows equal
    compare/results.csv; verdict lines are present;
  * the checkpoint-series figures exist for every model, and their .dat
    values equal the last-layer top1 rows of the checkpoints.
Prints "N passed, M failed"; exit 1 on failure.
"""
import csv
import glob
import math
import os
import re
import sys

import h5py
import numpy as np

MODELS = {"alpha": (("stem", 5), ("block_10", 9), ("block_2", 7)),
          "beta": (("stem", 4), ("block_2", 6), ("block_10", 8), ("pool", 8)),
          "gamma": (("embed", 6), ("out", 3))}
SIGNAL = {"alpha": 1.6, "beta": 1.1, "gamma": 0.7}
SHIFT_NOISE = {"alpha": 2.0, "beta": 1.6, "gamma": 1.2}   # noise sd of the shifted test set
K, NTR, NTE = 4, 240, 160


def gen(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(11)
    ytr = rng.permutation(np.arange(NTR) % K).astype(np.int32)
    yte = rng.permutation(np.arange(NTE) % K).astype(np.int32)
    for mi, (m, layers) in enumerate(MODELS.items()):
        for step in (0, 1000):
            r = np.random.default_rng(100 * mi + step // 1000)
            path = os.path.join(out, f"{m}_s{step}.h5")
            with h5py.File(path, "w") as f:
                f.attrs["model"] = m
                f.attrs["dataset"] = "toy"
                f.attrs["step"] = step
                for s, y in (("train", ytr), ("test", yte), ("shift_noisy", yte)):
                    f[f"labels/{s}"] = y
                for depth, (name, d) in enumerate(layers, 1):
                    # signal grows with depth and with training
                    sig = SIGNAL[m] * (0.4 + 0.6 * depth / len(layers)) * (1.0 if step else 0.55)
                    mu = np.random.default_rng(7 + mi * 10 + depth).normal(size=(K, d))
                    for s, y, sd in (("train", ytr, 1.0), ("test", yte, 1.0), ("shift_noisy", yte, SHIFT_NOISE[m])):
                        x = (sig * mu[y] + sd * r.normal(size=(len(y), d))).astype(np.float32)
                        ds = f.create_dataset(f"features/{s}/{name}", data=x)
                        ds.attrs["depth"] = depth
    print(f"wrote {2 * len(MODELS)} dumps to {out}")


passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def rows(path):
    with open(path, newline="") as fp:
        return list(csv.DictReader(fp))


def num(s):
    return float("nan") if s in ("", "nan", "NaN") else float(s)


def close(a, b, rel=1e-12):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def params_without_at(p):
    return ";".join(x for x in p.split(";") if not x.startswith("at="))


def do_check(out):
    from scipy.stats import binomtest
    sets = {}   # model -> (results rows, predictions {(layer, method, params): (pred, label)})
    for d in sorted(glob.glob(os.path.join(out, "*", "probe"))):
        res = rows(os.path.join(d, "results.csv"))
        preds = {}
        for r in rows(os.path.join(d, "predictions.csv")):
            if r["split"] != "test":
                continue
            preds.setdefault((r["layer"], r["method"], r["params"]), []).append(
                (int(r["index"]), int(r["pred"]), int(r["label"])))
        model = res[0]["model"]
        sets[model] = (res, {k: (np.array([p for _, p, _ in v]), np.array([l for _, _, l in v]))
                             for k, v in preds.items()})
    check(sorted(sets) == sorted(f"{m}@{s}" for m in MODELS for s in (0, 1000)),
          f"result sets with predictions: {sorted(sets)}")

    def layers_of(res):
        seen = []
        for r in res:
            if r["layer"] and "|" not in r["layer"] and r["layer"] not in seen:
                seen.append(r["layer"])
        return seen

    def top1(res, method, params):
        return [r for r in res if r["metric"] == "top1" and r["split"] == "test"
                and r["method"] == method and r["params"] == params]

    cmp = rows(os.path.join(out, "compare", "results.csv"))
    check(len(cmp) > 0, "compare/results.csv has rows")
    by = {}
    for r in cmp:
        if r["split"] != "test":
            continue
        by.setdefault((r["model"], r["layer"], r["method"], r["params"]), {})[r["metric"]] = r
    pairs = {k[0] for k in by}
    check(len(pairs) == 15, f"{len(pairs)} model pairs compared, want 15")
    nprobe = len({(r["method"], r["params"]) for r in sets["alpha@0"][0]
                  if r["metric"] == "top1" and r["split"] == "test"})
    by = {k: v for k, v in by.items() if "acc_diff" in v}
    check(len(by) == 15 * nprobe * 2, f"{len(by)} comparisons, want 15 pairs x {nprobe} probes x 2 layers")
    for (model, layer, method, params), m in by.items():
        a, b = model.split("|")
        la, lb = layer.split("|")
        at = dict(x.split("=", 1) for x in params.split(";"))["at"]
        base = params_without_at(params)
        tag = f"{model} {method} {params}"
        for who, lay in ((a, la), (b, lb)):
            res = sets[who][0]
            t = top1(res, method, base)
            order = layers_of(res)
            if at == "best":
                want = max(t, key=lambda r: (float(r["value"]), -order.index(r["layer"])))["layer"]
            else:
                want = max(t, key=lambda r: order.index(r["layer"]))["layer"]
            check(lay == want, f"{tag}: {who} at={at} layer {lay}, want {want}")
        pa, ya = sets[a][1][(la, method, base)]
        pb, yb = sets[b][1][(lb, method, base)]
        check(np.array_equal(ya, yb), f"{tag}: the two predictions files hold different labels")
        ca, cb = pa == ya, pb == yb
        nb, nc = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
        check(float(m["n_a_only"]["value"]) == nb and float(m["n_b_only"]["value"]) == nc,
              f"{tag}: discordant {m['n_a_only']['value']}/{m['n_b_only']['value']}, want {nb}/{nc}")
        check(close(num(m["acc_a"]["value"]), ca.mean()) and close(num(m["acc_b"]["value"]), cb.mean()),
              f"{tag}: accuracies {m['acc_a']['value']}, {m['acc_b']['value']} vs {ca.mean()}, {cb.mean()}")
        ra = [r for r in top1(sets[a][0], method, base) if r["layer"] == la][0]
        check(close(num(m["acc_a"]["value"]), num(ra["value"])), f"{tag}: acc_a differs from A's top1 row")
        d = num(m["acc_diff"]["value"])
        check(close(d, ca.mean() - cb.mean(), 1e-9), f"{tag}: acc_diff {d}")
        lo, hi = num(m["acc_diff"]["ci_low"]), num(m["acc_diff"]["ci_high"])
        check(-1 <= lo <= d <= hi <= 1, f"{tag}: interval [{lo}, {hi}] around {d}")
        p = binomtest(nb, nb + nc, 0.5).pvalue if nb + nc else 1.0
        check(close(num(m["mcnemar_p"]["value"]), p), f"{tag}: mcnemar_p {m['mcnemar_p']['value']}, scipy {p}")

    # Effective robustness: probit fit over the 6 models at their best test layer.
    from scipy.stats import norm
    er = [r for r in cmp if r["split"] == "shift_noisy"]
    keys = {(r["method"], r["params"]) for r in er}
    check(len(keys) == nprobe, f"effective robustness for {len(keys)} probes, want {nprobe}")
    for method, params in keys:
        base = ";".join(x for x in params.split(";") if not x.startswith(("at=", "fit=")))
        xs, ys, names = [], [], []
        for model, (res, _) in sorted(sets.items()):
            t = top1(res, method, base)
            order = layers_of(res)
            b = max(t, key=lambda r: (float(r["value"]), -order.index(r["layer"])))
            sh = [r for r in res if r["metric"] == "top1" and r["split"] == "shift_noisy" and r["method"] == method
                  and r["params"] == base and r["layer"] == b["layer"]][0]
            clamp = lambda a, n: min(max(a, 0.5 / n), 1 - 0.5 / n)
            xs.append(norm.ppf(clamp(float(b["value"]), int(b["n"]))))
            ys.append(norm.ppf(clamp(float(sh["value"]), int(sh["n"]))))
            names.append((model, b["layer"], float(sh["value"])))
        xs, ys = np.array(xs), np.array(ys)
        slope, icpt = np.polyfit(xs, ys, 1)
        res_ = ys - (slope * xs + icpt)
        s2 = res_ @ res_ / (len(xs) - 2)
        sxx = ((xs - xs.mean()) ** 2).sum()
        se_s, se_i = math.sqrt(s2 / sxx), math.sqrt(s2 * (1 / len(xs) + xs.mean() ** 2 / sxx))
        fit = {r["metric"]: r for r in er if r["method"] == method and r["params"] == params and r["model"] == "*"}
        tag = f"ER {method} {params}"
        check(close(num(fit["er_slope"]["value"]), slope, 1e-9) and close(num(fit["er_intercept"]["value"]), icpt, 1e-9),
              f"{tag}: slope/intercept {fit['er_slope']['value']}/{fit['er_intercept']['value']} vs numpy {slope}/{icpt}")
        check(close(num(fit["er_slope"]["ci_low"]), slope - 1.96 * se_s, 1e-9) and
              close(num(fit["er_intercept"]["ci_high"]), icpt + 1.96 * se_i, 1e-9), f"{tag}: standard errors")
        check(num(fit["er_models"]["value"]) == 6, f"{tag}: models in the fit")
        for (model, layer, acc_sh), x in zip(names, xs):
            row = {r["metric"]: r for r in er if r["method"] == method and r["params"] == params and r["model"] == model}
            pred = norm.cdf(slope * x + icpt)
            check(row["eff_robustness"]["layer"] == layer, f"{tag}: {model} layer")
            check(close(num(row["shift_predicted"]["value"]), pred, 1e-9) and
                  close(num(row["eff_robustness"]["value"]), acc_sh - pred, 1e-9),
                  f"{tag}: {model} ER {row['eff_robustness']['value']} vs {acc_sh - pred}")

    md = open(os.path.join(out, "summary.md")).read()
    check("## Models compared on toy (6 dumps)" in md, "summary.md: comparison section")
    check("**Best:**" in md and "**Comparison:**" in md, "summary.md: verdict lines")
    lb_rows = re.findall(r"^\| (\w+@\d+) \| (\w+) \| ([^|]*) \| (\w+) \| ([\d.]+) \| ([^|]+) \| (\w+) \| ([\d.]+) \|",
                         md, re.M)
    check(len(lb_rows) == 6 * nprobe, f"leaderboard rows {len(lb_rows)}, want {6 * nprobe}")
    for model, method, params, bl, bv, bci, ll, lv in lb_rows:
        # params are cut to the items that differ between the method's rows ("–": none differ)
        shown = [] if params.strip() == "–" else params.strip().split(";")
        res = sets[model][0]
        cands = sorted({r["params"] for r in res if r["method"] == method and r["metric"] == "top1"
                        and all(x in r["params"].split(";") for x in shown)})
        check(len(cands) == 1, f"leaderboard {model} {method}: params '{params.strip()}' name {cands}")
        params = cands[0] if cands else ""
        t = {r["layer"]: r for r in top1(res, method, params)}
        check(bl in t and abs(float(bv) - float(t[bl]["value"])) <= 5.1e-5 and
              abs(float(bv) - max(float(r["value"]) for r in t.values())) <= 5.1e-5,
              f"leaderboard {model} {method}: best {bl} {bv}")
        ci = t.get(bl)
        if ci and ci["ci_low"]:
            check(bci.strip() == f"[{float(ci['ci_low']):.4f}, {float(ci['ci_high']):.4f}]",
                  f"leaderboard {model} {method}: interval {bci}")
        check(ll == layers_of(res)[-1] and abs(float(lv) - float(t[ll]["value"])) <= 5.1e-5,
              f"leaderboard {model} {method}: last {ll} {lv}")
    cm_rows = re.findall(r"^\| (\w+@\d+) \| (\w+@\d+) \| ([^|]*) \| (\w+\\\|\w+) \| ([\d.]+) \| ([\d.]+) \| "
                         r"(-?[\d.]+) \| ([^|]+) \| ([^|]+) \| (\d+) \| (\d+) \| ([^|]+) \|", md, re.M)
    check(len(cm_rows) == 30, f"summary comparison rows {len(cm_rows)}, want 30 (15 pairs x best/last)")
    for a, b, params, layer, acca, accb, diff, ci, p, na, nb_, verdict in cm_rows:
        key = (f"{a}|{b}", layer.strip().replace("\\|", "|"), "logreg", params.strip())
        m = by.get(key)
        check(m is not None, f"summary comparison {key} not in compare/results.csv")
        if not m:
            continue
        check(abs(float(acca) - num(m["acc_a"]["value"])) <= 5.1e-5 and
              abs(float(diff) - num(m["acc_diff"]["value"])) <= 5.1e-5 and
              ci.strip() == f"[{num(m['acc_diff']['ci_low']):.4f}, {num(m['acc_diff']['ci_high']):.4f}]" and
              int(na) == int(float(m["n_a_only"]["value"])) and
              abs(float(p) - num(m["mcnemar_p"]["value"])) <= 5e-4 * max(1e-300, num(m["mcnemar_p"]["value"])) + 1e-300,
              f"summary comparison {key}: numbers differ from the CSV")
        sig = num(m["mcnemar_p"]["value"]) < 0.05 and (num(m["acc_diff"]["ci_low"]) > 0 or num(m["acc_diff"]["ci_high"]) < 0)
        want = "not told apart" if not sig else ("beats")
        check(want in verdict, f"summary comparison {key}: verdict '{verdict.strip()}'")

    for m in MODELS:
        dats = glob.glob(os.path.join(out, "figures", f"*series_{m}_probe*.dat"))
        check(len(dats) == 1, f"series probe figure of {m}: {dats}")
        if not dats:
            continue
        blocks = open(dats[0]).read().split("\n\n\n")
        for blk in blocks:
            name = re.search(r"# series \d+: (\w+)", blk)
            pts = [ln.split() for ln in blk.splitlines() if ln and not ln.startswith("#")]
            check(name and len(pts) == 2, f"series {m}: block {blk[:80]!r}")
            if not name:
                continue
            for x, v, *_ in pts:
                res = sets[f"{m}@{int(float(x))}"][0]
                first = [r for r in res if r["metric"] == "top1" and r["split"] == "test"
                         and r["method"] == name.group(1)][0]
                t = {r["layer"]: r for r in top1(res, first["method"], first["params"])}
                check(abs(float(v) - float(t[layers_of(res)[-1]]["value"])) <= 1e-9,
                      f"series {m} {name.group(1)} step {x}: {v}")
    for m in MODELS:
        check(len(glob.glob(os.path.join(out, "figures", f"*series_{m}_collapse*.png"))) == 1,
              f"series collapse figure of {m} drawn")
    check(len(glob.glob(os.path.join(out, "figures", "*comparison*models_logreg*.png"))) == 1,
          "relative-depth logreg figure drawn")
    check(len(glob.glob(os.path.join(out, "figures", "*comparison*compare*.png"))) == 1,
          "comparison forest figure drawn")
    check(len(glob.glob(os.path.join(out, "figures", "*comparison*robustness_logreg_shift_noisy*.png"))) == 1,
          "effective-robustness figure drawn")
    check("**Effective robustness** (logreg on shift_noisy, 6 models)" in md, "summary.md: effective robustness verdict")


if sys.argv[1] == "gen":
    gen(sys.argv[2])
else:
    do_check(sys.argv[2])
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)

#!/usr/bin/env python3
"""Checks of `repbench report DIR` output, used by tests/cli_report.sh.

  cli_report.py files DIR NAME...   every figure NAME has .dat, .gp, a valid
                                    PNG (magic, IHDR size) and SVG (XML root
                                    <svg>, closed) of plausible size
  cli_report.py index DIR           index.html: static (no <script>, no
                                    external URL), every local src/href exists,
                                    every figure in figures/ is on the page
  cli_report.py summary DIR         summary.md's numbers equal those computed
                                    here from the results.csv files and run.json
  cli_report.py same DIR1 DIR2      .dat/.gp/index.html/summary.md byte-equal
  cli_report.py roc DIR FIG SPLIT   the ROC figure's .dat holds, per score, the
                                    roc_tpr rows of its deepest layer on SPLIT
                                    (fpr, tpr) and its legend the auroc row
  cli_report.py reliability DIR FIG the reliability .dat holds the CSV's bins
                                    (bin_hi, conf, acc, n) before and after
                                    temperature scaling; key has ECE and T, and
                                    ECE recomputed from the bins equals the row
  cli_report.py fewshot DIR FIG     the few-shot bars .dat holds, per probe, the
                                    deepest layer's (k, value, ci_low, ci_high)
  cli_report.py lcurve DIR FIG      the curve method's learning-curve .dat holds,
                                    per probe, the deepest layer's error rows
                                    (m, value, ci_low, ci_high) and the law
                                    e_inf + a m^-b of its fit rows
  cli_report.py console LOG         no console message in a Chromium log
Exit status 0 when the check passes; each failure is printed on one line.
"""
import csv
import glob
import json
import math
import os
import re
import struct
import sys
import xml.etree.ElementTree as ET

FAIL = []


def fail(msg):
    FAIL.append(msg)
    print("FAIL:", msg)


# ------------------------------------------------------------------ files

def check_png(path, min_bytes=4000):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return fail(f"{path}: not a PNG (magic {data[:8]!r})")
    if data[12:16] != b"IHDR":
        return fail(f"{path}: no IHDR chunk first")
    w, h = struct.unpack(">II", data[16:24])
    if not (400 <= w <= 4000 and 300 <= h <= 4000):
        fail(f"{path}: implausible size {w}x{h}")
    if len(data) < min_bytes:
        fail(f"{path}: only {len(data)} bytes")
    if b"IEND" not in data[-16:]:
        fail(f"{path}: truncated (no IEND)")


def check_svg(path, min_bytes=4000):
    size = os.path.getsize(path)
    if size < min_bytes:
        fail(f"{path}: only {size} bytes")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return fail(f"{path}: not well-formed XML: {e}")
    if not root.tag.endswith("svg"):
        fail(f"{path}: root element is {root.tag}, not svg")
    if len(list(root.iter())) < 20:
        fail(f"{path}: fewer than 20 elements")


def cmd_files(d, names):
    figs = os.path.join(d, "figures")
    for n in names:
        for ext in ("dat", "gp", "png", "svg"):
            p = os.path.join(figs, f"{n}.{ext}")
            if not os.path.isfile(p):
                fail(f"missing {p}")
        if os.path.isfile(os.path.join(figs, n + ".png")):
            check_png(os.path.join(figs, n + ".png"))
        if os.path.isfile(os.path.join(figs, n + ".svg")):
            check_svg(os.path.join(figs, n + ".svg"))
    left = [p for p in os.listdir(figs) if ".tmp" in p]
    if left:
        fail(f"temporary files left in figures/: {left}")
    for p in glob.glob(os.path.join(figs, "*.png")):
        check_png(p)


# ------------------------------------------------------------------ index

def cmd_index(d):
    path = os.path.join(d, "index.html")
    html = open(path, encoding="utf-8").read()
    if re.search(r"<script", html, re.I):
        fail("index.html has a <script>")
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        if url.startswith("#"):
            continue
        if re.match(r"[a-z]+:", url):
            fail(f"index.html refers outside: {url}")
            continue
        if not os.path.isfile(os.path.join(d, url)):
            fail(f"index.html refers to missing {url}")
    for png in glob.glob(os.path.join(d, "figures", "*.png")):
        name = os.path.basename(png)
        if f'src="figures/{name}"' not in html:
            fail(f"figure {name} not on the page")
    if html.count("<figcaption>") != len(glob.glob(os.path.join(d, "figures", "*.gp"))):
        fail("not one caption per figure")


# ---------------------------------------------------------------- summary

def read_rows(d):
    rows, skips = [], []
    for root, dirs, files in sorted(os.walk(d)):
        dirs.sort()
        if os.path.relpath(root, d).split(os.sep)[0] == "figures":
            continue
        if "results.csv" in files:
            weights = os.path.basename(root) == "weights"
            with open(os.path.join(root, "results.csv"), newline="") as f:
                for r in csv.DictReader(f):
                    r["_dump"] = ("weights", "", True) if weights else (r["model"], r["dataset"], False)
                    rows.append(r)
            sk = os.path.join(root, "skipped.csv")
            if os.path.isfile(sk):
                with open(sk, newline="") as f:
                    for s in csv.DictReader(f):
                        skips.append((os.path.basename(root), s["method"], s["layer"], s["status"], s["reason"]))
    return rows, skips


def num(s):
    return float("nan") if s in ("", "nan", "NaN") else float(s)


def fmt(v):
    return "–" if math.isnan(v) else f"{v:.4f}"


def interval(r):
    lo, hi = num(r.get("ci_low", "")), num(r.get("ci_high", ""))
    return "–" if math.isnan(lo) or math.isnan(hi) else f"[{lo:.4f}, {hi:.4f}]"


def md_tables(text):
    """{heading: [row cells...]} for every markdown table under a ### or ## heading."""
    out, head = {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            head = line.lstrip("#").strip()
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            out.setdefault(head, []).append(cells)
    return {k: v[1:] for k, v in out.items()}  # drop header rows


LEARN_KEYS = ("m", "n", "n_train", "shots", "k_shot", "per_class")


def params_dict(p):
    return dict(kv.split("=", 1) for kv in p.split(";") if "=" in kv)


def learning_rows(rows):
    """Rows the learning-curve figure takes: probe metric rows at one
    (layer, split, metric) whose params carry a size key with >= 3 values."""
    out = set()
    groups = {}
    for i, r in enumerate(rows):
        if r["metric"] in ("top1", "top5", "balanced_acc") and "|" not in r["layer"]:
            groups.setdefault((r["model"], r["dataset"], r["metric"], r["layer"], r["split"]), []).append(i)
    for idx in groups.values():
        for key in LEARN_KEYS:
            have = []
            for i in idx:
                v = params_dict(rows[i]["params"]).get(key)
                try:
                    have.append((i, float(v)))
                except (TypeError, ValueError):
                    pass
            if len({v for _, v in have}) >= 3:
                out.update(i for i, _ in have)
                break
    return out


ID_PREFIXES = ("twonn", "mle", "idim", "id_", "pca_id", "participation_ratio", "pr_", "levina", "mackay")


def is_idim(r):
    """Intrinsic-dimension rows, as report.h documents them."""
    if "duplicates" in r["metric"]:
        return False
    return (r["method"].startswith(ID_PREFIXES) or r["metric"].startswith(ID_PREFIXES)
            or r["metric"] in ("pr", "id"))


def merge_per_layer(series):
    """A method whose params change from layer to layer (a hyper-parameter
    chosen per layer) is one series: merge, in first-appearance order, each
    series into the first earlier one of the same method and split whose
    layers it does not share.  The merged series keeps the first key."""
    keys = list(series)
    live = {k: list(v) for k, v in series.items()}
    for i, k in enumerate(keys):
        for j in keys[:i]:
            if j not in live or j[0] != k[0] or j[2] != k[2]:
                continue
            if {r["layer"] for r in live[j]} & {r["layer"] for r in live[k]}:
                continue
            live[j] += live.pop(k)
            break
    return live


def short_params(want, mi, pi):
    """summary.md shows each row's params cut to the items that differ
    between the table's rows of the same method ("–" when none)."""
    out = []
    for w in want:
        items = [x for x in w[pi].split(";") if x]
        keep = []
        for it in items:
            k, _, v = it.partition("=")
            if any(params_dict(o[pi]).get(k) != v for o in want if o[mi] == w[mi]):
                keep.append(it)
        out.append(w[:pi] + [";".join(keep) if keep else "–"] + w[pi + 1:])
    return out


def dump_title(model, dataset, multi):
    if multi:
        return "weights (all checkpoints)"  # every checkpoint of weights/results.csv
    return f"{model} on {dataset}" if dataset and dataset != model else model


def is_fewshot(r):
    """Rows of the few-shot figures (not in the probe best-layer table)."""
    if r["method"] != "fewshot" or r["metric"] not in ("top1", "top5", "balanced_acc") or "|" in r["layer"]:
        return False
    try:
        float(params_dict(r["params"])["k"])
        return r["layer"] != ""
    except (KeyError, ValueError):
        return False


def cmd_summary(d):
    rows, skips = read_rows(d)
    text = open(os.path.join(d, "summary.md"), encoding="utf-8").read()
    # Split the summary into per-dump sections.
    sections = re.split(r"^## ", text, flags=re.M)
    by_title = {s.splitlines()[0].strip(): s for s in sections[1:]}
    learn = learning_rows(rows)
    dumps = []
    for r in rows:
        if r["_dump"] not in dumps:
            dumps.append(r["_dump"])
    checked = 0
    for dump in dumps:
        title = dump_title(*dump)
        if title not in by_title:
            fail(f"summary.md has no section '{title}'")
            continue
        tabs = md_tables("### " + by_title[title])
        drows = [(i, r) for i, r in enumerate(rows) if r["_dump"] == dump]
        order = []
        for _, r in drows:
            if r["layer"] and "|" not in r["layer"] and r["layer"] not in order:
                order.append(r["layer"])
        # Probes: best layer by top1 per (method, params, split).
        series = {}
        for i, r in drows:
            if (r["metric"] == "top1" and i not in learn and r["layer"] and "|" not in r["layer"]
                    and not is_fewshot(r) and r["method"] != "calib"):
                series.setdefault((r["method"], r["params"], r["split"]), []).append(r)
        series = merge_per_layer(series)
        want = []
        for (m, p, s), rs in series.items():
            rs = [r for r in rs if not math.isnan(num(r["value"]))]
            best = max(rs, key=lambda r: (num(r["value"]), -order.index(r["layer"])))
            p = best["params"]  # a merged series: the params of the best layer
            bal = [r for _, r in drows if r["metric"] == "balanced_acc" and r["method"] == m and r["params"] == p
                   and r["split"] == s and r["layer"] == best["layer"]]
            want.append([m, p, s, best["layer"], fmt(num(best["value"])), interval(best),
                         fmt(num(bal[0]["value"])) if bal else "–", str(int(float(best["n"])))])
        want = short_params(want, 0, 1)
        got = tabs.get("Probes: best layer by top-1 accuracy", [])
        if sorted(got) != sorted(want):
            fail(f"{title}: probe table\n  got  {sorted(got)}\n  want {sorted(want)}")
        checked += len(want)
        # Collapse / ID at the deepest layer that has them.
        key = [k for k in tabs if k.startswith("Collapse and intrinsic dimension at the last layer")]
        coll = [r for _, r in drows if re.match(r"nc[1-9]", r["metric"])]
        idim = [r for _, r in drows if is_idim(r) and not re.match(r"nc[1-9]", r["metric"])
                and r["method"] not in ("filters", "spectra", "sparsity", "taskvec", "soup")]
        coll = [r for r in coll if r["layer"] in order]  # per-layer rows only
        idim = [r for r in idim if r["layer"] in order]
        have = [r for r in coll + idim if not math.isnan(num(r["value"]))]
        if have:
            last = max(order.index(r["layer"]) for r in have)
            want = [[r["method"], r["params"], r["metric"], fmt(num(r["value"])), interval(r)]
                    for r in coll + idim if r["layer"] == order[last]]
            want = short_params(want, 0, 1)
            if not key or f"({order[last]})" not in key[0]:
                fail(f"{title}: no collapse/ID table for layer {order[last]}")
            elif sorted(tabs[key[0]]) != sorted(want):
                fail(f"{title}: collapse/ID table\n  got  {sorted(tabs[key[0]])}\n  want {sorted(want)}")
            checked += len(want)
        # OOD AUROC per set and score, best layer.
        ser = {}
        for _, r in drows:
            if r["metric"] == "auroc" and r["layer"] and "|" not in r["layer"]:
                ser.setdefault((r["split"], r["method"], r["params"]), []).append(r)
        want = []
        for (s, m, p), rs in ser.items():
            best = max(rs, key=lambda r: (num(r["value"]), -order.index(r["layer"])))
            fpr = [r for metric in ("fpr95", "fpr95_openood15") for _, r in drows
                   if r["metric"] == metric and r["method"] == m and r["params"] == p
                   and r["split"] == s and r["layer"] == best["layer"]]
            want.append([s, m, p, best["layer"], fmt(num(best["value"])), interval(best),
                         fmt(num(fpr[0]["value"])) if fpr else "–"])
        want = short_params(want, 1, 2)
        got = tabs.get("OOD detection: AUROC per set, best layer", [])
        if sorted(got) != sorted(want):
            fail(f"{title}: OOD table\n  got  {sorted(got)}\n  want {sorted(want)}")
        checked += len(want)
        # Calibration: each ece* row, its *_ts row and the temperature of
        # the *_ts row's params.
        want = []
        for _, r in drows:
            if not r["metric"].startswith("ece") or r["metric"].endswith("_ts") or "|" in r["layer"]:
                continue
            after = [q for _, q in drows if q["metric"] == r["metric"] + "_ts" and q["method"] == r["method"]
                     and q["layer"] == r["layer"] and q["split"] == r["split"]]
            temp = [q for _, q in drows if after and q["metric"] == "temperature" and q["method"] == r["method"]
                    and q["layer"] == r["layer"] and same_params(q["params"], after[0]["params"])]
            fit = params_dict(after[0]["params"]).get("fit", "–") if after else "–"
            want.append([r["method"], r["params"], r["layer"], r["split"], r["metric"], fmt(num(r["value"])),
                         fmt(num(after[0]["value"])) if after else "–",
                         fmt(num(temp[0]["value"])) if temp else "–", fit])
        got = tabs.get("Calibration: ECE before and after temperature scaling", [])
        if sorted(got) != sorted(want):
            fail(f"{title}: calibration table\n  got  {sorted(got)}\n  want {sorted(want)}")
        checked += len(want)
        # Few-shot: the rows at the deepest layer of each (metric, split).
        fs = [r for _, r in drows if is_fewshot(r)]
        want = []
        for key in {(r["metric"], r["split"]) for r in fs}:
            grp = [r for r in fs if (r["metric"], r["split"]) == key]
            deep = max(order.index(r["layer"]) for r in grp)
            for r in grp:
                if order.index(r["layer"]) != deep:
                    continue
                pd = params_dict(r["params"])
                rest = ";".join(f"{k}={v}" for k, v in pd.items() if k not in ("k", "probe"))
                want.append([pd.get("probe", "–"), rest, r["layer"], r["split"], r["metric"], pd["k"],
                             fmt(num(r["value"])), interval(r), str(int(float(r["n"])))])
        got = tabs.get("Few-shot episodes at the deepest layer", [])
        if sorted(got) != sorted(want):
            fail(f"{title}: few-shot table\n  got  {sorted(got)}\n  want {sorted(want)}")
        checked += len(want)
        # Theory checks: one predicted/simulated pair per (method, params),
        # except checks drawn as curves (a numeric param with 2+ values).
        curve = set()
        by_method = {}
        for _, r in drows:
            if r["metric"].startswith(("predicted", "simulated", "bound")):
                by_method.setdefault((r["method"], r["layer"], r["split"]), []).append(r)
        for key, rs in by_method.items():
            for k in params_dict(rs[0]["params"]):
                vals = set()
                for r in rs:
                    try:
                        vals.add(float(params_dict(r["params"]).get(k)))
                    except (TypeError, ValueError):
                        pass
                if len(vals) >= 2:
                    curve.add(key)
                    break
        # One row per claim: typed claims (a claim_type row) also when drawn
        # as curves; type and accepted interval from the claim's rows.
        want = []
        for _, r in drows:
            if r["metric"] != "predicted":
                continue
            same = {q["metric"]: q for _, q in drows if q["method"] == r["method"] and q["params"] == r["params"]
                    and q["layer"] == r["layer"] and q["split"] == r["split"]}
            if "simulated" not in same:
                continue
            if (r["method"], r["layer"], r["split"]) in curve and "claim_type" not in same:
                continue
            ty = int(num(same["claim_type"]["value"])) if "claim_type" in same else 1
            p = num(r["value"])
            t = num(same["tolerance"]["value"]) if "tolerance" in same else 0.0
            acc = {2: f"(-inf, {p:.6g}]", 3: f"[{p:.6g}, inf)",
                   4: f'[{num(r["ci_low"]):.6g}, {num(r["ci_high"]):.6g}]'}.get(ty, f"[{p - t:.6g}, {p + t:.6g}]")
            name = {2: "at most", 3: "at least", 4: "within"}.get(ty, "approx")
            ok = ("yes" if num(same["pass"]["value"]) != 0 else "NO") if "pass" in same else "–"
            want.append([r["method"], r["params"], name, f"{p:.6g}", f'{num(same["simulated"]["value"]):.6g}',
                         acc, ok])
        got = tabs.get("Theory checks: simulated against predicted", [])
        if got != want:
            fail(f"{title}: theory checks\n  got  {got}\n  want {want}")
        checked += len(want)
    tabs = md_tables(text)
    want = [list(s) for s in skips]
    got = tabs.get("Skipped or failed methods", [])
    if sorted(got) != sorted(want):
        fail(f"skipped table\n  got  {got}\n  want {want}")
    checked += len(want)
    print(f"summary: {checked} table rows equal the CSV")


def cmd_same(a, b):
    names = ["index.html", "summary.md"]
    names += sorted(os.path.relpath(p, a) for p in glob.glob(os.path.join(a, "figures", "*.dat")))
    names += sorted(os.path.relpath(p, a) for p in glob.glob(os.path.join(a, "figures", "*.gp")))
    other = sorted(os.path.relpath(p, b) for p in glob.glob(os.path.join(b, "figures", "*.[dg][ap]*")))
    if sorted(n for n in names if n.startswith("figures")) != other:
        fail("different sets of figure files")
    for n in names:
        if open(os.path.join(a, n), "rb").read() != open(os.path.join(b, n), "rb").read():
            fail(f"{n} differs between runs")
    print(f"same: {len(names)} files byte-equal")


def cmd_esd(d, model):
    """The ESD figure of a checkpoint: each histogram integrates to 1 over
    its log-spaced bins (20 bins between the smallest and largest lambda),
    and the fitted tail starts at (n_tail / N) (alpha - 1) / x_min."""
    rows, _ = read_rows(d)
    lam = {}
    with open(os.path.join(d, "weights", "spectra.csv"), newline="") as f:
        for r in csv.DictReader(f):
            if r["model"] == model and float(r["singular_value"]) > 0:
                lam.setdefault(r["layer"], []).append(float(r["singular_value"]) ** 2)
    blocks = open(os.path.join(d, "figures", f"weights_esd_{model}.dat")).read().split("\n\n\n")
    k = 0
    for layer, ls in lam.items():
        hist = [list(map(float, l.split())) for l in blocks[2 * k].splitlines() if l and not l.startswith("#")]
        tail = [list(map(float, l.split())) for l in blocks[2 * k + 1].splitlines() if l and not l.startswith("#")]
        k += 1
        lo, hi = math.log(min(ls)), math.log(max(ls))
        w = (hi - lo) / 20
        total = 0.0
        for x, dens in hist:  # x = geometric centre of its bin
            b = round((math.log(x) - lo) / w - 0.5)
            total += dens * (math.exp(lo + (b + 1) * w) - math.exp(lo + b * w))
        if abs(total - 1) > 1e-6:
            fail(f"{model}/{layer}: histogram integrates to {total}")
        fit = {r["metric"]: num(r["value"]) for r in rows if r["model"] == model and r["layer"] == layer}
        if "alpha_xmin" in fit and "alpha" in fit:
            a, xm, nt = fit["alpha"], fit["alpha_xmin"], fit.get("alpha_n_tail", float("nan"))
            want = nt / len(ls) * (a - 1) / xm
            if abs(tail[0][0] - xm) > 1e-9 * xm or abs(tail[0][1] - want) > 1e-6 * want:
                fail(f"{model}/{layer}: tail starts at {tail[0]}, want [{xm}, {want}]")
            print(f"esd {model}/{layer}: tail density {tail[0][1]:.6g} = {want:.6g}")
        elif not all(math.isnan(v) for t in tail for v in t):
            fail(f"{model}/{layer}: a tail drawn without a fit")


def cmd_learnfit(d, fig):
    """The dashed law of a learning-curve figure is numpy's least-squares
    fit of value = a + c x^(-1/2) to the series points (c = -b)."""
    import numpy as np
    blocks = open(os.path.join(d, "figures", fig + ".dat")).read().split("\n\n\n")
    data = [[list(map(float, l.split())) for l in b.splitlines() if l and not l.startswith("#")] for b in blocks]
    ns = len(data) // 2
    for k in range(ns):
        pts = np.array([p[:2] for p in data[k] if not math.isnan(p[1])])
        c, a = np.polyfit(pts[:, 0] ** -0.5, pts[:, 1], 1)
        fit = np.array(data[ns + k])
        want = a + c * fit[:, 0] ** -0.5
        err = np.max(np.abs(fit[:, 1] - want))
        if not err < 1e-7:
            fail(f"{fig}: fit {k} differs from numpy.polyfit by {err}")
        print(f"learnfit {fig} series {k}: a={a:.6f} b={-c:.6f}, max |C - numpy| = {err:.2e}")


def dat_blocks(d, fig):
    """[(label, [[float...]...])] of a figure's .dat, one per series block."""
    text = open(os.path.join(d, "figures", fig + ".dat")).read()
    out = []
    for b in text.split("\n\n\n"):
        label = None
        pts = []
        for l in b.splitlines():
            m = re.match(r"# series \d+: (.*)", l)
            if m:
                label = m.group(1)
            elif l and not l.startswith("#"):
                pts.append([float(v) for v in l.split()])
        out.append((label, pts))
    return out


def close(a, b, rel=1e-9):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def without(params, key):
    return ";".join(kv for kv in params.split(";") if kv and not kv.startswith(key + "="))


def same_params(a, b):
    """Params equal as sets of items (a method may write them unsorted)."""
    return set(i for i in a.split(";") if i) == set(i for i in b.split(";") if i)


def dump_rows(d, fig):
    """The rows of the dump a figure belongs to: its base name starts with
    the dump's slug (model_dataset, or model, non [A-Za-z0-9.-] -> _)."""
    rows, _ = read_rows(d)
    best, slug_len = [], -1
    for dump in {r["_dump"] for r in rows}:
        model, dataset, multi = dump
        name = "weights" if multi else (f"{model}_{dataset}" if dataset and dataset != model else model)
        slug = re.sub(r"[^A-Za-z0-9.-]", "_", name) or "x"
        if fig.startswith(slug + "_") and len(slug) > slug_len:
            best, slug_len = [r for r in rows if r["_dump"] == dump], len(slug)
    if slug_len < 0:
        fail(f"{fig}: no dump of {d} has this figure's prefix")
    return best


def gp_titles(d, fig):
    return re.findall(r"title '((?:[^']|'')*)'", open(os.path.join(d, "figures", fig + ".gp")).read())


def cmd_roc(d, fig, split):
    """Series = (model, method, params without fpr) in first-appearance
    order; each drawn at its deepest layer (CSV first-appearance order)."""
    rows = dump_rows(d, fig)
    order = []
    for r in rows:
        if r["layer"] and "|" not in r["layer"] and r["layer"] not in order:
            order.append(r["layer"])
    roc = [r for r in rows if r["metric"] == "roc_tpr" and r["split"] == split and "fpr" in params_dict(r["params"])]
    series = {}
    for r in roc:
        key = (r["model"], r["method"], without(r["params"], "fpr"))
        key = next((k for k in series if k[:2] == key[:2] and same_params(k[2], key[2])), key)
        series.setdefault(key, []).append(r)
    blocks = dat_blocks(d, fig)
    titles = gp_titles(d, fig)
    if len(blocks) != len(series):
        fail(f"{fig}: {len(blocks)} series in the .dat, want {len(series)}")
    for (key, rs), (label, pts) in zip(series.items(), blocks):
        deep = max(order.index(r["layer"]) for r in rs)
        rs = sorted((r for r in rs if order.index(r["layer"]) == deep),
                    key=lambda r: float(params_dict(r["params"])["fpr"]))
        want = [[float(params_dict(r["params"])["fpr"]), num(r["value"])] for r in rs]
        if len(want) != len(pts) or not all(close(a, b) for w, p in zip(want, pts) for a, b in zip(w, p)):
            fail(f"{fig}: series {label}: .dat {pts} != CSV {want}")
        au = [r for r in rows if r["metric"] == "auroc" and r["model"] == key[0] and r["method"] == key[1]
              and same_params(r["params"], key[2]) and r["split"] == split and r["layer"] == order[deep]]
        tail = f"{order[deep]}: AUROC {num(au[0]['value']):.4f}" if au else f"{order[deep]}: AUROC –"
        if not label.endswith(tail) or label not in titles:
            fail(f"{fig}: legend '{label}' does not end with '{tail}' or is not a plot title")
        print(f"roc {fig}: {key[1]} ({key[2]}) {len(pts)} points at {order[deep]} equal the CSV, {tail}")
    if "chance (AUROC 0.5)" not in titles:
        fail(f"{fig}: no chance diagonal")


def cmd_reliability(d, fig):
    rows = dump_rows(d, fig)
    rel = [r for r in rows if r["metric"] in ("reliability_acc", "reliability_conf")
           and "bin_hi" in params_dict(r["params"])]
    series = {}
    for r in rel:
        base = without(r["params"], "bin_hi")
        base = next((k for k in series if same_params(k, base)), base)
        series.setdefault(base, {}).setdefault(frozenset(r["params"].split(";")), {})[r["metric"]] = r
    blocks = dat_blocks(d, fig)
    if len(blocks) != len(series):
        fail(f"{fig}: {len(blocks)} series in the .dat, want {len(series)}")
    titles = gp_titles(d, fig)
    for (base, bins), (label, pts) in zip(series.items(), blocks):
        want = []
        for p, m in sorted(bins.items(), key=lambda kv: float(params_dict(";".join(kv[0]))["bin_hi"])):
            want.append([float(params_dict(";".join(p))["bin_hi"]), num(m["reliability_conf"]["value"]),
                         num(m["reliability_acc"]["value"]), float(m["reliability_acc"]["n"])])
        got = [p[:4] for p in pts]
        if len(want) != len(got) or not all(close(a, b) for w, g in zip(want, got) for a, b in zip(w, g)):
            fail(f"{fig}: series {label}: .dat {got} != CSV {want}")
        after = "fit" in params_dict(base)
        ece = [r for r in rows if r["method"] == "calib" and same_params(r["params"], base)
               and r["metric"].startswith("ece") and r["metric"].endswith("_ts") == after]
        if not ece:
            fail(f"{fig}: no ece row for {base}")
            continue
        e = num(ece[0]["value"])
        if f"ECE {e:.4f}" not in label or label not in titles:
            fail(f"{fig}: legend '{label}' lacks ECE {e:.4f} (row {ece[0]['metric']})")
        ntot = sum(w[3] for w in want)
        mine = sum(w[3] * abs(w[2] - w[1]) for w in want) / ntot
        if not abs(mine - e) < 1e-6:
            fail(f"{fig}: ECE from the bins {mine} != row {ece[0]['metric']} {e}")
        if after:
            t = [r for r in rows if r["method"] == "calib" and r["metric"] == "temperature"
                 and same_params(r["params"], base)]
            if not t or f"T = {num(t[0]['value']):.4g}" not in label:
                fail(f"{fig}: legend '{label}' lacks the temperature row")
        print(f"reliability {fig}: {base}: {len(want)} bins equal the CSV, ECE from bins {mine:.6f} = "
              f"{ece[0]['metric']} {e:.6f}")
    if "perfect calibration" not in titles:
        fail(f"{fig}: no diagonal")


def cmd_fewshot(d, fig):
    rows = dump_rows(d, fig)
    fs = [r for r in rows if is_fewshot(r) and r["metric"] == "top1" and r["split"] == "test"]
    order = []
    for r in rows:
        if r["layer"] and "|" not in r["layer"] and r["layer"] not in order:
            order.append(r["layer"])
    deep = max(order.index(r["layer"]) for r in fs)
    fs = [r for r in fs if order.index(r["layer"]) == deep]
    ks = sorted({float(params_dict(r["params"])["k"]) for r in fs})
    series = {}
    for r in fs:
        base = without(r["params"], "k")
        series.setdefault(next((k for k in series if same_params(k, base)), base), []).append(r)
    blocks = dat_blocks(d, fig)
    if len(blocks) != len(series):
        fail(f"{fig}: {len(blocks)} series in the .dat, want {len(series)}")
    for (base, rs), (label, pts) in zip(series.items(), blocks):
        rs = sorted(rs, key=lambda r: float(params_dict(r["params"])["k"]))
        want = [[float(params_dict(r["params"])["k"]), num(r["value"]), num(r["ci_low"]), num(r["ci_high"])]
                for r in rs]
        got = [p[1:] for p in pts]
        if len(want) != len(got) or not all(close(a, b) for w, g in zip(want, got) for a, b in zip(w, g)):
            fail(f"{fig}: series {label}: .dat {got} != CSV {want}")
        for p in pts:  # each bar inside its k group
            if abs(p[0] - ks.index(p[1])) >= 0.4 + 1e-9:
                fail(f"{fig}: bar at x={p[0]} outside the group of k={p[1]}")
        if label != params_dict(base).get("probe"):
            fail(f"{fig}: series label '{label}' is not the probe of {base}")
        print(f"fewshot {fig}: {label}: {len(want)} bars at {order[deep]} equal the CSV")


def cmd_lcurve(d, fig):
    rows = dump_rows(d, fig)
    order = []
    for r in rows:
        if r["layer"] and "|" not in r["layer"] and r["layer"] not in order:
            order.append(r["layer"])
    err = [r for r in rows if r["metric"] == "error" and "m" in params_dict(r["params"])
           and "probe" in params_dict(r["params"]) and r["layer"] and "|" not in r["layer"]]
    deep = max(order.index(r["layer"]) for r in err)
    err = [r for r in err if order.index(r["layer"]) == deep]
    series = {}
    for r in err:
        series.setdefault(params_dict(r["params"])["probe"], []).append(r)
    blocks = dat_blocks(d, fig)
    if len(blocks) != 2 * len(series):
        fail(f"{fig}: {len(blocks)} blocks in the .dat, want {2 * len(series)}")
    ms = [float(params_dict(r["params"])["m"]) for r in err]
    for k, (probe, rs) in enumerate(series.items()):
        label, pts = blocks[k]
        rs = sorted(rs, key=lambda r: float(params_dict(r["params"])["m"]))
        want = [[float(params_dict(r["params"])["m"]), num(r["value"]), num(r["ci_low"]), num(r["ci_high"])]
                for r in rs]
        if label != probe or len(want) != len(pts) or not all(
                close(a, b) for w, p in zip(want, pts) for a, b in zip(w, p)):
            fail(f"{fig}: series {label}: .dat {pts} != CSV {want} of {probe}")
        fit = {r["metric"]: num(r["value"]) for r in rows if r["method"] == rs[0]["method"]
               and r["layer"] == order[deep] and params_dict(r["params"]).get("probe") == probe
               and r["metric"] in ("e_inf", "a", "b")}
        law = blocks[len(series) + k][1]
        if len(fit) == 3:
            worst = max(abs(y - (fit["e_inf"] + fit["a"] * m ** -fit["b"])) for m, y in law)
            if not worst < 1e-9 or not (close(law[0][0], min(ms)) and close(law[-1][0], max(ms))):
                fail(f"{fig}: law of {probe} differs from e_inf + a m^-b by {worst} or spans "
                     f"[{law[0][0]}, {law[-1][0]}], want [{min(ms)}, {max(ms)}]")
            print(f"lcurve {fig}: {probe}: {len(pts)} points at {order[deep]} equal the CSV; law max |diff| {worst:.1e}")
        elif not all(math.isnan(v) for p in law for v in p):
            fail(f"{fig}: a law drawn for {probe} without e_inf, a, b rows")
        else:
            print(f"lcurve {fig}: {probe}: {len(pts)} points at {order[deep]} equal the CSV; no fit rows")


def cmd_console(log):
    bad = [l for l in open(log, errors="replace") if ":CONSOLE" in l or "Uncaught" in l]
    for l in bad:
        fail("chromium console: " + l.strip())


def main():
    cmd = sys.argv[1]
    if cmd == "files":
        cmd_files(sys.argv[2], sys.argv[3:])
    elif cmd == "index":
        cmd_index(sys.argv[2])
    elif cmd == "summary":
        cmd_summary(sys.argv[2])
    elif cmd == "same":
        cmd_same(sys.argv[2], sys.argv[3])
    elif cmd == "esd":
        cmd_esd(sys.argv[2], sys.argv[3])
    elif cmd == "learnfit":
        cmd_learnfit(sys.argv[2], sys.argv[3])
    elif cmd == "roc":
        cmd_roc(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "reliability":
        cmd_reliability(sys.argv[2], sys.argv[3])
    elif cmd == "fewshot":
        cmd_fewshot(sys.argv[2], sys.argv[3])
    elif cmd == "lcurve":
        cmd_lcurve(sys.argv[2], sys.argv[3])
    elif cmd == "console":
        cmd_console(sys.argv[2])
    else:
        sys.exit(f"unknown check {cmd}")
    sys.exit(1 if FAIL else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""xcheck_layer_order.py RB_BIN OUTDIR -- layer order against layer width (issue 10).

Real writers order layers by depth, not by name, and their layers differ in
width (block_6 D=64 before backbone D=1280).  For every depth order of three
layers whose names sort differently ("zeta", "alpha", "mid"), for distinct
widths (3, 5, 8) and for equal widths (4, where a mix-up would be silent),
and for every way a writer states the order --

    depth      integer attribute `depth` on every dataset
    array      root attribute `layers`, an array of variable-length strings
    fixed      root attribute `layers`, an array of fixed-length byte strings
    newline    root attribute `layers`, one string "\\n".join(names)
    newline_t  the same with a trailing newline
    comma      root attribute `layers`, one string "a, b, c"

-- the dump is written with h5py and checked:

  * `repbench inspect` exits 0, lists the layers in the stated order, each
    with its own D;
  * `repbench run --methods gnb,similarity` exits 0; the layers of the gnb
    rows come in the stated order, and each layer's top1 equals
    sklearn's GaussianNB on that layer's datasets exactly (the layers carry
    signals of different strength, so their accuracies are distinct: a layer
    read in another's place is caught even at equal D); the linear CKA of
    every pair "a|b" equals a NumPy linear CKA of the named datasets
    to 1e-6 (the test split, as the harness computes it);
  * `--layers X` for each single layer gives X's top1 (the first layer the
    run computes on is pre-read: that path is taken for a non-first layer);
  * `repbench report` on the result draws the layers in depth order.

Prints one line per failure and "N passed, M failed"; exit 1 on failure.
"""
import csv
import itertools
import os
import subprocess
import sys

import h5py
import numpy as np
from sklearn.naive_bayes import GaussianNB

rb, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
NAMES = ("zeta", "alpha", "mid")
SIGNAL = {"zeta": 0.0, "alpha": 1.0, "mid": 3.0}   # distinct class separations
K, NTR, NTE = 3, 90, 60
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def write(path, order, widths, how, seed):
    rng = np.random.default_rng(seed)
    data = {}
    mus = {name: rng.normal(size=(K, widths[name])) * SIGNAL[name] for name in NAMES}
    with h5py.File(path, "w") as f:
        for s, n in (("train", NTR), ("test", NTE)):
            y = (np.arange(n) % K).astype(np.int32)
            f[f"labels/{s}"] = y
            # Datasets are created in name order, so HDF5's own order is
            # neither the depth order nor, in general, its reverse.
            for name in sorted(NAMES):
                d = widths[name]
                x = (mus[name][y] + rng.normal(size=(n, d))).astype(np.float32)
                ds = f.create_dataset(f"features/{s}/{name}", data=x)
                data[(s, name)] = x
                if how == "depth":
                    ds.attrs["depth"] = order.index(name) + 1
        if how == "array":
            f.attrs["layers"] = np.array(order, dtype=h5py.string_dtype())
        elif how == "fixed":
            f.attrs["layers"] = np.array([n.encode() for n in order], dtype="S8")
        elif how == "newline":
            f.attrs["layers"] = "\n".join(order)
        elif how == "newline_t":
            f.attrs["layers"] = "\n".join(order) + "\n"
        elif how == "comma":
            f.attrs["layers"] = ", ".join(order)
    return data


def run(*args):
    return subprocess.run([rb, *args], capture_output=True, text=True)


def read_rows(path):
    with open(path, newline="") as fp:
        return list(csv.DictReader(fp))


def cka_linear(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    num = np.linalg.norm(a.T @ b) ** 2
    return num / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))


HOWS = ("depth", "array", "fixed", "newline", "newline_t", "comma")
case = 0
for widths_kind in ("distinct", "equal"):
    for order in itertools.permutations(NAMES):
        order = list(order)
        for how in HOWS:
            case += 1
            widths = dict(zip(NAMES, (3, 5, 8))) if widths_kind == "distinct" \
                else dict.fromkeys(NAMES, 4)
            tag = f"{widths_kind}-{'-'.join(order)}-{how}"
            path = os.path.join(out, f"ord_{case}.h5")
            data = write(path, order, widths, how, case)
            want = {}
            for name in NAMES:
                g = GaussianNB().fit(data[("train", name)].astype(np.float64),
                                     np.arange(NTR) % K)
                want[name] = float(np.mean(g.predict(data[("test", name)].astype(np.float64))
                                           == np.arange(NTE) % K))
            distinct = len({round(v, 12) for v in want.values()}) == len(NAMES)

            r = run("inspect", path)
            check(r.returncode == 0, f"{tag}: inspect exit {r.returncode}: {r.stdout[-300:]}")
            listed = [ln.split()[0] for ln in r.stdout.splitlines()
                      if ln.startswith("    ") and "train: [" in ln]
            check(listed == order, f"{tag}: inspect lists {listed}, want {order}")
            for name in NAMES:
                check(f"train: [{NTR}, {widths[name]}]" in
                      next((ln for ln in r.stdout.splitlines() if ln.split()[:1] == [name]), ""),
                      f"{tag}: inspect width of {name}")

            o = os.path.join(out, f"run_{case}")
            r = run("run", "--methods", "gnb,similarity", "--quiet", "-o", o, path)
            check(r.returncode == 0, f"{tag}: run exit {r.returncode}: {r.stderr.strip()}")
            if r.returncode != 0:
                continue
            rows = read_rows(os.path.join(o, "results.csv"))
            got = {x["layer"]: float(x["value"]) for x in rows
                   if x["method"] == "gnb" and x["metric"] == "top1" and x["split"] == "test"}
            seen = []
            for x in rows:
                if x["method"] == "gnb" and x["layer"] not in seen:
                    seen.append(x["layer"])
            check(seen == order, f"{tag}: results.csv layer order {seen}, want {order}")
            for name in NAMES:
                check(name in got and got[name] == want[name],
                      f"{tag}: gnb top1 of {name} = {got.get(name)}, sklearn {want[name]}")
            for x in rows:
                if x["method"] == "similarity" and x["metric"] == "cka_linear" and "|" in x["layer"]:
                    a, b = x["layer"].split("|")
                    split = dict(p.split("=", 1) for p in x["params"].split(";") if "=" in p).get(
                        "split", x["split"] or "test")
                    ref = cka_linear(data[(split, a)].astype(np.float64),
                                     data[(split, b)].astype(np.float64))
                    check(abs(float(x["value"]) - ref) <= 1e-6 * max(1.0, abs(ref)),
                          f"{tag}: cka_linear {a}|{b} on {split} = {x['value']}, numpy {ref}")
            ncka = sum(1 for x in rows if x["method"] == "similarity"
                       and x["metric"] == "cka_linear" and "|" in x["layer"])
            check(ncka >= 3, f"{tag}: {ncka} cka_linear pair rows, want >= 3")

            if case % len(HOWS) == 1:   # once per (widths, order): layer subsets, report
                check(distinct, f"{tag}: the three layers' accuracies are not distinct "
                      f"({want}); the test could not see a mix-up")
                for name in NAMES:
                    o1 = os.path.join(out, f"run_{case}_{name}")
                    r = run("run", "--methods", "gnb", "--quiet", "--layers", name, "-o", o1, path)
                    check(r.returncode == 0, f"{tag}: --layers {name}: exit {r.returncode}: {r.stderr.strip()}")
                    if r.returncode == 0:
                        v = [float(x["value"]) for x in read_rows(os.path.join(o1, "results.csv"))
                             if x["metric"] == "top1"]
                        check(v == [want[name]], f"{tag}: --layers {name}: top1 {v}, want {want[name]}")
                r = run("report", o)
                check(r.returncode == 0, f"{tag}: report exit {r.returncode}: {r.stderr.strip()}")
                md = open(os.path.join(o, "summary.md")).read() if r.returncode == 0 else ""
                best = max(NAMES, key=lambda n: want[n])
                check(f"| {best} |" in md, f"{tag}: summary.md does not name best layer {best}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)

#!/usr/bin/python3
"""xcheck_continual.py -- ncm_continual against a NumPy re-implementation.

Dump: 13 classes, d = 9 (layer a) and d = 4 (layer b).  Runs
    repbench run --methods ncm_continual,ncm --cl-tasks 5 --cl-order <perm>
and the default seeded order with --cl-tasks 4.  NumPy: classes split by
numpy.array_split(order, T); running means of the L2-normalised train rows
of the seen classes; argmin over seen classes of |x/|x| - mu_c|^2; accuracy
on the test rows of seen classes.  Every cl_acc must equal the reference
(to 1e-12: the accuracies are ratios of counts; near-ties could flip a
prediction between float32 and float64 scores, none occur here), the
average incremental accuracy likewise, and in both runs cl_final_acc must
equal the ncm metric=cosine top1 row of the same run exactly.
"""
import csv
import os
import subprocess
import sys

import h5py
import numpy as np

fails = checks = 0


def check(ok, what):
    global fails, checks
    checks += 1
    if not ok:
        fails += 1
        print("FAIL:", what)


def ref(xtr, ytr, xte, yte, order, T):
    k = len(order)
    ntr = xtr / np.maximum(np.linalg.norm(xtr.astype(np.float64), axis=1, keepdims=True), 1e-300)
    nte = xte / np.maximum(np.linalg.norm(xte.astype(np.float64), axis=1, keepdims=True), 1e-300)
    seen = []
    mu = np.zeros((k, xtr.shape[1]))
    accs = []
    for task in np.array_split(np.array(order), T):
        for c in task:
            mu[c] = ntr[ytr == c].mean(0)
        seen += list(task)
        s = np.array(sorted(seen))
        m = np.isin(yte, s)
        dist = ((nte[m][:, None, :] - mu[s][None, :, :]) ** 2).sum(-1)
        pred = s[dist.argmin(1)]
        accs.append((pred == yte[m]).mean())
    return accs


def main():
    work = sys.argv[1]
    rb = os.environ.get("RB_BIN", "bin/repbench")
    rng = np.random.RandomState(3)
    k = 13
    path = os.path.join(work, "c.h5")
    data = {}
    with h5py.File(path, "w") as f:
        for l, d in (("a", 9), ("b", 4)):
            mu = rng.normal(size=(k, d)) * 1.2
            for s, n in (("train", 390), ("test", 260)):
                y = (np.arange(n) % k).astype(np.int32)
                x = (mu[y] + rng.normal(size=(n, d))).astype(np.float32)
                data[(s, l)] = (x, y)
                f.create_dataset("features/%s/%s" % (s, l), data=x)
        for s in ("train", "test"):
            f.create_dataset("labels/" + s, data=data[(s, "a")][1])
    order = list(rng.permutation(k))
    for run, extra, T in (("given", ["--cl-order", ",".join(map(str, order))], 5), ("seeded", [], 4)):
        out = os.path.join(work, run)
        r = subprocess.run([rb, "run", "--methods", "ncm_continual,ncm", "--cl-tasks", str(T),
                            "--bootstrap", "0", "--quiet", "-o", out, path] + extra,
                           capture_output=True, text=True)
        check(r.returncode == 0, "run %s: %s" % (run, r.stderr))
        rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
        for l in ("a", "b"):
            mine = [x for x in rows if x["method"] == "ncm_continual" and x["layer"] == l]
            fin = [float(x["value"]) for x in mine if x["metric"] == "cl_final_acc"]
            top1 = [float(x["value"]) for x in rows if x["method"] == "ncm" and x["layer"] == l
                    and x["metric"] == "top1" and x["params"] == "metric=cosine"]
            check(len(fin) == 1 and len(top1) == 1 and fin[0] == top1[0],
                  "%s %s final %r vs offline ncm cosine %r" % (run, l, fin, top1))
            print("%s layer %s: cl_final_acc %s, ncm cosine top1 %s" % (run, l, fin, top1))
            if run != "given":
                continue
            accs = ref(*data[("train", l)], *data[("test", l)], order, T)
            got = {}
            for x in mine:
                if x["metric"] == "cl_acc":
                    t = [p for p in x["params"].split(";") if p.startswith("task=")][0]
                    got[int(t[5:])] = float(x["value"])
            for t, a in enumerate(accs, 1):
                check(t in got and abs(got[t] - a) <= 1e-12, "%s task %d: %r vs %r" % (l, t, got.get(t), a))
            avg = [float(x["value"]) for x in mine if x["metric"] == "cl_avg_inc_acc"]
            check(len(avg) == 1 and abs(avg[0] - np.mean(accs)) <= 1e-12, "avg inc acc")
            print("given layer %s: cl_acc %s ref %s" % (l, [round(got.get(t, -1), 6) for t in range(1, T + 1)],
                                                        [round(a, 6) for a in accs]))
    print("xcheck_continual: %d checks, %d failed" % (checks, fails))
    sys.exit(1 if fails else 0)


main()

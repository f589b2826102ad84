#!/usr/bin/python3
"""xcheck_distshift.py -- dist_shift and calib_more against NumPy/SciPy.

An h5py dump (train, test, ood_a shifted, ood_b with a constant column and
fewer rows than --mmd-max; layer l1 d = 6, l2 d = 3 with ties at the bin
edges from rounded values; /logits/test) run with
    repbench run --methods dist_shift,calib_more --mmd-max 300 --js-bins 16
and recomputed:
    js_div   mean_j scipy.spatial.distance.jensenshannon(p_j, q_j, base=2)**2,
             p_j, q_j = numpy.histogram(col, 16, range=(pooled min, max))
    mmd2     rows floor(i n / m); s = numpy.median(scipy pdist(pooled));
             unbiased estimator from the RBF Gram matrix
    brier    mean sum_c (softmax - onehot)^2
    ece_adaptive  argsort(conf, kind=stable), numpy.array_split into 15
All to 1e-10 (relative, absolute near 0).
"""
import csv
import os
import subprocess
import sys

import h5py
import numpy as np
from scipy.spatial.distance import jensenshannon, pdist, squareform
from scipy.special import softmax

fails = checks = 0


def check(ok, what):
    global fails, checks
    checks += 1
    if not ok:
        fails += 1
        print("FAIL:", what)


def js_ref(a, b, bins):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    out = []
    for j in range(a.shape[1]):
        lo = min(a[:, j].min(), b[:, j].min())
        hi = max(a[:, j].max(), b[:, j].max())
        if not hi > lo:
            out.append(0.0)
            continue
        p = np.histogram(a[:, j], bins, range=(lo, hi))[0]
        q = np.histogram(b[:, j], bins, range=(lo, hi))[0]
        out.append(jensenshannon(p, q, base=2) ** 2)
    return float(np.mean(out))


def mmd_ref(a, b, m):
    def sub(x):
        n = len(x)
        k = min(n, m)
        return x[[i * n // k for i in range(k)]].astype(np.float64)
    x, y = sub(a), sub(b)
    pool = np.concatenate([x, y])
    s = np.median(pdist(pool))
    K = np.exp(-squareform(pdist(pool, "sqeuclidean")) / (2 * s * s))
    na, nb = len(x), len(y)
    kxx, kyy, kxy = K[:na, :na], K[na:, na:], K[:na, na:]
    v = ((kxx.sum() - np.trace(kxx)) / (na * (na - 1)) + (kyy.sum() - np.trace(kyy)) / (nb * (nb - 1))
         - 2 * kxy.mean())
    return v, s


def calib_ref(z, y, bins=15):
    p = softmax(z.astype(np.float64), axis=1)
    oh = np.eye(z.shape[1])[y]
    brier = np.mean(np.sum((p - oh) ** 2, axis=1))
    conf = p.max(1)
    ok = (z.argmax(1) == y).astype(float)
    order = np.argsort(conf, kind="stable")
    ece = 0.0
    for idx in np.array_split(order, bins):
        if len(idx):
            ece += len(idx) / len(y) * abs(conf[idx].mean() - ok[idx].mean())
    return brier, ece


def main():
    work = sys.argv[1]
    rb = os.environ.get("RB_BIN", "bin/repbench")
    rng = np.random.RandomState(7)
    ns = {"train": 500, "test": 350, "ood_a": 320, "ood_b": 120}
    path = os.path.join(work, "d.h5")
    feats = {}
    with h5py.File(path, "w") as f:
        for l, d in (("l1", 6), ("l2", 3)):
            for s, n in ns.items():
                x = rng.normal(size=(n, d)) + (1.0 if s == "ood_a" else 0.0)
                if l == "l2":
                    x = np.round(x * 2) / 2
                if s == "ood_b":
                    x[:, 0] = 0.25
                x = x.astype(np.float32)
                feats[(s, l)] = x
                f.create_dataset("features/%s/%s" % (s, l), data=x)
        y = {}
        for s in ("train", "test"):
            y[s] = (np.arange(ns[s]) % 5).astype(np.int32)
            f.create_dataset("labels/" + s, data=y[s])
        z = (rng.normal(size=(ns["test"], 5)) * 2 + 2 * np.eye(5)[y["test"]]).astype(np.float32)
        f.create_dataset("logits/test", data=z)
    out = os.path.join(work, "o")
    r = subprocess.run([rb, "run", "--methods", "dist_shift,calib_more", "--mmd-max", "300",
                        "--js-bins", "16", "--quiet", "-o", out, path], capture_output=True, text=True)
    check(r.returncode == 0, "run: %s" % r.stderr)
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))

    def get(metric, layer, split):
        v = [float(x["value"]) for x in rows if x["metric"] == metric and x["layer"] == layer
             and x["split"] == split]
        return v[0] if len(v) == 1 else None

    def close(g, w, tol=1e-10):
        return g is not None and abs(g - w) <= tol * max(1, abs(w))
    for l in ("l1", "l2"):
        for s in ("test", "ood_a", "ood_b"):
            a, b = feats[("train", l)], feats[(s, l)]
            js = js_ref(a, b, 16)
            g = get("js_div", l, s)
            check(close(g, js), "js %s %s %r vs %r" % (l, s, g, js))
            m, sg = mmd_ref(a, b, 300)
            g2, g3 = get("mmd2", l, s), get("mmd_sigma", l, s)
            check(close(g2, m), "mmd2 %s %s %r vs %r" % (l, s, g2, m))
            check(close(g3, sg), "mmd sigma %s %s %r vs %r" % (l, s, g3, sg))
            print("%s %-6s js %.10f (ref %.10f)  mmd2 %.3e (ref %.3e)" % (l, s, g, js, g2, m))
    br, ea = calib_ref(z, y["test"])
    check(close(get("brier", "logits", "test"), br), "brier")
    check(close(get("ece_adaptive", "logits", "test"), ea), "ece_adaptive")
    print("brier %.12f ref %.12f; ece_adaptive %.12f ref %.12f"
          % (get("brier", "logits", "test"), br, get("ece_adaptive", "logits", "test"), ea))
    print("xcheck_distshift: %d checks, %d failed" % (checks, fails))
    sys.exit(1 if fails else 0)


main()

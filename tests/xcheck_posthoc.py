#!/usr/bin/python3
"""xcheck_posthoc.py -- OpenOOD post-hoc scores against NumPy/SciPy/sklearn.

The references follow OpenOOD (github.com/Jingkang50/OpenOOD, commit
3c35632e) openood/postprocessors/ line by line: maxlogit_postprocessor.py
(max logit), ebo (logsumexp), msp, gen_postprocessor.py (top-M of sorted
softmax, -sum p^g (1-p)^g), kl_matching_postprocessor.py (mean softmax per
predicted class, one-hot when none, sklearn pairwise_distances_argmin_min
with metric = scipy.stats.entropy), react_postprocessor.py (np.percentile of
the flattened fit features, clip(max=thr), logsumexp), vim_postprocessor.py
(u = -pinv(W) b, EmpiricalCovariance(assume_centered=True) of X - u,
np.linalg.eig, NS = eigenvectors of all but the `dim` largest eigenvalues,
alpha from train) and rmds_postprocessor.py (EmpiricalCovariance precisions
of class-centred and of all train features).

1. Driver: build/tests/test_posthoc IN OUT scores a fixed problem (features,
   labels and a random head W, b) with the C kernel; every score must agree
   with the reference to 1e-9 (relative, absolute near 0), and the AUROC
   (sklearn roc_auc_score) of every score to 1e-9.
2. CLI: repbench run --methods ood_posthoc,ood_logits_posthoc on an h5py dump
   (train/val/test/ood_a/ood_b, /logits of every split but ood_b): the rmds
   rows (no head) and the ood_logits_posthoc rows (maxlogit, gen, klm of the
   dump's logits, klm fitted on /logits/val) must equal the reference AUROC /
   FPR@95 (OpenOOD v1.5) to 1e-9; the logreg-head rows (msp, energy, maxlogit,
   gen, klm, react, vim) must exist and lie within 0.02 AUROC of the same
   scores under sklearn LogisticRegression(C=1) (a second solver of the same
   convex problem, so the heads agree to the solvers' tolerance only).
"""
import csv
import os
import subprocess
import sys

import h5py
import numpy as np
import scipy.stats
from scipy.special import logsumexp, softmax
from sklearn.covariance import EmpiricalCovariance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import pairwise_distances_argmin_min, roc_auc_score, roc_curve

NAMES = ["msp", "energy", "maxlogit", "gen", "klm", "react", "vim", "rmds"]
fails = 0
checks = 0


def check(ok, what):
    global fails, checks
    checks += 1
    if not ok:
        fails += 1
        print("FAIL:", what)


def close(a, b, tol=1e-9):
    return abs(a - b) <= tol * max(1.0, abs(b))


def klm_templates(logits_fit):
    k = logits_fit.shape[1]
    p = softmax(logits_fit.astype(np.float64), axis=1)
    pred = logits_fit.argmax(1)
    q = []
    for i in range(k):
        if (pred == i).sum() == 0:
            t = np.zeros(k)
            t[i] = 1
            q.append(t)
        else:
            q.append(p[pred == i].mean(0))
    return np.array(q)


def kl(p, q):
    return scipy.stats.entropy(p, q)


def logit_scores(z, q, gamma=0.1, M=100):
    z = z.astype(np.float64)
    p = softmax(z, axis=1)
    ps = np.sort(p, axis=1)[:, -M:]
    gen = -np.sum(ps ** gamma * (1 - ps) ** gamma, axis=1)
    klm = -pairwise_distances_argmin_min(p, q, metric=kl)[1]
    return {"msp": p.max(1), "energy": logsumexp(z, axis=1), "maxlogit": z.max(1),
            "gen": gen, "klm": klm}


def rmds_fit(xtr, ytr):
    xtr = xtr.astype(np.float64)
    k = ytr.max() + 1
    means = np.array([xtr[ytr == c].mean(0) for c in range(k)])
    cen = np.concatenate([xtr[ytr == c] - means[c] for c in range(k)])
    prec = EmpiricalCovariance(assume_centered=False).fit(cen).precision_
    mu0 = xtr.mean(0)
    prec0 = EmpiricalCovariance(assume_centered=False).fit(xtr - mu0).precision_
    return means, prec, mu0, prec0


def rmds_score(fit, x):
    means, prec, mu0, prec0 = fit
    x = x.astype(np.float64)
    t1 = x - mu0
    bg = -np.einsum("ij,jk,ik->i", t1, prec0, t1)
    cs = np.stack([-np.einsum("ij,jk,ik->i", x - m, prec, x - m) - bg for m in means], 1)
    return cs.max(1)


def posthoc_ref(xtr, ytr, xkf, w, b, xs, pct=90, dim=None, gamma=0.1, M=100):
    """Every score of each array in xs, OpenOOD's way; w, b float64."""
    d = xtr.shape[1]
    if dim is None:
        dim = 1000 if d >= 1500 else 512 if d >= 768 else max(d // 2, 1)
    ftr = xtr.astype(np.float64)
    q = klm_templates(xkf.astype(np.float64) @ w.T + b)
    thr = np.percentile(ftr.flatten(), pct)
    u = -np.matmul(np.linalg.pinv(w), b)
    ec = EmpiricalCovariance(assume_centered=True).fit(ftr - u)
    ev, evec = np.linalg.eig(ec.covariance_)
    ev, evec = ev.real, evec.real
    NS = np.ascontiguousarray((evec.T[np.argsort(ev * -1)[dim:]]).T)
    ltr = ftr @ w.T + b
    alpha = ltr.max(axis=-1).mean() / np.linalg.norm((ftr - u) @ NS, axis=-1).mean()
    rf = rmds_fit(xtr, ytr)
    out = []
    for x in xs:
        f = x.astype(np.float64)
        z = f @ w.T + b
        s = logit_scores(z, q, gamma, M)
        s["react"] = logsumexp(np.clip(f, None, thr) @ w.T + b, axis=1)
        s["vim"] = logsumexp(z, axis=-1) - alpha * np.linalg.norm((f - u) @ NS, axis=-1)
        s["rmds"] = rmds_score(rf, x)
        out.append(s)
    return out, thr, alpha


def fpr95(cid, cood):
    conf = np.concatenate([cid, cood])
    is_ood = np.concatenate([np.zeros(len(cid)), np.ones(len(cood))])
    fpr, tpr, _ = roc_curve(is_ood, -conf)
    return fpr[np.argmax(tpr >= 0.95)]


def auroc(cid, cood):
    conf = np.concatenate([cid, cood])
    is_ood = np.concatenate([np.zeros(len(cid)), np.ones(len(cood))])
    return roc_auc_score(is_ood, -conf)


def data(rng, k, d, ns):
    means = rng.normal(0, 1.5, (k, d))
    out = {}
    for s, n in ns.items():
        y = (np.arange(n) % k).astype(np.int32)
        x = means[y] + rng.normal(size=(n, d)) * rng.uniform(0.6, 1.4, d)
        if s.startswith("ood"):
            x = rng.normal(0, 1.0, d) + rng.normal(size=(n, d)) * 1.6
        out[s] = (np.maximum(x, -0.5) if s != "skip" else x).astype(np.float32), y
    return out


def driver_part(work, driver):
    rng = np.random.RandomState(14)
    for (k, d, dim, pct, gamma, M) in ((5, 16, 0, 90, 0.1, 100), (7, 30, 9, 85, 0.5, 3)):
        D = data(rng, k, d, {"train": 400, "test": 300, "ood": 250, "val": 200})
        w = rng.normal(0, 0.5, (k, d)).astype(np.float32)
        b = rng.normal(0, 0.5, k).astype(np.float32)
        inp = os.path.join(work, "in.bin")
        outp = os.path.join(work, "out.bin")
        with open(inp, "wb") as f:
            f.write(np.array([400, 300, 250, 200, d, k], np.int64).tobytes())
            f.write(np.array([pct, dim, gamma, M], np.float64).tobytes())
            for a in (D["train"][0], D["train"][1], D["test"][0], D["ood"][0], D["val"][0], w, b):
                f.write(np.ascontiguousarray(a).tobytes())
        r = subprocess.run([driver, inp, outp], capture_output=True, text=True)
        check(r.returncode == 0, "driver exit %d: %s" % (r.returncode, r.stderr))
        if r.returncode:
            return
        got = np.fromfile(outp, np.float64)
        thr_c, alpha_c = got[0], got[1]
        cte = got[2:2 + 8 * 300].reshape(8, 300)
        co = got[2 + 8 * 300:].reshape(8, 250)
        (rte, rood), thr, alpha = posthoc_ref(D["train"][0], D["train"][1], D["val"][0],
                                             w.astype(np.float64), b.astype(np.float64),
                                             [D["test"][0], D["ood"][0]], pct,
                                             dim if dim else None, gamma, M)
        check(close(thr_c, thr), "react threshold %r vs %r" % (thr_c, thr))
        check(close(alpha_c, alpha), "vim alpha %r vs %r" % (alpha_c, alpha))
        for j, nm in enumerate(NAMES):
            e1 = np.max(np.abs(cte[j] - rte[nm]) / np.maximum(1, np.abs(rte[nm])))
            e2 = np.max(np.abs(co[j] - rood[nm]) / np.maximum(1, np.abs(rood[nm])))
            check(e1 <= 1e-9 and e2 <= 1e-9, "k=%d %s scores differ by %.3g / %.3g" % (k, nm, e1, e2))
            a_c, a_r = auroc(cte[j], co[j]), auroc(rte[nm], rood[nm])
            check(abs(a_c - a_r) <= 1e-9, "k=%d %s auroc %r vs %r" % (k, nm, a_c, a_r))
            print("driver k=%d %-8s max rel score diff %.1e, auroc %.6f (ref %.6f)"
                  % (k, nm, max(e1, e2), a_c, a_r))


def cli_part(work, rb):
    rng = np.random.RandomState(41)
    k = 4
    ns = {"train": 500, "val": 200, "test": 300, "ood_a": 200, "ood_b": 150}
    path = os.path.join(work, "ph.h5")
    layers = {"l1": 12, "l2": 20}
    D = {l: data(rng, k, d, ns) for l, d in layers.items()}
    wlog = rng.normal(0, 0.7, (k, 20))
    with h5py.File(path, "w") as f:
        for l, dd in D.items():
            for s in ns:
                f.create_dataset("features/%s/%s" % (s, l), data=dd[s][0])
                f["features/%s/%s" % (s, l)].attrs["depth"] = int(l[1])
        for s in ns:
            if not s.startswith("ood"):
                f.create_dataset("labels/" + s, data=D["l1"][s][1])
            if s != "ood_b":
                z = (D["l2"][s][0].astype(np.float64) @ wlog.T).astype(np.float32)
                f.create_dataset("logits/" + s, data=z)
    out = os.path.join(work, "out")
    r = subprocess.run([rb, "run", "--methods", "ood_posthoc,ood_logits_posthoc", "--bootstrap", "0",
                        "--quiet", "-o", out, path], capture_output=True, text=True)
    check(r.returncode == 0, "run exit %d: %s" % (r.returncode, r.stderr))
    if r.returncode:
        return
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    def get(method, layer, split, metric, score):
        v = [float(x["value"]) for x in rows if x["method"] == method and x["layer"] == layer
             and x["split"] == split and x["metric"] == metric and ("score=" + score) in x["params"].split(";")]
        return v[0] if len(v) == 1 else None
    # rmds and the logreg-head scores per layer.
    for l in layers:
        xtr, ytr = D[l]["train"]
        rf = rmds_fit(xtr, ytr)
        lr = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(xtr.astype(np.float64), ytr)
        # repbench's objective is sum CE + |W|^2/(2C); sklearn's is the same.
        sc, thr, alpha = posthoc_ref(xtr, ytr, D[l]["val"][0], lr.coef_, lr.intercept_,
                                      [D[l]["test"][0], D[l]["ood_a"][0], D[l]["ood_b"][0]])
        for si, sp in ((1, "ood_a"), (2, "ood_b")):
            cid, cood = rmds_score(rf, D[l]["test"][0]), rmds_score(rf, D[l][sp][0])
            g = get("ood_posthoc", l, sp, "auroc", "rmds")
            check(g is not None and abs(g - auroc(cid, cood)) <= 1e-9,
                  "rmds %s %s auroc %r vs %r" % (l, sp, g, auroc(cid, cood)))
            g2 = get("ood_posthoc", l, sp, "fpr95_openood15", "rmds")
            check(g2 is not None and abs(g2 - fpr95(cid, cood)) <= 1e-9, "rmds %s %s fpr95" % (l, sp))
            print("cli rmds %s %s auroc %.9f ref %.9f" % (l, sp, g, auroc(cid, cood)))
            for nm in NAMES[:-1]:
                g = get("ood_posthoc", l, sp, "auroc", nm)
                ref = auroc(sc[0][nm], sc[si][nm])
                check(g is not None and abs(g - ref) <= 0.02,
                      "logreg head %s %s %s auroc %r vs sklearn head %r" % (nm, l, sp, g, ref))
    # The dump's own logits.
    q = klm_templates(np.asarray(h5py.File(path, "r")["logits/val"]).astype(np.float64))
    with h5py.File(path, "r") as f:
        zt = np.asarray(f["logits/test"])
        zo = np.asarray(f["logits/ood_a"])
    st, so = logit_scores(zt, q), logit_scores(zo, q)
    for nm in ("maxlogit", "gen", "klm"):
        g = get("ood_logits_posthoc", "logits", "ood_a", "auroc", nm)
        ref = auroc(st[nm], so[nm])
        check(g is not None and abs(g - ref) <= 1e-9, "dump logits %s auroc %r vs %r" % (nm, g, ref))
        print("cli dump-logits %-8s auroc %.9f ref %.9f" % (nm, g if g is not None else -1, ref))
    check(not [x for x in rows if x["method"] == "ood_logits_posthoc" and x["split"] == "ood_b"],
          "ood_b has no logits: no rows expected")


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    driver_part(work, os.environ.get("DRIVER", "build/tests/test_posthoc"))
    cli_part(work, os.environ.get("RB_BIN", "bin/repbench"))
    print("xcheck_posthoc: %d checks, %d failed" % (checks, fails))
    sys.exit(1 if fails else 0)


main()

#!/usr/bin/python3
"""xcheck_ood.py -- the ood methods against Debian's scikit-learn / SciPy.

Writes a synthetic dump with h5py: 4 Gaussian classes, labeled train and
test (in-distribution), ood_a (shifted means) and ood_b (inflated
variance); layers `a` (d = 8), `b` (d = 24, a few low-variance directions
that NPCA keeps) and `dup` (d = 5 with a duplicated column: the tied
covariance is singular, so ood_maha takes the pseudo-inverse);
/logits/train, /logits/test and /logits/ood_a (no /logits/ood_b: that split is skipped by
ood_energy / ood_msp) built from a few distinct integer rows so that the
logit scores have heavy ties across ID and OOD, with counts for which
roc_curve's drop_intermediate decides fpr95_openood15.  Then runs

    $RB_BIN run --methods ood_maha,ood_gauss,ood_knn,ood_energy,ood_msp,calib \
        --bootstrap 200 [options] -o DIR dump.h5

twice (defaults; --ood-knn-k 5,50 --ood-npca-tau 0.9 --ood-chi2-sigma 2
--ood-energy-T 2) and recomputes every score in NumPy from the same float32
values:
    ood_maha   class means, sklearn EmpiricalCovariance on class-centred
               train rows (precision_ = pinvh), conf = max_c -d^2
    ood_gauss  sklearn LedoitWolf on train, conf = -sqrt(d^2); NPCA: sklearn
               PCA(), j = argmax(cumsum(ratio) > tau), components_[max(j-1,
               0):], LedoitWolf refit on the projections
    ood_knn    rows / ||row||, sklearn NearestNeighbors, conf = -dist_k
    ood_energy T * scipy logsumexp(z / T);  ood_msp  max softmax
    calib      ECE (15 bins) / NLL / accuracy of /logits/test, temperature
               by brentq on dNLL/dbeta over /logits/train (to 1e-9)
and the metrics with sklearn: roc_auc_score(is_ood, -conf); auc(recall,
precision) of precision_recall_curve(is_id, conf) and (is_ood, -conf);
fpr95_openood15 = fpr[argmax(tpr >= .95)] of roc_curve(is_ood, -conf);
fpr95_id_pos likewise of roc_curve(is_id, conf); fpr95_knnood =
mean(ood > sort(id)[round(.05 n_id)]).  Every metric row must agree to
1e-6; lw_shrinkage to 1e-9; gauss_dims exactly; chi2 rows to one sample
(1/n); the AUROC interval must contain the AUROC.  Every expected row must
be present and no unexpected row either.

Usage: RB_BIN=bin/repbench xcheck_ood.py [WORKDIR]
"""
import csv
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp
from scipy.stats import chi2
from sklearn.covariance import EmpiricalCovariance, LedoitWolf
from sklearn.decomposition import PCA
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

TOL = 1e-6
METHODS = "ood_maha,ood_gauss,ood_knn,ood_energy,ood_msp,calib"


def make_dump(path):
    rng = np.random.RandomState(2385)
    k = 4
    ns = {"train": 600, "test": 400, "ood_a": 300, "ood_b": 250}
    labels = {s: (np.arange(n) % k).astype(np.int32) for s, n in ns.items()}
    for y in labels.values():
        rng.shuffle(y)
    feats = {}
    for layer, d in (("a", 8), ("b", 24), ("dup", 4)):
        means = rng.normal(0, 2.0, (k, d)) + 1.5
        sd = rng.uniform(0.5, 2.0, d)
        if layer == "b":
            sd[-5:] = rng.uniform(0.01, 0.05, 5)  # low-variance directions
        rot = np.linalg.qr(rng.normal(size=(d, d)))[0]
        out = {}
        for s, n in ns.items():
            y = labels[s]
            z = rng.normal(size=(n, d)) * sd
            if s == "ood_a":
                z = z + rng.normal(0, 1.0, d)
            if s == "ood_b":
                z = z * 1.6
            x = means[y] + z @ rot
            if layer == "dup":
                x = np.hstack([x, x[:, :1]])
            out[s] = x.astype(np.float32)
        feats[layer] = out
    pats = np.array([[j, 0, 0, 0] for j in range(6)], dtype=np.float32)
    # Pattern counts chosen so that the last two OOD-positive ROC steps are
    # equal, (15 OOD, 125 ID) twice: the point at tpr = .95 is collinear and
    # roc_curve drops it, fpr95_openood15 = 1 (0.6875 without dropping).
    cnt_id, cnt_ood = [10, 20, 40, 80, 125, 125], [100, 80, 60, 30, 15, 15]
    logits = {}
    for s, cnt in (("test", cnt_id), ("ood_a", cnt_ood)):
        j = np.repeat(np.arange(6), cnt)
        rng.shuffle(j)
        logits[s] = pats[j]
        if s == "test":  # labels that follow the logits (for calib)
            labels[s] = np.where(rng.uniform(size=len(j)) < (j + 1) / 7.0, 0,
                                 rng.randint(1, 4, len(j))).astype(np.int32)
    ytr = labels["train"]
    j = np.where(ytr == 0, rng.choice(6, len(ytr), p=[.05, .05, .1, .2, .3, .3]),
                 rng.choice(6, len(ytr), p=[.3, .3, .2, .1, .05, .05]))
    logits["train"] = pats[j]
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "repbench-features"
        f.attrs["version"] = 1
        f.attrs["layers"] = ["a", "b", "dup"]
        for s in ns:
            f.create_dataset("labels/" + s, data=labels[s])
            for layer in feats:
                f.create_dataset("features/%s/%s" % (s, layer), data=feats[layer][s])
        for s, z in logits.items():
            f.create_dataset("logits/" + s, data=z)
    return feats, labels, logits


def metrics(cid, cood):
    conf = np.r_[cid, cood]
    is_id = np.r_[np.ones(len(cid)), np.zeros(len(cood))]
    is_ood = 1 - is_id
    out = {"auroc": roc_auc_score(is_ood, -conf)}
    p, r, _ = precision_recall_curve(is_id, conf)
    out["aupr_in"] = auc(r, p)
    p, r, _ = precision_recall_curve(is_ood, -conf)
    out["aupr_out"] = auc(r, p)
    fpr, tpr, _ = roc_curve(is_ood, -conf)
    out["fpr95_openood15"] = fpr[np.argmax(tpr >= 0.95)]
    fpr, tpr, _ = roc_curve(is_id, conf)
    out["fpr95_id_pos"] = fpr[np.argmax(tpr >= 0.95)]
    thr = np.sort(cid)[round(0.05 * len(cid))]
    out["fpr95_knnood"] = np.mean(cood > thr)
    # ROC sampled on the grid: the best TPR at FPR <= f, from sklearn's full
    # (undropped) curve with OOD positive.
    fpr, tpr, _ = roc_curve(is_ood, -conf, drop_intermediate=False)
    for f in ROC_FPR:
        out[("roc_tpr", "fpr=%g" % f)] = tpr[fpr <= f + 1e-15].max()
    return out


ROC_FPR = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def with_param(params, item):
    return ";".join(sorted([p for p in params.split(";") if p] + [item]))


def ece_nll(z, y, T):
    p = np.exp(z / T - logsumexp(z / T, axis=1, keepdims=True))
    conf, ok = p.max(1), p.argmax(1) == y
    ece = 0.0
    for b in range(15):
        m = (conf > b / 15) & (conf <= (b + 1) / 15)
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - ok[m].mean())
    nll = np.mean(logsumexp(z / T, axis=1) - z[np.arange(len(y)), y] / T)
    return ece, nll, ok.mean()


def reliability(exp, z, y, T, params):
    """Reliability diagram rows: per non-empty bin (b/15, (b+1)/15], the
    accuracy and the mean confidence of softmax(z / T)."""
    p = np.exp(z / T - logsumexp(z / T, axis=1, keepdims=True))
    conf, ok = p.max(1), p.argmax(1) == y
    for b in range(15):
        m = (conf > b / 15) & (conf <= (b + 1) / 15)
        if m.any():
            pp = with_param(params, "bin_hi=%.6g" % ((b + 1) / 15))
            exp[("logits", "test", "calib", pp, "reliability_acc")] = (ok[m].mean(), 1e-9)
            exp[("logits", "test", "calib", pp, "reliability_conf")] = (conf[m].mean(), 1e-9)


def calib(exp, z, labels):
    """calib rows: ECE/NLL/top1 of test, T fitted on train by brentq on
    dNLL/dbeta, ECE/NLL of the scaled test logits."""
    zt, yt = z["test"], labels["test"]
    ece, nll, acc = ece_nll(zt, yt, 1.0)
    for m, v in (("ece15", ece), ("nll", nll), ("head_top1", acc)):
        exp[("logits", "test", "calib", "bins=15", m)] = (v, 1e-9)
    reliability(exp, zt, yt, 1.0, "bins=15")
    zf, yf = z["train"], labels["train"]

    def dnll(b):
        p = np.exp(b * zf - logsumexp(b * zf, axis=1, keepdims=True))
        return np.mean((p * zf).sum(1) - zf[np.arange(len(yf)), yf])
    T = 1 / brentq(dnll, math.exp(-5), math.exp(5), xtol=1e-16, rtol=1e-15)
    exp[("logits", "train", "calib", "bins=15;fit=train", "temperature")] = (T, 1e-9)
    ece, nll, _ = ece_nll(zt, yt, T)
    exp[("logits", "test", "calib", "bins=15;fit=train", "ece15_ts")] = (ece, 1e-9)
    exp[("logits", "test", "calib", "bins=15;fit=train", "nll_ts")] = (nll, 1e-9)
    reliability(exp, zt, yt, T, "bins=15;fit=train")


def quad(x, mu, prec):
    z = x - mu
    return np.einsum("ij,jk,ik->i", z, prec, z)


def expected(feats, labels, logits, opt):
    """{(layer, split, method, params, metric): value} and chi2 rows."""
    exp = {}
    ood = ["ood_a", "ood_b"]

    def put(layer, method, params, conf):
        for s in conf:
            if s == "test":
                continue
            for m, v in metrics(conf["test"], conf[s]).items():
                if isinstance(m, tuple):
                    exp[(layer, s, method, with_param(params, m[1]), m[0])] = (v, TOL)
                else:
                    exp[(layer, s, method, params, m)] = (v, TOL)

    for layer, fx in feats.items():
        X = {s: v.astype(np.float64) for s, v in fx.items()}
        tr, ytr = X["train"], labels["train"]
        # ood_maha
        mus = np.array([tr[ytr == c].mean(0) for c in range(4)])
        ec = EmpiricalCovariance(assume_centered=False).fit(tr - mus[ytr])
        conf = {s: np.max([-quad(X[s], mus[c], ec.precision_) for c in range(4)], axis=0)
                for s in ["test"] + ood}
        pinv = layer == "dup"
        put(layer, "ood_maha", "cov=tied;precision=" + ("pinvh" if pinv else "cholesky"), conf)
        # ood_gauss full and NPCA
        sig = opt["sigma"]
        p = math.erf(sig / math.sqrt(2))
        for variant in ("full", "npca"):
            if variant == "full":
                lw = LedoitWolf().fit(tr)
                proj = lambda x: x
                params = "cov=ledoit_wolf;variant=full"
                pp = "cov=ledoit_wolf;sigma=%g;variant=full" % sig
            else:
                pca = PCA().fit(tr)
                cum = np.cumsum(pca.explained_variance_ratio_)
                j = int(np.argmax(cum > opt["tau"]))
                comps = pca.components_[max(j - 1, 0):]
                proj = lambda x, m=pca.mean_, c=comps: (x - m) @ c.T
                lw = LedoitWolf().fit(proj(tr))
                params = "cov=ledoit_wolf;tau=%g;variant=npca" % opt["tau"]
                pp = "cov=ledoit_wolf;sigma=%g;tau=%g;variant=npca" % (sig, opt["tau"])
            dist = {s: np.sqrt(np.maximum(quad(proj(X[s]), lw.location_, lw.precision_), 0))
                    for s in ["test"] + ood}
            put(layer, "ood_gauss", params, {s: -v for s, v in dist.items()})
            kdim = lw.location_.shape[0]
            exp[(layer, "train", "ood_gauss", params, "lw_shrinkage")] = (lw.shrinkage_, 1e-9)
            exp[(layer, "train", "ood_gauss", params, "gauss_dims")] = (kdim, 0)
            thr = math.sqrt(chi2.ppf(p, kdim))
            exp[(layer, "test", "ood_gauss", pp, "chi2_threshold")] = (thr, 1e-9)
            nt = len(dist["test"])
            exp[(layer, "test", "ood_gauss", pp, "chi2_fpr")] = (np.mean(dist["test"] > thr), 1.01 / nt)
            exp[(layer, "test", "ood_gauss", pp, "chi2_fpr_expected")] = (math.erfc(sig / math.sqrt(2)), 1e-12)
            for s in ood:
                exp[(layer, s, "ood_gauss", pp, "chi2_tpr")] = (np.mean(dist[s] > thr), 1.01 / len(dist[s]))
        # ood_knn
        nrm = {s: X[s] / np.linalg.norm(X[s], axis=1, keepdims=True) for s in X}
        for k in opt["knn_k"]:
            nn = NearestNeighbors(n_neighbors=k).fit(nrm["train"])
            conf = {s: -nn.kneighbors(nrm[s])[0][:, -1] for s in ["test"] + ood}
            put(layer, "ood_knn", "k=%d" % k, conf)
    T = opt["T"]
    z = {s: v.astype(np.float64) for s, v in logits.items()}
    calib(exp, z, labels)
    z = {s: v for s, v in z.items() if s != "train"}
    put("logits", "ood_energy", "T=%g" % T, {s: T * logsumexp(v / T, axis=1) for s, v in z.items()})
    put("logits", "ood_msp", "", {s: np.max(np.exp(v - logsumexp(v, axis=1, keepdims=True)), axis=1)
                                  for s, v in z.items()})
    return exp


def run(rb, dump, outdir, extra):
    cmd = [rb, "run", "--methods", METHODS, "--bootstrap", "200", "-o", outdir] + extra + [dump]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print("FAIL: %s exited %d: %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
        return None
    with open(os.path.join(outdir, "results.csv")) as f:
        return list(csv.DictReader(f))


def compare(rows, exp, label):
    fails = 0
    seen = set()
    worst = 0.0
    for r in rows:
        key = (r["layer"], r["split"], r["method"], r["params"], r["metric"])
        if key not in exp:
            print("FAIL %s: unexpected row %s" % (label, key))
            fails += 1
            continue
        seen.add(key)
        want, tol = exp[key]
        got = float(r["value"])
        err = abs(got - want)
        if r["metric"] not in ("chi2_fpr", "chi2_tpr"):
            worst = max(worst, err)
        if not err <= tol:
            print("FAIL %s: %s = %.12g, reference %.12g (tol %g)" % (label, key, got, want, tol))
            fails += 1
        if r["metric"] == "auroc":
            lo, hi = float(r["ci_low"]), float(r["ci_high"])
            if not (lo <= got <= hi):
                print("FAIL %s: %s interval [%g, %g] misses %g" % (label, key, lo, hi, got))
                fails += 1
    for key in exp:
        if key not in seen:
            print("FAIL %s: missing row %s" % (label, key))
            fails += 1
    print("%s %s: %d rows, largest metric deviation %.2e (tol %g)" %
          ("FAIL" if fails else "ok  ", label, len(rows), worst, TOL))
    return fails


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    rb = os.environ.get("RB_BIN", "bin/repbench")
    dump = os.path.join(work, "oodx.h5")
    feats, labels, logits = make_dump(dump)
    fails = 0
    for label, extra, opt in (
            ("defaults", [], {"sigma": 3, "tau": 0.99, "knn_k": [50], "T": 1}),
            ("options", ["--ood-knn-k", "5,50", "--ood-npca-tau", "0.9", "--ood-chi2-sigma", "2",
                         "--ood-energy-T", "2"], {"sigma": 2, "tau": 0.9, "knn_k": [5, 50], "T": 2})):
        rows = run(rb, dump, os.path.join(work, label), extra)
        if rows is None:
            fails += 1
            continue
        fails += compare(rows, expected(feats, labels, logits, opt), label)
    print("xcheck_ood: %s" % ("FAIL" if fails else "all agree"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""xcheck_probes.py -- the closed-form probes against Debian's scikit-learn.

Writes sklearn's bundled digits, wine and breast_cancer sets (stratified
70/30 split, random_state 0) and two synthetic Gaussian sets (one with
n_train < d, which takes ridge's dual path) as repbench dumps
(/features/{train,test}/x float32, /labels/{train,test} int32), runs

    $RB_BIN run --methods gnb,nb_pooled,lda,ncm,ridge --bootstrap 0 \
        --predictions -o DIR dump.h5

and compares the predictions with
    gnb              GaussianNB()
    nb_pooled        METRICS.md section d in NumPy (pooled diagonal variance)
    lda              LinearDiscriminantAnalysis(solver='lsqr', shrinkage='auto')
    ncm euclidean    NearestCentroid()
    ncm cosine       NearestCentroid() on L2-normalised train and test rows
    ridge            RidgeClassifier(alpha=1.0)
all fitted in float64 on the same float32 values; then a second run with
--var-smoothing 1e-3 --lda-shrinkage 0.3 --ridge-alpha 10 against
GaussianNB(var_smoothing=1e-3), LDA(solver='lsqr', shrinkage=0.3) and
RidgeClassifier(alpha=10).  A disagreement counts as
a tie when the reference's top-2 score margin is below 1e-6 relative
(max(1, |top score|)); any other disagreement fails.  top1 in results.csv
must equal the accuracy of our predictions, and differ from sklearn's by at
most ties/n.  One summary line per dataset and method.

Usage: RB_BIN=bin/repbench xcheck_probes.py [WORKDIR]
"""
import csv
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import NearestCentroid

TIE_REL = 1e-6
METHODS = "gnb,nb_pooled,lda,ncm,ridge"


def datasets():
    out = {}
    for name, loader in (("digits", load_digits), ("wine", load_wine),
                         ("breast_cancer", load_breast_cancer)):
        X, y = loader(return_X_y=True)
        out[name] = train_test_split(X.astype(np.float32), y.astype(np.int32),
                                     test_size=0.3, stratify=y, random_state=0)
    rng = np.random.RandomState(2385)
    for name, k, d, ntr, nte, sep in (("synth", 5, 20, 1500, 1000, 1.0),
                                      ("synth_wide", 4, 100, 60, 400, 0.3)):
        means = rng.normal(0, sep, (k, d)) + 2.385
        sd = rng.uniform(0.5, 3.0, d)
        def draw(n):
            y = np.arange(n) % k
            rng.shuffle(y)
            return (means[y] + sd * rng.normal(size=(n, d))).astype(np.float32), y.astype(np.int32)
        Xtr, ytr = draw(ntr)
        Xte, yte = draw(nte)
        out[name] = (Xtr, Xte, ytr, yte)
    return out


def write_dump(path, Xtr, Xte, ytr, yte):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "repbench-features"
        f.attrs["version"] = 1
        f.create_dataset("features/train/x", data=Xtr)
        f.create_dataset("features/test/x", data=Xte)
        f.create_dataset("labels/train", data=ytr)
        f.create_dataset("labels/test", data=yte)


def as_matrix(scores, k):
    """sklearn reports one column for two classes: (-f, f) has the same argmax."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        s = np.stack([-s, s], axis=1)
    return s


def nb_pooled(Xtr, ytr, Xte, k):
    """METRICS.md d (models/gaussnb.py of Zheng et al.)."""
    n = len(ytr)
    pri = np.array([np.mean(ytr == c) for c in range(k)])
    mu = np.stack([Xtr[ytr == c].mean(0) for c in range(k)])
    var = np.stack([Xtr[ytr == c].var(0) + 1e-9 for c in range(k)])
    pooled = (pri[:, None] * var).sum(0)
    assert n == len(Xtr)
    return np.log(pri)[None, :] - 0.5 * (((Xte[:, None, :] - mu[None]) ** 2) / pooled).sum(2)


def centroid_scores(Xtr, ytr, Xte):
    nc = NearestCentroid().fit(Xtr, ytr)
    d2 = ((Xte[:, None, :] - nc.centroids_[None]) ** 2).sum(2)
    return -d2, nc.predict(Xte)


def references_opts(Xtr, ytr, Xte, k):
    """The second run, with non-default options (OPTS)."""
    ref = {}
    g = GaussianNB(var_smoothing=1e-3).fit(Xtr, ytr)
    jll = g.predict_joint_log_proba(Xte) if hasattr(g, "predict_joint_log_proba") \
        else g._joint_log_likelihood(Xte)
    ref[("gnb", "var_smoothing=0.001")] = (as_matrix(jll, k), g.predict(Xte))
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.3).fit(Xtr, ytr)
    ref[("lda", "shrinkage=0.3")] = (as_matrix(lda.decision_function(Xte), k), lda.predict(Xte))
    rc = RidgeClassifier(alpha=10.0).fit(Xtr, ytr)
    ref[("ridge", "alpha=10")] = (as_matrix(rc.decision_function(Xte), k), rc.predict(Xte))
    return ref


OPTS = ["--var-smoothing", "1e-3", "--lda-shrinkage", "0.3", "--ridge-alpha", "10"]


def references(Xtr, ytr, Xte, k):
    """(method, params) -> (scores n x k, sklearn predictions)."""
    ref = {}
    g = GaussianNB().fit(Xtr, ytr)
    jll = g.predict_joint_log_proba(Xte) if hasattr(g, "predict_joint_log_proba") \
        else g._joint_log_likelihood(Xte)
    ref[("gnb", "var_smoothing=1e-09")] = (as_matrix(jll, k), g.predict(Xte))
    s = nb_pooled(Xtr, ytr, Xte, k)
    ref[("nb_pooled", "var_add=1e-09")] = (s, np.argmax(s, 1))
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(Xtr, ytr)
    ref[("lda", "shrinkage=auto")] = (as_matrix(lda.decision_function(Xte), k), lda.predict(Xte))
    s, p = centroid_scores(Xtr, ytr, Xte)
    ref[("ncm", "metric=euclidean")] = (s, p)
    def unit(X):
        nrm = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.where(nrm > 0, nrm, 1)
    s, p = centroid_scores(unit(Xtr), ytr, unit(Xte))
    ref[("ncm", "metric=cosine")] = (s, p)
    rc = RidgeClassifier(alpha=1.0).fit(Xtr, ytr)
    ref[("ridge", "alpha=1")] = (as_matrix(rc.decision_function(Xte), k), rc.predict(Xte))
    return ref


def compare(name, out, ref, yte):
    """Compare predictions.csv/results.csv in out with ref; returns failures."""
    fails = 0
    pred, top1 = {}, {}
    with open(os.path.join(out, "predictions.csv"), newline="") as f:
        for row in csv.DictReader(f):
            pred.setdefault((row["method"], row["params"]), {})[int(row["index"])] = int(row["pred"])
    with open(os.path.join(out, "results.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if row["metric"] == "top1":
                top1[(row["method"], row["params"])] = float(row["value"])
    for key, (s, skp) in ref.items():
        label = "%s %s %s" % (name, key[0], key[1])
        if key not in pred or key not in top1:
            print("FAIL %s: no predictions/top1 from repbench (have %s)" % (label, sorted(pred)))
            fails += 1
            continue
        n = len(yte)
        ours = np.array([pred[key].get(i, -1) for i in range(n)])
        srt = np.sort(s, axis=1)
        margin = (srt[:, -1] - srt[:, -2]) / np.maximum(1.0, np.abs(srt[:, -1]))
        diff = ours != skp
        ties = int(np.sum(diff & (margin < TIE_REL)))
        hard = int(np.sum(diff & (margin >= TIE_REL)))
        acc_ours = float(np.mean(ours == yte))
        acc_sk = float(np.mean(skp == yte))
        ok = hard == 0 and abs(top1[key] - acc_ours) < 1e-12 and abs(acc_ours - acc_sk) <= ties / n + 1e-12
        print("%s %-34s agree %d/%d, ties %d, other %d; top1 %.6f sklearn %.6f"
              % ("ok  " if ok else "FAIL", label, n - int(diff.sum()), n, ties, hard, top1[key], acc_sk))
        if not ok:
            fails += 1
            for i in np.flatnonzero(diff & (margin >= TIE_REL))[:3]:
                print("     sample %d: ours %d sklearn %d, sklearn scores %s" % (i, ours[i], skp[i], s[i]))
    return fails


def main():
    rb = os.environ.get("RB_BIN", "bin/repbench")
    work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="xcheck_probes.")
    fails = 0
    for name, (Xtr, Xte, ytr, yte) in datasets().items():
        k = int(max(ytr.max(), yte.max())) + 1
        dump = os.path.join(work, name + ".h5")
        write_dump(dump, Xtr, Xte, ytr, yte)
        A, B = Xtr.astype(np.float64), Xte.astype(np.float64)
        for tag, methods, extra, refs in (("", METHODS, [], references),
                                          ("opts", "gnb,lda,ridge", OPTS, references_opts)):
            out = os.path.join(work, "out_%s%s" % (name, tag))
            cmd = [rb, "run", "--methods", methods, "--bootstrap", "0", "--predictions"] + extra + ["-o", out, dump]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print("FAIL %s: %s exited %d: %s" % (name, " ".join(cmd), r.returncode, r.stderr.strip()))
                fails += 1
                continue
            fails += compare(name, out, refs(A, ytr, B, k), yte)
    print("xcheck_probes: %s" % ("all agree" if fails == 0 else "%d FAILED" % fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

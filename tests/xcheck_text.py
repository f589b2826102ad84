#!/usr/bin/python3
"""xcheck_text.py -- zeroshot and retrieval against NumPy.

Dump: 12 classes; layer l1 (d = 16) and l2 (d = 8); /text/plain [12, 16]
(class embeddings: the class means plus noise), /text/ens [12, 3, 16] (a
3-prompt ensemble), /text/narrow [12, 8] (matches l2 only),
/text_pairs/test [N, 16] (the test features plus noise, so l1 retrieves
and l2 is skipped by width), no /text_pairs/train.  NumPy: normalise
rows, ensembles as mean of normalised prompts renormalised; top1, top5 (label
among the 5 highest; ties to the lower index), balanced accuracy; recall@K
with rank = #{greater} + #{equal with lower index}.  All rows to 1e-12;
zs_gap_top1 = sklearn LogisticRegression(C=1) top1 minus zero-shot top1 to
one test sample (1/N: a second solver).  A synthetic known answer: with
/text/plain = the exact class means of a noise-free test split, top1 = 1.
"""
import csv
import os
import subprocess
import sys

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression

fails = checks = 0


def check(ok, what):
    global fails, checks
    checks += 1
    if not ok:
        fails += 1
        print("FAIL:", what)


def nrm(a):
    a = a.astype(np.float64)
    q = np.linalg.norm(a, axis=-1, keepdims=True)
    return np.where(q > 0, a / np.where(q > 0, q, 1), 0)


def zs_ref(x, emb, y):
    t = nrm(nrm(emb).mean(1)) if emb.ndim == 3 else nrm(emb)
    s = (nrm(x) @ t.T).astype(np.float32)
    k = s.shape[1]
    pred = s.argmax(1)
    top1 = np.mean(pred == y)
    above = np.array([np.sum((s[i] > s[i, y[i]]) | ((s[i] == s[i, y[i]]) & (np.arange(k) < y[i])))
                      for i in range(len(y))])
    top5 = np.mean(above < 5)
    bal = np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)])
    return top1, top5, bal


def recall_ref(a, b, ks):
    a, b = nrm(a), nrm(b)
    s = a @ b.T
    n = len(a)
    r = [np.sum(s[i] > s[i, i]) + np.sum(s[i, :i] == s[i, i]) for i in range(n)]
    return [np.mean(np.array(r) < k) for k in ks]


def main():
    work = sys.argv[1]
    rb = os.environ.get("RB_BIN", "bin/repbench")
    rng = np.random.RandomState(11)
    k, ntr, nte = 12, 360, 240
    mu1 = rng.normal(size=(k, 16))
    mu2 = rng.normal(size=(k, 8))
    ytr = (np.arange(ntr) % k).astype(np.int32)
    yte = (np.arange(nte) % k).astype(np.int32)
    X = {("train", "l1"): mu1[ytr] + 1.2 * rng.normal(size=(ntr, 16)),
         ("test", "l1"): mu1[yte] + 1.2 * rng.normal(size=(nte, 16)),
         ("train", "l2"): mu2[ytr] + 1.0 * rng.normal(size=(ntr, 8)),
         ("test", "l2"): mu2[yte] + 1.0 * rng.normal(size=(nte, 8))}
    X = {a: b.astype(np.float32) for a, b in X.items()}
    texts = {"plain": (mu1 + 0.8 * rng.normal(size=(k, 16))).astype(np.float32),
             "ens": (mu1[:, None, :] + 1.5 * rng.normal(size=(k, 3, 16))).astype(np.float32),
             "narrow": (mu2 + 0.5 * rng.normal(size=(k, 8))).astype(np.float32)}
    pairs = (X[("test", "l1")] + 0.9 * rng.normal(size=(nte, 16))).astype(np.float32)
    path = os.path.join(work, "t.h5")
    with h5py.File(path, "w") as f:
        for (s, l), x in X.items():
            f.create_dataset("features/%s/%s" % (s, l), data=x)
        f.create_dataset("labels/train", data=ytr)
        f.create_dataset("labels/test", data=yte)
        for nm, e in texts.items():
            f.create_dataset("text/" + nm, data=e)
        f.create_dataset("text_pairs/test", data=pairs)
    out = os.path.join(work, "o")
    r = subprocess.run([rb, "run", "--methods", "zeroshot,retrieval", "--bootstrap", "0", "--quiet",
                        "-o", out, path], capture_output=True, text=True)
    check(r.returncode == 0, "run: %s" % r.stderr)
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    got = {(x["method"], x["layer"], x["split"], x["params"], x["metric"]): float(x["value"]) for x in rows}
    expect = {"l1": ["plain", "ens"], "l2": ["narrow"]}
    for l, names in expect.items():
        xtr, xte = X[("train", l)], X[("test", l)]
        lr = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(xtr.astype(np.float64), ytr)
        lr_top1 = np.mean(lr.predict(xte.astype(np.float64)) == yte)
        for nm in names:
            p = "prompts=3;text=ens" if nm == "ens" else "text=" + nm
            t1, t5, bal = zs_ref(xte, texts[nm], yte)
            for met, v in (("top1", t1), ("top5", t5), ("balanced_acc", bal)):
                g = got.get(("zeroshot", l, "test", p, met))
                check(g is not None and abs(g - v) <= 1e-12, "%s %s %s %r vs %r" % (l, nm, met, g, v))
            gap = got.get(("zeroshot", l, "test", ";".join(sorted(p.split(";") + ["probe=logreg_C1"])),
                           "zs_gap_top1"))
            check(gap is not None and abs(gap - (lr_top1 - t1)) <= 1.0 / nte + 1e-12,
                  "%s %s gap %r vs %r" % (l, nm, gap, lr_top1 - t1))
            print("zeroshot %s %-6s top1 %.6f top5 %.6f (ref %.6f %.6f) gap %.4f (sklearn %.4f)"
                  % (l, nm, got.get(("zeroshot", l, "test", p, "top1"), -1),
                     got.get(("zeroshot", l, "test", p, "top5"), -1), t1, t5, gap, lr_top1 - t1))
    n_zs = len({(x["layer"], x["params"]) for x in rows if x["method"] == "zeroshot" and x["metric"] == "top1"})
    check(n_zs == 3, "zeroshot result sets: %d, expected 3 (width-matched only)" % n_zs)
    ks = [1, 5, 10]
    i2t = recall_ref(X[("test", "l1")], pairs, ks)
    t2i = recall_ref(pairs, X[("test", "l1")], ks)
    for j, kk in enumerate(ks):
        g1 = got.get(("retrieval", "l1", "test", "k=%d" % kk, "recall_i2t"))
        g2 = got.get(("retrieval", "l1", "test", "k=%d" % kk, "recall_t2i"))
        check(g1 is not None and abs(g1 - i2t[j]) <= 1e-12, "i2t@%d %r vs %r" % (kk, g1, i2t[j]))
        check(g2 is not None and abs(g2 - t2i[j]) <= 1e-12, "t2i@%d %r vs %r" % (kk, g2, t2i[j]))
        print("retrieval l1 @%-2d i2t %.6f (ref %.6f) t2i %.6f (ref %.6f)" % (kk, g1, i2t[j], g2, t2i[j]))
    check(not [x for x in rows if x["method"] == "retrieval" and x["layer"] == "l2"], "l2 width differs: no retrieval rows")
    # Known answer: noise-free test rows at the class means, text = the means.
    p2 = os.path.join(work, "k.h5")
    with h5py.File(p2, "w") as f:
        f.create_dataset("features/train/l1", data=X[("train", "l1")])
        f.create_dataset("features/test/l1", data=(3 * mu1[yte]).astype(np.float32))
        f.create_dataset("labels/train", data=ytr)
        f.create_dataset("labels/test", data=yte)
        f.create_dataset("text/means", data=mu1.astype(np.float32))
    r = subprocess.run([rb, "run", "--methods", "zeroshot", "--bootstrap", "0", "--quiet", "-o",
                        os.path.join(work, "o2"), p2], capture_output=True, text=True)
    rows2 = list(csv.DictReader(open(os.path.join(work, "o2", "results.csv"))))
    t1 = [float(x["value"]) for x in rows2 if x["metric"] == "top1"]
    check(r.returncode == 0 and t1 == [1.0], "known answer top1 %r" % t1)
    print("known answer: top1 %r" % t1)
    print("xcheck_text: %d checks, %d failed" % (checks, fails))
    sys.exit(1 if fails else 0)


main()

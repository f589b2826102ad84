#!/usr/bin/python3
"""xcheck_tokens.py -- MP-lite and DINO linear-eval inputs against NumPy.

1. Driver (build/tests/test_tokens IN OUT) on small [N, T, D] arrays, three
   settings (cls 1/0, dp = D or less, G = 2/4): NumPy reference of
   METRICS.md section l as tokens.h states it (PCA by numpy.linalg.eigh of
   the biased covariance of the patch tokens, sign: largest |entry| positive;
   LayerNorm without affine, eps 1e-5; per-group scalar mean removal;
   (1/T') Y_g^T Y_{g+1}; rows to unit norm; signed sqrt; global L2).
   mu and P to 1e-9; features and CLS vectors to 2e-7 (stored as float32).
2. CLI on an h5py dump with /tokens/{train,test}/{b1,b2,b3} (T = 5, D = 8)
   and features: moment_probe rows with --tok-chunk-rows 7 equal those with
   the default chunking exactly; dino_linear input=cls_avgpool and
   input=cls_last2 (at b3: last 2 token layers with dino_blocks 2) and
   moment_probe head=cls equal repbench logreg --C 1 on a features dump
   built by NumPy from the same tokens ([CLS, mean patch], [CLS_b2, CLS_b3],
   CLS) exactly (same solver: this checks the inputs).
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


def mp_ref(xtr, xte, dp, G, cls):
    t0 = 1 if cls else 0
    pt = xtr[:, t0:, :].reshape(-1, xtr.shape[2]).astype(np.float64)
    mu = pt.mean(0)
    C = (pt - mu).T @ (pt - mu) / len(pt)
    w, V = np.linalg.eigh(C)
    P = V[:, ::-1][:, :dp].copy()
    for c in range(dp):
        big = np.argmax(np.abs(P[:, c]))
        if P[big, c] < 0:
            P[:, c] *= -1
    m = dp // G
    feats, clsv = [], []
    for x in xte.astype(np.float64):
        clsv.append(x[0] if cls else x.mean(0))
        Y = (x[t0:] - mu) @ P
        Yg = Y.reshape(len(Y), G, m)
        Yg = (Yg - Yg.mean(-1, keepdims=True)) / np.sqrt(Yg.var(-1, keepdims=True) + 1e-5)
        Yg = Yg - Yg.mean(axis=(0, 2), keepdims=True)
        blocks = []
        for g in range(G - 1):
            S = Yg[:, g, :].T @ Yg[:, g + 1, :] / len(Y)
            S = S / np.maximum(np.linalg.norm(S, axis=1, keepdims=True), 1e-12)
            blocks.append(S.ravel())
        v = np.concatenate(blocks)
        v = np.sign(v) * np.sqrt(np.abs(v))
        feats.append(v / max(np.linalg.norm(v), 1e-12))
    return mu, P, np.array(feats), np.array(clsv)


def driver_part(work, drv):
    rng = np.random.RandomState(9)
    for (ntr, nte, T, D, dp, G, cls) in ((40, 12, 7, 10, 8, 4, 1), (30, 9, 5, 6, 6, 2, 0), (25, 8, 6, 16, 12, 3, 1)):
        A = rng.normal(size=(D, D))
        xtr = (rng.normal(size=(ntr, T, D)) @ A + 0.5).astype(np.float32)
        xte = (rng.normal(size=(nte, T, D)) @ A + 0.5).astype(np.float32)
        inp, outp = os.path.join(work, "t.bin"), os.path.join(work, "t.out")
        with open(inp, "wb") as f:
            f.write(np.array([ntr, nte, T, D, dp, G, cls], np.int64).tobytes())
            f.write(xtr.tobytes())
            f.write(xte.tobytes())
        r = subprocess.run([drv, inp, outp], capture_output=True, text=True)
        check(r.returncode == 0, "driver: %s" % r.stderr)
        if r.returncode:
            continue
        raw = open(outp, "rb").read()
        nf = (G - 1) * (dp // G) ** 2
        mu = np.frombuffer(raw[:8 * D], np.float64)
        P = np.frombuffer(raw[8 * D:8 * D + 8 * D * dp], np.float64).reshape(D, dp)
        o = 8 * D + 8 * D * dp
        ft = np.frombuffer(raw[o:o + 4 * nte * nf], np.float32).reshape(nte, nf)
        ct = np.frombuffer(raw[o + 4 * nte * nf:], np.float32).reshape(nte, D)
        rmu, rP, rf, rc = mp_ref(xtr, xte, dp, G, cls)
        e_mu, e_P = np.max(np.abs(mu - rmu)), np.max(np.abs(P - rP))
        e_f, e_c = np.max(np.abs(ft - rf)), np.max(np.abs(ct - rc))
        check(e_mu <= 1e-9 and e_P <= 1e-9, "mu/P %.3g %.3g" % (e_mu, e_P))
        check(e_f <= 2e-7 and e_c <= 2e-7, "features %.3g cls %.3g" % (e_f, e_c))
        print("MP-lite N=%d T=%d D=%d dp=%d G=%d cls=%d: |mu| %.1e |P| %.1e |feat| %.1e |cls| %.1e"
              % (ntr, T, D, dp, G, cls, e_mu, e_P, e_f, e_c))


def run(rb, args):
    r = subprocess.run([rb, "run", "--bootstrap", "0", "--quiet"] + args, capture_output=True, text=True)
    check(r.returncode == 0, "run %r: %s" % (args, r.stderr))
    return r


def rows_of(d):
    return list(csv.DictReader(open(os.path.join(d, "results.csv"))))


def cli_part(work, rb):
    rng = np.random.RandomState(19)
    k, T, D = 3, 5, 8
    ns = {"train": 90, "test": 60}
    y = {s: (np.arange(n) % k).astype(np.int32) for s, n in ns.items()}
    mu = rng.normal(size=(k, D))
    tok = {}
    path = os.path.join(work, "tok.h5")
    with h5py.File(path, "w") as f:
        for s, n in ns.items():
            f.create_dataset("labels/" + s, data=y[s])
            for d, l in enumerate(("b1", "b2", "b3"), 1):
                x = (mu[y[s]][:, None, :] * 0.4 * d + rng.normal(size=(n, T, D))).astype(np.float32)
                tok[(s, l)] = x
                f.create_dataset("tokens/%s/%s" % (s, l), data=x)
                f.create_dataset("features/%s/%s" % (s, l), data=x[:, 0, :])
                f["features/%s/%s" % (s, l)].attrs["depth"] = d
    a, b = os.path.join(work, "a"), os.path.join(work, "b")
    run(rb, ["--methods", "moment_probe,dino_linear", "--mp-dim", "8", "--dino-blocks", "2", "-o", a, path])
    run(rb, ["--methods", "moment_probe,dino_linear", "--mp-dim", "8", "--dino-blocks", "2",
             "--tok-chunk-rows", "7", "-o", b, path])
    ra, rbb = rows_of(a), rows_of(b)
    key = lambda x: (x["layer"], x["method"], x["params"], x["metric"])
    va = {key(x): x["value"] for x in ra}
    vb = {key(x): x["value"] for x in rbb}
    check(va == vb and len(va) > 0, "chunked reads change the rows")
    print("chunk 7 vs default: %d rows, identical: %s" % (len(va), va == vb))
    # The inputs as a features dump, probed by logreg --C 1.
    fpath = os.path.join(work, "in.h5")
    with h5py.File(fpath, "w") as f:
        for s in ns:
            f.create_dataset("labels/" + s, data=y[s])
            for l in ("b1", "b2", "b3"):
                x = tok[(s, l)].astype(np.float64)
                f.create_dataset("features/%s/avg_%s" % (s, l),
                                 data=np.concatenate([x[:, 0], x[:, 1:].mean(1)], 1).astype(np.float32))
                f.create_dataset("features/%s/cls_%s" % (s, l), data=tok[(s, l)][:, 0, :])
            f.create_dataset("features/%s/last2" % s,
                             data=np.concatenate([tok[(s, "b2")][:, 0], tok[(s, "b3")][:, 0]], 1))
    c = os.path.join(work, "c")
    run(rb, ["--methods", "logreg", "--C", "1", "-o", c, fpath])
    lr = {(x["layer"], x["metric"]): x["value"] for x in rows_of(c) if x["metric"] in ("top1", "balanced_acc")}
    for l in ("b1", "b2", "b3"):
        for met in ("top1", "balanced_acc"):
            g = va.get((l, "dino_linear", "C=1;input=cls_avgpool", met))
            check(g is not None and g == lr[("avg_" + l, met)], "dino %s %s %r vs %r" % (l, met, g, lr[("avg_" + l, met)]))
            g2 = va.get((l, "moment_probe", "C=1;cls=1;dim=8;groups=4;head=cls", met))
            check(g2 is not None and g2 == lr[("cls_" + l, met)], "mp head=cls %s %s %r vs %r" % (l, met, g2, lr[("cls_" + l, met)]))
        print("layer %s: dino cls_avgpool top1 %s (logreg on NumPy input %s); mp head=cls %s (%s); head=avg %s"
              % (l, va.get((l, "dino_linear", "C=1;input=cls_avgpool", "top1")), lr[("avg_" + l, "top1")],
                 va.get((l, "moment_probe", "C=1;cls=1;dim=8;groups=4;head=cls", "top1")), lr[("cls_" + l, "top1")],
                 va.get((l, "moment_probe", "C=1;cls=1;dim=8;groups=4;head=avg", "top1"))))
    g = va.get(("b3", "dino_linear", "C=1;input=cls_last2", "top1"))
    check(g is not None and g == lr[("last2", "top1")], "dino last2 %r vs %r" % (g, lr[("last2", "top1")]))
    check(not [x for x in va if x[2].endswith("cls_last2") and x[0] != "b3"], "last-k rows only at the last token layer")
    print("b3 cls_last2 top1 %s (logreg %s)" % (g, lr[("last2", "top1")]))


def main():
    work = sys.argv[1]
    driver_part(work, os.environ.get("DRIVER", "build/tests/test_tokens"))
    cli_part(work, os.environ.get("RB_BIN", "bin/repbench"))
    print("xcheck_tokens: %d checks, %d failed" % (checks, fails))
    sys.exit(1 if fails else 0)


main()

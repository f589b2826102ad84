#!/usr/bin/env python3
"""bench_closed.py -- `make bench` for the closed-form probes (gnb, nb_pooled,
lda, ncm, ridge) against scikit-learn on the same Gaussian-mixture dump.

Usage: bench_closed.py RB_BIN WORKDIR [--dims 512,2048] [--n-train 50000]
       [--n-test 10000] [--classes 100]

Each tool runs as its own process under /usr/bin/time (wall, CPU, peak RSS),
reading the dump itself.  repbench runs one method per process with
--bootstrap 0, so its time is the method's plus reading and validating the
dump; the "fit s" column is the method alone (the CSV's seconds).  sklearn:
GaussianNB, LinearDiscriminantAnalysis(solver='lsqr', shrinkage='auto'),
NearestCentroid, RidgeClassifier(alpha=1); fit + predict timed in-process.
nb_pooled has no sklearn peer; it is timed for completeness.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_probes import gen, rows, timed  # noqa: E402

PY = sys.executable
PEERS = {
    "gnb": "from sklearn.naive_bayes import GaussianNB as M; m = M()",
    "lda": "from sklearn.discriminant_analysis import LinearDiscriminantAnalysis as M; "
           "m = M(solver='lsqr', shrinkage='auto')",
    "ncm": "from sklearn.neighbors import NearestCentroid as M; m = M()",
    "ridge": "from sklearn.linear_model import RidgeClassifier as M; m = M(alpha=1.0)",
}


def sk(method, dump, out):
    import h5py
    import numpy as np
    with h5py.File(dump) as f:
        lay = list(f["features/train"].keys())[0]
        xtr, xte = f["features/train/" + lay][...], f["features/test/" + lay][...]
        ytr, yte = f["labels/train"][...].astype(np.int64), f["labels/test"][...].astype(np.int64)
    ns = {}
    exec(PEERS[method], ns)
    m = ns["m"]
    t0 = time.time()
    p = m.fit(xtr, ytr).predict(xte)
    t1 = time.time()
    json.dump({"fit_s": t1 - t0, "top1": float((p == yte).mean())}, open(out, "w"))


def main(argv):
    if argv and argv[0] == "--sk":
        sk(argv[1], argv[2], argv[3])
        return 0
    rb, work = os.path.abspath(argv[0]), argv[1]
    opts = dict(zip(argv[2::2], argv[3::2]))
    dims = [int(x) for x in opts.get("--dims", "512,2048").split(",")]
    ntr, nte = int(opts.get("--n-train", 50000)), int(opts.get("--n-test", 10000))
    k = int(opts.get("--classes", 100))
    print(f"closed-form probes: C = {k}, N_train = {ntr}, N_test = {nte}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'D':>5} {'probe':<14} {'tool':<9} {'wall s':>7} {'fit s':>7} {'CPU s':>7} {'MiB':>7} {'top1':>7}")
    for d in dims:
        dump = os.path.join(work, f"closed_d{d}.h5")
        gen(rb, dump, d, ntr, nte, k)
        for method in ("gnb", "nb_pooled", "lda", "ncm", "ridge"):
            out = os.path.join(work, f"rb_{method}_{d}")
            w, c, mem = timed([rb, "run", "--methods", method, "--bootstrap", "0", "-o", out, dump])
            rs = [r for r in rows(out + "/results.csv") if r["metric"] == "top1"]
            for r in rs:
                label = method if method != "ncm" else "ncm " + r["params"].split("=")[1][:3]
                print(f"{d:>5} {label:<14} {'repbench':<9} {w:7.2f} {float(r['seconds']):7.2f} {c:7.2f} "
                      f"{mem:7.0f} {float(r['value']):7.4f}")
            if method not in PEERS:
                continue
            j = os.path.join(work, f"sk_{method}_{d}.json")
            sw, sc, smem = timed([PY, os.path.abspath(__file__), "--sk", method, dump, j])
            sj = json.load(open(j))
            print(f"{d:>5} {method:<14} {'sklearn':<9} {sw:7.2f} {sj['fit_s']:7.2f} {sc:7.2f} {smem:7.0f} "
                  f"{sj['top1']:7.4f}   ratio wall {sw / w:.1f}x, fit {sj['fit_s'] / float(rs[0]['seconds']):.1f}x,"
                  f" memory {smem / mem:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

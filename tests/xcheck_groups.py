#!/usr/bin/python3
"""xcheck_groups.py -- group accuracies of every probe, and reader refusals.

1. A dump with /groups/test (int64; 4 groups, one spurious: group = label
   parity x a feature sign) and /tokens of layer l1 (for moment_probe and
   dino_linear) runs every method of family probe except ncm_continual
   (which has no per-sample predictions) with --predictions;
   for every (layer, method, params) with top1 rows, worst_group_acc and
   mean_group_acc must equal NumPy's min / mean over the groups of the
   per-group accuracy of that probe's predictions.csv rows, exactly (to
   1e-15).  A dump without /groups has no group rows.
2. Refusals (exit 2, one line naming the file and the dataset): /groups/test
   float, of the wrong length, with a negative id, of rank 2; /text_pairs/test
   of the wrong length or int dtype; /groups/nosuch (no such split).
"""
import csv
import os
import subprocess
import sys
from collections import defaultdict

import h5py
import numpy as np

fails = checks = 0


def check(ok, what):
    global fails, checks
    checks += 1
    if not ok:
        fails += 1
        print("FAIL:", what)


def write(path, groups=None, extra=None):
    rng = np.random.RandomState(5)
    k, d = 4, 6
    mu = rng.normal(size=(k, d)) * 1.3
    with h5py.File(path, "w") as f:
        for s, n in (("train", 240), ("test", 160)):
            y = (np.arange(n) % k).astype(np.int32)
            x = (mu[y] + rng.normal(size=(n, d))).astype(np.float32)
            f.create_dataset("features/%s/l1" % s, data=x)
            f.create_dataset("features/%s/l2" % s, data=(x[:, :3] * 2).astype(np.float32))
            f.create_dataset("labels/" + s, data=y)
            # Tokens for moment_probe / dino_linear: CLS = the l1 row.
            tok = np.concatenate([x[:, None, :], x[:, None, :] + rng.normal(size=(n, 3, d))], 1)
            f.create_dataset("tokens/%s/l1" % s, data=tok.astype(np.float32))
            if s == "test" and groups is not None:
                g = groups if not isinstance(groups, str) else None
                if g is None:
                    g = ((y % 2) * 2 + (x[:, 0] > 0)).astype(np.int64)
                f.create_dataset("groups/test", data=g)
        for k2, v in (extra or {}).items():
            f.create_dataset(k2, data=v)


def main():
    work = sys.argv[1]
    rb = os.environ.get("RB_BIN", "bin/repbench")
    listing = subprocess.run([rb, "list"], capture_output=True, text=True).stdout.split("\n")
    probes = [l.split()[0] for l in listing if len(l.split()) > 1 and l.split()[1] == "probe"]
    probes = [p for p in probes if p != "ncm_continual"]
    check(len(probes) >= 5, "probe family listed: %r" % probes)
    path = os.path.join(work, "g.h5")
    write(path, groups="auto")
    with h5py.File(path, "r") as f:
        g = np.asarray(f["groups/test"])
        y = np.asarray(f["labels/test"])
    out = os.path.join(work, "o")
    r = subprocess.run([rb, "run", "--methods", ",".join(probes), "--C", "1", "--bootstrap", "0",
                        "--predictions", "--quiet", "-o", out, path], capture_output=True, text=True)
    check(r.returncode == 0, "run: %s" % r.stderr)
    preds = defaultdict(dict)
    for row in csv.DictReader(open(os.path.join(out, "predictions.csv"))):
        preds[(row["layer"], row["method"], row["params"])][int(row["index"])] = int(row["pred"])
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    got = {(x["layer"], x["method"], x["params"], x["metric"]): float(x["value"]) for x in rows}
    n = 0
    for key, pr in preds.items():
        p = np.array([pr[i] for i in range(len(y))])
        acc = [np.mean(p[g == q] == y[g == q]) for q in np.unique(g)]
        w, m = got.get(key + ("worst_group_acc",)), got.get(key + ("mean_group_acc",))
        check(w is not None and abs(w - min(acc)) <= 1e-15, "%r worst %r vs %r" % (key, w, min(acc)))
        check(m is not None and abs(m - np.mean(acc)) <= 1e-15, "%r mean %r vs %r" % (key, m, np.mean(acc)))
        n += 1
    methods = sorted({k[1] for k in preds})
    check(set(methods) == set(probes), "every probe has predictions: %r" % methods)
    print("groups: %d (layer, probe, params) result sets, methods %s" % (n, ",".join(methods)))
    nog = [x for x in rows if "group" in x["metric"]]
    check(len(nog) == 2 * n, "group rows: %d, expected %d" % (len(nog), 2 * n))
    # No groups: no rows.
    p2 = os.path.join(work, "n.h5")
    write(p2)
    r = subprocess.run([rb, "run", "--methods", "ncm", "--bootstrap", "0", "--quiet", "-o",
                        os.path.join(work, "o2"), p2], capture_output=True, text=True)
    rows2 = list(csv.DictReader(open(os.path.join(work, "o2", "results.csv"))))
    check(r.returncode == 0 and not [x for x in rows2 if "group" in x["metric"]], "no groups, no rows")
    # Refusals.
    bad = {
        "groups float": (np.zeros(160, np.float32), None, "/groups/test"),
        "groups length": (np.zeros(150, np.int64), None, "/groups/test"),
        "groups negative": (np.r_[np.zeros(159), [-1]].astype(np.int32), None, "/groups/test"),
        "groups rank 2": (np.zeros((160, 1), np.int32), None, "/groups/test"),
        "text_pairs length": (None, {"text_pairs/test": np.zeros((150, 4), np.float32)}, "/text_pairs/test"),
        "text_pairs int": (None, {"text_pairs/test": np.zeros((160, 4), np.int32)}, "/text_pairs/test"),
        "groups no split": (None, {"groups/nosuch": np.zeros(3, np.int32)}, "/groups/nosuch"),
    }
    for name, (gv, extra, ds) in bad.items():
        p3 = os.path.join(work, "bad.h5")
        write(p3, groups=gv, extra=extra)
        r = subprocess.run([rb, "run", "--methods", "ncm", "--quiet", "-o", os.path.join(work, "o3"), p3],
                           capture_output=True, text=True)
        err = r.stderr.strip()
        check(r.returncode == 2 and ds in err and "bad.h5" in err, "%s: exit %d, %r" % (name, r.returncode, err))
        print("refused %-18s exit %d: %s" % (name, r.returncode, err.splitlines()[0] if err else ""))
    print("xcheck_groups: %d checks, %d failed" % (checks, fails))
    sys.exit(1 if fails else 0)


main()

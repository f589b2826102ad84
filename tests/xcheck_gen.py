#!/usr/bin/python3
"""xcheck_gen.py -- repbench gen gmm --n-shift/--tokens/--text/--groups.

Generates the same dump with and without the options: every array of the
plain dump must be identical in the full one (each option draws from its
own stream); the new arrays have their documented shapes; statistics of
the model within 5 standard errors: tokens 1.. minus the CLS token (= the
feature row exactly) have sd(l); /text_pairs/test minus the last-layer test
rows has sd(L); shift_noise residuals from the class means (sep u_y) have
1.5 sd(l) after removing the offset, whose norm is sd(l); groups take values
0..3 with P(a = 1) = 0.2 and parity = label parity.

Real-shaped features (--offset A --decay p --relu): --offset 0 --decay 0
gives the plain dump bit for bit; the offset dump minus the plain one is A
in every coordinate (same draws; float rounding only); the pooled within-
class covariance of the decay dump (train, 8000 rows, d = 32) has
eigenvalues sd^2 j^-p within 10% each (sampling error ~ sqrt(2/n) = 1.6%,
so 10% is ~6 standard errors), while the basis is rotated: the diagonal's
max/min is below 1/10 of the axis-aligned 32^p and the top eigenvector's
largest entry below 0.8 (axis-aligned: 1; random: ~0.5); the
relu dump is exactly max(0, the dump without relu), its zero fraction
matches the Gaussian model's P(x < 0) (mean over rows of Phi(-m/s), from
the class means and the per-coordinate sd) within 0.01.
"""
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


def main():
    work = sys.argv[1]
    rb = os.environ.get("RB_BIN", "bin/repbench")
    base = ["gen", "gmm", "--seed", "4", "--classes", "5", "--dim", "32", "--layers", "3", "--n-train", "800",
            "--n-test", "600", "--n-ood", "100", "--sep0", "1", "--sep1", "2", "--sd0", "1.5", "--sd1", "0.5"]
    a, b = os.path.join(work, "a.h5"), os.path.join(work, "b.h5")
    r1 = subprocess.run([rb] + base + ["-o", a], capture_output=True, text=True)
    r2 = subprocess.run([rb] + base + ["--n-shift", "700", "--tokens", "4", "--text", "--groups", "-o", b],
                        capture_output=True, text=True)
    check(r1.returncode == 0 and r2.returncode == 0, "gen: %s %s" % (r1.stderr, r2.stderr))
    A, B = h5py.File(a, "r"), h5py.File(b, "r")
    names = []
    A.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for n in names:
        check(n in B and np.array_equal(A[n][()], B[n][()]), "array %s changed" % n)
    sds = {"layer1": 1.5, "layer2": 1.0, "layer3": 0.5}
    seps = {"layer1": 1.0, "layer2": 1.5, "layer3": 2.0}
    for s, n in (("train", 800), ("test", 600)):
        for l in ("layer2", "layer3"):
            t = B["tokens/%s/%s" % (s, l)][()]
            x = B["features/%s/%s" % (s, l)][()]
            check(t.shape == (n, 4, 32), "tokens shape %r" % (t.shape,))
            check(np.array_equal(t[:, 0], x), "CLS token = feature row")
            r = (t[:, 1:].astype(np.float64) - x[:, None, :]).ravel()
            se = sds[l] / np.sqrt(2 * r.size)
            check(abs(r.std() - sds[l]) < 5 * se * np.sqrt(2) + 1e-4, "token noise sd %.4f vs %.4f" % (r.std(), sds[l]))
        check("tokens/%s/layer1" % s not in B, "tokens only on the last two layers")
    tp = B["text_pairs/test"][()].astype(np.float64) - B["features/test/layer3"][()]
    check(tp.shape == (600, 32) and abs(tp.std() - 0.5) < 5 * 0.5 / np.sqrt(2 * tp.size), "text_pairs sd %.4f" % tp.std())
    check(B["text/gmm"].shape == (5, 32) and B["text/gmm_prompts"].shape == (5, 3, 32), "text shapes")
    y = B["labels/shift_noise"][()]
    check(len(y) == 700 and np.bincount(y).min() == 140, "shift labels balanced")
    # Class directions from the text embeddings are noisy; use the train class means instead.
    for l in ("layer1", "layer3"):
        xtr, ytr = B["features/train/" + l][()].astype(np.float64), B["labels/train"][()]
        mu = np.array([xtr[ytr == c].mean(0) for c in range(5)])
        xs = B["features/shift_noise/" + l][()].astype(np.float64) - mu[y]
        off = xs.mean(0)
        check(abs(np.linalg.norm(off) - sds[l]) < 0.15 * sds[l], "%s offset norm %.3f vs %.3f" % (l, np.linalg.norm(off), sds[l]))
        res = (xs - off).std()
        check(abs(res - 1.5 * sds[l]) < 0.03 * sds[l] * 1.5, "%s shift sd %.4f vs %.4f" % (l, res, 1.5 * sds[l]))
        print("%s: shift offset |o| %.3f (sd %.2f), noise sd %.4f (1.5 sd %.4f)" % (l, np.linalg.norm(off), sds[l], res, 1.5 * sds[l]))
    for s in ("train", "test", "shift_noise"):
        g, yy = B["groups/" + s][()], B["labels/" + s][()]
        check(set(np.unique(g)) <= {0, 1, 2, 3} and np.array_equal(g % 2, yy % 2), "%s groups parity" % s)
        pa = np.mean(g >= 2)
        check(abs(pa - 0.2) < 5 * np.sqrt(0.16 / len(g)), "%s P(a=1) %.3f" % (s, pa))
    check("groups/ood_far" not in B, "no groups for the unlabeled split")
    shaped(rb, work)
    print("xcheck_gen: %d checks, %d failed" % (checks, fails))
    sys.exit(1 if fails else 0)


def shaped(rb, work):
    from scipy.stats import norm
    base = ["gen", "gmm", "--seed", "7", "--classes", "4", "--dim", "32", "--layers", "1", "--n-train", "8000",
            "--n-test", "500", "--n-ood", "50", "--sep1", "1", "--sd1", "0.8"]
    paths = {}
    for name, extra in (("plain", []), ("zero", ["--offset", "0", "--decay", "0"]),
                        ("off", ["--offset", "0.3"]), ("dec", ["--decay", "1.5"]),
                        ("decoff", ["--decay", "1.5", "--offset", "0.05"]),
                        ("relu", ["--decay", "1.5", "--offset", "0.05", "--relu"])):
        paths[name] = os.path.join(work, "shaped_%s.h5" % name)
        r = subprocess.run([rb] + base + extra + ["-o", paths[name]], capture_output=True, text=True)
        check(r.returncode == 0, "gen %s: %s" % (name, r.stderr))
    F = {k: h5py.File(v, "r") for k, v in paths.items()}
    names = []
    F["plain"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for n in names:
        check(np.array_equal(F["plain"][n][()], F["zero"][n][()]), "--offset 0 --decay 0 changed %s" % n)
    x0 = F["plain"]["features/train/layer1"][()].astype(np.float64)
    d = F["off"]["features/train/layer1"][()].astype(np.float64) - x0
    check(np.abs(d - 0.3).max() < 1e-6 * (1 + np.abs(x0).max()), "offset: max |x_off - x - 0.3| = %.2e" % np.abs(d - 0.3).max())
    y = F["dec"]["labels/train"][()]
    x = F["dec"]["features/train/layer1"][()].astype(np.float64)
    mu = np.array([x[y == c].mean(0) for c in range(4)])
    r = x - mu[y]
    cov = r.T @ r / (len(r) - 4)
    ev = np.sort(np.linalg.eigvalsh(cov))[::-1]
    want = 0.8 ** 2 * np.arange(1, 33) ** -1.5
    worst = np.abs(ev / want - 1).max()
    check(worst < 0.10, "decay spectrum: worst relative error %.3f" % worst)
    dg = np.diag(cov)
    v1 = np.abs(np.linalg.eigh(cov)[1][:, -1]).max()
    check(dg.max() / dg.min() < 32 ** 1.5 / 10 and v1 < 0.8,
          "decay: diagonal max/min %.2f, top eigenvector's largest entry %.2f (axis-aligned?)" % (dg.max() / dg.min(), v1))
    print("decay 1.5: within-class eigenvalues vs 0.64 j^-1.5: worst relative error %.3f; diagonal max/min %.2f "
          "(axis-aligned: %.0f); top eigenvector's largest entry %.2f (axis-aligned: 1)"
          % (worst, dg.max() / dg.min(), 32 ** 1.5, v1))
    xo = F["decoff"]["features/train/layer1"][()]
    xr = F["relu"]["features/train/layer1"][()]
    check(np.array_equal(xr, np.maximum(xo, 0)), "relu = max(0, x)")
    for s in ("test", "ood_far"):
        check(np.array_equal(F["relu"]["features/%s/layer1" % s][()], np.maximum(F["decoff"]["features/%s/layer1" % s][()], 0)),
              "relu on %s" % s)
    # Zero fraction vs the Gaussian model: x_ij ~ N(m_{y_i j}, s_j^2).
    xo = xo.astype(np.float64)
    muo = np.array([xo[y == c].mean(0) for c in range(4)])
    sj = np.sqrt(np.diag(cov))
    pz = norm.cdf(-muo[y] / sj).mean()
    z = (xr == 0).mean()
    check(abs(z - pz) < 0.01, "relu zero fraction %.4f vs model %.4f" % (z, pz))
    print("relu: zero fraction %.4f, Gaussian model %.4f" % (z, pz))


main()

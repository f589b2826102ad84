#!/usr/bin/env python3
"""xcheck_geometry.py -- cross-check the geometry methods against NumPy/SciPy.

usage: xcheck_geometry.py make DUMP          write the synthetic dump
       xcheck_geometry.py check DUMP CSV     compare results.csv with NumPy/SciPy

Prints one line per failed comparison and "N passed, M failed" at the end;
exit status 1 on any failure.  References: METRICS.md sections a, b, j.
"""
import csv
import sys

import h5py
import numpy as np
import scipy.linalg
from scipy.spatial import cKDTree

TOL = 1e-6
LAYERS = [("l1", 8), ("l2", 16), ("l3", 12), ("l4", 300)]  # l4: D > 256, the scatter in column panels (rb_nc_syrk)
C = 5
SPLITS = {"train": 600, "test": 400, "ood_far": 300}
npass = 0
nfail = 0
worst = [0.0, ""]


def check(what, got, want, tol=TOL):
    global npass, nfail
    if got is None:
        nfail += 1
        print(f"FAIL {what}: missing row (want {want!r})")
        return
    # relative to the reference (it was relative to max(1, |want|): absolute
    # below 1); an absolute floor of 1e-12 only for references at round-off
    # level (exact zeros)
    err = abs(got - want)
    rel = err / abs(want) if want != 0 else (0.0 if err <= 1e-12 else float("inf"))
    if err <= 1e-12:
        rel = 0.0
    if rel > worst[0]:
        worst[:] = [rel, what]
    ok = rel <= tol
    if ok:
        npass += 1
    else:
        nfail += 1
        print(f"FAIL {what}: got {got!r} want {want!r} (rel tol {tol})")


def make(path):
    """Class means in a few directions plus anisotropic noise; a head."""
    rng = np.random.default_rng(2385)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "repbench-features"
        f.attrs["version"] = 1
        f.attrs["model"] = "xgeo"
        for depth, (name, d) in enumerate(LAYERS):
            means = rng.normal(size=(C, d)) * (1.0 + depth)
            scale = np.linspace(0.5, 2.0, d)
            for s, n in SPLITS.items():
                y = np.arange(n) % C
                shift = 3.0 if s.startswith("ood") else 0.0
                x = means[y] + rng.normal(size=(n, d)) * scale + shift + 10.0
                ds = f.create_dataset(f"features/{s}/{name}", data=x.astype(np.float32))
                ds.attrs["depth"] = depth
                if s != "ood_far" and depth == 0:
                    f[f"labels/{s}"] = y.astype(np.int32)
            if name == "l3":
                f["head/W"] = rng.normal(size=(C, d)).astype(np.float32)
                f["head/b"] = rng.normal(size=C).astype(np.float32)


def rows(csvpath):
    out = {}
    with open(csvpath, newline="") as fh:
        for r in csv.DictReader(fh):
            out[(r["method"], r["layer"], r["split"], r["metric"], r["params"])] = float(r["value"])
    return out


def get(R, method, layer, split, metric, params_has=""):
    for (m, l, s, me, p), v in R.items():
        if m == method and l == layer and s == split and me == metric and (
                not params_has or params_has in p.split(";")):
            return v
    return None


# ----------------------------------------------------------------- references
def collapse_ref(H, y, W=None, b=None):
    """Papyan NC1 (rank C-1 pinv via eigendecomposition of S_B), NC2-NC4."""
    H = H.astype(np.float64)
    cls = np.unique(y)
    Cn = len(cls)
    mu = np.stack([H[y == c].mean(0) for c in cls])
    mg = mu.mean(0)
    Mt = mu - mg
    N = len(H)
    Sw = sum((H[y == c] - mu[i]).T @ (H[y == c] - mu[i]) for i, c in enumerate(cls)) / N
    Sb = Mt.T @ Mt / Cn
    ev, V = np.linalg.eigh(Sb)
    r = min(Cn - 1, H.shape[1])
    ev, V = ev[::-1][:r], V[:, ::-1][:, :r]
    pinv = V @ np.diag(1 / ev) @ V.T
    out = {"nc1_trace_over_c": np.trace(Sw @ pinv) / Cn, "nc1_quot": np.trace(Sw) / np.trace(Sb)}
    var = [((H[y == c] - mu[i]) ** 2).sum(1).mean() for i, c in enumerate(cls)]
    cd = [(var[i] + var[j]) / (2 * ((mu[i] - mu[j]) ** 2).sum()) for i in range(Cn) for j in range(i + 1, Cn)]
    out["nc1_cdnv"] = np.mean(cd)
    nm = np.linalg.norm(Mt, axis=1)
    out["nc2_equinorm_m"] = nm.std(ddof=1) / nm.mean()
    G = (Mt / nm[:, None]) @ (Mt / nm[:, None]).T
    off = G[np.triu_indices(Cn, 1)]
    out["nc2_equiangular_m"] = off.std(ddof=1)
    out["nc2_coherence_m"] = np.abs(G + 1 / (Cn - 1))[~np.eye(Cn, dtype=bool)].mean()
    MM = Mt @ Mt.T
    ideal = (np.eye(Cn) - np.ones((Cn, Cn)) / Cn) / np.sqrt(Cn - 1)
    out["nc2_etf_dev"] = np.linalg.norm(MM / np.linalg.norm(MM) - ideal)
    if W is not None:
        W = W.astype(np.float64)
        out["nc3_papyan"] = np.linalg.norm(W / np.linalg.norm(W) - Mt / np.linalg.norm(Mt)) ** 2
        WM = W @ Mt.T
        out["nc3_zhu"] = np.linalg.norm(WM / np.linalg.norm(WM) - ideal)
        wn = np.linalg.norm(W, axis=1)
        out["nc2_equinorm_w"] = wn.std(ddof=1) / wn.mean()
        pred = np.argmax(H @ W.T + b.astype(np.float64), 1)
        ncc = np.argmin(((H[:, None, :] - mu[None]) ** 2).sum(2), 1)
        out["nc4_mismatch"] = np.mean(pred != cls[ncc])
    return out


def fid_ref(x1, x2):
    """pytorch-fid calculate_frechet_distance (scipy.linalg.sqrtm path)."""
    m1, m2 = x1.mean(0), x2.mean(0)
    s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    d = m1 - m2
    return d.dot(d) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def gram_rbf(x, threshold):
    dot = x.dot(x.T)
    sq = np.diag(dot)
    sqd = -2 * dot + sq[:, None] + sq[None, :]
    return np.exp(-sqd / (2 * threshold ** 2 * np.median(sqd)))


def center_gram(g, unbiased=False):
    g = g.copy()
    if unbiased:
        n = g.shape[0]
        np.fill_diagonal(g, 0)
        means = np.sum(g, 0, dtype=np.float64) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        g -= means[:, None]
        g -= means[None, :]
        np.fill_diagonal(g, 0)
    else:
        means = np.mean(g, 0, dtype=np.float64)
        means -= np.mean(means) / 2
        g -= means[:, None]
        g -= means[None, :]
    return g


def cka(gx, gy, debiased=False):
    gx, gy = center_gram(gx, debiased), center_gram(gy, debiased)
    s = gx.ravel().dot(gy.ravel())
    return s / (np.linalg.norm(gx) * np.linalg.norm(gy))


def twonn_ref(x, f=0.1):
    x = np.unique(x, axis=0)
    d, _ = cKDTree(x).query(x, k=3)
    mu = np.sort(d[:, 2] / d[:, 1])
    n = len(x)
    ne = int(np.floor(n * (1 - f)))
    xs = np.log(mu[:ne])
    ys = -np.log(1 - np.arange(1, ne + 1) / n)
    return xs.dot(ys) / xs.dot(xs)


def mle_ref(x, k=20):
    x = np.unique(x, axis=0)
    d, _ = cKDTree(x).query(x, k=k + 1)
    d = d[:, 1:]
    inv = np.log(d[:, k - 1:k] / d[:, : k - 1]).sum(1) / (k - 1)
    return 1 / inv.mean()


def checkall(dump, csvpath):
    R = rows(csvpath)
    f = h5py.File(dump, "r")
    ytr = f["labels/train"][()]
    yte = f["labels/test"][()]
    for name, d in LAYERS:
        Htr = f[f"features/train/{name}"][()].astype(np.float64)
        Hte = f[f"features/test/{name}"][()].astype(np.float64)
        Hood = f[f"features/ood_far/{name}"][()].astype(np.float64)
        W = f["head/W"][()] if name == "l3" else None
        b = f["head/b"][()] if name == "l3" else None
        ref = collapse_ref(Htr, ytr, W, b)
        for k, v in ref.items():
            if name != "l3" and k.startswith(("nc3", "nc4", "nc2_equinorm_w")):
                continue
            check(f"collapse {name} {k}", get(R, "collapse", name, "train", k), v)
        # spectrum: eigenvalues of np.cov and the derived ranks
        lam = np.linalg.eigvalsh(np.cov(Htr, rowvar=False))[::-1]
        for i in range(min(10, d)):
            check(f"spectrum {name} eig {i+1}", get(R, "spectrum", name, "train", "eig", f"index={i+1}"), lam[i])
        s = np.sqrt(np.clip(lam, 0, None))
        p = s / s.sum()
        check(f"spectrum {name} rankme", get(R, "spectrum", name, "train", "rankme"), np.exp(-(p * np.log(p)).sum()))
        check(f"spectrum {name} stable_rank", get(R, "spectrum", name, "train", "stable_rank"), lam.sum() / lam[0])
        # Frechet (scipy sqrtm route)
        check(f"frechet {name} train-test", get(R, "similarity", name, "test", "frechet", "ref=train"),
              fid_ref(Htr, Hte))
        check(f"frechet {name} test-ood", get(R, "similarity", name, "ood_far", "frechet", "ref=test"),
              fid_ref(Hte, Hood))
        # LOOK with scipy's exact kNN (k = 10)
        _, idx = cKDTree(Hte).query(Hte, k=11)
        look = np.mean((yte[idx[:, 1:]] == yte[:, None]).mean(1))
        check(f"look {name}", get(R, "similarity", name, "test", "look_agree"), look)
        # intrinsic dimension on the train split (N = 600 < id_max_n: no subsample)
        check(f"idim {name} twonn", get(R, "idim", name, "train", "id_twonn"), twonn_ref(Htr))
        check(f"idim {name} mle", get(R, "idim", name, "train", "id_mle"), mle_ref(Htr))
    # CKA between every pair of layers on the whole test split
    names = [n for n, _ in LAYERS]
    X = {n: f[f"features/test/{n}"][()].astype(np.float64) for n in names}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b_ = X[names[i]], X[names[j]]
            pair = f"{names[i]}|{names[j]}"
            check(f"cka linear {pair}", get(R, "similarity", pair, "test", "cka_linear"), cka(a @ a.T, b_ @ b_.T))
            check(f"cka debiased {pair}", get(R, "similarity", pair, "test", "cka_linear_debiased"),
                  cka(a @ a.T, b_ @ b_.T, True))
            for th, tag in ((0.5, "theta=0.5"), (1.0, "theta=1")):
                check(f"cka rbf {th} {pair}", get(R, "similarity", pair, "test", "cka_rbf", tag),
                      cka(gram_rbf(a, th), gram_rbf(b_, th)))


def trend(csvpath):
    """On the built-in GMM sample NC1 falls and separation rises with depth."""
    R = rows(csvpath)
    def series(metric):
        v = sorted(((l, val) for (m, l, s, me, p), val in R.items()
                    if m == "collapse" and s == "train" and me == metric), key=lambda t: int(t[0].lstrip("layer")))
        return [val for _, val in v]
    global npass, nfail
    nc1 = series("nc1_trace_over_c")
    sep = [1 / q for q in series("nc1_quot")]
    for what, seq, sign in (("nc1 falls", nc1, -1), ("separation rises", sep, 1)):
        ok = len(seq) >= 3 and all(sign * (b - a) > 0 for a, b in zip(seq, seq[1:]))
        if ok:
            npass += 1
        else:
            nfail += 1
            print(f"FAIL trend {what}: {seq}")
    print("  nc1 by depth:", " ".join(f"{v:.4g}" for v in nc1))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
        sys.exit(0)
    if sys.argv[1] == "check":
        checkall(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "trend":
        trend(sys.argv[2])
    if worst[1]:
        print(f"  largest relative difference {worst[0]:.2e} ({worst[1]})")
    print(f"{npass} passed, {nfail} failed")
    sys.exit(1 if nfail else 0)

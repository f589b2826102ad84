"""xcheck_weights.py -- `repbench weights` against NumPy/SciPy/scikit-learn.

A small synthetic filter set (three checkpoints, written with h5py and by
hand as safetensors, float32/float16/float64) is run through
`repbench weights --methods filters,spectra`; the same quantities are
recomputed here from the stored values:
  - per-layer filter statistics (METRICS.md c; torchconvquality formulas),
    rel. tol 1e-9;
  - PCA explained-variance ratios (sklearn.decomposition.PCA), 1e-9;
  - the KL shift matrices between layers and between checkpoints (notebook
    get_kl_matrix: 70 bins over the common range, density, float32 eps,
    scipy.stats.entropy), with components sign-normalised as repbench
    documents (largest-magnitude entry positive), rel. tol 1e-9;
  - singular values (numpy.linalg.svd), rel. tol 1e-10 of sigma_max;
    stable rank, energy ranks, log norms 1e-10; the power-law fit (direct
    O(N^2) transcription of METRICS.md i) 1e-9;
  - global pruning thresholds and |w| quantiles (np.sort order statistics,
    exact), task-vector norms, cosines and sign conflicts (1e-12).
Usage: python3 xcheck_weights.py RB_BIN WORKDIR
"""
import csv
import json
import math
import os
import struct
import subprocess
import sys

import h5py
import numpy as np
import scipy.stats
from sklearn.decomposition import PCA

rb, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(20240611)
fails = 0
nchecks = 0


def check(what, got, want, tol):
    global fails, nchecks
    nchecks += 1
    ok = np.all(np.abs(np.asarray(got) - np.asarray(want)) <= tol * np.maximum(1.0, np.abs(want)))
    if not ok:
        fails += 1
        print("FAIL %s: got %s want %s (tol %g)" % (what, got, want, tol))
    return ok


# ----------------------------------------------------------- the filter set
def conv(o, i, kind):
    if kind == "smooth":
        base = rng.normal(size=(o, i, 1, 1)) * np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4
        w = base + 0.3 * rng.normal(size=(o, i, 3, 3))
    else:
        w = rng.uniform(-1, 1, size=(o, i, 3, 3)) / math.sqrt(9 * i)
    dead = rng.random((o, i)) < 0.1
    w[dead] *= 1e-4
    w[0] = 0.0 if o > 3 else w[0]  # an all-zero output row
    return w


ckpts = {
    "a.h5": {"c1.weight": conv(8, 3, "smooth"), "c2.weight": conv(16, 8, "smooth"),
             "fc.weight": rng.normal(size=(40, 30)), "fc.bias": rng.normal(size=40)},
    "b.safetensors": {"c1.weight": conv(8, 3, "rand"), "c2.weight": conv(16, 8, "rand"),
                      "fc.weight": rng.normal(size=(40, 30)) @ np.diag(np.linspace(3, 0.1, 30)),
                      "fc.bias": rng.normal(size=40)},
    "c.h5": {"c1.weight": conv(8, 3, "smooth"), "c2.weight": conv(16, 8, "rand"),
             "fc.weight": rng.normal(size=(40, 30)), "fc.bias": rng.normal(size=40)},
}
stored = {}
for name, tensors in ckpts.items():
    p = os.path.join(work, name)
    stored[name] = {}
    if name.endswith(".h5"):
        with h5py.File(p, "w") as f:
            f.attrs["format"] = "repbench-weights"
            f.attrs["version"] = 1
            for k, v in tensors.items():
                dt = "f2" if (name == "c.h5" and k == "c1.weight") else ("f8" if k == "fc.weight" else "f4")
                f.create_dataset("weights/" + k, data=v.astype(dt))
                stored[name][k] = v.astype(dt).astype(np.float64)
    else:
        hdr, blobs, off = {}, [], 0
        for k, v in tensors.items():
            dt, code = ("<f2", "F16") if k == "c2.weight" else ("<f4", "F32")
            b = v.astype(dt).tobytes()
            hdr[k] = {"dtype": code, "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
            off += len(b)
            blobs.append(b)
            stored[name][k] = v.astype(dt).astype(np.float64)
        h = json.dumps(hdr).encode()
        h += b" " * (-len(h) % 8)
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

out = os.path.join(work, "out")
paths = [os.path.join(work, n) for n in ckpts]
r = subprocess.run([rb, "weights", "--methods", "filters,spectra", "-o", out] + paths,
                   capture_output=True, text=True)
if r.returncode != 0:
    print("FAIL repbench weights: exit %d: %s" % (r.returncode, r.stderr))
    sys.exit(1)
rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
model = {n: os.path.splitext(n)[0] for n in ckpts}


def val(m, layer, metric, params=None):
    v = [float(x["value"]) for x in rows if x["model"] == m and x["layer"] == layer
         and x["metric"] == metric and (params is None or x["params"] == params)]
    if len(v) != 1:
        raise KeyError((m, layer, metric, params, len(v)))
    return v[0]


def missing(m, layer, metric):
    return not any(x["model"] == m and x["layer"] == layer and x["metric"] == metric for x in rows)


# ------------------------------------------------------- per-layer filters
E = lambda n: 1.2618047 / (1 + np.exp(-0.88767525 * (np.log2(n) - 2.30436435))) - 0.31050834


def ventropy(F):
    if len(F) < 2:
        return 0.0
    s = np.linalg.svd(F - F.mean(0), compute_uv=False)
    v = s ** 2 / (len(F) - 1)
    if v.sum() == 0:
        return 0.0
    return scipy.stats.entropy(v / v.sum(), base=10)


nlay = 0
for n, ts in stored.items():
    for k, w in ts.items():
        if w.ndim != 4:
            continue
        nlay += 1
        m = model[n]
        F = w.reshape(-1, 9)
        t = 0.01 * np.abs(w).max()
        deg = np.all(np.abs(F) < t, axis=1)
        check("%s %s sparsity" % (m, k), val(m, k, "filter_sparsity"), deg.mean(), 1e-15)
        check("%s %s entropy" % (m, k), val(m, k, "filter_entropy"), ventropy(F), 1e-9)
        check("%s %s entropy_norm" % (m, k), val(m, k, "filter_entropy_norm"), ventropy(F) / E(len(F)), 1e-9)
        check("%s %s entropy_clean" % (m, k), val(m, k, "filter_entropy_clean"), ventropy(F[~deg]), 1e-9)
        check("%s %s entropy_clean_norm" % (m, k), val(m, k, "filter_entropy_clean_norm"),
              ventropy(F[~deg]) / E((~deg).sum()), 1e-9)
        R = w.reshape(w.shape[0], -1)
        nr = np.linalg.norm(R, axis=1)
        R = R[nr > 0] / nr[nr > 0, None]
        O = len(R)
        G = R @ R.T
        check("%s %s orthogonality (zero rows excluded)" % (m, k), val(m, k, "filter_orthogonality"),
              1 - np.abs(G - np.eye(O)).sum() / (O * (O - 1)), 1e-9)
        check("%s %s l1" % (m, k), val(m, k, "filter_l1"), np.abs(w).sum(), 1e-12)
        check("%s %s l2" % (m, k), val(m, k, "filter_l2"), np.linalg.norm(w), 1e-12)
        z = (w - w.mean()) / w.std(ddof=1)
        check("%s %s l2_std" % (m, k), val(m, k, "filter_l2_std"), np.linalg.norm(z), 1e-9)

# ------------------------------------------------------ PCA and KL shifts
groups = []  # (name, ckpt, layer, scaled filters)
for n, ts in stored.items():
    for k, w in ts.items():
        if w.ndim == 4:
            F = w.reshape(-1, 9).copy()
            mx = np.abs(F).max(1)
            F[mx > 0] /= mx[mx > 0, None]
            groups.append(("%s/%s" % (model[n], k), model[n], F))
allF = np.concatenate([g[2] for g in groups])
pca = PCA(n_components=9).fit(allF)
for k in range(9):
    check("pca evr %d" % (k + 1), val("all", "all", "filter_pca_evr", "component=%d" % (k + 1)),
          pca.explained_variance_ratio_[k], 1e-9)
comp = pca.components_.copy()
for k in range(9):
    if comp[k, np.argmax(np.abs(comp[k]))] < 0:
        comp[k] = -comp[k]
basis = list(csv.DictReader(open(os.path.join(out, "filter_basis.csv"))))
for k in range(9):
    got = [float(basis[k]["w%d%d" % (a, b)]) for a in range(3) for b in range(3)]
    check("eigen-filter %d (sign rule)" % (k + 1), got, comp[k], 1e-8)
coef = lambda F: (F - pca.mean_) @ comp.T
C = coef(allF)
lo, hi = C.min(), C.max()
eps = np.finfo(np.float32).eps


def hist(F):
    c = coef(F)
    out = []
    for k in range(9):
        p, _ = np.histogram(c[:, k], bins=70, range=(lo, hi), density=True)
        p[p == 0] = eps
        out.append(p / p.sum())
    return out


def shift(Fa, Fb):
    ha, hb = hist(Fa), hist(Fb)
    return sum(pca.explained_variance_ratio_[k] *
               (scipy.stats.entropy(ha[k], hb[k]) + scipy.stats.entropy(hb[k], ha[k])) for k in range(9))


def read_matrix(f):
    m = list(csv.reader(open(os.path.join(out, f))))
    return m[0][1:], np.array([[float(x) for x in row[1:]] for row in m[1:]])


names, M = read_matrix("filter_shift.csv")
check("layer shift matrix size", len(names), len(groups), 0)
want = np.array([[shift(a[2], b[2]) for b in groups] for a in groups])
check("layer names", int(names == [g[0] for g in groups]), 1, 0)
check("layer KL shift matrix", M, want, 1e-9)
names, M = read_matrix("filter_shift_models.csv")
per = {}
for g in groups:
    per.setdefault(g[1], []).append(g[2])
mods = [model[n] for n in ckpts]
want = np.array([[shift(np.concatenate(per[a]), np.concatenate(per[b])) for b in mods] for a in mods])
check("model names", int(names == mods), 1, 0)
check("model KL shift matrix", M, want, 1e-9)
print("filters: %d layers, %d filters, KL matrices %dx%d and %dx%d compared" %
      (nlay, len(allF), len(groups), len(groups), len(mods), len(mods)))

# ----------------------------------------------------------------- spectra
sv = {}
for x in csv.DictReader(open(os.path.join(out, "spectra.csv"))):
    sv.setdefault((x["model"], x["layer"]), []).append(float(x["singular_value"]))


def powerlaw(lam, thresh=1e-5):
    x = np.sort(lam[lam > thresh])
    N = len(x)
    best = (np.inf, None, None)
    for i in range(N - 1):
        t = x[i:]
        n = len(t)
        a = 1 + n / np.sum(np.log(t / x[i]))
        d = np.max(np.abs(1 - (t / x[i]) ** (1 - a) - np.arange(n) / n)) if a > 1 else 1.0
        if d < best[0]:
            best = (d, a, x[i])
    return best


nmat = 0
for n, ts in stored.items():
    for k, w in ts.items():
        if w.ndim < 2:
            continue
        nmat += 1
        m = model[n]
        W = w.reshape(w.shape[0], -1)
        s = np.linalg.svd(W, compute_uv=False)
        got = np.array(sv[(m, k)])
        check("%s %s singular values" % (m, k), got / s[0], s / s[0], 1e-10)
        lam = s ** 2
        check("%s %s stable rank" % (m, k), val(m, k, "stable_rank"), lam.sum() / lam.max(), 1e-10)
        check("%s %s log10 fro^2" % (m, k), val(m, k, "log10_frobenius_norm_sq"), np.log10(lam.sum()), 1e-10)
        check("%s %s log10 sigma_max^2" % (m, k), val(m, k, "log10_spectral_norm_sq"), np.log10(lam.max()), 1e-10)
        cum = np.cumsum(lam) / lam.sum()
        for tau in (0.9, 0.99):
            check("%s %s energy rank %g" % (m, k, tau), val(m, k, "energy_rank", "tau=%g" % tau),
                  int(np.argmax(cum >= tau - 1e-15)) + 1, 0)
        if (lam > 1e-5).sum() >= 10:
            d, a, xm = powerlaw(lam)
            pp = "evals_thresh=1e-05;min_evals=10"
            check("%s %s alpha" % (m, k), val(m, k, "alpha", pp), a, 1e-9)
            check("%s %s xmin" % (m, k), val(m, k, "alpha_xmin", pp), xm, 1e-9)
            check("%s %s KS D" % (m, k), val(m, k, "alpha_ks_d", pp), d, 1e-9)
        else:
            check("%s %s no alpha below min_evals" % (m, k), int(missing(m, k, "alpha")), 1, 0)
print("spectra: %d matrices compared" % nmat)

# -------------------------------------------------- sparsity and taskvec
out2 = os.path.join(work, "out2")
r = subprocess.run([rb, "weights", "--methods", "sparsity,taskvec", "-o", out2] + paths,
                   capture_output=True, text=True)
if r.returncode != 0:
    print("FAIL repbench weights sparsity,taskvec: exit %d: %s" % (r.returncode, r.stderr))
    sys.exit(1)
rows = list(csv.DictReader(open(os.path.join(out2, "results.csv"))))
names = list(stored)
for n in names:
    m = model[n]
    allw = np.concatenate([w.ravel() for w in stored[n].values()])
    srt = np.sort(np.abs(allw))
    for q in (0.5, 0.75, 0.9):
        k = max(1, math.ceil(q * len(srt)))
        check("%s prune threshold %g" % (m, q), val(m, "all", "prune_threshold", "sparsity=%g" % q), srt[k - 1], 0)
    for k, w in stored[n].items():
        a = np.sort(np.abs(w.ravel()))
        for q in (0.5, 0.9, 0.99):
            check("%s %s |w| quantile %g" % (m, k, q), val(m, k, "mag_quantile", "q=%g" % q),
                  a[max(1, math.ceil(q * len(a))) - 1], 0)
        check("%s %s below 1e-4" % (m, k), val(m, k, "below_frac", "thresh=0.0001"), np.mean(np.abs(w) < 1e-4), 1e-15)
pre, fts = names[0], names[1:]
order = list(stored[pre])
tau = {n: {k: stored[n][k] - stored[pre][k] for k in order} for n in fts}
flat = {n: np.concatenate([tau[n][k].ravel() for k in order]) for n in fts}
pp = "pre=%s" % model[pre]
for n in fts:
    check("%s tv_norm" % model[n], val(model[n], "all", "tv_norm", pp), np.linalg.norm(flat[n]), 1e-12)
    for k in order:
        check("%s %s tv_rel_norm" % (model[n], k), val(model[n], k, "tv_rel_norm", pp),
              np.linalg.norm(tau[n][k]) / np.linalg.norm(stored[pre][k]), 1e-12)
a, b = fts
ta, tb = flat[a], flat[b]
pb = "pre=%s;with=%s" % (model[pre], model[b])
check("tv_cosine", val(model[a], "all", "tv_cosine", pb), ta @ tb / np.linalg.norm(ta) / np.linalg.norm(tb), 1e-12)
both = (ta != 0) & (tb != 0)
check("tv_sign_conflict", val(model[a], "all", "tv_sign_conflict", pb), np.mean(np.sign(ta[both]) != np.sign(tb[both])), 1e-15)
nz = (ta != 0).astype(int) + (tb != 0).astype(int)
multi = nz >= 2
check("tv_sign_conflict_all", val(model[pre], "all", "tv_sign_conflict_all", ""),
      np.mean((np.maximum(ta, tb) > 0)[multi] & (np.minimum(ta, tb) < 0)[multi]), 1e-15)
print("sparsity and taskvec compared")
print("xcheck_weights: %d checks, %s" % (nchecks, "all passed" if fails == 0 else "%d FAILED" % fails))
sys.exit(1 if fails else 0)

#!/bin/bash
# bench_weights.sh -- filter statistics over 10 million synthetic 3x3 filters
# (38 conv layers [512,512,3,3] + one [64,602,3,3], float32 HDF5, 360 MB),
# streamed layer by layer: filters/second and peak resident memory of
#   repbench weights --methods filters --shift 0   (checkpoint validation pass
#       + one statistics pass: per-layer sparsity, variance entropy and clean
#       entropy, orthogonality, norms, global PCA moments),
#   repbench weights --methods filters             (+ the two passes of the
#       70-bin KL shift: coefficient range, histograms),
# and a NumPy peer computing the per-layer statistics the torchconvquality
# way (h5py read per layer, numpy SVD of the centred filters, row Gram), on
# the same file.  One run each; RB_BENCH_FILTERS overrides the count.
set -u
RB=${RB_BIN:-bin/repbench}
PY=${PYTHON:-/usr/bin/python3}
N=${RB_BENCH_FILTERS:-10000000}
W=$(mktemp -d /tmp/rb_bench_weights.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$PY" - "$RB" "$W" "$N" <<'PYEOF'
import os, resource, subprocess, sys, time
import h5py, numpy as np
rb, work, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
path = os.path.join(work, "bench.h5")
rng = np.random.default_rng(7)
per = 512 * 512
shapes = [(512, 512)] * (total // per)
rest = total - per * len(shapes)
if rest:
    shapes.append((64, rest // 64)) if rest % 64 == 0 else shapes.append((1, rest))
t = time.time()
with h5py.File(path, "w") as f:
    for j, (o, i) in enumerate(shapes):
        w = rng.standard_normal((o, i, 3, 3), dtype=np.float32) / np.float32(np.sqrt(9 * i))
        dead = rng.random((o, i)) < 0.05
        w[dead] *= np.float32(1e-4)
        f.create_dataset("weights/layer%d.conv.weight" % j, data=w)
n = sum(o * i for o, i in shapes)
print("bench_weights: %d filters in %d layers, %.0f MB float32 (written in %.1f s)"
      % (n, len(shapes), os.path.getsize(path) / 1e6, time.time() - t))

def run(args):
    """Wall seconds, CPU seconds (user+sys) and peak RSS (MB) of a command."""
    t = time.time()
    r = subprocess.run(["/usr/bin/time", "-f", "%M %U %S"] + args, capture_output=True, text=True)
    dt = time.time() - t
    if r.returncode != 0:
        print("FAIL", " ".join(args), r.stderr)
        sys.exit(1)
    m, u, s = r.stderr.strip().split("\n")[-1].split()
    return dt, float(u) + float(s), int(m) / 1024.0

def show(what, dt, cpu, m):
    print("%-40s: %6.2f s wall %9.0f filters/s | %6.2f s CPU %9.0f filters/CPU-s | peak RSS %6.1f MB"
          % (what, dt, n / dt, cpu, n / cpu, m))

print("load average before: %s" % open("/proc/loadavg").read().split()[0])
dt1, c1, m1 = run([rb, "weights", "--methods", "filters", "--shift", "0", "-o", os.path.join(work, "o1"), path])
show("repbench filters, one statistics pass", dt1, c1, m1)
dt2, c2, m2 = run([rb, "weights", "--methods", "filters", "-o", os.path.join(work, "o2"), path])
show("repbench filters, with KL shift", dt2, c2, m2)

peer = r'''
import sys, time, resource, h5py, numpy as np, scipy.stats
path = sys.argv[1]
t = time.time(); n = 0
with h5py.File(path, "r") as f:
    for k in f["weights"]:
        w = f["weights"][k][...].astype(np.float64)
        F = w.reshape(-1, 9); n += len(F)
        t0 = 0.01 * np.abs(w).max()
        deg = np.all(np.abs(F) < t0, axis=1)
        for X in (F, F[~deg]):
            s = np.linalg.svd(X - X.mean(0), full_matrices=False, compute_uv=False)
            v = s ** 2 / (len(X) - 1); scipy.stats.entropy(v / v.sum(), base=10)
        R = w.reshape(w.shape[0], -1); R = R / np.linalg.norm(R, axis=1, keepdims=True)
        G = R @ R.T; 1 - np.abs(G - np.eye(len(G))).sum() / (len(G) * (len(G) - 1))
        np.abs(w).sum(); np.linalg.norm(w)
print(n, time.time() - t)
'''
dt3, c3, m3 = run([sys.executable, "-c", peer, path])
show("NumPy peer (per-layer stats only)", dt3, c3, m3)
print("repbench one-pass vs NumPy: %.2fx faster (wall), %.2fx (CPU); peak memory %.2f of NumPy's"
      % (dt3 / dt1, c3 / c1, m1 / m3))
PYEOF
